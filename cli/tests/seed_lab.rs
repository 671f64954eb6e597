//! The seed lab as `scripts/lab.sh up` brings it up: `ovnest lab up` with its defaults
//! (ovnest `--datapath hybrid`, every machine addressed by `dhclient`), both switches of
//! the seed series (`dmz` and `inside` behind lr0). What the seed's steps show is checked:
//! each lease is what the operator configured in the NB and what northd compiled into the
//! SB; the gateway answers; traffic is routed between the switches both ways; the router
//! answers TTL 1 with time exceeded (traceroute); a tagged container learns the router's
//! MAC by ARP; and `ovnest lab down` leaves no dhclient running.

use std::{path::PathBuf, process::Command, time::Duration};

use ovnest_lab::{Lab, MACHINES};
use ovnest_tests::{
    privilege::{require_root, require_tools},
    wait,
};

const DEADLINE: Duration = Duration::from_secs(30);
const TOOLS: &[&str] = &[
    "ovsdb-server",
    "ovn-northd",
    "ovn-nbctl",
    "ovn-sbctl",
    "ovs-vswitchd",
    "ethtool",
    "ping",
    "dhclient",
    "traceroute",
];

const DMZ_GATEWAY: &str = "172.16.255.129";
const INSIDE_GATEWAY: &str = "172.16.255.193";
const C51: &str = "172.16.255.133";
const C52: &str = "172.16.255.134";
const VM3: &str = "172.16.255.194";
const VM4: &str = "172.16.255.195";

/// Takes the lab down on drop (panicking or not).
struct Down(PathBuf);

impl Drop for Down {
    fn drop(&mut self) {
        if std::thread::panicking()
            && let Ok(log) = std::fs::read_to_string(self.0.join("ovnest.log"))
        {
            eprintln!("--- ovnest.log ---\n{log}");
        }
        Lab::down(&self.0);
    }
}

fn ovnest(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_ovnest"))
        .args(args)
        .output()
        .expect("running ovnest");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "ovnest {}: {}\n{stdout}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// `key=value` pairs of `ovn-nbctl dhcp-options-get-options`.
fn option<'a>(options: &'a str, key: &str) -> &'a str {
    options
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("DHCP option {key} in {options}"))
}

/// The dotted netmask of a prefix length.
fn netmask(prefix: u32) -> String {
    std::net::Ipv4Addr::from(u32::MAX.checked_shl(32 - prefix).unwrap_or(0)).to_string()
}

/// The arguments of the `put_dhcp_opts` northd compiled for `port`, e.g.
/// `offerip = 172.16.255.133, lease_time = 3600, netmask = ...`.
fn put_dhcp_opts(lflows: &str, port: &str) -> Vec<(String, String)> {
    let inport = format!("inport == \"{port}\"");
    let line = lflows
        .lines()
        .find(|l| l.contains(&inport) && l.contains("put_dhcp_opts("))
        .unwrap_or_else(|| panic!("no put_dhcp_opts flow for {port}"));
    let args = line
        .split("put_dhcp_opts(")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .unwrap_or_default();
    args.split(',')
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            Some((k.trim().to_owned(), v.trim().trim_matches('"').to_owned()))
        })
        .collect()
}

#[test]
fn lab_up_follows_the_seed_with_dhcp() {
    if !require_root("seed_lab_dhcp") || !require_tools("seed_lab_dhcp", TOOLS) {
        return;
    }
    let prefix = format!("t{}dh-", std::process::id() % 10000);
    let dir = std::env::temp_dir().join(format!("ovnest-test-{prefix}"));
    Lab::down(&dir);
    let dir_arg = dir.display().to_string();
    let _down = Down(dir.clone());
    // What scripts/lab.sh up runs, with nothing but a place and a prefix of its own.
    let banner = ovnest(&["lab", "up", "--dir", &dir_arg, "--prefix", &prefix]);
    for step in [
        format!("ip netns exec {prefix}c51 ping -c3 {DMZ_GATEWAY}"),
        format!("ip netns exec {prefix}c51 ping -c3 {VM3}"),
        format!("ip netns exec {prefix}c51 traceroute -n {VM3}"),
        "acl-add dmz to-lport 1001 'ip4.src == 172.16.255.131' drop".to_owned(),
    ] {
        assert!(banner.contains(&step), "banner lacks `{step}`:\n{banner}");
    }
    let lab = Lab::open(&dir).expect("the lab is up");

    // Every machine's lease is what the NB says for its port (operator's intent) and what
    // northd compiled into the SB's put_dhcp_opts (what the agent executed).
    let lflows = lab.sbctl(&["lflow-list"]).expect("ovn-sbctl lflow-list");
    let mut dhclients = Vec::new();
    for machine in MACHINES {
        let nb = |args: &[&str]| lab.nbctl(args).unwrap().trim().to_owned();
        let uuid = nb(&[
            "--bare",
            "--columns=dhcpv4_options",
            "find",
            "Logical_Switch_Port",
            &format!("name={}", machine.port),
        ]);
        assert!(!uuid.is_empty(), "{} has DHCP options", machine.port);
        let options = nb(&["dhcp-options-get-options", &uuid]);
        let cidr = nb(&["get", "DHCP_Options", &uuid, "cidr"]);
        let cidr = cidr.trim_matches('"');
        let prefix_len: u32 = cidr.split_once('/').unwrap().1.parse().unwrap();
        let addresses = nb(&[
            "--bare",
            "--columns=addresses",
            "find",
            "Logical_Switch_Port",
            &format!("name={}", machine.port),
        ]);
        let address = addresses.split_whitespace().nth(1).expect("port's address");

        let lease = std::fs::read_to_string(lab.lease_file(machine.ns))
            .unwrap_or_else(|e| panic!("{}'s lease: {e}", machine.ns));
        let expected = [
            format!("fixed-address {address};"),
            format!("option subnet-mask {};", netmask(prefix_len)),
            format!("option routers {};", option(&options, "router")),
            format!("option dhcp-lease-time {};", option(&options, "lease_time")),
            format!(
                "option dhcp-server-identifier {};",
                option(&options, "server_id")
            ),
        ];
        for line in &expected {
            assert!(
                lease.contains(line.as_str()),
                "{}'s lease lacks `{line}`:\n{lease}",
                machine.ns
            );
        }
        let sb: Vec<(String, String)> = put_dhcp_opts(&lflows, machine.port);
        let sb_value = |k: &str| {
            sb.iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
                .unwrap_or_else(|| panic!("{k} in {}'s put_dhcp_opts: {sb:?}", machine.port))
        };
        assert_eq!(sb_value("offerip"), address, "{}", machine.port);
        assert_eq!(sb_value("netmask"), netmask(prefix_len), "{}", machine.port);
        assert_eq!(sb_value("router"), option(&options, "router"));
        assert_eq!(sb_value("lease_time"), option(&options, "lease_time"));
        assert_eq!(sb_value("server_id"), option(&options, "server_id"));

        // dhclient configured the NIC and the default route, as it does for the seed.
        let addr = lab
            .exec(
                machine.ns,
                "ip",
                &["-4", "addr", "show", "dev", machine.nic],
            )
            .unwrap();
        assert!(
            addr.contains(&format!("{address}/{prefix_len}")),
            "{} configured: {addr}",
            machine.ns
        );
        let route = lab
            .exec(machine.ns, "ip", &["-4", "route", "show", "default"])
            .unwrap();
        assert!(
            route.contains(&format!("via {}", option(&options, "router"))),
            "{}'s default route: {route}",
            machine.ns
        );
        let pid = std::fs::read_to_string(lab.dhclient_pidfile(machine.ns))
            .ok()
            .and_then(|p| p.trim().parse::<i32>().ok())
            .unwrap_or_else(|| panic!("{}'s dhclient pidfile", machine.ns));
        dhclients.push((machine.ns, pid));
    }

    // A tagged container learns the router's MAC by ARP and pings its gateway.
    lab.exec("c51", "ip", &["neigh", "flush", "dev", "eth0"])
        .unwrap();
    assert_pings(&lab, "c51", DMZ_GATEWAY);
    let neigh = lab
        .exec("c51", "ip", &["neigh", "show", DMZ_GATEWAY])
        .unwrap();
    assert!(
        neigh.contains("02:ac:10:ff:01:29"),
        "c51 (tag 51) learnt lr0-dmz's MAC: {neigh}"
    );
    assert_pings(&lab, "vm3", INSIDE_GATEWAY);
    let neigh = lab
        .exec("vm3", "ip", &["neigh", "show", INSIDE_GATEWAY])
        .unwrap();
    assert!(
        neigh.contains("02:ac:10:ff:01:c1"),
        "vm3 learnt lr0-inside's MAC: {neigh}"
    );

    // Routed between the switches, both ways, containers included.
    assert_pings(&lab, "c51", VM3);
    assert_pings(&lab, "vm4", C52);
    assert_pings(&lab, "vm5", VM4);

    // TTL exceeded from the router: traceroute's first hop is lr0, its second vm3.
    let trace = lab
        .exec("c51", "traceroute", &["-n", "-q1", "-w2", "-m4", VM3])
        .unwrap();
    let hops: Vec<&str> = trace
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(1))
        .collect();
    assert_eq!(hops, [DMZ_GATEWAY, VM3], "traceroute c51 -> vm3:\n{trace}");
    let text = lab
        .exec(
            "vm4",
            "sh",
            &["-c", &format!("ping -c1 -W2 -t1 {C51}; true")],
        )
        .unwrap();
    assert!(
        text.contains("Time to live exceeded") && text.contains(INSIDE_GATEWAY),
        "vm4's ping -t1 answered by lr0-inside: {text}"
    );

    // `lab down` stops every dhclient it started, then the namespaces go.
    for (ns, pid) in &dhclients {
        assert!(dhclient_runs(*pid), "{ns}'s dhclient (pid {pid}) runs");
    }
    ovnest(&["lab", "down", "--dir", &dir_arg]);
    for (ns, pid) in &dhclients {
        assert!(
            !dhclient_runs(*pid),
            "{ns}'s dhclient (pid {pid}) outlived `lab down`"
        );
    }
    let namespaces = Command::new("ip").args(["netns", "list"]).output().unwrap();
    assert!(
        !String::from_utf8_lossy(&namespaces.stdout).contains(&prefix),
        "namespaces left after `lab down`"
    );
}

fn assert_pings(lab: &Lab, from: &str, ip: &str) {
    wait::until(&format!("{from} -> {ip} answers"), DEADLINE, || {
        lab.exec(from, "ping", &["-c1", "-W1", ip]).ok()
    });
}

/// Whether `pid` is a live dhclient (not a zombie, not a reused pid).
fn dhclient_runs(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        // pid (comm) state ...
        let after_comm = stat.rsplit_once(") ").map_or("", |(_, rest)| rest);
        stat.contains("(dhclient)") && !after_comm.starts_with('Z')
    })
}
