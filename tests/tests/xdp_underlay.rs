//! The underlay interface's XDP program through BPF_PROG_TEST_RUN: the golden Geneve
//! frames real OVS sent go to the userspace datapath (here no socket is bound, so they
//! are dropped and counted as such), and the host's own traffic on the underlay passes
//! to the kernel untouched: ARP, other UDP, TCP, IPv4 fragments. And its link, pinned,
//! outlives the agent and is adopted by the next one.

use ovnest_common::Counter;
use ovnest_datapath::{
    FastPath,
    fastpath::{Decisions, Options, PinDir},
};
use ovnest_tests::{hypervisor::Hypervisor, privilege::require_root};

const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;

/// The frames of a classic pcap file.
fn pcap_frames(pcap: &[u8]) -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    let mut at = 24;
    while at + 16 <= pcap.len() {
        let len = u32::from_le_bytes(pcap[at + 8..at + 12].try_into().unwrap()) as usize;
        frames.push(pcap[at + 16..at + 16 + len].to_vec());
        at += 16 + len;
    }
    frames
}

#[test]
fn geneve_goes_up_and_the_hosts_traffic_passes() {
    if !require_root("geneve_goes_up_and_the_hosts_traffic_passes") {
        return;
    }
    let hv = Hypervisor::alone();
    let mut fast_path = FastPath::load_with(true).expect("load XDP program");
    let runner = fast_path.underlay_test_runner().expect("underlay program");
    let _inside = hv.ns.enter();
    let underlay = hv.wiring.stray;
    let golden = pcap_frames(include_bytes!("../data/geneve/geneve-icmp.pcap"));
    let geneve = golden[0].clone();
    let drops = |f: &FastPath| {
        f.counters()
            .unwrap()
            .iter()
            .find(|(c, _)| *c == Counter::DropNoUserspace)
            .map_or(0, |(_, n)| n)
    };
    let before = drops(&fast_path);
    let mut out = vec![0u8; 2048];
    let (verdict, _) = runner.run(underlay, &geneve, &mut out).expect("test run");
    assert_eq!(
        verdict, XDP_DROP,
        "Geneve goes to userspace (no socket here)"
    );
    assert_eq!(drops(&fast_path), before + 1);

    let edit = |f: fn(&mut Vec<u8>)| {
        let mut g = geneve.clone();
        f(&mut g);
        g
    };
    let cases: [(&str, Vec<u8>); 5] = [
        ("ARP", edit(|g| g[12..14].copy_from_slice(&[0x08, 0x06]))),
        (
            "UDP to another port",
            edit(|g| g[36..38].copy_from_slice(&[0x12, 0xb5])),
        ),
        ("TCP", edit(|g| g[23] = 6)),
        ("a later fragment", edit(|g| g[21] = 0x10)),
        ("a truncated header", geneve[..30].to_vec()),
    ];
    for (what, frame) in cases {
        let (verdict, _) = runner.run(underlay, &frame, &mut out).expect("test run");
        assert_eq!(verdict, XDP_PASS, "{what}");
    }
    assert_eq!(
        drops(&fast_path),
        before + 1,
        "passing frames count nothing"
    );
    let _ = &mut fast_path;
}

/// The XDP program id `ip` reports on interface `ifindex` of `hv`, if any.
fn xdp_program_on(hv: &Hypervisor, ifindex: u32) -> Option<u32> {
    let out = hv.ns.ip(&["-d", "-o", "link", "show"]);
    let line = out
        .lines()
        .find(|l| l.starts_with(&format!("{ifindex}: ")))
        .expect("the interface");
    let words: Vec<&str> = line.split_whitespace().collect();
    let at = words.windows(2).position(|w| w == ["prog/xdp", "id"])?;
    words.get(at + 2)?.parse().ok()
}

#[test]
fn the_underlay_link_outlives_the_agent_and_is_adopted() {
    if !require_root("the_underlay_link_outlives_the_agent_and_is_adopted") {
        return;
    }
    let hv = Hypervisor::alone();
    let pins = PinDir::at(
        std::path::PathBuf::from("/sys/fs/bpf/ovnest-test")
            .join(format!("{}-underlay", std::process::id())),
    );
    let options = Options {
        pins: Some(pins.clone()),
        decisions: Decisions::Userspace,
        ..Options::default()
    };
    let underlay = hv.wiring.stray;
    let _inside = hv.ns.enter();

    let mut first = FastPath::open(&options).expect("load with pins");
    first.attach_underlay(underlay).expect("attach");
    let pin = first.underlay_pin(underlay).expect("the link is pinned");
    let first_id = first.underlay_program_id().unwrap();
    assert_eq!(xdp_program_on(&hv, underlay), Some(first_id));
    // The agent goes (a stop for restart): the link stays, on its program.
    drop(first);
    assert!(pin.exists(), "{}", pin.display());
    assert_eq!(xdp_program_on(&hv, underlay), Some(first_id));

    // The next agent adopts the link and moves it to its own program.
    let mut second = FastPath::open(&options).expect("load with pins");
    assert_eq!(second.underlays().collect::<Vec<_>>(), [underlay]);
    let second_id = second.underlay_program_id().unwrap();
    assert_ne!(second_id, first_id);
    assert_eq!(xdp_program_on(&hv, underlay), Some(second_id));
    // Attaching again (what the agent does for its underlay) keeps that link.
    second.attach_underlay(underlay).expect("attach");
    assert_eq!(second.underlay_pin(underlay), Some(pin.clone()));

    // Detached on purpose (the encap address moved): link and pin go.
    second.detach_underlay(underlay).expect("detach");
    assert!(!pin.exists());
    assert_eq!(xdp_program_on(&hv, underlay), None);
    drop(second);
    pins.remove().expect("remove the pins");
}
