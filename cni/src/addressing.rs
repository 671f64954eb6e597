//! What a container's interface gets, read back from the Northbound (OVN is the IPAM):
//! MAC and IPv4 from the port (`dynamic_addresses` for `dynamic`), the prefix from the
//! switch's `other_config:subnet`, gateway, MTU and DNS from the switch's DHCP options or
//! its router port. Pure functions of NB rows.

use std::net::Ipv4Addr;

use crate::{
    nb::{DhcpOptions, Lsp, View},
    spec::{Dns, Ipv4Net, parse_mac},
};

/// The container interface's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addressing {
    pub mac: [u8; 6],
    pub address: Ipv4Net,
    pub gateway: Option<Ipv4Addr>,
    /// `None`: use the uplink's.
    pub mtu: Option<u32>,
    pub dns: Dns,
}

/// Why a port has no usable address yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Missing {
    /// `dynamic` and ovn-northd has not filled `dynamic_addresses` yet.
    NotYetAllocated,
    /// The port has a MAC but no IPv4 (the switch has no `other_config:subnet`).
    NoIpv4(String),
    Malformed(String),
}

/// The port's `MAC IPv4` pair: from `dynamic_addresses` when `addresses` asks OVN to
/// allocate any part, else from `addresses`.
pub fn port_mac_ip(lsp: &Lsp) -> Result<([u8; 6], Ipv4Addr), Missing> {
    let first = lsp.addresses.first().map(String::as_str).unwrap_or("");
    let text = if first.split_whitespace().any(|w| w == "dynamic") {
        lsp.dynamic_addresses
            .as_deref()
            .ok_or(Missing::NotYetAllocated)?
    } else {
        first
    };
    let mut words = text.split_whitespace();
    let mac = words
        .next()
        .and_then(parse_mac)
        .ok_or_else(|| Missing::Malformed(format!("{}: no MAC in {text:?}", lsp.name)))?;
    let ip = words
        .filter_map(|w| w.split('/').next()?.parse::<Ipv4Addr>().ok())
        .next()
        .ok_or_else(|| Missing::NoIpv4(lsp.name.clone()))?;
    Ok((mac, ip))
}

/// The switch's `other_config:subnet`, if it has one (OVN's IPAM for `dynamic`).
pub fn switch_subnet(view: &View) -> Option<Ipv4Net> {
    view.switch
        .as_ref()?
        .other_config
        .get("subnet")?
        .parse::<Ipv4Net>()
        .ok()
        .map(|n| n.network())
}

/// The DHCP options whose `cidr` holds `ip`.
pub fn dhcp_for(view: &View, ip: Ipv4Addr) -> Option<&DhcpOptions> {
    view.dhcp
        .iter()
        .find(|d| d.cidr.parse::<Ipv4Net>().is_ok_and(|n| n.contains(ip)))
}

/// Everything the container interface needs, for port `lsp` on `view`'s switch.
/// `static_prefix` is the prefix of an address the runtime gave.
pub fn addressing(
    view: &View,
    lsp: &Lsp,
    static_prefix: Option<u8>,
) -> Result<Addressing, Missing> {
    let (mac, ip) = port_mac_ip(lsp)?;
    let dhcp = dhcp_for(view, ip);
    let router_net = view
        .router_ports
        .iter()
        .flat_map(|p| &p.networks)
        .filter_map(|n| n.parse::<Ipv4Net>().ok())
        .find(|n| n.contains(ip));
    let prefix = static_prefix
        .or_else(|| {
            switch_subnet(view)
                .filter(|n| n.contains(ip))
                .map(|n| n.prefix)
        })
        .or_else(|| {
            dhcp.and_then(|d| d.cidr.parse::<Ipv4Net>().ok())
                .map(|n| n.prefix)
        })
        .or(router_net.map(|n| n.prefix))
        .unwrap_or(32);
    let gateway = dhcp
        .and_then(|d| d.options.get("router"))
        .and_then(|r| r.parse().ok())
        .or(router_net.map(|n| n.addr))
        .filter(|gw| *gw != ip);
    let mtu = dhcp
        .and_then(|d| d.options.get("mtu"))
        .and_then(|m| m.parse().ok());
    let dns = Dns {
        nameservers: dhcp
            .and_then(|d| d.options.get("dns_server"))
            .map(|s| {
                s.trim_matches(|c| c == '{' || c == '}')
                    .split(',')
                    .filter_map(|a| a.trim().parse().ok())
                    .collect()
            })
            .unwrap_or_default(),
        domain: dhcp
            .and_then(|d| d.options.get("domain_name"))
            .map(|d| d.trim_matches('"').to_owned())
            .filter(|d| !d.is_empty()),
    };
    Ok(Addressing {
        mac,
        address: Ipv4Net { addr: ip, prefix },
        gateway,
        mtu,
        dns,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use ovnest_ovsdb::Uuid;

    use super::*;
    use crate::nb::{RouterPort, Switch};

    fn lsp(addresses: &[&str], dynamic: Option<&str>) -> Lsp {
        Lsp {
            uuid: Uuid::ZERO,
            name: "p".into(),
            parent_name: Some("vm".into()),
            tag: Some(3),
            tag_request: None,
            kind: String::new(),
            addresses: addresses.iter().map(|a| (*a).to_owned()).collect(),
            dynamic_addresses: dynamic.map(str::to_owned),
            port_security: vec![],
            up: None,
            options: BTreeMap::new(),
            external_ids: BTreeMap::new(),
        }
    }

    fn view(dhcp: bool) -> View {
        let mut other_config = BTreeMap::new();
        other_config.insert("subnet".to_owned(), "172.16.255.128/26".to_owned());
        View {
            switch: Some(Switch {
                uuid: Uuid::ZERO,
                name: "dmz".into(),
                ports: vec![],
                other_config,
                external_ids: BTreeMap::new(),
            }),
            parent_exists: true,
            children: vec![],
            dhcp: if dhcp {
                vec![DhcpOptions {
                    uuid: Uuid::ZERO,
                    cidr: "172.16.255.128/26".into(),
                    options: [
                        ("router", "172.16.255.129"),
                        ("mtu", "1442"),
                        ("dns_server", "{8.8.8.8, 1.1.1.1}"),
                        ("domain_name", "\"example.org\""),
                    ]
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
                    external_ids: BTreeMap::new(),
                }]
            } else {
                vec![]
            },
            router_lsps: vec![],
            router_ports: vec![RouterPort {
                uuid: Uuid::ZERO,
                name: "lr0-dmz".into(),
                mac: "02:ac:10:ff:01:29".into(),
                networks: vec!["172.16.255.190/26".into()],
            }],
        }
    }

    #[test]
    fn dynamic_addresses_with_dhcp_options() {
        let p = lsp(&["dynamic"], Some("0a:00:00:00:00:07 172.16.255.140"));
        let a = addressing(&view(true), &p, None).unwrap();
        assert_eq!(a.mac, [0x0a, 0, 0, 0, 0, 7]);
        assert_eq!(a.address.to_string(), "172.16.255.140/26");
        assert_eq!(a.gateway, Some("172.16.255.129".parse().unwrap()));
        assert_eq!(a.mtu, Some(1442));
        assert_eq!(a.dns.nameservers.len(), 2);
        assert_eq!(a.dns.domain.as_deref(), Some("example.org"));
    }

    #[test]
    fn router_port_is_the_gateway_without_dhcp_options() {
        let p = lsp(&["02:ac:10:ff:01:33 172.16.255.133"], None);
        let a = addressing(&view(false), &p, None).unwrap();
        assert_eq!(a.gateway, Some("172.16.255.190".parse().unwrap()));
        assert_eq!(a.address.prefix, 26);
        assert_eq!(a.mtu, None);
    }

    #[test]
    fn what_is_missing_is_said() {
        assert_eq!(
            addressing(&view(true), &lsp(&["dynamic"], None), None),
            Err(Missing::NotYetAllocated)
        );
        assert_eq!(
            addressing(
                &view(true),
                &lsp(&["dynamic"], Some("0a:00:00:00:00:07")),
                None
            ),
            Err(Missing::NoIpv4("p".into()))
        );
        assert!(matches!(
            addressing(&view(true), &lsp(&["garbage"], None), None),
            Err(Missing::Malformed(_))
        ));
        // "dynamic IP": MAC from OVN, address as given.
        let p = lsp(
            &["dynamic 172.16.255.150"],
            Some("0a:00:00:00:00:09 172.16.255.150"),
        );
        assert_eq!(
            addressing(&view(true), &p, None).unwrap().address.addr,
            "172.16.255.150".parse::<Ipv4Addr>().unwrap()
        );
    }
}
