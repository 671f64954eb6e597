//! The client against a scripted fake server on a unix socket: protocol fallbacks, and
//! hostile input (split frames, garbage, oversized and truncated messages, unknown methods,
//! unanswered probes). Each must be logged, counted and survived.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::watch;

use crate::{
    Client, ClientConfig, ConnectionState, CounterValues, Counters, Database, DbChange,
    FrameDecoder, Monitor, MonitorCondition, MonitorMethod, MonitorSink, Remote, TableMonitor,
};

const WIRE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data/ovsdb-wire/");

fn schema() -> Value {
    let v: Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{WIRE}get_schema-OVN_Southbound.json")).unwrap(),
    )
    .unwrap();
    v["result"].clone()
}

/// Port_Bindings of monitor_cond_since-all.json plus their datapath, as `initial` rows.
fn snapshot_v2() -> Value {
    let line = std::fs::read_to_string(format!("{WIRE}monitor_cond_since-all.json")).unwrap();
    let reply: Value = serde_json::from_str(line.lines().nth(1).unwrap()).unwrap();
    let mut body = reply["msg"]["result"][2].clone();
    body["Datapath_Binding"] = json!({"31f08edb-c664-4990-9370-c6e10f844b2d": {"initial": {"tunnel_key": 1}},
                                      "c88e3705-5813-432c-ab50-a2638a20a220": {"initial": {"tunnel_key": 2}}});
    body
}

fn snapshot_v1() -> Value {
    let v: Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{WIRE}reply-monitor-v1.json")).unwrap(),
    )
    .unwrap();
    let mut body = v["result"].clone();
    body["Datapath_Binding"] = json!({"31f08edb-c664-4990-9370-c6e10f844b2d": {"new": {"tunnel_key": 1, "external_ids": ["map", []]}},
                                      "c88e3705-5813-432c-ab50-a2638a20a220": {"new": {"tunnel_key": 2, "external_ids": ["map", []]}}});
    body
}

/// What a sink saw of the raw replica: Port_Binding tags by logical_port.
#[derive(Debug, Clone, Default)]
struct Seen {
    synced: bool,
    tags: BTreeMap<String, Option<i64>>,
}

struct Sink(watch::Sender<Arc<Seen>>);

impl MonitorSink for Sink {
    fn apply(&mut self, db: &Database, _: DbChange<'_>, _: &Counters) {
        let tags = db
            .table("Port_Binding")
            .map(|t| {
                t.rows()
                    .map(|(_, r)| {
                        let name = r
                            .get("logical_port")
                            .atoms()
                            .first()
                            .and_then(|a| a.as_str());
                        let tag = r.get("tag").atoms().first().and_then(|a| a.as_integer());
                        (name.unwrap_or_default().to_owned(), tag)
                    })
                    .collect()
            })
            .unwrap_or_default();
        self.0.send_replace(Arc::new(Seen { synced: true, tags }));
    }
}

/// A client monitoring Port_Binding and Datapath_Binding, and what its sink saw.
struct Watcher {
    client: Client,
    seen: watch::Receiver<Arc<Seen>>,
}

impl Watcher {
    fn start(config: ClientConfig) -> Watcher {
        let (tx, seen) = watch::channel(Arc::new(Seen::default()));
        let tables = vec![
            TableMonitor::new(
                "Port_Binding",
                &[
                    "logical_port",
                    "parent_port",
                    "tag",
                    "datapath",
                    "tunnel_key",
                ],
            ),
            TableMonitor::new("Datapath_Binding", &["tunnel_key", "external_ids"]),
        ];
        let client = Client::start(
            config,
            Some(Monitor {
                tables,
                sink: Box::new(Sink(tx)),
            }),
        );
        Watcher { client, seen }
    }

    async fn wait_synced(&self) -> Arc<Seen> {
        let mut rx = self.seen.clone();
        rx.wait_for(|s| s.synced).await.unwrap().clone()
    }

    fn seen(&self) -> Arc<Seen> {
        self.seen.borrow().clone()
    }

    fn client(&self) -> &Client {
        &self.client
    }

    fn counters(&self) -> CounterValues {
        self.client.counters().snapshot()
    }
}

struct Peer {
    s: UnixStream,
    dec: FrameDecoder,
    /// Bytes per write: small values split every message across many reads.
    chunk: usize,
}

impl Peer {
    async fn recv(&mut self) -> Option<Value> {
        let mut buf = [0u8; 4096];
        loop {
            if let Some(v) = self.dec.next_value().unwrap() {
                return Some(v);
            }
            let n = self.s.read(&mut buf).await.ok()?;
            if n == 0 {
                return None;
            }
            self.dec.push(&buf[..n]);
        }
    }

    async fn send_raw(&mut self, bytes: &[u8]) {
        for piece in bytes.chunks(self.chunk) {
            if self.s.write_all(piece).await.is_err() {
                return;
            }
            tokio::task::yield_now().await;
        }
    }

    async fn send(&mut self, v: Value) {
        self.send_raw(&serde_json::to_vec(&v).unwrap()).await;
    }

    async fn reply(&mut self, id: &Value, result: Value) {
        self.send(json!({"id": id, "result": result, "error": null}))
            .await;
    }

    /// Answers requests until the monitor is established and the client declared itself
    /// change-aware; `unknown` lists monitor methods to refuse as "unknown method".
    async fn handshake(&mut self, unknown: &[&str]) -> Option<()> {
        let (mut monitored, mut aware) = (false, false);
        while !(monitored && aware) {
            let m = self.recv().await?;
            let id = m["id"].clone();
            let method = m["method"].as_str().unwrap_or("").to_owned();
            match method.as_str() {
                "get_schema" => self.reply(&id, schema()).await,
                "monitor_cond" if m["params"][0] == "_Server" => {
                    self.reply(&id, json!({"Database": {"0a767db8-a40c-430d-b6cb-d8d6dfd67128": {"initial": {"name": "OVN_Southbound", "connected": true, "schema": "s"}}}}))
                        .await
                }
                "set_db_change_aware" => {
                    aware = true;
                    self.reply(&id, json!({})).await
                }
                m if unknown.contains(&m) => self.send(json!({"id": id, "error": "unknown method"})).await,
                "monitor_cond_since" => {
                    self.reply(&id, json!([false, "00000000-0000-0000-0000-000000000000", snapshot_v2()])).await;
                    monitored = true;
                }
                "monitor_cond" => {
                    self.reply(&id, snapshot_v2()).await;
                    monitored = true;
                }
                "monitor" => {
                    self.reply(&id, snapshot_v1()).await;
                    monitored = true;
                }
                other => panic!("fake server: unexpected {other}"),
            }
        }
        Some(())
    }
}

struct Fake {
    listener: UnixListener,
    path: PathBuf,
}

impl Fake {
    fn new(name: &str) -> Fake {
        let path =
            std::env::temp_dir().join(format!("ovnest-fake-{}-{name}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        Fake {
            listener: UnixListener::bind(&path).unwrap(),
            path,
        }
    }

    fn config(&self) -> ClientConfig {
        let mut c = ClientConfig::new(Remote::Unix(self.path.clone()).into(), "OVN_Southbound");
        c.backoff_min = Duration::from_millis(5);
        c.backoff_max = Duration::from_millis(20);
        c
    }

    async fn accept(&self, chunk: usize) -> Peer {
        let (s, _) = tokio::time::timeout(Duration::from_secs(10), self.listener.accept())
            .await
            .expect("client reconnects")
            .unwrap();
        Peer {
            s,
            dec: FrameDecoder::new(1 << 30),
            chunk,
        }
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

async fn until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::test]
async fn falls_back_to_monitor_cond_then_monitor() {
    let fake = Fake::new("fallback");
    let sb = Watcher::start(fake.config());
    let mut peer = fake.accept(4096).await;
    peer.handshake(&["monitor_cond_since", "monitor_cond"])
        .await
        .unwrap();
    let seen = sb.wait_synced().await;
    assert_eq!(seen.tags.len(), 7);
    assert_eq!(seen.tags["dmz-c52"], Some(52));
    assert!(matches!(
        &*sb.client().state().borrow(),
        ConnectionState::Monitoring {
            method: MonitorMethod::Plain,
            ..
        }
    ));
    // Plain monitor updates (old/new) apply; conditions are refused clearly.
    let upd = json!({"id": null, "method": "update", "params": ["ovnest", {"Port_Binding": {"48b8c51f-4146-410e-89b6-832c83d5689d": {"new": {"tunnel_key": 8, "parent_port": "dmz-vm5", "requested_chassis": ["set", []], "up": false, "logical_port": "dmz-c52", "mac": "02:ac:10:ff:01:34 172.16.255.134", "chassis": ["set", []], "options": ["map", []], "type": "", "datapath": ["uuid", "31f08edb-c664-4990-9370-c6e10f844b2d"], "tag": 53}, "old": {"tag": 52}}}}]});
    peer.send(upd).await;
    until("tag 53", || {
        sb.seen().tags.get("dmz-c52") == Some(&Some(53))
    })
    .await;
    let e = sb
        .client()
        .set_condition("Port_Binding", MonitorCondition::Nothing)
        .await
        .unwrap_err();
    assert_eq!(e, crate::Error::ConditionsUnsupported);
    assert_eq!(sb.counters().bad_rows, 0);
}

#[tokio::test]
async fn survives_a_hostile_server() {
    let fake = Fake::new("hostile");
    let mut cfg = fake.config();
    cfg.max_message = 64 * 1024;
    let sb = Watcher::start(cfg);

    // 1: every message split into 3-byte writes; then requests and replies we do not know,
    // then a message over the size limit.
    let mut p = fake.accept(3).await;
    p.handshake(&[]).await.unwrap();
    sb.wait_synced().await;
    p.send(json!({"id": "e1", "method": "echo", "params": ["x"]}))
        .await;
    assert_eq!(
        p.recv().await.unwrap(),
        json!({"id": "e1", "result": ["x"], "error": null})
    );
    p.send(json!({"id": 77, "method": "frobnicate", "params": []}))
        .await;
    let r = p.recv().await.unwrap();
    assert_eq!(
        (r["id"].clone(), r["error"]["error"].clone()),
        (json!(77), json!("unknown method"))
    );
    p.send(json!({"id": null, "method": "frobnicated", "params": []}))
        .await;
    p.send(json!({"id": 9999, "result": {}, "error": null}))
        .await;
    p.send(json!({"id": null, "method": "update3", "params": ["someone-else", "00000000-0000-0000-0000-000000000000", {}]})).await;
    p.send(json!({"id": null, "method": "update3", "params": "junk"}))
        .await;
    p.chunk = 64 * 1024;
    let huge = format!(
        "{{\"id\":null,\"method\":\"update3\",\"params\":[\"ovnest\",\"{}\"]}}",
        "x".repeat(200_000)
    );
    p.send_raw(huge.as_bytes()).await;
    assert!(
        p.recv().await.is_none(),
        "client hangs up on an oversized message"
    );

    // 2: the server dies in the middle of a message.
    let mut p = fake.accept(4096).await;
    p.handshake(&[]).await.unwrap();
    p.send_raw(br#"{"id":null,"method":"update3","params":["ovnest","#)
        .await;
    drop(p);

    // 3: not JSON at all.
    let mut p = fake.accept(4096).await;
    p.handshake(&[]).await.unwrap();
    p.send_raw(b"{\"id\": nope}").await;
    assert!(p.recv().await.is_none());

    // 4: a sane server again: the replica is whole and correct.
    let mut p = fake.accept(7).await;
    p.handshake(&[]).await.unwrap();
    until("the fourth full sync after the malformed message", || {
        let c = sb.counters();
        c.full_syncs >= 4 && c.malformed_messages >= 1
    })
    .await;
    let c = sb.counters();
    assert_eq!(c.echo_requests, 1);
    assert_eq!(c.unknown_methods, 2, "frobnicate request and notification");
    assert_eq!(c.unexpected_replies, 1);
    assert_eq!(
        c.bad_updates, 2,
        "update for another monitor, params not an array"
    );
    assert_eq!(c.oversized_messages, 1);
    assert_eq!(c.truncated_messages, 1);
    assert_eq!(c.malformed_messages, 1);
    assert_eq!(c.bad_rows, 0);
    assert_eq!(sb.seen().tags.len(), 7);
    drop(p);
}

#[tokio::test]
async fn unanswered_probe_reconnects() {
    let fake = Fake::new("probe");
    let mut cfg = fake.config();
    cfg.probe_interval = Some(Duration::from_millis(100));
    let sb = Watcher::start(cfg);
    let mut p = fake.accept(4096).await;
    p.handshake(&[]).await.unwrap();
    // Read our probe but never answer it.
    let echo = p.recv().await.unwrap();
    assert_eq!(echo["method"], "echo");
    let mut p2 = fake.accept(4096).await;
    assert_eq!(sb.counters().probe_timeouts, 1);
    p2.handshake(&[]).await.unwrap();
    until("resynced", || sb.counters().full_syncs == 2).await;
    // Calls work on the new connection; while disconnected they fail fast.
    let call = tokio::spawn({
        let c = sb.client().clone();
        async move { c.call("echo", json!(["hi"])).await }
    });
    let m = p2.recv().await.unwrap();
    p2.reply(&m["id"], json!(["hi"])).await;
    assert_eq!(call.await.unwrap().unwrap(), json!(["hi"]));
    // No server any more (so no reconnect): calls fail fast.
    drop(fake);
    drop(p2);
    drop(p);
    until("disconnected", || {
        *sb.client().state().borrow() == ConnectionState::Disconnected
    })
    .await;
    assert_eq!(
        sb.client().call("echo", json!([])).await,
        Err(crate::Error::NotConnected)
    );
}

#[tokio::test]
async fn conditions_of_several_tables_change_in_one_request() {
    let fake = Fake::new("conds");
    let sb = Watcher::start(fake.config());
    let mut p = fake.accept(4096).await;
    p.handshake(&[]).await.unwrap();
    sb.wait_synced().await;
    let port = MonitorCondition::Any(vec![crate::Clause::eq(
        "logical_port",
        crate::Datum::atom("dmz-c51"),
    )]);
    let call = tokio::spawn({
        let c = sb.client().clone();
        let port = port.clone();
        async move {
            c.set_conditions(vec![
                ("Port_Binding".into(), port),
                ("Datapath_Binding".into(), MonitorCondition::Nothing),
            ])
            .await
        }
    });
    let m = p.recv().await.unwrap();
    assert_eq!(m["method"], "monitor_cond_change");
    assert_eq!(
        m["params"][2],
        json!({
            "Port_Binding": [{"where": [["logical_port", "==", "dmz-c51"]]}],
            "Datapath_Binding": [{"where": [false]}],
        })
    );
    p.reply(&m["id"], json!({})).await;
    assert_eq!(call.await.unwrap(), Ok(()));
    // A table the monitor does not have refuses the whole change, and nothing is sent.
    assert_eq!(
        sb.client()
            .set_conditions(vec![
                ("Port_Binding".into(), MonitorCondition::All),
                ("Nonexistent".into(), MonitorCondition::All),
            ])
            .await,
        Err(crate::Error::NotMonitored("Nonexistent".into()))
    );
}
