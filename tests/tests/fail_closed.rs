//! Fail closed, and say where: a frame whose decision needs an action ovnest cannot carry
//! out is dropped, counted by the action's name and by the logical flow that holds it, so
//! that `ovnest status` can name the flows an operator's configuration made unsupported.
//! Real ovn-northd compiles a forwarding group (`ovn-nbctl fwd-group-add`) on the seed's
//! switch: its `fwd_group()` action is one ovnest does not execute.

use ovnest_datapath::pipeline::LocalCounters;
use ovnest_datapath::pipeline::SharedCounters;
use ovnest_logical::db::Uuid;
use ovnest_logical::pipeline::{Pipeline, Residency};
use ovnest_tests::decide::decide;
use ovnest_tests::ovn::OvnCentral;
use ovnest_tests::privilege;

const TOOLS: &[&str] = &[
    "ovsdb-server",
    "ovsdb-tool",
    "ovn-northd",
    "ovn-nbctl",
    "ovn-sbctl",
];

const GROUP_MAC: &str = "02:ac:10:ff:01:99";

#[test]
fn a_decision_needing_an_unsupported_action_names_its_flow() {
    let name = "a_decision_needing_an_unsupported_action_names_its_flow";
    if !privilege::require_tools(name, TOOLS) {
        return;
    }
    let ovn = OvnCentral::start();
    ovn.seed_dmz_and_router();
    for (port, mac, ip) in [
        ("dmz-vm1", "02:ac:10:ff:01:30", "172.16.255.130"),
        ("dmz-vm2", "02:ac:10:ff:01:31", "172.16.255.131"),
    ] {
        ovn.nbctl(&["lsp-add", "dmz", port]);
        ovn.nbctl(&["lsp-set-addresses", port, &format!("{mac} {ip}")]);
    }
    ovn.nbctl(&[
        "fwd-group-add",
        "fwd",
        "dmz",
        "172.16.255.180",
        GROUP_MAC,
        "dmz-vm1",
        "dmz-vm2",
    ]);
    ovn.sync();
    let flow_uuid = ovn
        .sbctl(&[
            "--bare",
            "--columns=_uuid",
            "find",
            "Logical_Flow",
            &format!("match=\"eth.dst == {GROUP_MAC}\""),
        ])
        .trim()
        .to_owned();
    assert!(!flow_uuid.is_empty(), "northd emitted the group's flow");

    let db = ovnest_tests::southbound::fetch(&ovn);
    let p = Pipeline::compile(&db, &Residency::Everywhere);
    assert!(p.errors.is_empty(), "{:?}", p.errors);

    // vm1 sends to the group's MAC.
    let mut frame = Vec::new();
    frame.extend_from_slice(&[0x02, 0xac, 0x10, 0xff, 0x01, 0x99]);
    frame.extend_from_slice(&[0x02, 0xac, 0x10, 0xff, 0x01, 0x30]);
    frame.extend_from_slice(&[0x08, 0x00]);
    frame.extend_from_slice(&ovnest_datapath::frames::ipv4(
        17,
        [172, 16, 255, 130],
        [172, 16, 255, 180],
        &[0x30, 0x39, 0x00, 0x35, 0x00, 0x08, 0x00, 0x00],
    ));
    let d = decide(&p, "dmz-vm1", &frame);
    assert_eq!(d.unsupported, vec!["fwd_group"]);
    assert!(d.deliveries.is_empty(), "fail closed: {:?}", d.deliveries);
    let flow = d.unsupported_flow.expect("the flow holding fwd_group");
    let uuid = p.flow(flow).uuid;
    assert_eq!(uuid.to_string(), flow_uuid, "the SB row's uuid");

    // The datapath's counters carry the pair to the agent's status.
    let mut local = LocalCounters::new();
    local.unsupported(d.unsupported[0], Some(uuid.0));
    local.unsupported(d.unsupported[0], Some(uuid.0));
    let shared = SharedCounters::new();
    local.fold_into(&shared);
    let named = shared.named();
    assert_eq!(named.unsupported.get("fwd_group"), Some(&2));
    assert_eq!(
        named
            .unsupported_flows
            .iter()
            .map(|((action, flow), n)| (*action, Uuid(*flow).to_string(), *n))
            .collect::<Vec<_>>(),
        vec![("fwd_group", flow_uuid, 2)]
    );
}
