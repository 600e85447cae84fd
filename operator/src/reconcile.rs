//! One pass: read the stores, decide (pure), take the cluster actions, write each policy's
//! status (one merge patch per policy, only when it changed), then the reports' orders (only
//! when they changed). Records are written before answered orders leave a report, so a crash
//! in between loses nothing.

use crate::act;
use crate::context::{Context, State};
use crate::decide::{self, Decision, Inputs};
use crate::ledger::{Entry, Ledger};
use crate::model::NodeInfo;
use crate::record;
use crate::status;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::controller::Action;
use netheal_crds::conditions::{is_condition_true, types};
use netheal_crds::{NetworkHealthPolicy, NodeNetworkReport};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Passes closer together than this, with no change in between, are skipped (several
/// policies' reconciles after one change make one pass).
const COALESCE: Duration = Duration::from_secs(1);

/// A pass failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API write failed.
    #[error("{what}: {source}")]
    Api {
        /// What was being written.
        what: String,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
}

/// What one pass did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct PassReport {
    /// The pass was skipped: another one just ran on the same state.
    pub skipped: bool,
    /// Policy statuses written.
    pub statuses_written: usize,
    /// Reports whose orders were written.
    pub orders_written: usize,
    /// Cluster actions taken.
    pub cluster_actions: usize,
}

/// The controller's reconcile: one pass for every policy, then a periodic requeue.
pub async fn reconcile(
    _policy: Arc<NetworkHealthPolicy>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    run_pass(&ctx, false).await?;
    Ok(Action::requeue(ctx.requeue))
}

/// The controller's error policy: count, log, retry soon.
pub fn error_policy(_policy: Arc<NetworkHealthPolicy>, err: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.reconcile_errors.inc();
    tracing::warn!(error = %err, "pass failed; retrying");
    Action::requeue(Duration::from_secs(5))
}

/// Run one pass (unless `force` is false and one just ran with nothing changed since).
pub async fn run_pass(ctx: &Context, force: bool) -> Result<PassReport, Error> {
    let started = Instant::now();
    let mut state = ctx.state.lock().await;
    let epoch = ctx.trigger.epoch();
    if !force
        && let Some((last_epoch, at)) = state.last_pass
        && last_epoch == epoch
        && at.elapsed() < COALESCE
    {
        return Ok(PassReport {
            skipped: true,
            ..Default::default()
        });
    }
    state.last_pass = Some((epoch, Instant::now()));
    let result = pass(ctx, &mut state).await;
    ctx.metrics
        .reconcile_duration
        .observe(started.elapsed().as_secs_f64());
    result
}

async fn pass(ctx: &Context, state: &mut State) -> Result<PassReport, Error> {
    let policies = ctx.stores.policies.state();
    let reports = ctx.stores.reports.state();
    let nodes: Vec<NodeInfo> = ctx
        .stores
        .nodes
        .state()
        .iter()
        .map(|n| NodeInfo::from_node(n))
        .collect();
    let pods = ctx.stores.pods.state();
    let now = Timestamp::from_second(Timestamp::now().as_second()).unwrap_or(Timestamp::UNIX_EPOCH);

    let ledger = state.ledger.get_or_insert_with(|| {
        Ledger::rebuild(
            policies.iter().map(AsRef::as_ref),
            reports.iter().map(AsRef::as_ref),
        )
    });
    ledger.prune(now);
    let decision = decide::decide(&Inputs {
        policies: &policies,
        reports: &reports,
        nodes: &nodes,
        pods: &pods,
        ledger,
        now,
    });
    ledger.apply(&decision);

    let by_name: BTreeMap<&str, &NetworkHealthPolicy> = policies
        .iter()
        .filter_map(|p| Some((p.metadata.name.as_deref()?, p.as_ref())))
        .collect();
    let mut report = PassReport::default();

    for recorded in &decision.recorded {
        record::action(
            ctx,
            &recorded.policy,
            by_name.get(recorded.policy.as_str()).copied(),
            &recorded.record,
        )
        .await;
        state
            .outbox
            .entry(recorded.policy.clone())
            .or_default()
            .push(recorded.record.clone());
    }
    for (node, id) in &decision.approved {
        tracing::info!(node, id, "order approved");
    }
    for action in &decision.cluster_actions {
        let done = act::execute(&ctx.client, action, now).await;
        if let Some(ledger) = state.ledger.as_mut() {
            ledger.push(Entry::from_record(&action.policy, &done));
        }
        record::action(
            ctx,
            &action.policy,
            by_name.get(action.policy.as_str()).copied(),
            &done,
        )
        .await;
        state
            .outbox
            .entry(action.policy.clone())
            .or_default()
            .push(done);
        report.cluster_actions += 1;
    }

    let mut errors = Vec::new();
    write_statuses(
        ctx,
        state,
        &policies,
        &decision,
        now,
        &mut report,
        &mut errors,
    )
    .await;
    if errors.is_empty() {
        // Only once the records are safe in the statuses may answered orders leave a report.
        write_orders(ctx, state, &reports, &decision, &mut report, &mut errors).await;
    }
    publish_gauges(ctx, &decision);

    match errors.into_iter().next() {
        Some(err) => Err(err),
        None => Ok(report),
    }
}

async fn write_statuses(
    ctx: &Context,
    state: &mut State,
    policies: &[Arc<NetworkHealthPolicy>],
    decision: &Decision,
    now: Timestamp,
    report: &mut PassReport,
    errors: &mut Vec<Error>,
) {
    let now = Time(now);
    for policy in policies {
        let Some(name) = policy.metadata.name.as_deref() else {
            continue;
        };
        let Some(outcome) = decision.policies.get(name) else {
            continue;
        };
        let store_rv = policy.metadata.resource_version.clone();
        let base = match state.written_status.get(name) {
            Some((rv, written)) if *rv == store_rv => Some(written),
            _ => policy.status.as_ref(),
        };
        let records = state
            .outbox
            .get(name)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let new = status::build(base, outcome, records, &now);
        if base == Some(&new) {
            state.outbox.remove(name);
            continue;
        }
        let was_flapping = base.is_some_and(|b| is_condition_true(&b.conditions, types::FLAPPING));
        match act::patch_status(&ctx.client, name, &new).await {
            Ok(_) => {
                report.statuses_written += 1;
                state.outbox.remove(name);
                if !was_flapping && is_condition_true(&new.conditions, types::FLAPPING) {
                    for flap in &outcome.flapping {
                        let event = record::flapping_event(
                            &flap.node,
                            flap.check.as_str(),
                            &flap.target,
                            flap.fixes,
                        );
                        record::publish(ctx, Some(policy), &flap.node, &event).await;
                    }
                }
                state
                    .written_status
                    .insert(name.to_string(), (store_rv, new));
            }
            Err(source) => errors.push(Error::Api {
                what: format!("status of policy {name}"),
                source,
            }),
        }
    }
    state.outbox.retain(|name, _| {
        policies
            .iter()
            .any(|p| p.metadata.name.as_deref() == Some(name))
    });
    state
        .written_status
        .retain(|name, _| decision.policies.contains_key(name));
}

async fn write_orders(
    ctx: &Context,
    state: &mut State,
    reports: &[Arc<NodeNetworkReport>],
    decision: &Decision,
    report: &mut PassReport,
    errors: &mut Vec<Error>,
) {
    let by_node: BTreeMap<&str, &NodeNetworkReport> = reports
        .iter()
        .filter_map(|r| Some((r.metadata.name.as_deref()?, r.as_ref())))
        .collect();
    for (node, orders) in &decision.orders {
        let Some(current) = by_node.get(node.as_str()) else {
            continue;
        };
        let store_rv = current.metadata.resource_version.clone();
        let have = match state.written_orders.get(node) {
            Some((rv, written)) if *rv == store_rv => written,
            _ => &current.spec.remediations,
        };
        if have == orders {
            continue;
        }
        match act::patch_orders(&ctx.client, node, orders).await {
            Ok(_) => {
                report.orders_written += 1;
                state
                    .written_orders
                    .insert(node.clone(), (store_rv, orders.clone()));
            }
            Err(source) => errors.push(Error::Api {
                what: format!("orders of report {node}"),
                source,
            }),
        }
    }
    state
        .written_orders
        .retain(|node, _| by_node.contains_key(node.as_str()));
}

fn publish_gauges(ctx: &Context, decision: &Decision) {
    let mut open = BTreeMap::new();
    for (policy, outcome) in &decision.policies {
        for (check, n) in &outcome.open_by_check {
            open.insert((policy.clone(), check.as_str().to_string()), i64::from(*n));
        }
        ctx.metrics
            .flapping
            .get_or_create(&crate::metrics::PolicyLabels {
                policy: policy.clone(),
            })
            .set(outcome.flapping.len() as i64);
    }
    ctx.metrics.set_open_findings(open);
    ctx.metrics
        .set_policies(ctx.stores.policies.state().iter().filter_map(|p| {
            let name = p.metadata.name.clone()?;
            let mode = match p.spec.mode {
                netheal_crds::Mode::DryRun => "DryRun",
                netheal_crds::Mode::Enforce => "Enforce",
            };
            Some((name, mode.to_string()))
        }));
    ctx.metrics
        .nodes_in_flight
        .set(decision.nodes_in_flight.len() as i64);
}
