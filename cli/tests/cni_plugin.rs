//! `ovnest-cni` driven as a container runtime drives it (exec, CNI environment, config on
//! stdin, JSON on stdout) against real OVN (NB, SB, northd) with `ovnest run` as the
//! hypervisor's agent and vm5 a network namespace without OVS (the TC tagger). Every
//! wait polls a condition with a deadline.

use std::{path::PathBuf, time::Duration};

use ovnest_lab::containers::Containers;
use ovnest_tests::{
    cni::{Call, CniLab, Container, exec, exec_raw},
    privilege::{require_root, require_tools},
    wait,
};
use serde_json::{Value, json};

const DEADLINE: Duration = Duration::from_secs(30);
const TOOLS: &[&str] = &[
    "ovsdb-server",
    "ovn-northd",
    "ovn-nbctl",
    "ping",
    "ethtool",
    "nsenter",
];
const VM1: &str = "172.16.255.130";
const VM5: &str = "172.16.255.132";
const GATEWAY: &str = "172.16.255.129";

fn ovnest() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_ovnest"))
}

fn skip(test: &str) -> bool {
    !require_root(test) || !require_tools(test, TOOLS)
}

/// The plugin outside any lab: `ovnest-cni` (a link to the binary) in a temp dir.
fn lone_plugin() -> (PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!("ovnest-cni-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let link = dir.join("ovnest-cni");
    std::os::unix::fs::symlink(ovnest(), &link).unwrap();
    (dir, link)
}

#[test]
fn version_errors_and_an_unreachable_northbound() {
    let (dir, plugin) = lone_plugin();
    // VERSION: offline, with or without a configuration.
    let r = exec(
        &plugin,
        None,
        &Call::new("VERSION", "", None),
        &json!({"cniVersion": "0.4.0"}),
    );
    r.expect_ok("VERSION");
    let v = r.json.unwrap();
    assert_eq!(v["cniVersion"], "0.4.0");
    assert_eq!(
        v["supportedVersions"],
        json!(["0.3.0", "0.3.1", "0.4.0", "1.0.0"])
    );
    assert!(
        r.elapsed < Duration::from_secs(1),
        "VERSION took {:?}",
        r.elapsed
    );

    let conf = json!({
        "cniVersion": "1.0.0", "name": "dmz", "type": "ovnest-cni",
        "nb": format!("unix:{}", dir.join("no-such-nb.sock").display()),
        "vmPort": "dmz-vm5", "uplink": "eth0",
        "stateDir": dir.join("state"),
    });
    let ns = Container::new("lone");
    let add = Call::new("ADD", "c1", Some(ns.name()));
    // Missing environment: 4.
    let r = exec(
        &plugin,
        None,
        &Call {
            container: "",
            ..add.clone()
        },
        &conf,
    );
    assert_eq!((r.success, r.code()), (false, Some(4)), "{r:?}");
    // Not JSON: 6. Valid JSON that cannot work: 7 (each with the spec's error object).
    let r = exec_raw(&plugin, None, &add, b"{\"cniVersion\": \"1.0.0\", ");
    assert_eq!((r.success, r.code()), (false, Some(6)), "{r:?}");
    let mut wrong_type = conf.clone();
    wrong_type["vmPort"] = json!(5);
    assert_eq!(exec(&plugin, None, &add, &wrong_type).code(), Some(7));
    for bad in [
        json!({"cniVersion": "1.0.0", "name": "dmz", "type": "ovnest-cni"}),
        {
            let mut c = conf.clone();
            c["pool"] = json!({"min": 5, "max": 2});
            c
        },
        {
            let mut c = conf.clone();
            c["tagger"] = json!("ovs");
            c
        },
    ] {
        let r = exec(&plugin, None, &add, &bad);
        assert_eq!((r.success, r.code()), (false, Some(7)), "{bad}: {r:?}");
        let j = r.json.unwrap();
        assert_eq!(j["cniVersion"], "1.0.0");
        assert!(!j["msg"].as_str().unwrap().is_empty());
    }
    // The NB is down: 11, at once (every remote refused), and nothing left behind.
    let r = exec(&plugin, None, &add, &conf);
    assert_eq!((r.success, r.code()), (false, Some(11)), "{r:?}");
    assert!(r.elapsed < Duration::from_secs(3), "took {:?}", r.elapsed);
    assert!(
        ns.interface("eth0").is_none(),
        "no interface without a port"
    );
    // A DEL is retried by runtimes: without the NB it says so too.
    let r = exec(&plugin, None, &Call::new("DEL", "c1", None), &conf);
    assert_eq!(r.code(), Some(11));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn add_check_del_like_a_runtime() {
    if skip("add_check_del_like_a_runtime") {
        return;
    }
    let l = CniLab::up("acd", Containers::Cni, &ovnest());
    let plugin = l.plugin();
    let vm5 = l.lab.ns("vm5");
    let conf = l.vm5_conf();
    let run = |call: &Call<'_>, conf: &Value| exec(&plugin, Some(&vm5), call, conf);

    // ADD: a port under dmz-vm5 with a tag, OVN's addresses, up; the interface has them.
    let c1 = Container::new("c1");
    let r = run(&Call::new("ADD", "c1", Some(c1.name())), &conf);
    r.expect_ok("ADD c1");
    let result = r.json.clone().unwrap();
    assert_eq!(result["cniVersion"], "1.0.0");
    let iface = &result["interfaces"][1];
    assert_eq!(iface["name"], "eth0");
    assert_eq!(iface["sandbox"], format!("/run/netns/{}", c1.name()));
    assert_eq!(
        result["ips"][0]["gateway"], GATEWAY,
        "gateway from the DHCP options"
    );
    assert_eq!(result["ips"][0]["interface"], 1);
    assert_eq!(result["routes"][0]["dst"], "0.0.0.0/0");
    let ports = l.children("dmz-vm5");
    assert_eq!(ports.len(), 1, "{ports:?}");
    let p = &ports[0];
    assert_eq!(p.container(), Some("c1"));
    assert!(p.up, "ADD returns once the port is up");
    let tag = p.tag.expect("a tag");
    assert!((1..=4094).contains(&tag));
    let mac_ip = format!("{} {}", iface["mac"].as_str().unwrap(), r.ip());
    assert_eq!(
        p.addresses,
        vec![mac_ip.clone()],
        "OVN's allocation, pinned"
    );
    assert_eq!(p.port_security, vec![mac_ip]);
    let (addr, mac) = c1.interface("eth0").expect("eth0 in the container");
    assert_eq!(addr, result["ips"][0]["address"].as_str().unwrap());
    assert_eq!(mac, iface["mac"].as_str().unwrap());
    // Reachable at once: the VM on the switch, and the parent VM itself (hairpin).
    l.assert_pings(c1.name(), GATEWAY, DEADLINE);
    l.assert_pings(c1.name(), VM1, DEADLINE);
    l.assert_pings(c1.name(), VM5, DEADLINE);
    l.assert_pings(&l.lab.ns("vm1"), &r.ip(), DEADLINE);

    // CHECK with the previous result.
    let mut check_conf = conf.clone();
    check_conf["prevResult"] = result.clone();
    run(&Call::new("CHECK", "c1", Some(c1.name())), &check_conf).expect_ok("CHECK");
    // A CHECK whose prevResult disagrees with OVN fails.
    let mut wrong = check_conf.clone();
    wrong["prevResult"]["ips"][0]["address"] = json!("172.16.255.190/26");
    assert_eq!(
        run(&Call::new("CHECK", "c1", Some(c1.name())), &wrong).code(),
        Some(106)
    );

    // ADD of an interface the container already has fails, and leaves no port.
    let c2 = Container::new("c2");
    c2.ns.veth_pair("eth0", "eth0peer");
    let r = run(&Call::new("ADD", "c2", Some(c2.name())), &conf);
    assert_eq!((r.success, r.code()), (false, Some(103)), "{r:?}");
    assert_eq!(l.children("dmz-vm5").len(), 1, "no port for the failed ADD");

    // DEL: the port leaves the NB (no pool), the veth goes; a second DEL is fine.
    let del = Call::new("DEL", "c1", Some(c1.name()));
    run(&del, &conf).expect_ok("DEL");
    assert!(l.children("dmz-vm5").is_empty());
    assert!(
        c1.interface("eth0").is_none(),
        "the container's end went with the veth"
    );
    run(&del, &conf).expect_ok("second DEL");
    assert_eq!(
        run(&Call::new("CHECK", "c1", Some(c1.name())), &check_conf).code(),
        Some(106)
    );

    // DEL without the namespace (the container is gone): still releases everything.
    let c3 = Container::new("c3");
    run(&Call::new("ADD", "c3", Some(c3.name())), &conf).expect_ok("ADD c3");
    run(&Call::new("DEL", "c3", None), &conf).expect_ok("DEL without CNI_NETNS");
    assert!(l.children("dmz-vm5").is_empty());
    assert!(c3.interface("eth0").is_none());

    // Addresses a runtime asks for (CNI_ARGS IP=): kept, and the port is not reused.
    let c4 = Container::new("c4");
    let mut with_ip = Call::new("ADD", "c4", Some(c4.name()));
    with_ip.args = Some("IgnoreUnknown=1;IP=172.16.255.170");
    let r = run(&with_ip, &conf);
    r.expect_ok("ADD with IP=");
    assert_eq!(r.ip(), "172.16.255.170");
    l.assert_pings(c4.name(), VM1, DEADLINE);
    run(&Call::new("DEL", "c4", Some(c4.name())), &conf).expect_ok("DEL c4");
    assert!(l.children("dmz-vm5").is_empty());
}

#[test]
fn the_tagger_survives_lost_pins_and_gc_finds_leaked_ports() {
    if skip("the_tagger_survives_lost_pins_and_gc_finds_leaked_ports") {
        return;
    }
    let l = CniLab::up("rgc", Containers::Cni, &ovnest());
    let plugin = l.plugin();
    let vm5 = l.lab.ns("vm5");
    let conf = l.vm5_conf();
    let run = |call: &Call<'_>, conf: &Value| exec(&plugin, Some(&vm5), call, conf);

    let a = Container::new("a");
    run(&Call::new("ADD", "a", Some(a.name())), &conf).expect_ok("ADD a");
    l.assert_pings(a.name(), VM1, DEADLINE);

    // The VM's bpffs is emptied (a reboot loses pins; here the uplink keeps its old
    // program): the next ADD loads the tagger again and restores a's entry from the NB.
    let pins = ovnest_lab::containers::cni_dir(&l.lab).join("bpf");
    for entry in std::fs::read_dir(&pins).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            std::fs::remove_dir_all(path).unwrap();
        }
    }
    let b = Container::new("b");
    run(&Call::new("ADD", "b", Some(b.name())), &conf).expect_ok("ADD b after losing the pins");
    l.assert_pings(b.name(), VM1, DEADLINE);
    l.assert_pings(a.name(), VM1, DEADLINE);

    // A container vanishes without DEL (its namespace deleted: the kernel then deletes
    // the veth pair). GC gives its port back; the others stay.
    drop(b);
    let host = ovnest_cni::vm::host_ifname("b", "eth0");
    wait::until("b's veth gone with its namespace", DEADLINE, || {
        std::process::Command::new("ip")
            .args(["-n", &vm5, "link", "show", &host])
            .output()
            .is_ok_and(|o| !o.status.success())
            .then_some(())
    });
    let out = std::process::Command::new("nsenter")
        .arg(format!("--net=/run/netns/{vm5}"))
        .arg(ovnest())
        .args(["cni", "gc", "--grace-ms", "0", "--conf"])
        .arg(ovnest_lab::containers::cni_dir(&l.lab).join("net.d/dmz.conflist"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let gc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(gc["released"].as_array().unwrap().len(), 1, "{gc}");
    let ports = l.children("dmz-vm5");
    assert_eq!(ports.len(), 1);
    assert_eq!(ports[0].container(), Some("a"));

    // CNI GC with the runtime's list: within the grace period nothing is touched; after
    // it, an attachment not on the list is released even though its veth is there.
    let mut gc_conf = conf.clone();
    gc_conf["cni.dev/valid-attachments"] = json!([{"containerID": "z", "ifname": "eth0"}]);
    run(&Call::new("GC", "", None), &gc_conf).expect_ok("GC");
    assert_eq!(
        l.children("dmz-vm5").len(),
        1,
        "young attachments are left alone"
    );
    gc_conf["gcGraceMs"] = json!(0);
    run(&Call::new("GC", "", None), &gc_conf).expect_ok("GC");
    assert!(
        l.children("dmz-vm5").is_empty(),
        "a is not a valid attachment"
    );
    assert!(a.interface("eth0").is_none(), "its veth went with its port");
    assert!(!l.ping(a.name(), VM1));
}

#[test]
fn networks_are_created_listed_and_deleted() {
    if skip("networks_are_created_listed_and_deleted") {
        return;
    }
    let l = CniLab::up("net", Containers::Cni, &ovnest());
    let conf_dir = ovnest_lab::containers::cni_dir(&l.lab).join("net.d");
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(ovnest())
            .arg("cni")
            .args(args)
            .env("OVN_NB_DB", &l.lab.nb)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let conf_dir_s = conf_dir.display().to_string();
    let (ok, out, err) = cli(&[
        "network",
        "create",
        "blue",
        "--subnet",
        "10.9.0.0/24",
        "--router",
        "lr0",
        "--dhcp",
        "--mtu",
        "1400",
        "--dns",
        "10.9.0.53",
        "--vm-port",
        "dmz-vm5",
        "--uplink",
        "brvm5-brint",
        "--conf-dir",
        &conf_dir_s,
    ]);
    assert!(ok, "{out}{err}");
    // The rows OVN needs: the switch with its subnet, the router port, DHCP options.
    assert_eq!(
        l.nbctl(&["get", "Logical_Switch", "blue", "other_config:subnet"])
            .trim(),
        "\"10.9.0.0/24\""
    );
    assert_eq!(
        l.nbctl(&["get", "Logical_Router_Port", "lr0-blue", "networks"])
            .trim(),
        "[\"10.9.0.1/24\"]"
    );
    assert!(
        l.nbctl(&[
            "--bare",
            "--columns=options",
            "find",
            "DHCP_Options",
            "cidr=\"10.9.0.0/24\""
        ])
        .contains("mtu=1400")
    );
    // Creating it twice is refused.
    assert!(
        !cli(&[
            "network",
            "create",
            "blue",
            "--subnet",
            "10.9.0.0/24",
            "--vm-port",
            "dmz-vm5",
            "--no-conflist"
        ])
        .0
    );

    // The conflist it wrote attaches a container (bpffs and state of the lab's VM).
    let list: Value =
        serde_json::from_str(&std::fs::read_to_string(conf_dir.join("blue.conflist")).unwrap())
            .unwrap();
    let mut conf = ovnest_lab::containers::single_conf(&list);
    let dmz = l.vm5_conf();
    conf["bpffs"] = dmz["bpffs"].clone();
    conf["stateDir"] = dmz["stateDir"].clone();
    let c = Container::new("blue");
    let r = exec(
        &l.plugin(),
        Some(&l.lab.ns("vm5")),
        &Call::new("ADD", "b1", Some(c.name())),
        &conf,
    );
    r.expect_ok("ADD on blue");
    let j = r.json.clone().unwrap();
    assert!(r.ip().starts_with("10.9.0."), "{j}");
    assert_eq!(j["ips"][0]["gateway"], "10.9.0.1");
    assert_eq!(j["interfaces"][1]["mtu"], 1400);
    assert_eq!(j["dns"]["nameservers"], json!(["10.9.0.53"]));
    // Routed: the new router port answers, and lr0 carries the container to vm1 on dmz
    // (whose only route so far is its own subnet).
    l.assert_pings(c.name(), "10.9.0.1", DEADLINE);
    l.lab
        .exec(
            "vm1",
            "ip",
            &["route", "add", "10.9.0.0/24", "via", GATEWAY],
        )
        .unwrap();
    l.assert_pings(c.name(), VM1, DEADLINE);

    let (ok, out, _) = cli(&["network", "list", "--vm-port", "dmz-vm5", "--json"]);
    assert!(ok);
    let nets: Value = serde_json::from_str(&out).unwrap();
    let blue = nets
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "blue")
        .expect("blue listed");
    assert_eq!(blue["vm_used"], 1);
    assert_eq!(blue["gateway"], "10.9.0.1/24");
    assert!(
        nets.as_array()
            .unwrap()
            .iter()
            .any(|n| n["name"] == "dmz" && n["by_ovnest"] == false)
    );

    // A network with a container on it is not deleted; without, everything goes.
    let (ok, _, err) = cli(&["network", "delete", "blue", "--conf-dir", &conf_dir_s]);
    assert!(!ok && err.contains("still has ports"), "{err}");
    exec(
        &l.plugin(),
        Some(&l.lab.ns("vm5")),
        &Call::new("DEL", "b1", Some(c.name())),
        &conf,
    )
    .expect_ok("DEL");
    let (ok, out, err) = cli(&["network", "delete", "blue", "--conf-dir", &conf_dir_s]);
    assert!(ok, "{out}{err}");
    assert!(
        l.lab
            .nbctl(&["get", "Logical_Switch", "blue", "name"])
            .is_err()
    );
    assert!(
        l.lab
            .nbctl(&["get", "Logical_Router_Port", "lr0-blue", "name"])
            .is_err()
    );
    assert!(
        l.nbctl(&[
            "--bare",
            "--columns=_uuid",
            "find",
            "DHCP_Options",
            "cidr=\"10.9.0.0/24\""
        ])
        .trim()
        .is_empty()
    );
    assert!(!conf_dir.join("blue.conflist").exists());
    let ports = l.nbctl(&["lrp-list", "lr0"]);
    let mut ports: Vec<&str> = ports
        .lines()
        .filter_map(|p| Some(p.split_once('(')?.1.trim_end_matches(')')))
        .collect();
    ports.sort_unstable();
    assert_eq!(
        ports,
        ["lr0-dmz", "lr0-inside"],
        "only the lab's own router ports are left"
    );
}

#[test]
fn the_seeds_way_an_access_port_on_the_vms_ovs_bridge() {
    if skip("the_seeds_way_an_access_port_on_the_vms_ovs_bridge")
        || !require_tools(
            "the_seeds_way_an_access_port_on_the_vms_ovs_bridge",
            &["ovs-vswitchd"],
        )
    {
        return;
    }
    // The seed's lab as it is (vm5 runs OVS, c51 and c52 by hand), plus OVN's IPAM.
    let l = CniLab::up("ovs", Containers::Ovs, &ovnest());
    l.nbctl(&[
        "set",
        "Logical_Switch",
        "dmz",
        &format!("other_config:subnet={}", ovnest_lab::containers::SUBNET),
        &format!(
            "other_config:exclude_ips=\"{}\"",
            ovnest_lab::containers::EXCLUDE_IPS
        ),
    ]);
    let state = l.lab.dir.join("cni-state");
    let conf = json!({
        "cniVersion": "1.0.0", "name": "dmz", "type": "ovnest-cni", "nb": l.lab.nb,
        "vmPort": "dmz-vm5", "tagger": "ovs", "ovsBridge": "br-vm5", "ovsDb": l.lab.vm5_db,
        "stateDir": state, "upTimeoutMs": 20000,
    });
    let plugin = ovnest();
    let link = l.lab.dir.join("ovnest-cni");
    std::os::unix::fs::symlink(&plugin, &link).unwrap();
    let c = Container::new("ovs");
    let vm5 = l.lab.ns("vm5");
    let r = exec(
        &link,
        Some(&vm5),
        &Call::new("ADD", "o1", Some(c.name())),
        &conf,
    );
    r.expect_ok("ADD with tagger ovs");
    let p = l
        .children("dmz-vm5")
        .into_iter()
        .find(|p| p.container() == Some("o1"))
        .expect("o1's port");
    let tag = p.tag.unwrap();
    // Tags 51 and 52 are the hand-made containers': the plugin took another.
    assert!(tag != 51 && tag != 52);
    let host = l
        .lab
        .vm5_vsctl(&[
            "--bare",
            "--columns=name",
            "find",
            "Port",
            &format!("tag={tag}"),
        ])
        .unwrap();
    assert!(
        host.trim().starts_with("ovc"),
        "an access port of VLAN {tag}: {host:?}"
    );
    l.assert_pings(c.name(), VM1, DEADLINE);
    l.assert_pings(c.name(), "172.16.255.133", DEADLINE);
    exec(
        &link,
        Some(&vm5),
        &Call::new("DEL", "o1", Some(c.name())),
        &conf,
    )
    .expect_ok("DEL");
    assert!(
        l.lab
            .vm5_vsctl(&[
                "--bare",
                "--columns=name",
                "find",
                "Port",
                &format!("tag={tag}")
            ])
            .unwrap()
            .trim()
            .is_empty()
    );
    assert!(
        l.children("dmz-vm5")
            .iter()
            .all(|p| p.container().is_none())
    );
}

#[test]
fn the_northbound_over_ssl_with_ovs_pki_certificates() {
    let test = "the_northbound_over_ssl_with_ovs_pki_certificates";
    if !require_tools(
        test,
        &["ovs-pki", "ovsdb-server", "ovsdb-tool", "ovn-nbctl"],
    ) {
        return;
    }
    let dir = std::env::temp_dir().join(format!("ovnest-cni-ssl-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let sh = |cmd: &str| {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(cmd)
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{cmd}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    // A PKI as OVS deployments make it: the NB's certificate from the controller CA, the
    // VM's from the switch CA; each side trusts the other's CA.
    sh(
        "ovs-pki --dir=pki --log=pki.log init && ovs-pki --dir=pki --log=pki.log req+sign nb controller \
        && ovs-pki --dir=pki --log=pki.log req+sign vm switch",
    );
    let port = ovnest_tests::ovn::free_port();
    sh(&format!(
        "ovsdb-tool create nb.db /usr/share/ovn/ovn-nb.ovsschema && ovsdb-server nb.db \
         --remote=pssl:{port}:127.0.0.1 --private-key=nb-privkey.pem --certificate=nb-cert.pem \
         --ca-cert=pki/switchca/cacert.pem --pidfile={d}/nb.pid --log-file={d}/nb.log \
         --unixctl={d}/nb.ctl --detach --no-chdir",
        d = dir.display()
    ));
    let remote = format!("ssl:127.0.0.1:{port}");
    let cli = |ca: &str, args: &[&str]| {
        std::process::Command::new(ovnest())
            .arg("cni")
            .args(args)
            .args(["-p", "vm-privkey.pem", "-c", "vm-cert.pem", "-C", ca])
            .env("OVN_NB_DB", &remote)
            .current_dir(&dir)
            .output()
            .unwrap()
    };
    let good = "pki/controllerca/cacert.pem";
    let ready = wait::poll(DEADLINE, || {
        cli(good, &["network", "list"]).status.success()
    });
    assert!(ready, "the NB answers over ssl");
    let out = cli(
        good,
        &[
            "network",
            "create",
            "red",
            "--subnet",
            "10.7.0.0/24",
            "--vm-port",
            "vm",
            "--no-conflist",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = cli(good, &["network", "list", "--json"]);
    let nets: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(nets[0]["name"], "red");
    assert_eq!(nets[0]["subnet"], "10.7.0.0/24");
    // A CA that did not sign the NB's certificate: refused, and said why.
    let out = cli("pki/switchca/cacert.pem", &["network", "list"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("certificate verify failed") && err.contains("unreachable"),
        "{err}"
    );
    // The plugin reads the same files from its configuration ("ssl").
    let (_, plugin) = lone_plugin();
    let conf = json!({
        "cniVersion": "1.0.0", "name": "red", "type": "ovnest-cni", "nb": remote,
        "ssl": {"privateKey": dir.join("vm-privkey.pem"), "certificate": dir.join("vm-cert.pem"),
                "caCert": dir.join(good)},
        "vmPort": "vm", "uplink": "eth0", "stateDir": dir.join("state"),
    });
    // A DEL over ssl reaches the NB, which has no port "vm": a configuration error (7)
    // the plugin can only have learnt from the NB.
    let r = exec(&plugin, None, &Call::new("DEL", "nobody", None), &conf);
    assert_eq!(r.code(), Some(7), "{r:?}");
    assert!(r.json.unwrap()["msg"].as_str().unwrap().contains("\"vm\""));
    let pidfile = dir.join("nb.pid");
    ovnest_lab::process::stop(&pidfile, Duration::from_secs(5));
    let _ = std::fs::remove_dir_all(&dir);
}
