//! This chassis's tunnels (ovn-controller's encaps.c): whether the datapath can terminate
//! the Encap the chassis registers, and on which underlay interface.
//!
//! ovn-sb(5) requires every Chassis to list at least one Encap, so a chassis that cannot
//! terminate tunnels cannot simply leave it out. Instead it registers itself alone in a
//! transport zone of its own: ovn-controller (encaps.c, `chassis_tzones_overlap`) builds no
//! tunnel to a chassis whose transport zones it shares none of, so no other chassis sends
//! a frame this one would lose; ports bound here are simply unreachable from elsewhere, as
//! they really are, and the local ports are served as usual.

use std::{
    collections::BTreeMap,
    net::{IpAddr, Ipv4Addr},
};

use ovnest_common::PortKey;

use super::config::DatapathMode;
use crate::sb::Snapshot;

/// Prefix of the transport zone a chassis without tunnels registers itself alone in.
pub const NO_TUNNELS_ZONE_PREFIX: &str = "ovnest-no-tunnels-";

/// Whether this chassis terminates tunnels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tunnels {
    /// Geneve is terminated on `underlay`, the interface holding the Encap's IP.
    Terminated { underlay: String, ifindex: u32 },
    /// No tunnels: the chassis serves its local ports only, and says why.
    None { reason: String },
}

impl Tunnels {
    /// The transport zones to register: none (every chassis tunnels to this one) when
    /// tunnels are terminated, else a zone no other chassis is in.
    pub fn transport_zones(&self, chassis: &str) -> Vec<String> {
        match self {
            Tunnels::Terminated { .. } => Vec::new(),
            Tunnels::None { .. } => vec![format!("{NO_TUNNELS_ZONE_PREFIX}{chassis}")],
        }
    }

    /// One line for the status and the log.
    pub fn describe(&self) -> String {
        match self {
            Tunnels::Terminated { underlay, .. } => format!("geneve on {underlay}"),
            Tunnels::None { reason } => format!("none: {reason}"),
        }
    }
}

/// Whether `datapath` can terminate tunnels of `encap_type` (None), or why not.
pub fn datapath_limit(datapath: DatapathMode, encap_type: &str) -> Option<String> {
    if encap_type != "geneve" {
        return Some(format!(
            "encap type {encap_type} is not supported (only geneve)"
        ));
    }
    match datapath {
        DatapathMode::Xdp => Some("--datapath xdp has no logical pipeline, so no tunnels".into()),
        // The userspace datapath encapsulates and decapsulates; XDP sends Geneve up.
        DatapathMode::Afxdp | DatapathMode::Hybrid => None,
    }
}

/// Decides this chassis's tunnels from the datapath's ability (`limit`, from
/// [`datapath_limit`]) and the interface holding the encap IP (`holder`).
pub fn assess(encap_ip: &str, limit: Option<String>, holder: Option<(String, u32)>) -> Tunnels {
    if let Some(reason) = limit {
        return Tunnels::None { reason };
    }
    match holder {
        Some((underlay, ifindex)) => Tunnels::Terminated { underlay, ifindex },
        None => Tunnels::None {
            reason: format!("no interface holds the encap IP {encap_ip}"),
        },
    }
}

/// The interface (name, ifindex) that holds `ip`, if any; loopback does not count (a
/// tunnel needs a wire to other chassis).
pub fn interface_holding(ip: IpAddr) -> Option<(String, u32)> {
    if ip.is_loopback() || ip.is_unspecified() {
        return None;
    }
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs writes a list it allocated into `list`, freed below.
    if unsafe { libc::getifaddrs(&mut list) } != 0 {
        return None;
    }
    let mut found = None;
    let mut cursor = list;
    while !cursor.is_null() {
        // SAFETY: `cursor` is a node of the list getifaddrs returned, not yet freed.
        let entry = unsafe { &*cursor };
        cursor = entry.ifa_next;
        if entry.ifa_addr.is_null() || entry.ifa_name.is_null() {
            continue;
        }
        // SAFETY: ifa_addr points to a sockaddr whose family says its real type; the
        // casts below follow the family.
        let address = unsafe {
            match i32::from((*entry.ifa_addr).sa_family) {
                libc::AF_INET => {
                    let sin = &*(entry.ifa_addr as *const libc::sockaddr_in);
                    IpAddr::from(u32::from_be(sin.sin_addr.s_addr).to_be_bytes())
                }
                libc::AF_INET6 => {
                    let sin6 = &*(entry.ifa_addr as *const libc::sockaddr_in6);
                    IpAddr::from(sin6.sin6_addr.s6_addr)
                }
                _ => continue,
            }
        };
        if address == ip {
            // SAFETY: ifa_name is a NUL-terminated string owned by the list.
            let name = unsafe { std::ffi::CStr::from_ptr(entry.ifa_name) }
                .to_string_lossy()
                .into_owned();
            let Ok(cname) = std::ffi::CString::new(name.as_str()) else {
                continue;
            };
            // SAFETY: `cname` is a valid NUL-terminated string.
            let index = unsafe { libc::if_nametoindex(cname.as_ptr()) };
            if index != 0 {
                found = Some((name, index));
                break;
            }
        }
    }
    // SAFETY: `list` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(list) };
    found
}

/// Another chassis this one would tunnel to, from its Chassis and Encap rows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteChassis {
    pub name: String,
    pub ip: Ipv4Addr,
    /// The Encap's `options:csum` (OVS's default when absent: no checksum).
    pub csum: bool,
}

/// The other chassis, numbered from 1 in name order, and the ports bound on them: what
/// the datapath's tunnel table needs besides the underlay's addresses. As encaps.c does:
/// a chassis sharing no transport zone with this one (`zones`), or an interconnection
/// chassis (`is-remote`), gets no tunnel; only IPv4 geneve Encaps on port 6081 are
/// used. Chassis left out are returned with the reason, for the log.
pub fn remote_chassis(
    snapshot: &Snapshot,
    this: &str,
    zones: &[String],
) -> (Vec<RemoteChassis>, Vec<(PortKey, u16)>, Vec<String>) {
    let mut peers = Vec::new();
    let mut skipped = Vec::new();
    let mut number = BTreeMap::new();
    for chassis in snapshot.all_chassis() {
        if chassis.name == this {
            continue;
        }
        let overlap = (chassis.transport_zones.is_empty() && zones.is_empty())
            || chassis.transport_zones.iter().any(|z| zones.contains(z));
        if !overlap {
            skipped.push(format!("{}: no common transport zone", chassis.name));
            continue;
        }
        if chassis
            .other_config
            .get("is-remote")
            .is_some_and(|v| v == "true")
        {
            skipped.push(format!("{}: an interconnection chassis", chassis.name));
            continue;
        }
        let encap = snapshot.encaps_of(chassis).find(|e| {
            e.encap_type == "geneve"
                && e.options.get("dst_port").is_none_or(|p| p == "6081")
                && e.ip.parse::<Ipv4Addr>().is_ok()
        });
        let Some(encap) = encap else {
            skipped.push(format!(
                "{}: no geneve Encap with an IPv4 address on port 6081",
                chassis.name
            ));
            continue;
        };
        let Ok(ip) = encap.ip.parse::<Ipv4Addr>() else {
            continue;
        };
        peers.push(RemoteChassis {
            name: chassis.name.clone(),
            ip,
            csum: encap.options.get("csum").is_some_and(|v| v == "true"),
        });
        number.insert(chassis.uuid, peers.len() as u16);
    }
    let mut ports = Vec::new();
    for pb in snapshot.port_bindings() {
        // A chassisredirect port is the router's business on its gateway chassis.
        if pb.port_type == "chassisredirect" {
            continue;
        }
        let (Some(chassis), Some(dp)) = (pb.chassis, snapshot.datapath(&pb.datapath)) else {
            continue;
        };
        if let Some(&n) = number.get(&chassis) {
            ports.push((
                PortKey {
                    datapath: dp.tunnel_key,
                    port: pb.tunnel_key,
                },
                n,
            ));
        }
    }
    (peers, ports, skipped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_tunnels_isolates_the_chassis_in_a_zone_of_its_own() {
        let t = assess("127.0.0.1", None, None);
        assert_eq!(
            t,
            Tunnels::None {
                reason: "no interface holds the encap IP 127.0.0.1".into()
            }
        );
        assert_eq!(t.transport_zones("hv1"), ["ovnest-no-tunnels-hv1"]);
        assert!(t.describe().starts_with("none: "));

        let limited = assess("10.0.0.1", Some("why".into()), Some(("und".into(), 7)));
        assert_eq!(limited.describe(), "none: why");

        let up = assess("10.0.0.1", None, Some(("und".into(), 7)));
        assert_eq!(up.transport_zones("hv1"), Vec::<String>::new());
        assert_eq!(up.describe(), "geneve on und");
    }

    #[test]
    fn only_geneve_through_the_logical_pipeline() {
        assert!(datapath_limit(DatapathMode::Xdp, "geneve").is_some());
        assert!(datapath_limit(DatapathMode::Hybrid, "vxlan").is_some());
    }

    #[test]
    fn remote_chassis_and_their_ports_as_encaps_c_picks_them() {
        use crate::ovsdb::Uuid;
        use crate::sb::{Chassis, DatapathBinding, Encap, PortBinding};
        let u = |n: u128| -> Uuid { format!("00000000-0000-0000-0000-{n:012x}").parse().unwrap() };
        let mut snap = Snapshot::default();
        let chassis = |n: u128, name: &str, zones: &[&str], encap: u128| Chassis {
            uuid: u(n),
            name: name.into(),
            encaps: vec![u(encap)],
            transport_zones: zones.iter().map(|z| (*z).to_owned()).collect(),
            ..Chassis::default()
        };
        let encap = |n: u128, name: &str, ty: &str, ip: &str, csum: bool| Encap {
            uuid: u(n),
            encap_type: ty.into(),
            ip: ip.into(),
            chassis_name: name.into(),
            options: if csum {
                [("csum".to_owned(), "true".to_owned())].into()
            } else {
                Default::default()
            },
        };
        snap.insert(chassis(1, "hv1", &[], 11));
        snap.insert(encap(11, "hv1", "geneve", "10.99.0.1", true));
        snap.insert(chassis(2, "hv2", &[], 12));
        snap.insert(encap(12, "hv2", "geneve", "10.99.0.2", true));
        snap.insert(chassis(3, "lonely", &["ovnest-no-tunnels-lonely"], 13));
        snap.insert(encap(13, "lonely", "geneve", "10.99.0.3", true));
        snap.insert(chassis(4, "vx", &[], 14));
        snap.insert(encap(14, "vx", "vxlan", "10.99.0.4", false));
        snap.insert(chassis(5, "hv5", &[], 15));
        snap.insert(encap(15, "hv5", "geneve", "10.99.0.5", false));
        snap.insert(DatapathBinding {
            uuid: u(100),
            tunnel_key: 7,
            ..DatapathBinding::default()
        });
        let port = |n: u128, name: &str, key: u32, chassis: Option<u128>| PortBinding {
            uuid: u(n),
            logical_port: name.into(),
            datapath: u(100),
            tunnel_key: key,
            chassis: chassis.map(u),
            ..PortBinding::default()
        };
        snap.insert(port(201, "here", 1, Some(1)));
        snap.insert(port(202, "on-hv2", 2, Some(2)));
        snap.insert(port(203, "on-lonely", 3, Some(3)));
        snap.insert(port(204, "on-hv5", 4, Some(5)));
        snap.insert(port(205, "unbound", 5, None));

        let (peers, ports, skipped) = remote_chassis(&snap, "hv1", &[]);
        assert_eq!(
            peers,
            [
                RemoteChassis {
                    name: "hv2".into(),
                    ip: Ipv4Addr::new(10, 99, 0, 2),
                    csum: true
                },
                RemoteChassis {
                    name: "hv5".into(),
                    ip: Ipv4Addr::new(10, 99, 0, 5),
                    csum: false
                },
            ]
        );
        let key = |port| PortKey { datapath: 7, port };
        assert_eq!(ports, [(key(2), 1), (key(4), 2)]);
        assert_eq!(skipped.len(), 2, "{skipped:?}");
        assert!(
            skipped
                .iter()
                .any(|s| s.starts_with("lonely: no common transport zone"))
        );
        assert!(skipped.iter().any(|s| s.starts_with("vx: no geneve")));
    }

    #[test]
    fn loopback_is_no_underlay() {
        assert_eq!(interface_holding("127.0.0.1".parse().unwrap()), None);
        assert_eq!(interface_holding("::1".parse().unwrap()), None);
        // An address no interface has.
        assert_eq!(interface_holding("192.0.2.77".parse().unwrap()), None);
    }
}
