//! The userspace datapath on real AF_XDP sockets (copy mode on veth): frames the XDP
//! program hands to userspace arrive on the XSK and are flooded by the pipeline.
//!
//! hv namespace: vm1, vm2, vm5 (hypervisor ends, XDP attached, one XSK each) ↔ eth0 in
//! namespaces vm1, vm2, vm5. In vm5, frames tagged 51 stand for container c51.

use std::{
    sync::{Arc, atomic::AtomicBool, atomic::Ordering},
    time::Duration,
};

use ovnest_datapath::{
    afxdp::{AfXdp, AfXdpConfig},
    pipeline::{SharedCounters, Snapshot, SnapshotCell, Verdict},
};
use ovnest_tests::{
    fixtures::{Frame, frames::BROADCAST, frames::hex, lab},
    hypervisor::{Hypervisor, Vms},
    netns::NetNs,
    packet::PacketSocket,
    privilege::{require_root, require_tools},
    wait,
};

const DEADLINE: Duration = Duration::from_secs(5);

#[test]
fn broadcast_from_c51_is_flooded_by_the_userspace_datapath() {
    let name = "broadcast_from_c51_is_flooded_by_the_userspace_datapath";
    if !require_root(name) || !require_tools(name, &["ethtool"]) {
        return;
    }
    let (hv, Vms { vm1, vm2, vm5 }) = Hypervisor::with_vms();
    let wiring = hv.wiring;
    let cell = Arc::new(SnapshotCell::new(Snapshot::build(
        1,
        &lab::logical_ports(&wiring),
    )));
    let shared = Arc::new(SharedCounters::new());
    let stop = Arc::new(AtomicBool::new(false));

    let mut fast_path = hv.fast_path();
    let threads = {
        let _inside = hv.ns.enter();
        let vifs = [wiring.vm1, wiring.vm2, wiring.vm5];
        for ifindex in vifs {
            fast_path.attach(ifindex).expect("attach");
        }
        let config = AfXdpConfig {
            cores: 1,
            frames: 4096,
            ring_size: 1024,
            ..AfXdpConfig::default()
        };
        let afxdp = AfXdp::open(&config, &vifs).expect("AF_XDP sockets");
        afxdp.register(&mut fast_path).expect("XSKMAP");
        afxdp
            .spawn(cell.clone(), shared.clone(), stop.clone(), &|| {
                Box::new(ovnest_datapath::pipeline::NoController)
            })
            .expect("poll thread")
    };

    let socket = |ns: &NetNs| {
        let _inside = ns.enter();
        PacketSocket::open("eth0").expect("packet socket")
    };
    let (s1, s2, s5) = (socket(&vm1), socket(&vm2), socket(&vm5));

    // ARP from c51 for an address nobody has: XDP cannot answer, userspace floods.
    let target = [172, 16, 255, 250];
    let request =
        Frame::eth(BROADCAST, lab::C51.mac).arp_request(lab::C51.mac, lab::C51.ipv4, target);
    s5.send(&request.clone().vlan(51).build()).unwrap();
    let is_ours =
        |f: &ovnest_tests::packet::Received| f.bytes.len() >= 42 && f.bytes[38..42] == target;
    for (sock, who) in [(&s1, "vm1"), (&s2, "vm2")] {
        let got = sock
            .recv_matching(DEADLINE, is_ours)
            .unwrap()
            .unwrap_or_else(|| panic!("{who} got no copy"));
        assert_eq!(got.vid, None, "{who} receives untagged");
        assert_eq!(hex(&got.on_wire()), hex(&request.build()), "{who}'s copy");
    }
    // vm5 gets its own untagged copy and c52's (and the lab's tag 1 / 4094 children's),
    // never c51's.
    let mut vids = Vec::new();
    while let Some(got) = s5
        .recv_matching(Duration::from_millis(500), is_ours)
        .unwrap()
    {
        vids.push(got.vid.unwrap_or(0));
    }
    vids.sort_unstable();
    assert_eq!(vids, vec![0, 1, 52, 4094], "copies onto vm5 by tag");

    let flooded = wait::until("flood counted", DEADLINE, || {
        let n = shared.get(Verdict::Flooded);
        (n >= 1).then_some(n)
    });
    assert_eq!(flooded, 1);
    // XDP stripped c51's tag before the XSK, so only its metadata says the frame is
    // c51's: userspace must have used it (and so not counted c51's receive again).
    assert_eq!(
        shared.port_stats(lab::C51.stats_slot()).rx_packets,
        0,
        "frame was classified again in userspace: XDP metadata lost on the way to the XSK"
    );
    assert_eq!(shared.port_stats(lab::C52.stats_slot()).tx_packets, 1);

    stop.store(true, Ordering::Relaxed);
    for thread in threads {
        let report = thread.join().expect("poll thread");
        assert!(report.received >= 1, "{report:?}");
    }
    drop(fast_path);
}
