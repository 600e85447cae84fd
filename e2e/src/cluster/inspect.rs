//! Parsers for what `ip -j` and `bridge -j` print: the neighbours, fdb entries and routes a
//! test asserts on. Pure functions over the JSON text; the cluster runs the commands.

use serde::Deserialize;

use super::ClusterError;

/// One neighbour (ARP) entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Neighbour {
    /// The IP address.
    pub dst: String,
    /// The interface.
    pub dev: String,
    /// The link-layer address, when known.
    #[serde(default)]
    pub lladdr: Option<String>,
    /// NUD states (`PERMANENT`, `REACHABLE`, `INCOMPLETE`, `FAILED`…).
    #[serde(default)]
    pub state: Vec<String>,
}

impl Neighbour {
    /// True when the entry is PERMANENT.
    pub fn is_permanent(&self) -> bool {
        self.state.iter().any(|s| s == "PERMANENT")
    }

    /// True when the entry is INCOMPLETE or FAILED (resolution pending or failed).
    pub fn is_unresolved(&self) -> bool {
        self.state
            .iter()
            .any(|s| s == "INCOMPLETE" || s == "FAILED")
    }
}

/// One bridge fdb entry of a VXLAN device.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct FdbEntry {
    /// The MAC address.
    pub mac: String,
    /// The remote VTEP (underlay) address, when the entry has one.
    #[serde(default)]
    pub dst: Option<String>,
    /// The entry's state (`permanent`…).
    #[serde(default)]
    pub state: Option<String>,
}

/// One route (IPv4 or IPv6).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Route {
    /// The destination (`default`, `10.244.2.0/24`, `10.244.1.5`).
    pub dst: String,
    /// The gateway, when the route has one.
    #[serde(default)]
    pub gateway: Option<String>,
    /// The interface, when the route names one.
    #[serde(default)]
    pub dev: Option<String>,
    /// Route flags (`onlink`…).
    #[serde(default)]
    pub flags: Vec<String>,
}

fn parse<T: for<'de> Deserialize<'de>>(what: &str, json: &str) -> Result<Vec<T>, ClusterError> {
    if json.trim().is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_str(json).map_err(|source| ClusterError::Parse {
        what: what.to_string(),
        source,
    })
}

/// Parse `ip -j neigh show`.
pub fn parse_neighbours(json: &str) -> Result<Vec<Neighbour>, ClusterError> {
    parse("ip -j neigh show", json)
}

/// Parse `bridge -j fdb show`.
pub fn parse_fdb(json: &str) -> Result<Vec<FdbEntry>, ClusterError> {
    parse("bridge -j fdb show", json)
}

/// Parse `ip -j route show`.
pub fn parse_routes(json: &str) -> Result<Vec<Route>, ClusterError> {
    parse("ip -j route show", json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neighbours_parse_with_and_without_lladdr() {
        let json = r#"[{"dst":"10.9.9.9","dev":"v0","state":["INCOMPLETE"]},{"dst":"10.244.2.0","dev":"flannel.1","lladdr":"0a:00:00:00:00:01","state":["PERMANENT"]}]"#;
        let n = parse_neighbours(json).unwrap();
        assert!(n[0].is_unresolved() && !n[0].is_permanent());
        assert!(n[1].is_permanent());
        assert_eq!(n[1].lladdr.as_deref(), Some("0a:00:00:00:00:01"));
    }

    #[test]
    fn fdb_and_routes_parse() {
        let fdb = parse_fdb(
            r#"[{"mac":"0a:00:00:00:00:01","dst":"10.1.1.2","flags":["self"],"state":"permanent"}]"#,
        )
        .unwrap();
        assert_eq!(fdb[0].dst.as_deref(), Some("10.1.1.2"));
        let routes = parse_routes(r#"[{"dst":"10.244.2.0/24","gateway":"10.244.2.0","dev":"flannel.1","flags":["onlink"]}]"#).unwrap();
        assert_eq!(routes[0].flags, vec!["onlink"]);
        assert!(parse_routes("").unwrap().is_empty());
    }

    #[test]
    fn garbage_is_an_error_naming_the_command() {
        let err = parse_neighbours("not json").unwrap_err().to_string();
        assert!(err.contains("ip -j neigh show"), "{err}");
    }
}
