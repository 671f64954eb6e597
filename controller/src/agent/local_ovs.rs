//! The local Open_vSwitch database, read the way ovn-controller reads it: the chassis name
//! (`external_ids:system-id`), `ovn-remote`, `ovn-encap-type`, `ovn-encap-ip`,
//! `ovn-monitor-all`, `hostname`, and every Interface's `external_ids:iface-id`. Only ovsdb-server is needed
//! for this, not ovs-vswitchd.

use std::collections::BTreeMap;

use tokio::sync::watch;

use crate::ovsdb::{
    Client, ClientConfig, Counters, Database, DbChange, Monitor, MonitorSink, Remotes, RowView,
    TableMonitor,
};

/// What the local Open_vSwitch DB says about this host.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LocalOvs {
    /// False until the first snapshot arrived.
    pub synced: bool,
    pub system_id: Option<String>,
    pub hostname: Option<String>,
    pub ovn_remote: Option<String>,
    pub encap_type: Option<String>,
    pub encap_ip: Option<String>,
    /// `ovn-monitor-all=true`: replicate every SB row, not only the local datapaths'.
    pub monitor_all: bool,
    /// Interface name → `external_ids:iface-id`.
    pub iface_ids: BTreeMap<String, String>,
}

fn external_id(row: &RowView<'_>, key: &str) -> Option<String> {
    row.get("external_ids")
        .pairs()
        .iter()
        .find(|(k, _)| k.as_str() == Some(key))
        .and_then(|(_, v)| v.as_str())
        .map(str::to_owned)
}

impl LocalOvs {
    /// Reads the replica of the two monitored tables.
    pub fn from_db(db: &Database) -> LocalOvs {
        let mut local = LocalOvs {
            synced: true,
            ..LocalOvs::default()
        };
        if let Some((_, row)) = db.table("Open_vSwitch").and_then(|t| t.rows().next()) {
            local.system_id = external_id(&row, "system-id");
            local.hostname = external_id(&row, "hostname");
            local.ovn_remote = external_id(&row, "ovn-remote");
            local.encap_type = external_id(&row, "ovn-encap-type");
            local.encap_ip = external_id(&row, "ovn-encap-ip");
            local.monitor_all = external_id(&row, "ovn-monitor-all").as_deref() == Some("true");
        }
        if let Some(interfaces) = db.table("Interface") {
            for (_, row) in interfaces.rows() {
                let name = row
                    .get("name")
                    .atoms()
                    .first()
                    .and_then(|a| a.as_str())
                    .map(str::to_owned);
                if let (Some(name), Some(iface_id)) = (name, external_id(&row, "iface-id")) {
                    local.iface_ids.insert(name, iface_id);
                }
            }
        }
        local
    }
}

struct Sink(watch::Sender<LocalOvs>);

impl MonitorSink for Sink {
    fn apply(&mut self, db: &Database, _change: DbChange<'_>, _counters: &Counters) {
        let local = LocalOvs::from_db(db);
        self.0.send_if_modified(|current| {
            let changed = *current != local;
            *current = local;
            changed
        });
    }
}

/// Starts monitoring the Open_vSwitch DB at `remotes`; the receiver always holds the
/// latest view (reconnects are the client's business).
pub fn start(remotes: Remotes) -> (Client, watch::Receiver<LocalOvs>) {
    let (tx, rx) = watch::channel(LocalOvs::default());
    let tables = vec![
        TableMonitor::new("Open_vSwitch", &["external_ids"]),
        TableMonitor::new("Interface", &["name", "external_ids"]),
    ];
    let client = Client::start(
        ClientConfig::new(remotes, "Open_vSwitch"),
        Some(Monitor {
            tables,
            sink: Box::new(Sink(tx)),
        }),
    );
    (client, rx)
}
