//! What the demo prints: the dry-run findings as a table, one line per action, the
//! conditions. Pure formatting.

use netheal_crds::{ActionRecord, NetworkHealthPolicy};

/// Lay `rows` out in columns under `header`, two spaces apart.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<String>| {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                let pad = widths[i].saturating_sub(cell.chars().count()) + 2;
                out.push_str(cell);
                out.push_str(&" ".repeat(pad));
            }
        }
        out.trim_end().to_string()
    };
    let mut lines = vec![line(header.iter().map(|h| h.to_string()).collect())];
    lines.extend(rows.iter().map(|r| line(r.clone())));
    lines.join("\n")
}

/// The policy's open findings: node, check, target, observed, desired, proposed action and
/// why it is not taken.
pub fn findings_table(policy: &NetworkHealthPolicy) -> String {
    let rows: Vec<Vec<String>> = policy
        .status
        .iter()
        .flat_map(|s| s.findings.iter())
        .map(|f| {
            vec![
                f.node.clone(),
                f.check.to_string(),
                f.target.clone(),
                f.observed.clone(),
                f.desired.clone(),
                f.proposed_action
                    .map(|a| a.to_string())
                    .unwrap_or_else(|| "-".into()),
                f.disposition.clone().unwrap_or_default(),
            ]
        })
        .collect();
    table(
        &[
            "NODE",
            "CHECK",
            "TARGET",
            "OBSERVED",
            "DESIRED",
            "PROPOSED",
            "DISPOSITION",
        ],
        &rows,
    )
}

/// One action as it happens: `time node action outcome target (before -> after)`.
pub fn action_line(a: &ActionRecord) -> String {
    let mut line = format!(
        "{}  {:<8} {:<16} {:<8} {}",
        a.time.0.strftime("%H:%M:%S"),
        a.node,
        a.action.as_str(),
        a.outcome.as_str(),
        a.target
    );
    if !a.before.is_empty() || !a.after.is_empty() {
        line.push_str(&format!("  ({} -> {})", a.before, a.after));
    }
    if a.dry_run {
        line.push_str("  [dry-run]");
    }
    line
}

/// The policy's conditions, one a line.
pub fn conditions(policy: &NetworkHealthPolicy) -> String {
    policy
        .status
        .iter()
        .flat_map(|s| s.conditions.iter())
        .map(|c| format!("{}={} ({}): {}", c.type_, c.status, c.reason, c.message))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use netheal_crds::{Action, Check, NetworkHealthPolicyStatus, Outcome, PolicyFinding};

    #[test]
    fn columns_line_up() {
        let t = table(
            &["A", "BB"],
            &[vec!["xxx".into(), "y".into()], vec!["z".into(), "w".into()]],
        );
        assert_eq!(t, "A    BB\nxxx  y\nz    w");
    }

    #[test]
    fn findings_and_actions_render() {
        let mut p = NetworkHealthPolicy::new("p", Default::default());
        p.status = Some(NetworkHealthPolicyStatus {
            findings: vec![PolicyFinding {
                id: "1".into(),
                node: "node2".into(),
                check: Check::IpForward,
                target: "net.ipv4.ip_forward".into(),
                observed: "0".into(),
                desired: "1".into(),
                proposed_action: Some(Action::SetSysctl),
                disposition: Some("dry-run".into()),
            }],
            ..Default::default()
        });
        let t = findings_table(&p);
        assert!(t.starts_with("NODE"));
        assert!(t.contains("node2  IpForward  net.ipv4.ip_forward  0"));
        assert!(t.ends_with("SetSysctl  dry-run"));
        let a = ActionRecord {
            id: "x".into(),
            time: Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
            node: "node2".into(),
            action: Action::SetSysctl,
            check: Some(Check::IpForward),
            target: "net.ipv4.ip_forward".into(),
            before: "0".into(),
            after: "1".into(),
            outcome: Outcome::Applied,
            dry_run: false,
            message: None,
        };
        assert_eq!(
            action_line(&a),
            "00:00:00  node2    SetSysctl        Applied  net.ipv4.ip_forward  (0 -> 1)"
        );
    }
}
