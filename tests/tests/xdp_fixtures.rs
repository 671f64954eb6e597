//! The fixture table through the real XDP program with BPF_PROG_TEST_RUN, in a fresh
//! network namespace whose veths stand for the VIFs (test_run needs the ingress
//! interface to exist).

use ovnest_common::Counter;
use ovnest_datapath::{FastPath, TableSet};
use ovnest_tests::{
    failures::Failures,
    fixtures::{self, Verdict, frames::hex, lab},
    hypervisor::Hypervisor,
    privilege::require_root,
};

const XDP_DROP: u32 = 1;
const XDP_REDIRECT: u32 = 4;
const ETH_HLEN: usize = 14;

#[test]
fn fixture_table_through_bpf_prog_test_run() {
    if !require_root("fixture_table_through_bpf_prog_test_run") {
        return;
    }
    let hv = Hypervisor::alone();
    let fast_path = hv.fast_path();
    assert_eq!(fast_path.flat_overflow(), 0, "the lab fits the flat tables");
    check_fixture_table(&hv, &fast_path);
}

/// The same table when no key is in a flat window: the spill path decides alike.
#[test]
fn fixture_table_through_hash_lookups_only() {
    if !require_root("fixture_table_through_hash_lookups_only") {
        return;
    }
    let hv = Hypervisor::alone();
    let fast_path = hv.fast_path_hash_only();
    let tables = fast_path.installed();
    assert_eq!(
        fast_path.flat_overflow(),
        tables.vifs.len() + tables.children.len() + tables.macs.len() + tables.arp_targets.len(),
        "every key must be left to the spill path"
    );
    check_fixture_table(&hv, &fast_path);
}

fn check_fixture_table(hv: &Hypervisor, fast_path: &FastPath) {
    let _inside = hv.ns.enter();
    let mut failures = Failures::new();
    for case in fixtures::cases() {
        let before = fast_path.counters().expect("counters");
        let to_before = case
            .verdict
            .delivered_to()
            .map(|p| fast_path.port_stats(lab::port(p).stats_slot()).unwrap());
        let from_before = case
            .from
            .map(|p| fast_path.port_stats(lab::port(p).stats_slot()).unwrap());
        let mut out = vec![0u8; case.input.len() + 64];
        let result = fast_path.test_run(hv.wiring.ifindex(case.ingress), &case.input, &mut out);
        // No driver hands XDP less than an Ethernet header, and BPF_PROG_TEST_RUN refuses
        // such input; those cases are for the userspace pipeline.
        if case.input.len() < ETH_HLEN {
            assert!(
                result.is_err(),
                "{}: kernel accepted a {}-byte frame",
                case.name,
                case.input.len()
            );
            continue;
        }
        let result = result.expect("test_run");
        out.truncate(result.data_size_out as usize);
        let delta = fast_path.counters().expect("counters").since(&before);

        let mut problems = Vec::new();
        // No AF_XDP socket is registered here, so "userspace" ends as a counted drop.
        let (action, counter) = match &case.verdict {
            Verdict::Drop(reason) => (XDP_DROP, *reason),
            Verdict::Redirect { .. } => (XDP_REDIRECT, Counter::Redirected),
            Verdict::Hairpin { .. } => (XDP_REDIRECT, Counter::Hairpinned),
            Verdict::ArpReply { .. } => (XDP_REDIRECT, Counter::ArpReplied),
            Verdict::Userspace => (XDP_DROP, Counter::DropNoUserspace),
        };
        if result.return_value != action {
            problems.push(format!("action {} (want {action})", result.return_value));
        }
        let moved: Vec<String> = delta
            .iter()
            .filter(|(_, n)| *n != 0)
            .map(|(c, n)| format!("{}+{n}", c.name()))
            .collect();
        if moved != [format!("{}+1", counter.name())] {
            problems.push(format!(
                "counters moved: {moved:?} (want only {}+1)",
                counter.name()
            ));
        }
        if let (Some(to), Some(before)) = (case.verdict.delivered_to(), to_before) {
            let after = fast_path.port_stats(lab::port(to).stats_slot()).unwrap();
            if after.tx_packets != before.tx_packets + 1 {
                problems.push(format!(
                    "{to} tx_packets {} -> {} (want +1)",
                    before.tx_packets, after.tx_packets
                ));
            }
        }
        if let (Some(from), Some(before)) = (case.from, from_before) {
            let after = fast_path.port_stats(lab::port(from).stats_slot()).unwrap();
            let dropped = u64::from(matches!(case.verdict, Verdict::Drop(_)));
            let moved = (
                after.rx_packets - before.rx_packets,
                after.drops - before.drops,
            );
            if moved != (1, dropped) {
                problems.push(format!(
                    "{from}: (rx, drops) moved by {moved:?} (want (1, {dropped}))"
                ));
            }
        }
        if let Some(expected) = &case.output
            && &out != expected
        {
            problems.push(format!(
                "output\n      want {}\n      got  {}",
                hex(expected),
                hex(&out)
            ));
        }
        failures.check(&case, &problems);
    }
    failures.assert_none();
}

/// Frames the fast path cannot finish go to the AF_XDP socket registered for the
/// interface; without one they are a counted drop, not a silent one.
#[test]
fn userspace_frames_without_a_socket_are_counted() {
    if !require_root("userspace_frames_without_a_socket_are_counted") {
        return;
    }
    let hv = Hypervisor::alone();
    let _inside = hv.ns.enter();
    let fast_path = hv.fast_path();
    let frame = fixtures::Frame::eth([0xff; 6], lab::VM1.mac)
        .udp(lab::VM1.ipv4, [255; 4], 68, 67, 30)
        .build();
    let mut out = vec![0u8; 256];
    let before = fast_path.counters().unwrap();
    for _ in 0..3 {
        let result = fast_path.test_run(hv.wiring.vm1, &frame, &mut out).unwrap();
        assert_eq!(result.return_value, XDP_DROP);
    }
    assert_eq!(
        fast_path
            .counters()
            .unwrap()
            .since(&before)
            .get(Counter::DropNoUserspace),
        3
    );
}

/// Runtime table changes take effect without reloading and leave other ports alone.
#[test]
fn map_updates_apply_live_without_disturbing_other_ports() {
    if !require_root("map_updates_apply_live_without_disturbing_other_ports") {
        return;
    }
    let hv = Hypervisor::alone();
    let _inside = hv.ns.enter();
    let mut fast_path = hv.fast_path();
    let mut ports = fixtures::lab::logical_ports(&hv.wiring);
    let run = |fp: &FastPath, vid: u16| {
        let frame = fixtures::Frame::eth(lab::VM1.mac, lab::C52.mac)
            .udp(lab::C52.ipv4, lab::VM1.ipv4, 1, 2, 18)
            .vlan(vid)
            .build();
        let mut out = vec![0u8; 256];
        fp.test_run(hv.wiring.vm5, &frame, &mut out)
            .unwrap()
            .return_value
    };
    let c51_works = |fp: &FastPath| {
        let frame = fixtures::Frame::eth(lab::VM1.mac, lab::C51.mac)
            .udp(lab::C51.ipv4, lab::VM1.ipv4, 1, 2, 18)
            .vlan(51)
            .build();
        let mut out = vec![0u8; 256];
        fp.test_run(hv.wiring.vm5, &frame, &mut out)
            .unwrap()
            .return_value
            == XDP_REDIRECT
    };
    assert_eq!(run(&fast_path, 52), XDP_REDIRECT);
    assert_eq!(run(&fast_path, 53), XDP_DROP);

    // Change c52's tag to 53.
    let c52 = ports.iter_mut().find(|p| p.name == "dmz-c52").unwrap();
    c52.attachment = ovnest_datapath::Attachment::Child {
        parent_ifindex: hv.wiring.vm5,
        tag: 53,
    };
    let diff = fast_path.apply(&TableSet::build(&ports).0).unwrap();
    assert_eq!(
        diff.len(),
        3,
        "tag change = remove old child key, add new, update port: {diff:?}"
    );
    assert_eq!(run(&fast_path, 52), XDP_DROP);
    assert_eq!(run(&fast_path, 53), XDP_REDIRECT);
    assert!(c51_works(&fast_path));
    // The L2 entry of c52's MAC was rewritten in place (same key, new tag to push).
    let to_c52 = fixtures::Frame::eth(lab::C52.mac, lab::VM1.mac)
        .udp(lab::VM1.ipv4, lab::C52.ipv4, 1, 2, 18)
        .build();
    let mut out = vec![0u8; 256];
    let pushed = fast_path
        .test_run(hv.wiring.vm1, &to_c52, &mut out)
        .unwrap();
    assert_eq!(pushed.return_value, XDP_REDIRECT);
    assert_eq!(
        &out[12..16],
        &[0x81, 0x00, 0x00, 53],
        "pushed tag after the change"
    );

    // Add a child on a fresh tag, then delete c52.
    let mut c60 = ports.iter().find(|p| p.name == "dmz-c52").unwrap().clone();
    c60.name = "dmz-c60".into();
    c60.key.port = 60;
    c60.stats_slot = 60;
    c60.addresses = vec![([2, 0xac, 0x10, 0xff, 1, 0x60], vec![[172, 16, 255, 160]])];
    c60.port_security = Some(vec![[2, 0xac, 0x10, 0xff, 1, 0x60]]);
    c60.attachment = ovnest_datapath::Attachment::Child {
        parent_ifindex: hv.wiring.vm5,
        tag: 60,
    };
    ports.push(c60);
    ports.retain(|p| p.name != "dmz-c52");
    fast_path.apply(&TableSet::build(&ports).0).unwrap();
    assert_eq!(run(&fast_path, 53), XDP_DROP, "deleted child must stop");
    let frame = fixtures::Frame::eth(lab::VM1.mac, [2, 0xac, 0x10, 0xff, 1, 0x60])
        .udp([172, 16, 255, 160], lab::VM1.ipv4, 1, 2, 18)
        .vlan(60)
        .build();
    let mut out = vec![0u8; 256];
    assert_eq!(
        fast_path
            .test_run(hv.wiring.vm5, &frame, &mut out)
            .unwrap()
            .return_value,
        XDP_REDIRECT
    );
    assert!(c51_works(&fast_path));
    assert_eq!(fast_path.installed(), &TableSet::build(&ports).0);
}
