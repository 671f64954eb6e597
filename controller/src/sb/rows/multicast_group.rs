use crate::ovsdb::{RowView, Uuid};
use crate::sb::table::SbRow;
use crate::sb::validate::{self as v, RowError};

/// A set of ports an `output` to a group name reaches (ovn-sb(5) Multicast_Group):
/// `_MC_flood`, `_MC_unknown`, `_MC_mrouter_flood`, ... Keyed by (datapath, name).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MulticastGroup {
    pub uuid: Uuid,
    pub datapath: Uuid,
    pub name: String,
    /// 32768..=65535: the egress key in tunnel metadata.
    pub tunnel_key: u16,
    /// Port_Binding rows (resolve with `snap.table::<PortBinding>().by_uuid(..)`).
    pub ports: Vec<Uuid>,
}

impl SbRow for MulticastGroup {
    const TABLE: &'static str = "Multicast_Group";
    const COLUMNS: &'static [&'static str] = &["datapath", "name", "tunnel_key", "ports"];
    type Key = (Uuid, String);

    fn decode(uuid: Uuid, r: &RowView<'_>) -> Result<MulticastGroup, RowError> {
        Ok(MulticastGroup {
            uuid,
            datapath: v::opt_uuid(r, "datapath")?.unwrap_or(Uuid::ZERO),
            name: v::string(r, "name")?,
            tunnel_key: v::integer_in(r, "tunnel_key", 32768, 65535)? as u16,
            ports: v::uuids(r, "ports")?,
        })
    }

    fn uuid(&self) -> Uuid {
        self.uuid
    }

    fn key(&self) -> (Uuid, String) {
        (self.datapath, self.name.clone())
    }
}
