use crate::ovsdb::{RowView, Uuid};
use crate::sb::table::SbRow;
use crate::sb::validate::{self as v, RowError};

/// How a DHCPv4 option's value is encoded on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DhcpOptionType {
    Bool,
    Uint8,
    Uint16,
    Uint32,
    Ipv4,
    StaticRoutes,
    Str,
    HostId,
    Domains,
}

impl DhcpOptionType {
    /// The schema's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            DhcpOptionType::Bool => "bool",
            DhcpOptionType::Uint8 => "uint8",
            DhcpOptionType::Uint16 => "uint16",
            DhcpOptionType::Uint32 => "uint32",
            DhcpOptionType::Ipv4 => "ipv4",
            DhcpOptionType::StaticRoutes => "static_routes",
            DhcpOptionType::Str => "str",
            DhcpOptionType::HostId => "host_id",
            DhcpOptionType::Domains => "domains",
        }
    }
}

/// A DHCPv4 option ovn-controller can encode (ovn-sb(5) DHCP_Options): the names in
/// `put_dhcp_opts(...)` resolve to a code and a type here. Keyed by `name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhcpOptions {
    pub uuid: Uuid,
    pub name: String,
    pub code: u8,
    pub option_type: DhcpOptionType,
}

impl SbRow for DhcpOptions {
    const TABLE: &'static str = "DHCP_Options";
    const COLUMNS: &'static [&'static str] = &["name", "code", "type"];
    type Key = String;

    fn decode(uuid: Uuid, r: &RowView<'_>) -> Result<DhcpOptions, RowError> {
        let option_type = match v::string(r, "type")?.as_str() {
            "bool" => DhcpOptionType::Bool,
            "uint8" => DhcpOptionType::Uint8,
            "uint16" => DhcpOptionType::Uint16,
            "uint32" => DhcpOptionType::Uint32,
            "ipv4" => DhcpOptionType::Ipv4,
            "static_routes" => DhcpOptionType::StaticRoutes,
            "str" => DhcpOptionType::Str,
            "host_id" => DhcpOptionType::HostId,
            "domains" => DhcpOptionType::Domains,
            other => {
                return Err(RowError::BadValue {
                    column: "type",
                    value: other.to_owned(),
                    expected: "a DHCP_Options type",
                });
            }
        };
        Ok(DhcpOptions {
            uuid,
            name: v::string(r, "name")?,
            code: v::integer_in(r, "code", 0, 254)? as u8,
            option_type,
        })
    }

    fn uuid(&self) -> Uuid {
        self.uuid
    }

    fn key(&self) -> String {
        self.name.clone()
    }
}
