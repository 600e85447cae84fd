//! What the probes read from the kernel: plain data, no I/O. Checks consume a [`Snapshot`].

use ipnet::{Ipv4Net, Ipv6Net};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// `NUD_INCOMPLETE`.
pub const NUD_INCOMPLETE: u16 = 0x01;
/// `NUD_FAILED`.
pub const NUD_FAILED: u16 = 0x20;
/// `NUD_NOARP`.
pub const NUD_NOARP: u16 = 0x40;
/// `NUD_PERMANENT` (a permanent fdb entry reports 0xC0: test this bit, never equality).
pub const NUD_PERMANENT: u16 = 0x80;

/// A MAC address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    /// From raw link-layer bytes (anything but 6 bytes is not an Ethernet MAC).
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        <[u8; 6]>::try_from(bytes).ok().map(Mac)
    }

    /// Parse `aa:bb:cc:dd:ee:ff` (case-insensitive).
    pub fn parse(text: &str) -> Option<Self> {
        let mut out = [0u8; 6];
        let mut parts = text.trim().split(':');
        for byte in &mut out {
            let part = parts.next()?;
            if part.is_empty() || part.len() > 2 {
                return None;
            }
            *byte = u8::from_str_radix(part, 16).ok()?;
        }
        parts.next().is_none().then_some(Mac(out))
    }
}

impl Mac {
    /// `aa:bb:cc:dd:ee:ff`, written without the formatting machinery (a scan prints one per
    /// stale neighbour).
    pub fn text(&self) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = String::with_capacity(17);
        for (i, b) in self.0.iter().enumerate() {
            if i > 0 {
                out.push(':');
            }
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
        out
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text())
    }
}

/// The name `ip neigh` prints for a neighbour state (the highest bit wins).
pub fn state_name(state: u16) -> &'static str {
    match state {
        s if s & NUD_PERMANENT != 0 => "PERMANENT",
        s if s & NUD_NOARP != 0 => "NOARP",
        s if s & NUD_FAILED != 0 => "FAILED",
        s if s & 0x10 != 0 => "PROBE",
        s if s & 0x08 != 0 => "DELAY",
        s if s & 0x04 != 0 => "STALE",
        s if s & 0x02 != 0 => "REACHABLE",
        s if s & NUD_INCOMPLETE != 0 => "INCOMPLETE",
        _ => "NONE",
    }
}

/// A network interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    /// ifindex.
    pub index: u32,
    /// Name.
    pub name: String,
    /// Hardware address.
    pub mac: Option<Mac>,
    /// MTU, when the kernel said.
    pub mtu: Option<u32>,
    /// Administratively up (`IFF_UP`).
    pub up: bool,
    /// The link's kind (`veth`, `vxlan`, `bridge`), when it has one.
    pub kind: Option<String>,
    /// The ifindex of the bridge (or bond) it is a port of.
    pub master: Option<u32>,
}

/// An IPv4 address of an interface, with its prefix (`10.244.1.1/24`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Address {
    /// The interface's ifindex.
    pub ifindex: u32,
    /// The address and its prefix length.
    pub addr: Ipv4Net,
}

/// The names of the offload features active on one interface (`tx-checksum-ip-generic`), as
/// ethtool's netlink interface lists them.
pub type Features = BTreeSet<String>;

/// A neighbour entry: IPv4 (ARP, the default) or IPv6 (NDP, [`Neighbour6`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Neighbour<A = Ipv4Addr> {
    /// The neighbour's address.
    pub ip: A,
    /// The interface it is on.
    pub ifindex: u32,
    /// Its link-layer address, when known.
    pub lladdr: Option<Mac>,
    /// `NUD_*` bits.
    pub state: u16,
}

/// An IPv6 neighbour (NDP) entry.
pub type Neighbour6 = Neighbour<Ipv6Addr>;

impl<A> Neighbour<A> {
    /// PERMANENT (static) entry.
    pub fn is_permanent(&self) -> bool {
        self.state & NUD_PERMANENT != 0
    }
}

/// A bridge fdb entry with a remote destination (vxlan).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FdbEntry {
    /// The MAC.
    pub mac: Mac,
    /// The vxlan interface.
    pub ifindex: u32,
    /// The remote VTEP address.
    pub dst: IpAddr,
    /// `NUD_*` bits.
    pub state: u16,
}

/// An IPv6 unicast route (what the IPv6 checks need of it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route6 {
    /// Destination prefix.
    pub dst: Ipv6Net,
    /// Output interface.
    pub oif: Option<u32>,
    /// Routing table.
    pub table: u32,
}

/// An IPv4 unicast route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route {
    /// Destination prefix.
    pub dst: Ipv4Net,
    /// Output interface.
    pub oif: Option<u32>,
    /// Gateway.
    pub gateway: Option<Ipv4Addr>,
    /// Routing table.
    pub table: u32,
}

/// Which iptables backend holds the rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Backend {
    /// `iptables-nft`.
    Nft,
    /// `iptables-legacy`.
    Legacy,
}

impl Backend {
    /// `nft` or `legacy`, as reports and order parameters spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Nft => "nft",
            Backend::Legacy => "legacy",
        }
    }

    /// Parse `nft` / `legacy`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "nft" => Some(Backend::Nft),
            "legacy" => Some(Backend::Legacy),
            _ => None,
        }
    }

    /// The `iptables` (or `ip6tables`) binary of this backend.
    pub fn iptables(self, family: IpFamily) -> &'static str {
        match (family, self) {
            (IpFamily::V4, Backend::Nft) => "iptables-nft",
            (IpFamily::V4, Backend::Legacy) => "iptables-legacy",
            (IpFamily::V6, Backend::Nft) => "ip6tables-nft",
            (IpFamily::V6, Backend::Legacy) => "ip6tables-legacy",
        }
    }

    /// The `iptables-save` (or `ip6tables-save`) binary of this backend.
    pub fn save(self, family: IpFamily) -> &'static str {
        match (family, self) {
            (IpFamily::V4, Backend::Nft) => "iptables-nft-save",
            (IpFamily::V4, Backend::Legacy) => "iptables-legacy-save",
            (IpFamily::V6, Backend::Nft) => "ip6tables-nft-save",
            (IpFamily::V6, Backend::Legacy) => "ip6tables-legacy-save",
        }
    }

    /// The `iptables-restore` (or `ip6tables-restore`) binary of this backend.
    pub fn restore(self, family: IpFamily) -> &'static str {
        match (family, self) {
            (IpFamily::V4, Backend::Nft) => "iptables-nft-restore",
            (IpFamily::V4, Backend::Legacy) => "iptables-legacy-restore",
            (IpFamily::V6, Backend::Nft) => "ip6tables-nft-restore",
            (IpFamily::V6, Backend::Legacy) => "ip6tables-legacy-restore",
        }
    }
}

/// The address family of a rule set: `iptables` or `ip6tables`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum IpFamily {
    /// IPv4 (`iptables`).
    #[default]
    V4,
    /// IPv6 (`ip6tables`).
    V6,
}

impl IpFamily {
    /// `ip` or `ip6`, as findings and order parameters spell it (nftables' family names).
    pub fn as_str(self) -> &'static str {
        match self {
            IpFamily::V4 => "ip",
            IpFamily::V6 => "ip6",
        }
    }

    /// Parse `ip` / `ip6`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "ip" => Some(IpFamily::V4),
            "ip6" => Some(IpFamily::V6),
            _ => None,
        }
    }

    /// `iptables` or `ip6tables`.
    pub fn tool(self) -> &'static str {
        match self {
            IpFamily::V4 => "iptables",
            IpFamily::V6 => "ip6tables",
        }
    }
}

/// One rule as `iptables-save` prints it: `-A <chain> <spec>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// `filter`, `nat`, ...
    pub table: String,
    /// The chain.
    pub chain: String,
    /// Everything after `-A CHAIN `, verbatim.
    pub spec: String,
}

/// The iptables rules of one backend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Iptables {
    /// The backend the rules were read from.
    pub backend: Backend,
    /// Every rule of every table, in order.
    pub rules: Vec<Rule>,
}

/// A chain of an nftables table, as `nft -j list ruleset` lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NftChain {
    /// `ip`, `ip6`, `inet`, `arp`, `bridge`, `netdev`.
    pub family: String,
    /// The table's name.
    pub table: String,
    /// The chain's name.
    pub name: String,
    /// The hook of a base chain (`input`, `forward`, ...); `None` for a regular chain.
    pub hook: Option<String>,
}

/// One nftables rule.
#[derive(Clone, Debug, PartialEq)]
pub struct NftRule {
    /// The table's family.
    pub family: String,
    /// The table's name.
    pub table: String,
    /// The chain's name.
    pub chain: String,
    /// The rule's handle (unique in its table while the table exists).
    pub handle: u64,
    /// The rule's comment.
    pub comment: Option<String>,
    /// Its statements in libnftables' JSON form, `counter` statements left out (their numbers
    /// change with every packet, the rule does not).
    pub expr: Vec<serde_json::Value>,
}

impl NftRule {
    /// Its statements as one line of compact JSON: what a fix compares before it deletes.
    pub fn canonical_expr(&self) -> String {
        serde_json::Value::Array(self.expr.clone()).to_string()
    }
}

/// The nftables ruleset of a namespace: the chains and rules of every table and family.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Nftables {
    /// Every chain.
    pub chains: Vec<NftChain>,
    /// Every rule, in order within its chain.
    pub rules: Vec<NftRule>,
    /// Every table of the ruleset (family, name), read or not.
    pub tables: Vec<(String, String)>,
}

/// Sysctl values keyed by their path under `/proc/sys` with slashes
/// (`net/ipv4/conf/flannel.1/arp_ignore`).
pub type Sysctls = BTreeMap<String, String>;

/// The state of one network namespace.
#[derive(Clone, Debug, Default)]
pub struct NsSnapshot {
    /// Links.
    pub links: Vec<Link>,
    /// IPv4 neighbours.
    pub neighbours: Vec<Neighbour>,
    /// vxlan fdb entries with a remote destination.
    pub fdb: Vec<FdbEntry>,
    /// IPv4 unicast routes of every table except `local`.
    pub routes: Vec<Route>,
    /// IPv6 neighbours (empty on a kernel without IPv6).
    pub neighbours6: Vec<Neighbour6>,
    /// IPv6 unicast routes of every table except `local`.
    pub routes6: Vec<Route6>,
    /// The sysctls the checks read.
    pub sysctls: Sysctls,
    /// The rules of the backend in use.
    pub iptables: Option<Iptables>,
    /// The `ip6tables` rules of the same backend (read on clusters with IPv6 pod ranges).
    pub ip6tables: Option<Iptables>,
    /// The nftables ruleset (`None` when `nft` is not installed or was not read).
    pub nftables: Option<Nftables>,
    /// IPv4 addresses of every interface.
    pub addresses: Vec<Address>,
    /// The active offload features of the interfaces the `TunnelOffload` check names, by
    /// interface name (only those that exist).
    pub features: BTreeMap<String, Features>,
    /// What kube-proxy's IPVS and nftables modes hold of the Service IPs (`ServiceVipMissing`).
    pub proxy: ProxyTables,
}

/// One (protocol, address, port) a Service proxy handles: an IPVS virtual service, an element
/// of kube-proxy's `service-ips` map, a `KUBE-SERVICES` rule.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceKey {
    /// `tcp`, `udp` or `sctp`.
    pub protocol: String,
    /// The Service IP (IPv4, or IPv6 on a dual-stack cluster).
    pub addr: IpAddr,
    /// The Service port.
    pub port: u16,
}

/// kube-proxy's Service tables besides iptables (whose rules are in [`NsSnapshot::iptables`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProxyTables {
    /// The IPv4 and IPv6 virtual services of `/proc/net/ip_vs`; `None` without IPVS in the
    /// kernel.
    pub ipvs: Option<Vec<ServiceKey>>,
    /// The keys of `map ip kube-proxy service-ips`; `None` without that table.
    pub nft: Option<Vec<ServiceKey>>,
    /// The keys of `map ip6 kube-proxy service-ips` (dual-stack); `None` without that table.
    pub nft6: Option<Vec<ServiceKey>>,
}

impl NsSnapshot {
    /// Whether a non-default route of the dumped main tables (IPv4 or IPv6, by `net`'s family)
    /// covers `net`.
    pub fn routes_cover(&self, net: ipnet::IpNet) -> bool {
        match net {
            ipnet::IpNet::V4(net) => self
                .routes
                .iter()
                .any(|r| r.dst.prefix_len() > 0 && r.dst.contains(&net)),
            ipnet::IpNet::V6(net) => self
                .routes6
                .iter()
                .any(|r| r.dst.prefix_len() > 0 && r.dst.contains(&net)),
        }
    }

    /// The name of interface `index`.
    pub fn link_name(&self, index: u32) -> Option<&str> {
        self.links
            .iter()
            .find(|l| l.index == index)
            .map(|l| l.name.as_str())
    }

    /// The interfaces of the default routes (the node's uplinks).
    pub fn default_route_interfaces(&self) -> Vec<&str> {
        self.routes
            .iter()
            .filter(|r| r.dst.prefix_len() == 0)
            .filter_map(|r| r.oif.and_then(|i| self.link_name(i)))
            .collect()
    }

    /// The link called `name`.
    pub fn link_by_name(&self, name: &str) -> Option<&Link> {
        self.links.iter().find(|l| l.name == name)
    }
}

/// A pod network namespace.
#[derive(Clone, Debug, Default)]
pub struct PodSnapshot {
    /// Its name (`cni-…`).
    pub name: String,
    /// Its sysctls.
    pub sysctls: Sysctls,
}

/// Everything one scan read.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// The host namespace.
    pub host: NsSnapshot,
    /// The pod namespaces.
    pub pods: Vec<PodSnapshot>,
    /// Files of the node itself (not of a network namespace).
    pub node: NodeFiles,
}

/// What the node's files say, read beside the namespaces.
#[derive(Clone, Debug, Default)]
pub struct NodeFiles {
    /// The kernel release (`/proc/sys/kernel/osrelease`: `6.1.0-27-amd64`).
    pub kernel_release: Option<String>,
    /// flannel's lease file (`/run/flannel/subnet.env`), `None` when absent or not read.
    pub flannel_lease: Option<FileText>,
}

/// A file's path and text.
#[derive(Clone, Debug, Default)]
pub struct FileText {
    /// Where it was read (as the node-fixer sees it).
    pub path: String,
    /// What it holds.
    pub text: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_round_trips_and_rejects_junk() {
        let mac = Mac::parse("AA:bb:0c:dd:ee:01").unwrap();
        assert_eq!(mac.to_string(), "aa:bb:0c:dd:ee:01");
        assert!(Mac::parse("aa:bb:cc:dd:ee").is_none());
        assert!(Mac::parse("aa:bb:cc:dd:ee:ff:00").is_none());
        assert!(Mac::parse("zz:bb:cc:dd:ee:ff").is_none());
        assert!(Mac::parse("").is_none());
    }

    proptest::proptest! {
        #[test]
        fn any_mac_round_trips_through_text(bytes in proptest::array::uniform6(0u8..)) {
            let mac = Mac(bytes);
            proptest::prop_assert_eq!(Mac::parse(&mac.to_string()), Some(mac));
            proptest::prop_assert_eq!(Mac::parse(&mac.to_string().to_uppercase()), Some(mac));
        }
    }

    #[test]
    fn permanent_bit_is_tested_not_compared() {
        assert_eq!(state_name(0xC0), "PERMANENT");
        assert_eq!(state_name(NUD_INCOMPLETE), "INCOMPLETE");
        assert_eq!(state_name(NUD_FAILED), "FAILED");
        assert_eq!(state_name(0), "NONE");
    }
}
