//! Fault injectors: one per fault of the catalogue (`FAULTS.md`). Each injector breaks the
//! cluster the way the field incident did, returns what it changed, and names a symptom that
//! [`Cluster::symptom_present`] can prove. None of them undoes itself: undoing is the job of
//! the healing under test.

use std::net::{IpAddr, Ipv4Addr};

use super::inspect::Neighbour;
use super::plan::{CALICO_VXLAN_DEVICE, VXLAN_DEVICE, VXLAN_DEVICE_V6};
use super::{Cluster, ClusterError, PodOptions, PodOwner, PodStyle, commands, read_sysctl, run_in};
use crate::netns::run;

/// The faults, named as in the catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// `arp_ignore=2` on a node, inherited by a pod created meanwhile (000).
    ArpIgnore,
    /// `ip_forward=0` on a node (004 §2).
    IpForward,
    /// REJECT `icmp-host-prohibited` in INPUT and FORWARD (004 §6).
    RejectRule,
    /// A node rejoined with a new VTEP MAC; peers keep stale PERMANENT entries (003, flannel).
    StaleVtep,
    /// A peer lost its neighbour entry for a node's VTEP (003).
    VtepMissing,
    /// Several pods share one IP; stale PERMANENT neighbours on `cali*` veths (002).
    DuplicatePodIp,
    /// A peer lost its route to a node's pod CIDR (001).
    PeerRouteMissing,
    /// A node vanished without its peers being told: their entries for it are stale (003).
    VanishedNode,
    /// `proxy_arp=0` on a Calico pod's `cali*` veth (000, report-only).
    ProxyArpOff,
}

/// The address family an injector breaks, where a fault has an IPv4 and an IPv6 variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// IPv4 (`flannel.1`, `iptables`, `net.ipv4.*`).
    V4,
    /// IPv6 (`flannel-v6.1`, `ip6tables`, `net.ipv6.*`), on a dual-stack cluster.
    V6,
}

/// How a neighbour entry is lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LostHow {
    /// The entry is deleted.
    Deleted,
    /// The entry is replaced by an INCOMPLETE one (what seed 003 showed).
    Incomplete,
}

/// One change an injector made, in enough detail to assert on and to undo by hand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A sysctl was written.
    Sysctl {
        /// Namespace.
        netns: String,
        /// Path under `/proc/sys`.
        path: String,
        /// Value before.
        before: String,
        /// Value after.
        after: String,
    },
    /// An iptables rule was added (`iptables-save` form, `-A CHAIN …`).
    Rule {
        /// Namespace.
        netns: String,
        /// The rule as `iptables-save` prints it.
        rule: String,
        /// True for rules that belong to Kubernetes and must survive any healing.
        must_survive: bool,
    },
    /// An nftables ruleset was loaded (`nft -f`).
    NftRuleset {
        /// Namespace.
        netns: String,
        /// The tables it holds (`inet firewalld`, ...).
        tables: Vec<String>,
    },
    /// The VTEP MAC of a node changed.
    VtepMac {
        /// Node.
        node: String,
        /// MAC before.
        before: String,
        /// MAC after.
        after: String,
    },
    /// A neighbour entry is now stale (it points at something that is no longer true).
    StaleNeighbour {
        /// Namespace.
        netns: String,
        /// IP.
        ip: IpAddr,
        /// Interface.
        dev: String,
        /// The stale link-layer address.
        lladdr: String,
    },
    /// An fdb entry is now stale.
    StaleFdb {
        /// Namespace.
        netns: String,
        /// MAC.
        mac: String,
        /// Remote VTEP.
        dst: IpAddr,
    },
    /// A neighbour entry was removed or made INCOMPLETE.
    LostNeighbour {
        /// Namespace.
        netns: String,
        /// IP.
        ip: IpAddr,
        /// Interface.
        dev: String,
        /// The link-layer address it had.
        lladdr: String,
        /// How it was lost.
        how: LostHow,
    },
    /// A route was deleted.
    RouteRemoved {
        /// Namespace.
        netns: String,
        /// Destination.
        dst: String,
    },
    /// A pod was created by the injector.
    PodAdded {
        /// Its namespace.
        netns: String,
        /// Its object name.
        name: String,
        /// Its address.
        ip: Ipv4Addr,
        /// Whether it carries the host route for its address.
        routed: bool,
    },
}

/// How to see that a fault is there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Symptom {
    /// `from_pod` cannot ping `to_pod`.
    Unreachable {
        /// Pod namespace pinging.
        from_pod: String,
        /// Pod namespace pinged.
        to_pod: String,
    },
    /// `from_pod` cannot ping `to_pod`'s IPv6 address (dual-stack clusters).
    Unreachable6 {
        /// Pod namespace pinging.
        from_pod: String,
        /// Pod namespace pinged.
        to_pod: String,
    },
    /// Nodes that still hold a PERMANENT `flannel.1` neighbour for `ip`, a VTEP no Node owns.
    LeftoverVtep {
        /// The nodes to look at.
        nodes: Vec<String>,
        /// The vanished VTEP address.
        ip: Ipv4Addr,
    },
    /// PERMANENT neighbours for `ip` on `cali*` interfaces that the host route does not name.
    StaleNeighbours {
        /// Node.
        node: String,
        /// The duplicated address.
        ip: Ipv4Addr,
    },
}

/// What an injector did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Injected {
    /// Which fault.
    pub fault: Fault,
    /// The node at fault (where a fixer has to act).
    pub node: String,
    /// Every change made.
    pub changes: Vec<Change>,
    /// How to prove the fault is there.
    pub symptom: Symptom,
}

/// The kube-proxy rule every REJECT injection adds; it must survive any healing.
pub const KUBE_PROXY_RULE: &str = "-A KUBE-SERVICES -d 10.96.0.10/32 -p tcp -m comment --comment \"default/svc: has no endpoints\" -m tcp --dport 80 -j REJECT --reject-with icmp-port-unreachable";
/// The jump into kube-proxy's chain.
pub const KUBE_PROXY_JUMP: &str =
    "-A OUTPUT -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES";
/// The firewall rules a RHEL-style default firewall adds.
pub const REJECT_RULES: [&str; 2] = [
    "-A INPUT -j REJECT --reject-with icmp-host-prohibited",
    "-A FORWARD -j REJECT --reject-with icmp-host-prohibited",
];

/// kube-proxy's IPv6 REJECT for a Service without endpoints (dual-stack); it must survive.
pub const KUBE_PROXY_RULE_V6: &str = "-A KUBE-SERVICES -d fd00:10:96::a/128 -p tcp -m comment --comment \"default/svc: has no endpoints\" -m tcp --dport 80 -j REJECT --reject-with icmp6-port-unreachable";
/// The IPv6 firewall rules a RHEL-style default firewall adds (`ip6tables`).
pub const REJECT_RULES_V6: [&str; 2] = [
    "-A INPUT -j REJECT --reject-with icmp6-adm-prohibited",
    "-A FORWARD -j REJECT --reject-with icmp6-adm-prohibited",
];

/// The seed-004 REJECT as a RHEL 8/9 node has it today: firewalld on its nftables backend
/// (`table inet firewalld`, abridged, its catch-all `reject with icmpx admin-prohibited` ending
/// `filter_INPUT` and `filter_FORWARD`; the public zone's ICMP accept left out so that a ping
/// proves the fault), beside kube-proxy's nftables-mode table with its own `reject`. `nft -f`
/// syntax; `iptables-save` shows none of it.
pub const FIREWALLD_RULESET: &str = include_str!("firewalld-kube-proxy.nft");

/// The tables of [`FIREWALLD_RULESET`].
pub const FIREWALLD_TABLES: [&str; 2] = ["inet firewalld", "ip kube-proxy"];

/// The two rules netheal removes from [`FIREWALLD_RULESET`], as findings name them.
pub const FIREWALLD_REJECTS: [&str; 2] = [
    "inet firewalld filter_INPUT reject with icmpx admin-prohibited",
    "inet firewalld filter_FORWARD reject with icmpx admin-prohibited",
];

/// The seed-004 INPUT rule as `iptables` arguments, with `op` (`-A`, `-D`, `-C`) in front.
pub fn reject_input_args(op: &str) -> [&str; 6] {
    [
        op,
        "INPUT",
        "-j",
        "REJECT",
        "--reject-with",
        "icmp-host-prohibited",
    ]
}

/// Split an `iptables-save` rule line into arguments (double quotes group words).
pub fn split_rule(rule: &str) -> Vec<String> {
    let mut args = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut any = false;
    for c in rule.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                any = true;
            }
            ' ' if !quoted => {
                if any {
                    args.push(std::mem::take(&mut current));
                    any = false;
                }
            }
            _ => {
                current.push(c);
                any = true;
            }
        }
    }
    if any {
        args.push(current);
    }
    args
}

impl Cluster {
    fn first_pod_on(&self, node: &str) -> Result<String, ClusterError> {
        self.pods_on(node)
            .next()
            .map(|p| p.netns.name().to_string())
            .ok_or_else(|| ClusterError::UnknownPod(format!("any pod on {node} to probe with")))
    }

    fn first_pod_off(&self, node: &str) -> Result<String, ClusterError> {
        self.pods
            .iter()
            .find(|p| p.node != node)
            .map(|p| p.netns.name().to_string())
            .ok_or_else(|| ClusterError::UnknownPod(format!("any pod off {node} to probe with")))
    }

    /// The symptom "a pod off `node` cannot reach a pod on `node`" in `family`.
    fn unreachable(
        &self,
        from_pod: String,
        to_pod: String,
        family: Family,
    ) -> Result<Symptom, ClusterError> {
        Ok(match family {
            Family::V4 => Symptom::Unreachable { from_pod, to_pod },
            Family::V6 => {
                self.require_ipv6()?;
                Symptom::Unreachable6 { from_pod, to_pod }
            }
        })
    }

    fn require_ipv6(&self) -> Result<(), ClusterError> {
        if self.stack.has_ipv6() {
            Ok(())
        } else {
            Err(ClusterError::Value {
                what: format!("IPv6 fault on cluster {}", self.name()),
                value: "an IPv4-only cluster (build it dual-stack)".into(),
            })
        }
    }

    /// Refuse a flannel-only injector on a Calico cluster.
    fn require_flannel(&self, injector: &str) -> Result<(), ClusterError> {
        if self.overlay == super::Overlay::Flannel {
            Ok(())
        } else {
            Err(ClusterError::Value {
                what: format!("{injector} on cluster {}", self.name()),
                value: "a Calico cluster (the fault is flannel's)".into(),
            })
        }
    }

    fn write_sysctl(&self, netns: &str, path: &str, value: &str) -> Result<Change, ClusterError> {
        let ns = self.netns(netns)?;
        let before = read_sysctl(ns, path)?;
        ns.set_sysctl(path, value)?;
        Ok(Change::Sysctl {
            netns: netns.to_string(),
            path: path.to_string(),
            before,
            after: value.to_string(),
        })
    }

    /// Seed 000: `arp_ignore=2` in `conf/all` and `conf/default` of `node`, then a new pod of
    /// `style` created on it inherits the values. With a Calico pod (address /32), the pod no
    /// longer answers the node's ARP, so pods on other nodes cannot reach it. (A bridge pod
    /// shares a /24 with `cni0` and keeps answering: use Calico to see the symptom.)
    pub fn inject_arp_ignore(
        &mut self,
        node: &str,
        style: PodStyle,
    ) -> Result<Injected, ClusterError> {
        let ns = self.node(node)?.netns.name().to_string();
        let from_pod = self.first_pod_off(node)?;
        let mut changes = vec![
            self.write_sysctl(&ns, "net/ipv4/conf/all/arp_ignore", "2")?,
            self.write_sysctl(&ns, "net/ipv4/conf/default/arp_ignore", "2")?,
        ];
        let mut opts = PodOptions::new(style);
        opts.app = "joined".into();
        let pod = self.add_pod(node, opts)?;
        let (pod_ns, name, ip) = (pod.netns.name().to_string(), pod.name.clone(), pod.ip);
        changes.push(Change::PodAdded {
            netns: pod_ns.clone(),
            name,
            ip,
            routed: true,
        });
        for scope in ["all", "default"] {
            let path = format!("net/ipv4/conf/{scope}/arp_ignore");
            let after = self.sysctl(&pod_ns, &path)?;
            changes.push(Change::Sysctl {
                netns: pod_ns.clone(),
                path,
                before: "0".into(),
                after,
            });
        }
        Ok(Injected {
            fault: Fault::ArpIgnore,
            node: node.to_string(),
            changes,
            symptom: Symptom::Unreachable {
                from_pod,
                to_pod: pod_ns,
            },
        })
    }

    /// Seed 004 §2: `net.ipv4.ip_forward=0` on `node`: pods on other nodes cannot reach its
    /// pods.
    pub fn inject_ip_forward_off(&self, node: &str) -> Result<Injected, ClusterError> {
        let ns = self.node(node)?.netns.name().to_string();
        let symptom = Symptom::Unreachable {
            from_pod: self.first_pod_off(node)?,
            to_pod: self.first_pod_on(node)?,
        };
        let changes = vec![self.write_sysctl(&ns, "net/ipv4/ip_forward", "0")?];
        Ok(Injected {
            fault: Fault::IpForward,
            node: node.to_string(),
            changes,
            symptom,
        })
    }

    /// Seed 004 §2, IPv6: `net.ipv6.conf.all.forwarding=0` on `node` of a dual-stack cluster:
    /// pods on other nodes cannot reach its pods over IPv6 (IPv4 still works).
    pub fn inject_ip6_forward_off(&self, node: &str) -> Result<Injected, ClusterError> {
        let ns = self.node(node)?.netns.name().to_string();
        let symptom = self.unreachable(
            self.first_pod_off(node)?,
            self.first_pod_on(node)?,
            Family::V6,
        )?;
        let changes = vec![self.write_sysctl(&ns, "net/ipv6/conf/all/forwarding", "0")?];
        Ok(Injected {
            fault: Fault::IpForward,
            node: node.to_string(),
            changes,
            symptom,
        })
    }

    /// Seed 004 §6, IPv6: `ip6tables` `-A INPUT/FORWARD -j REJECT --reject-with
    /// icmp6-adm-prohibited` on `node` of a dual-stack cluster, plus kube-proxy's IPv6 REJECT
    /// ([`KUBE_PROXY_RULE_V6`]) and its jump, which must survive. The INPUT rule drops the
    /// VXLAN packets of `flannel-v6.1` (and the underlay's neighbour discovery), so pods on other
    /// nodes cannot reach the node's pods over IPv6; IPv4 is untouched.
    pub fn inject_ip6tables_rejects(&self, node: &str) -> Result<Injected, ClusterError> {
        let ns = self.node(node)?;
        let netns = ns.netns.name().to_string();
        let symptom = self.unreachable(
            self.first_pod_off(node)?,
            self.first_pod_on(node)?,
            Family::V6,
        )?;
        let _ = ns
            .netns
            .exec("ip6tables", &["-t", "filter", "-N", "KUBE-SERVICES"]);
        let mut changes = Vec::new();
        for (rule, must_survive) in [
            (KUBE_PROXY_RULE_V6, true),
            (KUBE_PROXY_JUMP, true),
            (REJECT_RULES_V6[0], false),
            (REJECT_RULES_V6[1], false),
        ] {
            let args = split_rule(rule);
            let mut all: Vec<&str> = vec!["-t", "filter"];
            all.extend(args.iter().map(String::as_str));
            ns.netns.exec("ip6tables", &all)?;
            changes.push(Change::Rule {
                netns: netns.clone(),
                rule: rule.to_string(),
                must_survive,
            });
        }
        Ok(Injected {
            fault: Fault::RejectRule,
            node: node.to_string(),
            changes,
            symptom,
        })
    }

    /// `ip6tables-save -t filter` inside a node.
    pub fn ip6tables_save(&self, node: &str) -> Result<String, ClusterError> {
        let out = self
            .node(node)?
            .netns
            .exec("ip6tables-save", &["-t", "filter"])?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// True when `ip6tables-save` in `node` lists exactly this rule line.
    pub fn has_rule6(&self, node: &str, rule: &str) -> Result<bool, ClusterError> {
        Ok(self.ip6tables_save(node)?.lines().any(|l| l.trim() == rule))
    }

    /// Seed 004 §6: `-A INPUT/FORWARD -j REJECT --reject-with icmp-host-prohibited` on `node`,
    /// plus a kube-proxy REJECT rule (comment `default/svc: has no endpoints`) in
    /// `KUBE-SERVICES` that must survive. The INPUT rule also drops the VXLAN packets, so pods
    /// on other nodes cannot reach the node's pods.
    pub fn inject_reject_rules(&self, node: &str) -> Result<Injected, ClusterError> {
        self.inject_reject_rules_timed(node)
            .map(|(injected, _)| injected)
    }

    /// [`Cluster::inject_reject_rules`], with the moment the first REJECT rule went in (after
    /// the kube-proxy rules that must survive): when the fault begins.
    pub fn inject_reject_rules_timed(
        &self,
        node: &str,
    ) -> Result<(Injected, std::time::Instant), ClusterError> {
        let netns = self.node(node)?.netns.name().to_string();
        let ns = self.node(node)?;
        let symptom = Symptom::Unreachable {
            from_pod: self.first_pod_off(node)?,
            to_pod: self.first_pod_on(node)?,
        };
        let mut changes = Vec::new();
        let mut began = std::time::Instant::now();
        let _ = ns
            .netns
            .exec("iptables", &["-t", "filter", "-N", "KUBE-SERVICES"]);
        for (rule, must_survive) in [
            (KUBE_PROXY_RULE, true),
            (KUBE_PROXY_JUMP, true),
            (REJECT_RULES[0], false),
            (REJECT_RULES[1], false),
        ] {
            if rule == REJECT_RULES[0] {
                began = std::time::Instant::now();
            }
            let args = split_rule(rule);
            let mut all: Vec<&str> = vec!["-t", "filter"];
            all.extend(args.iter().map(String::as_str));
            ns.netns.exec("iptables", &all)?;
            changes.push(Change::Rule {
                netns: netns.clone(),
                rule: rule.to_string(),
                must_survive,
            });
        }
        Ok((
            Injected {
                fault: Fault::RejectRule,
                node: node.to_string(),
                changes,
                symptom,
            },
            began,
        ))
    }

    /// Seed 004 §6 on a firewalld node: load [`FIREWALLD_RULESET`] into `node` (its tables
    /// replaced if they are there: what `firewall-cmd --reload` does). The INPUT reject drops
    /// the VXLAN packets, so pods on other nodes cannot reach the node's pods.
    pub fn inject_firewalld_rejects(&self, node: &str) -> Result<Injected, ClusterError> {
        let ns = self.node(node)?;
        let symptom = Symptom::Unreachable {
            from_pod: self.first_pod_off(node)?,
            to_pod: self.first_pod_on(node)?,
        };
        for table in FIREWALLD_TABLES {
            let mut args = vec!["delete", "table"];
            args.extend(table.split(' '));
            // Absent the first time: not an error.
            let _ = ns.netns.exec("nft", &args);
        }
        ns.netns
            .exec_with_input("nft", &["-f", "-"], FIREWALLD_RULESET)?;
        Ok(Injected {
            fault: Fault::RejectRule,
            node: node.to_string(),
            changes: vec![Change::NftRuleset {
                netns: ns.netns.name().to_string(),
                tables: FIREWALLD_TABLES.map(String::from).to_vec(),
            }],
            symptom,
        })
    }

    /// `nft -j list ruleset` in `node`.
    pub fn nft_ruleset(&self, node: &str) -> Result<String, ClusterError> {
        let out = self
            .node(node)?
            .netns
            .exec("nft", &["-j", "list", "ruleset"])?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// True when `iptables-save` in `node` lists exactly this rule line.
    pub fn has_rule(&self, node: &str, rule: &str) -> Result<bool, ClusterError> {
        Ok(self.iptables_save(node)?.lines().any(|l| l.trim() == rule))
    }

    /// Seed 003 / flannel: `node` rejoins with a new VTEP MAC. Its `flannel.1` gets the new MAC
    /// (and its Node object's `backend-data` with it: see `node_objects`) and its own entries for
    /// the peers are programmed again (its agent restarted with it), but every peer keeps
    /// the PERMANENT neighbour and the fdb entry with the old MAC, so peers' pods cannot reach
    /// its pods.
    ///
    /// On a dual-stack cluster `flannel-v6.1` gets a new MAC too (`backend-v6-data`), and the
    /// peers keep stale IPv6 entries as well; the symptom stays the IPv4 one (the IPv6 ping
    /// fails the same way).
    pub fn inject_vtep_mac_change(&mut self, node: &str) -> Result<Injected, ClusterError> {
        self.require_flannel("inject_vtep_mac_change")?;
        let symptom = Symptom::Unreachable {
            from_pod: self.first_pod_off(node)?,
            to_pod: self.first_pod_on(node)?,
        };
        let plan = self.plan.clone();
        let this = self.node_mut(node)?;
        let before = this.vtep_mac.clone();
        this.generation = this.generation.wrapping_add(1);
        this.vtep_mac = plan.vtep_mac(this.index, this.generation);
        let after = this.vtep_mac.clone();
        let (index, generation) = (this.index, this.generation);
        let before6 = this.v6.as_mut().map(|v6| {
            let before6 = v6.vtep_mac.clone();
            v6.vtep_mac = plan.vtep_mac6(index, generation);
            before6
        });
        let this = self.node(node)?;
        for cmd in commands::vxlan_mac(VXLAN_DEVICE, &after) {
            run_in(this.netns.name(), &cmd)?;
        }
        if let Some(v6) = &this.v6 {
            for cmd in commands::vxlan_mac(VXLAN_DEVICE_V6, &v6.vtep_mac) {
                run_in(this.netns.name(), &cmd)?;
            }
        }
        // The link went down and changed address: the kernel flushed its routes and neighbours
        // on flannel.1. The rejoining node's own agent programs its peers again at start.
        self.program_peers(node)?;
        let mut changes = vec![Change::VtepMac {
            node: node.to_string(),
            before: before.clone(),
            after,
        }];
        for peer in self.nodes.iter().filter(|p| p.name != node) {
            changes.push(Change::StaleNeighbour {
                netns: peer.netns.name().to_string(),
                ip: this.vtep_ip.into(),
                dev: VXLAN_DEVICE.to_string(),
                lladdr: before.clone(),
            });
            changes.push(Change::StaleFdb {
                netns: peer.netns.name().to_string(),
                mac: before.clone(),
                dst: this.underlay_ip.into(),
            });
            if let (Some(v6), Some(before6)) = (&this.v6, &before6) {
                changes.push(Change::StaleNeighbour {
                    netns: peer.netns.name().to_string(),
                    ip: v6.vtep_ip.into(),
                    dev: VXLAN_DEVICE_V6.to_string(),
                    lladdr: before6.clone(),
                });
                changes.push(Change::StaleFdb {
                    netns: peer.netns.name().to_string(),
                    mac: before6.clone(),
                    dst: v6.underlay_ip.into(),
                });
            }
        }
        Ok(Injected {
            fault: Fault::StaleVtep,
            node: node.to_string(),
            changes,
            symptom,
        })
    }

    /// Seed 003: on node `on`, the PERMANENT neighbour for `peer`'s VTEP is lost (deleted or
    /// INCOMPLETE) while the fdb entry stays; pods on `on` cannot reach pods on `peer`. The
    /// node at fault (the one whose agent must be restarted) is `on`.
    pub fn inject_lost_neighbour(
        &self,
        on: &str,
        peer: &str,
        how: LostHow,
    ) -> Result<Injected, ClusterError> {
        self.inject_lost_neighbour_of(on, peer, how, Family::V4)
    }

    /// [`Cluster::inject_lost_neighbour`] in `family` (IPv6: the `flannel-v6.1` neighbour of
    /// `peer`'s IPv6 VTEP, on a dual-stack cluster).
    pub fn inject_lost_neighbour_of(
        &self,
        on: &str,
        peer: &str,
        how: LostHow,
        family: Family,
    ) -> Result<Injected, ClusterError> {
        let this = self.node(on)?;
        let target = self.node(peer)?;
        let symptom = self.unreachable(self.first_pod_on(on)?, self.first_pod_on(peer)?, family)?;
        let (vtep, dev, lladdr): (IpAddr, &str, String) = match (family, &target.v6, &target.calico)
        {
            (Family::V6, Some(v6), _) => (v6.vtep_ip.into(), VXLAN_DEVICE_V6, v6.vtep_mac.clone()),
            (_, _, Some(calico)) => (
                calico.tunnel_ip.into(),
                CALICO_VXLAN_DEVICE,
                calico.vtep_mac.clone(),
            ),
            _ => (target.vtep_ip.into(), VXLAN_DEVICE, target.vtep_mac.clone()),
        };
        let vtep_s = vtep.to_string();
        match how {
            LostHow::Deleted => this.netns.ip(&["neigh", "del", &vtep_s, "dev", dev])?,
            LostHow::Incomplete => {
                this.netns
                    .ip(&["neigh", "replace", &vtep_s, "dev", dev, "nud", "incomplete"])?
            }
        };
        Ok(Injected {
            fault: Fault::VtepMissing,
            node: on.to_string(),
            changes: vec![Change::LostNeighbour {
                netns: this.netns.name().to_string(),
                ip: vtep,
                dev: dev.to_string(),
                lladdr,
                how,
            }],
            symptom,
        })
    }

    /// Seed 001: on node `on`, the route to `peer`'s pod CIDR is deleted; pods on `on` cannot
    /// reach pods on `peer`.
    pub fn inject_missing_route(&self, on: &str, peer: &str) -> Result<Injected, ClusterError> {
        self.inject_missing_route_of(on, peer, Family::V4)
    }

    /// [`Cluster::inject_missing_route`] in `family` (IPv6: the route to `peer`'s IPv6 range
    /// via `flannel-v6.1`, on a dual-stack cluster).
    pub fn inject_missing_route_of(
        &self,
        on: &str,
        peer: &str,
        family: Family,
    ) -> Result<Injected, ClusterError> {
        let this = self.node(on)?;
        let target = self.node(peer)?;
        let symptom = self.unreachable(self.first_pod_on(on)?, self.first_pod_on(peer)?, family)?;
        let dst = match (family, &target.v6, &target.calico) {
            (Family::V6, Some(v6), _) => v6.pod_cidr.clone(),
            // Calico routes the peer's IPAM block (seed 001's `<block> via … onlink`).
            (_, _, Some(calico)) => calico.block.clone(),
            _ => target.pod_cidr.clone(),
        };
        this.netns.ip(&["route", "del", &dst])?;
        Ok(Injected {
            fault: Fault::PeerRouteMissing,
            node: on.to_string(),
            changes: vec![Change::RouteRemoved {
                netns: this.netns.name().to_string(),
                dst,
            }],
            symptom,
        })
    }

    /// A node vanishes (its namespace and pods are gone, and so is its Node object: see
    /// `node_objects`) without its peers being told: every peer keeps its PERMANENT neighbour,
    /// fdb entry and route for it, for a subnet that no Node owns any more. Unlike
    /// [`Cluster::remove_node`], which cleans the peers up like flannel does.
    pub fn inject_vanished_node(&mut self, node: &str) -> Result<Injected, ClusterError> {
        self.require_flannel("inject_vanished_node")?;
        let facts = self.node(node)?.peer_facts();
        let peers: Vec<(String, String)> = self
            .nodes
            .iter()
            .filter(|p| p.name != node)
            .map(|p| (p.name.clone(), p.netns.name().to_string()))
            .collect();
        self.pods.retain(|p| p.node != node);
        self.nodes.retain(|n| n.name != node);
        let mut changes = Vec::new();
        for (_, netns) in &peers {
            changes.push(Change::StaleNeighbour {
                netns: netns.clone(),
                ip: facts.vtep_ip.into(),
                dev: VXLAN_DEVICE.to_string(),
                lladdr: facts.vtep_mac.clone(),
            });
            changes.push(Change::StaleFdb {
                netns: netns.clone(),
                mac: facts.vtep_mac.clone(),
                dst: facts.underlay_ip.into(),
            });
        }
        let nodes: Vec<String> = peers.into_iter().map(|(name, _)| name).collect();
        Ok(Injected {
            fault: Fault::VanishedNode,
            node: nodes.first().cloned().unwrap_or_default(),
            changes,
            symptom: Symptom::LeftoverVtep {
                nodes,
                ip: facts.vtep_ip,
            },
        })
    }

    /// Seed 000 (report-only `ProxyArpOff`): `proxy_arp=0` on the `cali*` veth of Calico pod
    /// `pod`, and the pod's neighbour cache flushed (as after a restart): the pod's ARP for
    /// 169.254.1.1 goes unanswered, so it cannot reach pods on other nodes.
    pub fn inject_proxy_arp_off(&self, pod: &str) -> Result<Injected, ClusterError> {
        let this = self.pod(pod)?;
        if this.style != PodStyle::Calico {
            return Err(ClusterError::InvalidName {
                field: "pod".into(),
                value: pod.into(),
                reason: "proxy ARP matters only for a Calico-style pod".into(),
            });
        }
        let node_ns = self.node(&this.node)?.netns.name().to_string();
        let to_pod = self.first_pod_off(&this.node)?;
        let path = format!("net/ipv4/conf/{}/proxy_arp", this.host_veth);
        let change = self.write_sysctl(&node_ns, &path, "0")?;
        this.netns.ip(&["neigh", "flush", "dev", "eth0"])?;
        Ok(Injected {
            fault: Fault::ProxyArpOff,
            node: this.node.clone(),
            changes: vec![change],
            symptom: Symptom::Unreachable {
                from_pod: pod.to_string(),
                to_pod,
            },
        })
    }

    /// Seed 002: on `node`, `copies` more Calico pods get the address of the node's first
    /// Calico pod of namespace `default` (made if there is none). Each copy is owned by a ReplicaSet (so it can be
    /// recreated), has no host route, and its `cali*` veth carries a PERMANENT neighbour for
    /// the shared address; the original keeps the route and gets its own (correct) PERMANENT
    /// entry, as Calico programs it. Pod objects then show `copies + 1` pods with one IP. On a
    /// dual-stack cluster the copies share the IPv6 address too (no IPv6 host route either, a
    /// PERMANENT IPv6 neighbour on each veth): pods linked by two IPs.
    pub fn inject_duplicate_pod_ip(
        &mut self,
        node: &str,
        copies: usize,
    ) -> Result<Injected, ClusterError> {
        let mut changes = Vec::new();
        let existing = self
            .pods_on(node)
            .find(|p| p.style == PodStyle::Calico && p.namespace == "default")
            .map(|p| p.netns.name().to_string());
        let original = match existing {
            Some(ns) => ns,
            None => {
                let pod = self.add_pod(node, PodOptions::calico())?;
                let (netns, name, ip) = (pod.netns.name().to_string(), pod.name.clone(), pod.ip);
                changes.push(Change::PodAdded {
                    netns: netns.clone(),
                    name,
                    ip,
                    routed: true,
                });
                netns
            }
        };
        let (ip, ip6, app, host_veth) = {
            let pod = self.pod(&original)?;
            (pod.ip, pod.ip6, pod.app.clone(), pod.host_veth.clone())
        };
        let shared: Vec<IpAddr> = super::objects::dual(ip, ip6);
        for addr in &shared {
            self.permanent_pod_neighbour(node, &original, &host_veth, *addr)?;
        }
        for _ in 0..copies {
            let mut opts = PodOptions::calico();
            opts.ip = Some(ip);
            opts.ip6 = ip6;
            opts.host_route = false;
            opts.app = app.clone();
            opts.owner = Some(PodOwner::ReplicaSet(format!("{app}-rs")));
            let pod = self.add_pod(node, opts)?;
            let (netns, name, veth) = (
                pod.netns.name().to_string(),
                pod.name.clone(),
                pod.host_veth.clone(),
            );
            changes.push(Change::PodAdded {
                netns: netns.clone(),
                name,
                ip,
                routed: false,
            });
            for addr in &shared {
                let lladdr = self.permanent_pod_neighbour(node, &netns, &veth, *addr)?;
                changes.push(Change::StaleNeighbour {
                    netns: self.node(node)?.netns.name().to_string(),
                    ip: *addr,
                    dev: veth.clone(),
                    lladdr,
                });
            }
        }
        Ok(Injected {
            fault: Fault::DuplicatePodIp,
            node: node.to_string(),
            changes,
            symptom: Symptom::StaleNeighbours {
                node: node.to_string(),
                ip,
            },
        })
    }

    /// `ip neigh replace IP lladdr <pod eth0 MAC> dev VETH nud permanent` on the node.
    fn permanent_pod_neighbour(
        &self,
        node: &str,
        pod_netns: &str,
        host_veth: &str,
        ip: IpAddr,
    ) -> Result<String, ClusterError> {
        let mac = self.pod_mac(pod_netns)?;
        let ip = ip.to_string();
        self.node(node)?.netns.ip(&[
            "neigh",
            "replace",
            &ip,
            "lladdr",
            &mac,
            "dev",
            host_veth,
            "nud",
            "permanent",
        ])?;
        Ok(mac)
    }

    /// The MAC of a pod's `eth0`.
    pub fn pod_mac(&self, pod_netns: &str) -> Result<String, ClusterError> {
        let ns = self.pod(pod_netns)?.netns.name();
        let out = run("ip", &["-n", ns, "-j", "link", "show", "dev", "eth0"])?;
        let text = String::from_utf8_lossy(&out.stdout);
        let links: Vec<serde_json::Value> =
            serde_json::from_str(&text).map_err(|source| ClusterError::Parse {
                what: "ip -j link show dev eth0".into(),
                source,
            })?;
        links
            .first()
            .and_then(|l| l.get("address"))
            .and_then(|a| a.as_str())
            .map(str::to_string)
            .ok_or_else(|| ClusterError::Value {
                what: format!("{ns} eth0 address"),
                value: text.into_owned(),
            })
    }

    /// PERMANENT neighbours for `ip` (IPv4 or IPv6) on `cali*` interfaces of `node` other than
    /// the one its host route names (all of them when no route names one): the stale entries
    /// of seed 002.
    pub fn stale_cali_neighbours(
        &self,
        node: &str,
        ip: impl Into<IpAddr>,
    ) -> Result<Vec<Neighbour>, ClusterError> {
        let ip: IpAddr = ip.into();
        let ip_s = ip.to_string();
        let (routes, host_len) = match ip {
            IpAddr::V4(_) => (self.routes(node)?, 32),
            IpAddr::V6(_) => (self.routes6(node)?, 128),
        };
        let routed_dev = routes
            .into_iter()
            .find(|r| r.dst == ip_s || r.dst == format!("{ip_s}/{host_len}"))
            .and_then(|r| r.dev);
        Ok(self
            .neighbours(node)?
            .into_iter()
            .filter(|n| n.dst == ip_s && n.dev.starts_with("cali") && n.is_permanent())
            .filter(|n| routed_dev.as_deref() != Some(n.dev.as_str()))
            .collect())
    }

    /// True when the injected fault's symptom is visible right now.
    pub fn symptom_present(&self, injected: &Injected) -> Result<bool, ClusterError> {
        match &injected.symptom {
            Symptom::Unreachable { from_pod, to_pod } => Ok(!self.ping(from_pod, to_pod)?),
            Symptom::Unreachable6 { from_pod, to_pod } => Ok(!self.ping6(from_pod, to_pod)?),
            Symptom::LeftoverVtep { nodes, ip } => {
                let ip = ip.to_string();
                for node in nodes {
                    let held = self
                        .neighbours(node)?
                        .iter()
                        .any(|n| n.dst == ip && n.dev == VXLAN_DEVICE && n.is_permanent());
                    if held {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            Symptom::StaleNeighbours { node, ip } => {
                Ok(!self.stale_cali_neighbours(node, *ip)?.is_empty())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_split_like_a_shell_would() {
        assert_eq!(
            split_rule(KUBE_PROXY_RULE),
            vec![
                "-A",
                "KUBE-SERVICES",
                "-d",
                "10.96.0.10/32",
                "-p",
                "tcp",
                "-m",
                "comment",
                "--comment",
                "default/svc: has no endpoints",
                "-m",
                "tcp",
                "--dport",
                "80",
                "-j",
                "REJECT",
                "--reject-with",
                "icmp-port-unreachable",
            ]
        );
        assert_eq!(
            split_rule("-A  X \"\" -j Y"),
            vec!["-A", "X", "", "-j", "Y"]
        );
    }
}
