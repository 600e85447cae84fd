//! Cluster actions, taken by the operator through the API: `RestartCniPod` (delete the CNI
//! agent pod on a node that lost its overlay entries, one node at a time, the next only when
//! the DaemonSet's new pod there is Ready) and `RecreatePod` (evict controller-owned pods that
//! hold a duplicate IP).

use crate::ledger::Ledger;
use crate::model::SlimPod;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use netheal_crds::{Action, AgentSelector, Check, NetworkHealthPolicy};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// After this long without a Ready replacement, a CNI restart stops blocking the next one
/// (and the finding, if still there, is handled again).
pub const CNI_RESTART_TIMEOUT: SignedDuration = SignedDuration::from_mins(10);

/// A pod an action targets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodRef {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// UID (a precondition on delete, so a replacement with the same name is never hit).
    pub uid: Option<String>,
}

impl PodRef {
    /// The reference to `pod`.
    pub fn of(pod: &SlimPod) -> Self {
        Self {
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            name: pod.metadata.name.clone().unwrap_or_default(),
            uid: pod.metadata.uid.clone(),
        }
    }
}

impl std::fmt::Display for PodRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// One approved cluster action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterAction {
    /// Unique id (per node).
    pub id: String,
    /// The approving policy.
    pub policy: String,
    /// The node concerned.
    pub node: String,
    /// `RestartCniPod` or `RecreatePod`.
    pub action: Action,
    /// The finding answered.
    pub check: Check,
    /// The finding's id.
    pub finding_id: String,
    /// The finding's target.
    pub target: String,
    /// The pod deleted (RestartCniPod) or evicted (RecreatePod).
    pub pod: PodRef,
    /// For the record: what the action is for.
    pub note: String,
}

/// The hostNetwork pods of every CNI agent namespace the policies name, by node.
pub fn agent_pods_by_node<'a>(
    pods: &'a [Arc<SlimPod>],
    policies: &[Arc<NetworkHealthPolicy>],
) -> HashMap<&'a str, Vec<&'a SlimPod>> {
    let namespaces: Vec<&str> = policies
        .iter()
        .map(|p| p.spec.checks.overlay.agent_selector.namespace.as_str())
        .collect();
    let mut out: HashMap<&str, Vec<&SlimPod>> = HashMap::new();
    // CNI agents run in the host's network namespace: look no further for other pods.
    for pod in pods.iter().filter(|p| p.spec.host_network == Some(true)) {
        let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
        if namespaces.contains(&ns)
            && let Some(node) = pod.node()
        {
            out.entry(node).or_default().push(pod);
        }
    }
    out
}

/// The CNI agent pod on a node: selected by namespace and labels, controlled by a DaemonSet
/// (which starts the replacement; a bare pod or one of another controller is never deleted),
/// not being deleted; the newest when there are several.
pub fn agent_pod<'a>(on_node: &[&'a SlimPod], selector: &AgentSelector) -> Option<&'a SlimPod> {
    on_node
        .iter()
        .filter(|p| {
            p.metadata.namespace.as_deref() == Some(selector.namespace.as_str())
                && p.has_labels(&selector.labels)
                && p.metadata.deletion_timestamp.is_none()
                && p.controller().is_some_and(|(kind, _)| kind == "DaemonSet")
        })
        .max_by_key(|p| (p.created(), p.key()))
        .copied()
}

/// The node whose CNI agent restart is still in flight: the latest `RestartCniPod` there ran
/// less than [`CNI_RESTART_TIMEOUT`] ago, the node still exists, and no Ready agent pod created
/// after the restart runs there yet. Returns `(node, restart time)`.
pub fn cni_restart_in_flight(
    ledger: &Ledger,
    policies: &BTreeMap<&str, &NetworkHealthPolicy>,
    agent_pods: &HashMap<&str, Vec<&SlimPod>>,
    node_exists: impl Fn(&str) -> bool,
    now: Timestamp,
) -> Option<(String, Timestamp)> {
    let since = now
        .checked_sub(CNI_RESTART_TIMEOUT)
        .unwrap_or(Timestamp::MIN);
    let mut latest: BTreeMap<&str, (Timestamp, &str)> = BTreeMap::new();
    for entry in ledger.entries() {
        if entry.action == Action::RestartCniPod && entry.changed_something() && entry.time >= since
        {
            let slot = latest
                .entry(entry.node.as_str())
                .or_insert((entry.time, entry.policy.as_str()));
            if entry.time >= slot.0 {
                *slot = (entry.time, entry.policy.as_str());
            }
        }
    }
    latest.into_iter().find_map(|(node, (time, policy))| {
        if !node_exists(node) {
            return None;
        }
        let selector = policies
            .get(policy)
            .map(|p| &p.spec.checks.overlay.agent_selector)?;
        let on_node = agent_pods.get(node).map(Vec::as_slice).unwrap_or_default();
        let replaced = on_node.iter().any(|p| {
            p.metadata.namespace.as_deref() == Some(selector.namespace.as_str())
                && p.has_labels(&selector.labels)
                && p.created() >= time
                && p.is_ready()
        });
        (!replaced).then(|| (node.to_string(), time))
    })
}
