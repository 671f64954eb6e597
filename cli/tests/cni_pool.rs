//! The VM's port pool against real OVN and `ovnest run`: pre-created ports are complete
//! and up before any container takes one, an empty pool falls back to new ports, an ADD
//! that drains it starts a background refill, DEL returns ports up to `max` (and a
//! returned port serves the next container), GC trims the pool.

use std::{path::PathBuf, time::Duration};

use ovnest_lab::containers::{self, Containers};
use ovnest_tests::{
    cni::{Call, CniLab, Container, Port, exec},
    privilege::{require_root, require_tools},
    wait,
};
use serde_json::{Value, json};

const DEADLINE: Duration = Duration::from_secs(30);
const VM1: &str = "172.16.255.130";

fn ovnest() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_ovnest"))
}

fn ours(ports: &[Port]) -> (Vec<&Port>, Vec<&Port>) {
    (
        ports.iter().filter(|p| p.is_free()).collect(),
        ports.iter().filter(|p| p.container().is_some()).collect(),
    )
}

#[test]
fn pool_exhaustion_refill_recycle_and_trim() {
    let test = "pool_exhaustion_refill_recycle_and_trim";
    if !require_root(test)
        || !require_tools(test, &["ovsdb-server", "ovn-northd", "nsenter", "ping"])
    {
        return;
    }
    let l = CniLab::up("pool", Containers::Cni, &ovnest());
    let vm5 = l.lab.ns("vm5");
    let pool = |min: u32, max: u32| json!({ "pool": { "min": min, "max": max, "batch": 2 } });
    let with_pool = l.conf("dmz-vm5", "brvm5-brint", pool(2, 3));
    // min 0: ADDs never start a refill, so the pool drains for good.
    let no_refill = l.conf("dmz-vm5", "brvm5-brint", pool(0, 3));
    let list =
        containers::write_conflist(&l.lab, "dmz", "dmz-vm5", "brvm5-brint", pool(2, 3)).unwrap();
    let cli = |args: &[&str]| {
        let out = std::process::Command::new("nsenter")
            .arg(format!("--net=/run/netns/{vm5}"))
            .arg(ovnest())
            .arg("cni")
            .args(args)
            .arg("--conf")
            .arg(&list)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let add = |id: &str, c: &Container, conf: &Value| {
        let r = exec(
            &l.plugin(),
            Some(&vm5),
            &Call::new("ADD", id, Some(c.name())),
            conf,
        );
        r.expect_ok(id);
        r
    };
    let port_of = |id: &str| {
        l.children("dmz-vm5")
            .into_iter()
            .find(|p| p.container() == Some(id))
            .unwrap_or_else(|| panic!("{id} has no port"))
    };
    let free_and_up = |n: usize| {
        wait::until(
            &format!("{n} free pool ports, complete and up"),
            DEADLINE,
            || {
                let ports = l.children("dmz-vm5");
                let (free, _) = ours(&ports);
                let ready = free
                    .iter()
                    .filter(|p| p.up && p.tag.is_some() && !p.port_security.is_empty())
                    .count();
                (free.len() == n && ready == n).then(|| {
                    let mut names: Vec<String> = free.iter().map(|p| p.name.clone()).collect();
                    names.sort();
                    names
                })
            },
        )
    };

    // Fill: min ports created in one go, completed (static addresses, tag) and bound.
    let filled = cli(&["pool", "fill"]);
    assert_eq!(filled["created"].as_array().unwrap().len(), 2, "{filled}");
    let pooled = free_and_up(2);

    // Two containers take the two pool ports; the third finds the pool empty and gets a
    // new port: exhaustion is not an error.
    let (x, y, z) = (
        Container::new("x"),
        Container::new("y"),
        Container::new("z"),
    );
    add("x", &x, &no_refill);
    add("y", &y, &no_refill);
    let taken: Vec<String> = ["x", "y"].iter().map(|id| port_of(id).name).collect();
    let mut sorted = taken.clone();
    sorted.sort();
    assert_eq!(sorted, pooled, "x and y got the pool's ports");
    assert!(ours(&l.children("dmz-vm5")).0.is_empty(), "pool drained");
    add("z", &z, &no_refill);
    assert!(!pooled.contains(&port_of("z").name), "z got a new port");
    assert!(
        ours(&l.children("dmz-vm5")).0.is_empty(),
        "min 0: no refill"
    );
    l.assert_pings(x.name(), VM1, DEADLINE);

    // With min 2, the ADD that finds the pool below min refills it in the background.
    let w = Container::new("w");
    add("w", &w, &with_pool);
    let refilled = free_and_up(2);
    assert!(refilled.iter().all(|n| !taken.contains(n)));

    // DEL returns ports up to max (3): the pool has 2, so x's goes back, the rest are
    // deleted.
    let x_port = port_of("x");
    for (id, c) in [("x", &x), ("y", &y), ("z", &z), ("w", &w)] {
        exec(
            &l.plugin(),
            Some(&vm5),
            &Call::new("DEL", id, Some(c.name())),
            &with_pool,
        )
        .expect_ok(id);
    }
    let ports = l.children("dmz-vm5");
    let (free, used) = ours(&ports);
    assert!(used.is_empty());
    assert_eq!(free.len(), 3, "{ports:?}");
    assert_eq!(ports.len(), 3, "nothing else left");
    let back = free
        .iter()
        .find(|p| p.name == x_port.name)
        .expect("x's port is back in the pool");
    assert_eq!(
        (back.tag, &back.addresses),
        (x_port.tag, &x_port.addresses),
        "returned as it was"
    );

    // A returned port serves the next container: same address, and it works. (Three
    // containers take the three free ports; one of them lands on x's.)
    let vs: Vec<Container> = (0..3).map(|i| Container::new(&format!("v{i}"))).collect();
    let mut on_x = None;
    for (i, c) in vs.iter().enumerate() {
        let id = format!("v{i}");
        let r = add(&id, c, &no_refill);
        if port_of(&id).name == x_port.name {
            on_x = Some((c, r));
        }
    }
    let (c, r) = on_x.expect("a container got x's port");
    let mac = r.json.as_ref().unwrap()["interfaces"][1]["mac"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(format!("{mac} {}", r.ip()), x_port.addresses[0]);
    l.assert_pings(c.name(), VM1, DEADLINE);
    for (i, c) in vs.iter().enumerate() {
        exec(
            &l.plugin(),
            Some(&vm5),
            &Call::new("DEL", &format!("v{i}"), Some(c.name())),
            &no_refill,
        )
        .expect_ok("DEL");
    }

    // GC trims the pool to a lower max.
    let smaller =
        containers::write_conflist(&l.lab, "dmz", "dmz-vm5", "brvm5-brint", pool(0, 1)).unwrap();
    let out = std::process::Command::new("nsenter")
        .arg(format!("--net=/run/netns/{vm5}"))
        .arg(ovnest())
        .args(["cni", "gc", "--grace-ms", "0", "--conf"])
        .arg(&smaller)
        .output()
        .unwrap();
    assert!(out.status.success());
    let ports = l.children("dmz-vm5");
    assert_eq!(ours(&ports).0.len(), 1, "{ports:?}");
}
