//! The API server as a container in a node's (or a pod's) network namespace sees it: a TCP
//! relay listening on that namespace's loopback, at the API server's port, forwarding every
//! connection to the API server on the host's loopback. TLS goes through untouched (the serving
//! certificate is for 127.0.0.1), so a client there uses the in-cluster configuration
//! (`KUBERNETES_SERVICE_HOST=127.0.0.1`) as it would in a real Pod.

use std::net::SocketAddr;
use std::os::fd::AsFd;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A relay; dropping it stops listening and cuts the connections it carries.
#[derive(Debug)]
pub struct Relay {
    accept: JoinHandle<()>,
    cut: watch::Sender<bool>,
    address: SocketAddr,
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl Relay {
    /// Cut the link (every connection it carries is closed, new ones are closed at once) or
    /// restore it: a node cut off from the API server.
    pub fn set_cut(&self, cut: bool) {
        self.cut.send_replace(cut);
    }

    /// Where it listens.
    pub fn address(&self) -> SocketAddr {
        self.address
    }
}

/// Listen on `listen` inside the network namespace at `netns_path` (the harness's own when
/// `None`), forward to `upstream`.
pub async fn start(
    netns_path: Option<&str>,
    listen: SocketAddr,
    upstream: SocketAddr,
) -> std::io::Result<Relay> {
    let path = netns_path.map(str::to_string);
    // setns changes only the calling thread: a thread of its own binds the socket, which stays
    // in that namespace after the thread is gone.
    let listener = std::thread::spawn(move || -> std::io::Result<std::net::TcpListener> {
        if let Some(path) = path {
            let ns = std::fs::File::open(&path)?;
            nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(std::io::Error::from)?;
        }
        let listener = std::net::TcpListener::bind(listen)?;
        listener.set_nonblocking(true)?;
        Ok(listener)
    })
    .join()
    .map_err(|_| std::io::Error::other("the relay's bind thread panicked"))??;
    let address = listener.local_addr()?;
    let listener = TcpListener::from_std(listener)?;
    let (cut, cut_rx) = watch::channel(false);
    let accept = tokio::spawn(async move {
        let mut carried = tokio::task::JoinSet::new();
        loop {
            while carried.try_join_next().is_some() {}
            let Ok((mut inbound, _)) = listener.accept().await else {
                continue;
            };
            if *cut_rx.borrow() {
                continue;
            }
            let mut cut_rx = cut_rx.clone();
            carried.spawn(async move {
                if let Ok(mut outbound) = TcpStream::connect(upstream).await {
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut_rx.wait_for(|cut| *cut) => {}
                    }
                }
            });
        }
    });
    Ok(Relay {
        accept,
        cut,
        address,
    })
}
