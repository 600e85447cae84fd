//! The agent's netlink subscription lives in the managed namespace: changes there arrive,
//! changes in another namespace do not. Needs root.

// Tests may unwrap: a panic is how a test fails (helpers outside #[test] included).
#![allow(clippy::unwrap_used)]

use netheal_e2e::cluster::faults::reject_input_args;
use netheal_e2e::netns::Netns;
use node_fixer::agent::netlink_events::{Change, netns_path, subscribe};
use std::time::Duration;
use tokio::sync::mpsc;

async fn next(rx: &mut mpsc::Receiver<Change>) -> Option<Change> {
    tokio::time::timeout(Duration::from_secs(3), rx.recv())
        .await
        .ok()
        .flatten()
}

/// The namespace `name`, subscribed to, and `name-other`, not.
async fn subscribed(name: &str) -> (Netns, Netns, mpsc::Receiver<Change>) {
    let managed = Netns::create(name).unwrap();
    let other = Netns::create(&format!("{name}-other")).unwrap();
    let (tx, rx) = mpsc::channel(64);
    subscribe(Some(netns_path(managed.name())), tx)
        .await
        .unwrap();
    (managed, other, rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_come_from_the_managed_namespace_only() {
    let (managed, other, mut rx) = subscribed("nfa-events").await;

    // Another namespace's changes are not seen.
    other
        .ip(&["link", "add", "d0", "type", "veth", "peer", "name", "d1"])
        .unwrap();
    other.ip(&["link", "set", "d0", "up"]).unwrap();
    assert_eq!(
        tokio::time::timeout(Duration::from_millis(300), rx.recv())
            .await
            .ok()
            .flatten(),
        None
    );

    managed
        .ip(&[
            "link", "add", "cali0", "type", "veth", "peer", "name", "cali0p",
        ])
        .unwrap();
    // A new device also announces its netconf switches.
    assert_eq!(until(&mut rx, Change::Link).await, Some(Change::Link));
    managed.ip(&["link", "set", "cali0", "up"]).unwrap();
    managed.ip(&["link", "set", "cali0p", "up"]).unwrap();
    while tokio::time::timeout(Duration::from_millis(200), rx.recv())
        .await
        .is_ok()
    {}
    managed
        .ip(&[
            "neigh",
            "add",
            "10.9.0.1",
            "lladdr",
            "02:00:00:00:00:01",
            "dev",
            "cali0",
            "nud",
            "permanent",
        ])
        .unwrap();
    assert_eq!(next(&mut rx).await, Some(Change::Neighbour));
    managed
        .ip(&["route", "add", "10.9.0.1/32", "dev", "cali0"])
        .unwrap();
    assert_eq!(next(&mut rx).await, Some(Change::Route));
    managed
        .ip(&["neigh", "del", "10.9.0.1", "dev", "cali0"])
        .unwrap();
    let mut seen = Vec::new();
    while let Some(c) = next(&mut rx).await {
        seen.push(c);
        if c == Change::Neighbour {
            break;
        }
    }
    assert_eq!(seen.last(), Some(&Change::Neighbour), "{seen:?}");
    // A re-addressed pod bridge (BridgeSubnetMismatch) is an event too.
    managed
        .ip(&["addr", "add", "10.244.3.1/24", "dev", "cali0"])
        .unwrap();
    assert_eq!(until(&mut rx, Change::Address).await, Some(Change::Address));
}

/// Wait for `want` among the changes (others may come first), `None` after 3 s without it.
async fn until(rx: &mut mpsc::Receiver<Change>, want: Change) -> Option<Change> {
    while let Some(c) = next(rx).await {
        if c == want {
            return Some(c);
        }
    }
    None
}

/// Drain what is pending.
async fn quiet(rx: &mut mpsc::Receiver<Change>) {
    while tokio::time::timeout(Duration::from_millis(300), rx.recv())
        .await
        .is_ok()
    {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_switches_and_nftables_rules_are_events_of_their_namespace() {
    let (managed, other, mut rx) = subscribed("nfa-netconf").await;
    quiet(&mut rx).await;

    // ip_forward (the switch a hardening tool resets) has no poll to wait for any more.
    managed
        .exec("sysctl", &["-qw", "net.ipv4.ip_forward=1"])
        .unwrap();
    assert_eq!(until(&mut rx, Change::Netconf).await, Some(Change::Netconf));
    managed
        .exec("sysctl", &["-qw", "net.ipv4.ip_forward=0"])
        .unwrap();
    assert_eq!(until(&mut rx, Change::Netconf).await, Some(Change::Netconf));
    quiet(&mut rx).await;

    // A REJECT rule written by iptables-nft arrives as an nftables rule event.
    managed
        .exec(
            "iptables-nft",
            &[&["-w"][..], &reject_input_args("-A")].concat(),
        )
        .unwrap();
    assert_eq!(until(&mut rx, Change::Rules).await, Some(Change::Rules));
    quiet(&mut rx).await;
    managed
        .exec("iptables-nft", &["-w", "-F", "INPUT"])
        .unwrap();
    assert_eq!(until(&mut rx, Change::Rules).await, Some(Change::Rules));
    quiet(&mut rx).await;

    // Another namespace's switches and rules are not seen.
    other
        .exec("sysctl", &["-qw", "net.ipv4.ip_forward=1"])
        .unwrap();
    other
        .exec("iptables-nft", &["-w", "-A", "INPUT", "-j", "REJECT"])
        .unwrap();
    assert_eq!(
        tokio::time::timeout(Duration::from_millis(500), rx.recv())
            .await
            .ok()
            .flatten(),
        None
    );
}
