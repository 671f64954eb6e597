//! Every table of the typed Southbound replica against real ovsdb-server and ovn-northd
//! (OVN 23.03): a topology that fills them (routers, a gateway port, NAT, ACLs on a port
//! group and an address set, a load balancer with health checks, an HA chassis group, a
//! static MAC binding, learnt MAC_Binding and FDB rows), then each table compared row by
//! row, column by column, with what `ovn-sbctl --format=json list` shows. Rows that do not
//! decode are listed with their UUID and counted, and heal when fixed.

use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ovnest::sb::*;
use ovnest_tests::ovn::OvnCentral;
use ovnest_tests::ovsdb_json::{int, map, opt, string, strings, uuid, uuids};
use ovnest_tests::{privilege, wait};
use serde_json::{Map, Value};

const TOOLS: &[&str] = &[
    "ovsdb-server",
    "ovsdb-tool",
    "ovn-northd",
    "ovn-nbctl",
    "ovn-sbctl",
];
const DEADLINE: Duration = Duration::from_secs(30);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// dmz (the seed's ports, DHCP) and `public` behind lr0, with a gateway port on chassis
/// gw1, NAT, a port group with an ACL on an address set, a load balancer with health
/// checks, an external port in an HA chassis group, and a static MAC binding.
fn topology(ovn: &OvnCentral) {
    ovn.sbctl(&["chassis-add", "gw1", "geneve", "127.0.0.9"]);
    ovn.nbctl(&["ls-add", "dmz"]);
    let dhcp = ovn.nbctl(&[
        "create",
        "DHCP_Options",
        "cidr=172.16.255.128/26",
        "options:lease_time=3600",
        "options:router=172.16.255.129",
        "options:server_id=172.16.255.129",
        "options:server_mac=02:ac:10:ff:01:29",
    ]);
    for (port, n) in [("dmz-vm1", "30"), ("dmz-vm5", "32"), ("dmz-c51", "33")] {
        let addr = format!("02:ac:10:ff:01:{n} 172.16.255.1{n}");
        ovn.nbctl(&["lsp-add", "dmz", port]);
        ovn.nbctl(&["lsp-set-addresses", port, &addr]);
        ovn.nbctl(&["lsp-set-port-security", port, &addr]);
        ovn.nbctl(&["lsp-set-dhcpv4-options", port, dhcp.trim()]);
    }
    ovn.nbctl(&[
        "set",
        "Logical_Switch_Port",
        "dmz-c51",
        "parent_name=dmz-vm5",
        "tag=51",
    ]);
    ovn.nbctl(&["lr-add", "lr0"]);
    ovn.nbctl(&[
        "lrp-add",
        "lr0",
        "lr0-dmz",
        "02:ac:10:ff:01:29",
        "172.16.255.129/26",
    ]);
    ovn.nbctl(&["lsp-add", "dmz", "dmz-lr0"]);
    ovn.nbctl(&["lsp-set-type", "dmz-lr0", "router"]);
    ovn.nbctl(&["lsp-set-addresses", "dmz-lr0", "router"]);
    ovn.nbctl(&["lsp-set-options", "dmz-lr0", "router-port=lr0-dmz"]);
    ovn.nbctl(&[
        "lrp-add",
        "lr0",
        "lr0-public",
        "02:00:00:00:00:fe",
        "10.0.0.1/24",
    ]);
    ovn.nbctl(&["lrp-set-gateway-chassis", "lr0-public", "gw1", "10"]);
    ovn.nbctl(&["ls-add", "public"]);
    ovn.nbctl(&["lsp-add", "public", "public-lr0"]);
    ovn.nbctl(&["lsp-set-type", "public-lr0", "router"]);
    ovn.nbctl(&["lsp-set-addresses", "public-lr0", "router"]);
    ovn.nbctl(&[
        "lsp-set-options",
        "public-lr0",
        "router-port=lr0-public",
        "nat-addresses=router",
    ]);
    ovn.nbctl(&[
        "lr-nat-add",
        "lr0",
        "dnat_and_snat",
        "10.0.0.100",
        "172.16.255.133",
        "dmz-c51",
        "02:00:00:00:01:00",
    ]);
    ovn.nbctl(&["ha-chassis-group-add", "hagrp"]);
    ovn.nbctl(&["ha-chassis-group-add-chassis", "hagrp", "gw1", "20"]);
    ovn.nbctl(&["lsp-add", "dmz", "ext1"]);
    ovn.nbctl(&["lsp-set-type", "ext1", "external"]);
    ovn.nbctl(&[
        "lsp-set-addresses",
        "ext1",
        "02:00:00:00:0e:01 172.16.255.160",
    ]);
    let group = ovn.nbctl(&[
        "--bare",
        "--columns=_uuid",
        "find",
        "HA_Chassis_Group",
        "name=hagrp",
    ]);
    ovn.nbctl(&[
        "set",
        "Logical_Switch_Port",
        "ext1",
        &format!("ha_chassis_group={}", group.trim()),
    ]);
    ovn.nbctl(&[
        "static-mac-binding-add",
        "lr0-dmz",
        "172.16.255.150",
        "02:00:00:00:01:50",
    ]);
    ovn.nbctl(&[
        "lb-add",
        "lb_web",
        "172.16.255.200:80",
        "172.16.255.133:8080,172.16.255.130:8080",
        "tcp",
    ]);
    ovn.nbctl(&["ls-lb-add", "dmz", "lb_web"]);
    ovn.nbctl(&[
        "--id=@hc",
        "create",
        "Load_Balancer_Health_Check",
        "vip=\"172.16.255.200:80\"",
        "--",
        "add",
        "Load_Balancer",
        "lb_web",
        "health_check",
        "@hc",
    ]);
    ovn.nbctl(&[
        "set",
        "Load_Balancer",
        "lb_web",
        "ip_port_mappings:172.16.255.133=dmz-c51:172.16.255.129",
        "ip_port_mappings:172.16.255.130=dmz-vm1:172.16.255.129",
    ]);
    ovn.nbctl(&["pg-add", "pg_web", "dmz-c51", "dmz-vm1"]);
    ovn.nbctl(&[
        "create",
        "Address_Set",
        "name=as_admin",
        "addresses=\"10.9.0.1\",\"10.9.0.2\"",
    ]);
    ovn.nbctl(&[
        "acl-add",
        "pg_web",
        "to-lport",
        "1002",
        "outport == @pg_web && ip4.src == $as_admin",
        "allow-related",
    ]);
    ovn.sync();
    // What chassis learn and write themselves: a neighbour of the router, a MAC on dmz.
    let lr0 = ovn.sbctl(&[
        "--bare",
        "--columns=_uuid",
        "find",
        "Datapath_Binding",
        "external_ids:name=lr0",
    ]);
    ovn.sbctl(&[
        "create",
        "MAC_Binding",
        "logical_port=lr0-dmz",
        "ip=172.16.255.130",
        "mac=\"02:ac:10:ff:01:30\"",
        &format!("datapath={}", lr0.trim()),
        "timestamp=1700000000000",
    ]);
    ovn.sbctl(&[
        "create",
        "FDB",
        "mac=\"02:00:00:00:00:99\"",
        "dp_key=1",
        "port_key=1",
    ]);
}

// --- Each table, as ovn-sbctl shows it and as the replica holds it, rendered alike. ---

fn o(v: Option<String>) -> String {
    v.unwrap_or_else(|| "-".into())
}
fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}
fn ids(v: &[ovnest::ovsdb::Uuid]) -> Vec<String> {
    sorted(v.iter().map(|u| u.to_string()).collect())
}
fn nat(n: &NatAddresses) -> String {
    let mut s = n.mac.to_string();
    for ip in &n.ips {
        s.push(' ');
        s.push_str(&ip.addr.to_string());
    }
    if let Some(p) = &n.chassis_resident {
        s.push_str(&format!(" is_chassis_resident(\"{p}\")"));
    }
    s
}

type Render = fn(&Map<String, Value>) -> String;
type Have = fn(&Snapshot) -> BTreeMap<String, String>;

fn rows<T: SbRow>(s: &Snapshot, f: impl Fn(&T) -> String) -> BTreeMap<String, String> {
    s.table::<T>()
        .iter()
        .map(|r| (r.uuid().to_string(), f(r)))
        .collect()
}

/// (table, columns, sbctl rendering, replica rendering), for every table in the replica.
fn tables() -> Vec<(&'static str, &'static [&'static str], Render, Have)> {
    vec![
        (
            SbGlobal::TABLE,
            SbGlobal::COLUMNS,
            |r| {
                format!(
                    "{} {:?} {:?} {}",
                    int(&r["nb_cfg"]),
                    map(&r["external_ids"]),
                    map(&r["options"]),
                    r["ipsec"]
                )
            },
            |s| {
                rows::<SbGlobal>(s, |g| {
                    format!(
                        "{} {:?} {:?} {}",
                        g.nb_cfg, g.external_ids, g.options, g.ipsec
                    )
                })
            },
        ),
        (
            Chassis::TABLE,
            Chassis::COLUMNS,
            |r| {
                format!(
                    "{} {} {:?} {:?} {} {:?} {:?} {:?}",
                    string(&r["name"]),
                    string(&r["hostname"]),
                    uuids(&r["encaps"]),
                    strings(&r["vtep_logical_switches"]),
                    int(&r["nb_cfg"]),
                    map(&r["external_ids"]),
                    map(&r["other_config"]),
                    strings(&r["transport_zones"])
                )
            },
            |s| {
                rows::<Chassis>(s, |c| {
                    format!(
                        "{} {} {:?} {:?} {} {:?} {:?} {:?}",
                        c.name,
                        c.hostname,
                        ids(&c.encaps),
                        sorted(c.vtep_logical_switches.clone()),
                        c.nb_cfg,
                        c.external_ids,
                        c.other_config,
                        sorted(c.transport_zones.clone())
                    )
                })
            },
        ),
        (
            ChassisPrivate::TABLE,
            ChassisPrivate::COLUMNS,
            |r| {
                format!(
                    "{} {} {} {} {:?}",
                    string(&r["name"]),
                    o(opt(&r["chassis"], uuid)),
                    int(&r["nb_cfg"]),
                    int(&r["nb_cfg_timestamp"]),
                    map(&r["external_ids"])
                )
            },
            |s| {
                rows::<ChassisPrivate>(s, |c| {
                    format!(
                        "{} {} {} {} {:?}",
                        c.name,
                        o(c.chassis.map(|u| u.to_string())),
                        c.nb_cfg,
                        c.nb_cfg_timestamp,
                        c.external_ids
                    )
                })
            },
        ),
        (
            Encap::TABLE,
            Encap::COLUMNS,
            |r| {
                format!(
                    "{} {} {} {:?}",
                    string(&r["type"]),
                    string(&r["ip"]),
                    string(&r["chassis_name"]),
                    map(&r["options"])
                )
            },
            |s| {
                rows::<Encap>(s, |e| {
                    format!(
                        "{} {} {} {:?}",
                        e.encap_type, e.ip, e.chassis_name, e.options
                    )
                })
            },
        ),
        (
            DatapathBinding::TABLE,
            DatapathBinding::COLUMNS,
            |r| {
                format!(
                    "{} {:?} {:?}",
                    int(&r["tunnel_key"]),
                    uuids(&r["load_balancers"]),
                    map(&r["external_ids"])
                )
            },
            |s| {
                rows::<DatapathBinding>(s, |d| {
                    format!(
                        "{} {:?} {:?}",
                        d.tunnel_key,
                        ids(&d.load_balancers),
                        d.external_ids
                    )
                })
            },
        ),
        (
            LogicalDpGroup::TABLE,
            LogicalDpGroup::COLUMNS,
            |r| format!("{:?}", uuids(&r["datapaths"])),
            |s| rows::<LogicalDpGroup>(s, |g| format!("{:?}", ids(&g.datapaths))),
        ),
        (
            PortBinding::TABLE,
            PortBinding::COLUMNS,
            |r| {
                format!(
                    "{} {} gw={:?} ha={} {:?} dp={} {} parent={} tag={} vp={} ch={} addl={:?} encap={} addle={:?} mirror={:?} nat={:?} up={} {:?} req={} reqa={:?}",
                    string(&r["logical_port"]),
                    string(&r["type"]),
                    uuids(&r["gateway_chassis"]),
                    o(opt(&r["ha_chassis_group"], uuid)),
                    map(&r["options"]),
                    uuid(&r["datapath"]),
                    int(&r["tunnel_key"]),
                    o(opt(&r["parent_port"], string)),
                    o(opt(&r["tag"], |v| int(v).to_string())),
                    o(opt(&r["virtual_parent"], string)),
                    o(opt(&r["chassis"], uuid)),
                    uuids(&r["additional_chassis"]),
                    o(opt(&r["encap"], uuid)),
                    uuids(&r["additional_encap"]),
                    uuids(&r["mirror_rules"]),
                    strings(&r["nat_addresses"]),
                    o(opt(&r["up"], |v| v.to_string())),
                    map(&r["external_ids"]),
                    o(opt(&r["requested_chassis"], uuid)),
                    uuids(&r["requested_additional_chassis"]),
                )
            },
            |s| {
                rows::<PortBinding>(s, |p| {
                    format!(
                        "{} {} gw={:?} ha={} {:?} dp={} {} parent={} tag={} vp={} ch={} addl={:?} encap={} addle={:?} mirror={:?} nat={:?} up={} {:?} req={} reqa={:?}",
                        p.logical_port,
                        p.port_type,
                        ids(&p.gateway_chassis),
                        o(p.ha_chassis_group.map(|u| u.to_string())),
                        p.options,
                        p.datapath,
                        p.tunnel_key,
                        o(p.parent_port.clone()),
                        o(p.tag.map(|t| t.to_string())),
                        o(p.virtual_parent.clone()),
                        o(p.chassis.map(|u| u.to_string())),
                        ids(&p.additional_chassis),
                        o(p.encap.map(|u| u.to_string())),
                        ids(&p.additional_encap),
                        ids(&p.mirror_rules),
                        sorted(p.nat_addresses.iter().map(nat).collect()),
                        o(p.up.map(|u| u.to_string())),
                        p.external_ids,
                        o(p.requested_chassis.map(|u| u.to_string())),
                        ids(&p.requested_additional_chassis),
                    )
                })
            },
        ),
        (
            GatewayChassis::TABLE,
            GatewayChassis::COLUMNS,
            |r| {
                format!(
                    "{} {} {} {:?} {:?}",
                    string(&r["name"]),
                    o(opt(&r["chassis"], uuid)),
                    int(&r["priority"]),
                    map(&r["external_ids"]),
                    map(&r["options"])
                )
            },
            |s| {
                rows::<GatewayChassis>(s, |g| {
                    format!(
                        "{} {} {} {:?} {:?}",
                        g.name,
                        o(g.chassis.map(|u| u.to_string())),
                        g.priority,
                        g.external_ids,
                        g.options
                    )
                })
            },
        ),
        (
            HaChassis::TABLE,
            HaChassis::COLUMNS,
            |r| {
                format!(
                    "{} {} {:?}",
                    o(opt(&r["chassis"], uuid)),
                    int(&r["priority"]),
                    map(&r["external_ids"])
                )
            },
            |s| {
                rows::<HaChassis>(s, |h| {
                    format!(
                        "{} {} {:?}",
                        o(h.chassis.map(|u| u.to_string())),
                        h.priority,
                        h.external_ids
                    )
                })
            },
        ),
        (
            HaChassisGroup::TABLE,
            HaChassisGroup::COLUMNS,
            |r| {
                format!(
                    "{} {:?} {:?} {:?}",
                    string(&r["name"]),
                    uuids(&r["ha_chassis"]),
                    uuids(&r["ref_chassis"]),
                    map(&r["external_ids"])
                )
            },
            |s| {
                rows::<HaChassisGroup>(s, |g| {
                    format!(
                        "{} {:?} {:?} {:?}",
                        g.name,
                        ids(&g.ha_chassis),
                        ids(&g.ref_chassis),
                        g.external_ids
                    )
                })
            },
        ),
        (
            MulticastGroup::TABLE,
            MulticastGroup::COLUMNS,
            |r| {
                format!(
                    "{} {} {} {:?}",
                    uuid(&r["datapath"]),
                    string(&r["name"]),
                    int(&r["tunnel_key"]),
                    uuids(&r["ports"])
                )
            },
            |s| {
                rows::<MulticastGroup>(s, |m| {
                    format!(
                        "{} {} {} {:?}",
                        m.datapath,
                        m.name,
                        m.tunnel_key,
                        ids(&m.ports)
                    )
                })
            },
        ),
        (
            LogicalFlow::TABLE,
            LogicalFlow::COLUMNS,
            |r| {
                format!(
                    "dp={} g={} {} {} {} m={:?} a={:?} {:?} meter={} {:?}",
                    o(opt(&r["logical_datapath"], uuid)),
                    o(opt(&r["logical_dp_group"], uuid)),
                    string(&r["pipeline"]),
                    int(&r["table_id"]),
                    int(&r["priority"]),
                    string(&r["match"]),
                    string(&r["actions"]),
                    map(&r["tags"]),
                    o(opt(&r["controller_meter"], string)),
                    map(&r["external_ids"]),
                )
            },
            |s| {
                rows::<LogicalFlow>(s, |f| {
                    format!(
                        "dp={} g={} {} {} {} m={:?} a={:?} {:?} meter={} {:?}",
                        o(f.logical_datapath.map(|u| u.to_string())),
                        o(f.logical_dp_group.map(|u| u.to_string())),
                        f.pipeline.as_str(),
                        f.table_id,
                        f.priority,
                        f.match_expr,
                        f.actions,
                        f.tags,
                        o(f.controller_meter.clone()),
                        f.external_ids,
                    )
                })
            },
        ),
        (
            MacBinding::TABLE,
            MacBinding::COLUMNS,
            |r| {
                format!(
                    "{} {} {} {} {}",
                    string(&r["logical_port"]),
                    string(&r["ip"]),
                    string(&r["mac"]),
                    int(&r["timestamp"]),
                    uuid(&r["datapath"])
                )
            },
            |s| {
                rows::<MacBinding>(s, |m| {
                    format!(
                        "{} {} {} {} {}",
                        m.logical_port, m.ip, m.mac, m.timestamp, m.datapath
                    )
                })
            },
        ),
        (
            StaticMacBinding::TABLE,
            StaticMacBinding::COLUMNS,
            |r| {
                format!(
                    "{} {} {} {} {}",
                    string(&r["logical_port"]),
                    string(&r["ip"]),
                    string(&r["mac"]),
                    r["override_dynamic_mac"],
                    uuid(&r["datapath"])
                )
            },
            |s| {
                rows::<StaticMacBinding>(s, |m| {
                    format!(
                        "{} {} {} {} {}",
                        m.logical_port, m.ip, m.mac, m.override_dynamic_mac, m.datapath
                    )
                })
            },
        ),
        (
            Fdb::TABLE,
            Fdb::COLUMNS,
            |r| {
                format!(
                    "{} {} {}",
                    string(&r["mac"]),
                    int(&r["dp_key"]),
                    int(&r["port_key"])
                )
            },
            |s| rows::<Fdb>(s, |f| format!("{} {} {}", f.mac, f.dp_key, f.port_key)),
        ),
        (
            DhcpOptions::TABLE,
            DhcpOptions::COLUMNS,
            |r| {
                format!(
                    "{} {} {}",
                    string(&r["name"]),
                    int(&r["code"]),
                    string(&r["type"])
                )
            },
            |s| {
                rows::<DhcpOptions>(s, |d| {
                    format!("{} {} {}", d.name, d.code, d.option_type.as_str())
                })
            },
        ),
        (
            Dhcpv6Options::TABLE,
            Dhcpv6Options::COLUMNS,
            |r| {
                format!(
                    "{} {} {}",
                    string(&r["name"]),
                    int(&r["code"]),
                    string(&r["type"])
                )
            },
            |s| {
                rows::<Dhcpv6Options>(s, |d| {
                    format!("{} {} {}", d.name, d.code, d.option_type.as_str())
                })
            },
        ),
        (
            AddressSet::TABLE,
            AddressSet::COLUMNS,
            |r| format!("{} {:?}", string(&r["name"]), strings(&r["addresses"])),
            |s| {
                rows::<AddressSet>(s, |a| {
                    format!("{} {:?}", a.name, sorted(a.addresses.clone()))
                })
            },
        ),
        (
            PortGroup::TABLE,
            PortGroup::COLUMNS,
            |r| format!("{} {:?}", string(&r["name"]), strings(&r["ports"])),
            |s| rows::<PortGroup>(s, |p| format!("{} {:?}", p.name, sorted(p.ports.clone()))),
        ),
        (
            LoadBalancer::TABLE,
            LoadBalancer::COLUMNS,
            |r| {
                format!(
                    "{} {:?} {} {:?} {} {:?} {:?}",
                    string(&r["name"]),
                    map(&r["vips"]),
                    o(opt(&r["protocol"], string)),
                    uuids(&r["datapaths"]),
                    o(opt(&r["datapath_group"], uuid)),
                    map(&r["options"]),
                    map(&r["external_ids"])
                )
            },
            |s| {
                rows::<LoadBalancer>(s, |l| {
                    format!(
                        "{} {:?} {} {:?} {} {:?} {:?}",
                        l.name,
                        l.vips,
                        o(l.protocol.clone()),
                        ids(&l.datapaths),
                        o(l.datapath_group.map(|u| u.to_string())),
                        l.options,
                        l.external_ids
                    )
                })
            },
        ),
        (
            ServiceMonitor::TABLE,
            ServiceMonitor::COLUMNS,
            |r| {
                format!(
                    "{} {} {} {} {} {} {} {:?} {:?}",
                    string(&r["ip"]),
                    o(opt(&r["protocol"], string)),
                    int(&r["port"]),
                    string(&r["logical_port"]),
                    string(&r["src_mac"]),
                    string(&r["src_ip"]),
                    o(opt(&r["status"], string)),
                    map(&r["options"]),
                    map(&r["external_ids"])
                )
            },
            |s| {
                rows::<ServiceMonitor>(s, |m| {
                    format!(
                        "{} {} {} {} {} {} {} {:?} {:?}",
                        m.ip,
                        o(m.protocol.clone()),
                        m.port,
                        m.logical_port,
                        m.src_mac,
                        m.src_ip,
                        o(m.status.clone()),
                        m.options,
                        m.external_ids
                    )
                })
            },
        ),
    ]
}

type Views = BTreeMap<&'static str, BTreeMap<String, String>>;

fn sbctl_views(ovn: &OvnCentral) -> Views {
    tables()
        .into_iter()
        .map(|(table, columns, render, _)| {
            let cols: Vec<&str> = std::iter::once("_uuid")
                .chain(columns.iter().copied())
                .collect();
            let rows = ovn
                .sb_rows(table, &cols)
                .iter()
                .map(|r| (uuid(&r["_uuid"]), render(r)))
                .collect();
            (table, rows)
        })
        .collect()
}

fn replica_views(s: &Snapshot) -> Views {
    tables()
        .into_iter()
        .map(|(table, _, _, have)| (table, have(s)))
        .collect()
}

/// Waits until every table of the replica equals ovn-sbctl's and nothing is invalid; on
/// timeout shows the tables that differ.
fn converge(ovn: &OvnCentral, sb: &Southbound, what: &str) -> Arc<Snapshot> {
    let last = Mutex::new(Vec::new());
    let r = std::panic::catch_unwind(AssertUnwindSafe(|| {
        wait::until(what, DEADLINE, || {
            let want = sbctl_views(ovn);
            let snap = sb.snapshot();
            let have = replica_views(&snap);
            if want == have && snap.invalid_rows().count() == 0 {
                return Some(snap);
            }
            let mut diff: Vec<String> = want
                .iter()
                .filter(|(t, rows)| have.get(*t) != Some(rows))
                .map(|(t, rows)| format!("{t}:\n sbctl   {rows:#?}\n replica {:#?}", have.get(t)))
                .collect();
            diff.extend(
                snap.invalid_rows()
                    .map(|(t, u, why)| format!("invalid {t} {u}: {why}")),
            );
            *last.lock().unwrap() = diff;
            None
        })
    }));
    match r {
        Ok(s) => s,
        Err(e) => {
            eprintln!(
                "{what}: still different:\n{}",
                last.lock().unwrap().join("\n")
            );
            eprintln!("counters: {:?}\n{}", sb.counters(), ovn.logs());
            std::panic::resume_unwind(e)
        }
    }
}

#[test]
fn every_table_equals_ovn_sbctl() {
    if !privilege::require_tools("every_table_equals_ovn_sbctl", TOOLS) {
        return;
    }
    let ovn = OvnCentral::start();
    let rt = runtime();
    let _guard = rt.enter();
    let sb = Southbound::start(ovnest::sb::config(ovn.sb_remote().parse().unwrap()));
    topology(&ovn);
    let snap = converge(&ovn, &sb, "every table equal to ovn-sbctl");

    // The topology fills every table but Gateway_Chassis (northd 23.03 uses HA chassis
    // groups for gateway ports) and Chassis_Private (no chassis of ours runs here).
    let views = replica_views(&snap);
    for (table, rows) in &views {
        if ![GatewayChassis::TABLE, ChassisPrivate::TABLE].contains(table) {
            assert!(!rows.is_empty(), "{table} is empty");
        }
    }
    assert_eq!(sb.counters().bad_rows, 0);

    // What the pipeline will read, through the snapshot.
    let dmz = snap
        .datapaths()
        .find(|d| d.name() == Some("dmz"))
        .expect("dmz")
        .uuid;
    let acl: Vec<_> = snap
        .flows_of(dmz)
        .filter(|f| f.match_expr.contains("$as_admin"))
        .collect();
    assert!(!acl.is_empty(), "the pg_web ACL's flows on dmz");
    assert!(
        acl.iter()
            .all(|f| f.stage_name().is_some_and(|s| s.starts_with("ls_out_acl")))
    );
    let shared = snap
        .table::<LogicalFlow>()
        .iter()
        .find(|f| f.logical_dp_group.is_some())
        .expect("a flow on a datapath group");
    assert!(snap.flow_datapaths(shared).count() >= 2);
    let flood = snap
        .table::<MulticastGroup>()
        .get(&(dmz, "_MC_flood".to_owned()))
        .expect("dmz's _MC_flood");
    let members: Vec<&str> = flood
        .ports
        .iter()
        .filter_map(|u| snap.table::<PortBinding>().by_uuid(u))
        .map(|pb| pb.logical_port.as_str())
        .collect();
    assert!(
        members.contains(&"dmz-c51") && members.contains(&"dmz-lr0"),
        "{members:?}"
    );
    let public = snap.port_binding("public-lr0").unwrap();
    assert!(
        public
            .nat_addresses
            .iter()
            .any(|n| n.chassis_resident.as_deref() == Some("cr-lr0-public"))
    );
    let cr = snap.port_binding("cr-lr0-public").unwrap();
    let group = snap
        .table::<HaChassisGroup>()
        .by_uuid(&cr.ha_chassis_group.unwrap())
        .unwrap();
    let gw1 = snap.chassis("gw1").unwrap();
    assert!(group.ha_chassis.iter().any(|h| {
        snap.table::<HaChassis>().by_uuid(h).and_then(|h| h.chassis) == Some(gw1.uuid)
    }));
    assert_eq!(
        snap.table::<DhcpOptions>()
            .get("router")
            .map(|o| (o.code, o.option_type)),
        Some((3, DhcpOptionType::Ipv4))
    );
    assert_eq!(
        snap.table::<PortGroup>()
            .get(&format!(
                "{}_pg_web",
                snap.datapath(&dmz).unwrap().tunnel_key
            ))
            .map(|p| p.ports.len()),
        Some(2)
    );
    assert_eq!(
        snap.table::<AddressSet>()
            .get("as_admin")
            .map(|a| a.addresses.len()),
        Some(2)
    );
    assert_eq!(snap.table::<ServiceMonitor>().len(), 2);
}

#[test]
fn undecodable_rows_are_listed_counted_and_heal() {
    if !privilege::require_tools("undecodable_rows_are_listed_counted_and_heal", TOOLS) {
        return;
    }
    let ovn = OvnCentral::start();
    let rt = runtime();
    let _guard = rt.enter();
    let sb = Southbound::start(ovnest::sb::config(ovn.sb_remote().parse().unwrap()));
    topology(&ovn);
    converge(&ovn, &sb, "the topology");
    // Values the schema lets through (plain strings) and ovn-sb(5) does not.
    let fdb = ovn.sbctl(&[
        "create",
        "FDB",
        "mac=\"not-a-mac\"",
        "dp_key=1",
        "port_key=2",
    ]);
    let lr0 = ovn.sbctl(&[
        "--bare",
        "--columns=_uuid",
        "find",
        "Datapath_Binding",
        "external_ids:name=lr0",
    ]);
    let mb = ovn.sbctl(&[
        "create",
        "MAC_Binding",
        "logical_port=lr0-dmz",
        "ip=\"172.16.255.300\"",
        "mac=\"02:ac:10:ff:01:31\"",
        &format!("datapath={}", lr0.trim()),
    ]);
    let (fdb, mb) = (fdb.trim().to_owned(), mb.trim().to_owned());
    let listed = |snap: &Snapshot| {
        let mut v: Vec<(&'static str, String, String)> = snap
            .invalid_rows()
            .map(|(t, u, why)| (t, u.to_string(), why.to_owned()))
            .collect();
        v.sort();
        v
    };
    let snap = wait::until("both bad rows listed", DEADLINE, || {
        let s = sb.snapshot();
        (listed(&s).len() == 2).then_some(s)
    });
    let invalid = listed(&snap);
    assert_eq!(
        invalid
            .iter()
            .map(|(t, u, _)| (*t, u.as_str()))
            .collect::<Vec<_>>(),
        vec![(Fdb::TABLE, fdb.as_str()), (MacBinding::TABLE, mb.as_str())],
        "{invalid:?}"
    );
    assert!(invalid[0].2.contains("MAC address"), "{invalid:?}");
    assert!(invalid[1].2.contains("IP address"), "{invalid:?}");
    assert_eq!(sb.counters().bad_rows, 2);
    // The rest of those tables is whole.
    assert_eq!(
        (snap.table::<Fdb>().len(), snap.table::<MacBinding>().len()),
        (1, 1)
    );

    // Fixed in the SB: the rows come in, the listing empties, the count stays.
    ovn.sbctl(&["set", "FDB", &fdb, "mac=\"02:00:00:00:00:98\""]);
    ovn.sbctl(&["set", "MAC_Binding", &mb, "ip=\"172.16.255.131\""]);
    let snap = wait::until("the fixed rows in", DEADLINE, || {
        let s = sb.snapshot();
        (s.invalid_rows().count() == 0 && s.table::<MacBinding>().len() == 2).then_some(s)
    });
    assert!(snap.table::<Fdb>().by_uuid(&fdb.parse().unwrap()).is_some());
    assert_eq!(sb.counters().bad_rows, 2);
    converge(&ovn, &sb, "every table after the fix");
}
