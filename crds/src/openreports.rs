//! The `openreports.io/v1alpha1` `ClusterReport` that netheal writes where that API is served
//! (Policy Reporter, Kyverno's UI and other OpenReports consumers read it): one report per
//! Node, scoped to it, one result per policy and check. Only the fields netheal writes or
//! reads are typed; the resource itself belongs to the OpenReports project
//! (`config/components/openreports` installs its CRD for clusters that have none).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::BTreeMap;

/// The API group.
pub const GROUP: &str = "openreports.io";
/// The version netheal writes.
pub const VERSION: &str = "v1alpha1";
/// The kind.
pub const KIND: &str = "ClusterReport";
/// The resource's plural.
pub const PLURAL: &str = "clusterreports";
/// `source` of every report and result netheal writes.
pub const SOURCE: &str = "netheal";

/// A result's outcome.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// The node meets the check.
    Pass,
    /// The node breaks the check (an open finding).
    Fail,
    /// Not scored.
    Warn,
    /// The check could not be evaluated.
    Error,
    /// The check is not evaluated (disabled).
    Skip,
}

/// A result's severity.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Critical.
    Critical,
    /// High.
    High,
    /// Medium.
    Medium,
    /// Low.
    Low,
    /// Informational.
    Info,
}

/// A reference to the report's scope (the Node).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ScopeRef {
    /// `v1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// `Node`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The Node's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The Node's uid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
}

/// When a result was found, as protobuf's `Timestamp`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ResultTime {
    /// Seconds since the Unix epoch.
    pub seconds: i64,
    /// Nanoseconds within the second.
    pub nanos: i32,
}

/// One result: one check of one policy on the report's node.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ReportResult {
    /// The policy's name.
    pub policy: String,
    /// The check (a name of `FAULTS.md`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// The outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Outcome>,
    /// How bad a failure is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<Severity>,
    /// `Node networking`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// [`SOURCE`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// What was found and what is done about it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Scored results count in the summary's pass/fail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scored: Option<bool>,
    /// When the result took its current outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<ResultTime>,
    /// Finding ids, the last action, the policy's mode.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub properties: BTreeMap<String, String>,
}

/// The count of each outcome.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Passed.
    #[serde(default)]
    pub pass: u32,
    /// Failed.
    #[serde(default)]
    pub fail: u32,
    /// Warned.
    #[serde(default)]
    pub warn: u32,
    /// Not evaluated because of an error.
    #[serde(default)]
    pub error: u32,
    /// Skipped.
    #[serde(default)]
    pub skip: u32,
}

impl Summary {
    /// The counts of `results`.
    pub fn of(results: &[ReportResult]) -> Self {
        let mut summary = Self::default();
        for result in results {
            let count = match result.result {
                Some(Outcome::Pass) => &mut summary.pass,
                Some(Outcome::Fail) => &mut summary.fail,
                Some(Outcome::Warn) => &mut summary.warn,
                Some(Outcome::Error) => &mut summary.error,
                Some(Outcome::Skip) | None => &mut summary.skip,
            };
            *count = count.saturating_add(1);
        }
        summary
    }
}

/// An `openreports.io/v1alpha1` `ClusterReport` (fields outside the spec, as the API has them).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ClusterReport {
    /// Standard object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The Node the report is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<ScopeRef>,
    /// [`SOURCE`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The counts of each outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<Summary>,
    /// One per policy and check.
    #[serde(default)]
    pub results: Vec<ReportResult>,
}

impl kube::Resource for ClusterReport {
    type DynamicType = ();
    type Scope = kube::core::ClusterResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        KIND.into()
    }
    fn group(_: &()) -> Cow<'_, str> {
        GROUP.into()
    }
    fn version(_: &()) -> Cow<'_, str> {
        VERSION.into()
    }
    fn api_version(_: &()) -> Cow<'_, str> {
        format!("{GROUP}/{VERSION}").into()
    }
    fn plural(_: &()) -> Cow<'_, str> {
        PLURAL.into()
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_serialises_as_the_openreports_api_has_it() {
        let result = ReportResult {
            policy: "baseline".into(),
            rule: Some("IpForward".into()),
            result: Some(Outcome::Fail),
            severity: Some(Severity::High),
            category: None,
            source: Some(SOURCE.into()),
            message: None,
            scored: Some(true),
            timestamp: Some(ResultTime {
                seconds: 10,
                nanos: 0,
            }),
            properties: BTreeMap::new(),
        };
        let report = ClusterReport {
            summary: Some(Summary::of(std::slice::from_ref(&result))),
            results: vec![result],
            ..ClusterReport::default()
        };
        let json = serde_json::to_value(&report).expect("serialises");
        assert_eq!(json["results"][0]["result"], "fail");
        assert_eq!(json["results"][0]["severity"], "high");
        assert_eq!(json["results"][0]["timestamp"]["seconds"], 10);
        assert_eq!(json["summary"]["fail"], 1);
        assert_eq!(json["summary"]["pass"], 0);
        let back: ClusterReport = serde_json::from_value(json).expect("parses");
        assert_eq!(back, report);
    }
}
