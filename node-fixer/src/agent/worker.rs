//! The agent's loop body: one "cycle" selects the policy, scans, executes the approved
//! orders (re-scanning after a fix), builds the status and writes it when it is worth a write.
//! The engine is behind the [`Engine`] trait so the cycle can be tested without a kernel.

use super::kube_io::{WriteError, write_status};
use super::metrics::Metrics;
use super::orders::{Plan, plan};
use super::policy_select::{Effective, NamedPolicy, no_policy_message, select};
use super::status::{
    ScanFacts, WriteDecision, build_status, decide_write, merge_results, now_seconds,
};
use crate::checks::calico_blocks::{CalicoBlock, block_from_spec};
use crate::engine::{ClusterFacts, EngineConfig, ScanOutput};
use k8s_openapi::api::core::v1::{Node, Service};
use kube::Client;
use kube::api::DynamicObject;
use kube::runtime::reflector::{ObjectRef, Store};
use netheal_crds::{
    Finding, NetworkHealthPolicy, NetworkHealthPolicySpec, NodeNetworkReport,
    NodeNetworkReportStatus, RemediationOrder, RemediationResult, finding_id,
};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// The blocking engine the agent drives (the real one is [`RealEngine`]).
pub trait Engine: Send + Sync + 'static {
    /// `node_fixer::engine::scan`.
    fn scan(&self, policy: &NetworkHealthPolicySpec, config: &EngineConfig) -> ScanOutput;
    /// `node_fixer::engine::execute`.
    fn execute(
        &self,
        order: &RemediationOrder,
        policy: &NetworkHealthPolicySpec,
        config: &EngineConfig,
    ) -> RemediationResult;
}

/// The engine of this crate.
pub struct RealEngine;

impl Engine for RealEngine {
    fn scan(&self, policy: &NetworkHealthPolicySpec, config: &EngineConfig) -> ScanOutput {
        crate::engine::scan(policy, config)
    }

    fn execute(
        &self,
        order: &RemediationOrder,
        policy: &NetworkHealthPolicySpec,
        config: &EngineConfig,
    ) -> RemediationResult {
        crate::engine::execute(order, policy, config)
    }
}

/// The reflector stores the cycle reads.
#[derive(Clone)]
pub struct Stores {
    /// Every NetworkHealthPolicy.
    pub policies: Store<NetworkHealthPolicy>,
    /// Every Node (slimmed).
    pub nodes: Store<Node>,
    /// This node's report (watched by name).
    pub reports: Store<NodeNetworkReport>,
    /// The Services whose cluster IPs kube-proxy must have programmed (one store each,
    /// watched by name).
    pub services: Vec<Store<Service>>,
    /// Calico's `BlockAffinity` objects, on a cluster whose API serves them.
    pub calico_blocks: Option<Store<DynamicObject>>,
    /// True once the reports watch listed: only then are orders executed, so that answers
    /// recorded before a restart are known.
    pub reports_ready: Arc<AtomicBool>,
}

/// Fixed settings of the cycle.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// This node's name.
    pub node: String,
    /// Engine settings (the cluster facts are refreshed every cycle).
    pub engine: EngineConfig,
    /// How often a status whose only changes are timestamps is written anyway.
    pub refresh: Duration,
}

/// What one cycle did (for logs and tests).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CycleReport {
    /// Orders run through the engine.
    pub executed: Vec<String>,
    /// Orders answered without running.
    pub answered: Vec<String>,
    /// The write decision (`None`: writes are backing off).
    pub write: Option<WriteDecision>,
    /// The write failed.
    pub write_error: Option<String>,
    /// Open findings.
    pub open_findings: usize,
}

/// Exponential backoff of failed writes: 1 s doubling to 30 s, the ceiling of the watches'
/// backoff (client-go's), so that a node cut off for a long time catches up within 30 s of the
/// API server coming back.
#[derive(Debug, Default)]
struct Backoff {
    delay: Option<Duration>,
    until: Option<Instant>,
}

impl Backoff {
    const FIRST: Duration = Duration::from_secs(1);
    const MAX: Duration = Duration::from_secs(30);

    fn failed(&mut self, now: Instant) {
        let next = self.delay.map_or(Self::FIRST, |d| (d * 2).min(Self::MAX));
        self.delay = Some(next);
        self.until = Some(now + next);
    }

    fn succeeded(&mut self) {
        *self = Self::default();
    }

    fn blocks(&self, now: Instant) -> bool {
        self.until.is_some_and(|u| now < u)
    }
}

/// The agent's state between cycles.
pub struct Worker {
    config: WorkerConfig,
    client: Client,
    stores: Stores,
    engine: Arc<dyn Engine>,
    metrics: Arc<Metrics>,
    /// Extra error lines (e.g. the netlink subscription failed).
    pub extra_errors: Vec<String>,
    last_built: Option<NodeNetworkReportStatus>,
    written: Option<(NodeNetworkReportStatus, Instant)>,
    backoff: Backoff,
}

impl Worker {
    /// A worker that has not scanned yet.
    pub fn new(
        config: WorkerConfig,
        client: Client,
        stores: Stores,
        engine: Arc<dyn Engine>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            config,
            client,
            stores,
            engine,
            metrics,
            extra_errors: Vec::new(),
            last_built: None,
            written: None,
            backoff: Backoff::default(),
        }
    }

    /// When a failed write may be retried (`None`: nothing waits for a retry).
    pub fn retry_at(&self) -> Option<Instant> {
        let pending = match (&self.last_built, &self.written) {
            (Some(_), None) => true,
            (Some(b), Some((w, _))) => super::status::materially_changed(w, b),
            _ => false,
        };
        if pending { self.backoff.until } else { None }
    }

    fn report(&self) -> Option<Arc<NodeNetworkReport>> {
        self.stores.reports.get(&ObjectRef::new(&self.config.node))
    }

    fn this_node(&self) -> Option<Arc<Node>> {
        self.stores.nodes.get(&ObjectRef::new(&self.config.node))
    }

    /// The blocks of the `BlockAffinity` objects in force, and an error for each object that
    /// is not what Calico writes (reported, never fatal).
    fn calico_blocks(&self) -> (Vec<CalicoBlock>, Vec<String>) {
        let mut blocks = Vec::new();
        let mut errors = Vec::new();
        for object in self.stores.calico_blocks.iter().flat_map(|s| s.state()) {
            let name = object.metadata.name.as_deref().unwrap_or_default();
            match block_from_spec(name, &object.data["spec"]) {
                Ok(Some(block)) => blocks.push(block),
                Ok(None) => {}
                Err(e) => errors.push(format!("Calico blocks: {e}")),
            }
        }
        blocks.sort_by(|a, b| (&a.node, a.cidr).cmp(&(&b.node, b.cidr)));
        (blocks, errors)
    }

    fn engine_config(&self) -> (EngineConfig, Vec<String>) {
        let mut cfg = self.config.engine.clone();
        let (calico_blocks, errors) = self.calico_blocks();
        cfg.cluster = ClusterFacts {
            this_node: Some(self.config.node.clone()),
            nodes: self
                .stores
                .nodes
                .state()
                .iter()
                .map(|n| (**n).clone())
                .collect(),
            services: self
                .stores
                .services
                .iter()
                .flat_map(|store| store.state())
                .map(|s| (*s).clone())
                .collect(),
            calico_blocks,
        };
        (cfg, errors)
    }

    async fn scan(&self, effective: Option<&Effective>, cfg: &EngineConfig) -> ScanOutput {
        let Some(effective) = effective else {
            return ScanOutput::default();
        };
        let engine = self.engine.clone();
        let spec = effective.spec.clone();
        let cfg = cfg.clone();
        match tokio::task::spawn_blocking(move || engine.scan(&spec, &cfg)).await {
            Ok(out) => out,
            Err(e) => ScanOutput {
                errors: vec![format!("scan failed: {e}")],
                ..Default::default()
            },
        }
    }

    /// One cycle. `shutdown` stops executing further orders (the one in flight finishes).
    pub async fn cycle(&mut self, shutdown: &CancellationToken) -> CycleReport {
        let mut out = CycleReport::default();
        let policies: Vec<NamedPolicy> = self
            .stores
            .policies
            .state()
            .iter()
            .filter_map(|p| NamedPolicy::from_object(p))
            .collect();
        let labels: BTreeMap<String, String> = self
            .this_node()
            .and_then(|n| n.metadata.labels.clone())
            .unwrap_or_default();
        let selection = select(&policies, &labels);
        let effective = selection.effective.as_ref();
        let applying: Vec<NamedPolicy> = policies
            .iter()
            .filter(|p| effective.is_some_and(|e| e.applying.contains(&p.name)))
            .cloned()
            .collect();
        let (cfg, cluster_errors) = self.engine_config();
        let mut scan = self.scan(effective, &cfg).await;

        // Orders: only once the report's listing is known (answers from before a restart).
        let report = self.report();
        let orders: Vec<RemediationOrder> = report
            .as_ref()
            .map(|r| r.spec.remediations.clone())
            .unwrap_or_default();
        let mut recorded: Vec<RemediationResult> = report
            .as_ref()
            .and_then(|r| r.status.as_ref())
            .map(|s| s.results.clone())
            .unwrap_or_default();
        if let Some(built) = &self.last_built {
            for r in &built.results {
                if !recorded.iter().any(|x| x.id == r.id) {
                    recorded.push(r.clone());
                }
            }
        }
        let mut new_results = Vec::new();
        if self.stores.reports_ready.load(Ordering::Acquire) && !orders.is_empty() {
            let answered: HashSet<String> = recorded.iter().map(|r| r.id.clone()).collect();
            // The findings the orders name, as this scan observed them (the rest, possibly
            // 100k stale neighbours, are not kept).
            let named: HashSet<&str> = orders.iter().map(|o| o.finding_id.as_str()).collect();
            let observed: HashMap<String, Cow<'_, netheal_crds::Finding>> = scan
                .findings
                .iter()
                .filter_map(|f| {
                    let id = if f.id.is_empty() {
                        finding_id(f.check, &f.target)
                    } else {
                        f.id.clone()
                    };
                    named.contains(id.as_str()).then_some((id, f))
                })
                .collect();
            let open: HashMap<String, &netheal_crds::Finding> = observed
                .iter()
                .map(|(id, f)| (id.clone(), f.as_ref()))
                .collect();
            let now = now_seconds(jiff::Timestamp::now());
            let mut fixed = false;
            for p in plan(&orders, &answered, &open, &applying, &now) {
                if shutdown.is_cancelled() {
                    break;
                }
                let result = match p {
                    Plan::Answer(r) => {
                        out.answered.push(r.id.clone());
                        r
                    }
                    Plan::Execute { order, policy } => {
                        let engine = self.engine.clone();
                        let cfg = cfg.clone();
                        let fallback = order.clone();
                        tracing::info!(order = %order.id, action = %order.action, target = %order.target, dry_run = order.dry_run, "executing order");
                        let r = tokio::task::spawn_blocking(move || {
                            engine.execute(&order, &policy, &cfg)
                        })
                        .await
                        .unwrap_or_else(|e| {
                            super::orders::answer(
                                &fallback,
                                netheal_crds::Outcome::Failed,
                                format!("execution failed: {e}"),
                                &now,
                            )
                        });
                        tracing::info!(order = %r.id, outcome = %r.outcome, before = %r.before, after = %r.after, "order answered");
                        out.executed.push(r.id.clone());
                        fixed = true;
                        r
                    }
                };
                self.metrics.fixed(&result);
                new_results.push(result);
            }
            if fixed {
                // Re-scan so the fixed finding clears in the same write.
                scan = self.scan(effective, &cfg).await;
            }
        }
        let results = merge_results(&recorded, &new_results, &orders);

        let mut errors = selection.errors.clone();
        if effective.is_none() {
            errors.push(no_policy_message(&self.config.node));
        }
        errors.extend(self.extra_errors.iter().cloned());
        errors.extend(cluster_errors);
        errors.extend(scan.errors);
        self.metrics.scanned(scan.duration, &scan.findings);
        let facts = ScanFacts {
            findings: scan.findings,
            iptables_backend: scan.iptables_backend,
            errors,
            duration: scan.duration,
        };
        let previous: Vec<Finding> = match &self.last_built {
            Some(b) => b.findings.clone(),
            None => report
                .as_ref()
                .and_then(|r| r.status.as_ref())
                .map(|s| s.findings.clone())
                .unwrap_or_default(),
        };
        let now = now_seconds(jiff::Timestamp::now());
        let status = build_status(&previous, facts, effective, results, &orders, &now);
        out.open_findings = status.open_findings as usize;
        if !self.stores.reports_ready.load(Ordering::Acquire) {
            // Until the report is listed, its recorded results and firstSeen times are
            // unknown: a write now would erase them.
            return out;
        }
        self.last_built = Some(status.clone());

        let instant = Instant::now();
        if self.backoff.blocks(instant) {
            return out;
        }
        let decision = decide_write(
            self.written.as_ref().map(|(s, _)| s),
            self.written
                .as_ref()
                .map(|(_, at)| instant.duration_since(*at)),
            &status,
            self.config.refresh,
        );
        out.write = Some(decision);
        let uid = self.this_node().and_then(|n| n.metadata.uid.clone());
        if decision.writes() && uid.is_none() && report.is_none() {
            // The report cannot be created without its owner: the Node's watch event wakes
            // the next cycle.
            out.write_error = Some(WriteError::NodeUnknown(self.config.node.clone()).to_string());
            return out;
        }
        if decision.writes() {
            match write_status(&self.client, &self.config.node, uid.as_deref(), &status).await {
                Ok(()) => {
                    self.backoff.succeeded();
                    self.written = Some((status, Instant::now()));
                    self.metrics
                        .reported(jiff::Timestamp::now().as_millisecond() as f64 / 1000.0);
                }
                Err(e @ WriteError::NodeUnknown(_)) => {
                    tracing::info!(error = %e, "waiting for the Node before creating the report");
                    out.write_error = Some(e.to_string());
                }
                Err(e) => {
                    self.metrics.api_error();
                    tracing::warn!(error = %e, "report write failed; backing off");
                    self.backoff.failed(Instant::now());
                    out.write_error = Some(e.to_string());
                }
            }
        }
        out
    }

    /// Write the last built status once more if it was not written (shutdown path).
    pub async fn flush(&mut self) {
        let Some(built) = self.last_built.clone() else {
            return;
        };
        if self
            .written
            .as_ref()
            .is_some_and(|(w, _)| !super::status::materially_changed(w, &built))
        {
            return;
        }
        let uid = self.this_node().and_then(|n| n.metadata.uid.clone());
        if let Err(e) = write_status(&self.client, &self.config.node, uid.as_deref(), &built).await
        {
            tracing::warn!(error = %e, "final report write failed");
        }
    }
}
