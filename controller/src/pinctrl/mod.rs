//! The agent's side of pinctrl: the Southbound writes the datapath's pinctrl buffers
//! (`put_arp`/`put_nd` → MAC_Binding, `put_fdb` → FDB), transacted as ovn-controller's
//! main thread writes them (`mac_binding_add_to_sb`, `run_put_fdb`): insert the row,
//! or update its MAC/port when (logical_port, ip) / (dp_key, mac) already exists; an
//! unchanged row is left alone (no write, no timestamp bump).
//!
//! [`spawn_writer`] runs the loop on a thread of its own: it blocks on the datapath's
//! [`SbQueue`] until writes are due (pinctrl's `notify_pinctrl_main` and its commit
//! delays), and transacts each on the agent's runtime. A write that fails (the SB
//! away, a race with another chassis) is logged and counted; pinctrl learns the binding
//! again from the next packet, as ovn-controller does.
//!
//! The load-balancer health checks ([`svc_monitor`]): the agent hands the datapath's
//! pinctrl the Service_Monitor rows of backends bound here, and the writer updates a
//! row's `status` when pinctrl's probes change it.

pub mod svc_monitor;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ovnest_datapath::pinctrl::{FdbUpsert, MacBindingUpsert, SbQueue, SbRequest};

use crate::ovsdb::{self, Clause, Client, Datum, Operation, OperationResult, RowData};

/// What the writer did, for `ovnest status` and the metrics.
#[derive(Debug, Default)]
pub struct WriterCounters {
    /// `ovnest_pinctrl_sb_writes_total{outcome="inserted"}`.
    pub inserted: AtomicU64,
    /// `{outcome="updated"}`.
    pub updated: AtomicU64,
    /// `{outcome="unchanged"}`: the row already said so.
    pub unchanged: AtomicU64,
    /// `{outcome="failed"}`.
    pub failed: AtomicU64,
}

/// How a write went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    Inserted,
    Updated,
    Unchanged,
}

fn row_uuid(row: &serde_json::Map<String, serde_json::Value>) -> Option<ovsdb::Uuid> {
    let v = row.get("_uuid")?.as_array()?;
    v.get(1)?.as_str()?.parse().ok()
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Inserts or updates one MAC_Binding row.
pub async fn write_mac_binding(
    client: &Client,
    mb: &MacBindingUpsert,
) -> Result<Written, ovsdb::Error> {
    let key = vec![
        Clause::eq("logical_port", Datum::atom(mb.logical_port.as_str())),
        Clause::eq("ip", Datum::atom(mb.ip.as_str())),
    ];
    let found = client
        .transact(vec![Operation::Select {
            table: "MAC_Binding".into(),
            conditions: key.clone(),
            columns: Some(vec!["_uuid".into(), "mac".into()]),
        }])
        .await?;
    let existing = match found.first() {
        Some(OperationResult::Rows(rows)) => rows.first().cloned(),
        _ => None,
    };
    match existing {
        Some(row) => {
            if row.get("mac").and_then(|m| m.as_str()) == Some(mb.mac.as_str()) {
                return Ok(Written::Unchanged);
            }
            let conditions = match row_uuid(&row) {
                Some(u) => vec![Clause::eq("_uuid", Datum::atom(u))],
                None => key,
            };
            let mut row = RowData::new();
            row.insert("mac".into(), Datum::atom(mb.mac.as_str()));
            row.insert("timestamp".into(), Datum::atom(now_ms()));
            client
                .transact(vec![Operation::Update {
                    table: "MAC_Binding".into(),
                    conditions,
                    row,
                }])
                .await?;
            Ok(Written::Updated)
        }
        None => {
            let datapath: ovsdb::Uuid = mb
                .datapath
                .to_string()
                .parse()
                .map_err(|e: ovsdb::UuidError| ovsdb::Error::Protocol(e.0))?;
            let mut row = RowData::new();
            row.insert("logical_port".into(), Datum::atom(mb.logical_port.as_str()));
            row.insert("ip".into(), Datum::atom(mb.ip.as_str()));
            row.insert("mac".into(), Datum::atom(mb.mac.as_str()));
            row.insert("datapath".into(), Datum::atom(datapath));
            row.insert("timestamp".into(), Datum::atom(now_ms()));
            client
                .transact(vec![Operation::Insert {
                    table: "MAC_Binding".into(),
                    row,
                    uuid_name: None,
                }])
                .await?;
            Ok(Written::Inserted)
        }
    }
}

/// Inserts or updates one FDB row.
pub async fn write_fdb(client: &Client, fdb: &FdbUpsert) -> Result<Written, ovsdb::Error> {
    let key = vec![
        Clause::eq("dp_key", Datum::atom(i64::from(fdb.dp_key))),
        Clause::eq("mac", Datum::atom(fdb.mac.as_str())),
    ];
    let found = client
        .transact(vec![Operation::Select {
            table: "FDB".into(),
            conditions: key.clone(),
            columns: Some(vec!["_uuid".into(), "port_key".into()]),
        }])
        .await?;
    let existing = match found.first() {
        Some(OperationResult::Rows(rows)) => rows.first().cloned(),
        _ => None,
    };
    let mut row = RowData::new();
    row.insert("port_key".into(), Datum::atom(i64::from(fdb.port_key)));
    match existing {
        Some(r) if r.get("port_key").and_then(|p| p.as_i64()) == Some(i64::from(fdb.port_key)) => {
            Ok(Written::Unchanged)
        }
        Some(_) => {
            client
                .transact(vec![Operation::Update {
                    table: "FDB".into(),
                    conditions: key,
                    row,
                }])
                .await?;
            Ok(Written::Updated)
        }
        None => {
            row.insert("dp_key".into(), Datum::atom(i64::from(fdb.dp_key)));
            row.insert("mac".into(), Datum::atom(fdb.mac.as_str()));
            client
                .transact(vec![Operation::Insert {
                    table: "FDB".into(),
                    row,
                    uuid_name: None,
                }])
                .await?;
            Ok(Written::Inserted)
        }
    }
}

/// Writes one request.
pub async fn write(client: &Client, req: &SbRequest) -> Result<Written, ovsdb::Error> {
    match req {
        SbRequest::MacBinding(mb) => write_mac_binding(client, mb).await,
        SbRequest::Fdb(f) => write_fdb(client, f).await,
        SbRequest::ServiceMonitorStatus(s) => svc_monitor::write_status(client, s).await,
    }
}

/// The writer thread and its stop flag.
pub struct Writer {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    pub counters: Arc<WriterCounters>,
}

impl Writer {
    /// Stops the thread (within one poll interval) and waits for it.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// How often the writer looks at its stop flag while nothing is due.
const POLL: Duration = Duration::from_millis(200);

/// Starts the thread that writes `queue`'s requests through `client` on `rt`.
pub fn spawn_writer(queue: SbQueue, client: Client, rt: tokio::runtime::Handle) -> Writer {
    let stop = Arc::new(AtomicBool::new(false));
    let counters = Arc::new(WriterCounters::default());
    let (s, c) = (stop.clone(), counters.clone());
    let thread = std::thread::Builder::new()
        .name("pinctrl-sb".into())
        .spawn(move || {
            while !s.load(Ordering::Relaxed) {
                for req in queue.wait_due(POLL) {
                    match rt.block_on(write(&client, &req)) {
                        Ok(Written::Inserted) => c.inserted.fetch_add(1, Ordering::Relaxed),
                        Ok(Written::Updated) => c.updated.fetch_add(1, Ordering::Relaxed),
                        Ok(Written::Unchanged) => c.unchanged.fetch_add(1, Ordering::Relaxed),
                        Err(e) => {
                            tracing::warn!("pinctrl: Southbound write {req:?} failed: {e}");
                            c.failed.fetch_add(1, Ordering::Relaxed)
                        }
                    };
                }
            }
        })
        .ok();
    Writer {
        stop,
        thread,
        counters,
    }
}
