//! The monitor update decoder: `<table-updates>` / `<table-updates2>` JSON decoded
//! (`TableUpdates::from_json`) and applied to a replica with the Southbound's layout for
//! the tables ovnest monitors (`Database::apply`). Malformed rows are counted and
//! skipped, never a panic.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use ovnest_ovsdb::{Counters, Database, Schema, TableMonitor, TableUpdates, UpdateFormat, layout};

fn replica() -> Database {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    let schema = SCHEMA.get_or_init(|| {
        let text = include_str!("../../tests/data/ovsdb-wire/get_schema-OVN_Southbound.json");
        let value: serde_json::Value = serde_json::from_str(text).expect("schema json");
        let schema = value.get("result").cloned().unwrap_or(value);
        Schema::from_json(&schema).expect("the SB schema")
    });
    let spec = [
        TableMonitor::new("Port_Binding", &[]),
        TableMonitor::new("Datapath_Binding", &[]),
        TableMonitor::new("Chassis", &[]),
    ];
    Database::new(layout(&spec, schema))
}

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let counters = Counters::default();
    for format in [UpdateFormat::V1, UpdateFormat::V2] {
        if let Ok(updates) = TableUpdates::from_json(value.clone(), format) {
            let mut db = replica();
            let _ = db.apply(updates.clone(), &counters);
            // The same updates again: inserts of existing rows, deletes of gone ones.
            let _ = db.apply(updates, &counters);
        }
    }
});
