//! The engine: scan a node (probe → check) and execute one approved order (fix). Blocking
//! functions; async callers run them on `tokio::task::spawn_blocking`.

use crate::checks::{self, Findings, Input, peers::peers};
use crate::error::{OrderError, ProbeError};
use crate::fix::{self, FixOutcome, neighbour::Target, param};
use crate::netns::{self, netns_path};
use crate::probe::{self, ProbeSet, proc_sys_root};
use crate::snapshot::{Backend, IpFamily, Mac, Snapshot};
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use netheal_crds::{
    Action, Cni, Finding, NetworkHealthPolicySpec, Outcome, RemediationOrder, RemediationResult,
};
use std::borrow::Borrow;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// What the cluster says about the nodes (the truth overlay checks compare against).
#[derive(Clone, Debug, Default)]
pub struct ClusterFacts {
    /// This node's name (its own Node object is not a peer).
    pub this_node: Option<String>,
    /// Every Node object known.
    pub nodes: Vec<Node>,
    /// The Services kube-proxy must have programmed on the node (`ServiceVipMissing`; the
    /// cluster DNS).
    pub services: Vec<Service>,
    /// Calico's IPAM blocks in force (its `BlockAffinity` objects), on a cluster with Calico
    /// IPAM; empty otherwise.
    pub calico_blocks: Vec<crate::checks::calico_blocks::CalicoBlock>,
}

/// Where and how the engine works.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// The host network namespace to work in: `None` = the process's own; `Some(name)` =
    /// `/var/run/netns/NAME` (or an absolute path).
    pub netns: Option<String>,
    /// Glob of the pod network namespaces (bind-mount paths).
    pub pod_netns_glob: String,
    /// Directory of the sysctl drop-in file (`90-netheal.conf`).
    pub sysctl_dir: PathBuf,
    /// flannel's lease file (`/run/flannel/subnet.env`).
    pub flannel_subnet_env: PathBuf,
    /// The cluster's nodes.
    pub cluster: ClusterFacts,
}

/// The default glob of pod network namespaces created by the CRI.
pub const DEFAULT_POD_NETNS_GLOB: &str = "/var/run/netns/cni-*";
/// The default directory of the sysctl drop-in.
pub const DEFAULT_SYSCTL_DIR: &str = "/etc/sysctl.d";
/// The drop-in file name written under the sysctl directory.
pub const SYSCTL_DROPIN: &str = "90-netheal.conf";

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            netns: None,
            pod_netns_glob: DEFAULT_POD_NETNS_GLOB.to_string(),
            sysctl_dir: PathBuf::from(DEFAULT_SYSCTL_DIR),
            flannel_subnet_env: PathBuf::from(probe::node_files::DEFAULT_FLANNEL_SUBNET_ENV),
            cluster: ClusterFacts::default(),
        }
    }
}

impl EngineConfig {
    /// The host namespace's file, `None` for the process's own.
    pub fn host_netns(&self) -> Option<PathBuf> {
        self.netns.as_deref().map(netns_path)
    }

    /// The pod namespaces on this host now.
    pub fn pod_netns(&self) -> Result<Vec<PathBuf>, ProbeError> {
        let host = self.host_netns();
        netns::pod_namespaces(&self.pod_netns_glob, host.as_deref())
    }
}

/// The built-in default policy (no `--policy`): every check on, `DryRun`, as a policy with an
/// empty spec.
pub fn default_policy() -> NetworkHealthPolicySpec {
    NetworkHealthPolicySpec::default()
}

/// The result of one scan.
#[derive(Clone, Debug, Default)]
pub struct ScanOutput {
    /// Every finding, sorted by (check, target).
    pub findings: Findings,
    /// The iptables backend the host's rules live in (`nft` or `legacy`), when known.
    pub iptables_backend: Option<String>,
    /// Probes that failed (findings may be partial).
    pub errors: Vec<String>,
    /// How long the scan took.
    pub duration: Duration,
}

/// Read everything the enabled checks of `policy` need.
pub fn snapshot(
    policy: &NetworkHealthPolicySpec,
    config: &EngineConfig,
) -> (Snapshot, Vec<String>) {
    let c = &policy.checks;
    let reads_flannel_lease =
        c.bridge_subnet.enabled && matches!(c.overlay.cni, Cni::Flannel | Cni::Canal);
    let set = ProbeSet {
        netlink: c.stale_neighbours.enabled
            || c.overlay.enabled
            || c.service_vip.enabled
            || c.arp_ignore.enabled
            || c.mtu.enabled
            || c.tunnel_offload.enabled
            || reads_flannel_lease
            // Routes tell the interfaces peers are reached through (the REJECT scope).
            || c.reject_rules.enabled,
        sysctls: true,
        iptables: c.reject_rules.enabled || c.masquerade.enabled || c.service_vip.enabled,
        // ip6tables rules matter only where pods have IPv6 addresses (and Services IPv6 IPs).
        ip6tables: (c.reject_rules.enabled || c.service_vip.enabled)
            && checks::ip_forward::has_ipv6_pods(&config.cluster),
        nftables: c.reject_rules.enabled,
        features_of: c.tunnel_offload.enabled.then(|| {
            checks::patterns(
                "spec.checks.tunnelOffload.interfaces",
                &c.tunnel_offload.interfaces,
            )
        }),
        proxy: c.service_vip.enabled,
    };
    let host_ns = config.host_netns();
    let (host, mut errors) = probe::probe_namespace(host_ns.as_deref(), set);
    let (node, node_errors) =
        probe::node_files::read(reads_flannel_lease.then_some(config.flannel_subnet_env.as_path()));
    errors.extend(node_errors);
    let mut snap = Snapshot {
        host,
        pods: Vec::new(),
        node,
    };
    if c.arp_ignore.enabled && c.arp_ignore.pod_namespaces {
        match config.pod_netns() {
            Ok(paths) => {
                let (pods, errs) = probe::probe_pods(&paths);
                snap.pods = pods;
                errors.extend(errs);
            }
            Err(e) => errors.push(e.to_string()),
        }
    }
    (snap, errors)
}

/// Probe the node (and its pod namespaces) and run every enabled check of `policy`.
pub fn scan(policy: &NetworkHealthPolicySpec, config: &EngineConfig) -> ScanOutput {
    let start = Instant::now();
    let (snap, errors) = snapshot(policy, config);
    let findings = checks::run_all(&Input {
        snapshot: &snap,
        policy,
        cluster: &config.cluster,
    });
    for e in &errors {
        tracing::warn!(error = %e, "probe failed");
    }
    ScanOutput {
        findings,
        iptables_backend: snap
            .host
            .iptables
            .as_ref()
            .map(|i| i.backend.as_str().to_string()),
        errors,
        duration: start.elapsed(),
    }
}

/// Execute one approved node-local order. Idempotent, honours `order.dry_run`, never panics.
pub fn execute(
    order: &RemediationOrder,
    policy: &NetworkHealthPolicySpec,
    config: &EngineConfig,
) -> RemediationResult {
    let out = match order.action {
        Action::SetSysctl => set_sysctl(order, policy, config),
        Action::DeleteNeighbour => delete_neighbour(order, policy, config),
        Action::RemoveRejectRule => remove_reject_rule(order, policy, config),
        other => Ok(FixOutcome::skipped(format!(
            "{other} is a cluster action; node-fixer does not execute it"
        ))),
    }
    .unwrap_or_else(|e| FixOutcome::failed("", e.to_string()));
    tracing::info!(
        id = %order.id, action = %order.action, target = %order.target,
        outcome = %out.outcome, dry_run = order.dry_run, "remediation executed"
    );
    RemediationResult {
        id: order.id.clone(),
        action: order.action,
        target: order.target.clone(),
        outcome: out.outcome,
        before: out.before,
        after: out.after,
        dry_run: order.dry_run,
        time: Time(jiff::Timestamp::now()),
        message: out.message,
    }
}

/// The namespace an order names: `""` = the host, else a pod namespace on this host.
fn order_netns(
    order: &RemediationOrder,
    config: &EngineConfig,
) -> Result<Option<PathBuf>, OrderError> {
    let name = order
        .parameters
        .get("netns")
        .map(String::as_str)
        .unwrap_or("");
    if name.is_empty() {
        return Ok(config.host_netns());
    }
    config
        .pod_netns()?
        .into_iter()
        .find(|p| netns::netns_name(p) == name)
        .map(Some)
        .ok_or_else(|| OrderError::PodNetnsGone(name.to_string()))
}

fn set_sysctl(
    order: &RemediationOrder,
    policy: &NetworkHealthPolicySpec,
    config: &EngineConfig,
) -> Result<FixOutcome, OrderError> {
    let key = param(&order.parameters, "sysctl")?.to_string();
    let value = param(&order.parameters, "value")?.to_string();
    fix::sysctl::validate_key(&key)?;
    if value.is_empty() || !value.chars().all(|c| c.is_ascii_digit()) {
        return Err(OrderError::InvalidParameter {
            key: "value",
            value,
            expected: "a number",
        });
    }
    let ns = match order_netns(order, config) {
        Ok(ns) => ns,
        // The pod is gone: nothing left to fix.
        Err(e) if order.parameters.get("netns").is_some_and(|n| !n.is_empty()) => {
            return Ok(FixOutcome::no_change("absent", Some(e.to_string())));
        }
        Err(e) => return Err(e),
    };
    let dry_run = order.dry_run;
    let (k, v) = (key.clone(), value.clone());
    let mut out = netns::run_in(ns.as_deref(), move || {
        fix::sysctl::set_here(proc_sys_root(), &k, &v, dry_run)
    })?;
    let host = order.parameters.get("netns").is_none_or(|n| n.is_empty());
    if host
        && !dry_run
        && policy.remediation.persist_sysctls
        && out.outcome == Outcome::Applied
        && fix::sysctl::is_persistable(&key)
        && let Err(e) = fix::sysctl::persist(&config.sysctl_dir, SYSCTL_DROPIN, &key, &value)
    {
        out.message = Some(format!("set, but not persisted: {e}"));
    }
    Ok(out)
}

fn delete_neighbour(
    order: &RemediationOrder,
    policy: &NetworkHealthPolicySpec,
    config: &EngineConfig,
) -> Result<FixOutcome, OrderError> {
    let p = &order.parameters;
    let interface = param(p, "interface")?.to_string();
    let pats = checks::patterns(
        "spec.checks.staleNeighbours.interfaces",
        &policy.checks.stale_neighbours.interfaces,
    );
    if !pats.matches(&interface) {
        return Ok(FixOutcome::skipped(format!(
            "interface {interface} is not covered by spec.checks.staleNeighbours.interfaces"
        )));
    }
    let lladdr = p.get("lladdr").map(String::as_str).unwrap_or("");
    let mac = if lladdr.is_empty() {
        None
    } else {
        Some(
            Mac::parse(lladdr).ok_or_else(|| OrderError::InvalidParameter {
                key: "lladdr",
                value: lladdr.to_string(),
                expected: "a MAC",
            })?,
        )
    };
    let ip = param(p, "ip")?;
    let target = if p.get("kind").map(String::as_str) == Some("fdb") {
        Target::Fdb {
            mac: mac.ok_or(OrderError::Required {
                key: "lladdr",
                when: "for an fdb entry",
            })?,
            interface,
            dst: ip.parse().map_err(|_| OrderError::InvalidParameter {
                key: "ip",
                value: ip.to_string(),
                expected: "an IP",
            })?,
        }
    } else {
        Target::Neighbour {
            ip: ip.parse().map_err(|_| OrderError::InvalidParameter {
                key: "ip",
                value: ip.to_string(),
                expected: "an IPv4 or IPv6 address",
            })?,
            interface,
            lladdr: mac,
        }
    };
    // fdb entries of live peers' VTEPs (IPv4 and IPv6) stay, whatever neighbour carried their MAC.
    let protected: Vec<Mac> = peers(&config.cluster)
        .iter()
        .flat_map(|p| [p.vtep_mac, p.vtep_mac6])
        .flatten()
        .collect();
    let ns = order_netns(order, config)?;
    let dry_run = order.dry_run;
    Ok(netns::run_in(ns.as_deref(), move || {
        fix::neighbour::delete_here(&target, dry_run, &protected)
    })?)
}

fn remove_reject_rule(
    order: &RemediationOrder,
    policy: &NetworkHealthPolicySpec,
    config: &EngineConfig,
) -> Result<FixOutcome, OrderError> {
    let p = &order.parameters;
    let backend_name = param(p, "backend")?;
    if backend_name == checks::reject::NFTABLES_BACKEND {
        return remove_nft_rule(order, policy, config);
    }
    let table = param(p, "table")?.to_string();
    let chain = param(p, "chain")?.to_string();
    let spec = param(p, "rule")?.to_string();
    let backend = Backend::parse(backend_name).ok_or_else(|| OrderError::InvalidParameter {
        key: "backend",
        value: backend_name.to_string(),
        expected: "nft, legacy or nftables",
    })?;
    // No `family`: an iptables (IPv4) rule, as orders before ip6tables support said.
    let family = match p.get("family") {
        None => IpFamily::V4,
        Some(text) => IpFamily::parse(text).ok_or_else(|| OrderError::InvalidParameter {
            key: "family",
            value: text.clone(),
            expected: "ip or ip6",
        })?,
    };
    if spec.contains('\n') {
        return Err(OrderError::InvalidParameter {
            key: "rule",
            value: spec,
            expected: "one line",
        });
    }
    let rule = crate::snapshot::Rule {
        table: table.clone(),
        chain: chain.clone(),
        spec: spec.clone(),
    };
    let reject_policy = policy.checks.reject_rules.clone();
    // Without this node's routes, any interface but lo may carry the cluster's traffic: the
    // order was already matched against the node's own finding, which had them.
    let net =
        checks::reject_scope::ClusterNetwork::of_family(family, &config.cluster, &[], &[], &[]);
    let ns = order_netns(order, config)?;
    let dry_run = order.dry_run;
    let outcome = netns::run_in(ns.as_deref(), move || -> Result<FixOutcome, ProbeError> {
        // With followJumps the chains searched depend on the rules: read them here, in the
        // namespace the rule is in.
        let rules = if reject_policy.follow_jumps {
            crate::probe::iptables::parse_save(&crate::probe::iptables::save(backend, family)?)
        } else {
            Vec::new()
        };
        let searched = checks::reject::searched_chains(&rules, &reject_policy);
        if reject_policy.follow_jumps && !rules.contains(&rule) {
            // Already gone (its chain may be empty now, so no longer reached): nothing to do.
            return Ok(FixOutcome::no_change("absent", None));
        }
        if let checks::reject::Verdict::Keep(why) =
            checks::reject::verdict(&rule, &searched, &reject_policy, &net)
        {
            return Ok(FixOutcome::skipped(format!(
                "-A {chain} {spec} stays: {why}"
            )));
        }
        Ok(fix::iptables::remove_here(
            backend, family, &table, &chain, &spec, dry_run,
        ))
    })??;
    Ok(outcome)
}

/// `RemoveRejectRule` of a rule in nftables' own tables (`backend` `nftables`).
fn remove_nft_rule(
    order: &RemediationOrder,
    policy: &NetworkHealthPolicySpec,
    config: &EngineConfig,
) -> Result<FixOutcome, OrderError> {
    let p = &order.parameters;
    let handle = p
        .get("handle")
        .map(|text| {
            text.parse::<u64>()
                .map_err(|_| OrderError::InvalidParameter {
                    key: "handle",
                    value: text.clone(),
                    expected: "a rule handle (a number)",
                })
        })
        .transpose()?;
    let wanted = fix::nft::RuleRef {
        family: param(p, "family")?.to_string(),
        table: param(p, "table")?.to_string(),
        chain: param(p, "chain")?.to_string(),
        handle,
        expr: param(p, "expr")?.to_string(),
    };
    let reject_policy = policy.checks.reject_rules.clone();
    // As for iptables: the order was matched against the node's own finding, made with its
    // routes; here any interface but lo may carry the cluster's traffic.
    let nets = [IpFamily::V4, IpFamily::V6].map(|f| {
        checks::reject_scope::ClusterNetwork::of_family(f, &config.cluster, &[], &[], &[])
    });
    let ns = order_netns(order, config)?;
    let dry_run = order.dry_run;
    Ok(netns::run_in(ns.as_deref(), move || {
        fix::nft::remove_here(
            &wanted,
            dry_run,
            |ruleset, rule| {
                let searched = checks::reject_nft::searched_chains(ruleset, &reject_policy);
                match checks::reject_nft::verdict(rule, &searched, &reject_policy, &nets) {
                    checks::reject::Verdict::Remove(_) => Ok(()),
                    checks::reject::Verdict::Keep(why) => Err(why),
                }
            },
            checks::reject_nft::render,
        )
    })?)
}

/// Orders for every finding of `scan` whose action is node-local and approved by `policy`
/// (what `node-fixer fix` applies). Ids are the finding ids.
pub fn orders_for<I>(
    findings: I,
    policy: &NetworkHealthPolicySpec,
    dry_run: bool,
) -> Vec<RemediationOrder>
where
    I: IntoIterator,
    I::Item: Borrow<Finding>,
{
    findings
        .into_iter()
        .filter_map(|f| {
            let f = f.borrow();
            let action = f.action?;
            (action.is_node_local() && policy.remediation.actions.contains(&action)).then(|| {
                RemediationOrder {
                    id: f.id.clone(),
                    action,
                    finding_id: f.id.clone(),
                    check: f.check,
                    target: f.target.clone(),
                    parameters: f.details.to_map(),
                    policy: "local".to_string(),
                    dry_run,
                    approved_at: Time(jiff::Timestamp::now()),
                }
            })
        })
        .collect()
}
