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
        transport_zones: vec!["ovnest-no-tunnels-hv1".into()],
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
    // Without tunnels the chassis is alone in its transport zone, on insert and update.
    assert!(ops.iter().any(|op| matches!(op, Operation::Update { table, row, .. } if table == "Chassis" && row.get("transport_zones").is_some_and(|z| z.atoms().iter().map(|a| a.as_str()).eq([Some("ovnest-no-tunnels-hv1")])))));
    let inserted = chassis::register(&empty, &spec);
    assert!(inserted.iter().any(|op| matches!(op, Operation::Insert { table, row, .. } if table == "Chassis" && row.get("transport_zones").is_some_and(|z| z.len() == 1))));
    // Once tunnels are terminated, the zone goes.
    let mut isolated = snapshot(vec![], true);
    let hv1 = isolated.chassis("hv1").unwrap().as_ref().clone();
    isolated.insert(Chassis {
        transport_zones: spec.transport_zones.clone(),
        ..hv1
    });
    let tunnelling = ChassisSpec {
        transport_zones: Vec::new(),
        ..spec.clone()
    };
    let ops = chassis::register(&isolated, &tunnelling);
    assert!(ops.iter().any(|op| matches!(op, Operation::Update { table, row, .. } if table == "Chassis" && row.get("transport_zones").is_some_and(|z| z.is_empty()))));
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

/// dmz (vm1) — lr0 — inside (vm3); lr0's gateway port to `public` (a DGP, `always-redirect`
/// on its chassis-redirect port, hosted by gw); `far` stands alone (vm9).
fn routed_snapshot() -> Snapshot {
    use crate::sb::{HaChassis, HaChassisGroup};
    let mut snap = Snapshot::default();
    let dp = |snap: &mut Snapshot, n: u8, name: &str| {
        snap.insert(DatapathBinding {
            uuid: uuid(n),
            tunnel_key: u32::from(n),
            external_ids: [("name".to_owned(), name.to_owned())].into(),
            ..DatapathBinding::default()
        })
    };
    for (n, name) in [
        (1, "dmz"),
        (2, "lr0"),
        (3, "inside"),
        (4, "far"),
        (5, "public"),
    ] {
        dp(&mut snap, n, name);
    }
    let mut key = 0x10;
    let mut pb = |snap: &mut Snapshot, name: &str, dp: u8, ty: &str, options: &[(&str, &str)]| {
        key += 1;
        snap.insert(PortBinding {
            uuid: uuid(key),
            logical_port: name.into(),
            datapath: uuid(dp),
            tunnel_key: u32::from(key),
            port_type: ty.into(),
            options: options
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            ..PortBinding::default()
        })
    };
    pb(&mut snap, "dmz-vm1", 1, "", &[]);
    pb(&mut snap, "inside-vm3", 3, "", &[]);
    pb(&mut snap, "far-vm9", 4, "", &[]);
    pb(&mut snap, "dmz-lr0", 1, "patch", &[("peer", "lr0-dmz")]);
    pb(&mut snap, "lr0-dmz", 2, "patch", &[("peer", "dmz-lr0")]);
    pb(
        &mut snap,
        "inside-lr0",
        3,
        "patch",
        &[("peer", "lr0-inside")],
    );
    pb(
        &mut snap,
        "lr0-inside",
        2,
        "patch",
        &[("peer", "inside-lr0")],
    );
    pb(
        &mut snap,
        "public-lr0",
        5,
        "patch",
        &[("peer", "lr0-public")],
    );
    pb(
        &mut snap,
        "lr0-public",
        2,
        "patch",
        &[
            ("peer", "public-lr0"),
            ("chassis-redirect-port", "cr-lr0-public"),
        ],
    );
    let gw = 0xc2;
    snap.insert(HaChassis {
        uuid: uuid(0xa1),
        chassis: Some(uuid(gw)),
        priority: 10,
        ..HaChassis::default()
    });
    snap.insert(HaChassisGroup {
        uuid: uuid(0xa2),
        name: "lr0-public".into(),
        ha_chassis: vec![uuid(0xa1)],
        ..HaChassisGroup::default()
    });
    snap.insert(PortBinding {
        uuid: uuid(0xa3),
        logical_port: "cr-lr0-public".into(),
        datapath: uuid(2),
        tunnel_key: 0x30,
        port_type: "chassisredirect".into(),
        options: [("always-redirect".to_owned(), "true".to_owned())].into(),
        ha_chassis_group: Some(uuid(0xa2)),
        ..PortBinding::default()
    });
    snap
}

fn names(snap: &Snapshot, dps: &std::collections::BTreeSet<Uuid>) -> Vec<String> {
    let mut v: Vec<String> = dps
        .iter()
        .map(|u| {
            snap.datapath(u)
                .and_then(|d| d.name())
                .unwrap_or("?")
                .to_owned()
        })
        .collect();
    v.sort();
    v
}

#[test]
fn local_datapaths_follow_patch_ports_through_routers() {
    use super::local_datapaths::local_datapaths;
    let snap = routed_snapshot();
    let ports = |p: &[&str]| p.iter().map(|s| (*s).to_owned()).collect();
    let hv1 = Some((uuid(HV1), "hv1"));
    // A VIF on dmz: dmz, its router, the switch behind it; not far, not public (behind
    // an always-redirect gateway port hosted elsewhere).
    assert_eq!(
        names(&snap, &local_datapaths(&snap, hv1, &ports(&["dmz-vm1"]))),
        ["dmz", "inside", "lr0"]
    );
    // On the gateway chassis, public is local too.
    let gw = Some((uuid(0xc2), "gw"));
    assert_eq!(
        names(&snap, &local_datapaths(&snap, gw, &ports(&["dmz-vm1"]))),
        ["dmz", "inside", "lr0", "public"]
    );
    // Nothing local, nothing monitored; a port bound here by the SB counts.
    assert!(local_datapaths(&snap, hv1, &ports(&[])).is_empty());
    let mut snap2 = snap.clone();
    let mut far = (**snap.port_binding("far-vm9").unwrap()).clone();
    far.chassis = Some(uuid(HV1));
    snap2.insert(far);
    assert_eq!(
        names(&snap2, &local_datapaths(&snap2, hv1, &ports(&["dmz-vm1"]))),
        ["dmz", "far", "inside", "lr0"]
    );
    // A VIF requested for another chassis does not make its switch local.
    let mut vm1 = (**snap.port_binding("dmz-vm1").unwrap()).clone();
    vm1.requested_chassis = Some(uuid(0xc9));
    let mut snap3 = snap.clone();
    snap3.insert(vm1);
    assert!(local_datapaths(&snap3, hv1, &ports(&["dmz-vm1"])).is_empty());
}

#[test]
fn monitor_conditions_as_ovn_controller_sets_them() {
    use super::monitor::MonitorPlan;
    let mut snap = routed_snapshot();
    let ports = ["dmz-vm1".to_owned()].into_iter().collect();
    let json = |plan: &MonitorPlan| {
        plan.conditions()
            .into_iter()
            .map(|(t, c)| (t, c.to_json()))
            .collect::<BTreeMap<_, _>>()
    };
    // Before the chassis is registered: gateway types, every Chassis_Private row.
    let early = MonitorPlan::compute(&snap, "hv1", ports, false);
    let c = json(&early);
    assert!(
        c["Port_Binding"]
            .to_string()
            .contains(r#"["type","==","l3gateway"]"#)
    );
    assert!(!c["Port_Binding"].to_string().contains(r#""chassis""#));
    assert_eq!(c["Chassis_Private"], serde_json::json!([true]));
    assert_eq!(early.local_datapaths.len(), 3);

    snap.insert(Chassis {
        uuid: uuid(HV1),
        name: "hv1".into(),
        ..Chassis::default()
    });
    let plan = MonitorPlan::compute(&snap, "hv1", early.local_ports.clone(), false);
    let c = json(&plan);
    let pb = c["Port_Binding"].to_string();
    for clause in [
        r#"["type","==","patch"]"#,
        r#"["type","==","chassisredirect"]"#,
        r#"["type","==","external"]"#,
        r#"["chassis","==",["uuid","00000000-0000-0000-0000-0000000000c1"]]"#,
        r#"["requested_chassis","==",["uuid","00000000-0000-0000-0000-0000000000c1"]]"#,
        r#"["options","includes",["map",[["l3gateway-chassis","hv1"]]]]"#,
        r#"["logical_port","==","dmz-vm1"]"#,
        r#"["parent_port","==","dmz-vm1"]"#,
        r#"["datapath","==",["uuid","00000000-0000-0000-0000-000000000001"]]"#,
    ] {
        assert!(pb.contains(clause), "{clause} in {pb}");
    }
    assert!(!pb.contains("000000000004"), "far is not local: {pb}");
    let lf = c["Logical_Flow"].to_string();
    assert!(
        lf.contains(r#"["logical_dp_group","!=",["set",[]]]"#),
        "{lf}"
    );
    assert_eq!(lf.matches("logical_datapath").count(), 3, "{lf}");
    assert_eq!(c["MAC_Binding"].as_array().unwrap().len(), 3);
    assert_eq!(c["Multicast_Group"].as_array().unwrap().len(), 3);
    assert_eq!(
        c["Chassis_Private"],
        serde_json::json!([["name", "==", "hv1"]])
    );

    // monitor-all: every row of every conditional table.
    let all = MonitorPlan::compute(&snap, "hv1", plan.local_ports.clone(), true);
    assert!(json(&all).values().all(|c| *c == serde_json::json!([true])));
    // No local port: no flow, no MAC binding, no group.
    let none = MonitorPlan::compute(&snap, "hv1", Default::default(), false);
    let c = json(&none);
    for t in ["Logical_Flow", "MAC_Binding", "Multicast_Group"] {
        assert_eq!(c[t], serde_json::json!([false]), "{t}");
    }
}

#[test]
fn monitor_all_from_the_flag_or_the_local_ovs_db() {
    use super::config::{Effective, Flags, RunArgs};
    use super::local_ovs::LocalOvs;
    use clap::Parser;
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        run: RunArgs,
    }
    let flags = |extra: &[&str]| {
        let mut args = vec![
            "ovnest",
            "--chassis",
            "hv1",
            "--ovn-remote",
            "tcp:127.0.0.1:6642",
        ];
        args.extend(["--encap-ip", "127.0.0.1"]);
        args.extend(extra);
        Flags::check(&Cli::parse_from(args).run).unwrap()
    };
    let local = |all: bool| LocalOvs {
        synced: true,
        monitor_all: all,
        ..LocalOvs::default()
    };
    let resolve = |f: &Flags, l: Option<&LocalOvs>| Effective::resolve(f, l).unwrap().monitor_all;
    assert!(!resolve(&flags(&[]), None));
    assert!(!resolve(&flags(&[]), Some(&local(false))));
    assert!(resolve(&flags(&[]), Some(&local(true))));
    assert!(resolve(&flags(&["--monitor-all"]), None));
}
