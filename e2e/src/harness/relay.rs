//! The API server as a container in a node's (or a pod's) network namespace sees it: a TCP
//! relay listening on that namespace's loopback, at the API server's port, forwarding every
//! connection to the API server on the host's loopback. TLS goes through untouched (the serving
//! certificate is for 127.0.0.1), so a client there uses the in-cluster configuration
//! (`KUBERNETES_SERVICE_HOST=127.0.0.1`) as it would in a real Pod.

use std::net::SocketAddr;
use std::os::fd::AsFd;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A relay; dropping it stops listening and cuts the connections it carries.
#[derive(Debug)]
pub struct Relay {
    accept: JoinHandle<()>,
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Listen on `listen` inside the network namespace at `netns_path`, forward to `upstream`.
pub async fn start(
    netns_path: &str,
    listen: SocketAddr,
    upstream: SocketAddr,
) -> std::io::Result<Relay> {
    let path = netns_path.to_string();
    // setns changes only the calling thread: a thread of its own binds the socket, which stays
    // in that namespace after the thread is gone.
    let listener = std::thread::spawn(move || -> std::io::Result<std::net::TcpListener> {
        let ns = std::fs::File::open(&path)?;
        nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(std::io::Error::from)?;
        let listener = std::net::TcpListener::bind(listen)?;
        listener.set_nonblocking(true)?;
        Ok(listener)
    })
    .join()
    .map_err(|_| std::io::Error::other("the relay's bind thread panicked"))??;
    let listener = TcpListener::from_std(listener)?;
    let accept = tokio::spawn(async move {
        let mut carried = tokio::task::JoinSet::new();
        loop {
            while carried.try_join_next().is_some() {}
            let Ok((mut inbound, _)) = listener.accept().await else {
                continue;
            };
            carried.spawn(async move {
                if let Ok(mut outbound) = TcpStream::connect(upstream).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    Ok(Relay { accept })
}
