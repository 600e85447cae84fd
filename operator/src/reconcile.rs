//! One pass: read the stores, decide (pure), take the cluster actions (each written ahead into
//! its node's `spec.history`), write each policy's status (one merge patch per policy, only
//! when it changed), then the reports' orders and history (only when they changed). Records
//! are written before answered orders leave a report, so a crash in between loses nothing.
//! Every write first checks that this replica still leads and is cut off after the API
//! timeout: a pass that lost the lease stops writing.

use crate::act;
pub use crate::context::WriteError as Error;
use crate::context::{Context, State, WriteError};
use crate::decide::cluster_actions::ClusterAction;
use crate::decide::memo::Memo;
use crate::decide::{self, Decision, Inputs};
use crate::ledger::{Entry, Ledger};
use crate::record;
use crate::status;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::controller::Action;
use netheal_crds::conditions::{is_condition_true, types};
use netheal_crds::{NetworkHealthPolicy, NodeNetworkReport, NodeNetworkReportSpec};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::Instrument;

/// Passes closer together than this, with no change in between, are skipped (several
/// policies' reconciles after one change make one pass).
const COALESCE: Duration = Duration::from_secs(1);

/// How often a pass decides every node afresh instead of reusing the unchanged quiet nodes'
/// decisions (a resync of the memo; the decisions are the same either way).
pub const FULL_DECISION_INTERVAL: Duration = Duration::from_secs(300);

/// What one pass did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct PassReport {
    /// The pass was skipped: another one just ran on the same state.
    pub skipped: bool,
    /// Policy statuses written.
    pub statuses_written: usize,
    /// Reports whose spec (orders, history) was written.
    pub orders_written: usize,
    /// Cluster actions taken.
    pub cluster_actions: usize,
    /// OpenReports `ClusterReport`s created, changed or deleted.
    pub cluster_reports_written: usize,
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
    let span = tracing::debug_span!("pass", epoch);
    let result = pass(ctx, &mut state).instrument(span.clone()).await;
    let elapsed = started.elapsed();
    ctx.metrics
        .reconcile_duration
        .observe(elapsed.as_secs_f64());
    if let Ok(done) = &result {
        span.in_scope(|| {
            tracing::debug!(
                total_ms = elapsed.as_secs_f64() * 1e3,
                statuses_written = done.statuses_written,
                orders_written = done.orders_written,
                cluster_actions = done.cluster_actions,
                "pass finished"
            );
        });
    }
    result
}

async fn pass(ctx: &Context, state: &mut State) -> Result<PassReport, Error> {
    let policies = ctx.stores.policies.state();
    let reports = ctx.stores.reports.state();
    let nodes = state.nodes.read(ctx.stores.nodes.state());
    let pods = ctx.stores.pods.state();
    let now = Timestamp::from_second(Timestamp::now().as_second()).unwrap_or(Timestamp::UNIX_EPOCH);
    let node_views = state.openreports.served(ctx).await;

    let ledger = state.ledger.get_or_insert_with(|| {
        Ledger::rebuild(
            policies.iter().map(AsRef::as_ref),
            reports.iter().map(AsRef::as_ref),
        )
    });
    ledger.prune(now);
    let (memo, emptied) = &mut state.memo;
    let full = emptied.is_none_or(|at| at.elapsed() >= FULL_DECISION_INTERVAL);
    if full {
        *memo = Memo::default();
        *emptied = Some(Instant::now());
    }
    let deciding = Instant::now();
    let decision = decide::decide_with(
        &Inputs {
            policies: &policies,
            reports: &reports,
            nodes,
            pods: &pods,
            ledger,
            now,
            node_views,
        },
        memo,
    );
    tracing::debug!(
        decide_ms = deciding.elapsed().as_secs_f64() * 1e3,
        full,
        delta = memo.last_was_delta(),
        reused_nodes = decision.reused_nodes,
        findings = decision
            .policies
            .values()
            .map(|p| p.total_findings)
            .sum::<u32>(),
        "decided"
    );
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
        write_ahead(ctx, state, &reports, action, now).await?;
        let done =
            match tokio::time::timeout(ctx.api_timeout, act::execute(&ctx.client, action, now))
                .await
            {
                Ok(done) => done,
                Err(_) => act::unanswered(action, now, ctx.api_timeout),
            };
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
        write_specs(ctx, state, &reports, &decision, &mut report, &mut errors).await;
    }
    if errors.is_empty()
        && node_views
        && let Some(ledger) = state.ledger.as_ref()
    {
        match state
            .openreports
            .write(ctx, &decision, &by_name, ledger, now)
            .await
        {
            Ok(writes) => report.cluster_reports_written = writes.applied + writes.deleted,
            Err(err) => errors.push(err),
        }
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
        let what = format!("status of policy {name}");
        match ctx
            .write(what, act::patch_status(&ctx.client, name, &new))
            .await
        {
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
            Err(err @ WriteError::NotLeader { .. }) => {
                errors.push(err);
                return;
            }
            Err(err) => errors.push(err),
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

/// The spec a report should carry: the decision's orders (or the ones it has) and the
/// ledger's history of that node.
fn wanted_spec(
    state: &State,
    node: &str,
    have: &NodeNetworkReportSpec,
    decision: &Decision,
) -> NodeNetworkReportSpec {
    NodeNetworkReportSpec {
        remediations: decision
            .orders
            .get(node)
            .cloned()
            .unwrap_or_else(|| have.remediations.clone()),
        history: state
            .ledger
            .as_ref()
            .map(|l| l.history(node))
            .unwrap_or_else(|| have.history.clone()),
    }
}

/// What the report of `node` holds as far as this replica knows (its last write while the
/// store has not caught up, else the store's).
fn current_spec<'a>(state: &'a State, report: &'a NodeNetworkReport) -> &'a NodeNetworkReportSpec {
    let node = report.metadata.name.as_deref().unwrap_or_default();
    match state.written_specs.get(node) {
        Some((rv, written)) if *rv == report.metadata.resource_version => written,
        _ => &report.spec,
    }
}

/// Write a cluster action into its node's `spec.history` before taking it (as `Failed`, the
/// outcome when nothing else is known), so that its cooldown holds even if this replica
/// stops before the action's record reaches a status.
async fn write_ahead(
    ctx: &Context,
    state: &mut State,
    reports: &[Arc<NodeNetworkReport>],
    action: &ClusterAction,
    now: Timestamp,
) -> Result<(), Error> {
    let Some(report) = reports
        .iter()
        .find(|r| r.metadata.name.as_deref() == Some(action.node.as_str()))
    else {
        return Ok(());
    };
    let Some(ledger) = state.ledger.as_ref() else {
        return Ok(());
    };
    let mut ahead = ledger.clone_node(&action.node);
    ahead.push(Entry::from_record(
        &action.policy,
        &act::unanswered(action, now, ctx.api_timeout),
    ));
    let have = current_spec(state, report).clone();
    let want = NodeNetworkReportSpec {
        remediations: have.remediations.clone(),
        history: ahead.history(&action.node),
    };
    let Some(patch) = act::spec_patch(&have, &want) else {
        return Ok(());
    };
    let what = format!("history of report {} before {}", action.node, action.id);
    ctx.write(
        what,
        act::patch_report_spec(&ctx.client, &action.node, patch),
    )
    .await?;
    state.written_specs.insert(
        action.node.clone(),
        (report.metadata.resource_version.clone(), want),
    );
    Ok(())
}

async fn write_specs(
    ctx: &Context,
    state: &mut State,
    reports: &[Arc<NodeNetworkReport>],
    decision: &Decision,
    report: &mut PassReport,
    errors: &mut Vec<Error>,
) {
    for current in reports {
        let Some(node) = current.metadata.name.as_deref() else {
            continue;
        };
        let have = current_spec(state, current);
        let want = wanted_spec(state, node, have, decision);
        let Some(patch) = act::spec_patch(have, &want) else {
            continue;
        };
        let what = format!("spec of report {node}");
        match ctx
            .write(what, act::patch_report_spec(&ctx.client, node, patch))
            .await
        {
            Ok(_) => {
                report.orders_written += 1;
                state.written_specs.insert(
                    node.to_string(),
                    (current.metadata.resource_version.clone(), want),
                );
            }
            Err(err @ WriteError::NotLeader { .. }) => {
                errors.push(err);
                return;
            }
            Err(err) => errors.push(err),
        }
    }
    state.written_specs.retain(|node, _| {
        reports
            .iter()
            .any(|r| r.metadata.name.as_deref() == Some(node.as_str()))
    });
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
