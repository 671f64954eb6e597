//! Southbound snapshot decode: a 20,000-Port_Binding `monitor_cond_since` reply in the
//! server's exact wire format (the shapes of shared/reference/ovn-23.03/ovsdb-wire/
//! reply-monitor_cond_since-allcols.json: no newlines, columns at default omitted,
//! `_version` present), through framing, JSON-RPC, the raw replica and the typed replica;
//! then 10,000 `update3` modify notifications of the same shape as the captures.
//!
//! Before the criterion runs it prints the peak heap in use while decoding the snapshot
//! (a counting global allocator), so `cargo bench --bench sb_snapshot` gives both figures.

use std::hint::black_box;
use std::sync::atomic::Ordering;

use criterion::{Criterion, criterion_group, criterion_main};
use ovnest::sb::{Replica, monitor_tables};
use ovnest_benches::counting::{Counting, IN_USE, PEAK};
use ovnest_ovsdb::{
    Counters, Database, DbChange, FrameDecoder, Message, Schema, TableUpdates, UpdateFormat, layout,
};
use serde_json::{Value, json};

#[global_allocator]
static ALLOC: Counting = Counting;

pub const PORTS: usize = 20_000;
pub const DATAPATHS: usize = 10;
pub const MODIFIES: usize = 10_000;

fn uuid(kind: u32, i: usize) -> String {
    format!(
        "{kind:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        (i >> 16) & 0xffff,
        (i >> 8) & 0xfff,
        i & 0xfff,
        i
    )
}

/// Row i of the synthetic Southbound: every third port a container on the previous VIF.
pub fn port_row(i: usize) -> Value {
    let mac = format!(
        "02:00:{:02x}:{:02x}:{:02x}:{:02x} 10.{}.{}.{}",
        (i >> 24) & 0xff,
        (i >> 16) & 0xff,
        (i >> 8) & 0xff,
        i & 0xff,
        (i >> 16) & 0xff,
        (i >> 8) & 0xff,
        i & 0xff
    );
    let mut row = json!({
        "_version": ["uuid", uuid(0xbbbb_0000, i)],
        "datapath": ["uuid", uuid(0xdddd_0000, i % DATAPATHS)],
        "logical_port": format!("lp-{i}"),
        "mac": mac,
        "port_security": mac,
        "tunnel_key": i / DATAPATHS + 1,
        "up": false,
    });
    if i % 3 == 2 {
        row["parent_port"] = json!(format!("lp-{}", i - 1));
        row["tag"] = json!(i % 4095 + 1);
    }
    row
}

/// The monitor_cond_since reply bytes, exactly as ovsdb-server frames them.
fn snapshot_reply() -> Vec<u8> {
    let mut pb = serde_json::Map::new();
    for i in 0..PORTS {
        pb.insert(uuid(0xaaaa_0000, i), json!({"initial": port_row(i)}));
    }
    let mut dp = serde_json::Map::new();
    for d in 0..DATAPATHS {
        dp.insert(uuid(0xdddd_0000, d), json!({"initial": {"_version": ["uuid", uuid(0xcccc_0000, d)], "external_ids": ["map", [["logical-switch", uuid(0xeeee_0000, d)], ["name", format!("ls{d}")]]], "tunnel_key": d + 1}}));
    }
    let body = json!({"Port_Binding": pb, "Datapath_Binding": dp});
    serde_json::to_vec(&json!({"id": 3, "result": [false, "00000000-0000-0000-0000-000000000000", body], "error": null})).unwrap()
}

/// 10,000 update3 notifications: tag moves on container ports, `up`/`chassis` claims on
/// the rest (the shapes of monitor_cond_since-all.json and task4-updates.jsonl).
fn modifies() -> Vec<u8> {
    let mut out = Vec::new();
    for n in 0..MODIFIES {
        let i = (n * 7919) % PORTS;
        let change = if i % 3 == 2 {
            json!({"_version": ["uuid", uuid(0xbbbb_1000, n)], "tag": (i + n) % 4095 + 1})
        } else {
            json!({"_version": ["uuid", uuid(0xbbbb_1000, n)], "chassis": ["uuid", uuid(0xcaca_0000, 1)], "up": true})
        };
        let msg = json!({"id": null, "method": "update3", "params": ["ovnest", uuid(0xfefe_0000, n), {"Port_Binding": {uuid(0xaaaa_0000, i): {"modify": change}}}]});
        out.extend(serde_json::to_vec(&msg).unwrap());
    }
    out
}

struct Pipeline {
    db: Database,
    replica: Replica,
    counters: Counters,
}

/// Socket bytes → replica, in 64 KiB reads like the client.
fn load_snapshot(schema: &Schema, bytes: &[u8]) -> Pipeline {
    let counters = Counters::default();
    let mut db = Database::new(layout(&monitor_tables(&[]), schema));
    let mut replica = Replica::new();
    let mut dec = FrameDecoder::new(64 << 20);
    for chunk in bytes.chunks(64 * 1024) {
        dec.push(chunk);
        while let Some(v) = dec.next_value().unwrap() {
            let Ok(Message::Response {
                result: Ok(Value::Array(mut r)),
                ..
            }) = Message::from_json(v)
            else {
                panic!()
            };
            let u = TableUpdates::from_json(r.pop().unwrap(), UpdateFormat::V2).unwrap();
            db.apply(u, &counters);
            replica.update(&db, DbChange::Reset, &counters);
        }
    }
    Pipeline {
        db,
        replica,
        counters,
    }
}

fn apply_modifies(p: &mut Pipeline, bytes: &[u8]) {
    let mut dec = FrameDecoder::new(64 << 20);
    for chunk in bytes.chunks(64 * 1024) {
        dec.push(chunk);
        while let Some(v) = dec.next_value().unwrap() {
            let Ok(Message::Notification {
                params: Value::Array(mut params),
                ..
            }) = Message::from_json(v)
            else {
                panic!()
            };
            let u = TableUpdates::from_json(params.pop().unwrap(), UpdateFormat::V2).unwrap();
            let t = p.db.apply(u, &p.counters);
            p.replica.update(&p.db, DbChange::Rows(&t), &p.counters);
        }
    }
}

fn bench(c: &mut Criterion) {
    let schema = ovnest_benches::sb_schema();
    let snap = snapshot_reply();
    let mods = modifies();

    // Peak heap while decoding (input bytes excluded: they are allocated before the mark).
    let base = IN_USE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let p = load_snapshot(&schema, &snap);
    let peak = PEAK.load(Ordering::Relaxed) - base;
    let retained = IN_USE.load(Ordering::Relaxed) - base;
    let s = p.replica.snapshot();
    assert_eq!(s.port_bindings().count(), PORTS);
    assert_eq!(p.counters.snapshot().bad_rows, 0);
    println!(
        "sb_snapshot: {} bytes of wire JSON, {PORTS} ports; peak heap during decode {:.1} MiB, retained after {:.1} MiB",
        snap.len(),
        peak as f64 / (1 << 20) as f64,
        retained as f64 / (1 << 20) as f64
    );
    drop(s);
    drop(p);

    let mut g = c.benchmark_group("sb_snapshot");
    g.sample_size(10);
    g.bench_function("decode_20k_port_bindings", |b| {
        b.iter(|| black_box(load_snapshot(&schema, black_box(&snap))))
    });
    g.bench_function("apply_10k_modifies", |b| {
        b.iter_batched(
            || load_snapshot(&schema, &snap),
            |mut p| {
                apply_modifies(&mut p, black_box(&mods));
                p
            },
            criterion::BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
