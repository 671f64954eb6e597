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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sb::{Chassis, DatapathBinding, PortBinding};

    fn uuid(n: u8) -> ovsdb::Uuid {
        format!("00000000-0000-0000-0000-0000000000{n:02x}")
            .parse()
            .unwrap()
    }

    fn port(name: &str, key: u32, mac: &str, chassis: Option<u8>) -> PortBinding {
        PortBinding {
            uuid: uuid(key as u8),
            logical_port: name.into(),
            mac: vec![mac.parse().unwrap()],
            tunnel_key: key,
            datapath: uuid(0xd0),
            chassis: chassis.map(uuid),
            ..PortBinding::default()
        }
    }

    fn monitor(n: u8, ip: &str, port: &str, protocol: Option<&str>) -> ServiceMonitor {
        ServiceMonitor {
            uuid: uuid(n),
            ip: ip.into(),
            protocol: protocol.map(Into::into),
            port: 8080,
            logical_port: port.into(),
            src_mac: "0a:00:00:00:00:01".into(),
            src_ip: "172.16.255.150".into(),
            ..ServiceMonitor::default()
        }
    }

    /// pinctrl's selection: rows of ports bound here, the MAC of the address entry
    /// holding the backend's IP (or of an entry without addresses), the rest left out.
    #[test]
    fn rows_of_ports_bound_here_with_their_mac() {
        let mut snap = Snapshot::default();
        snap.insert(Chassis {
            uuid: uuid(0xc1),
            name: "hv1".into(),
            ..Chassis::default()
        });
        snap.insert(DatapathBinding {
            uuid: uuid(0xd0),
            tunnel_key: 7,
            ..DatapathBinding::default()
        });
        snap.insert(port(
            "c51",
            5,
            "02:ac:10:ff:01:33 172.16.255.133",
            Some(0xc1),
        ));
        snap.insert(port("c52", 6, "02:ac:10:ff:01:34", Some(0xc1)));
        snap.insert(port(
            "elsewhere",
            8,
            "02:ac:10:ff:01:35 172.16.255.135",
            Some(0xc2),
        ));
        snap.insert(port(
            "other-ip",
            9,
            "02:ac:10:ff:01:36 172.16.255.136",
            Some(0xc1),
        ));
        snap.insert(monitor(1, "172.16.255.133", "c51", None));
        snap.insert(monitor(2, "172.16.255.134", "c52", Some("udp")));
        snap.insert(monitor(3, "172.16.255.135", "elsewhere", None));
        snap.insert(monitor(4, "172.16.255.133", "other-ip", None));
        snap.insert(monitor(5, "not an address", "c51", None));
        snap.insert(monitor(6, "172.16.255.133", "no-such-port", None));

        let mut got_specs = specs(&snap, "hv1");
        got_specs.sort_by_key(|s| s.port_key);
        let got: Vec<_> = got_specs
            .iter()
            .map(|s| (s.dp_key, s.port_key, s.ip.to_string(), s.protocol, s.mac[5]))
            .collect();
        assert_eq!(
            got,
            vec![
                (7, 5, "172.16.255.133".into(), Protocol::Tcp, 0x33),
                (7, 6, "172.16.255.134".into(), Protocol::Udp, 0x34),
            ]
        );
        assert_eq!(got_specs[0].uuid, uuid(1).to_string());
        assert_eq!(got_specs[0].src_mac, [0x0a, 0, 0, 0, 0, 1]);
        assert!(specs(&snap, "hv2").is_empty(), "no such chassis");
    }
}
