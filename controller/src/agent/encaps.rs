//! This chassis's tunnels (ovn-controller's encaps.c): whether the datapath can terminate
//! the Encap the chassis registers, and on which underlay interface.
//!
//! ovn-sb(5) requires every Chassis to list at least one Encap, so a chassis that cannot
//! terminate tunnels cannot simply leave it out. Instead it registers itself alone in a
//! transport zone of its own: ovn-controller (encaps.c, `chassis_tzones_overlap`) builds no
//! tunnel to a chassis whose transport zones it shares none of, so no other chassis sends
//! a frame this one would lose; ports bound here are simply unreachable from elsewhere, as
//! they really are, and the local ports are served as usual.

use std::net::IpAddr;

use super::config::DatapathMode;

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
        // Until the userspace datapath encapsulates and decapsulates, nothing terminates
        // Geneve: advertise nothing.
        DatapathMode::Afxdp | DatapathMode::Hybrid => {
            Some("this datapath does not terminate geneve yet".into())
        }
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
    fn loopback_is_no_underlay() {
        assert_eq!(interface_holding("127.0.0.1".parse().unwrap()), None);
        assert_eq!(interface_holding("::1".parse().unwrap()), None);
        // An address no interface has.
        assert_eq!(interface_holding("192.0.2.77".parse().unwrap()), None);
    }
}
