//! From the Southbound to the logical pipeline (ovn-controller's lflow.c): the tables
//! the pipeline reads, monitored, and turned into the plain rows
//! [`ovnest_logical::db::Database`] compiles from.

use std::collections::HashMap;
use std::time::Duration;

use ovnest_logical::db::{
    Database, Datapath, DhcpOption, Fdb, LoadBalancer, LogicalFlow, MacBinding, McGroup, Port,
    Uuid as LUuid,
};

use crate::ovsdb::{
    self, Atom, Client, ClientConfig, Counters, Datum, DbChange, Monitor, MonitorSink, Remotes,
    RowView, TableMonitor, Uuid,
};

/// The tables and columns the pipeline reads.
pub const TABLES: &[(&str, &[&str])] = &[
    ("Datapath_Binding", &["tunnel_key", "external_ids"]),
    (
        "Port_Binding",
        &[
            "logical_port",
            "datapath",
            "tunnel_key",
            "type",
            "options",
            "external_ids",
            "port_security",
        ],
    ),
    (
        "Multicast_Group",
        &["datapath", "name", "tunnel_key", "ports"],
    ),
    (
        "Logical_Flow",
        &[
            "logical_datapath",
            "logical_dp_group",
            "pipeline",
            "table_id",
            "priority",
            "match",
            "actions",
            "external_ids",
        ],
    ),
    ("Logical_DP_Group", &["datapaths"]),
    ("MAC_Binding", &["logical_port", "ip", "mac", "datapath"]),
    ("Static_MAC_Binding", &["logical_port", "ip", "mac"]),
    ("FDB", &["mac", "dp_key", "port_key"]),
    ("DHCP_Options", &["name", "code", "type"]),
    ("DHCPv6_Options", &["name", "code", "type"]),
    ("Address_Set", &["name", "addresses"]),
    ("Port_Group", &["name", "ports"]),
    ("Load_Balancer", &["name", "vips"]),
];

/// Monitors for [`TABLES`].
pub fn monitors() -> Vec<TableMonitor> {
    TABLES
        .iter()
        .map(|(t, cols)| TableMonitor::new(*t, cols))
        .collect()
}

fn luuid(u: &Uuid) -> LUuid {
    LUuid(u128::from_be_bytes(*u.as_bytes()))
}

fn s(row: &RowView<'_>, col: &str) -> String {
    row.get(col)
        .atoms()
        .first()
        .and_then(Atom::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn int(row: &RowView<'_>, col: &str) -> i64 {
    row.get(col)
        .atoms()
        .first()
        .and_then(Atom::as_integer)
        .unwrap_or_default()
}

fn uuid(row: &RowView<'_>, col: &str) -> Option<Uuid> {
    row.get(col).atoms().first().and_then(Atom::as_uuid)
}

fn strings(row: &RowView<'_>, col: &str) -> Vec<String> {
    row.get(col)
        .atoms()
        .iter()
        .filter_map(|a| a.as_str().map(str::to_owned))
        .collect()
}

fn map_get(d: &Datum, key: &str) -> Option<String> {
    d.pairs()
        .iter()
        .find(|(k, _)| k.as_str() == Some(key))
        .and_then(|(_, v)| v.as_str().map(str::to_owned))
}

/// Converts the raw replica of [`TABLES`] into the pipeline's input. Rows that reference
/// missing rows are left out here and reported by the compiler's checks downstream.
pub fn database(raw: &ovsdb::Database) -> Database {
    let mut db = Database::default();
    let rows = |t: &str| raw.table(t).into_iter().flat_map(|t| t.rows());

    for (u, r) in rows("Datapath_Binding") {
        let ids = r.get("external_ids");
        let nb = map_get(ids, "logical-switch").or_else(|| map_get(ids, "logical-router"));
        db.datapaths.push(Datapath {
            uuid: luuid(&u),
            tunnel_key: int(&r, "tunnel_key") as u32,
            name: map_get(ids, "name"),
            name2: map_get(ids, "name2"),
            nb_uuid: nb.and_then(|n| n.parse().ok()),
            is_router: map_get(ids, "logical-router").is_some(),
        });
    }
    let mut port_names: HashMap<Uuid, String> = HashMap::new();
    let mut port_dps: HashMap<String, Uuid> = HashMap::new();
    for (u, r) in rows("Port_Binding") {
        let name = s(&r, "logical_port");
        let dp = uuid(&r, "datapath").unwrap_or_default();
        port_names.insert(u, name.clone());
        port_dps.insert(name.clone(), dp);
        let opts = r.get("options");
        db.ports.push(Port {
            uuid: luuid(&u),
            name,
            datapath: luuid(&dp),
            tunnel_key: int(&r, "tunnel_key") as u32,
            ty: s(&r, "type"),
            peer: map_get(opts, "peer"),
            distributed_port: map_get(opts, "distributed-port"),
            name2: map_get(r.get("external_ids"), "name"),
            port_security: strings(&r, "port_security"),
        });
    }
    for (_, r) in rows("Multicast_Group") {
        db.mcgroups.push(McGroup {
            datapath: luuid(&uuid(&r, "datapath").unwrap_or_default()),
            name: s(&r, "name"),
            tunnel_key: int(&r, "tunnel_key") as u32,
            ports: r
                .get("ports")
                .atoms()
                .iter()
                .filter_map(Atom::as_uuid)
                .map(|u| luuid(&u))
                .collect(),
        });
    }
    let groups: HashMap<Uuid, Vec<LUuid>> = rows("Logical_DP_Group")
        .map(|(u, r)| {
            let dps = r
                .get("datapaths")
                .atoms()
                .iter()
                .filter_map(Atom::as_uuid)
                .map(|d| luuid(&d))
                .collect();
            (u, dps)
        })
        .collect();
    for (u, r) in rows("Logical_Flow") {
        let mut datapaths: Vec<LUuid> = uuid(&r, "logical_datapath").iter().map(luuid).collect();
        if let Some(g) = uuid(&r, "logical_dp_group").and_then(|g| groups.get(&g)) {
            datapaths.extend(g.iter().copied());
        }
        let ids = r.get("external_ids");
        db.flows.push(LogicalFlow {
            uuid: luuid(&u),
            datapaths,
            egress: s(&r, "pipeline") == "egress",
            table_id: int(&r, "table_id").clamp(0, 255) as u8,
            priority: int(&r, "priority").clamp(0, 65535) as u16,
            match_: s(&r, "match"),
            actions: s(&r, "actions"),
            stage_name: map_get(ids, "stage-name"),
            source: map_get(ids, "source"),
        });
    }
    for (_, r) in rows("MAC_Binding") {
        db.mac_bindings.push(MacBinding {
            logical_port: s(&r, "logical_port"),
            ip: s(&r, "ip"),
            mac: s(&r, "mac"),
            datapath: luuid(&uuid(&r, "datapath").unwrap_or_default()),
        });
    }
    for (_, r) in rows("Static_MAC_Binding") {
        let port = s(&r, "logical_port");
        let Some(dp) = port_dps.get(&port) else {
            continue;
        };
        db.mac_bindings.push(MacBinding {
            datapath: luuid(dp),
            logical_port: port,
            ip: s(&r, "ip"),
            mac: s(&r, "mac"),
        });
    }
    for (_, r) in rows("FDB") {
        db.fdbs.push(Fdb {
            mac: s(&r, "mac"),
            dp_key: int(&r, "dp_key") as u32,
            port_key: int(&r, "port_key") as u32,
        });
    }
    let options = |t: &str| -> Vec<DhcpOption> {
        rows(t)
            .map(|(_, r)| DhcpOption {
                name: s(&r, "name"),
                code: int(&r, "code") as u32,
                ty: s(&r, "type"),
            })
            .collect()
    };
    db.dhcp_options = options("DHCP_Options");
    db.dhcpv6_options = options("DHCPv6_Options");
    for (_, r) in rows("Address_Set") {
        db.address_sets
            .push((s(&r, "name"), strings(&r, "addresses")));
    }
    for (_, r) in rows("Port_Group") {
        db.port_groups.push((s(&r, "name"), strings(&r, "ports")));
    }
    for (_, r) in rows("Load_Balancer") {
        db.load_balancers.push(LoadBalancer {
            name: s(&r, "name"),
            vips: r
                .get("vips")
                .pairs()
                .iter()
                .filter_map(|(k, _)| k.as_str().map(str::to_owned))
                .collect(),
        });
    }
    // Rows by SB order are hash order; sort so compiles are reproducible.
    db.flows.sort_by_key(|f| f.uuid);
    db
}

/// Hands the first full snapshot to a channel.
struct FirstSnapshot(Option<tokio::sync::oneshot::Sender<Database>>);

impl MonitorSink for FirstSnapshot {
    fn apply(&mut self, db: &ovsdb::Database, change: DbChange<'_>, _: &Counters) {
        if matches!(change, DbChange::Reset)
            && let Some(tx) = self.0.take()
        {
            let _ = tx.send(database(db));
        }
    }
}

/// Reads the pipeline's tables from the Southbound at `remotes` once.
pub async fn fetch(remotes: Remotes, timeout: Duration) -> anyhow::Result<Database> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let config = ClientConfig::new(remotes.clone(), crate::sb::DATABASE);
    let client = Client::start(
        config,
        Some(Monitor {
            tables: monitors(),
            sink: Box::new(FirstSnapshot(Some(tx))),
        }),
    );
    let db = tokio::time::timeout(timeout, rx)
        .await
        .map_err(|_| anyhow::anyhow!("{remotes}: no Southbound snapshot within {timeout:?}"))??;
    drop(client);
    Ok(db)
}
