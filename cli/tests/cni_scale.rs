//! `ovnest-cni` at the edges of a VM: many ADDs at once (the lock keeps tags and
//! addresses distinct), and the VLAN id space (4094 containers per VM, then a clear
//! error). Real OVN, `ovnest run` on the hypervisor, vm5 with the TC tagger.

use std::{collections::BTreeSet, path::PathBuf, time::Duration};

use ovnest_lab::containers::Containers;
use ovnest_tests::{
    cni::{Call, CniLab, Container, exec},
    privilege::{require_root, require_tools},
};
use serde_json::json;

const DEADLINE: Duration = Duration::from_secs(30);
const TOOLS: &[&str] = &["ovsdb-server", "ovn-northd", "ovn-nbctl", "nsenter", "ping"];

fn ovnest() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_ovnest"))
}

/// A wide network (room for every tag's address) for vm5's containers.
fn wide_network(l: &CniLab, name: &str, subnet: &str) -> serde_json::Value {
    let out = std::process::Command::new(ovnest())
        .args([
            "cni",
            "network",
            "create",
            name,
            "--subnet",
            subnet,
            "--vm-port",
            "dmz-vm5",
            "--no-conflist",
        ])
        .env("OVN_NB_DB", &l.lab.nb)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut conf = l.vm5_conf();
    conf["name"] = json!(name);
    conf["switch"] = json!(name);
    conf
}

#[test]
fn fifty_concurrent_adds_in_one_vm() {
    if !require_root("fifty_concurrent_adds_in_one_vm")
        || !require_tools("fifty_concurrent_adds_in_one_vm", TOOLS)
    {
        return;
    }
    let l = CniLab::up("c50", Containers::Cni, &ovnest());
    let conf = wide_network(&l, "wide", "10.50.0.0/24");
    let vm5 = l.lab.ns("vm5");
    let containers: Vec<Container> = (0..50).map(|i| Container::new(&format!("k{i}"))).collect();
    let replies: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = containers
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let (plugin, vm5, conf) = (l.plugin(), vm5.clone(), conf.clone());
                s.spawn(move || {
                    let id = format!("k{i}");
                    exec(
                        &plugin,
                        Some(&vm5),
                        &Call::new("ADD", &id, Some(c.name())),
                        &conf,
                    )
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (i, r) in replies.iter().enumerate() {
        r.expect_ok(&format!("ADD k{i}"));
    }
    let ips: BTreeSet<String> = replies.iter().map(|r| r.ip()).collect();
    assert_eq!(ips.len(), 50, "50 distinct addresses");
    let ports = l.children("dmz-vm5");
    let tags: BTreeSet<u16> = ports.iter().filter_map(|p| p.tag).collect();
    assert_eq!(
        (ports.len(), tags.len()),
        (50, 50),
        "50 ports, 50 distinct tags"
    );
    assert!(ports.iter().all(|p| p.up));
    // Each container reaches another one through the hypervisor (tagged both ways).
    let first = replies[0].ip();
    l.assert_pings(containers[49].name(), &first, DEADLINE);
    l.assert_pings(containers[25].name(), &replies[49].ip(), DEADLINE);

    std::thread::scope(|s| {
        for (i, c) in containers.iter().enumerate() {
            let (plugin, vm5, conf) = (l.plugin(), vm5.clone(), conf.clone());
            s.spawn(move || {
                let id = format!("k{i}");
                exec(
                    &plugin,
                    Some(&vm5),
                    &Call::new("DEL", &id, Some(c.name())),
                    &conf,
                )
                .expect_ok(&id);
            });
        }
    });
    assert!(l.children("dmz-vm5").is_empty(), "every port released");
    let left = l.lab.exec("vm5", "ip", &["-o", "link"]).unwrap();
    assert!(!left.contains("ovc"), "no host veth left: {left}");
}

#[test]
fn the_4094th_container_is_the_last_a_vm_can_have() {
    let test = "the_4094th_container_is_the_last_a_vm_can_have";
    if !require_root(test) || !require_tools(test, TOOLS) {
        return;
    }
    let l = CniLab::up("tags", Containers::Cni, &ovnest());
    let conf = wide_network(&l, "wide", "10.64.0.0/19");
    // 4093 containers' ports, made in bulk as 4093 ADDs would have made them: used by a
    // container, tag 1..=4093, an address, under vm5.
    let started = std::time::Instant::now();
    let switch = l
        .nbctl(&["get", "Logical_Switch", "wide", "_uuid"])
        .trim()
        .to_owned();
    for chunk in (1..=4093u16).collect::<Vec<_>>().chunks(256) {
        let mut ops = vec![json!("OVN_Northbound")];
        let mut names = Vec::new();
        for &tag in chunk {
            let name = format!("dmz-vm5-c{tag}");
            let ip = format!("10.64.{}.{}", 1 + tag / 250, 1 + tag % 250);
            let mac = format!("0a:64:00:00:{:02x}:{:02x}", tag >> 8, tag & 0xff);
            ops.push(json!({
                "op": "insert", "table": "Logical_Switch_Port", "uuid-name": format!("p{tag}"),
                "row": {
                    "name": name, "parent_name": "dmz-vm5", "tag": tag,
                    "addresses": format!("{mac} {ip}"),
                    "external_ids": ["map", [
                        ["ovnest-cni:state", "used"], ["ovnest-cni:container", format!("bulk{tag}")],
                        ["ovnest-cni:ifname", "eth0"], ["ovnest-cni:switch", "wide"],
                        ["ovnest-cni:addresses", "given"],
                    ]],
                },
            }));
            names.push(json!(["named-uuid", format!("p{tag}")]));
        }
        ops.push(json!({
            "op": "mutate", "table": "Logical_Switch", "where": [["_uuid", "==", ["uuid", switch]]],
            "mutations": [["ports", "insert", ["set", names]]],
        }));
        let out = std::process::Command::new("ovsdb-client")
            .args([
                "transact",
                &l.lab.nb,
                &serde_json::Value::Array(ops).to_string(),
            ])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && !text.contains("\"error\""),
            "{text}"
        );
    }
    eprintln!("4093 ports inserted in {:?}", started.elapsed());
    assert_eq!(l.children("dmz-vm5").len(), 4093);
    let vm5 = l.lab.ns("vm5");
    let mut conf = conf;
    conf["upTimeoutMs"] = json!(120_000);
    let last = Container::new("last");
    let r = exec(
        &l.plugin(),
        Some(&vm5),
        &Call::new("ADD", "last", Some(last.name())),
        &conf,
    );
    r.expect_ok("the 4094th ADD");
    eprintln!(
        "the 4094th ADD took {:?} ({:?} since the bulk insert began)",
        r.elapsed,
        started.elapsed()
    );
    let p = l
        .children("dmz-vm5")
        .into_iter()
        .find(|p| p.container() == Some("last"))
        .unwrap();
    assert_eq!(p.tag, Some(4094), "the only tag left");
    assert!(p.up);

    let one_more = Container::new("more");
    let r = exec(
        &l.plugin(),
        Some(&vm5),
        &Call::new("ADD", "more", Some(one_more.name())),
        &conf,
    );
    assert_eq!((r.success, r.code()), (false, Some(100)), "{r:?}");
    let msg = r.json.as_ref().unwrap()["msg"].as_str().unwrap().to_owned();
    assert!(msg.contains("4094") && msg.contains("dmz-vm5"), "{msg}");
    assert!(one_more.interface("eth0").is_none());
    assert_eq!(
        l.children("dmz-vm5").len(),
        4094,
        "the failed ADD left nothing"
    );

    // DEL gives the tag back: the next container gets it.
    exec(
        &l.plugin(),
        Some(&vm5),
        &Call::new("DEL", "last", Some(last.name())),
        &conf,
    )
    .expect_ok("DEL");
    let r = exec(
        &l.plugin(),
        Some(&vm5),
        &Call::new("ADD", "more", Some(one_more.name())),
        &conf,
    );
    r.expect_ok("ADD after a DEL");
    let p = l
        .children("dmz-vm5")
        .into_iter()
        .find(|p| p.container() == Some("more"))
        .unwrap();
    assert_eq!(p.tag, Some(4094));
    assert!(p.up);
}
