//! The fast path on real veths in network namespaces: frames sent by raw sockets in the
//! VMs' namespaces cross the hypervisor namespace through native XDP.
//!
//! hv namespace: vm1, vm2, vm5 (hypervisor ends, XDP attached) ↔ eth0 in namespaces
//! vm1, vm2, vm5. In vm5, frames tagged 51/52 stand for containers c51/c52.

use std::time::Duration;

use ovnest_common::Counter;
use ovnest_datapath::{FastPath, fastpath::AttachMode};
use ovnest_tests::{
    fixtures::{Frame, Iface, frames::hex, lab},
    hypervisor::{Hypervisor, Vms},
    netns::NetNs,
    packet::{PacketSocket, Received},
    privilege::{require_root, require_tools},
    wait,
};

const DEADLINE: Duration = Duration::from_secs(5);

/// The lab's hypervisor and VMs, with the fast path attached natively to the VIFs.
struct Lab {
    /// Held so the hypervisor's namespace and interfaces outlive the test.
    _hv: Hypervisor,
    vms: Vms,
    fast_path: FastPath,
}

fn lab() -> Lab {
    let (hv, vms) = Hypervisor::with_vms();
    let mut fast_path = hv.fast_path();
    {
        let _inside = hv.ns.enter();
        for iface in [Iface::Vm1, Iface::Vm2, Iface::Vm5] {
            let mode = fast_path.attach(hv.wiring.ifindex(iface)).expect("attach");
            assert_eq!(
                mode,
                AttachMode::Native,
                "veth supports native XDP on this kernel"
            );
        }
    }
    Lab {
        _hv: hv,
        vms,
        fast_path,
    }
}

fn socket(ns: &NetNs) -> PacketSocket {
    let _inside = ns.enter();
    PacketSocket::open("eth0").expect("packet socket")
}

fn udp(from: &lab::LabPort, to: &lab::LabPort, marker: u16) -> Frame {
    Frame::eth(to.mac, from.mac).udp(from.ipv4, to.ipv4, marker, 5001, 32)
}

/// The first frame on `sock` that is UDP from source port `marker`.
fn recv_marker(sock: &PacketSocket, marker: u16) -> Option<Received> {
    sock.recv_matching(DEADLINE, |f| {
        f.bytes.len() > 36 && f.bytes[34..36] == marker.to_be_bytes()
    })
    .expect("recv")
}

#[test]
fn tagged_containers_reach_vm1_untagged_and_replies_return_tagged() {
    if !require_root("tagged_containers_reach_vm1")
        || !require_tools("tagged_containers_reach_vm1", &["ethtool"])
    {
        return;
    }
    let lab = lab();
    let vm5 = socket(&lab.vms.vm5);
    let vm1 = socket(&lab.vms.vm1);

    for (child, marker) in [(&lab::C51, 1051), (&lab::C52, 1052)] {
        let tag = if child.name == "dmz-c51" { 51 } else { 52 };
        let sent = udp(child, &lab::VM1, marker);
        vm5.send(&sent.clone().vlan(tag).build()).unwrap();
        let got = recv_marker(&vm1, marker)
            .unwrap_or_else(|| panic!("{} -> vm1 never arrived", child.name));
        assert_eq!(got.vid, None, "vm1 must receive untagged");
        assert_eq!(
            hex(&got.bytes),
            hex(&sent.build()),
            "{} -> vm1 bytes",
            child.name
        );

        let reply = udp(&lab::VM1, child, marker + 100);
        vm1.send(&reply.build()).unwrap();
        let back = recv_marker(&vm5, marker + 100)
            .unwrap_or_else(|| panic!("vm1 -> {} never arrived", child.name));
        assert_eq!(
            back.vid,
            Some(tag),
            "reply to {} must carry its tag",
            child.name
        );
        assert_eq!(hex(&back.on_wire()), hex(&reply.retagged(tag).build()));
    }

    // Sibling hairpin: c51 -> c52 leaves vm5's VIF back into vm5 with tag 52.
    let hairpin = udp(&lab::C51, &lab::C52, 2051);
    vm5.send(&hairpin.clone().vlan(51).build()).unwrap();
    let got = recv_marker(&vm5, 2051).expect("c51 -> c52 hairpin");
    assert_eq!(got.vid, Some(52));
    assert_eq!(hex(&got.on_wire()), hex(&hairpin.retagged(52).build()));

    let c51 = lab.fast_path.port_stats(lab::C51.stats_slot()).unwrap();
    assert!(
        c51.rx_packets >= 2 && c51.tx_packets >= 1,
        "c51 counters: {c51:?}"
    );
}

#[test]
fn unknown_tag_and_spoofed_mac_reach_nobody_and_are_counted() {
    if !require_root("unknown_tag_and_spoofed_mac")
        || !require_tools("unknown_tag_and_spoofed_mac", &["ethtool"])
    {
        return;
    }
    let lab = lab();
    let vm5 = socket(&lab.vms.vm5);
    let vm1 = socket(&lab.vms.vm1);
    let before = lab.fast_path.counters().unwrap();

    let unknown_tag = udp(&lab::C51, &lab::VM1, 3099).vlan(99).build();
    let spoofed = Frame::eth(lab::VM1.mac, [0x02, 0, 0, 0, 0, 0x66])
        .udp(lab::C51.ipv4, lab::VM1.ipv4, 3098, 5001, 32)
        .vlan(51)
        .build();
    vm5.send(&unknown_tag).unwrap();
    vm5.send(&spoofed).unwrap();
    // A good frame after the bad ones: one queue keeps order, so once it arrives the bad
    // ones would have arrived before it had they been forwarded.
    vm5.send(&udp(&lab::C51, &lab::VM1, 3000).vlan(51).build())
        .unwrap();
    let first = vm1
        .recv_matching(DEADLINE, |f| {
            f.bytes.len() > 36
                && matches!(
                    u16::from_be_bytes([f.bytes[34], f.bytes[35]]),
                    3000 | 3098 | 3099
                )
        })
        .unwrap()
        .expect("the good frame arrives");
    assert_eq!(
        &first.bytes[34..36],
        &3000u16.to_be_bytes(),
        "a bad frame got through: {}",
        hex(&first.bytes)
    );

    let delta = wait::until("drop counters", DEADLINE, || {
        let delta = lab.fast_path.counters().unwrap().since(&before);
        (delta.get(Counter::DropUnknownTag) >= 1 && delta.get(Counter::DropPortSecurity) >= 1)
            .then_some(delta)
    });
    assert_eq!(delta.get(Counter::DropUnknownTag), 1);
    assert_eq!(delta.get(Counter::DropPortSecurity), 1);
    assert_eq!(
        lab.fast_path
            .port_stats(lab::C51.stats_slot())
            .unwrap()
            .drops,
        1
    );
}

#[test]
fn arp_for_the_router_is_answered_on_the_requesters_tag() {
    if !require_root("arp_for_the_router") || !require_tools("arp_for_the_router", &["ethtool"]) {
        return;
    }
    let lab = lab();
    let vm5 = socket(&lab.vms.vm5);
    // The request real c51 sent, and the reply real ovn-controller gave (golden capture).
    let golden = ovnest_tests::fixtures::golden::load("golden-arp-c51.txt");
    let (request, reply) = (&golden[0], &golden[1]);
    vm5.send(&request.on_wire()).unwrap();
    let got = vm5
        .recv_matching(DEADLINE, |f| {
            f.bytes.len() >= 42 && f.bytes[12..14] == [8, 6] && f.bytes[21] == 2
        })
        .unwrap()
        .expect("ARP reply");
    assert_eq!(got.vid, Some(reply.vid));
    assert_eq!(
        hex(&got.bytes),
        hex(&reply.bytes),
        "reply must equal real OVN's"
    );
}
