//! The agent's pure parts without root: claim rules, chassis rows, desired ports.

use std::collections::BTreeMap;

use super::{
    bindings::{self, OddState, Role},
    chassis::{self, ChassisSpec},
    desired::{self, StatsSlots},
};
use crate::{
    ovsdb::{Operation, Uuid},
    sb::{Chassis, DatapathBinding, PortAddresses, PortBinding, Snapshot},
};

fn uuid(n: u8) -> Uuid {
    format!("00000000-0000-0000-0000-0000000000{n:02x}")
        .parse()
        .unwrap()
}

const DMZ: u8 = 0xd0;
const HV1: u8 = 0xc1;

fn port(name: &str, key: u32, parent: Option<&str>, tag: Option<u16>, mac_last: u8) -> PortBinding {
    let addr: PortAddresses = format!(
        "02:ac:10:ff:01:{mac_last:02x} 172.16.255.{}",
        100 + u32::from(mac_last)
    )
    .parse()
    .unwrap();
    PortBinding {
        uuid: uuid(key as u8),
        logical_port: name.into(),
        parent_port: parent.map(Into::into),
        tag,
        mac: vec![addr.clone()],
        port_security: vec![addr],
        tunnel_key: key,
        datapath: uuid(DMZ),
        ..PortBinding::default()
    }
}

fn snapshot(ports: Vec<PortBinding>, chassis: bool) -> Snapshot {
    let mut snap = Snapshot {
        synced: true,
        ..Snapshot::default()
    };
    for pb in ports {
        snap.insert(pb);
    }
    snap.insert(DatapathBinding {
        uuid: uuid(DMZ),
        tunnel_key: 1,
        ..DatapathBinding::default()
    });
    if chassis {
        snap.insert(Chassis {
            uuid: uuid(HV1),
            name: "hv1".into(),
            hostname: "h".into(),
            ..Chassis::default()
        });
    }
    snap
}

fn claimed(mut pb: PortBinding) -> PortBinding {
    pb.chassis = Some(uuid(HV1));
    pb
}

fn vifs(pairs: &[(&str, u32)]) -> BTreeMap<String, u32> {
    pairs.iter().map(|(p, i)| ((*p).to_owned(), *i)).collect()
}

fn bound_names(plan: &bindings::Plan) -> Vec<&str> {
    let mut names: Vec<&str> = plan
        .bound
        .iter()
        .map(|b| b.port.logical_port.as_str())
        .collect();
    names.sort();
    names
}

#[test]
fn children_follow_only_a_parent_already_claimed_here() {
    let lab = |vm5_claimed: bool| {
        let vm5 = port("dmz-vm5", 4, None, None, 0x32);
        let vm5 = if vm5_claimed { claimed(vm5) } else { vm5 };
        snapshot(
            vec![vm5, port("dmz-c51", 7, Some("dmz-vm5"), Some(51), 0x33)],
            true,
        )
    };
    let first = bindings::plan(&lab(false), Some(uuid(HV1)), &vifs(&[("dmz-vm5", 9)]));
    assert_eq!(bound_names(&first), ["dmz-vm5"]);
    let second = bindings::plan(&lab(true), Some(uuid(HV1)), &vifs(&[("dmz-vm5", 9)]));
    assert_eq!(bound_names(&second), ["dmz-c51", "dmz-vm5"]);
    let c51 = second
        .bound
        .iter()
        .find(|b| b.port.logical_port == "dmz-c51")
        .unwrap();
    assert_eq!(
        c51.role,
        Role::Child {
            parent_ifindex: 9,
            tag: 51
        }
    );
}

#[test]
fn duplicate_tags_keep_the_lower_tunnel_key_and_report_the_other() {
    let snap = snapshot(
        vec![
            claimed(port("dmz-vm5", 4, None, None, 0x32)),
            port("dmz-c99", 12, Some("dmz-vm5"), Some(51), 0x99),
            port("dmz-c51", 7, Some("dmz-vm5"), Some(51), 0x33),
        ],
        true,
    );
    let plan = bindings::plan(&snap, Some(uuid(HV1)), &vifs(&[("dmz-vm5", 9)]));
    assert_eq!(bound_names(&plan), ["dmz-c51", "dmz-vm5"]);
    assert!(plan.odd.contains(&OddState::DuplicateTag {
        parent: "dmz-vm5".into(),
        tag: 51,
        kept: "dmz-c51".into(),
        refused: "dmz-c99".into()
    }));
}

#[test]
fn odd_states_are_reported_not_bound() {
    let mut c60 = claimed(port("dmz-c60", 20, Some("dmz-vm9"), Some(60), 0x60));
    c60.requested_chassis = None;
    let snap = snapshot(
        vec![
            claimed(port("dmz-vm5", 4, None, None, 0x32)),
            port("dmz-c57", 13, Some("dmz-vm5"), None, 0x57),
            port("dmz-c51", 7, Some("dmz-vm5"), Some(51), 0x33),
            port("dmz-c511", 14, Some("dmz-c51"), Some(5), 0x11),
            port("dmz-c4095", 15, Some("dmz-vm5"), Some(4095), 0x95),
            c60,
        ],
        true,
    );
    let plan = bindings::plan(
        &snap,
        Some(uuid(HV1)),
        &vifs(&[("dmz-vm5", 9), ("dmz-c51", 10), ("dmz-gone", 11)]),
    );
    assert_eq!(bound_names(&plan), ["dmz-c51", "dmz-vm5"]);
    for odd in [
        OddState::TagMissing {
            port: "dmz-c57".into(),
        },
        OddState::TagReserved {
            port: "dmz-c4095".into(),
            tag: 4095,
        },
        OddState::IfaceIdIsChild {
            iface_id: "dmz-c51".into(),
        },
        OddState::NoSuchPort {
            iface_id: "dmz-gone".into(),
        },
        OddState::ParentNotLocal {
            port: "dmz-c60".into(),
            parent: "dmz-vm9".into(),
        },
        OddState::ParentIsChild {
            port: "dmz-c511".into(),
            parent: "dmz-c51".into(),
        },
    ] {
        assert!(plan.odd.contains(&odd), "missing {odd:?} in {:?}", plan.odd);
    }
}

#[test]
fn claims_then_up_then_release() {
    let hv1 = uuid(HV1);
    let update_of = |ops: &[Operation]| -> Vec<String> {
        ops.iter()
            .map(|op| match op {
                Operation::Update { row, .. } => {
                    let mut cols: Vec<&String> = row.keys().collect();
                    cols.sort();
                    cols.iter()
                        .map(|c| c.as_str())
                        .collect::<Vec<_>>()
                        .join(",")
                }
                other => format!("{other:?}"),
            })
            .collect()
    };
    // Not yet claimed: claim.
    let snap = snapshot(vec![port("dmz-vm1", 2, None, None, 0x30)], true);
    let plan = bindings::plan(&snap, Some(hv1), &vifs(&[("dmz-vm1", 3)]));
    let programmed = ["dmz-vm1".to_owned()].into();
    assert_eq!(
        update_of(&bindings::port_binding_updates(
            &snap,
            hv1,
            &plan,
            &programmed
        )),
        ["chassis"]
    );
    // Claimed and programmed: up.
    let snap = snapshot(vec![claimed(port("dmz-vm1", 2, None, None, 0x30))], true);
    let plan = bindings::plan(&snap, Some(hv1), &vifs(&[("dmz-vm1", 3)]));
    assert_eq!(
        update_of(&bindings::port_binding_updates(
            &snap,
            hv1,
            &plan,
            &programmed
        )),
        ["up"]
    );
    // Claimed but not programmed: nothing yet.
    assert!(bindings::port_binding_updates(&snap, hv1, &plan, &Default::default()).is_empty());
    // Interface gone: release.
    let plan = bindings::plan(&snap, Some(hv1), &vifs(&[]));
    assert_eq!(
        update_of(&bindings::port_binding_updates(
            &snap,
            hv1,
            &plan,
            &programmed
        )),
        ["chassis,up"]
    );
}

#[test]
fn chassis_registration_is_idempotent() {
    let spec = ChassisSpec {
        name: "hv1".into(),
        hostname: "h".into(),
        encap_type: "geneve".into(),
        encap_ip: "127.0.0.1".into(),
    };
    let empty = snapshot(vec![], false);
    let ops = chassis::register(&empty, &spec);
    let tables: Vec<&str> = ops
        .iter()
        .map(|op| match op {
            Operation::Insert { table, .. } => table.as_str(),
            _ => "other",
        })
        .collect();
    assert_eq!(tables, ["Encap", "Chassis", "Chassis_Private"]);
    // A chassis that exists but lacks the feature flags and its encap gets both fixed.
    let stale = snapshot(vec![], true);
    let ops = chassis::register(&stale, &spec);
    assert!(ops.iter().any(|op| matches!(op, Operation::Update { table, row, .. } if table == "Chassis" && row.contains_key("other_config") && row.contains_key("encaps"))));
    assert!(
        spec.other_config()
            .get("port-up-notif")
            .is_some_and(|v| v == "true")
    );
}

#[test]
fn desired_ports_include_the_switch_for_arp_and_keep_slots_stable() {
    let mut lr0 = port("dmz-lr0", 1, None, None, 0);
    lr0.mac = vec![PortAddresses::Router];
    lr0.options.insert("peer".into(), "lr0-dmz".into());
    let mut lrp = port("lr0-dmz", 1, None, None, 0x29);
    lrp.datapath = uuid(0xd2);
    let snap = snapshot(
        vec![
            claimed(port("dmz-vm5", 4, None, None, 0x32)),
            port("dmz-c51", 7, Some("dmz-vm5"), Some(51), 0x33),
            lr0,
            lrp,
        ],
        true,
    );
    let plan = bindings::plan(&snap, Some(uuid(HV1)), &vifs(&[("dmz-vm5", 9)]));
    let mut slots = StatsSlots::default();
    let ports = desired::logical_ports(&snap, &plan, &mut slots);
    let router = ports
        .iter()
        .find(|p| p.name == "dmz-lr0")
        .expect("router port for ARP");
    assert_eq!(
        router.addresses[0].0,
        [2, 0xac, 0x10, 0xff, 1, 0x29],
        "router MAC via the patch peer"
    );
    assert_eq!(router.attachment, ovnest_datapath::Attachment::Remote);
    let slot = slots.slot("dmz-c51").unwrap();
    let again = desired::logical_ports(&snap, &plan, &mut slots);
    assert_eq!(
        again
            .iter()
            .find(|p| p.name == "dmz-c51")
            .unwrap()
            .stats_slot,
        slot
    );
}
