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

/// The userspace datapath serving vm1, vm2 and vm5's hypervisor ends: XDP attached, one
/// poll thread with `frames` UMEM chunks and rings of `ring_size`, on the lab's ports.
struct Served {
    shared: Arc<SharedCounters>,
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<ovnest_datapath::afxdp::WorkerReport>>,
    _fast_path: ovnest_datapath::FastPath,
}

fn serve(hv: &Hypervisor, frames: u32, ring_size: u32) -> Served {
    let wiring = hv.wiring;
    let cell = Arc::new(SnapshotCell::new(Snapshot::build(
        1,
        &lab::logical_ports(&wiring),
    )));
    let shared = Arc::new(SharedCounters::new());
    let stop = Arc::new(AtomicBool::new(false));
    let mut fast_path = hv.fast_path();
    let _inside = hv.ns.enter();
    let vifs = [wiring.vm1, wiring.vm2, wiring.vm5];
    for ifindex in vifs {
        fast_path.attach(ifindex).expect("attach");
    }
    let config = AfXdpConfig {
        cores: 1,
        frames,
        ring_size,
        ..AfXdpConfig::default()
    };
    let afxdp = AfXdp::open(&config, &vifs).expect("AF_XDP sockets");
    afxdp.register(&mut fast_path).expect("XSKMAP");
    let threads = afxdp
        .spawn(cell, shared.clone(), stop.clone(), &|| {
            Box::new(ovnest_datapath::pipeline::NoController)
        })
        .expect("poll thread");
    Served {
        shared,
        stop,
        threads,
        _fast_path: fast_path,
    }
}

impl Served {
    /// Stops the poll threads and returns their reports.
    fn stop(self) -> Vec<ovnest_datapath::afxdp::WorkerReport> {
        self.stop.store(true, Ordering::Relaxed);
        self.threads
            .into_iter()
            .map(|t| t.join().expect("poll thread"))
            .collect()
    }
}

fn socket(ns: &NetNs) -> PacketSocket {
    let _inside = ns.enter();
    PacketSocket::open("eth0").expect("packet socket")
}

#[test]
fn broadcast_from_c51_is_flooded_by_the_userspace_datapath() {
    let name = "broadcast_from_c51_is_flooded_by_the_userspace_datapath";
    if !require_root(name) || !require_tools(name, &["ethtool"]) {
        return;
    }
    let (hv, Vms { vm1, vm2, vm5 }) = Hypervisor::with_vms();
    let served = serve(&hv, 4096, 1024);
    let shared = served.shared.clone();
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

    for report in served.stop() {
        assert!(report.received >= 1, "{report:?}");
    }
}

/// The poll thread's sockets share one UMEM, and a fill ring only gives chunks back when
/// its interface receives. A busy interface must keep receiving while the others are idle
/// (their fill rings must not soak up the UMEM), and a burst larger than one `sendto`'s
/// transmit budget must leave entirely even when nothing follows it. vm5's socket is the
/// last one the thread refills, the one that starved before both were bounded.
#[test]
fn a_busy_socket_keeps_receiving_and_bursts_leave_whole() {
    let name = "a_busy_socket_keeps_receiving_and_bursts_leave_whole";
    if !require_root(name) || !require_tools(name, &["ethtool"]) {
        return;
    }
    // vm2 stays: its interface must exist for its socket to transmit.
    let (
        hv,
        Vms {
            vm1,
            vm2: _vm2,
            vm5,
        },
    ) = Hypervisor::with_vms();
    let wiring = hv.wiring;
    // A UMEM smaller than the three fill rings together.
    const FRAMES: u32 = 1024;
    let served = serve(&hv, FRAMES, 1024);
    let shared = served.shared.clone();
    let (s1, s5) = (socket(&vm1), socket(&vm5));

    // ARP requests from c51 for addresses nobody has: each is flooded by userspace (to
    // vm1, vm2 and vm5's other children), in bursts of more than 32 frames with a pause
    // until vm1 has seen the whole burst; more frames in all than the UMEM has chunks.
    const BURST: u16 = 48;
    const BURSTS: u16 = 30;
    let target = |n: u16| {
        let [hi, lo] = n.to_be_bytes();
        [10, 200, hi, lo]
    };
    for burst in 0..BURSTS {
        let first = burst * BURST;
        for n in first..first + BURST {
            let request = Frame::eth(BROADCAST, lab::C51.mac).arp_request(
                lab::C51.mac,
                lab::C51.ipv4,
                target(n),
            );
            s5.send(&request.vlan(51).build()).unwrap();
        }
        let mut seen = std::collections::BTreeSet::new();
        while seen.len() < BURST as usize {
            let got = s1
                .recv_matching(DEADLINE, |f| {
                    f.bytes.len() >= 42 && f.bytes[38..40] == [10, 200]
                })
                .unwrap();
            let Some(got) = got else {
                panic!(
                    "burst {burst}: vm1 got {} of {BURST} frames; verdicts {:?}, flood {:?}, sockets {:?}",
                    seen.len(),
                    Verdict::all()
                        .map(|v| (v.name(), shared.get(v)))
                        .filter(|(_, n)| *n > 0)
                        .collect::<Vec<_>>(),
                    shared.flood(),
                    shared.sockets()
                );
            };
            let n = u16::from_be_bytes([got.bytes[40], got.bytes[41]]);
            if (first..first + BURST).contains(&n) {
                seen.insert(n);
            }
        }
    }
    assert!(u32::from(BURST * BURSTS) > FRAMES);

    let flooded = wait::until("floods counted", DEADLINE, || {
        let n = shared.get(Verdict::Flooded);
        (n >= u64::from(BURST * BURSTS)).then_some(n)
    });
    assert_eq!(flooded, u64::from(BURST * BURSTS));
    served.stop();
    // The kernel's own view of vm5's socket: every redirected frame found a chunk.
    let vm5_socket = shared
        .sockets()
        .into_iter()
        .find(|s| s.ifindex == wiring.vm5)
        .expect("vm5's socket statistics published");
    assert_eq!(vm5_socket.rx_dropped, 0, "{vm5_socket:?}");
}
