//! Faults of netheal's own parts, for the fault scenarios: an agent killed with SIGKILL, a
//! second operator replica and the leader killed, a node cut off from the API server. The
//! control plane's own faults (API server restart, etcd stopped) are on
//! [`crate::controlplane::ControlPlane`].

use super::{Harness, HarnessError, bins, install};
use crate::controlplane::ControlPlane;
use crate::harness::process::ChildProcess;
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;

/// The operator's leader-election Lease (in [`install::NAMESPACE`]).
pub const LEASE: &str = "netheal-operator";

/// The pids whose parent is `pid`.
fn children_of(pid: u32) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|child| {
            std::fs::read_to_string(format!("/proc/{child}/stat"))
                .ok()
                .and_then(|stat| {
                    // `pid (comm) state ppid ...`: comm may hold spaces, so split after ')'.
                    let rest = stat.rsplit_once(')')?.1;
                    rest.split_whitespace().nth(1)?.parse::<u32>().ok()
                })
                == Some(pid)
        })
        .collect()
}

fn sigkill(pid: i32) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    );
}

impl Harness {
    /// Restart kube-apiserver ([`ControlPlane::restart_apiserver`]) and wait until its RBAC
    /// authorizer serves netheal's roles again (a restarted API server answers 403 for a
    /// moment after `/readyz`: those refusals are the restart's, not netheal's RBAC, and are
    /// not held against it). Returns how long the API server was unavailable.
    pub async fn restart_apiserver(&mut self) -> Result<std::time::Duration, HarnessError> {
        let down = self.controlplane.restart_apiserver().await?;
        for (sa, verb, resource) in [
            (
                install::OPERATOR_SA,
                "watch",
                "networkhealthpolicies.netheal.io",
            ),
            (
                install::NODE_FIXER_SA,
                "watch",
                "nodenetworkreports.netheal.io",
            ),
        ] {
            let user = format!("--as=system:serviceaccount:{}:{sa}", install::NAMESPACE);
            let what = format!("RBAC to let {sa} {verb} {resource} again");
            super::wait_for(&what, std::time::Duration::from_secs(30), || async {
                match self
                    .controlplane
                    .kubectl(&["auth", "can-i", verb, resource, &user])
                {
                    Ok(out) if String::from_utf8_lossy(&out.stdout).trim() == "yes" => {
                        super::Check::Done(())
                    }
                    Ok(out) => super::Check::NotYet(String::from_utf8_lossy(&out.stdout).into()),
                    Err(e) => super::Check::NotYet(e.to_string()),
                }
            })
            .await?;
        }
        // Requests already in flight (and their log lines) land within the clients' backoff.
        tokio::time::sleep(std::time::Duration::from_secs(3)).await;
        for p in self
            .operator
            .iter()
            .chain(self.standby_operators.iter())
            .chain(self.agents.values())
        {
            let len = std::fs::metadata(p.log()).map_or(0, |m| m.len() as usize);
            self.refusals_forgiven.insert(p.log().to_path_buf(), len);
        }
        Ok(down)
    }

    /// The control plane, to restart or stop its parts.
    pub fn controlplane_mut(&mut self) -> &mut ControlPlane {
        &mut self.controlplane
    }

    /// The pid of `node`'s agent process.
    pub fn agent_pid(&self, node: &str) -> Option<u32> {
        self.agents.get(node).map(ChildProcess::pid)
    }

    /// The programs `node`'s agent is running right now (`iptables-nft-restore`, ...).
    pub fn agent_children(&self, node: &str) -> Vec<String> {
        let Some(pid) = self.agent_pid(node) else {
            return Vec::new();
        };
        children_of(pid)
            .into_iter()
            .filter_map(|c| std::fs::read_to_string(format!("/proc/{c}/comm")).ok())
            .map(|c| c.trim().to_string())
            .collect()
    }

    /// Kill `node`'s agent with SIGKILL, and the programs it was running (as the container
    /// runtime does when the container dies), without any chance to answer.
    pub fn kill_agent(&mut self, node: &str) {
        let Some(mut agent) = self.agents.remove(node) else {
            return;
        };
        let children = children_of(agent.pid());
        agent.kill();
        for child in children {
            sigkill(child);
        }
    }

    /// Cut `node`'s agent off from the API server (every connection closed, new ones refused)
    /// or reconnect it. Only for the nodes in [`super::HarnessOptions::relayed_agents`].
    pub fn cut_agent(&self, node: &str, cut: bool) -> Result<(), HarnessError> {
        let relay = self
            .relays
            .get(&format!("agent-{node}"))
            .ok_or_else(|| HarnessError::Other(format!("agent-{node} has no relay")))?;
        relay.set_cut(cut);
        Ok(())
    }

    /// Start one more operator replica (a process authenticated with a token bound to another
    /// pod of the Deployment); it stands by until it gets the lease.
    pub async fn start_standby_operator(&mut self) -> Result<(), HarnessError> {
        let pods = super::api::pods_selected(
            &self.client,
            install::NAMESPACE,
            "app.kubernetes.io/component=operator",
        )
        .await?;
        let used: Vec<String> = self.operator_pods.clone();
        let pod = pods
            .into_iter()
            .find(|p| {
                p.metadata.deletion_timestamp.is_none()
                    && p.metadata.name.as_ref().is_some_and(|n| !used.contains(n))
            })
            .ok_or_else(|| HarnessError::Other("no second operator pod".into()))?;
        let n = self.standby_operators.len() + 2;
        let p = self.spawn_operator(&pod, &format!("operator-{n}")).await?;
        self.standby_operators.push(p);
        Ok(())
    }

    /// The Lease's holder (`<pod>-<pid>`), if any.
    pub async fn lease_holder(&self) -> Result<Option<String>, HarnessError> {
        let leases: Api<Lease> = Api::namespaced(self.client.clone(), install::NAMESPACE);
        Ok(leases
            .get_opt(LEASE)
            .await
            .map_err(|e| HarnessError::Other(format!("Lease {LEASE}: {e}")))?
            .and_then(|l| l.spec?.holder_identity))
    }

    /// Kill (SIGKILL) the operator replica that holds the lease; returns its identity.
    pub async fn kill_leader(&mut self) -> Result<String, HarnessError> {
        let holder = self
            .lease_holder()
            .await?
            .ok_or_else(|| HarnessError::Other("nobody holds the lease".into()))?;
        let is_holder = |p: &ChildProcess| holder.ends_with(&format!("-{}", p.pid()));
        if self.operator.as_ref().is_some_and(is_holder) {
            if let Some(mut p) = self.operator.take() {
                p.kill();
            }
            // The first standby becomes "the" operator.
            if !self.standby_operators.is_empty() {
                self.operator = Some(self.standby_operators.remove(0));
            }
        } else if let Some(i) = self.standby_operators.iter().position(is_holder) {
            self.standby_operators.remove(i).kill();
        } else {
            return Err(HarnessError::Other(format!(
                "the lease holder {holder} is none of the operator processes"
            )));
        }
        Ok(holder)
    }

    /// Start an operator process as `pod`, named `name` (log `<name>.log`).
    pub(super) async fn spawn_operator(
        &mut self,
        pod: &k8s_openapi::api::core::v1::Pod,
        name: &str,
    ) -> Result<ChildProcess, HarnessError> {
        let token = install::pod_bound_token(&self.client, install::OPERATOR_SA, pod).await?;
        let kubeconfig = self.log_dir.join(format!("{name}.kubeconfig"));
        self.controlplane
            .write_token_kubeconfig(&kubeconfig, install::OPERATOR_SA, &token)?;
        let args: Vec<String> = [
            "--listen",
            "127.0.0.1:0",
            "--requeue-interval",
            "5s",
            "--log-format",
            "text",
        ]
        .map(String::from)
        .to_vec();
        let pod_name = pod.metadata.name.clone().unwrap_or_default();
        let mut env = self.env(&kubeconfig);
        env.push(("POD_NAME", pod_name.clone()));
        let p = ChildProcess::spawn(
            name,
            &self.bin_dir.join(bins::OPERATOR),
            &args,
            &env,
            &self.log_dir.join(format!("{name}.log")),
        )?;
        self.operator_pods.push(pod_name);
        Ok(p)
    }
}
