//! The captured seed flows compile completely, and traces of the seed's cases equal what
//! real ovn-trace printed for them (../shared/reference/ovn-23.03/logical-flows/traces.txt,
//! copied below as the expected bytes).

use ovnest_logical::{Pipeline, TraceOptions, pipeline::Residency, trace::Formats};
use ovnest_tests::fixtures::lflows;

fn minimal(db: &ovnest_logical::db::Database, case: &str) -> String {
    let p = Pipeline::compile(db, &Residency::Everywhere);
    assert!(p.errors.is_empty(), "flows not compiled: {:?}", p.errors);
    let flow = lflows::cases()
        .into_iter()
        .find(|c| c.name == case)
        .expect("case")
        .microflow;
    let formats = Formats {
        minimal: true,
        ..Default::default()
    };
    ovnest_logical::trace(&p, None, &flow, &TraceOptions::default(), formats).expect("trace")
}

#[test]
fn dhcp_discover_as_ovn_trace() {
    assert_eq!(
        minimal(&lflows::seed(), "dhcp_discover_c51"),
        "# udp,reg14=0x4,vlan_tci=0x0000,dl_src=02:ac:10:ff:01:33,dl_dst=ff:ff:ff:ff:ff:ff,nw_src=0.0.0.0,nw_dst=255.255.255.255,nw_tos=0,nw_ecn=0,nw_ttl=64,nw_frag=no,tp_src=68,tp_dst=67
/* We assume that this packet is DHCPDISCOVER or DHCPREQUEST. */;
put_dhcp_opts(offerip = 172.16.255.133, lease_time = 3600, netmask = 255.255.255.192, router = 172.16.255.129, server_id = 172.16.255.129);
eth.dst = 02:ac:10:ff:01:33;
eth.src = 02:ac:10:ff:01:29;
ip4.src = 172.16.255.129;
udp.src = 67;
udp.dst = 68;
output(\"dmz-c51\");
"
    );
}

#[test]
fn routed_as_ovn_trace() {
    let out = minimal(&lflows::seed(), "routed_c51_to_vm3");
    let body: Vec<&str> = out.lines().skip(1).collect();
    assert_eq!(
        body,
        [
            "ip.ttl--;",
            "eth.src = 02:ac:10:ff:01:c1;",
            "eth.dst = 02:ac:10:ff:01:c2;",
            "output(\"vm3\");"
        ]
    );
}

#[test]
fn acl_drops_as_ovn_trace() {
    let out = minimal(&lflows::seed_acl(), "acl_drop_vm2_to_c51");
    assert_eq!(
        out.lines().count(),
        1,
        "nothing but the flow line: dropped\n{out}"
    );
    let out = minimal(&lflows::seed(), "acl_drop_vm2_to_c51");
    assert!(out.ends_with("output(\"dmz-c51\");\n"), "{out}");
}
