use crate::ovsdb::{RowView, Uuid};
use crate::sb::addr::MacAddr;
use crate::sb::table::SbRow;
use crate::sb::validate::{self as v, RowError};

/// A MAC learnt on a switch port with `unknown` addresses (ovn-sb(5) FDB): what
/// `get_fdb`/`lookup_fdb` read and `put_fdb` writes. Keyed by (dp_key, mac).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fdb {
    pub uuid: Uuid,
    pub mac: MacAddr,
    /// The datapath's tunnel_key.
    pub dp_key: u32,
    /// The port's tunnel_key.
    pub port_key: u32,
}

impl SbRow for Fdb {
    const TABLE: &'static str = "FDB";
    const COLUMNS: &'static [&'static str] = &["mac", "dp_key", "port_key"];
    type Key = (u32, MacAddr);

    fn decode(uuid: Uuid, r: &RowView<'_>) -> Result<Fdb, RowError> {
        Ok(Fdb {
            uuid,
            mac: v::mac("mac", &v::string(r, "mac")?)?,
            dp_key: v::integer_in(r, "dp_key", 1, 16_777_215)? as u32,
            port_key: v::integer_in(r, "port_key", 1, 16_777_215)? as u32,
        })
    }

    fn uuid(&self) -> Uuid {
        self.uuid
    }

    fn key(&self) -> (u32, MacAddr) {
        (self.dp_key, self.mac)
    }
}
