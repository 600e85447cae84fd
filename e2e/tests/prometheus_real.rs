//! netheal watched by a real Prometheus (Debian's `prometheus`, `/usr/bin/prometheus`): it
//! scrapes the real operator and the real agents of a 2-node cluster-in-a-box, with the target
//! labels `config/prometheus/servicemonitor.yaml` gives them, and evaluates the rules of
//! `config/prometheus/rules.yaml`.
//!
//! A: after an IpForward fault is fixed under Enforce, every target is up, every metric the
//! Grafana dashboard (`config/grafana/netheal-dashboard.json`) queries has series, with the
//! labels the dashboard groups and filters by, and both recording rules produce series.
//! B: a competing writer keeps undoing the fix until the finding is Flapping: the alert
//! `NethealFixFlapping`, silent before, fires.
//!
//! The test fails, never skips, when Prometheus is not installed.

use netheal_crds::conditions::types::FLAPPING;
use netheal_crds::{Action, Check, Mode};
use netheal_e2e::cluster::PodOptions;
use netheal_e2e::harness::policies::{POLICY, scenario_policy};
use netheal_e2e::harness::prometheus::{self, Prometheus, ScrapeJob, Target};
use netheal_e2e::harness::writer::CompetingWriter;
use netheal_e2e::harness::{self, Check as Wait, Harness, HarnessOptions, api, install, wait_for};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// The `job` labels: the ServiceMonitor names each job after its Service.
const OPERATOR_JOB: &str = "netheal-operator-metrics";
const NODE_FIXER_JOB: &str = "netheal-node-fixer-metrics";
const FLAPPING_ALERT: &str = "NethealFixFlapping";
/// The `for:` the flapping alert gets in this test (see `rules_for_the_test`).
const FLAPPING_FOR: &str = "2s";

fn workspace_file(path: &str) -> String {
    let file = harness::bins::workspace_root().join(path);
    std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
}

/// Every rule of a rule file, by name (`alert` or `record`).
fn rules_by_name(rule_file: &serde_yaml::Value) -> BTreeMap<String, serde_yaml::Value> {
    let mut rules = BTreeMap::new();
    for group in rule_file["groups"].as_sequence().into_iter().flatten() {
        for rule in group["rules"].as_sequence().into_iter().flatten() {
            let name = rule["alert"].as_str().or(rule["record"].as_str());
            rules.insert(name.unwrap_or_default().to_string(), rule.clone());
        }
    }
    rules
}

/// The shipped rules, with the `for:` of the flapping alert (5m) cut to [`FLAPPING_FOR`] so the
/// test does not wait five minutes. Only that field changes: its `expr`, and every other rule,
/// are the shipped ones (checked again on what Prometheus loaded); promtool's unit tests in
/// `config/prometheus/rules.test.yaml` prove the 5m pending time.
fn rules_for_the_test(shipped: &serde_yaml::Value) -> serde_yaml::Value {
    let mut rules = shipped.clone();
    let mut changed = 0;
    for group in rules["groups"].as_sequence_mut().into_iter().flatten() {
        for rule in group["rules"].as_sequence_mut().into_iter().flatten() {
            if rule["alert"].as_str() == Some(FLAPPING_ALERT) {
                rule["for"] = FLAPPING_FOR.into();
                changed += 1;
            }
        }
    }
    assert_eq!(changed, 1, "one {FLAPPING_ALERT} rule in the shipped rules");
    let mut restored = rules_by_name(&rules);
    let shipped_rules = rules_by_name(shipped);
    if let Some(rule) = restored.get_mut(FLAPPING_ALERT) {
        rule["for"] = shipped_rules[FLAPPING_ALERT]["for"].clone();
    }
    assert_eq!(restored, shipped_rules, "only the one `for:` differs");
    rules
}

/// A Prometheus duration (`5m`, `1h`, `0m`, `2s`) in seconds.
fn seconds(duration: &str) -> f64 {
    let split = duration
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(duration.len());
    let (n, unit) = duration.split_at(split);
    let n: f64 = n.parse().unwrap_or_else(|_| panic!("duration {duration}"));
    n * match unit {
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        "d" => 86400.0,
        _ => panic!("unit of duration {duration}"),
    }
}

fn without_spaces(s: &str) -> String {
    s.chars().filter(|c| !c.is_whitespace()).collect()
}

/// One query of the dashboard: where it is, its PromQL, its legend.
#[derive(Debug)]
struct DashboardQuery {
    panel: String,
    expr: String,
    legend: String,
}

/// Every query of the dashboard: each panel's targets (rows' panels included) and the
/// template variables' `label_values(...)`.
fn dashboard_queries(dashboard: &Value) -> Vec<DashboardQuery> {
    fn walk(panels: &Value, out: &mut Vec<DashboardQuery>) {
        for panel in panels.as_array().into_iter().flatten() {
            for target in panel["targets"].as_array().into_iter().flatten() {
                if let Some(expr) = target["expr"].as_str() {
                    out.push(DashboardQuery {
                        panel: panel["title"].as_str().unwrap_or_default().to_string(),
                        expr: expr.to_string(),
                        legend: target["legendFormat"]
                            .as_str()
                            .unwrap_or_default()
                            .to_string(),
                    });
                }
            }
            walk(&panel["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], &mut out);
    for var in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if let Some(q) = var["definition"].as_str().filter(|q| !q.is_empty()) {
            out.push(DashboardQuery {
                panel: format!("variable ${}", var["name"].as_str().unwrap_or_default()),
                expr: q.to_string(),
                legend: String::new(),
            });
        }
    }
    out
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

/// The metric names of a query: identifiers that start with `netheal_` (the recording rules'
/// `netheal:` names are not scraped metrics).
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (i, _) in expr.match_indices("netheal_") {
        if expr[..i].chars().next_back().is_some_and(is_ident) {
            continue;
        }
        let name: String = expr[i..].chars().take_while(|c| is_ident(*c)).collect();
        names.insert(name);
    }
    names
}

/// The labels a query needs on its series: those it groups `by`, filters on (`{label=…}`),
/// shows in its legend (`{{label}}`) or takes values of (`label_values(metric, label)`).
/// `without (…)` labels need not exist.
fn needed_labels(query: &DashboardQuery) -> BTreeSet<String> {
    let expr = &query.expr;
    let mut labels = BTreeSet::new();
    for (i, _) in expr.match_indices("by") {
        if expr[..i].chars().next_back().is_some_and(is_ident) {
            continue;
        }
        let rest = expr[i + 2..].trim_start();
        if let Some(inner) = rest.strip_prefix('(').and_then(|r| r.split(')').next()) {
            labels.extend(inner.split(',').map(|l| l.trim().to_string()));
        }
    }
    for (i, _) in expr.match_indices('{') {
        let inner = expr[i + 1..].split('}').next().unwrap_or_default();
        for matcher in inner.split(',') {
            let label = matcher.split(['=', '!', '~']).next().unwrap_or_default();
            labels.insert(label.trim().to_string());
        }
    }
    for part in query.legend.split("{{").skip(1) {
        if let Some(label) = part.split("}}").next() {
            labels.insert(label.trim().to_string());
        }
    }
    if let Some(args) = expr
        .strip_prefix("label_values(")
        .and_then(|a| a.strip_suffix(')'))
        && let Some((_, label)) = args.rsplit_once(',')
    {
        labels.insert(label.trim().to_string());
    }
    labels.retain(|l| !l.is_empty());
    labels
}

/// A Running pod `selector` selects in netheal's namespace (on `node`).
async fn pod_of(
    h: &Harness,
    selector: &str,
    node: Option<&str>,
) -> k8s_openapi::api::core::v1::Pod {
    h.wait_running_pod(install::NAMESPACE, selector, node)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// The labels the ServiceMonitor's scrape configuration gives a target of `service` (the
/// Prometheus operator's `namespace`, `service`, `pod`, `container`, `endpoint`, and the
/// relabelling's `node` from the pod's node, for node-fixer's pods only).
fn service_monitor_labels(
    service: &str,
    pod: &k8s_openapi::api::core::v1::Pod,
) -> BTreeMap<String, String> {
    let spec = pod.spec.as_ref().expect("a pod spec");
    let node_fixer = pod
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get("app.kubernetes.io/component"))
        .is_some_and(|c| c == "node-fixer");
    let mut labels = BTreeMap::from([
        ("namespace".into(), install::NAMESPACE.to_string()),
        ("service".into(), service.to_string()),
        ("pod".into(), pod.metadata.name.clone().unwrap_or_default()),
        (
            "container".into(),
            spec.containers
                .first()
                .map(|c| c.name.clone())
                .unwrap_or_default(),
        ),
        ("endpoint".into(), "metrics".into()),
    ]);
    if node_fixer {
        labels.insert("node".into(), spec.node_name.clone().unwrap_or_default());
    }
    labels
}

/// The samples of `promql` right now, as (labels, value).
async fn samples(p: &Prometheus, promql: &str) -> Vec<(BTreeMap<String, String>, f64)> {
    p.query(promql)
        .await
        .unwrap_or_else(|e| panic!("{promql}: {e}"))
        .into_iter()
        .map(|s| {
            let labels = serde_json::from_value(s["metric"].clone()).unwrap_or_default();
            let value = s["value"][1]
                .as_str()
                .and_then(|v| v.parse().ok())
                .unwrap_or(f64::NAN);
            (labels, value)
        })
        .collect()
}

/// The active alerts named `name` (pending or firing).
async fn active_alerts(p: &Prometheus, name: &str) -> Vec<Value> {
    p.alerts()
        .await
        .unwrap_or_else(|e| panic!("alerts: {e}"))
        .into_iter()
        .filter(|a| a["labels"]["alertname"] == name)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_every_dashboard_series_and_fires_the_flapping_alert() {
    // Fail, never skip: the scenario is part of `make test`.
    if let Err(e) = prometheus::require_binary() {
        panic!("{e}");
    }
    let shipped =
        prometheus::rule_file_of(&workspace_file("config/prometheus/rules.yaml")).unwrap();
    let rules = rules_for_the_test(&shipped);
    let dashboard: Value =
        serde_json::from_str(&workspace_file("config/grafana/netheal-dashboard.json")).unwrap();
    let queries = dashboard_queries(&dashboard);
    assert!(!queries.is_empty(), "no query in the dashboard");
    let dashboard_metrics: BTreeSet<String> =
        queries.iter().flat_map(|q| metric_names(&q.expr)).collect();

    let start = Instant::now();
    let mut h = Harness::start(HarnessOptions::new("pm1", 2)).await.unwrap();
    h.add_pod("node1", PodOptions::bridge()).await.unwrap();
    h.add_pod("node2", PodOptions::bridge()).await.unwrap();
    let mut spec = scenario_policy(Mode::Enforce);
    spec.remediation.flap_limit.fixes = 3;
    h.create_policy(POLICY, spec).await.unwrap();

    // The targets: the operator and one agent per node, with the ServiceMonitor's labels.
    let addresses = wait_for("the metrics listeners", Duration::from_secs(30), || async {
        let a = h.metrics_addresses();
        if ["operator", "agent-node1", "agent-node2"]
            .iter()
            .all(|n| a.contains_key(*n))
        {
            Wait::Done(a)
        } else {
            Wait::NotYet(format!("{a:?}"))
        }
    })
    .await
    .unwrap();
    let holder = wait_for(
        "the operator to hold the lease",
        Duration::from_secs(30),
        || async {
            match h.lease_holder().await {
                Ok(Some(holder)) => Wait::Done(holder),
                other => Wait::NotYet(format!("{other:?}")),
            }
        },
    )
    .await
    .unwrap();
    let operator_pods = api::pods_selected(
        h.client(),
        install::NAMESPACE,
        "app.kubernetes.io/component=operator",
    )
    .await
    .unwrap();
    let operator_pod = operator_pods
        .iter()
        .find(|p| {
            p.metadata
                .name
                .as_ref()
                .is_some_and(|n| holder.starts_with(&format!("{n}-")))
        })
        .unwrap_or_else(|| panic!("no operator pod is the lease holder {holder}"));
    let mut agent_targets = Vec::new();
    for node in ["node1", "node2"] {
        let pod = pod_of(&h, "app.kubernetes.io/component=node-fixer", Some(node)).await;
        agent_targets.push(Target {
            address: addresses[&format!("agent-{node}")],
            labels: service_monitor_labels(NODE_FIXER_JOB, &pod),
        });
    }
    let jobs = [
        ScrapeJob {
            name: OPERATOR_JOB.into(),
            targets: vec![Target {
                address: addresses["operator"],
                labels: service_monitor_labels(OPERATOR_JOB, operator_pod),
            }],
        },
        ScrapeJob {
            name: NODE_FIXER_JOB.into(),
            targets: agent_targets,
        },
    ];
    let p = Prometheus::start(&h.log_dir().join("prometheus"), &jobs, &rules)
        .await
        .unwrap();
    eprintln!("prometheus on {} (log {})", p.address(), p.log().display());

    // The rules Prometheus loaded are the shipped ones, but for the one `for:`.
    let loaded = wait_for(
        "the rules to be evaluated",
        Duration::from_secs(30),
        || async {
            match p.rules().await {
                Ok(r)
                    if r.iter().all(|r| {
                        r["health"] == "ok"
                            && r["lastEvaluation"]
                                .as_str()
                                .is_some_and(|t| !t.starts_with("0001"))
                    }) && !r.is_empty() =>
                {
                    Wait::Done(r)
                }
                other => Wait::NotYet(format!("{other:?}")),
            }
        },
    )
    .await
    .unwrap();
    let shipped_rules = rules_by_name(&shipped);
    let loaded_names: BTreeSet<String> = loaded
        .iter()
        .map(|r| r["name"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        loaded_names,
        shipped_rules.keys().cloned().collect::<BTreeSet<_>>()
    );
    for rule in &loaded {
        let name = rule["name"].as_str().unwrap_or_default();
        let shipped_rule = &shipped_rules[name];
        assert_eq!(
            without_spaces(rule["query"].as_str().unwrap_or_default()),
            without_spaces(shipped_rule["expr"].as_str().unwrap_or_default()),
            "{name}: the loaded expression is the shipped one"
        );
        if rule["type"] == "alerting" {
            let want = if name == FLAPPING_ALERT {
                seconds(FLAPPING_FOR)
            } else {
                seconds(shipped_rule["for"].as_str().unwrap_or("0s"))
            };
            assert_eq!(rule["duration"].as_f64(), Some(want), "{name}: for");
        }
    }

    // ---- A: a fault found and fixed; every series of the dashboard ----
    h.with_cluster(|c| c.inject_ip_forward_off("node1"))
        .await
        .unwrap();
    h.expect_applied(POLICY, "node1", Action::SetSysctl, |r| {
        r.check == Some(Check::IpForward)
    })
    .await
    .unwrap();

    let targets = wait_for("every target up", Duration::from_secs(30), || async {
        match p.targets().await {
            Ok(t) if t.len() == 3 && t.iter().all(|t| t["health"] == "up") => Wait::Done(t),
            Ok(t) => Wait::NotYet(
                t.iter()
                    .map(|t| {
                        format!(
                            "{} {} {}: {} {}",
                            t["labels"]["job"],
                            t["labels"]["node"],
                            t["scrapeUrl"],
                            t["health"],
                            t["lastError"]
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
            Err(e) => Wait::NotYet(e.to_string()),
        }
    })
    .await
    .unwrap();
    for (job, node) in [
        (NODE_FIXER_JOB, "node1"),
        (NODE_FIXER_JOB, "node2"),
        (OPERATOR_JOB, ""),
    ] {
        assert!(
            targets.iter().any(|t| t["labels"]["job"] == job
                && if node.is_empty() {
                    // The operator's series carry no node: the rules merge its replicas.
                    t["labels"]["node"].is_null()
                } else {
                    t["labels"]["node"] == node
                }),
            "a target of job {job} {node}: {targets:?}"
        );
    }
    let up = samples(
        &p,
        &format!("up{{job=~\"{OPERATOR_JOB}|{NODE_FIXER_JOB}\"}} == 1"),
    )
    .await;
    assert_eq!(up.len(), 3, "up == 1 for all three targets: {up:?}");

    let names = wait_for(
        "every metric of the dashboard in Prometheus",
        Duration::from_secs(30),
        || async {
            match p.label_values("__name__").await {
                Ok(names) => {
                    let missing: Vec<&String> = dashboard_metrics
                        .iter()
                        .filter(|m| !names.contains(*m))
                        .collect();
                    if missing.is_empty() {
                        Wait::Done(names)
                    } else {
                        Wait::NotYet(format!("missing {missing:?}; scraped: {names:?}"))
                    }
                }
                Err(e) => Wait::NotYet(e.to_string()),
            }
        },
    )
    .await
    .unwrap();
    // What each name is: a histogram's `_bucket` series belong to the histogram, a `_total`
    // series to a counter; the family is what docs/observability.md documents.
    let metadata = p.api("metadata", &[]).await.unwrap();
    let docs = workspace_file("docs/observability.md");
    for name in &dashboard_metrics {
        let (family, kind) = if let Some(base) = name.strip_suffix("_bucket") {
            (base.to_string(), "histogram")
        } else if let Some(base) = name.strip_suffix("_total") {
            (base.to_string(), "counter")
        } else {
            (name.clone(), "gauge")
        };
        let types: Vec<&str> = metadata[&family]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m["type"].as_str())
            .collect();
        assert!(
            types.contains(&kind),
            "{name}: metadata of {family} says {types:?}, the dashboard queries it as a {kind}"
        );
        let documented = if kind == "histogram" { &family } else { name };
        assert!(
            docs.contains(&format!("`{documented}`")),
            "{name}: `{documented}` is not documented in docs/observability.md"
        );
    }
    // The labels each query groups and filters by are on its series.
    let mut label_checks = 0;
    for query in &queries {
        let metrics = metric_names(&query.expr);
        for label in needed_labels(query) {
            let mut found = false;
            for metric in &metrics {
                let series = p
                    .series(&format!("{{__name__=\"{metric}\",{label}!=\"\"}}"))
                    .await
                    .unwrap();
                found |= !series.is_empty();
            }
            assert!(
                found,
                "panel {:?}: no series of {metrics:?} carries label {label} ({})",
                query.panel, query.expr
            );
            label_checks += 1;
        }
    }
    // The node label names the nodes, the policy label the policy.
    let nodes = p.label_values("node").await.unwrap();
    assert!(
        nodes.contains("node1") && nodes.contains("node2"),
        "node labels {nodes:?}"
    );
    let policies = samples(&p, "netheal_open_findings").await;
    assert!(
        policies
            .iter()
            .any(|(l, _)| l.get("policy").map(String::as_str) == Some(POLICY)),
        "netheal_open_findings of policy {POLICY}: {policies:?}"
    );
    // Both recording rules produce series.
    for (record, label, value) in [
        ("netheal:open_findings:sum", "policy", POLICY),
        ("netheal:node_findings:sum", "node", "node1"),
        ("netheal:node_findings:sum", "node", "node2"),
    ] {
        let got = wait_for(record, Duration::from_secs(15), || async {
            let s = samples(&p, &format!("{record}{{{label}=\"{value}\"}}")).await;
            if s.is_empty() {
                Wait::NotYet("no series".into())
            } else {
                Wait::Done(s)
            }
        })
        .await
        .unwrap();
        assert!(got.iter().all(|(l, _)| l.contains_key("check")), "{got:?}");
    }
    let netheal_names = names.iter().filter(|n| n.starts_with("netheal")).count();
    println!(
        "figure: prometheus.dashboard_metrics_found {} metrics \
         ({} queries, {} label checks, {} netheal names in Prometheus)",
        dashboard_metrics.len(),
        queries.len(),
        label_checks,
        netheal_names
    );
    eprintln!("dashboard metrics: {dashboard_metrics:?}");

    // ---- B: a flapping fault fires NethealFixFlapping ----
    // Before: evaluated, inactive, no flapping finding.
    let rule = p
        .rules()
        .await
        .unwrap()
        .into_iter()
        .find(|r| r["name"] == FLAPPING_ALERT)
        .unwrap();
    assert_eq!(rule["state"], "inactive", "{rule}");
    assert!(active_alerts(&p, FLAPPING_ALERT).await.is_empty());
    let flapping = samples(
        &p,
        &format!("netheal_flapping_findings{{policy=\"{POLICY}\"}}"),
    )
    .await;
    assert!(
        !flapping.is_empty() && flapping.iter().all(|(_, v)| *v == 0.0),
        "no flapping finding yet: {flapping:?}"
    );

    let fault = Instant::now();
    let fault_at = jiff::Timestamp::now();
    // Another owner of the switch writes 0 every second (heal_safety's flapping scenario).
    let writer = CompetingWriter::start(
        &h.node_netns("node2"),
        "net/ipv4/conf/all/forwarding",
        "0",
        Duration::from_secs(1),
    );
    let firing = wait_for(
        &format!("{FLAPPING_ALERT} to fire"),
        Duration::from_secs(90),
        || async {
            let alerts = active_alerts(&p, FLAPPING_ALERT).await;
            match alerts.iter().find(|a| a["state"] == "firing") {
                Some(a) => Wait::Done(a.clone()),
                None => Wait::NotYet(format!("{alerts:?}")),
            }
        },
    )
    .await
    .unwrap();
    let fault_to_firing = fault.elapsed();
    println!(
        "figure: alert.{FLAPPING_ALERT}.fault_to_firing {:.2} s",
        fault_to_firing.as_secs_f64()
    );
    if let Some(active_at) = firing["activeAt"]
        .as_str()
        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
    {
        let pending = active_at.duration_since(fault_at);
        println!(
            "figure: alert.{FLAPPING_ALERT}.fault_to_pending {:.2} s",
            pending.as_secs_f64()
        );
    }
    assert_eq!(firing["labels"]["policy"], POLICY, "{firing}");
    assert_eq!(firing["labels"]["severity"], "warning", "{firing}");
    let value: f64 = firing["value"]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    assert!(value >= 1.0, "flapping findings in the alert: {firing}");
    assert!(
        firing["annotations"]["summary"]
            .as_str()
            .is_some_and(|s| s.contains(POLICY)),
        "{firing}"
    );
    // What the alert says is what netheal says.
    let policy = h.policy(POLICY).await.unwrap();
    assert!(
        policy.status.as_ref().is_some_and(|s| s
            .conditions
            .iter()
            .any(|c| c.type_ == FLAPPING && c.status == "True")),
        "the policy is Flapping: {}",
        harness::describe(&policy.status)
    );
    // The finding stays open (netheal stopped fixing it), and the recording rules count it.
    for promql in [
        format!("netheal:open_findings:sum{{policy=\"{POLICY}\",check=\"IpForward\"}} >= 1"),
        "netheal:node_findings:sum{node=\"node2\",check=\"IpForward\"} >= 1".to_string(),
    ] {
        wait_for(&promql, Duration::from_secs(15), || async {
            let s = samples(&p, &promql).await;
            if s.is_empty() {
                Wait::NotYet("no sample".into())
            } else {
                Wait::Done(())
            }
        })
        .await
        .unwrap();
    }
    drop(writer);
    assert!(h.dead_processes().is_empty(), "{:?}", h.dead_processes());
    drop(p);
    eprintln!("scenario took {:.1} s", start.elapsed().as_secs_f64());
}
