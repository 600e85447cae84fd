//! Leader election with a Lease (kube-lease-manager): two replicas run, both keep their stores
//! warm, only the holder of the lease decides and writes.

use kube::Client;
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How long a lease lasts without renewal, in seconds.
pub const LEASE_SECONDS: u64 = 15;
/// The grace period before the lease is renewed, in seconds.
pub const GRACE_SECONDS: u64 = 5;

/// A running election: `is_leader` follows the lease.
pub struct Election {
    /// True while this replica holds the lease.
    pub is_leader: watch::Receiver<bool>,
    task: Option<JoinHandle<kube_lease_manager::Result<LeaseManager>>>,
}

impl Election {
    /// Join the election for `namespace/name` as `identity`.
    pub async fn start(
        client: Client,
        namespace: &str,
        name: &str,
        identity: &str,
    ) -> kube_lease_manager::Result<Self> {
        let manager = LeaseManagerBuilder::new(client, name)
            .with_namespace(namespace)
            .with_identity(identity)
            .with_duration(LEASE_SECONDS)
            .with_grace(GRACE_SECONDS)
            .with_field_manager("netheal-operator")
            .build()
            .await?;
        let (is_leader, task) = manager.watch().await;
        Ok(Self {
            is_leader,
            task: Some(task),
        })
    }

    /// No election: always the leader (`--no-leader-election`, a single replica).
    pub fn always() -> Self {
        let (tx, is_leader) = watch::channel(true);
        // Keep the sender alive for the life of the process.
        std::mem::forget(tx);
        Self {
            is_leader,
            task: None,
        }
    }

    /// Give the lease up (on shutdown), so that the standby takes over at once.
    pub async fn release(self) {
        let Self { is_leader, task } = self;
        drop(is_leader);
        if let Some(task) = task {
            match task.await {
                Ok(Ok(_)) => tracing::info!("lease released"),
                Ok(Err(err)) => tracing::warn!(error = %err, "could not release the lease"),
                Err(err) => tracing::warn!(error = %err, "lease task failed"),
            }
        }
    }
}
