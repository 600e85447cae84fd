//! OpenReports output: where the API server serves `openreports.io/v1alpha1` `clusterreports`
//! (found by discovery, looked up again every [`PROBE_INTERVAL`] while it is not), keep one
//! `ClusterReport` per node, scoped to and owned by that Node, with one result per policy and
//! check ([`build`]). A report is written (server-side apply) only when its results changed,
//! and deleted when no policy selects its node any more. netheal never installs the CRD.

pub mod build;

use crate::context::{Context, WriteError};
use crate::decide::Decision;
use crate::ledger::Ledger;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use netheal_crds::NetworkHealthPolicy;
use netheal_crds::openreports::{self, ClusterReport};
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

/// How often an API server without the OpenReports API is asked again.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(60);
/// The field manager of netheal's server-side applies.
pub const FIELD_MANAGER: &str = "netheal-operator";

/// The leader's OpenReports state: whether the API is served, and each node's report as last
/// written (or found at the first pass).
#[derive(Default)]
pub struct Writer {
    served: Option<bool>,
    probed: Option<Instant>,
    /// Node → its report as the API server has it (as far as this replica knows).
    written: HashMap<String, ClusterReport>,
    seeded: bool,
}

impl Writer {
    /// True when the API is served (asking discovery when it is time to).
    pub async fn served(&mut self, ctx: &Context) -> bool {
        if !ctx.openreports {
            return false;
        }
        let due = self.probed.is_none_or(|at| at.elapsed() >= PROBE_INTERVAL);
        if self.served != Some(true) && due {
            self.probed = Some(Instant::now());
            let served = discover(ctx).await;
            if Some(served) != self.served {
                tracing::info!(
                    served,
                    "OpenReports API {}/{} {}",
                    openreports::GROUP,
                    openreports::VERSION,
                    if served {
                        "found: writing a ClusterReport per node"
                    } else {
                        "not served"
                    }
                );
            }
            self.served = Some(served);
            if !served {
                self.seeded = false;
                self.written.clear();
            }
        }
        self.served == Some(true)
    }

    /// Bring every node's report in line with the decision.
    pub async fn write(
        &mut self,
        ctx: &Context,
        decision: &Decision,
        policies: &BTreeMap<&str, &NetworkHealthPolicy>,
        ledger: &Ledger,
        now: Timestamp,
    ) -> Result<Writes, WriteError> {
        let api: Api<ClusterReport> = Api::all(ctx.client.clone());
        let mut writes = Writes::default();
        if !self.seeded {
            let selector = format!("{}={}", build::MANAGED_BY.0, build::MANAGED_BY.1);
            match api.list(&ListParams::default().labels(&selector)).await {
                Ok(list) => {
                    self.written = list
                        .items
                        .into_iter()
                        .filter_map(|r| Some((node_of(&r)?, r)))
                        .collect();
                    self.seeded = true;
                }
                Err(err) => return Err(self.failed("list the ClusterReports", err)),
            }
        }
        let uids: HashMap<String, String> = ctx
            .stores
            .nodes
            .state()
            .iter()
            .filter_map(|n| Some((n.metadata.name.clone()?, n.metadata.uid.clone()?)))
            .collect();
        for (node, view) in &decision.node_views {
            let Some(uid) = uids.get(node) else { continue };
            if view.policies.is_empty() {
                continue;
            }
            let previous = self.written.get(node);
            let results = build::results(
                node,
                view,
                &build::Facts {
                    policies,
                    ledger,
                    previous: previous.map(|r| r.results.as_slice()).unwrap_or_default(),
                    now,
                },
            );
            let want = build::report(node, uid, results);
            if previous.is_some_and(|have| same_content(have, &want)) {
                continue;
            }
            let name = build::report_name(node);
            let body = match applied_body(&want) {
                Ok(body) => body,
                Err(err) => {
                    tracing::warn!(node, error = %err, "ClusterReport not serialisable");
                    continue;
                }
            };
            let params = PatchParams::apply(FIELD_MANAGER).force();
            match ctx
                .write(
                    format!("ClusterReport {name}"),
                    api.patch(&name, &params, &Patch::Apply(body)),
                )
                .await
            {
                Ok(_) => {
                    tracing::info!(report = %name, summary = ?want.summary, "ClusterReport written");
                    writes.applied += 1;
                    self.written.insert(node.clone(), want);
                }
                Err(err @ WriteError::NotLeader { .. }) => return Err(err),
                Err(WriteError::Api { source, .. }) if is_not_found(&source) => {
                    self.served = None;
                    self.probed = None;
                    return Ok(writes);
                }
                Err(err) => {
                    tracing::warn!(node, error = %err, "ClusterReport not written");
                    writes.failed += 1;
                }
            }
        }
        let stale: Vec<String> = self
            .written
            .keys()
            .filter(|node| {
                decision
                    .node_views
                    .get(node.as_str())
                    .is_none_or(|v| v.policies.is_empty())
            })
            .cloned()
            .collect();
        for node in stale {
            let name = build::report_name(&node);
            match ctx
                .write(
                    format!("delete ClusterReport {name}"),
                    api.delete(&name, &DeleteParams::default()),
                )
                .await
            {
                Ok(_) => {
                    tracing::info!(report = %name, "ClusterReport deleted: no policy selects its node");
                    writes.deleted += 1;
                    self.written.remove(&node);
                }
                Err(WriteError::Api { source, .. }) if is_not_found(&source) => {
                    self.written.remove(&node);
                }
                Err(err @ WriteError::NotLeader { .. }) => return Err(err),
                Err(err) => {
                    tracing::warn!(node, error = %err, "ClusterReport not deleted");
                    writes.failed += 1;
                }
            }
        }
        Ok(writes)
    }

    fn failed(&mut self, what: &str, err: kube::Error) -> WriteError {
        if is_not_found(&err) {
            self.served = None;
            self.probed = None;
        }
        WriteError::Api {
            what: what.to_string(),
            source: err,
        }
    }
}

/// What one pass wrote.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Writes {
    /// Reports created or changed.
    pub applied: usize,
    /// Reports deleted.
    pub deleted: usize,
    /// Writes that failed (logged; tried again next pass).
    pub failed: usize,
}

/// Is the `clusterreports` resource of `openreports.io/v1alpha1` served?
async fn discover(ctx: &Context) -> bool {
    let group_version = format!("{}/{}", openreports::GROUP, openreports::VERSION);
    match tokio::time::timeout(
        ctx.api_timeout,
        ctx.client.list_api_group_resources(&group_version),
    )
    .await
    {
        Ok(Ok(list)) => list.resources.iter().any(|r| r.name == openreports::PLURAL),
        Ok(Err(err)) => {
            if !is_not_found(&err) {
                tracing::warn!(error = %err, "discovery of {group_version} failed");
            }
            false
        }
        Err(_) => false,
    }
}

fn is_not_found(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(status) if status.code == 404)
}

/// The node a report netheal wrote is about.
fn node_of(report: &ClusterReport) -> Option<String> {
    report
        .metadata
        .labels
        .as_ref()?
        .get(build::NODE_LABEL)
        .cloned()
}

/// True when `have` already says what `want` says.
fn same_content(have: &ClusterReport, want: &ClusterReport) -> bool {
    have.results == want.results
        && have.scope == want.scope
        && have.summary == want.summary
        && have.source == want.source
        && have.metadata.owner_references == want.metadata.owner_references
}

/// The server-side apply body: the report with its apiVersion and kind.
fn applied_body(report: &ClusterReport) -> Result<serde_json::Value, serde_json::Error> {
    let mut body = serde_json::to_value(report)?;
    if let Some(map) = body.as_object_mut() {
        map.insert(
            "apiVersion".into(),
            format!("{}/{}", openreports::GROUP, openreports::VERSION).into(),
        );
        map.insert("kind".into(), openreports::KIND.into());
    }
    Ok(body)
}
