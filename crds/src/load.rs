//! Reading a policy from a file, as `node-fixer --policy FILE` and tests do: the same checks the
//! API server makes (types, enums, defaults, CEL rules), with errors that name the field.

use crate::patterns::InterfacePatterns;
use crate::policy::NetworkHealthPolicy;
use crate::selector;
use kube::CustomResourceExt;

/// Why a policy document was refused.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// Not YAML (or JSON) at all.
    #[error("policy is not valid YAML: {0}")]
    Yaml(#[from] serde_yaml::Error),
    /// Wrong `apiVersion` or `kind`.
    #[error("{field}: expected {expected:?}, found {found:?}")]
    WrongType {
        /// `apiVersion` or `kind`.
        field: &'static str,
        /// What a policy has.
        expected: &'static str,
        /// What the document has.
        found: String,
    },
    /// A field of the wrong type or an unknown enum value.
    #[error("{path}: {message}")]
    Field {
        /// The field's path (`spec.mode`).
        path: String,
        /// What is wrong.
        message: String,
    },
    /// A CEL validation rule failed.
    #[error("{0}")]
    Rule(String),
}

/// Parse and validate one `NetworkHealthPolicy` document (YAML or JSON).
pub fn parse_policy(text: &str) -> Result<NetworkHealthPolicy, PolicyError> {
    let value: serde_json::Value = serde_yaml::from_str(text)?;
    check_type(&value, "apiVersion", "netheal.io/v1alpha1")?;
    check_type(&value, "kind", "NetworkHealthPolicy")?;
    let policy: NetworkHealthPolicy =
        serde_path_to_error::deserialize(&value).map_err(|e| PolicyError::Field {
            path: e.path().to_string(),
            message: e.inner().to_string(),
        })?;
    validate_policy(&policy)?;
    Ok(policy)
}

fn check_type(
    value: &serde_json::Value,
    field: &'static str,
    expected: &'static str,
) -> Result<(), PolicyError> {
    let found = value
        .get(field)
        .and_then(|v| v.as_str())
        .unwrap_or_default();
    if found != expected {
        return Err(PolicyError::WrongType {
            field,
            expected,
            found: found.to_string(),
        });
    }
    Ok(())
}

/// Run the CRD's CEL rules, the selector and the interface globs against a typed policy (the
/// operator calls this on every policy it reads, so a policy that slipped past an older
/// schema is refused with a condition instead of acted upon).
pub fn validate_policy(policy: &NetworkHealthPolicy) -> Result<(), PolicyError> {
    let crd = NetworkHealthPolicy::crd();
    let schema = crd
        .spec
        .versions
        .first()
        .and_then(|v| v.schema.as_ref())
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .and_then(|s| serde_json::to_value(s).ok())
        .ok_or_else(|| PolicyError::Rule("the NetworkHealthPolicy CRD has no schema".into()))?;
    let object =
        serde_json::to_value(policy).map_err(|e| PolicyError::Rule(format!("policy: {e}")))?;
    if let Err(errors) = kube::core::cel::Validator::new().validate(&schema, &object, None) {
        let messages: Vec<String> = errors.iter().map(|e| e.message.clone()).collect();
        return Err(PolicyError::Rule(messages.join("; ")));
    }
    selector::selects(policy.spec.node_selector.as_ref(), &Default::default()).map_err(|e| {
        PolicyError::Field {
            path: "spec.nodeSelector".into(),
            message: e.to_string(),
        }
    })?;
    let checks = &policy.spec.checks;
    for (field, patterns) in [
        (
            "spec.checks.arpIgnore.interfaces",
            &checks.arp_ignore.interfaces,
        ),
        (
            "spec.checks.staleNeighbours.interfaces",
            &checks.stale_neighbours.interfaces,
        ),
        (
            "spec.checks.tunnelOffload.interfaces",
            &checks.tunnel_offload.interfaces,
        ),
    ] {
        InterfacePatterns::new(field, patterns).map_err(|e| PolicyError::Field {
            path: field.into(),
            message: e.to_string(),
        })?;
    }
    Ok(())
}
