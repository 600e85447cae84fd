//! `NetworkHealthPolicy` (short name `nhp`): the invariants a person declares through Git, and
//! the status the operator writes back.

use crate::vocabulary::{Action, Check, Outcome};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector, Time};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The most findings kept in a policy's `status.findings`; the rest are counted in
/// `status.findingsTruncated` (the full detail lives in each node's report).
pub const MAX_POLICY_FINDINGS: usize = 200;
/// The most action records kept in a policy's `status.actions`, newest first kept.
pub const MAX_POLICY_ACTIONS: usize = 100;
/// The most interface patterns one check accepts.
pub const MAX_INTERFACE_PATTERNS: usize = 32;

/// The interfaces whose `arp_ignore` matters by default (FAULTS.md, `ArpIgnore`).
pub const DEFAULT_ARP_IGNORE_INTERFACES: [&str; 5] =
    ["cali*", "flannel.1", "cni0", "tunl0", "vxlan.calico"];
/// The interfaces whose PERMANENT neighbours are audited by default (FAULTS.md, `StaleNeighbour`).
pub const DEFAULT_NEIGHBOUR_INTERFACES: [&str; 3] = ["cali*", "flannel.1", "flannel-v6.1"];
/// The overlay devices whose offload features `TunnelOffload` reads by default.
pub const DEFAULT_TUNNEL_INTERFACES: [&str; 3] = ["flannel.1", "vxlan.calico", "tunl0"];
/// The offload features `TunnelOffload` flags by default when they are active: VXLAN transmit
/// checksum offload, which on kernels before 5.7 leaves a wrong UDP checksum on packets
/// kube-proxy's SNAT rewrote (DNS through a Service VIP times out; Calico turns it off there).
pub const DEFAULT_TUNNEL_FEATURES: [&str; 1] = ["tx-checksum-ip-generic"];
/// The kernel release from which the default features are no longer flagged.
pub const DEFAULT_TUNNEL_KERNELS_BEFORE: &str = "5.7";
/// The filter-table chains searched for REJECT rules by default.
pub const DEFAULT_REJECT_CHAINS: [&str; 2] = ["INPUT", "FORWARD"];

/// Whether fixes are only reported or also applied.
#[derive(
    Serialize, Deserialize, schemars::JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq, Hash,
)]
pub enum Mode {
    /// Report what would be done; change nothing.
    #[default]
    DryRun,
    /// Apply the approved fixes under the safety limits.
    Enforce,
}

/// The CNI whose overlay is audited.
#[derive(
    Serialize, Deserialize, schemars::JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq, Hash,
)]
pub enum Cni {
    /// Calico policy with a flannel VXLAN overlay (the `canal` DaemonSet).
    #[default]
    Canal,
    /// flannel alone (the `kube-flannel` DaemonSet).
    Flannel,
    /// Calico networking (IPIP on `tunl0` or VXLAN on `vxlan.calico`).
    Calico,
}

/// Which REJECT rules `RejectRule` flags.
#[derive(
    Serialize, Deserialize, schemars::JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq, Hash,
)]
pub enum RejectScope {
    /// Only rules that drop the cluster's own traffic: a catch-all REJECT, or one whose matches
    /// cover the overlay (VXLAN UDP 8472/4789, IPIP, WireGuard UDP 51820/51821), the kubelet
    /// (TCP 10250), BGP (TCP 179), or name pod or node addresses. A narrow rule such as
    /// `-p tcp --dport 25 -j REJECT`, or one whose matches netheal cannot see through
    /// (`-m set`, `-m mac`, ...), is left alone.
    #[default]
    ClusterTraffic,
    /// Every REJECT rule in the searched chains that Kubernetes and the CNI do not own.
    AllUnowned,
}

/// The desired state of the cluster's node networking.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "netheal.io",
    version = "v1alpha1",
    kind = "NetworkHealthPolicy",
    plural = "networkhealthpolicies",
    singular = "networkhealthpolicy",
    shortname = "nhp",
    status = "NetworkHealthPolicyStatus",
    printcolumn = r#"{"name":"Mode","type":"string","jsonPath":".spec.mode"}"#,
    printcolumn = r#"{"name":"Paused","type":"boolean","jsonPath":".spec.paused","priority":1}"#,
    printcolumn = r#"{"name":"Nodes","type":"integer","jsonPath":".status.summary.nodesSelected"}"#,
    printcolumn = r#"{"name":"Healthy","type":"integer","jsonPath":".status.summary.nodesHealthy","priority":1}"#,
    printcolumn = r#"{"name":"Findings","type":"integer","jsonPath":".status.summary.openFindings"}"#,
    printcolumn = r#"{"name":"Actions","type":"integer","jsonPath":".status.summary.actionsApplied"}"#,
    printcolumn = r#"{"name":"Failed","type":"integer","jsonPath":".status.summary.actionsFailed","priority":1}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    category = "netheal"
)]
#[serde(rename_all = "camelCase")]
pub struct NetworkHealthPolicySpec {
    /// The nodes this policy applies to. Empty or absent selects every node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<LabelSelector>,
    /// `DryRun` reports what would be done; `Enforce` applies approved fixes.
    #[serde(default)]
    #[x_kube(validation = Rule::new("self == 'DryRun' || self == 'Enforce'").message("spec.mode must be DryRun or Enforce"))]
    pub mode: Mode,
    /// Stop every action of this policy (findings are still reported).
    #[serde(default)]
    pub paused: bool,
    /// The invariants to check. Each can be switched off.
    #[serde(default)]
    pub checks: Checks,
    /// Which fixes are approved, and the safety limits they run under.
    #[serde(default)]
    pub remediation: RemediationSpec,
}

/// The checks of `FAULTS.md`; every one is on by default.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Checks {
    /// `ArpIgnore`.
    #[serde(default)]
    pub arp_ignore: ArpIgnoreCheck,
    /// `IpForward`.
    #[serde(default)]
    pub ip_forward: Toggle,
    /// `StaleNeighbour`.
    #[serde(default)]
    pub stale_neighbours: StaleNeighboursCheck,
    /// `RejectRule`.
    #[serde(default)]
    pub reject_rules: RejectRulesCheck,
    /// `VtepMissing` and `PeerRouteMissing`, and the CNI agent used to repair them.
    #[serde(default)]
    pub overlay: OverlayCheck,
    /// `DuplicatePodIp` (cluster-level).
    #[serde(default)]
    pub duplicate_pod_ips: Toggle,
    /// `ProxyArpOff` (report only).
    #[serde(default)]
    pub proxy_arp: Toggle,
    /// `Masquerade` (report only).
    #[serde(default)]
    pub masquerade: Toggle,
    /// `RpFilter` (report only).
    #[serde(default)]
    pub rp_filter: Toggle,
    /// `Mtu` (report only): an overlay device that is up (`flannel.1`, `vxlan.calico`,
    /// `tunl0`) whose MTU plus its encapsulation overhead (50 bytes for VXLAN, 20 for IPIP)
    /// exceeds the MTU of the node's uplink (the interface of its default route); and a pod's
    /// host-side veth whose MTU exceeds that overlay device's (the pod sends packets the
    /// overlay cannot carry).
    #[serde(default)]
    pub mtu: Toggle,
    /// `BridgeSubnetMismatch` (report only; flannel and canal): the pod bridge's address
    /// (`cni0`, or `docker0` when it is inside flannel's network) is not the lease flannel
    /// holds in `/run/flannel/subnet.env` (`FLANNEL_SUBNET`), as after a power loss.
    #[serde(default)]
    pub bridge_subnet: Toggle,
    /// `TunnelOffload` (report only): offload features active on overlay devices, read through
    /// ethtool's netlink interface.
    #[serde(default)]
    pub tunnel_offload: TunnelOffloadCheck,
    /// `ServiceVipMissing` (report only): a cluster IP and port of the Services node-fixer
    /// watches (`--service`, by default the cluster DNS `kube-system/kube-dns`) that kube-proxy
    /// has not programmed on the node, in the mode found there (IPVS, nftables or iptables).
    #[serde(default)]
    pub service_vip: Toggle,
}

impl Checks {
    /// Whether `check` is switched on in this policy.
    pub fn is_enabled(&self, check: Check) -> bool {
        match check {
            Check::ArpIgnore => self.arp_ignore.enabled,
            Check::IpForward => self.ip_forward.enabled,
            Check::StaleNeighbour => self.stale_neighbours.enabled,
            Check::RejectRule => self.reject_rules.enabled,
            Check::VtepMissing | Check::PeerRouteMissing => self.overlay.enabled,
            Check::DuplicatePodIp => self.duplicate_pod_ips.enabled,
            Check::ProxyArpOff => self.proxy_arp.enabled,
            Check::Masquerade => self.masquerade.enabled,
            Check::RpFilter => self.rp_filter.enabled,
            Check::Mtu => self.mtu.enabled,
            Check::BridgeSubnetMismatch => self.bridge_subnet.enabled,
            Check::TunnelOffload => self.tunnel_offload.enabled,
            Check::ServiceVipMissing => self.service_vip.enabled,
        }
    }
}

fn enabled() -> bool {
    true
}

/// A check with nothing to configure but its switch.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Toggle {
    /// Run this check.
    #[serde(default = "enabled")]
    pub enabled: bool,
}

impl Default for Toggle {
    fn default() -> Self {
        Self { enabled: true }
    }
}

fn default_arp_ignore_interfaces() -> Vec<String> {
    DEFAULT_ARP_IGNORE_INTERFACES.map(String::from).to_vec()
}

fn default_neighbour_interfaces() -> Vec<String> {
    DEFAULT_NEIGHBOUR_INTERFACES.map(String::from).to_vec()
}

fn default_reject_chains() -> Vec<String> {
    DEFAULT_REJECT_CHAINS.map(String::from).to_vec()
}

/// `ArpIgnore`: the effective `arp_ignore` (max of `conf.all` and `conf.IFACE`).
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ArpIgnoreCheck {
    /// Run this check.
    #[serde(default = "enabled")]
    pub enabled: bool,
    /// The highest acceptable value (0 answers ARP for any local address).
    #[serde(default)]
    #[x_kube(validation = Rule::new("self <= 3 || self == 8").message("spec.checks.arpIgnore.desired must be one of 0, 1, 2, 3, 8"))]
    pub desired: u8,
    /// Interface names or globs (`cali*`) whose effective value is checked, besides `all` and
    /// `default`.
    #[serde(default = "default_arp_ignore_interfaces")]
    #[schemars(length(max = 32), inner(length(min = 1, max = 15)))]
    #[x_kube(validation = Rule::new("self.all(i, size(i) >= 1 && size(i) <= 15 && !i.contains('/') && i.matches('^[A-Za-z0-9_.:@*?\\\\[\\\\]-]+$'))").message("spec.checks.arpIgnore.interfaces: each entry must be an interface name or glob of 1 to 15 characters, without '/' or spaces"))]
    pub interfaces: Vec<String>,
    /// Also check the pod network namespaces on the node (they inherit the node's value at
    /// creation).
    #[serde(default = "enabled")]
    pub pod_namespaces: bool,
}

impl Default for ArpIgnoreCheck {
    fn default() -> Self {
        Self {
            enabled: true,
            desired: 0,
            interfaces: default_arp_ignore_interfaces(),
            pod_namespaces: true,
        }
    }
}

/// `StaleNeighbour`: PERMANENT neighbours that point at the wrong place.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct StaleNeighboursCheck {
    /// Run this check.
    #[serde(default = "enabled")]
    pub enabled: bool,
    /// Interface names or globs whose PERMANENT neighbours are audited. A neighbour on any
    /// other interface is never touched.
    #[serde(default = "default_neighbour_interfaces")]
    #[schemars(length(max = 32), inner(length(min = 1, max = 15)))]
    #[x_kube(validation = Rule::new("self.all(i, size(i) >= 1 && size(i) <= 15 && !i.contains('/') && i.matches('^[A-Za-z0-9_.:@*?\\\\[\\\\]-]+$'))").message("spec.checks.staleNeighbours.interfaces: each entry must be an interface name or glob of 1 to 15 characters, without '/' or spaces"))]
    pub interfaces: Vec<String>,
}

impl Default for StaleNeighboursCheck {
    fn default() -> Self {
        Self {
            enabled: true,
            interfaces: default_neighbour_interfaces(),
        }
    }
}

/// `RejectRule`: REJECT rules in the filter table that nobody in the cluster owns.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RejectRulesCheck {
    /// Run this check.
    #[serde(default = "enabled")]
    pub enabled: bool,
    /// Filter-table chains searched. Chains owned by Kubernetes or the CNI (`KUBE-*`, `cali-*`,
    /// `FLANNEL-*`) are never candidates, even when listed. In nftables' own tables
    /// (firewalld's `inet firewalld`), the base chains hooked where these are (`INPUT` → hook
    /// `input`) and chains of these names are searched, with every chain they jump to.
    #[serde(default = "default_reject_chains")]
    #[schemars(length(min = 1, max = 16), inner(length(min = 1, max = 28)))]
    #[x_kube(validation = Rule::new("self.all(c, c.matches('^[A-Za-z0-9_-]+$'))").message("spec.checks.rejectRules.chains: each entry must be a chain name of letters, digits, '_' or '-'"))]
    pub chains: Vec<String>,
    /// Also search the iptables chains these chains jump to (`-j CHAIN`, then their jumps, and
    /// so on), as firewall tools that keep their rules in their own chains need. Chains owned
    /// by Kubernetes or the CNI are never entered. (nftables' own tables are always searched
    /// through their jumps: their base chains hand every packet to their regular chains.)
    #[serde(default)]
    pub follow_jumps: bool,
    /// Which rules are flagged: `ClusterTraffic` (the default) only those that drop the
    /// cluster's own traffic; `AllUnowned` every REJECT rule Kubernetes and the CNI do not own,
    /// including an administrator's deliberate ones.
    #[serde(default)]
    #[x_kube(validation = Rule::new("self == 'ClusterTraffic' || self == 'AllUnowned'").message("spec.checks.rejectRules.scope must be ClusterTraffic or AllUnowned"))]
    pub scope: RejectScope,
}

impl Default for RejectRulesCheck {
    fn default() -> Self {
        Self {
            enabled: true,
            chains: default_reject_chains(),
            follow_jumps: false,
            scope: RejectScope::default(),
        }
    }
}

fn default_tunnel_interfaces() -> Vec<String> {
    DEFAULT_TUNNEL_INTERFACES.map(String::from).to_vec()
}

fn default_tunnel_features() -> Vec<String> {
    DEFAULT_TUNNEL_FEATURES.map(String::from).to_vec()
}

fn default_tunnel_kernels_before() -> String {
    DEFAULT_TUNNEL_KERNELS_BEFORE.to_string()
}

/// `TunnelOffload`: offload features that break encapsulated traffic on some kernels.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct TunnelOffloadCheck {
    /// Run this check.
    #[serde(default = "enabled")]
    pub enabled: bool,
    /// Interface names or globs whose features are read (add the uplink, `eth0`, for the GSO
    /// drop of IPIP packets that seed 001 describes).
    #[serde(default = "default_tunnel_interfaces")]
    #[schemars(length(max = 32), inner(length(min = 1, max = 15)))]
    #[x_kube(validation = Rule::new("self.all(i, size(i) >= 1 && size(i) <= 15 && !i.contains('/') && i.matches('^[A-Za-z0-9_.:@*?\\\\[\\\\]-]+$'))").message("spec.checks.tunnelOffload.interfaces: each entry must be an interface name or glob of 1 to 15 characters, without '/' or spaces"))]
    pub interfaces: Vec<String>,
    /// The ethtool feature names (as `ethtool -k` prints them: `tx-checksum-ip-generic`,
    /// `tx-generic-segmentation`) flagged when active on one of those interfaces.
    #[serde(default = "default_tunnel_features")]
    #[schemars(length(min = 1, max = 16), inner(length(min = 1, max = 48)))]
    #[x_kube(validation = Rule::new("self.all(f, f.matches('^[a-z0-9_-]+$'))").message("spec.checks.tunnelOffload.features: each entry must be an ethtool feature name of lowercase letters, digits, '_' or '-'"))]
    pub features: Vec<String>,
    /// Flag only on kernels older than this release (`MAJOR.MINOR`; the VXLAN checksum bug of
    /// SNAT-rewritten packets was fixed in 5.7). Empty: flag on every kernel (flannel nodes
    /// whose VXLAN endpoints are behind NAT see wrong checksums on current kernels too).
    #[serde(default = "default_tunnel_kernels_before")]
    #[x_kube(validation = Rule::new("self == '' || self.matches('^[0-9]+[.][0-9]+$')").message("spec.checks.tunnelOffload.kernelsBefore must be MAJOR.MINOR (5.7) or empty"))]
    pub kernels_before: String,
}

impl Default for TunnelOffloadCheck {
    fn default() -> Self {
        Self {
            enabled: true,
            interfaces: default_tunnel_interfaces(),
            features: default_tunnel_features(),
            kernels_before: default_tunnel_kernels_before(),
        }
    }
}

/// `VtepMissing` / `PeerRouteMissing`: every live peer is reachable over the overlay.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct OverlayCheck {
    /// Run this check.
    #[serde(default = "enabled")]
    pub enabled: bool,
    /// The CNI that programs the overlay.
    #[serde(default)]
    #[x_kube(validation = Rule::new("self == 'Canal' || self == 'Flannel' || self == 'Calico'").message("spec.checks.overlay.cni must be Canal, Flannel or Calico"))]
    pub cni: Cni,
    /// The CNI agent pods that `RestartCniPod` deletes (one per node, owned by a DaemonSet).
    #[serde(default)]
    pub agent_selector: AgentSelector,
}

impl Default for OverlayCheck {
    fn default() -> Self {
        Self {
            enabled: true,
            cni: Cni::default(),
            agent_selector: AgentSelector::default(),
        }
    }
}

fn default_agent_namespace() -> String {
    "kube-system".to_string()
}

fn default_agent_labels() -> BTreeMap<String, String> {
    BTreeMap::from([("k8s-app".to_string(), "canal".to_string())])
}

/// Where the CNI agent pods live and how to select them.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AgentSelector {
    /// The agent pods' namespace.
    #[serde(default = "default_agent_namespace")]
    #[schemars(length(min = 1, max = 63))]
    pub namespace: String,
    /// Labels every agent pod carries.
    #[serde(default = "default_agent_labels")]
    #[x_kube(validation = Rule::new("size(self) >= 1").message("spec.checks.overlay.agentSelector.labels must name at least one label, or every pod in the namespace would match"))]
    pub labels: BTreeMap<String, String>,
}

impl Default for AgentSelector {
    fn default() -> Self {
        Self {
            namespace: default_agent_namespace(),
            labels: default_agent_labels(),
        }
    }
}

fn default_actions() -> Vec<Action> {
    Action::ALL.to_vec()
}

fn default_max_concurrent_nodes() -> u32 {
    1
}

fn default_cooldown_seconds() -> u32 {
    60
}

/// Which fixes are approved and the safety limits they run under.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RemediationSpec {
    /// The approved action kinds. An action not listed here is only ever proposed.
    #[serde(default = "default_actions")]
    #[schemars(length(max = 5))]
    #[x_kube(validation = Rule::new("self.all(a, self.exists_one(b, b == a))").message("spec.remediation.actions must not list an action twice"))]
    pub actions: Vec<Action>,
    /// Also write a drop-in under `/etc/sysctl.d/` so that a reboot keeps a sysctl fix.
    #[serde(default = "enabled")]
    pub persist_sysctls: bool,
    /// At most this many nodes with an action in flight, cluster-wide.
    #[serde(default = "default_max_concurrent_nodes")]
    #[x_kube(validation = Rule::new("self >= 1").message("spec.remediation.maxConcurrentNodes must be at least 1"))]
    pub max_concurrent_nodes: u32,
    /// Seconds to wait after an action before the same kind of action on the same node.
    #[serde(default = "default_cooldown_seconds")]
    #[x_kube(validation = Rule::new("self <= 86400").message("spec.remediation.cooldownSeconds must be at most 86400 (one day)"))]
    pub cooldown_seconds: u32,
    /// When a fixed finding keeps coming back, stop fixing it and raise `Flapping`.
    #[serde(default)]
    pub flap_limit: FlapLimit,
}

impl Default for RemediationSpec {
    fn default() -> Self {
        Self {
            actions: default_actions(),
            persist_sysctls: true,
            max_concurrent_nodes: 1,
            cooldown_seconds: 60,
            flap_limit: FlapLimit::default(),
        }
    }
}

impl RemediationSpec {
    /// Whether `action` is approved by this policy.
    pub fn approves(&self, action: Action) -> bool {
        self.actions.contains(&action)
    }
}

fn default_flap_fixes() -> u32 {
    3
}

fn default_flap_window() -> u32 {
    3600
}

/// The flapping circuit breaker: `fixes` fixes of one finding within `windowSeconds`.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct FlapLimit {
    /// How many fixes of the same finding within the window make it flapping.
    #[serde(default = "default_flap_fixes")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 20").message("spec.remediation.flapLimit.fixes must be between 1 and 20"))]
    pub fixes: u32,
    /// The window, in seconds.
    #[serde(default = "default_flap_window")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 604800").message("spec.remediation.flapLimit.windowSeconds must be between 1 and 604800 (one week)"))]
    pub window_seconds: u32,
}

impl Default for FlapLimit {
    fn default() -> Self {
        Self {
            fixes: default_flap_fixes(),
            window_seconds: default_flap_window(),
        }
    }
}

/// What the operator observed and did for this policy.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NetworkHealthPolicyStatus {
    /// The `metadata.generation` this status was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `Degraded`, `Flapping`, `Paused`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Counters across every selected node.
    #[serde(default)]
    pub summary: PolicySummary,
    /// The open findings with the action proposed for each (the dry-run report), newest
    /// `MAX_POLICY_FINDINGS`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<PolicyFinding>,
    /// How many findings did not fit in `findings`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub findings_truncated: u64,
    /// Every action taken or proposed, newest `MAX_POLICY_ACTIONS` kept.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<ActionRecord>,
    /// How many older action records were dropped from `actions`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub actions_truncated: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Counters across the nodes a policy selects.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PolicySummary {
    /// Nodes the policy's selector matches.
    pub nodes_selected: u32,
    /// Selected nodes with a report.
    pub nodes_reporting: u32,
    /// Reporting nodes without open findings.
    pub nodes_healthy: u32,
    /// Open findings across the selected nodes.
    pub open_findings: u32,
    /// Actions applied since the policy was created.
    pub actions_applied: u64,
    /// Actions that failed since the policy was created.
    pub actions_failed: u64,
}

/// One open finding and what the policy would do about it.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PolicyFinding {
    /// The finding's stable id (see [`crate::finding_id`]).
    pub id: String,
    /// The node that reported it (or where the pods are, for cluster-level findings).
    pub node: String,
    /// The check that found it.
    pub check: Check,
    /// The object at fault.
    pub target: String,
    /// What was observed.
    pub observed: String,
    /// What the policy wants.
    pub desired: String,
    /// The action that would fix it, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proposed_action: Option<Action>,
    /// Why the action is not (or not yet) taken: dry-run, not approved, paused, flapping,
    /// cooldown, concurrency limit…
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disposition: Option<String>,
}

/// One action, taken or proposed, with enough detail to undo it by hand.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ActionRecord {
    /// Unique id of the action (the remediation order id for node-local actions).
    pub id: String,
    /// When it was taken.
    pub time: Time,
    /// The node it concerns.
    pub node: String,
    /// What was done.
    pub action: Action,
    /// The finding it answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<Check>,
    /// The object changed.
    pub target: String,
    /// The state before.
    #[serde(default)]
    pub before: String,
    /// The state after.
    #[serde(default)]
    pub after: String,
    /// How it ended.
    pub outcome: Outcome,
    /// True when nothing was written (dry-run).
    #[serde(default)]
    pub dry_run: bool,
    /// Details, an error message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}
