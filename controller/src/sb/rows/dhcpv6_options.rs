use crate::ovsdb::{RowView, Uuid};
use crate::sb::table::SbRow;
use crate::sb::validate::{self as v, RowError};

/// How a DHCPv6 option's value is encoded on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dhcpv6OptionType {
    Ipv6,
    Str,
    Mac,
    Domain,
}

impl Dhcpv6OptionType {
    /// The schema's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Dhcpv6OptionType::Ipv6 => "ipv6",
            Dhcpv6OptionType::Str => "str",
            Dhcpv6OptionType::Mac => "mac",
            Dhcpv6OptionType::Domain => "domain",
        }
    }
}

/// A DHCPv6 option ovn-controller can encode (ovn-sb(5) DHCPv6_Options), for
/// `put_dhcpv6_opts(...)`. Keyed by `name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dhcpv6Options {
    pub uuid: Uuid,
    pub name: String,
    pub code: u8,
    pub option_type: Dhcpv6OptionType,
}

impl SbRow for Dhcpv6Options {
    const TABLE: &'static str = "DHCPv6_Options";
    const COLUMNS: &'static [&'static str] = &["name", "code", "type"];
    type Key = String;

    fn decode(uuid: Uuid, r: &RowView<'_>) -> Result<Dhcpv6Options, RowError> {
        // `domain` is in newer schemas (domain_search encoding).
        let option_type = match v::string(r, "type")?.as_str() {
            "ipv6" => Dhcpv6OptionType::Ipv6,
            "str" => Dhcpv6OptionType::Str,
            "mac" => Dhcpv6OptionType::Mac,
            "domain" => Dhcpv6OptionType::Domain,
            other => {
                return Err(RowError::BadValue {
                    column: "type",
                    value: other.to_owned(),
                    expected: "a DHCPv6_Options type",
                });
            }
        };
        Ok(Dhcpv6Options {
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
