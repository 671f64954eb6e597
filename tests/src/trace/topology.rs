//! Logical networks built with `ovn-nbctl` as an operator types it, and what the
//! microflow generator needs to know about them (ports, addresses, router ports, the
//! traffic their ACLs tell apart, load-balancer VIPs).
//!
//! Each builder method both records the operator's commands and the model, so the two
//! never disagree. [`Topology::script`] prints the commands as a shell script, which is
//! how a mismatch names the network it happened on.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use crate::ovn::OvnCentral;

const NBCTL: &str = "ovn-nbctl";
const SBCTL: &str = "ovn-sbctl";

/// One `ovn-nbctl` (or, for state ovn-controller would have written, `ovn-sbctl`)
/// command line. With `capture`, its output (trimmed) is kept as a variable that later
/// commands name as `$VAR`, as `VAR=$(ovn-nbctl ...)` does in a shell.
#[derive(Debug, Clone)]
pub struct Command {
    pub program: &'static str,
    pub capture: Option<&'static str>,
    pub args: Vec<String>,
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let line: Vec<String> = self.args.iter().map(|a| shell_quote(a)).collect();
        let p = self.program;
        match self.capture {
            Some(var) => write!(f, "{var}=$({p} {})", line.join(" ")),
            None => write!(f, "{p} {}", line.join(" ")),
        }
    }
}

/// `s` as a POSIX shell word (variables `$VAR` left to expand).
pub fn shell_quote(s: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_.,:/=@+%".contains(c);
    if !s.is_empty() && s.chars().all(plain) {
        s.to_owned()
    } else if s.starts_with('$') && s[1..].chars().all(|c| c.is_ascii_alphanumeric()) {
        format!("\"{s}\"")
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// A VM's or a container's port on a logical switch.
#[derive(Debug, Clone)]
pub struct Vif {
    pub name: String,
    pub switch: String,
    pub mac: String,
    pub ip4: Option<Ipv4Addr>,
    pub ip6: Option<Ipv6Addr>,
    /// The VM's port and the VLAN tag of a nested container.
    pub parent: Option<(String, u16)>,
    /// The DHCPv4 server (`server_id`, `server_mac`) when the port has DHCPv4 options.
    pub dhcp4: Option<(Ipv4Addr, String)>,
    pub dhcp6: bool,
}

/// A logical router port and the switch port that patches it to its switch.
#[derive(Debug, Clone)]
pub struct RouterPort {
    pub router: String,
    pub name: String,
    pub switch: String,
    pub mac: String,
    pub ip4: Option<Ipv4Addr>,
    pub ip6: Option<Ipv6Addr>,
    /// `ipv6_ra_configs` is set: router solicitations get `put_nd_ra_opts`.
    pub ra: bool,
    /// Further addresses the router answers for on this port's network (NAT's
    /// external addresses).
    pub nat_ips: Vec<Ipv4Addr>,
}

/// Layer-4 traffic an ACL of the topology tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Tcp(u16),
    Udp(u16),
    Icmp,
}

/// A load-balancer VIP and its backends.
#[derive(Debug, Clone)]
pub struct Vip {
    pub lb: String,
    pub ip: Ipv4Addr,
    pub service: Service,
    pub backends: Vec<(Ipv4Addr, u16)>,
    /// Attached to the router (else to the switches in `switches`).
    pub router: Option<String>,
    pub switches: Vec<String>,
}

/// A logical network and how it was built.
#[derive(Debug, Clone, Default)]
pub struct Topology {
    pub name: &'static str,
    pub commands: Vec<Command>,
    pub vifs: Vec<Vif>,
    pub router_ports: Vec<RouterPort>,
    /// Traffic the ACLs tell apart; empty when there is no ACL.
    pub services: Vec<Service>,
    pub vips: Vec<Vip>,
    /// ECMP routes: router, a destination they cover, and their number of paths.
    pub ecmp: Vec<(String, Ipv4Addr, u16)>,
    /// Connection states (ovn-trace's `--ct`) ACL'd traffic is traced under, besides
    /// ovn-trace's default: the first for every packet, the others in turns.
    pub ct_states: Vec<&'static str>,
}

impl Topology {
    pub fn new(name: &'static str) -> Topology {
        Topology {
            name,
            ..Topology::default()
        }
    }

    /// Runs the commands against `ovn`'s NB and waits for northd to write the SB.
    pub fn build(&self, ovn: &OvnCentral) {
        let mut vars: Vec<(&str, String)> = Vec::new();
        for c in &self.commands {
            let args: Vec<String> = c
                .args
                .iter()
                .map(|a| {
                    vars.iter()
                        .fold(a.clone(), |a, (var, v)| a.replace(&format!("${var}"), v))
                })
                .collect();
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let run = if c.program == SBCTL {
                OvnCentral::try_sbctl
            } else {
                OvnCentral::try_nbctl
            };
            let out = run(ovn, &args).unwrap_or_else(|e| {
                panic!("topology {}: `{c}` failed: {e}\n{}", self.name, ovn.logs())
            });
            if let Some(var) = c.capture {
                vars.push((var, out.trim().to_owned()));
            }
        }
        ovn.sync();
    }

    /// The commands as a shell script.
    pub fn script(&self) -> String {
        self.commands.iter().map(|c| format!("{c}\n")).collect()
    }

    /// Any `ovn-nbctl` command.
    pub fn nbctl(&mut self, args: &[&str]) -> &mut Self {
        self.commands.push(Command {
            program: NBCTL,
            capture: None,
            args: args.iter().map(|s| s.to_string()).collect(),
        });
        self
    }

    /// `VAR=$(ovn-nbctl ARGS...)`.
    pub fn capture(&mut self, var: &'static str, args: &[&str]) -> &mut Self {
        self.commands.push(Command {
            program: NBCTL,
            capture: Some(var),
            args: args.iter().map(|s| s.to_string()).collect(),
        });
        self
    }

    pub fn switch(&mut self, name: &str) -> &mut Self {
        self.nbctl(&["ls-add", name])
    }

    /// A VM's port with its addresses as both `addresses` and `port_security`.
    pub fn vif(&mut self, switch: &str, name: &str, mac: &str, ips: &[&str]) -> &mut Self {
        self.nbctl(&["lsp-add", switch, name]);
        self.port_addresses(switch, name, mac, ips, None)
    }

    /// A nested container's port: parent port and VLAN tag.
    pub fn child(
        &mut self,
        switch: &str,
        name: &str,
        parent: &str,
        tag: u16,
        mac: &str,
        ips: &[&str],
    ) -> &mut Self {
        self.nbctl(&["lsp-add", switch, name, parent, &tag.to_string()]);
        self.port_addresses(switch, name, mac, ips, Some((parent.to_owned(), tag)))
    }

    fn port_addresses(
        &mut self,
        switch: &str,
        name: &str,
        mac: &str,
        ips: &[&str],
        parent: Option<(String, u16)>,
    ) -> &mut Self {
        let addr = std::iter::once(mac)
            .chain(ips.iter().copied())
            .collect::<Vec<_>>()
            .join(" ");
        self.nbctl(&["lsp-set-addresses", name, &addr]);
        self.nbctl(&["lsp-set-port-security", name, &addr]);
        self.vifs.push(Vif {
            name: name.to_owned(),
            switch: switch.to_owned(),
            mac: mac.to_owned(),
            ip4: ips.iter().find_map(|ip| ip.parse().ok()),
            ip6: ips.iter().find_map(|ip| ip.parse().ok()),
            parent,
            dhcp4: None,
            dhcp6: false,
        });
        self
    }

    pub fn router(&mut self, name: &str) -> &mut Self {
        self.nbctl(&["lr-add", name])
    }

    /// A router port `NETWORKS` (`IP/PLEN`) on `switch`, patched by the switch port
    /// `SWITCH-ROUTER` of type router.
    pub fn router_port(
        &mut self,
        router: &str,
        switch: &str,
        mac: &str,
        networks: &[&str],
    ) -> &mut Self {
        let lrp = format!("{router}-{switch}");
        let lsp = format!("{switch}-{router}");
        let mut args = vec!["lrp-add", router, &lrp, mac];
        args.extend_from_slice(networks);
        self.nbctl(&args);
        self.nbctl(&["lsp-add", switch, &lsp]);
        self.nbctl(&["lsp-set-type", &lsp, "router"]);
        self.nbctl(&["lsp-set-addresses", &lsp, "router"]);
        self.nbctl(&["lsp-set-options", &lsp, &format!("router-port={lrp}")]);
        let ip = |n: &&str| n.split('/').next().unwrap_or_default().to_owned();
        self.router_ports.push(RouterPort {
            router: router.to_owned(),
            name: lrp,
            switch: switch.to_owned(),
            mac: mac.to_owned(),
            ip4: networks.iter().find_map(|n| ip(n).parse().ok()),
            ip6: networks.iter().find_map(|n| ip(n).parse().ok()),
            ra: false,
            nat_ips: Vec::new(),
        });
        self
    }

    /// Router advertisements on router port `lrp` (`ipv6_ra_configs:address_mode`).
    pub fn ra(&mut self, lrp: &str, address_mode: &str) -> &mut Self {
        self.nbctl(&[
            "set",
            "Logical_Router_Port",
            lrp,
            &format!("ipv6_ra_configs:address_mode={address_mode}"),
        ]);
        if let Some(rp) = self.router_ports.iter_mut().find(|r| r.name == lrp) {
            rp.ra = true;
        }
        self
    }

    /// `VAR=$(ovn-nbctl create DHCP_Options cidr=CIDR options:...)`, given to `ports`.
    pub fn dhcp4(
        &mut self,
        var: &'static str,
        cidr: &str,
        server: (Ipv4Addr, &str),
        router: Ipv4Addr,
        ports: &[&str],
    ) -> &mut Self {
        self.capture(
            var,
            &[
                "create",
                "DHCP_Options",
                &format!("cidr={cidr}"),
                &format!(
                    "options=\"lease_time\"=\"3600\" \"router\"=\"{router}\" \"server_id\"=\"{}\" \"server_mac\"=\"{}\"",
                    server.0, server.1
                ),
            ],
        );
        let dh = format!("${var}");
        for p in ports {
            self.nbctl(&["lsp-set-dhcpv4-options", p, &dh]);
            if let Some(v) = self.vifs.iter_mut().find(|v| v.name == *p) {
                v.dhcp4 = Some((server.0, server.1.to_owned()));
            }
        }
        self
    }

    /// DHCPv6 options as an operator makes them with `dhcp-options-create`: the row is
    /// created, found again by its CIDR, given `server_id`, then set on `ports`.
    pub fn dhcp6(
        &mut self,
        var: &'static str,
        cidr: &str,
        server_mac: &str,
        ports: &[&str],
    ) -> &mut Self {
        self.nbctl(&["dhcp-options-create", cidr]);
        self.capture(
            var,
            &[
                "--bare",
                "--columns=_uuid",
                "find",
                "DHCP_Options",
                &format!("cidr=\"{cidr}\""),
            ],
        );
        let dh = format!("${var}");
        self.nbctl(&[
            "dhcp-options-set-options",
            &dh,
            &format!("server_id={server_mac}"),
        ]);
        for p in ports {
            self.nbctl(&["lsp-set-dhcpv6-options", p, &dh]);
            if let Some(v) = self.vifs.iter_mut().find(|v| v.name == *p) {
                v.dhcp6 = true;
            }
        }
        self
    }

    /// `ovn-nbctl --ecmp lr-route-add ROUTER PREFIX NEXTHOP` for each next hop; traffic
    /// to `sample` (in `prefix`) is traced along each path.
    pub fn ecmp_route(
        &mut self,
        router: &str,
        prefix: &str,
        sample: Ipv4Addr,
        nexthops: &[&str],
    ) -> &mut Self {
        for nh in nexthops {
            self.nbctl(&["--ecmp", "lr-route-add", router, prefix, nh]);
        }
        self.ecmp
            .push((router.to_owned(), sample, nexthops.len() as u16));
        self
    }

    /// A neighbour the router learned on `lrp` (a MAC_Binding row, as ovn-controller
    /// writes one after `put_arp`; operators do not make these, so it goes to the SB once
    /// northd has made the router's datapath).
    pub fn learned_neighbor(
        &mut self,
        router: &str,
        lrp: &str,
        ip: Ipv4Addr,
        mac: &str,
    ) -> &mut Self {
        self.nbctl(&["--wait=sb", "sync"]);
        self.commands.push(Command {
            program: SBCTL,
            capture: Some("LRDP"),
            args: [
                "--bare",
                "--columns=_uuid",
                "find",
                "Datapath_Binding",
                &format!("external_ids:name={router}"),
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        });
        self.commands.push(Command {
            program: SBCTL,
            capture: None,
            args: [
                "create",
                "MAC_Binding",
                "datapath=$LRDP",
                &format!("logical_port={lrp}"),
                &format!("ip={ip}"),
                &format!("mac=\"{mac}\""),
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        });
        self
    }

    /// A localnet port on `switch` and, as a sender behind it, a host of the physical
    /// network (`mac`, `ip`): frames from it enter on the localnet port.
    pub fn localnet(&mut self, switch: &str, name: &str, host: (&str, Ipv4Addr)) -> &mut Self {
        self.nbctl(&["lsp-add", switch, name]);
        self.nbctl(&["lsp-set-type", name, "localnet"]);
        self.nbctl(&["lsp-set-addresses", name, "unknown"]);
        self.nbctl(&["lsp-set-options", name, "network_name=physnet1"]);
        self.vifs.push(Vif {
            name: name.to_owned(),
            switch: switch.to_owned(),
            mac: host.0.to_owned(),
            ip4: Some(host.1),
            ip6: None,
            parent: None,
            dhcp4: None,
            dhcp6: false,
        });
        self
    }

    /// `lr-nat-add ROUTER TYPE EXTERNAL_IP LOGICAL_IP [PORT MAC]`; the router answers for
    /// the external address on the router port whose network holds it.
    pub fn nat(&mut self, router: &str, ty: &str, external: Ipv4Addr, rest: &[&str]) -> &mut Self {
        let ext = external.to_string();
        let mut args = vec!["lr-nat-add", router, ty, &ext];
        args.extend_from_slice(rest);
        self.nbctl(&args);
        let on_net = |rp: &RouterPort| {
            rp.ip4
                .is_some_and(|ip| ip.octets()[..3] == external.octets()[..3])
        };
        if let Some(rp) = self
            .router_ports
            .iter_mut()
            .find(|rp| rp.router == router && on_net(rp))
            && rp.ip4 != Some(external)
        {
            rp.nat_ips.push(external);
        }
        self
    }

    /// `acl-add ENTITY DIRECTION PRIORITY MATCH VERDICT`.
    pub fn acl(
        &mut self,
        entity: &str,
        direction: &str,
        priority: u16,
        match_: &str,
        verdict: &str,
    ) -> &mut Self {
        self.nbctl(&[
            "acl-add",
            entity,
            direction,
            &priority.to_string(),
            match_,
            verdict,
        ])
    }

    /// `lb-add` with one VIP, attached with `ls-lb-add` to `switches` or with
    /// `lr-lb-add` to `router`.
    pub fn lb(
        &mut self,
        name: &str,
        vip: (Ipv4Addr, Service),
        backends: &[(Ipv4Addr, u16)],
        router: Option<&str>,
        switches: &[&str],
    ) -> &mut Self {
        let (port, proto) = match vip.1 {
            Service::Tcp(p) => (p, "tcp"),
            Service::Udp(p) => (p, "udp"),
            Service::Icmp => panic!("a VIP has a port"),
        };
        let bs: Vec<String> = backends.iter().map(|(ip, p)| format!("{ip}:{p}")).collect();
        self.nbctl(&[
            "lb-add",
            name,
            &format!("{}:{port}", vip.0),
            &bs.join(","),
            proto,
        ]);
        if let Some(r) = router {
            self.nbctl(&["lr-lb-add", r, name]);
        }
        for s in switches {
            self.nbctl(&["ls-lb-add", s, name]);
        }
        self.vips.push(Vip {
            lb: name.to_owned(),
            ip: vip.0,
            service: vip.1,
            backends: backends.to_vec(),
            router: router.map(str::to_owned),
            switches: switches.iter().map(|s| s.to_string()).collect(),
        });
        self
    }

    /// The router port on `switch`, if the switch has one.
    pub fn gateway(&self, switch: &str) -> Option<&RouterPort> {
        self.router_ports.iter().find(|r| r.switch == switch)
    }

    pub fn find_vif(&self, name: &str) -> Option<&Vif> {
        self.vifs.iter().find(|v| v.name == name)
    }
}

/// The seed lab (`shared/reference/ovn-23.03/logical-flows/topology.sh`): switch `dmz`
/// with vm1, vm2, vm5 and vm5's containers c51/c52 on tags 51/52, DHCPv4 options on all,
/// router `lr0` to a second switch `inside` with vm3.
pub fn seed() -> Topology {
    let mut t = Topology::new("seed");
    seed_into(&mut t);
    t
}

pub const ROUTER_MAC: &str = "02:ac:10:ff:01:29";
pub const ROUTER_IP: Ipv4Addr = Ipv4Addr::new(172, 16, 255, 129);

fn seed_into(t: &mut Topology) {
    t.switch("dmz");
    t.vif("dmz", "dmz-vm1", "02:ac:10:ff:01:30", &["172.16.255.130"]);
    t.vif("dmz", "dmz-vm2", "02:ac:10:ff:01:31", &["172.16.255.131"]);
    t.vif("dmz", "dmz-vm5", "02:ac:10:ff:01:32", &["172.16.255.132"]);
    t.child(
        "dmz",
        "dmz-c51",
        "dmz-vm5",
        51,
        "02:ac:10:ff:01:33",
        &["172.16.255.133"],
    );
    t.child(
        "dmz",
        "dmz-c52",
        "dmz-vm5",
        52,
        "02:ac:10:ff:01:34",
        &["172.16.255.134"],
    );
    t.dhcp4(
        "DH",
        "172.16.255.128/26",
        (ROUTER_IP, ROUTER_MAC),
        ROUTER_IP,
        &["dmz-vm1", "dmz-vm2", "dmz-vm5", "dmz-c51", "dmz-c52"],
    );
    t.router("lr0");
    t.router_port("lr0", "dmz", ROUTER_MAC, &["172.16.255.129/26"]);
    t.switch("inside");
    t.router_port("lr0", "inside", "02:ac:10:ff:01:c1", &["172.16.255.193/26"]);
    t.vif("inside", "vm3", "02:ac:10:ff:01:c2", &["172.16.255.194"]);
}

/// Connection states worth telling apart: a new connection (first: traced for every
/// packet), an established one in either direction, a related one (ICMP error), and an
/// invalid packet.
const CT_STATES: &[&str] = &["new", "est", "est,rpl", "rel", "inv"];

/// The seed with stateless ACLs only (drop, allow, reject; no allow-related, so no
/// conntrack), on VMs and on a nested child, both directions.
pub fn acl_stateless() -> Topology {
    let mut t = Topology::new("acl-stateless");
    seed_into(&mut t);
    t.acl("dmz", "to-lport", 1001, "ip4.src == 172.16.255.131", "drop");
    t.acl(
        "dmz",
        "from-lport",
        1002,
        "inport == \"dmz-c52\" && udp.dst == 53",
        "reject",
    );
    t.acl(
        "dmz",
        "to-lport",
        1000,
        "outport == \"dmz-c51\" && tcp.dst == 22",
        "reject",
    );
    t.acl(
        "dmz",
        "from-lport",
        900,
        "inport == \"dmz-vm1\" && icmp4",
        "allow",
    );
    t.acl(
        "inside",
        "from-lport",
        1000,
        "inport == \"vm3\" && tcp.dst == 80",
        "drop",
    );
    t.services = vec![
        Service::Tcp(22),
        Service::Tcp(80),
        Service::Udp(53),
        Service::Icmp,
    ];
    t
}

/// The seed with stateful ACLs: allow-related on a port group holding a VM and a nested
/// child, an address set and the port group's own address set in matches, drop and
/// reject in both directions.
pub fn acl_stateful() -> Topology {
    let mut t = Topology::new("acl-stateful");
    seed_into(&mut t);
    t.nbctl(&["pg-add", "pg_web", "dmz-vm1", "dmz-c51"]);
    t.nbctl(&[
        "create",
        "Address_Set",
        "name=admins",
        "addresses=\"172.16.255.131\",\"172.16.255.194\"",
    ]);
    t.acl(
        "pg_web",
        "to-lport",
        1002,
        "outport == @pg_web && ip4.src == $admins && tcp.dst == 22",
        "allow-related",
    );
    t.acl(
        "pg_web",
        "to-lport",
        1001,
        "outport == @pg_web && tcp.dst == 80",
        "allow-related",
    );
    t.nbctl(&[
        "--log",
        "--severity=warning",
        "--name=web-default-drop",
        "acl-add",
        "pg_web",
        "to-lport",
        "1000",
        "outport == @pg_web && ip4",
        "drop",
    ]);
    t.acl(
        "dmz",
        "from-lport",
        1001,
        "inport == \"dmz-c52\" && udp.dst == 53",
        "reject",
    );
    t.acl(
        "dmz",
        "from-lport",
        1000,
        "inport == \"dmz-c52\" && ip4.dst == $pg_web_ip4",
        "drop",
    );
    t.acl(
        "dmz",
        "to-lport",
        1000,
        "outport == \"dmz-vm5\" && tcp",
        "reject",
    );
    t.acl(
        "dmz",
        "from-lport",
        900,
        "inport == \"dmz-vm2\" && icmp4",
        "allow",
    );
    t.acl(
        "inside",
        "to-lport",
        1000,
        "outport == \"vm3\" && udp.dst == 53",
        "allow-related",
    );
    t.acl(
        "inside",
        "to-lport",
        900,
        "outport == \"vm3\" && ip4",
        "drop",
    );
    t.services = vec![
        Service::Tcp(22),
        Service::Tcp(80),
        Service::Udp(53),
        Service::Icmp,
    ];
    t.ct_states = CT_STATES.to_vec();
    t
}

/// The seed with load balancers: one on `dmz` (two backends on dmz), one on
/// the router (lr0 made a gateway router, as router load balancing needs), and a
/// localnet port on `inside`.
pub fn load_balancers() -> Topology {
    let mut t = Topology::new("load-balancers");
    seed_into(&mut t);
    t.nbctl(&["set", "Logical_Router", "lr0", "options:chassis=hv1"]);
    t.lb(
        "lb-web",
        (Ipv4Addr::new(10, 0, 0, 80), Service::Tcp(80)),
        &[
            (Ipv4Addr::new(172, 16, 255, 130), 8080),
            (Ipv4Addr::new(172, 16, 255, 131), 8080),
        ],
        None,
        &["dmz"],
    );
    t.lb(
        "lb-dns",
        (Ipv4Addr::new(10, 0, 0, 53), Service::Udp(53)),
        &[(Ipv4Addr::new(172, 16, 255, 194), 5353)],
        Some("lr0"),
        &[],
    );
    t.localnet(
        "inside",
        "inside-ln",
        ("02:00:00:00:c8:01", Ipv4Addr::new(172, 16, 255, 200)),
    );
    t.ct_states = CT_STATES.to_vec();
    t
}

/// Dual stack on `dmz`: IPv6 addresses on every port, the router port's IPv6 network
/// with router advertisements (DHCPv6-stateful mode), DHCPv6 options with a server_id,
/// IPv6 ACLs (stateful: one is allow-related), and an IPv6 network on `inside`.
pub fn ipv6() -> Topology {
    let mut t = Topology::new("ipv6");
    t.switch("dmz");
    let ports = [
        ("dmz-vm1", "30", None),
        ("dmz-vm2", "31", None),
        ("dmz-vm5", "32", None),
        ("dmz-c51", "33", Some(51)),
        ("dmz-c52", "34", Some(52)),
    ];
    for (name, n, tag) in ports {
        let mac = format!("02:ac:10:ff:01:{n}");
        let ip4 = format!("172.16.255.1{n}");
        let ip6 = format!("fd00:ac10:ff01::1{n}");
        match tag {
            None => t.vif("dmz", name, &mac, &[&ip4, &ip6]),
            Some(tag) => t.child("dmz", name, "dmz-vm5", tag, &mac, &[&ip4, &ip6]),
        };
    }
    let names: Vec<&str> = ports.iter().map(|p| p.0).collect();
    t.dhcp4(
        "DH",
        "172.16.255.128/26",
        (ROUTER_IP, ROUTER_MAC),
        ROUTER_IP,
        &names,
    );
    t.dhcp6("D6", "fd00:ac10:ff01::/64", ROUTER_MAC, &names);
    t.router("lr0");
    t.router_port(
        "lr0",
        "dmz",
        ROUTER_MAC,
        &["172.16.255.129/26", "fd00:ac10:ff01::1/64"],
    );
    t.ra("lr0-dmz", "dhcpv6_stateful");
    // IPv6 ACLs: reject (tcp_reset, icmp6 unreachable), drop, allow-related, on a VM
    // and on a nested child.
    t.acl(
        "dmz",
        "to-lport",
        1002,
        "outport == \"dmz-c51\" && ip6 && tcp.dst == 22",
        "reject",
    );
    t.acl(
        "dmz",
        "from-lport",
        1001,
        "inport == \"dmz-vm2\" && ip6 && udp.dst == 53",
        "reject",
    );
    t.acl(
        "dmz",
        "from-lport",
        1000,
        "inport == \"dmz-c52\" && icmp6",
        "drop",
    );
    t.acl(
        "dmz",
        "to-lport",
        1000,
        "outport == \"dmz-vm1\" && ip6 && tcp.dst == 80",
        "allow-related",
    );
    t.services = vec![
        Service::Tcp(22),
        Service::Tcp(80),
        Service::Udp(53),
        Service::Icmp,
    ];
    t.ct_states = CT_STATES.to_vec();
    t.switch("inside");
    t.router_port(
        "lr0",
        "inside",
        "02:ac:10:ff:01:c1",
        &["172.16.255.193/26", "fd00:ac10:ffc1::1/64"],
    );
    t.vif(
        "inside",
        "vm3",
        "02:ac:10:ff:01:c2",
        &["172.16.255.194", "fd00:ac10:ffc1::194"],
    );
    t
}

/// The seed behind a distributed gateway port: a `public` switch with a localnet port
/// (the upstream router behind it, whose MAC the router has learned), the router's port
/// on it bound to a gateway chassis, a default route, an ECMP route over two next hops,
/// SNAT for dmz and a distributed floating IP for vm1.
pub fn gateway() -> Topology {
    let mut t = Topology::new("gateway");
    seed_into(&mut t);
    t.switch("public");
    t.router_port("lr0", "public", "02:ac:10:ff:00:01", &["203.0.113.1/24"]);
    t.nbctl(&["lrp-set-gateway-chassis", "lr0-public", "hv1", "20"]);
    t.localnet(
        "public",
        "public-ln",
        ("02:00:cb:00:71:fe", Ipv4Addr::new(203, 0, 113, 254)),
    );
    t.nbctl(&["lr-route-add", "lr0", "0.0.0.0/0", "203.0.113.254"]);
    t.learned_neighbor(
        "lr0",
        "lr0-public",
        Ipv4Addr::new(203, 0, 113, 254),
        "02:00:cb:00:71:fe",
    );

    t.ecmp_route(
        "lr0",
        "192.0.2.0/24",
        Ipv4Addr::new(192, 0, 2, 80),
        &["203.0.113.253", "203.0.113.254"],
    );
    t.nat(
        "lr0",
        "snat",
        Ipv4Addr::new(203, 0, 113, 1),
        &["172.16.255.128/26"],
    );
    t.nat(
        "lr0",
        "dnat_and_snat",
        Ipv4Addr::new(203, 0, 113, 10),
        &["172.16.255.130", "dmz-vm1", "02:ac:10:ff:00:10"],
    );
    t.services = vec![Service::Tcp(80), Service::Icmp];
    t.ct_states = vec!["new", "est,rpl", "est"];
    t
}

/// Every topology of the differential test.
pub fn all() -> Vec<Topology> {
    vec![
        seed(),
        acl_stateless(),
        acl_stateful(),
        load_balancers(),
        ipv6(),
        gateway(),
    ]
}
