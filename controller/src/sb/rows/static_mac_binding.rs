use std::net::IpAddr;

use crate::ovsdb::{RowView, Uuid};
use crate::sb::addr::MacAddr;
use crate::sb::table::SbRow;
use crate::sb::validate::{self as v, RowError};

/// A neighbour configured by the operator (ovn-sb(5) Static_MAC_Binding). Keyed by
/// (logical_port, ip).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticMacBinding {
    pub uuid: Uuid,
    pub logical_port: String,
    pub ip: IpAddr,
    pub mac: MacAddr,
    /// Takes precedence over a learnt MAC_Binding for the same IP.
    pub override_dynamic_mac: bool,
    pub datapath: Uuid,
}

impl SbRow for StaticMacBinding {
    const TABLE: &'static str = "Static_MAC_Binding";
    const COLUMNS: &'static [&'static str] = &[
        "logical_port",
        "ip",
        "mac",
        "override_dynamic_mac",
        "datapath",
    ];
    type Key = (String, IpAddr);

    fn decode(uuid: Uuid, r: &RowView<'_>) -> Result<StaticMacBinding, RowError> {
        Ok(StaticMacBinding {
            uuid,
            logical_port: v::string(r, "logical_port")?,
            ip: v::ip("ip", &v::string(r, "ip")?)?,
            mac: v::mac("mac", &v::string(r, "mac")?)?,
            override_dynamic_mac: v::boolean(r, "override_dynamic_mac")?,
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
