use std::net::IpAddr;

use crate::ovsdb::{RowView, Uuid};
use crate::sb::addr::MacAddr;
use crate::sb::table::SbRow;
use crate::sb::validate::{self as v, RowError};

/// A neighbour learnt by a router port (ovn-sb(5) MAC_Binding): what `get_arp`/`get_nd`
/// look up, and what `put_arp`/`put_nd` write. Keyed by (logical_port, ip).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MacBinding {
    pub uuid: Uuid,
    pub logical_port: String,
    pub ip: IpAddr,
    pub mac: MacAddr,
    /// When it was learnt or refreshed (ms since the epoch), for aging.
    pub timestamp: i64,
    pub datapath: Uuid,
}

impl SbRow for MacBinding {
    const TABLE: &'static str = "MAC_Binding";
    const COLUMNS: &'static [&'static str] =
        &["logical_port", "ip", "mac", "timestamp", "datapath"];
    type Key = (String, IpAddr);

    fn decode(uuid: Uuid, r: &RowView<'_>) -> Result<MacBinding, RowError> {
        Ok(MacBinding {
            uuid,
            logical_port: v::string(r, "logical_port")?,
            ip: v::ip("ip", &v::string(r, "ip")?)?,
            mac: v::mac("mac", &v::string(r, "mac")?)?,
            timestamp: v::integer(r, "timestamp")?,
            datapath: v::opt_uuid(r, "datapath")?.unwrap_or(Uuid::ZERO),
        })
    }

    fn uuid(&self) -> Uuid {
        self.uuid
    }

    fn key(&self) -> (String, IpAddr) {
        (self.logical_port.clone(), self.ip)
    }
}
