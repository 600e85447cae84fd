//! Interface name patterns of a policy (`cali*`, `flannel.1`): shell globs matched against the
//! whole interface name.

use glob::{MatchOptions, Pattern};

/// A compiled list of interface patterns.
#[derive(Clone, Debug, Default)]
pub struct InterfacePatterns {
    patterns: Vec<Pattern>,
}

/// A pattern that is not a valid glob.
#[derive(Debug, thiserror::Error)]
#[error("{field}: {pattern:?} is not a valid interface pattern: {reason}")]
pub struct PatternError {
    /// The policy field the pattern came from.
    pub field: String,
    /// The pattern.
    pub pattern: String,
    /// Why it is invalid.
    pub reason: String,
}

const OPTIONS: MatchOptions = MatchOptions {
    case_sensitive: true,
    require_literal_separator: false,
    require_literal_leading_dot: false,
};

impl InterfacePatterns {
    /// Compile `patterns`; `field` names the policy field in errors.
    pub fn new(field: &str, patterns: &[String]) -> Result<Self, PatternError> {
        let patterns = patterns
            .iter()
            .map(|p| {
                Pattern::new(p).map_err(|e| PatternError {
                    field: field.to_string(),
                    pattern: p.clone(),
                    reason: e.msg.to_string(),
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { patterns })
    }

    /// Whether `name` matches any pattern.
    pub fn matches(&self, name: &str) -> bool {
        self.patterns.iter().any(|p| p.matches_with(name, OPTIONS))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_whole_names() {
        let p = InterfacePatterns::new(
            "interfaces",
            &["cali*".to_string(), "flannel.1".to_string()],
        )
        .unwrap();
        assert!(p.matches("cali12ab34cd"));
        assert!(p.matches("flannel.1"));
        assert!(!p.matches("flannel.10"));
        assert!(!p.matches("eth0"));
        assert!(!p.matches("xcali0"));
    }

    #[test]
    fn invalid_glob_names_the_field() {
        let err =
            InterfacePatterns::new("spec.checks.arpIgnore.interfaces", &["cali[".to_string()])
                .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("spec.checks.arpIgnore.interfaces")
        );
    }
}
