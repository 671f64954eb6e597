//! Benchmarks live in benches/benches/; what several of them (and the examples) share is here.

/// A global allocator that counts: bytes in use, their peak and allocations made. A
/// bench or example installs it with `#[global_allocator] static A: Counting = Counting;`.
pub mod counting {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::sync::atomic::{AtomicUsize, Ordering};

    pub struct Counting;

    pub static IN_USE: AtomicUsize = AtomicUsize::new(0);
    pub static PEAK: AtomicUsize = AtomicUsize::new(0);
    pub static ALLOCS: AtomicUsize = AtomicUsize::new(0);

    // SAFETY: delegates every call to the system allocator unchanged; only counts sizes.
    unsafe impl GlobalAlloc for Counting {
        // SAFETY: GlobalAlloc's contract, which the caller upholds, is passed on unchanged.
        unsafe fn alloc(&self, l: Layout) -> *mut u8 {
            // SAFETY: same contract as the caller's.
            let p = unsafe { System.alloc(l) };
            if !p.is_null() {
                ALLOCS.fetch_add(1, Ordering::Relaxed);
                let now = IN_USE.fetch_add(l.size(), Ordering::Relaxed) + l.size();
                PEAK.fetch_max(now, Ordering::Relaxed);
            }
            p
        }
        // SAFETY: GlobalAlloc's contract, which the caller upholds, is passed on unchanged.
        unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
            IN_USE.fetch_sub(l.size(), Ordering::Relaxed);
            // SAFETY: same contract as the caller's.
            unsafe { System.dealloc(p, l) }
        }
        // SAFETY: GlobalAlloc's contract, which the caller upholds, is passed on unchanged.
        unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
            // SAFETY: same contract as the caller's.
            let q = unsafe { System.realloc(p, l, new) };
            if !q.is_null() {
                if new >= l.size() {
                    let now = IN_USE.fetch_add(new - l.size(), Ordering::Relaxed) + new - l.size();
                    PEAK.fetch_max(now, Ordering::Relaxed);
                } else {
                    IN_USE.fetch_sub(l.size() - new, Ordering::Relaxed);
                }
            }
            q
        }
    }
}

/// The OVN Southbound schema as ovsdb-server sent it (the wire capture in tests/data).
pub fn sb_schema() -> ovnest_ovsdb::Schema {
    let v: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/data/ovsdb-wire/get_schema-OVN_Southbound.json"
        ))
        .expect("the Southbound schema capture"),
    )
    .expect("JSON");
    ovnest_ovsdb::Schema::from_json(&v["result"]).expect("the Southbound schema")
}

/// The logical pipeline's input written back as Southbound rows (OVSDB `update2` JSON), to
/// load fixtures into a real replica.
pub mod sb_rows {
    use ovnest_logical::db::{Database as LDb, LogicalFlow, Uuid as LUuid};
    use serde_json::{Map, Value, json};

    pub fn uuid(u: LUuid) -> String {
        let h = format!("{:032x}", u.0);
        format!(
            "{}-{}-{}-{}-{}",
            &h[..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..]
        )
    }

    pub fn map<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Value {
        json!([
            "map",
            pairs
                .into_iter()
                .map(|(k, v)| json!([k, v]))
                .collect::<Vec<_>>()
        ])
    }

    pub fn set(items: impl IntoIterator<Item = Value>) -> Value {
        json!(["set", items.into_iter().collect::<Vec<_>>()])
    }

    /// A Logical_Flow row: one datapath, or a Logical_DP_Group shared by flows on the same
    /// datapaths (as northd writes them).
    pub fn flow_row(f: &LogicalFlow, groups: &mut Map<String, Value>) -> Value {
        let mut row = json!({
            "pipeline": if f.egress { "egress" } else { "ingress" },
            "table_id": f.table_id, "priority": f.priority,
            "match": &*f.match_, "actions": &*f.actions,
            "external_ids": map(f.stage_name.as_deref().map(|s| ("stage-name", s)).into_iter()
                .chain(f.source.as_deref().map(|s| ("source", s)))),
        });
        if let [dp] = f.datapaths[..] {
            row["logical_datapath"] = json!(["uuid", uuid(dp)]);
        } else {
            let mut dps = f.datapaths.clone();
            dps.sort();
            let key = dps.iter().fold(0u128, |h, d| {
                h.rotate_left(7) ^ d.0.wrapping_mul(0x9e37_79b9_7f4a_7c15)
            });
            let g = uuid(LUuid(key & !(0xf << 76) | (0x4 << 76)));
            groups.entry(g.clone()).or_insert_with(|| {
                json!({"initial": {"datapaths": set(dps.iter().map(|d| json!(["uuid", uuid(*d)])))}})
            });
            row["logical_dp_group"] = json!(["uuid", g]);
        }
        row
    }

    /// `db` as a Southbound snapshot's table updates.
    pub fn rows(db: &LDb) -> Value {
        let mut t: Map<String, Value> = Map::new();
        let mut put = |table: &str, uuid: String, row: Value| {
            t.entry(table)
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .unwrap()
                .insert(uuid, json!({"initial": row}));
        };
        for d in &db.datapaths {
            let nb = d.nb_uuid.map(uuid).unwrap_or_default();
            let kind = if d.is_router {
                "logical-router"
            } else {
                "logical-switch"
            };
            let mut ids = vec![(kind, nb.as_str())];
            ids.extend(d.name.as_deref().map(|n| ("name", n)));
            ids.extend(d.name2.as_deref().map(|n| ("name2", n)));
            put(
                "Datapath_Binding",
                uuid(d.uuid),
                json!({"tunnel_key": d.tunnel_key, "external_ids": map(ids)}),
            );
        }
        for p in &db.ports {
            let mut options = Vec::new();
            options.extend(p.peer.as_deref().map(|v| ("peer", v)));
            options.extend(
                p.distributed_port
                    .as_deref()
                    .map(|v| ("distributed-port", v)),
            );
            put(
                "Port_Binding",
                uuid(p.uuid),
                json!({
                    "logical_port": p.name, "datapath": ["uuid", uuid(p.datapath)],
                    "tunnel_key": p.tunnel_key, "type": p.ty, "options": map(options),
                    "external_ids": map(p.name2.as_deref().map(|n| ("name", n))),
                    "port_security": set(p.port_security.iter().map(|s| json!(s))),
                }),
            );
        }
        for (i, m) in db.mcgroups.iter().enumerate() {
            put(
                "Multicast_Group",
                uuid(LUuid(0x6d63_0000_0000_4000_8000_0000_0000_0000 | i as u128)),
                json!({
                    "datapath": ["uuid", uuid(m.datapath)], "name": m.name, "tunnel_key": m.tunnel_key,
                    "ports": set(m.ports.iter().map(|p| json!(["uuid", uuid(*p)]))),
                }),
            );
        }
        let mut groups = Map::new();
        for f in &db.flows {
            put("Logical_Flow", uuid(f.uuid), flow_row(f, &mut groups));
        }
        for (i, (name, addrs)) in db.address_sets.iter().enumerate() {
            put(
                "Address_Set",
                uuid(LUuid(0xa5a5_0000_0000_4000_8000_0000_0000_0000 | i as u128)),
                json!({"name": name, "addresses": set(addrs.iter().map(|a| json!(a)))}),
            );
        }
        for (i, (name, ports)) in db.port_groups.iter().enumerate() {
            put(
                "Port_Group",
                uuid(LUuid(0x9090_0000_0000_4000_8000_0000_0000_0000 | i as u128)),
                json!({"name": name, "ports": set(ports.iter().map(|a| json!(a)))}),
            );
        }
        for (table, opts) in [
            ("DHCP_Options", &db.dhcp_options),
            ("DHCPv6_Options", &db.dhcpv6_options),
        ] {
            for (i, o) in opts.iter().enumerate() {
                put(
                    table,
                    uuid(LUuid(
                        0xd0d0_0000_0000_4000_8000_0000_0000_0000
                            | (i as u128) << 8
                            | table.len() as u128,
                    )),
                    json!({"name": o.name, "code": o.code, "type": o.ty}),
                );
            }
        }
        let mut t = Value::Object(t);
        t["Logical_DP_Group"] = Value::Object(groups);
        t
    }
}
