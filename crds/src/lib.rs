//! netheal's API: the `NetworkHealthPolicy` and `NodeNetworkReport` custom resources (group
//! `netheal.io`, version `v1alpha1`), the finding/action vocabulary of `FAULTS.md`, and the
//! small pure helpers both binaries need (finding ids, conditions, bounded lists, selectors).

pub mod bounded;
pub mod conditions;
pub mod details;
pub mod finding_id;
pub mod load;
pub mod openreports;
pub mod patterns;
pub mod policy;
pub mod report;
pub mod selector;
pub mod vocabulary;

pub use details::Details;
pub use finding_id::finding_id;
pub use load::{PolicyError, parse_policy, validate_policy};
pub use policy::{
    ActionRecord, AgentSelector, ArpIgnoreCheck, Checks, Cni, FlapLimit, Mode, NetworkHealthPolicy,
    NetworkHealthPolicySpec, NetworkHealthPolicyStatus, OverlayCheck, PolicyFinding, PolicySummary,
    RejectRulesCheck, RejectScope, RemediationSpec, StaleNeighboursCheck, Toggle,
};
pub use report::{
    Finding, FindingHistory, NodeNetworkReport, NodeNetworkReportSpec, NodeNetworkReportStatus,
    PastAction, RemediationOrder, RemediationResult,
};
pub use vocabulary::{Action, Check, Outcome};

/// The API group of every netheal resource.
pub const GROUP: &str = "netheal.io";
/// The API version served.
pub const VERSION: &str = "v1alpha1";
/// Node annotation that pauses every action on that node.
pub const PAUSED_ANNOTATION: &str = "netheal.io/paused";

/// The CRDs as YAML documents, in a stable order, as `crdgen` prints them and as they are
/// checked in under `config/crd/`: `(file name, YAML)`.
pub fn crd_documents() -> Result<Vec<(&'static str, String)>, serde_yaml::Error> {
    use kube::CustomResourceExt;
    Ok(vec![
        (
            "netheal.io_networkhealthpolicies.yaml",
            serde_yaml::to_string(&NetworkHealthPolicy::crd())?,
        ),
        (
            "netheal.io_nodenetworkreports.yaml",
            serde_yaml::to_string(&NodeNetworkReport::crd())?,
        ),
    ])
}
