//! The client: one background task per database connection.
//!
//! The task owns the socket, the raw replica and the monitor; [`Client`] handles send it
//! commands over an mpsc channel and get replies over oneshot channels, matched to the
//! server's responses by JSON-RPC id (RFC 7047 §4). On each connection it:
//!
//! 1. fetches the schema (`get_schema`, §4.1.2) and narrows the monitor to what exists;
//! 2. watches `_Server.Database` and declares itself change-aware (`set_db_change_aware`,
//!    ovsdb-server(5)) so a schema change or a cluster member losing the cluster drops the
//!    connection instead of silently going stale;
//! 3. monitors with `monitor_cond_since`, falling back to `monitor_cond` then `monitor` on
//!    "unknown method", resuming from the last transaction id when the server still has it
//!    (found=true), else loading the full snapshot into a fresh replica and handing it to
//!    the sink as a whole (the sink diffs it against what it had);
//! 4. answers the server's `echo` (§4.1.11) and sends its own after `probe_interval` of
//!    silence, reconnecting if that goes unanswered.
//!
//! Any failure (I/O, malformed input, oversized message, probe timeout) ends the
//! connection; the task then reconnects to the next remote after a capped exponential
//! backoff with jitter.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use crate::codec::{CodecError, DEFAULT_MAX_MESSAGE, FrameDecoder};
use crate::condition::MonitorCondition;
use crate::counters::Counters;
use crate::database::{Database, Touched};
use crate::datum::Datum;
use crate::error::Error;
use crate::jsonrpc::{Message, RpcError};
use crate::monitor::{
    MonitorMethod, TableLayout, TableMonitor, TableUpdates, UpdateFormat, layout, requests,
};
use crate::remote::{ReadHalf, Remote, Remotes, WriteHalf};
use crate::schema::{AtomicType, ColumnType, Schema};
use crate::transact::{Operation, OperationResult, parse_results};
use crate::uuid::Uuid;

/// How to reach the server and how patient to be with it.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub remotes: Remotes,
    /// The database to monitor and transact on, e.g. `OVN_Southbound`.
    pub database: String,
    /// Largest message accepted from the server; a larger one drops the connection.
    pub max_message: usize,
    /// Send an `echo` after this long without hearing from the server and reconnect if
    /// another interval passes without an answer. `None` disables probing.
    pub probe_interval: Option<Duration>,
    pub connect_timeout: Duration,
    /// Reconnect delays grow from `backoff_min` to `backoff_max`, each jittered to
    /// 50–100 % so a fleet of agents does not reconnect in lockstep.
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// Key, certificate and CA for `ssl:` remotes.
    pub ssl: Option<crate::SslConfig>,
}

impl ClientConfig {
    pub fn new(remotes: Remotes, database: impl Into<String>) -> ClientConfig {
        ClientConfig {
            remotes,
            database: database.into(),
            max_message: DEFAULT_MAX_MESSAGE,
            probe_interval: Some(Duration::from_secs(5)),
            connect_timeout: Duration::from_secs(5),
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(8),
            ssl: None,
        }
    }
}

/// Receives the replica after every change. Runs on the client task: keep it quick.
pub trait MonitorSink: Send + 'static {
    fn apply(&mut self, db: &Database, change: DbChange<'_>, counters: &Counters);
}

/// What changed in the raw replica.
#[derive(Debug, Clone, Copy)]
pub enum DbChange<'a> {
    /// The replica was replaced by a full snapshot: compare everything.
    Reset,
    /// These rows were inserted, modified or deleted.
    Rows(&'a Touched),
}

/// A monitor to keep running across reconnects.
pub struct Monitor {
    pub tables: Vec<TableMonitor>,
    pub sink: Box<dyn MonitorSink>,
}

/// Where the client is, for observers (`Client::state`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectionState {
    Disconnected,
    Connected {
        remote: String,
    },
    /// Connected and the monitor's initial contents applied.
    Monitoring {
        remote: String,
        method: MonitorMethod,
    },
}

enum Command {
    Call {
        method: String,
        params: Value,
        reply: oneshot::Sender<Result<Value, Error>>,
    },
    SetConditions {
        conditions: Vec<(String, MonitorCondition)>,
        reply: oneshot::Sender<Result<(), Error>>,
    },
    Reconnect,
}

/// A handle to the client task; cheap to clone. The task stops when the last handle is
/// dropped.
#[derive(Clone)]
pub struct Client {
    tx: mpsc::Sender<Command>,
    counters: Arc<Counters>,
    state: watch::Receiver<ConnectionState>,
    database: String,
}

impl Client {
    /// Spawns the client task on the current tokio runtime (it must be called from within
    /// one) and returns at once; the task connects in the background.
    pub fn start(config: ClientConfig, monitor: Option<Monitor>) -> Client {
        let (tx, rx) = mpsc::channel(64);
        let counters = Arc::new(Counters::default());
        let (state_tx, state) = watch::channel(ConnectionState::Disconnected);
        let database = config.database.clone();
        let (spec, sink) = match monitor {
            Some(m) => (m.tables, Some(m.sink)),
            None => (Vec::new(), None),
        };
        let task = Task {
            config,
            counters: counters.clone(),
            state: state_tx,
            rx,
            spec,
            sink,
            db: Database::default(),
            last_txn_id: Uuid::ZERO,
            can_resume: false,
            schema_id: None,
            rng: seed(),
        };
        tokio::spawn(task.run());
        Client {
            tx,
            counters,
            state,
            database,
        }
    }

    /// Sends any request (RFC 7047 §4.1) and returns its `result`.
    pub async fn call(&self, method: &str, params: Value) -> Result<Value, Error> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Call {
                method: method.to_owned(),
                params,
                reply,
            })
            .await
            .map_err(|_| Error::Stopped)?;
        rx.await.map_err(|_| Error::Stopped)?
    }

    /// Runs a transaction (RFC 7047 §4.1.3) on the client's database.
    pub async fn transact(&self, ops: Vec<Operation>) -> Result<Vec<OperationResult>, Error> {
        let mut params = Vec::with_capacity(ops.len() + 1);
        params.push(json!(self.database));
        params.extend(ops.iter().map(Operation::to_json));
        let result = self.call("transact", Value::Array(params)).await?;
        Ok(parse_results(ops.len(), &result)?)
    }

    /// Changes which rows of `table` the monitor sends (`monitor_cond_change`,
    /// ovsdb-server(5)). Returns once the server has applied it (rows leaving the condition
    /// arrive as deletes, entering ones as inserts, before this returns); while
    /// disconnected it is recorded and used at the next connect.
    pub async fn set_condition(
        &self,
        table: &str,
        condition: MonitorCondition,
    ) -> Result<(), Error> {
        self.set_conditions(vec![(table.to_owned(), condition)])
            .await
    }

    /// Changes the conditions of several tables in one `monitor_cond_change`, so the
    /// server applies them together (no update in between sees some changed and others
    /// not). Same completion rules as [`Client::set_condition`].
    pub async fn set_conditions(
        &self,
        conditions: Vec<(String, MonitorCondition)>,
    ) -> Result<(), Error> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::SetConditions { conditions, reply })
            .await
            .map_err(|_| Error::Stopped)?;
        rx.await.map_err(|_| Error::Stopped)?
    }

    /// Drops the current connection; the client reconnects (and resumes if it can).
    pub async fn reconnect(&self) -> Result<(), Error> {
        self.tx
            .send(Command::Reconnect)
            .await
            .map_err(|_| Error::Stopped)
    }

    pub fn counters(&self) -> &Arc<Counters> {
        &self.counters
    }

    pub fn state(&self) -> watch::Receiver<ConnectionState> {
        self.state.clone()
    }

    pub fn database(&self) -> &str {
        &self.database
    }
}

// ---------------------------------------------------------------------------------------

const MONITOR_ID: &str = "ovnest";

/// A `set_conditions` that arrived while the monitor request was in flight.
type DeferredCondition = (
    Vec<(String, MonitorCondition)>,
    oneshot::Sender<Result<(), Error>>,
);
const SERVER_MONITOR_ID: &str = "ovnest-server";

enum Pending {
    User(oneshot::Sender<Result<Value, Error>>),
    Schema,
    Monitor {
        method: MonitorMethod,
        layout: Vec<TableLayout>,
    },
    ServerMonitor,
    ChangeAware,
    CondChange(Option<oneshot::Sender<Result<(), Error>>>),
    Probe,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MonitorState {
    None,
    Requested,
    Active(MonitorMethod),
}

/// Why a connection ended.
enum End {
    Reconnect(String),
    Stop,
}

struct Task {
    config: ClientConfig,
    counters: Arc<Counters>,
    state: watch::Sender<ConnectionState>,
    rx: mpsc::Receiver<Command>,
    /// The monitor wanted, with the latest conditions.
    spec: Vec<TableMonitor>,
    sink: Option<Box<dyn MonitorSink>>,
    db: Database,
    last_txn_id: Uuid,
    /// The replica matches the server as of `last_txn_id` under the conditions in `spec`,
    /// so `monitor_cond_since` may resume from it.
    can_resume: bool,
    /// (version, cksum) of the schema `db` was laid out for.
    schema_id: Option<(String, Option<String>)>,
    rng: u64,
}

struct Conn {
    reader: ReadHalf,
    writer: WriteHalf,
    decoder: FrameDecoder,
    pending: HashMap<u64, Pending>,
    next_id: u64,
    remote: String,
    monitor: MonitorState,
    deferred_conditions: Vec<DeferredCondition>,
    server_db: Option<Database>,
    /// Our database's schema text as `_Server` first reported it on this connection.
    server_schema: Option<Datum>,
    last_rx: Instant,
    probe_sent: Option<Instant>,
    write_timeout: Duration,
}

impl Task {
    async fn run(mut self) {
        let remotes = self.config.remotes.as_slice().to_vec();
        let mut next = 0usize;
        let mut delay = Duration::ZERO;
        loop {
            if !delay.is_zero() {
                let wake = Instant::now() + self.jitter(delay);
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep_until(wake) => break,
                        cmd = self.rx.recv() => match cmd {
                            None => return,
                            Some(cmd) => self.command_while_disconnected(cmd),
                        },
                    }
                }
            }
            let remote = &remotes[next % remotes.len()];
            next = next.wrapping_add(1);
            delay = (delay * 2).clamp(self.config.backoff_min, self.config.backoff_max);
            let (reader, writer) = match remote
                .connect(self.config.connect_timeout, self.config.ssl.as_ref())
                .await
            {
                Ok(rw) => rw,
                Err(e) => {
                    Counters::inc(&self.counters.connect_failures);
                    tracing::warn!("ovsdb: cannot connect to {remote}: {e}");
                    continue;
                }
            };
            Counters::inc(&self.counters.connects);
            tracing::info!("ovsdb: connected to {remote}");
            let _ = self.state.send(ConnectionState::Connected {
                remote: remote.to_string(),
            });
            let (end, synced) = self.session(remote, reader, writer).await;
            let _ = self.state.send(ConnectionState::Disconnected);
            Counters::inc(&self.counters.disconnects);
            if synced {
                // The connection worked: retry soon, then back off again if it keeps failing.
                delay = self.config.backoff_min;
            }
            match end {
                End::Stop => return,
                End::Reconnect(why) => tracing::warn!("ovsdb: disconnected from {remote}: {why}"),
            }
        }
    }

    fn jitter(&mut self, d: Duration) -> Duration {
        // xorshift64: plenty for spreading reconnects.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let frac = 0.5 + (self.rng % 1000) as f64 / 2000.0;
        d.mul_f64(frac)
    }

    fn command_while_disconnected(&mut self, cmd: Command) {
        match cmd {
            Command::Call { reply, .. } => {
                let _ = reply.send(Err(Error::NotConnected));
            }
            Command::SetConditions { conditions, reply } => {
                let _ = reply.send(self.record_conditions(&conditions));
            }
            Command::Reconnect => {}
        }
    }

    /// Stores new conditions in the spec (all or none: an unmonitored table refuses the
    /// lot); the replica no longer matches what a resume would replay, so the next
    /// monitor starts from a full snapshot.
    fn record_conditions(
        &mut self,
        conditions: &[(String, MonitorCondition)],
    ) -> Result<(), Error> {
        if let Some((table, _)) = conditions
            .iter()
            .find(|(table, _)| !self.spec.iter().any(|t| t.table == *table))
        {
            return Err(Error::NotMonitored(table.clone()));
        }
        for (table, condition) in conditions {
            if let Some(t) = self.spec.iter_mut().find(|t| t.table == *table)
                && t.condition != *condition
            {
                t.condition = condition.clone();
                self.can_resume = false;
            }
        }
        Ok(())
    }

    /// Runs one connection until it ends. Returns why, and whether the monitor got synced.
    async fn session(
        &mut self,
        remote: &Remote,
        reader: ReadHalf,
        writer: WriteHalf,
    ) -> (End, bool) {
        let mut conn = Conn {
            reader,
            writer,
            decoder: FrameDecoder::new(self.config.max_message),
            pending: HashMap::new(),
            next_id: 1,
            remote: remote.to_string(),
            monitor: MonitorState::None,
            deferred_conditions: Vec::new(),
            server_db: None,
            server_schema: None,
            last_rx: Instant::now(),
            probe_sent: None,
            write_timeout: self
                .config
                .probe_interval
                .map_or(Duration::from_secs(30), |p| p * 2),
        };
        let end = self.drive(&mut conn).await;
        let synced = matches!(conn.monitor, MonitorState::Active(_)) || self.sink.is_none();
        // Requests in flight may or may not have run.
        for (_, p) in conn.pending.drain() {
            match p {
                Pending::User(reply) => {
                    let _ = reply.send(Err(Error::Disconnected));
                }
                Pending::CondChange(reply) => {
                    // Recorded in the spec; it applies at the next connect.
                    self.can_resume = false;
                    if let Some(reply) = reply {
                        let _ = reply.send(Ok(()));
                    }
                }
                _ => {}
            }
        }
        for (_, reply) in conn.deferred_conditions.drain(..) {
            let _ = reply.send(Ok(()));
        }
        (end, synced)
    }

    async fn drive(&mut self, conn: &mut Conn) -> End {
        if self.sink.is_some()
            && let Err(e) = conn
                .send("get_schema", json!([self.config.database]), Pending::Schema)
                .await
        {
            return e;
        }
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let probe = self.config.probe_interval;
            let deadline = match (probe, conn.probe_sent) {
                (None, _) => None,
                (Some(p), Some(sent)) => Some(sent + p),
                (Some(p), None) => Some(conn.last_rx + p),
            };
            tokio::select! {
                n = conn.reader.read(&mut buf) => {
                    let n = match n {
                        Ok(n) => n,
                        Err(e) => return End::Reconnect(format!("read: {e}")),
                    };
                    if n == 0 {
                        if conn.decoder.has_partial() {
                            Counters::inc(&self.counters.truncated_messages);
                            return End::Reconnect("server closed the connection in the middle of a message".into());
                        }
                        return End::Reconnect("server closed the connection".into());
                    }
                    conn.last_rx = Instant::now();
                    conn.probe_sent = None;
                    conn.decoder.push(&buf[..n]);
                    loop {
                        let value = match conn.decoder.next_value() {
                            Ok(Some(v)) => v,
                            Ok(None) => break,
                            Err(e) => {
                                match e {
                                    CodecError::TooLarge { .. } => Counters::inc(&self.counters.oversized_messages),
                                    _ => Counters::inc(&self.counters.malformed_messages),
                                }
                                return End::Reconnect(e.to_string());
                            }
                        };
                        let msg = match Message::from_json(value) {
                            Ok(m) => m,
                            Err(e) => {
                                Counters::inc(&self.counters.malformed_messages);
                                return End::Reconnect(e.to_string());
                            }
                        };
                        if let Err(end) = self.on_message(conn, msg).await {
                            return end;
                        }
                    }
                }
                cmd = self.rx.recv() => {
                    let Some(cmd) = cmd else { return End::Stop };
                    if let Err(end) = self.on_command(conn, cmd).await {
                        return end;
                    }
                }
                _ = sleep_until_opt(deadline) => {
                    if conn.probe_sent.is_some() {
                        Counters::inc(&self.counters.probe_timeouts);
                        return End::Reconnect("inactivity probe timed out".into());
                    }
                    conn.probe_sent = Some(Instant::now());
                    if let Err(e) = conn.send("echo", json!([]), Pending::Probe).await {
                        return e;
                    }
                }
            }
        }
    }

    async fn on_command(&mut self, conn: &mut Conn, cmd: Command) -> Result<(), End> {
        match cmd {
            Command::Call {
                method,
                params,
                reply,
            } => conn.send(&method, params, Pending::User(reply)).await,
            Command::Reconnect => Err(End::Reconnect("reconnect requested".into())),
            Command::SetConditions { conditions, reply } => match conn.monitor {
                MonitorState::Active(method) => {
                    self.change_conditions(conn, method, conditions, reply)
                        .await
                }
                MonitorState::Requested => {
                    conn.deferred_conditions.push((conditions, reply));
                    Ok(())
                }
                MonitorState::None => {
                    let _ = reply.send(self.record_conditions(&conditions));
                    Ok(())
                }
            },
        }
    }

    /// Records `conditions` and sends them to the server in one `monitor_cond_change`
    /// (tables this server's schema lacks are left out: nothing to change there).
    async fn change_conditions(
        &mut self,
        conn: &mut Conn,
        method: MonitorMethod,
        conditions: Vec<(String, MonitorCondition)>,
        reply: oneshot::Sender<Result<(), Error>>,
    ) -> Result<(), End> {
        if let Err(e) = self.record_conditions(&conditions) {
            let _ = reply.send(Err(e));
            return Ok(());
        }
        if !method.supports_conditions() {
            let _ = reply.send(Err(Error::ConditionsUnsupported));
            return Ok(());
        }
        let tables: serde_json::Map<String, Value> = conditions
            .iter()
            .filter(|(table, _)| self.db.table(table).is_some())
            .map(|(table, c)| (table.clone(), json!([{"where": c.to_json()}])))
            .collect();
        if tables.is_empty() {
            let _ = reply.send(Ok(()));
            return Ok(());
        }
        let params = json!([MONITOR_ID, MONITOR_ID, tables]);
        conn.send(
            "monitor_cond_change",
            params,
            Pending::CondChange(Some(reply)),
        )
        .await
    }

    async fn on_message(&mut self, conn: &mut Conn, msg: Message) -> Result<(), End> {
        match msg {
            Message::Request { id, method, params } => {
                let result = if method == "echo" {
                    Counters::inc(&self.counters.echo_requests);
                    Ok(params)
                } else {
                    Counters::inc(&self.counters.unknown_methods);
                    tracing::warn!("ovsdb: server sent a request with unknown method {method:?}");
                    Err(RpcError {
                        error: "unknown method".into(),
                        details: None,
                    })
                };
                conn.write(&Message::Response { id, result }).await
            }
            Message::Notification { method, params } => self.on_notification(conn, &method, params),
            Message::Response { id, result } => {
                let pending = id.as_u64().and_then(|id| conn.pending.remove(&id));
                let Some(pending) = pending else {
                    Counters::inc(&self.counters.unexpected_replies);
                    tracing::warn!("ovsdb: reply with unknown id {id}");
                    return Ok(());
                };
                self.on_reply(conn, pending, result).await
            }
        }
    }

    async fn on_reply(
        &mut self,
        conn: &mut Conn,
        pending: Pending,
        result: Result<Value, RpcError>,
    ) -> Result<(), End> {
        match pending {
            Pending::User(reply) => {
                let _ = reply.send(result.map_err(Error::Rpc));
                Ok(())
            }
            Pending::Probe => Ok(()),
            Pending::ChangeAware => {
                if let Err(e) = result {
                    tracing::info!("ovsdb: set_db_change_aware refused: {e}");
                }
                Ok(())
            }
            Pending::CondChange(reply) => {
                if let Some(reply) = reply {
                    let _ = reply.send(result.map(|_| ()).map_err(Error::Rpc));
                }
                Ok(())
            }
            Pending::Schema => {
                let schema = result
                    .map_err(|e| End::Reconnect(format!("get_schema: {e}")))
                    .and_then(|v| {
                        Schema::from_json(&v).map_err(|e| End::Reconnect(e.to_string()))
                    })?;
                let id = (schema.version.clone(), schema.cksum.clone());
                if self.schema_id.as_ref() != Some(&id) {
                    if self.schema_id.is_some() {
                        tracing::info!(
                            "ovsdb: schema is now {} {}: full resync",
                            schema.name,
                            schema.version
                        );
                    }
                    self.can_resume = false;
                    self.schema_id = Some(id);
                }
                let layout = layout(&self.spec, &schema);
                conn.send(
                    "monitor_cond",
                    json!(["_Server", SERVER_MONITOR_ID, {"Database": [{"columns": ["name", "connected", "schema"]}]}]),
                    Pending::ServerMonitor,
                )
                .await?;
                self.request_monitor(conn, MonitorMethod::CondSince, layout)
                    .await
            }
            Pending::ServerMonitor => {
                match result {
                    Ok(v) => {
                        let mut db = Database::new(vec![("Database".into(), server_db_columns())]);
                        if let Ok(u) = TableUpdates::from_json(v, UpdateFormat::V2) {
                            db.apply(u, &self.counters);
                        }
                        conn.server_db = Some(db);
                        self.check_server_db(conn, true)?;
                        // Now that schema changes and cluster trouble are visible, ask the
                        // server not to just drop us on them.
                        conn.send("set_db_change_aware", json!([true]), Pending::ChangeAware)
                            .await?;
                    }
                    Err(e) => {
                        tracing::info!("ovsdb: no _Server database ({e}); staying change-unaware")
                    }
                }
                Ok(())
            }
            Pending::Monitor { method, layout } => match result {
                Err(e) if e.is_unknown_method() => match method.fallback() {
                    Some(next) => {
                        tracing::info!(
                            "ovsdb: server does not know {}; trying {}",
                            method.name(),
                            next.name()
                        );
                        self.request_monitor(conn, next, layout).await
                    }
                    None => Err(End::Reconnect("server knows no monitor method".into())),
                },
                Err(e) => Err(End::Reconnect(format!("{}: {e}", method.name()))),
                Ok(v) => self.on_monitor_reply(conn, method, layout, v).await,
            },
        }
    }

    async fn request_monitor(
        &mut self,
        conn: &mut Conn,
        method: MonitorMethod,
        layout: Vec<TableLayout>,
    ) -> Result<(), End> {
        let reqs = requests(&self.spec, &layout, method);
        let params = match method {
            MonitorMethod::CondSince => {
                let since = if self.can_resume {
                    self.last_txn_id
                } else {
                    Uuid::ZERO
                };
                json!([self.config.database, MONITOR_ID, reqs, since.to_string()])
            }
            _ => json!([self.config.database, MONITOR_ID, reqs]),
        };
        conn.monitor = MonitorState::Requested;
        conn.send(method.name(), params, Pending::Monitor { method, layout })
            .await
    }

    async fn on_monitor_reply(
        &mut self,
        conn: &mut Conn,
        method: MonitorMethod,
        layout: Vec<TableLayout>,
        v: Value,
    ) -> Result<(), End> {
        let (found, last_id, body, format) = match method {
            MonitorMethod::CondSince => {
                let Value::Array(mut a) = v else {
                    return Err(End::Reconnect(
                        "monitor_cond_since reply is not an array".into(),
                    ));
                };
                if a.len() != 3 {
                    return Err(End::Reconnect(
                        "monitor_cond_since reply must have 3 elements".into(),
                    ));
                }
                let body = a.pop().unwrap_or(Value::Null);
                let last = a
                    .pop()
                    .and_then(|v| v.as_str().and_then(|s| s.parse::<Uuid>().ok()));
                let found = a.pop().and_then(|v| v.as_bool()).unwrap_or(false);
                (found, last.unwrap_or(Uuid::ZERO), body, UpdateFormat::V2)
            }
            MonitorMethod::Cond => (false, Uuid::ZERO, v, UpdateFormat::V2),
            MonitorMethod::Plain => (false, Uuid::ZERO, v, UpdateFormat::V1),
        };
        let updates =
            TableUpdates::from_json(body, format).map_err(|e| End::Reconnect(e.to_string()))?;
        if found && self.can_resume {
            Counters::inc(&self.counters.resumes);
            tracing::info!(
                "ovsdb: resumed monitor from transaction {}",
                self.last_txn_id
            );
            let touched = self.db.apply(updates, &self.counters);
            if let Some(sink) = self.sink.as_mut() {
                sink.apply(&self.db, DbChange::Rows(&touched), &self.counters);
            }
        } else {
            Counters::inc(&self.counters.full_syncs);
            let mut db = Database::new(layout);
            db.apply(updates, &self.counters);
            self.db = db;
            if let Some(sink) = self.sink.as_mut() {
                sink.apply(&self.db, DbChange::Reset, &self.counters);
            }
        }
        self.last_txn_id = last_id;
        self.can_resume = method == MonitorMethod::CondSince;
        conn.monitor = MonitorState::Active(method);
        let _ = self.state.send(ConnectionState::Monitoring {
            remote: conn.remote.clone(),
            method,
        });
        // Conditions asked for while the monitor request was in flight.
        for (conditions, reply) in std::mem::take(&mut conn.deferred_conditions) {
            self.change_conditions(conn, method, conditions, reply)
                .await?;
        }
        Ok(())
    }

    fn on_notification(&mut self, conn: &mut Conn, method: &str, params: Value) -> Result<(), End> {
        let Value::Array(mut p) = params else {
            Counters::inc(&self.counters.bad_updates);
            return Ok(());
        };
        let (format, n) = match method {
            "update3" => (UpdateFormat::V2, 3),
            "update2" => (UpdateFormat::V2, 2),
            "update" => (UpdateFormat::V1, 2),
            "monitor_canceled" => return Err(End::Reconnect("server canceled the monitor".into())),
            _ => {
                Counters::inc(&self.counters.unknown_methods);
                tracing::warn!("ovsdb: ignoring notification with unknown method {method:?}");
                return Ok(());
            }
        };
        if p.len() != n {
            Counters::inc(&self.counters.bad_updates);
            tracing::warn!(
                "ovsdb: {method} with {} params instead of {n}: ignored",
                p.len()
            );
            return Ok(());
        }
        let body = p.pop().unwrap_or(Value::Null);
        let last_id = if n == 3 {
            p.pop()
                .and_then(|v| v.as_str().and_then(|s| s.parse::<Uuid>().ok()))
        } else {
            None
        };
        let monitor_id = p.pop().unwrap_or(Value::Null);
        if monitor_id == SERVER_MONITOR_ID {
            if let (Some(db), Ok(u)) = (
                conn.server_db.as_mut(),
                TableUpdates::from_json(body, UpdateFormat::V2),
            ) {
                db.apply(u, &self.counters);
            }
            return self.check_server_db(conn, false);
        }
        if monitor_id != MONITOR_ID || !matches!(conn.monitor, MonitorState::Active(_)) {
            Counters::inc(&self.counters.bad_updates);
            tracing::warn!("ovsdb: {method} for unknown monitor {monitor_id}: ignored");
            return Ok(());
        }
        let updates = match TableUpdates::from_json(body, format) {
            Ok(u) => u,
            Err(e) => {
                Counters::inc(&self.counters.bad_updates);
                // The replica now misses a change: start over from a full snapshot.
                self.can_resume = false;
                return Err(End::Reconnect(format!("{method}: {e}")));
            }
        };
        let touched = self.db.apply(updates, &self.counters);
        Counters::inc(&self.counters.updates_applied);
        if let Some(id) = last_id {
            self.last_txn_id = id;
        }
        if let Some(sink) = self.sink.as_mut() {
            sink.apply(&self.db, DbChange::Rows(&touched), &self.counters);
        }
        Ok(())
    }

    /// Drops the connection when our database's row in `_Server.Database` says the server
    /// lost it: removed, schema converted (the replica's layout may be wrong), or the
    /// cluster member disconnected from its cluster (its data may be stale).
    fn check_server_db(&mut self, conn: &mut Conn, initial: bool) -> Result<(), End> {
        let Some(table) = conn.server_db.as_ref().and_then(|db| db.table("Database")) else {
            return Ok(());
        };
        let ours = table.rows().find(|(_, r)| {
            r.get("name").atoms().first().and_then(|a| a.as_str()) == Some(&self.config.database)
        });
        let Some((_, row)) = ours else {
            return if initial {
                Ok(())
            } else {
                Err(End::Reconnect("database removed from the server".into()))
            };
        };
        if row
            .get("connected")
            .atoms()
            .first()
            .and_then(|a| a.as_bool())
            == Some(false)
        {
            return Err(End::Reconnect(
                "server is not connected to its cluster".into(),
            ));
        }
        let schema = row.get("schema");
        match &conn.server_schema {
            None => {
                conn.server_schema = Some(schema.clone());
                Ok(())
            }
            Some(s) if s == schema => Ok(()),
            Some(_) => {
                self.can_resume = false;
                Err(End::Reconnect("database schema changed".into()))
            }
        }
    }
}

impl Conn {
    async fn write(&mut self, msg: &Message) -> Result<(), End> {
        let bytes = msg.to_bytes();
        match tokio::time::timeout(self.write_timeout, self.writer.write_all(&bytes)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(End::Reconnect(format!("write: {e}"))),
            Err(_) => Err(End::Reconnect("write timed out".into())),
        }
    }

    async fn send(&mut self, method: &str, params: Value, pending: Pending) -> Result<(), End> {
        let id = self.next_id;
        self.next_id += 1;
        self.pending.insert(id, pending);
        let msg = Message::Request {
            id: json!(id),
            method: method.to_owned(),
            params,
        };
        self.write(&msg).await
    }
}

fn server_db_columns() -> Vec<(String, ColumnType)> {
    vec![
        (
            "connected".into(),
            ColumnType {
                key: AtomicType::Boolean,
                value: None,
                min: 1,
                max: Some(1),
            },
        ),
        (
            "name".into(),
            ColumnType {
                key: AtomicType::String,
                value: None,
                min: 1,
                max: Some(1),
            },
        ),
        (
            "schema".into(),
            ColumnType {
                key: AtomicType::String,
                value: None,
                min: 0,
                max: Some(1),
            },
        ),
    ]
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

fn seed() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    (t ^ (u64::from(std::process::id()) << 32)) | 1
}
