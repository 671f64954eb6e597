use crate::ovsdb::{RowView, Uuid};
use crate::sb::table::SbRow;
use crate::sb::validate::{self as v, RowError};

/// A named set of logical ports a match refers to as `@name` (ovn-sb(5) Port_Group).
/// northd writes one per NB port group and datapath, named `<dp tunnel_key>_<name>`.
/// Keyed by `name`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PortGroup {
    pub uuid: Uuid,
    pub name: String,
    /// Logical port names.
    pub ports: Vec<String>,
}

impl SbRow for PortGroup {
    const TABLE: &'static str = "Port_Group";
    const COLUMNS: &'static [&'static str] = &["name", "ports"];
    type Key = String;

    fn decode(uuid: Uuid, r: &RowView<'_>) -> Result<PortGroup, RowError> {
        Ok(PortGroup {
            uuid,
            name: v::string(r, "name")?,
            ports: v::strings(r, "ports")?,
        })
    }

    fn uuid(&self) -> Uuid {
        self.uuid
    }

    fn key(&self) -> String {
        self.name.clone()
    }
}
