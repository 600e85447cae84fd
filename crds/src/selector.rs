//! `metav1.LabelSelector` matching, with the semantics of apimachinery's
//! `LabelSelectorAsSelector`: every `matchLabels` pair and every `matchExpressions` entry must
//! hold; an empty selector selects everything.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use std::collections::BTreeMap;

/// A selector that cannot be evaluated.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SelectorError {
    /// An operator other than `In`, `NotIn`, `Exists`, `DoesNotExist`.
    #[error(
        "nodeSelector.matchExpressions[{index}].operator: unknown operator {operator:?} (want In, NotIn, Exists or DoesNotExist)"
    )]
    UnknownOperator {
        /// The expression's index.
        index: usize,
        /// The operator given.
        operator: String,
    },
    /// `In`/`NotIn` without values, or `Exists`/`DoesNotExist` with values.
    #[error("nodeSelector.matchExpressions[{index}].values: {reason}")]
    BadValues {
        /// The expression's index.
        index: usize,
        /// What is wrong.
        reason: &'static str,
    },
}

/// Whether `selector` (absent = everything) selects an object with `labels`.
pub fn selects(
    selector: Option<&LabelSelector>,
    labels: &BTreeMap<String, String>,
) -> Result<bool, SelectorError> {
    let Some(selector) = selector else {
        return Ok(true);
    };
    if let Some(match_labels) = &selector.match_labels
        && match_labels.iter().any(|(k, v)| labels.get(k) != Some(v))
    {
        return Ok(false);
    }
    for (index, expr) in selector.match_expressions.iter().flatten().enumerate() {
        let values = expr.values.as_deref().unwrap_or_default();
        let value = labels.get(&expr.key);
        let holds = match expr.operator.as_str() {
            "In" | "NotIn" => {
                if values.is_empty() {
                    return Err(SelectorError::BadValues {
                        index,
                        reason: "In and NotIn need at least one value",
                    });
                }
                let found = value.is_some_and(|v| values.contains(v));
                if expr.operator == "In" { found } else { !found }
            }
            "Exists" | "DoesNotExist" => {
                if !values.is_empty() {
                    return Err(SelectorError::BadValues {
                        index,
                        reason: "Exists and DoesNotExist take no values",
                    });
                }
                value.is_some() == (expr.operator == "Exists")
            }
            other => {
                return Err(SelectorError::UnknownOperator {
                    index,
                    operator: other.to_string(),
                });
            }
        };
        if !holds {
            return Ok(false);
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn expr(key: &str, op: &str, values: &[&str]) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: (!values.is_empty()).then(|| values.iter().map(|v| v.to_string()).collect()),
        }
    }

    #[test]
    fn empty_or_absent_selector_selects_everything() {
        assert_eq!(selects(None, &labels(&[])), Ok(true));
        assert_eq!(
            selects(Some(&LabelSelector::default()), &labels(&[("a", "b")])),
            Ok(true)
        );
    }

    #[test]
    fn match_labels_and_expressions_must_all_hold() {
        let selector = LabelSelector {
            match_labels: Some(labels(&[("pool", "edge")]).into_iter().collect()),
            match_expressions: Some(vec![
                expr("zone", "In", &["a", "b"]),
                expr("netheal.io/skip", "DoesNotExist", &[]),
                expr("tier", "NotIn", &["db"]),
            ]),
        };
        let node = labels(&[("pool", "edge"), ("zone", "a")]);
        assert_eq!(selects(Some(&selector), &node), Ok(true));
        let other_pool = labels(&[("pool", "core"), ("zone", "a")]);
        assert_eq!(selects(Some(&selector), &other_pool), Ok(false));
        let skipped = labels(&[("pool", "edge"), ("zone", "a"), ("netheal.io/skip", "")]);
        assert_eq!(selects(Some(&selector), &skipped), Ok(false));
        let db = labels(&[("pool", "edge"), ("zone", "b"), ("tier", "db")]);
        assert_eq!(selects(Some(&selector), &db), Ok(false));
    }

    #[test]
    fn malformed_expressions_are_errors_naming_the_entry() {
        let selector = LabelSelector {
            match_expressions: Some(vec![expr("zone", "Near", &["a"])]),
            ..Default::default()
        };
        let err = selects(Some(&selector), &labels(&[])).unwrap_err();
        assert!(err.to_string().contains("matchExpressions[0].operator"));
        let selector = LabelSelector {
            match_expressions: Some(vec![expr("zone", "In", &[])]),
            ..Default::default()
        };
        assert!(matches!(
            selects(Some(&selector), &labels(&[])),
            Err(SelectorError::BadValues { index: 0, .. })
        ));
    }
}
