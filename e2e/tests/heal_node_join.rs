//! A node joins (seeds 000 and 004 §2): the cluster runs two nodes under an `Enforce` policy;
//! a third node comes up with `arp_ignore=2` and `ip_forward=0`, with a pod created while
//! `arp_ignore` was 2. Its agent starts after its Node object is registered, and it is healed
//! without anyone touching it. The time from registration to healthy is printed.

use netheal_crds::{Check, Mode};
use netheal_e2e::cluster::PodOptions;
use netheal_e2e::harness::policies::{POLICY, scenario_policy};
use netheal_e2e::harness::{Harness, HarnessOptions, node_object_of, pod_object_of, read_sysctl};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_joins_broken_is_healed_without_anyone_touching_it() {
    let mut h = Harness::start(HarnessOptions::new("h11", 2)).await.unwrap();
    let a = h.add_pod("node1", PodOptions::calico()).await.unwrap();
    h.add_pod("node2", PodOptions::calico()).await.unwrap();
    h.create_policy(POLICY, scenario_policy(Mode::Enforce))
        .await
        .unwrap();

    // node3 boots with a hardening profile, and a pod lands on it meanwhile.
    let (node, pod, pod_netns, pod_ip) = h
        .with_cluster(|c| {
            c.add_node("node3")?;
            let ns = c.node("node3")?.netns.name().to_string();
            let netns = c.netns(&ns)?;
            netns.set_sysctl("net/ipv4/conf/all/arp_ignore", "2")?;
            netns.set_sysctl("net/ipv4/conf/default/arp_ignore", "2")?;
            netns.set_sysctl("net/ipv4/ip_forward", "0")?;
            let p = c.add_pod("node3", PodOptions::calico())?;
            let (name, pod_ns, ip) = (p.name.clone(), p.netns.name().to_string(), p.ip);
            let node = node_object_of(c, "node3").expect("node3 object");
            let pod = pod_object_of(c, &name).expect("pod object");
            Ok((node, pod, pod_ns, ip))
        })
        .await
        .unwrap();
    assert_eq!(
        read_sysctl(&pod_netns, "net/ipv4/conf/all/arp_ignore").unwrap(),
        "2"
    );
    assert!(!netheal_e2e::harness::ping(&a.netns, pod_ip));

    let registered = Instant::now();
    h.register_node(&node).await.unwrap();
    h.register_pod(&pod).await.unwrap();
    h.start_agent("node3").await.unwrap();

    h.wait_ping(&a.netns, pod_ip, true, Duration::from_secs(60))
        .await
        .unwrap();
    h.wait_report("node3", "node3 healthy", Duration::from_secs(60), |r| {
        let s = r.status.as_ref()?;
        let open = s
            .findings
            .iter()
            .any(|f| matches!(f.check, Check::ArpIgnore | Check::IpForward));
        (!open && s.last_scan_time.is_some()).then_some(())
    })
    .await
    .unwrap();
    let healed = registered.elapsed();
    println!(
        "node3: registration to healthy in {:.2} s",
        healed.as_secs_f64()
    );
    eprintln!(
        "node3: registration to healthy in {:.2} s",
        healed.as_secs_f64()
    );

    let node_ns = h.node_netns("node3");
    assert_eq!(read_sysctl(&node_ns, "net/ipv4/ip_forward").unwrap(), "1");
    assert_eq!(
        read_sysctl(&node_ns, "net/ipv4/conf/all/arp_ignore").unwrap(),
        "0"
    );
    assert_eq!(
        read_sysctl(&pod_netns, "net/ipv4/conf/all/arp_ignore").unwrap(),
        "0"
    );
}
