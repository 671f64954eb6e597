//! The Southbound rows the pipeline is compiled from, as plain data: the caller (the
//! agent's SB replica, or a test) fills a [`Database`]; the library never talks to
//! OVSDB itself.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

/// An OVSDB row UUID.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Uuid(pub u128);

impl Uuid {
    /// The first 32 bits, which ovn-trace prints as a flow's short id.
    pub fn short(self) -> u32 {
        (self.0 >> 96) as u32
    }
}

impl fmt::Display for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.0;
        write!(
            f,
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            (v >> 96) as u32,
            (v >> 80) as u16,
            (v >> 64) as u16,
            (v >> 48) as u16,
            v & 0xffff_ffff_ffff
        )
    }
}

impl fmt::Debug for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for Uuid {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for Uuid {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Uuid, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl FromStr for Uuid {
    type Err = String;
    fn from_str(s: &str) -> Result<Uuid, String> {
        let b = s.as_bytes();
        if b.len() != 36 || [8, 13, 18, 23].iter().any(|&i| b[i] != b'-') {
            return Err(format!("{s}: not a UUID"));
        }
        let hex: String = s.chars().filter(|&c| c != '-').collect();
        u128::from_str_radix(&hex, 16)
            .map(Uuid)
            .map_err(|_| format!("{s}: not a UUID"))
    }
}

/// Datapath_Binding.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Datapath {
    pub uuid: Uuid,
    pub tunnel_key: u32,
    /// `external_ids:name`.
    pub name: Option<String>,
    /// `external_ids:name2`.
    pub name2: Option<String>,
    /// `external_ids:logical-switch` or `logical-router`.
    pub nb_uuid: Option<Uuid>,
    /// Whether `external_ids:logical-router` is set.
    pub is_router: bool,
}

/// Port_Binding: the columns the pipeline reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Port {
    pub uuid: Uuid,
    pub name: String,
    pub datapath: Uuid,
    pub tunnel_key: u32,
    /// `""` for a VIF, `patch`, `router`, `localnet`, `chassisredirect`, `l3gateway`, ...
    pub ty: String,
    /// `options:peer` (patch and l3gateway ports).
    pub peer: Option<String>,
    /// `options:distributed-port` (chassisredirect ports).
    pub distributed_port: Option<String>,
    /// `external_ids:name`.
    pub name2: Option<String>,
    pub port_security: Vec<String>,
}

/// Multicast_Group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct McGroup {
    pub datapath: Uuid,
    pub name: String,
    pub tunnel_key: u32,
    /// Port_Binding UUIDs.
    pub ports: Vec<Uuid>,
}

/// Logical_Flow, with its datapath group expanded. The strings are shared: with the
/// agent's Southbound replica (match, actions), across rows (stage names and sources, when
/// the caller interns them) and with the compiled pipeline.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct LogicalFlow {
    pub uuid: Uuid,
    /// `logical_datapath`, plus the members of `logical_dp_group`.
    pub datapaths: Vec<Uuid>,
    pub egress: bool,
    pub table_id: u8,
    pub priority: u16,
    pub match_: Arc<str>,
    pub actions: Arc<str>,
    /// `external_ids:stage-name`.
    pub stage_name: Option<Arc<str>>,
    /// `external_ids:source`.
    pub source: Option<Arc<str>>,
}

/// MAC_Binding (and Static_MAC_Binding).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct MacBinding {
    pub logical_port: String,
    pub ip: String,
    pub mac: String,
    pub datapath: Uuid,
}

/// FDB.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Fdb {
    pub mac: String,
    pub dp_key: u32,
    pub port_key: u32,
}

/// DHCP_Options / DHCPv6_Options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct DhcpOption {
    pub name: String,
    pub code: u32,
    pub ty: String,
}

/// Load_Balancer: its VIPs, for the load-balancer hairpin checks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct LoadBalancer {
    pub name: String,
    /// `vips` keys: `IP[:PORT]`.
    pub vips: Vec<String>,
    /// `options:hairpin_snat_ip` split on spaces: the source a backend reaching its
    /// own VIP sees instead of the VIP (one address per family).
    #[cfg_attr(feature = "serde", serde(default))]
    pub hairpin_snat_ip: Vec<String>,
}

/// Everything the pipeline compiles from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Database {
    pub datapaths: Vec<Datapath>,
    pub ports: Vec<Port>,
    pub mcgroups: Vec<McGroup>,
    pub flows: Vec<LogicalFlow>,
    pub mac_bindings: Vec<MacBinding>,
    pub fdbs: Vec<Fdb>,
    pub dhcp_options: Vec<DhcpOption>,
    pub dhcpv6_options: Vec<DhcpOption>,
    /// Address_Set: name and addresses.
    pub address_sets: Vec<(String, Vec<String>)>,
    /// Port_Group: name and port names.
    pub port_groups: Vec<(String, Vec<String>)>,
    pub load_balancers: Vec<LoadBalancer>,
}

/// One parsed port-security or addresses entry (OVN's `struct lport_addresses`):
/// `MAC [IP[/PLEN]...]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct LportAddresses {
    pub mac: u64,
    pub ipv4: Vec<u32>,
    pub ipv6: Vec<u128>,
}

impl LportAddresses {
    /// Parses an entry; `None` when it does not start with a MAC (OVN ignores it).
    pub fn parse(s: &str) -> Option<LportAddresses> {
        let mut words = s.split_whitespace();
        let mac = crate::value::parse_mac(words.next()?)?;
        let mut out = LportAddresses {
            mac,
            ..Default::default()
        };
        for w in words {
            let addr = w.split_once('/').map_or(w, |(a, _)| a);
            if let Ok(v4) = addr.parse::<std::net::Ipv4Addr>() {
                out.ipv4.push(u32::from(v4));
            } else if let Ok(v6) = addr.parse::<std::net::Ipv6Addr>() {
                out.ipv6.push(u128::from(v6));
            } else {
                return None;
            }
        }
        Some(out)
    }
}

/// The IPv6 link-local address derived from a MAC (EUI-64).
pub fn link_local(mac: u64) -> u128 {
    let b = mac.to_be_bytes();
    let eui = [b[2] ^ 0x02, b[3], b[4], 0xff, 0xfe, b[5], b[6], b[7]];
    (0xfe80u128 << 112) | u128::from(u64::from_be_bytes(eui))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_round_trip() {
        let s = "59ddbe98-8c1a-4e9e-9a61-3d8c5b4f7a10";
        let u: Uuid = s.parse().unwrap();
        assert_eq!(u.to_string(), s);
        assert_eq!(format!("{:08x}", u.short()), "59ddbe98");
        assert!("nope".parse::<Uuid>().is_err());
    }

    #[test]
    fn port_security_entries() {
        let a = LportAddresses::parse("02:ac:10:ff:01:33 172.16.255.133 fe80::1/64").unwrap();
        assert_eq!(a.mac, 0x02ac_10ff_0133);
        assert_eq!(a.ipv4, vec![0xac10_ff85]);
        assert_eq!(a.ipv6.len(), 1);
        assert!(LportAddresses::parse("router").is_none());
        assert_eq!(
            link_local(0x02ac_10ff_0133),
            u128::from(
                "fe80::ac:10ff:feff:133"
                    .parse::<std::net::Ipv6Addr>()
                    .unwrap()
            )
        );
    }
}
