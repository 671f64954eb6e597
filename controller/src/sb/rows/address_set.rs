use crate::ovsdb::{RowView, Uuid};
use crate::sb::table::SbRow;
use crate::sb::validate::{self as v, RowError};

/// A named set of addresses a match refers to as `$name` (ovn-sb(5) Address_Set),
/// including northd's per-port-group `$pg_ip4`/`$pg_ip6`. The entries are OVN constants
/// (IPs, CIDRs, masked values, MACs), parsed by the expression parser. Keyed by `name`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AddressSet {
    pub uuid: Uuid,
    pub name: String,
    pub addresses: Vec<String>,
}

impl SbRow for AddressSet {
    const TABLE: &'static str = "Address_Set";
    const COLUMNS: &'static [&'static str] = &["name", "addresses"];
    type Key = String;

    fn decode(uuid: Uuid, r: &RowView<'_>) -> Result<AddressSet, RowError> {
        Ok(AddressSet {
            uuid,
            name: v::string(r, "name")?,
            addresses: v::strings(r, "addresses")?,
        })
    }

    fn uuid(&self) -> Uuid {
        self.uuid
    }

    fn key(&self) -> String {
        self.name.clone()
    }
}
