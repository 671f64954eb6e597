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
        .with_remote_ports(remote);
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
