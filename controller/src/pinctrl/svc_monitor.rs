//! The agent's side of the load-balancer health checks: which Service_Monitor rows this
//! chassis probes (pinctrl's `sync_svc_monitors`: the row's `logical_port` is bound
//! here, its address parses, and the port has a MAC for it) and the `status` write
//! (an update of the row northd created, never an insert).

use std::net::IpAddr;

use ovnest_datapath::pinctrl::svc_monitor::{Protocol, SvcMonitorSpec, SvcStatusUpdate};

use super::Written;
use crate::ovsdb::{self, Clause, Datum, Function, Operation, OperationResult, RowData};
use crate::sb::{MacAddr, PortAddresses, ServiceMonitor, Snapshot};

/// The Service_Monitor rows of `snapshot` whose backend port is bound to chassis
/// `chassis` (by name), resolved as pinctrl resolves them. Rows it cannot probe (no
/// such port, no MAC for the address, a source of another family) are left out.
pub fn specs(snapshot: &Snapshot, chassis: &str) -> Vec<SvcMonitorSpec> {
    let Some(ours) = snapshot.chassis(chassis).map(|c| c.uuid) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for row in snapshot.table::<ServiceMonitor>().iter() {
        let Some(pb) = snapshot.port_binding(&row.logical_port) else {
            continue;
        };
        if pb.chassis != Some(ours) {
            continue;
        }
        let Some(dp) = snapshot.datapath(&pb.datapath) else {
            continue;
        };
        let (Ok(ip), Ok(src_ip)) = (row.ip.parse::<IpAddr>(), row.src_ip.parse::<IpAddr>()) else {
            continue;
        };
        let Ok(src_mac) = row.src_mac.parse::<MacAddr>() else {
            continue;
        };
        // The MAC of the address entry holding the backend's IP; an entry without
        // addresses lends its MAC (pinctrl's fallback).
        let mac = pb.mac.iter().find_map(|a| match a {
            PortAddresses::Static { mac, ips } if ips.iter().any(|n| n.addr == ip) => Some(*mac),
            PortAddresses::Static { mac, ips } if ips.is_empty() => Some(*mac),
            _ => None,
        });
        let Some(mac) = mac else {
            continue;
        };
        out.push(SvcMonitorSpec {
            uuid: row.uuid.to_string(),
            dp_key: dp.tunnel_key,
            port_key: pb.tunnel_key,
            ip,
            port: row.port,
            protocol: match row.protocol.as_deref() {
                Some("udp") => Protocol::Udp,
                _ => Protocol::Tcp,
            },
            mac: mac.0,
            src_mac: src_mac.0,
            src_ip,
            options: row.options.clone(),
            status: row.status.clone(),
        });
    }
    out
}

/// Writes a backend's status into its Service_Monitor row, when the row exists and
/// says otherwise (one conditional update: no insert, no write of an unchanged row).
pub async fn write_status(
    client: &ovsdb::Client,
    update: &SvcStatusUpdate,
) -> Result<Written, ovsdb::Error> {
    let uuid: ovsdb::Uuid = update
        .uuid
        .parse()
        .map_err(|e: ovsdb::UuidError| ovsdb::Error::Protocol(e.0))?;
    let status = update.status.as_str();
    let mut row = RowData::new();
    row.insert("status".into(), Datum::atom(status));
    let result = client
        .transact(vec![Operation::Update {
            table: "Service_Monitor".into(),
            conditions: vec![
                Clause::eq("_uuid", Datum::atom(uuid)),
                Clause::new("status", Function::Ne, Datum::atom(status)),
            ],
            row,
        }])
        .await?;
    Ok(match result.first() {
        Some(OperationResult::Count(n)) if *n > 0 => Written::Updated,
        _ => Written::Unchanged,
    })
}
