use std::collections::BTreeMap;

use crate::ovsdb::{RowView, Uuid};
use crate::sb::table::SbRow;
use crate::sb::validate::{self as v, RowError};

/// A load-balancer backend health check (ovn-sb(5) Service_Monitor): the chassis where
/// `logical_port` is bound probes it and writes `status`. Keyed by UUID.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServiceMonitor {
    pub uuid: Uuid,
    pub ip: String,
    /// `tcp` or `udp`; none means tcp.
    pub protocol: Option<String>,
    pub port: u16,
    pub logical_port: String,
    pub src_mac: String,
    pub src_ip: String,
    /// `online`, `offline` or `error`; none until probed.
    pub status: Option<String>,
    /// `interval`, `timeout`, `success_count`, `failure_count`.
    pub options: BTreeMap<String, String>,
    pub external_ids: BTreeMap<String, String>,
}

impl SbRow for ServiceMonitor {
    const TABLE: &'static str = "Service_Monitor";
    const COLUMNS: &'static [&'static str] = &[
        "ip",
        "protocol",
        "port",
        "logical_port",
        "src_mac",
        "src_ip",
        "status",
        "options",
        "external_ids",
    ];
    type Key = Uuid;

    fn decode(uuid: Uuid, r: &RowView<'_>) -> Result<ServiceMonitor, RowError> {
        let protocol = v::opt_string(r, "protocol")?
            .map(|p| v::one_of("protocol", p, &["tcp", "udp"], "tcp or udp"))
            .transpose()?;
        let status = v::opt_string(r, "status")?
            .map(|s| {
                v::one_of(
                    "status",
                    s,
                    &["online", "offline", "error"],
                    "online, offline or error",
                )
            })
            .transpose()?;
        Ok(ServiceMonitor {
            uuid,
            ip: v::string(r, "ip")?,
            protocol,
            port: v::integer_in(r, "port", 0, 65535)? as u16,
            logical_port: v::string(r, "logical_port")?,
            src_mac: v::string(r, "src_mac")?,
            src_ip: v::string(r, "src_ip")?,
            status,
            options: v::string_map(r, "options")?,
            external_ids: v::string_map(r, "external_ids")?,
        })
    }

    fn uuid(&self) -> Uuid {
        self.uuid
    }

    fn key(&self) -> Uuid {
        self.uuid
    }
}
