//! The product's vocabulary: the checks of `FAULTS.md`, the actions that fix them, and the
//! outcomes of an action. Both binaries, the API, metrics and docs use these names.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A fault netheal can detect. The names are the IDs of `FAULTS.md`.
#[derive(
    Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord,
)]
pub enum Check {
    /// `arp_ignore` above the desired value on the node, an interface, or in a pod namespace.
    ArpIgnore,
    /// `net.ipv4.ip_forward` (or `conf.all.forwarding`) is not the desired value.
    IpForward,
    /// A PERMANENT neighbour that points at the wrong place (Calico veths or flannel VTEPs).
    StaleNeighbour,
    /// A live peer has no usable VTEP neighbour or fdb entry on `flannel.1`.
    VtepMissing,
    /// No route to a live peer's pod CIDR.
    PeerRouteMissing,
    /// A REJECT rule in the filter table that Kubernetes and the CNI do not own.
    RejectRule,
    /// Several running pods share one IP (cluster-level, detected by the operator).
    DuplicatePodIp,
    /// `proxy_arp` is off on a Calico `cali*` interface (report only).
    ProxyArpOff,
    /// A POSTROUTING MASQUERADE of pod-to-pod traffic over the overlay (report only).
    Masquerade,
    /// The cni0/docker0 subnet differs from the flannel lease (report only).
    BridgeSubnetMismatch,
    /// Strict reverse-path filtering on an overlay interface (report only).
    RpFilter,
    /// Interface MTU inconsistent with the overlay (report only).
    Mtu,
    /// Tunnel offload features that drop encapsulated packets (report only).
    TunnelOffload,
    /// No IPVS entry for the cluster DNS Service VIP (report only).
    ServiceVipMissing,
}

impl Check {
    /// Every check, in catalogue order.
    pub const ALL: [Check; 14] = [
        Check::ArpIgnore,
        Check::IpForward,
        Check::StaleNeighbour,
        Check::VtepMissing,
        Check::PeerRouteMissing,
        Check::RejectRule,
        Check::DuplicatePodIp,
        Check::ProxyArpOff,
        Check::Masquerade,
        Check::BridgeSubnetMismatch,
        Check::RpFilter,
        Check::Mtu,
        Check::TunnelOffload,
        Check::ServiceVipMissing,
    ];

    /// The name used in the API, metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Check::ArpIgnore => "ArpIgnore",
            Check::IpForward => "IpForward",
            Check::StaleNeighbour => "StaleNeighbour",
            Check::VtepMissing => "VtepMissing",
            Check::PeerRouteMissing => "PeerRouteMissing",
            Check::RejectRule => "RejectRule",
            Check::DuplicatePodIp => "DuplicatePodIp",
            Check::ProxyArpOff => "ProxyArpOff",
            Check::Masquerade => "Masquerade",
            Check::BridgeSubnetMismatch => "BridgeSubnetMismatch",
            Check::RpFilter => "RpFilter",
            Check::Mtu => "Mtu",
            Check::TunnelOffload => "TunnelOffload",
            Check::ServiceVipMissing => "ServiceVipMissing",
        }
    }

    /// The action that fixes this fault, or `None` for report-only findings.
    pub fn remedy(self) -> Option<Action> {
        match self {
            Check::ArpIgnore | Check::IpForward => Some(Action::SetSysctl),
            Check::StaleNeighbour => Some(Action::DeleteNeighbour),
            Check::RejectRule => Some(Action::RemoveRejectRule),
            Check::VtepMissing | Check::PeerRouteMissing => Some(Action::RestartCniPod),
            Check::DuplicatePodIp => Some(Action::RecreatePod),
            Check::ProxyArpOff
            | Check::Masquerade
            | Check::BridgeSubnetMismatch
            | Check::RpFilter
            | Check::Mtu
            | Check::TunnelOffload
            | Check::ServiceVipMissing => None,
        }
    }

    /// True for findings that are detected and explained but never fixed automatically.
    pub fn is_report_only(self) -> bool {
        self.remedy().is_none()
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A remediation netheal can apply.
#[derive(
    Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord,
)]
pub enum Action {
    /// Write a sysctl (node or pod namespace), optionally persisted under `/etc/sysctl.d/`.
    SetSysctl,
    /// Delete exactly one neighbour `(ip, interface)` and its matching fdb entry.
    DeleteNeighbour,
    /// Delete one iptables rule by its exact spec.
    RemoveRejectRule,
    /// Delete the CNI agent pod on a node so its DaemonSet recreates it (cluster action).
    RestartCniPod,
    /// Evict a controller-owned pod that holds a duplicate IP (cluster action).
    RecreatePod,
}

impl Action {
    /// Every action.
    pub const ALL: [Action; 5] = [
        Action::SetSysctl,
        Action::DeleteNeighbour,
        Action::RemoveRejectRule,
        Action::RestartCniPod,
        Action::RecreatePod,
    ];

    /// The name used in the API, metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::SetSysctl => "SetSysctl",
            Action::DeleteNeighbour => "DeleteNeighbour",
            Action::RemoveRejectRule => "RemoveRejectRule",
            Action::RestartCniPod => "RestartCniPod",
            Action::RecreatePod => "RecreatePod",
        }
    }

    /// True when node-fixer applies the action on the node; false when the operator applies it
    /// through the Kubernetes API.
    pub fn is_node_local(self) -> bool {
        matches!(
            self,
            Action::SetSysctl | Action::DeleteNeighbour | Action::RemoveRejectRule
        )
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What became of one remediation.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The change was made (or, in dry-run, would have been made).
    Applied,
    /// The system was already in the desired state: nothing was written.
    NoChange,
    /// The change could not be made; the system is as it was.
    Failed,
    /// The order was not executed (paused, unknown target, not approved any more…).
    Skipped,
}

impl Outcome {
    /// The name used in the API, metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Applied => "Applied",
            Outcome::NoChange => "NoChange",
            Outcome::Failed => "Failed",
            Outcome::Skipped => "Skipped",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_serde() {
        for check in Check::ALL {
            let json = serde_json::to_string(&check).unwrap();
            assert_eq!(json, format!("\"{}\"", check.as_str()));
            assert_eq!(serde_json::from_str::<Check>(&json).unwrap(), check);
        }
        for action in Action::ALL {
            let json = serde_json::to_string(&action).unwrap();
            assert_eq!(json, format!("\"{action}\""));
        }
    }

    #[test]
    fn node_local_and_cluster_actions_are_split_as_in_the_catalogue() {
        let local: Vec<_> = Action::ALL
            .into_iter()
            .filter(|a| a.is_node_local())
            .collect();
        assert_eq!(
            local,
            [
                Action::SetSysctl,
                Action::DeleteNeighbour,
                Action::RemoveRejectRule
            ]
        );
        assert_eq!(Check::VtepMissing.remedy(), Some(Action::RestartCniPod));
        assert!(Check::ProxyArpOff.is_report_only());
        assert!(!Check::RejectRule.is_report_only());
    }
}
