use std::collections::BTreeMap;

use crate::ovsdb::{RowView, Uuid};
use crate::sb::addr::{IpNet, MacAddr, PortAddresses};
use crate::sb::table::{Refs, SbRow};
use crate::sb::validate::{self as v, RowError};

use super::DatapathBinding;

/// A logical port and where it is bound (ovn-sb(5) Port_Binding), every column. Keyed by
/// `logical_port`: northd re-creates the row (new `uuid`) when `parent_port` is set or
/// cleared.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PortBinding {
    pub uuid: Uuid,
    pub logical_port: String,
    /// `""` for a VIF; `patch`, `l3gateway`, `localnet`, `localport`, `l2gateway`, `vtep`,
    /// `chassisredirect`, `virtual`, `external`, `remote` otherwise.
    pub port_type: String,
    /// For a `chassisredirect` port: where it may be bound, by priority.
    pub gateway_chassis: Vec<Uuid>,
    pub ha_chassis_group: Option<Uuid>,
    /// `peer` (patch), `network_name` (localnet), `requested-chassis`, `virtual-ip`, ...
    pub options: BTreeMap<String, String>,
    pub datapath: Uuid,
    /// 1..=32767, unique within the datapath.
    pub tunnel_key: u32,
    /// For a nested (container) port: the VIF it rides on.
    pub parent_port: Option<String>,
    /// For a nested port: the VLAN tag that identifies it on the parent, 1..=4095.
    pub tag: Option<u16>,
    /// For a `virtual` port: the port currently owning its virtual IP.
    pub virtual_parent: Option<String>,
    pub chassis: Option<Uuid>,
    pub additional_chassis: Vec<Uuid>,
    pub encap: Option<Uuid>,
    pub additional_encap: Vec<Uuid>,
    pub mirror_rules: Vec<Uuid>,
    pub mac: Vec<PortAddresses>,
    pub port_security: Vec<PortAddresses>,
    /// For a port facing a router: the router's NAT addresses to announce (GARP).
    pub nat_addresses: Vec<NatAddresses>,
    pub up: Option<bool>,
    pub external_ids: BTreeMap<String, String>,
    pub requested_chassis: Option<Uuid>,
    pub requested_additional_chassis: Vec<Uuid>,
}

impl PortBinding {
    /// A nested container port: has a parent VIF and a tag.
    pub fn is_nested(&self) -> bool {
        self.parent_port.is_some()
    }

    /// For a `patch` port: the port on the other datapath (`options:peer`).
    pub fn peer(&self) -> Option<&str> {
        self.options.get("peer").map(String::as_str)
    }
}

impl SbRow for PortBinding {
    const TABLE: &'static str = "Port_Binding";
    const COLUMNS: &'static [&'static str] = &[
        "logical_port",
        "type",
        "gateway_chassis",
        "ha_chassis_group",
        "options",
        "datapath",
        "tunnel_key",
        "parent_port",
        "tag",
        "virtual_parent",
        "chassis",
        "additional_chassis",
        "encap",
        "additional_encap",
        "mirror_rules",
        "mac",
        "port_security",
        "nat_addresses",
        "up",
        "external_ids",
        "requested_chassis",
        "requested_additional_chassis",
    ];
    const DEPENDS_ON: &'static [&'static str] = &[DatapathBinding::TABLE];
    type Key = String;

    fn decode(uuid: Uuid, r: &RowView<'_>) -> Result<PortBinding, RowError> {
        Ok(PortBinding {
            uuid,
            logical_port: v::string(r, "logical_port")?,
            port_type: v::string(r, "type")?,
            gateway_chassis: v::uuids(r, "gateway_chassis")?,
            ha_chassis_group: v::opt_uuid(r, "ha_chassis_group")?,
            options: v::string_map(r, "options")?,
            datapath: v::opt_uuid(r, "datapath")?.unwrap_or(Uuid::ZERO),
            tunnel_key: v::tunnel_key(v::integer(r, "tunnel_key")?, 32767)?,
            parent_port: v::opt_string(r, "parent_port")?,
            tag: v::tag(v::opt_integer(r, "tag")?)?,
            virtual_parent: v::opt_string(r, "virtual_parent")?,
            chassis: v::opt_uuid(r, "chassis")?,
            additional_chassis: v::uuids(r, "additional_chassis")?,
            encap: v::opt_uuid(r, "encap")?,
            additional_encap: v::uuids(r, "additional_encap")?,
            mirror_rules: v::uuids(r, "mirror_rules")?,
            mac: v::addresses("mac", v::strings(r, "mac")?)?,
            port_security: v::addresses("port_security", v::strings(r, "port_security")?)?,
            nat_addresses: v::strings(r, "nat_addresses")?
                .iter()
                .map(|s| NatAddresses::parse(s))
                .collect::<Result<_, _>>()?,
            up: v::opt_bool(r, "up")?,
            external_ids: v::string_map(r, "external_ids")?,
            requested_chassis: v::opt_uuid(r, "requested_chassis")?,
            requested_additional_chassis: v::uuids(r, "requested_additional_chassis")?,
        })
    }

    fn uuid(&self) -> Uuid {
        self.uuid
    }

    fn key(&self) -> String {
        self.logical_port.clone()
    }

    /// The datapath must exist (Datapath_Binding is always monitored in full).
    fn check(&self, refs: &Refs<'_>) -> Result<(), RowError> {
        if refs.monitored::<DatapathBinding>()
            && !refs
                .table::<DatapathBinding>()
                .contains_uuid(&self.datapath)
        {
            return Err(RowError::DanglingDatapath(self.datapath));
        }
        Ok(())
    }
}

/// One `nat_addresses` entry (ovn-sb(5)): `MAC IP...`, optionally followed by
/// `is_chassis_resident("PORT")` (announce only where that port is resident).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NatAddresses {
    pub mac: MacAddr,
    pub ips: Vec<IpNet>,
    pub chassis_resident: Option<String>,
}

impl NatAddresses {
    pub fn parse(entry: &str) -> Result<NatAddresses, RowError> {
        let bad = |expected| RowError::BadValue {
            column: "nat_addresses",
            value: entry.to_owned(),
            expected,
        };
        let (addresses, resident) = match entry.find("is_chassis_resident") {
            Some(at) => (
                &entry[..at],
                Some(&entry[at + "is_chassis_resident".len()..]),
            ),
            None => (entry, None),
        };
        let mut words = addresses.split_ascii_whitespace();
        let mac = words
            .next()
            .and_then(|w| w.parse().ok())
            .ok_or_else(|| bad("MAC IP... [is_chassis_resident(\"PORT\")]"))?;
        let ips = words
            .map(|w| w.parse::<IpNet>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|()| bad("MAC followed by IP addresses"))?;
        let chassis_resident = match resident {
            None => None,
            Some(rest) => Some(
                rest.trim()
                    .strip_prefix('(')
                    .and_then(|r| r.strip_suffix(')'))
                    .map(str::trim)
                    .and_then(|r| r.strip_prefix('"'))
                    .and_then(|r| r.strip_suffix('"'))
                    .filter(|p| !p.is_empty() && !p.contains('"'))
                    .ok_or_else(|| bad("is_chassis_resident(\"PORT\") at the end"))?
                    .to_owned(),
            ),
        };
        Ok(NatAddresses {
            mac,
            ips,
            chassis_resident,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nat_addresses_as_northd_writes_them() {
        let n = NatAddresses::parse(
            r#"0a:00:00:00:00:01 172.16.0.100 172.16.0.101 is_chassis_resident("cr-lr0-public")"#,
        )
        .unwrap();
        assert_eq!(n.mac.to_string(), "0a:00:00:00:00:01");
        assert_eq!(n.ips.len(), 2);
        assert_eq!(n.chassis_resident.as_deref(), Some("cr-lr0-public"));
        let plain = NatAddresses::parse("0a:00:00:00:00:01 10.0.0.1").unwrap();
        assert_eq!(plain.chassis_resident, None);
        for bad in [
            "",
            "10.0.0.1",
            "0a:00:00:00:00:01 nonsense",
            r#"0a:00:00:00:00:01 10.0.0.1 is_chassis_resident(cr-x)"#,
            r#"0a:00:00:00:00:01 10.0.0.1 is_chassis_resident("cr-x""#,
        ] {
            assert!(NatAddresses::parse(bad).is_err(), "{bad:?}");
        }
    }
}
