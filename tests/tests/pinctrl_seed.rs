//! pinctrl on the seed lab's real Southbound: ovn-northd compiles the seed topology
//! (built with `ovn-nbctl` as an operator following the seed would), ovnest reads the
//! logical flows and DHCP_Options back, runs c51's DHCPDISCOVER through the pipeline
//! as the chassis does and pinctrl answers: the OFFER delivered to dmz-c51 must be the
//! bytes real ovn-controller 23.03 sent for the same DISCOVER (tests/data). Then vm1's
//! ARP reply to the router is learnt (`put_arp` in lr0's pipeline) and the agent's
//! writer puts the MAC_Binding row into the Southbound, as ovn-controller does.

use std::time::Duration;

use ovnest::ovsdb::{Client, ClientConfig, Remotes};
use ovnest_datapath::pinctrl::Pinctrl;
use ovnest_logical::pipeline::{Pipeline, Residency};
use ovnest_tests::decide::decide;
use ovnest_tests::fixtures::golden;
use ovnest_tests::ovn::OvnCentral;
use ovnest_tests::{privilege, wait};

const TOOLS: &[&str] = &[
    "ovsdb-server",
    "ovsdb-tool",
    "ovn-northd",
    "ovn-nbctl",
    "ovn-sbctl",
];

/// The seed: switch dmz, router lr0 on it, vm1/vm2/vm5 and the containers c51/c52 of
/// vm5 on tags 51/52, the seed's DHCP options on every port.
fn seed(ovn: &OvnCentral) {
    ovn.seed_dmz_and_router();
    let ports = ovnest_lab::LAB_PORTS;
    for p in ports.iter().filter(|p| p.vif_or_child()) {
        let addresses = format!("{} {}", p.mac, p.ip);
        ovn.nbctl(&["lsp-add", "dmz", p.name]);
        ovn.nbctl(&["lsp-set-addresses", p.name, &addresses]);
        ovn.nbctl(&["lsp-set-port-security", p.name, &addresses]);
        if let Some(tag) = p.tag {
            ovn.nbctl(&["set", "Logical_Switch_Port", p.name, "parent_name=dmz-vm5"]);
            ovn.nbctl(&["set", "Logical_Switch_Port", p.name, &format!("tag={tag}")]);
        }
    }
    let dhcp = ovn.nbctl(&[
        "create",
        "DHCP_Options",
        "cidr=172.16.255.128/26",
        "options=\"lease_time\"=\"3600\" \"router\"=\"172.16.255.129\" \"server_id\"=\"172.16.255.129\" \"server_mac\"=\"02:ac:10:ff:01:29\"",
    ]);
    for p in ports.iter().filter(|p| p.vif_or_child()) {
        ovn.nbctl(&["lsp-set-dhcpv4-options", p.name, dhcp.trim()]);
    }
    ovn.sync();
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

#[test]
fn seed_dhcp_offer_equals_ovn_controller_and_mac_binding_reaches_sb() {
    if !privilege::require_tools("pinctrl_seed", TOOLS) {
        return;
    }
    let ovn = OvnCentral::start();
    seed(&ovn);
    let rt = runtime();
    let remotes: Remotes = ovn.sb_remote().parse().expect("remote");
    let db = rt
        .block_on(ovnest::lflow::fetch(
            remotes.clone(),
            Duration::from_secs(30),
        ))
        .expect("Southbound snapshot");
    let p = Pipeline::compile(&db, &Residency::Everywhere);
    assert!(
        p.errors.is_empty(),
        "flows that do not compile: {:?}",
        p.errors
    );

    // c51's DISCOVER as the pipeline sees it (the physical layer strips tag 51).
    let captured = golden::load("golden-dhcp-c51.txt");
    let (sent, recv) = (&captured[0], &captured[1]);
    assert!(sent.sent && !recv.sent);
    let mut discover = sent.bytes.clone();
    if discover[12..14] == [0x81, 0x00] {
        discover.drain(12..16);
    }
    let d = decide(&p, "dmz-c51", &discover);
    assert!(d.unsupported.is_empty(), "{:?}", d.unsupported);
    assert!(
        d.deliveries.is_empty(),
        "the pipeline pauses at put_dhcp_opts"
    );
    let ops: Vec<_> = d
        .controller
        .iter()
        .filter(|op| op.action.name() == "put_dhcp_opts")
        .collect();
    assert_eq!(ops.len(), 1, "{:?}", d.controller);

    let mut pinctrl = Pinctrl::new();
    let out = pinctrl.handle(&p, &discover, ops[0]).expect("offer");
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(p.port(out[0].port).name, "dmz-c51");
    assert_eq!(
        out[0].frame, recv.bytes,
        "the OFFER differs from real ovn-controller's (tag stripped in both)"
    );
    assert_eq!(pinctrl.counters().get("put_dhcp_opts", "offer"), 1);

    // vm1 answers the router's ARP: lr0 learns 172.16.255.130 on lr0-dmz.
    let vm1 = [0x02, 0xac, 0x10, 0xff, 0x01, 0x30];
    let lr = [0x02, 0xac, 0x10, 0xff, 0x01, 0x29];
    let mut arp = Vec::new();
    arp.extend_from_slice(&lr);
    arp.extend_from_slice(&vm1);
    arp.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 2]);
    arp.extend_from_slice(&vm1);
    arp.extend_from_slice(&[172, 16, 255, 130]);
    arp.extend_from_slice(&lr);
    arp.extend_from_slice(&[172, 16, 255, 129]);
    let d = decide(&p, "dmz-vm1", &arp);
    let put: Vec<_> = d
        .controller
        .iter()
        .filter(|op| op.action.name() == "put_arp")
        .collect();
    assert_eq!(put.len(), 1, "{:?}", d.controller);
    assert_eq!(pinctrl.handle(&p, &arp, put[0]), Ok(Vec::new()));

    let client = {
        let _guard = rt.enter();
        Client::start(ClientConfig::new(remotes, "OVN_Southbound"), None)
    };
    let writer = ovnest::pinctrl::spawn_writer(pinctrl.sb_queue(), client, rt.handle().clone());
    let row = wait::until(
        "MAC_Binding row for 172.16.255.130",
        Duration::from_secs(30),
        || {
            ovn.sb_rows("MAC_Binding", &["logical_port", "ip", "mac"])
                .into_iter()
                .find(|r| r.get("ip").and_then(|v| v.as_str()) == Some("172.16.255.130"))
        },
    );
    assert_eq!(row["logical_port"], "lr0-dmz");
    assert_eq!(row["mac"], "02:ac:10:ff:01:30");
    assert_eq!(
        writer
            .counters
            .inserted
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    writer.stop();
}
