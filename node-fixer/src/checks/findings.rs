//! The findings of one scan. Most are built at once; stale PERMANENT neighbours on veths, which
//! can number a hundred thousand on one node, are kept as the few facts they are made of and
//! built one at a time when read. A scan that prints them, or keeps the first few hundred for a
//! report, holds little more than its snapshot (a built finding is about 1.4 KiB, its facts
//! under 100 bytes).

use netheal_crds::{Check, Finding};
use std::borrow::Cow;
use std::cmp::Ordering;
use std::iter::Peekable;
use std::sync::Arc;

/// A stale neighbour on a veth, not built yet: the entry, its interface, and why it is stale.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingNeighbour {
    /// The kernel's entry.
    pub neighbour: crate::snapshot::Neighbour,
    /// The interface's name (shared by the entries on it).
    pub interface: Arc<str>,
    /// Why it is stale.
    pub why: Box<str>,
}

impl PendingNeighbour {
    /// The finding's target, `neigh IP dev IFACE`.
    pub fn target(&self) -> String {
        super::neighbours::neigh_target(self.neighbour.ip, &self.interface)
    }

    /// The finding.
    pub fn build(&self) -> Finding {
        super::neighbours::neighbour_finding(&self.neighbour, &self.interface, &self.why)
    }
}

/// Every finding of a scan, sorted by (check, target), each id once.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Findings {
    /// Built findings, sorted and deduplicated.
    built: Vec<Finding>,
    /// Stale neighbours on veths, sorted by target; no built finding has their target.
    pending: Vec<PendingNeighbour>,
}

impl Findings {
    /// From built findings and pending neighbours, in any order.
    pub fn new(mut built: Vec<Finding>, mut pending: Vec<PendingNeighbour>) -> Self {
        // Equal (check, target) means equal id: the unstable sort (no buffer) is enough.
        built.sort_unstable_by(|a, b| key(a).cmp(&key(b)));
        built.dedup_by(|a, b| a.id == b.id);
        built.shrink_to_fit();
        pending.sort_by_cached_key(PendingNeighbour::target);
        pending.dedup_by(|a, b| a.neighbour.ip == b.neighbour.ip && a.interface == b.interface);
        let mut targets = pending.iter().map(PendingNeighbour::target).peekable();
        let mut shadowed = Vec::new();
        for (i, f) in built.iter().enumerate() {
            if f.check != Check::StaleNeighbour {
                continue;
            }
            while targets
                .next_if(|t| t.as_str() < f.target.as_str())
                .is_some()
            {}
            if targets.peek() == Some(&f.target) {
                shadowed.push(i);
            }
        }
        // A built finding with a pending one's target is the same fault: keep one of them.
        for i in shadowed.into_iter().rev() {
            built.remove(i);
        }
        pending.shrink_to_fit();
        Self { built, pending }
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.built.len() + self.pending.len()
    }

    /// None.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every finding in order; the pending ones are built as they are reached.
    pub fn iter<'a>(&'a self) -> Iter<'a> {
        Iter {
            built: self.built.iter().peekable(),
            pending: self
                .pending
                .iter()
                .map(PendingNeighbour::build as fn(&'a PendingNeighbour) -> Finding)
                .peekable(),
        }
    }

    /// How many of each check, without building any.
    pub fn count(&self, check: Check) -> usize {
        let built = self.built.iter().filter(|f| f.check == check).count();
        if check == Check::StaleNeighbour {
            built + self.pending.len()
        } else {
            built
        }
    }

    /// How many have a fix of their own node (without building any).
    pub fn fixable_here(&self) -> usize {
        let built = self
            .built
            .iter()
            .filter(|f| f.action.is_some_and(|a| a.is_node_local()))
            .count();
        let pending = if Check::StaleNeighbour
            .remedy()
            .is_some_and(|a| a.is_node_local())
        {
            self.pending.len()
        } else {
            0
        };
        built + pending
    }

    /// Every finding, built.
    pub fn to_vec(&self) -> Vec<Finding> {
        self.iter().map(Cow::into_owned).collect()
    }
}

impl From<Vec<Finding>> for Findings {
    fn from(built: Vec<Finding>) -> Self {
        Self::new(built, Vec::new())
    }
}

impl IntoIterator for Findings {
    type Item = Finding;
    type IntoIter = std::vec::IntoIter<Finding>;
    /// Every finding, built.
    fn into_iter(self) -> Self::IntoIter {
        self.to_vec().into_iter()
    }
}

impl<'a> IntoIterator for &'a Findings {
    type Item = Cow<'a, Finding>;
    type IntoIter = Iter<'a>;
    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

fn key(f: &Finding) -> (Check, &str) {
    (f.check, f.target.as_str())
}

type Build<'a> =
    std::iter::Map<std::slice::Iter<'a, PendingNeighbour>, fn(&'a PendingNeighbour) -> Finding>;

/// The findings in order: the built ones and the pending ones, merged.
pub struct Iter<'a> {
    built: Peekable<std::slice::Iter<'a, Finding>>,
    pending: Peekable<Build<'a>>,
}

impl<'a> Iterator for Iter<'a> {
    type Item = Cow<'a, Finding>;

    fn next(&mut self) -> Option<Cow<'a, Finding>> {
        let order = match (self.built.peek(), self.pending.peek()) {
            (None, None) => return None,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some(b), Some(p)) => key(b).cmp(&key(p)),
        };
        if order == Ordering::Greater {
            self.pending.next().map(Cow::Owned)
        } else {
            self.built.next().map(Cow::Borrowed)
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.built.len() + self.pending.len();
        (n, Some(n))
    }
}

impl ExactSizeIterator for Iter<'_> {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::finding;
    use crate::snapshot::{Mac, NUD_PERMANENT, Neighbour};
    use std::net::Ipv4Addr;

    fn built(check: Check, target: &str) -> Finding {
        finding(
            check,
            target.to_string(),
            "seen".into(),
            "wanted".into(),
            "why".into(),
            netheal_crds::Details::new(),
        )
    }

    fn pending(last: u8, iface: &str) -> PendingNeighbour {
        PendingNeighbour {
            neighbour: Neighbour {
                ip: Ipv4Addr::new(10, 0, 0, last),
                ifindex: 7,
                lladdr: Some(Mac([2, 0, 0, 0, 0, last])),
                state: NUD_PERMANENT,
            },
            interface: Arc::from(iface),
            why: "no route".into(),
        }
    }

    fn keys(f: &Findings) -> Vec<(Check, String)> {
        f.iter().map(|f| (f.check, f.target.clone())).collect()
    }

    #[test]
    fn pending_neighbours_are_read_in_place_among_the_built_findings() {
        let f = Findings::new(
            vec![
                built(Check::RejectRule, "filter INPUT -j REJECT"),
                built(Check::StaleNeighbour, "neigh 10.0.0.2 dev flannel.1"),
                built(Check::ArpIgnore, "net.ipv4.conf.all.arp_ignore"),
                built(
                    Check::StaleNeighbour,
                    "fdb 02:00:00:00:00:09 dev flannel.1 dst 1.2.3.4",
                ),
            ],
            vec![
                pending(30, "cali1"),
                pending(3, "cali1"),
                pending(2, "cali0"),
            ],
        );
        assert_eq!(f.len(), 7);
        let mut want: Vec<(Check, String)> = [
            (Check::RejectRule, "filter INPUT -j REJECT"),
            (Check::StaleNeighbour, "neigh 10.0.0.2 dev flannel.1"),
            (Check::ArpIgnore, "net.ipv4.conf.all.arp_ignore"),
            (
                Check::StaleNeighbour,
                "fdb 02:00:00:00:00:09 dev flannel.1 dst 1.2.3.4",
            ),
            (Check::StaleNeighbour, "neigh 10.0.0.30 dev cali1"),
            (Check::StaleNeighbour, "neigh 10.0.0.3 dev cali1"),
            (Check::StaleNeighbour, "neigh 10.0.0.2 dev cali0"),
        ]
        .into_iter()
        .map(|(c, t)| (c, t.to_string()))
        .collect();
        want.sort();
        // The same order as every finding built and sorted by (check, target).
        assert_eq!(keys(&f), want);
        assert_eq!(f.iter().len(), 7);
        let all = f.to_vec();
        let n = all
            .iter()
            .find(|x| x.target == "neigh 10.0.0.3 dev cali1")
            .unwrap();
        assert_eq!(
            n.id,
            netheal_crds::finding_id(Check::StaleNeighbour, &n.target)
        );
        assert_eq!(n.details["lladdr"], "02:00:00:00:00:03");
        assert_eq!(n.details["interface"], "cali1");
        assert_eq!(
            n.message.as_deref(),
            Some("stale PERMANENT neighbour: no route")
        );
        assert_eq!(Findings::from(all.clone()).to_vec(), all);
    }

    #[test]
    fn counts_need_no_build_and_agree_with_the_built_findings() {
        let f = Findings::new(
            vec![
                built(Check::IpForward, "net.ipv4.ip_forward"),
                built(Check::DuplicatePodIp, "pod ip 10.0.0.9"),
            ],
            vec![pending(4, "cali0"), pending(5, "cali0")],
        );
        let all = f.to_vec();
        for check in Check::ALL {
            assert_eq!(
                f.count(check),
                all.iter().filter(|x| x.check == check).count(),
                "{check}"
            );
        }
        let fixable = all
            .iter()
            .filter(|x| x.action.is_some_and(|a| a.is_node_local()))
            .count();
        assert_eq!(f.fixable_here(), fixable);
        assert_eq!(fixable, 3, "ip_forward and the two neighbours");
        assert!(Findings::default().is_empty());
    }

    #[test]
    fn one_fault_is_one_finding_however_it_arrives() {
        let f = Findings::new(
            vec![
                built(Check::StaleNeighbour, "neigh 10.0.0.4 dev cali0"),
                built(Check::IpForward, "net.ipv4.ip_forward"),
                built(Check::IpForward, "net.ipv4.ip_forward"),
            ],
            vec![
                pending(4, "cali0"),
                pending(4, "cali0"),
                pending(6, "cali0"),
            ],
        );
        assert_eq!(
            keys(&f),
            [
                (Check::IpForward, "net.ipv4.ip_forward".to_string()),
                (
                    Check::StaleNeighbour,
                    "neigh 10.0.0.4 dev cali0".to_string()
                ),
                (
                    Check::StaleNeighbour,
                    "neigh 10.0.0.6 dev cali0".to_string()
                ),
            ]
        );
        assert_eq!(f.len(), 3);
    }
}
