//! Orders as anyone allowed to write a report's spec could write them, against the findings
//! this node observed: planning never panics, and what it executes is always rebuilt from the
//! node's own finding (check, target and parameters), never taken from the order. The
//! parameter validators (sysctl keys, MACs) take any string.
#![no_main]

use arbitrary::Arbitrary;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use libfuzzer_sys::fuzz_target;
use netheal_crds::{Action, Check, Finding, NetworkHealthPolicySpec, RemediationOrder, finding_id};
use node_fixer::agent::orders::{Plan, plan};
use node_fixer::agent::policy_select::NamedPolicy;
use node_fixer::snapshot::Mac;
use std::collections::{BTreeMap, HashMap, HashSet};

#[derive(Arbitrary, Debug)]
struct FuzzOrder {
    id: String,
    action: u8,
    check: u8,
    finding: u8,
    target: String,
    parameters: Vec<(String, String)>,
    policy: bool,
    dry_run: bool,
}

fn findings() -> Vec<Finding> {
    let sysctl = |target: &str, key: &str| Finding {
        id: finding_id(Check::IpForward, target),
        check: Check::IpForward,
        target: target.into(),
        observed: "0".into(),
        desired: "1".into(),
        action: Some(Action::SetSysctl),
        details: BTreeMap::from([
            ("netns".into(), String::new()),
            ("sysctl".into(), key.into()),
            ("value".into(), "1".into()),
        ])
        .into(),
        policy: None,
        message: None,
        first_seen: None,
        last_seen: None,
    };
    let reject_target = "filter INPUT -j REJECT --reject-with icmp-host-prohibited";
    vec![
        sysctl("net.ipv4.ip_forward", "net/ipv4/ip_forward"),
        Finding {
            id: finding_id(Check::RejectRule, reject_target),
            check: Check::RejectRule,
            target: reject_target.into(),
            action: Some(Action::RemoveRejectRule),
            details: BTreeMap::from([
                ("chain".into(), "INPUT".into()),
                (
                    "rule".into(),
                    "-j REJECT --reject-with icmp-host-prohibited".into(),
                ),
                ("table".into(), "filter".into()),
                ("backend".into(), "nft".into()),
                ("netns".into(), String::new()),
            ])
            .into(),
            ..sysctl("x", "y")
        },
    ]
}

fuzz_target!(|orders: Vec<FuzzOrder>| {
    let findings = findings();
    let by_id: HashMap<String, &Finding> = findings.iter().map(|f| (f.id.clone(), f)).collect();
    let orders: Vec<RemediationOrder> = orders
        .into_iter()
        .map(|o| {
            let parameters: BTreeMap<String, String> = o.parameters.into_iter().collect();
            for value in parameters.values() {
                let _ = node_fixer::fix::sysctl::validate_key(value);
                let _ = Mac::parse(value);
            }
            RemediationOrder {
                id: o.id,
                action: Action::ALL[usize::from(o.action) % Action::ALL.len()],
                finding_id: findings
                    .get(usize::from(o.finding) % (findings.len() + 1))
                    .map(|f| f.id.clone())
                    .unwrap_or_else(|| "gone".into()),
                check: Check::ALL[usize::from(o.check) % Check::ALL.len()],
                target: o.target,
                parameters,
                policy: if o.policy { "p".into() } else { "other".into() },
                dry_run: o.dry_run,
                approved_at: Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
            }
        })
        .collect();
    let applying = [NamedPolicy {
        name: "p".into(),
        spec: NetworkHealthPolicySpec::default(),
    }];
    let now = Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH);
    for planned in plan(&orders, &HashSet::new(), &by_id, &applying, &now) {
        if let Plan::Execute { order, .. } = planned {
            let finding = by_id
                .get(&order.finding_id)
                .expect("only an order for an observed finding runs");
            assert_eq!(order.check, finding.check);
            assert_eq!(order.target, finding.target);
            assert_eq!(order.parameters, finding.details);
            assert_eq!(Some(order.action), finding.action);
        }
    }
});
