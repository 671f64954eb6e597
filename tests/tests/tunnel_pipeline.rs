//! The logical pipeline across chassis, on the seed's flows as ovn-northd wrote them:
//! with vm1 bound on another chassis, what c51 sends it ends the ingress pipeline as one
//! tunnel copy (inport c51, outport vm1, the headers as they left ingress) and runs no
//! egress pipeline here; a broadcast reaches the local members and one copy goes to the
//! other chassis with `_MC_flood`'s key; and a frame from the tunnel runs only the
//! egress pipeline of local ports, never going back into a tunnel (ovn-controller's
//! tables 37 and 38).

use ovnest_logical::{
    Interpreter, Semantics, TraceOptions,
    execute::Decision,
    expr::Sets,
    flow::Field,
    pipeline::{Pipeline, PortId, Residency},
    trace::NoTrace,
};
use ovnest_tests::fixtures::lflows;

const C51: &str = "inport == \"dmz-c51\" && eth.src == 02:ac:10:ff:01:33";
/// `_MC_flood`'s tunnel key (ovn-northd's OVN_MCAST_FLOOD_TUNNEL_KEY).
const MC_FLOOD: u32 = 32768;

fn pipeline() -> Pipeline {
    let p = Pipeline::compile(&lflows::seed(), &Residency::Everywhere);
    assert!(p.errors.is_empty(), "{:?}", p.errors);
    p
}

/// Chassis 1 holds `ports`; the rest are here.
fn remote(p: &Pipeline, ports: &[&str]) -> Vec<u16> {
    let mut r = vec![0u16; 64];
    for name in ports {
        let id: PortId = p.port_id(name).expect("port");
        r[id as usize] = 1;
    }
    r
}

fn flow_of(p: &Pipeline, microflow: &str) -> (u32, ovnest_logical::flow::Flow) {
    let dp = p.datapath_by_name("dmz").expect("dmz");
    let flow =
        ovnest_logical::microflow::parse(microflow, &Sets::default(), &|n| p.lookup_port(dp, n))
            .expect("microflow");
    (dp, flow)
}

fn decide(p: &Pipeline, remote: &[u16], microflow: &str) -> Decision {
    let (dp, mut flow) = flow_of(p, microflow);
    let mut it = Interpreter::new(p, NoTrace, Semantics::Chassis, TraceOptions::default())
        .with_remote_ports(remote)
        .recording_flows();
    it.run(dp, &mut flow);
    it.into_decision()
}

fn names(p: &Pipeline, d: &Decision) -> Vec<String> {
    let mut v: Vec<String> = d
        .deliveries
        .iter()
        .map(|x| p.port(x.port).name.clone())
        .collect();
    v.sort();
    v
}

fn key(p: &Pipeline, name: &str) -> u32 {
    p.port_by_name(name).expect("port").key
}

#[test]
fn unicast_to_a_remote_port_is_one_tunnel_copy_without_egress_here() {
    let p = pipeline();
    let to_vm1 = format!(
        "{C51} && eth.dst == 02:ac:10:ff:01:30 && ip4.src == 172.16.255.133 && ip4.dst == 172.16.255.130 && ip.ttl == 64 && icmp4.type == 8"
    );
    // All here: delivered to vm1, no tunnel.
    let here = decide(&p, &[], &to_vm1);
    assert_eq!(names(&p, &here), ["dmz-vm1"]);
    assert!(here.tunnels.is_empty());

    let r = remote(&p, &["dmz-vm1"]);
    let d = decide(&p, &r, &to_vm1);
    assert!(d.deliveries.is_empty(), "{:?}", names(&p, &d));
    assert_eq!(d.tunnels.len(), 1);
    let t = &d.tunnels[0];
    assert_eq!(t.chassis, 1);
    assert_eq!(t.outport_key, key(&p, "dmz-vm1"));
    assert_eq!(t.flow.reg(14), key(&p, "dmz-c51"));
    assert_eq!(t.flow.reg(15), key(&p, "dmz-vm1"));
    // The egress pipeline did not run here: fewer logical flows than delivering locally.
    assert!(d.flows.len() < here.flows.len());
}

#[test]
fn a_broadcast_goes_to_local_members_and_once_to_the_other_chassis() {
    let p = pipeline();
    let bcast = format!(
        "{C51} && eth.dst == ff:ff:ff:ff:ff:ff && ip4.src == 172.16.255.133 && ip4.dst == 172.16.255.191 && ip.ttl == 64 && icmp4.type == 8"
    );
    let here = decide(&p, &[], &bcast);
    assert!(names(&p, &here).contains(&"dmz-vm1".to_owned()));
    let r = remote(&p, &["dmz-vm1", "dmz-vm2"]);
    let d = decide(&p, &r, &bcast);
    let local = names(&p, &d);
    assert!(!local.contains(&"dmz-vm1".to_owned()) && !local.contains(&"dmz-vm2".to_owned()));
    assert!(!local.is_empty(), "the local members still get it");
    assert_eq!(d.tunnels.len(), 1, "one copy per chassis: {:?}", d.tunnels);
    assert_eq!(d.tunnels[0].outport_key, MC_FLOOD);
    assert_eq!(d.tunnels[0].flow.reg(15), MC_FLOOD);
}

#[test]
fn from_a_tunnel_only_the_egress_of_local_ports_runs() {
    let p = pipeline();
    let r = remote(&p, &["dmz-vm1", "dmz-vm2"]);
    // vm1 → c51 arriving over the tunnel.
    let (dp, mut flow) = flow_of(
        &p,
        "eth.src == 02:ac:10:ff:01:30 && eth.dst == 02:ac:10:ff:01:33 && ip4.src == 172.16.255.130 && ip4.dst == 172.16.255.133 && ip.ttl == 64 && icmp4.type == 0",
    );
    flow.set_reg(14, key(&p, "dmz-vm1"));
    flow.set_reg(15, key(&p, "dmz-c51"));
    flow.set(Field::Metadata, u128::from(p.datapath(dp).key));
    let mut it = Interpreter::new(&p, NoTrace, Semantics::Chassis, TraceOptions::default())
        .with_remote_ports(&r);
    it.run_from_tunnel(dp, &mut flow);
    let d = it.into_decision();
    assert_eq!(names(&p, &d), ["dmz-c51"]);
    assert!(d.tunnels.is_empty());

    // A flood from vm1: the local members, never back into a tunnel (nor to vm2, remote).
    let (dp, mut flow) = flow_of(
        &p,
        "eth.src == 02:ac:10:ff:01:30 && eth.dst == ff:ff:ff:ff:ff:ff && ip4.src == 172.16.255.130 && ip4.dst == 172.16.255.191 && ip.ttl == 64 && icmp4.type == 8",
    );
    flow.set_reg(14, key(&p, "dmz-vm1"));
    flow.set_reg(15, MC_FLOOD);
    flow.set(Field::Metadata, u128::from(p.datapath(dp).key));
    let mut it = Interpreter::new(&p, NoTrace, Semantics::Chassis, TraceOptions::default())
        .with_remote_ports(&r);
    it.run_from_tunnel(dp, &mut flow);
    let d = it.into_decision();
    let local = names(&p, &d);
    assert!(local.contains(&"dmz-c51".to_owned()), "{local:?}");
    assert!(!local.contains(&"dmz-vm1".to_owned()) && !local.contains(&"dmz-vm2".to_owned()));
    assert!(d.tunnels.is_empty());
    // A unicast for a port that is not here (it moved): nothing.
    let (dp, mut flow) = flow_of(
        &p,
        "eth.src == 02:ac:10:ff:01:33 && eth.dst == 02:ac:10:ff:01:31",
    );
    flow.set_reg(14, key(&p, "dmz-c51"));
    flow.set_reg(15, key(&p, "dmz-vm2"));
    let mut it = Interpreter::new(&p, NoTrace, Semantics::Chassis, TraceOptions::default())
        .with_remote_ports(&r);
    it.run_from_tunnel(dp, &mut flow);
    let d = it.into_decision();
    assert!(d.deliveries.is_empty() && d.tunnels.is_empty());
}

// The userspace datapath carrying the tunnel copies out, and frames from the tunnel in.

mod datapath {
    use std::sync::Arc;

    use ovnest_datapath::{
        Attachment,
        geneve::{self, Metadata, Underlay},
        pipeline::{
            Desc, FramePool, LogicalOutcome, NoServices, Pipeline, Snapshot, TunnelPeer,
            TunnelTable, TxBatches, Umem, Verdict,
        },
    };
    use ovnest_tests::fixtures::{
        frames::{Frame, ipv4},
        lab::{self, Wiring},
        lflows,
    };

    const WIRING: Wiring = Wiring {
        vm1: 11,
        vm2: 12,
        vm5: 15,
        stray: 99,
    };
    const UNDERLAY: u32 = 40;
    const HV1_MAC: [u8; 6] = [0x2a, 0xee, 0x99, 0x2d, 0xb6, 0x49];
    const HV2_MAC: [u8; 6] = [0x86, 0xfa, 0x26, 0x32, 0x5c, 0x42];
    const HV1: [u8; 4] = [10, 99, 0, 1];
    const HV2: [u8; 4] = [10, 99, 0, 2];
    const FRAME: u32 = 2048;
    const CHUNKS: u64 = 32;
    const HEADROOM: u32 = 256;

    fn seed() -> ovnest_logical::Pipeline {
        ovnest_logical::Pipeline::compile(
            &lflows::seed(),
            &ovnest_logical::pipeline::Residency::Everywhere,
        )
    }

    /// This chassis is hv1 with the lab's ports (with the keys northd gave them in the
    /// captured flows); vm1 is bound on hv2 (chassis 1).
    fn snapshot() -> Snapshot {
        let p = seed();
        let mut ports = lab::logical_ports(&WIRING);
        for port in &mut ports {
            if let Some(lp) = p.port_by_name(&port.name) {
                port.key.port = lp.key;
            }
            if port.name == "dmz-vm1" {
                port.attachment = Attachment::Remote;
            }
        }
        let vm1 = ports.iter().find(|p| p.name == "dmz-vm1").unwrap().key;
        let table = TunnelTable {
            underlay_ifindex: UNDERLAY,
            peers: vec![TunnelPeer {
                chassis: "hv2".into(),
                underlay: to_hv2(),
            }],
            remote_ports: vec![(vm1, 1)],
        };
        Snapshot::build(1, &ports)
            .with_tunnels(table)
            .with_logical(Arc::new(p))
    }

    fn to_hv2() -> Underlay {
        Underlay {
            local_mac: HV1_MAC,
            next_hop_mac: HV2_MAC,
            local_ip: HV1,
            remote_ip: HV2,
            csum: true,
        }
    }

    /// (verdict, frames out as (ifindex, bytes)).
    fn run(snap: &Snapshot, ifindex: u32, frame: &[u8]) -> (Vec<Verdict>, Vec<(u32, Vec<u8>)>) {
        let mut area = vec![0u8; (FRAME as u64 * CHUNKS) as usize];
        let umem = Umem::new(&mut area, FRAME).unwrap();
        let mut pool = FramePool::with_capacity(CHUNKS as usize, HEADROOM);
        for c in 1..CHUNKS {
            pool.give(c * FRAME as u64);
        }
        let mut tx = TxBatches::new(64);
        tx.prepare(snap.devices().len(), |_| true, |_| {});
        let mut p = Pipeline::new(umem, pool, tx, NoServices);
        let off = HEADROOM as usize;
        p.umem.chunk_mut(0).unwrap().0[off..off + frame.len()].copy_from_slice(frame);
        p.process_batch(snap, ifindex, &[Desc::new(off as u64, frame.len() as u32)]);
        let verdicts: Vec<Verdict> = Verdict::all().filter(|v| p.counters.get(*v) > 0).collect();
        let mut descs = Vec::new();
        p.tx.drain_all(|d, desc| descs.push((snap.devices()[d as usize].ifindex, desc)));
        let area = p.umem.as_mut_slice();
        let out = descs
            .iter()
            .map(|(i, d)| {
                (
                    *i,
                    area[d.addr as usize..(d.addr + u64::from(d.len)) as usize].to_vec(),
                )
            })
            .collect();
        (verdicts, out)
    }

    fn key(name: &str) -> u16 {
        seed().port_by_name(name).expect("port").key as u16
    }

    fn echo(src: &str, dst_mac: [u8; 6], dst_ip: [u8; 4], vid: Option<u16>) -> Vec<u8> {
        let from = lab::port(src);
        let mut f = Frame::eth(dst_mac, from.mac);
        if let Some(vid) = vid {
            f = f.vlan(vid);
        }
        f.ethertype(
            0x0800,
            &ipv4(1, from.ipv4, dst_ip, &[8, 0, 0xf7, 0xff, 0, 0, 0, 0]),
        )
        .build()
    }

    #[test]
    fn c51_to_a_vm_on_another_chassis_leaves_encapsulated_on_the_underlay() {
        let snap = snapshot();
        let vm1 = lab::port("dmz-vm1");
        let sent = echo("dmz-c51", vm1.mac, vm1.ipv4, Some(51));
        let (verdicts, out) = run(&snap, WIRING.vm5, &sent);
        assert!(
            verdicts.contains(&Verdict::Logical(LogicalOutcome::Tunnelled)),
            "{verdicts:?}"
        );
        assert_eq!(out.len(), 1, "one copy, to the underlay: {out:?}");
        let (ifindex, bytes) = &out[0];
        assert_eq!(*ifindex, UNDERLAY);
        let d = geneve::decapsulate(bytes).expect("valid Geneve");
        assert_eq!(
            d.meta,
            Metadata {
                vni: lab::DMZ,
                ingress: key("dmz-c51"),
                egress: key("dmz-vm1"),
            }
        );
        assert_eq!(d.remote_ip, HV1);
        // The inner frame is c51's, its tag gone (the physical layer stripped it).
        let untagged = echo("dmz-c51", vm1.mac, vm1.ipv4, None);
        assert_eq!(&bytes[d.inner.clone()], &untagged[..]);
        // The outer headers are what encapsulate writes for hv2 (byte-equal to real
        // OVS's, see datapath/src/geneve/tests.rs), with this flow's source port.
        let mut expected = vec![0u8; geneve::OVERHEAD];
        expected.extend_from_slice(&untagged);
        geneve::encapsulate(&mut expected, &to_hv2(), &d.meta, d.src_port).unwrap();
        assert_eq!(bytes, &expected);
        assert!((32768..61000).contains(&d.src_port));
        // The same flow again: the same source port.
        let (_, again) = run(&snap, WIRING.vm5, &sent);
        assert_eq!(again[0].1, *bytes);
    }

    fn from_hv2(inner: &[u8], ingress: u16, egress: u16, remote_ip: [u8; 4]) -> Vec<u8> {
        let mut f = vec![0u8; geneve::OVERHEAD];
        f.extend_from_slice(inner);
        let underlay = Underlay {
            local_mac: HV2_MAC,
            next_hop_mac: HV1_MAC,
            local_ip: remote_ip,
            remote_ip: HV1,
            csum: true,
        };
        let meta = Metadata {
            vni: lab::DMZ,
            ingress,
            egress,
        };
        geneve::encapsulate(&mut f, &underlay, &meta, 50000).unwrap();
        f
    }

    #[test]
    fn from_the_tunnel_vm1_reaches_c51_with_its_tag() {
        let snap = snapshot();
        let c51 = lab::port("dmz-c51");
        let reply = echo("dmz-vm1", c51.mac, c51.ipv4, None);
        let frame = from_hv2(&reply, key("dmz-vm1"), key("dmz-c51"), HV2);
        let (verdicts, out) = run(&snap, UNDERLAY, &frame);
        assert_eq!(
            verdicts,
            [Verdict::Logical(LogicalOutcome::Delivered)],
            "{out:?}"
        );
        assert_eq!(
            out,
            [(WIRING.vm5, echo("dmz-vm1", c51.mac, c51.ipv4, Some(51)))]
        );

        // From an address that is no chassis's: dropped.
        let stranger = from_hv2(&reply, key("dmz-vm1"), key("dmz-c51"), [10, 99, 0, 7]);
        let (verdicts, out) = run(&snap, UNDERLAY, &stranger);
        assert_eq!(
            verdicts,
            [Verdict::Logical(LogicalOutcome::TunnelUnknownPeer)]
        );
        assert!(out.is_empty());
        // Malformed: dropped and counted.
        let mut bad = frame.clone();
        bad[60] ^= 0xff;
        let (verdicts, out) = run(&snap, UNDERLAY, &bad);
        assert_eq!(
            verdicts,
            [Verdict::Logical(LogicalOutcome::TunnelMalformed)]
        );
        assert!(out.is_empty());
    }

    #[test]
    fn a_flood_from_the_tunnel_reaches_the_local_ports_and_never_goes_back() {
        let snap = snapshot();
        let bcast = echo("dmz-vm1", [0xff; 6], [172, 16, 255, 191], None);
        let frame = from_hv2(&bcast, key("dmz-vm1"), 32768, HV2);
        let (_, out) = run(&snap, UNDERLAY, &frame);
        assert!(!out.is_empty());
        assert!(out.iter().all(|(i, _)| *i != UNDERLAY), "{out:?}");
        assert!(out.contains(&(WIRING.vm2, bcast.clone())));
        assert!(out.contains(&(
            WIRING.vm5,
            echo("dmz-vm1", [0xff; 6], [172, 16, 255, 191], Some(51))
        )));
    }

    #[test]
    fn a_local_broadcast_goes_to_local_ports_and_once_to_the_other_chassis() {
        let snap = snapshot();
        let bcast = echo("dmz-vm2", [0xff; 6], [172, 16, 255, 191], None);
        let (_, out) = run(&snap, WIRING.vm2, &bcast);
        let tunnelled: Vec<_> = out.iter().filter(|(i, _)| *i == UNDERLAY).collect();
        assert_eq!(tunnelled.len(), 1, "{out:?}");
        let d = geneve::decapsulate(&tunnelled[0].1).unwrap();
        assert_eq!((d.meta.ingress, d.meta.egress), (key("dmz-vm2"), 32768));
        assert_eq!(&tunnelled[0].1[d.inner.clone()], &bcast[..]);
        assert!(out.contains(&(
            WIRING.vm5,
            echo("dmz-vm2", [0xff; 6], [172, 16, 255, 191], Some(51))
        )));
    }
}
