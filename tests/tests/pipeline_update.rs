//! `Pipeline::update` equals `Pipeline::compile`: random sequences of Southbound changes
//! (flows removed, restored, modified and added; ACLs on port groups and address sets;
//! port groups, address sets and ports changed; residency moved) applied to the seed
//! lab's flows, each step compiled both ways. The two pipelines must hold the same
//! tables (flows in lookup order, rules, stage skips, errors) and trace every seed case
//! and a set of ACL'd microflows alike, as ovn-trace would print them.

use std::collections::HashSet;

use ovnest_logical::{
    Pipeline, TraceOptions,
    db::{Database, LogicalFlow, Uuid},
    pipeline::{Changes, Residency, TouchedRows},
    trace::Formats,
};
use ovnest_tests::fixtures::lflows;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

const PORTS: [&str; 6] = ["dmz-c51", "dmz-c52", "dmz-vm1", "dmz-vm2", "dmz-vm5", "vm3"];

/// One change to the Southbound.
#[derive(Debug, Clone)]
enum Step {
    RemoveFlow(usize),
    RestoreFlow(usize),
    /// A flow's priority moves (ties with others of the new priority).
    Reprioritise(usize, u16),
    /// An ACL flow: (to-lport, priority, port group, address set or host, drop).
    AddAcl(bool, u16, u8, u8, bool),
    /// Port group `pgN` gets these ports (bitmask over PORTS); empty removes it.
    SetPortGroup(u8, u8),
    /// Address set `asN` gets these hosts 172.16.255.128 + i (bitmask).
    SetAddressSet(u8, u8),
    /// This port becomes resident or not (residency `Ports`).
    ToggleResident(usize),
    /// This port disappears or comes back.
    TogglePort(usize),
    /// This port's tunnel key becomes 100 + k (flows that load its name, as
    /// `outport = "vm3";`, hold the key compiled).
    RekeyPort(usize, u32),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0usize..1000).prop_map(Step::RemoveFlow),
        (0usize..1000).prop_map(Step::RestoreFlow),
        (
            0usize..1000,
            prop::sample::select(vec![0u16, 50, 100, 34000, 65532])
        )
            .prop_map(|(i, p)| Step::Reprioritise(i, p)),
        (
            any::<bool>(),
            prop::sample::select(vec![2001u16, 2002, 1001]),
            0u8..3,
            0u8..6,
            any::<bool>()
        )
            .prop_map(|(e, p, g, a, d)| Step::AddAcl(e, p, g, a, d)),
        (0u8..3, any::<u8>()).prop_map(|(g, m)| Step::SetPortGroup(g, m)),
        (0u8..3, any::<u8>()).prop_map(|(g, m)| Step::SetAddressSet(g, m)),
        (0usize..PORTS.len()).prop_map(Step::ToggleResident),
        (0usize..PORTS.len()).prop_map(Step::TogglePort),
        (0usize..PORTS.len(), 0u32..4).prop_map(|(i, k)| Step::RekeyPort(i, k)),
    ]
}

struct World {
    db: Database,
    base: Database,
    removed_ports: Vec<ovnest_logical::db::Port>,
    resident: HashSet<String>,
    next_uuid: u128,
}

/// The rows a step touched, as an OVSDB monitor update names them.
#[derive(Default)]
struct Touched {
    flows: Vec<Uuid>,
    ports: Vec<Uuid>,
    port_groups: Vec<String>,
    address_sets: Vec<String>,
}

impl Touched {
    /// The change list between `old` and `new` (each row once).
    fn rows(mut self, old: &Database, new: &Database) -> TouchedRows {
        let mut t = TouchedRows::default();
        for v in [&mut self.flows, &mut self.ports] {
            v.sort_unstable();
            v.dedup();
        }
        for &u in &self.flows {
            t.flow(old, new, u);
        }
        for &u in &self.ports {
            t.port(old, new, u);
        }
        for v in [&mut self.port_groups, &mut self.address_sets] {
            v.sort_unstable();
            v.dedup();
        }
        t.port_groups = self.port_groups;
        t.address_sets = self.address_sets;
        t
    }
}

impl World {
    /// The seed database `base` as it is, with `resident` ports on this chassis.
    fn new(base: Database, resident: HashSet<String>) -> World {
        World {
            db: base.clone(),
            base,
            removed_ports: Vec::new(),
            resident,
            next_uuid: 0,
        }
    }

    fn apply(&mut self, s: &Step) {
        self.apply_touching(s, &mut Touched::default());
    }

    fn apply_touching(&mut self, s: &Step, touched: &mut Touched) {
        let dmz = self
            .base
            .datapaths
            .iter()
            .find(|d| d.name.as_deref() == Some("dmz"));
        let dmz = dmz.expect("dmz").uuid;
        match *s {
            Step::RemoveFlow(i) => {
                if !self.db.flows.is_empty() {
                    let i = i % self.db.flows.len();
                    touched.flows.push(self.db.flows.remove(i).uuid);
                }
            }
            Step::RestoreFlow(i) => {
                let missing: Vec<&LogicalFlow> = self
                    .base
                    .flows
                    .iter()
                    .filter(|f| !self.db.flows.iter().any(|g| g.uuid == f.uuid))
                    .collect();
                if !missing.is_empty() {
                    let f = missing[i % missing.len()].clone();
                    touched.flows.push(f.uuid);
                    self.db.flows.push(f);
                }
            }
            Step::Reprioritise(i, p) => {
                if !self.db.flows.is_empty() {
                    let n = self.db.flows.len();
                    self.db.flows[i % n].priority = p;
                    touched.flows.push(self.db.flows[i % n].uuid);
                }
            }
            Step::AddAcl(egress, priority, pg, set, drop) => {
                // Large UUIDs sort after the fixture's and hash anywhere.
                self.next_uuid += 1;
                let uuid =
                    Uuid((0x9e37_79b9_7f4a_7c15u128 * self.next_uuid) ^ (self.next_uuid << 64));
                touched.flows.push(uuid);
                let port = if egress { "outport" } else { "inport" };
                let src = if set < 3 {
                    format!("$as{set}")
                } else {
                    format!("172.16.255.{}", 128 + u32::from(set))
                };
                self.db.flows.push(LogicalFlow {
                    uuid,
                    datapaths: vec![dmz],
                    egress,
                    table_id: if egress { 4 } else { 8 },
                    priority,
                    match_: format!("{port} == @pg{pg} && ip4 && ip4.src == {src}").into(),
                    actions: if drop {
                        "/* drop */".into()
                    } else {
                        "next;".into()
                    },
                    stage_name: Some(if egress { "ls_out_acl" } else { "ls_in_acl" }.into()),
                    source: None,
                });
            }
            Step::SetPortGroup(g, mask) => {
                let name = format!("pg{g}");
                touched.port_groups.push(name.clone());
                self.db.port_groups.retain(|(n, _)| *n != name);
                let ports: Vec<String> = (0..PORTS.len())
                    .filter(|i| mask & (1 << i) != 0)
                    .map(|i| PORTS[i].to_owned())
                    .collect();
                if !ports.is_empty() {
                    self.db.port_groups.push((name, ports));
                }
            }
            Step::SetAddressSet(g, mask) => {
                let name = format!("as{g}");
                touched.address_sets.push(name.clone());
                self.db.address_sets.retain(|(n, _)| *n != name);
                let hosts = (0..8)
                    .filter(|i| mask & (1 << i) != 0)
                    .map(|i| format!("172.16.255.{}", 128 + i))
                    .collect();
                self.db.address_sets.push((name, hosts));
            }
            Step::ToggleResident(i) => {
                let p = PORTS[i].to_owned();
                if !self.resident.remove(&p) {
                    self.resident.insert(p);
                }
            }
            Step::TogglePort(i) => {
                let name = PORTS[i];
                if let Some(at) = self.db.ports.iter().position(|p| p.name == name) {
                    let p = self.db.ports.remove(at);
                    touched.ports.push(p.uuid);
                    self.removed_ports.push(p);
                } else if let Some(at) = self.removed_ports.iter().position(|p| p.name == name) {
                    let p = self.removed_ports.remove(at);
                    touched.ports.push(p.uuid);
                    self.db.ports.push(p);
                }
            }
            Step::RekeyPort(i, k) => {
                if let Some(p) = self.db.ports.iter_mut().find(|p| p.name == PORTS[i]) {
                    p.tunnel_key = 100 + k;
                    touched.ports.push(p.uuid);
                }
            }
        }
    }
}

/// The seed cases plus ACL'd traffic from every port to c51 and from c51 to every port.
fn microflows() -> Vec<String> {
    let mut v: Vec<String> = lflows::cases().into_iter().map(|c| c.microflow).collect();
    for (i, p) in PORTS.iter().enumerate().take(5) {
        v.push(format!(
            "inport == \"{p}\" && eth.src == 02:ac:10:ff:01:{:02x} && eth.dst == 02:ac:10:ff:01:33 && ip4.src == 172.16.255.{} && ip4.dst == 172.16.255.133 && ip.ttl == 64 && icmp4.type == 8",
            0x30 + i,
            128 + i
        ));
        v.push(format!(
            "inport == \"dmz-c51\" && eth.src == 02:ac:10:ff:01:33 && eth.dst == 02:ac:10:ff:01:{:02x} && ip4.src == 172.16.255.133 && ip4.dst == 172.16.255.{} && ip.ttl == 64 && icmp4.type == 8",
            0x30 + i,
            128 + i
        ));
    }
    v
}

fn traces(p: &Pipeline, flows: &[String]) -> Vec<String> {
    let formats = Formats {
        detailed: true,
        minimal: true,
        ..Default::default()
    };
    flows
        .iter()
        .map(|f| {
            ovnest_logical::trace(p, Some("dmz"), f, &TraceOptions::default(), formats)
                .unwrap_or_else(|e| e)
        })
        .collect()
}

/// Applies `updates` (each a few steps the Southbound makes in one update) and compares,
/// after each, the pipeline updated from the diff of the databases, the one updated from
/// the change list, and a full compile.
fn check(updates: &[Vec<Step>], everywhere: bool) -> Result<(), TestCaseError> {
    let base = lflows::seed_acl();
    let mut w = World::new(
        base,
        PORTS.iter().take(3).map(|s| (*s).to_owned()).collect(),
    );
    let residency = |w: &World| {
        if everywhere {
            Residency::Everywhere
        } else {
            Residency::Ports(w.resident.clone().into())
        }
    };
    let flows = microflows();
    let mut old_db = w.db.clone();
    let mut p = Pipeline::compile(&w.db, &residency(&w));
    let mut p_rows = p.clone();
    for steps in updates {
        let old_res = residency(&w);
        let mut touched = Touched::default();
        for s in steps {
            w.apply_touching(s, &mut touched);
        }
        let res = residency(&w);
        let changes = Changes::between(&old_db, &w.db, &old_res, &res);
        let updated = p.update(&w.db, &res, &changes);
        let rows = touched.rows(&old_db, &w.db);
        let from_rows = Changes::from_rows(&old_db, &w.db, &rows, &old_res, &res);
        let updated_rows = p_rows.update(&w.db, &res, &from_rows);
        let full = Pipeline::compile(&w.db, &res);
        let want = full.describe();
        prop_assert_eq!(updated.describe(), want.clone(), "after {:?}", steps);
        prop_assert_eq!(
            updated_rows.describe(),
            want,
            "from the change list, after {:?}",
            steps
        );
        let want = traces(&full, &flows);
        prop_assert_eq!(traces(&updated, &flows), want.clone(), "after {:?}", steps);
        prop_assert_eq!(traces(&updated_rows, &flows), want, "after {:?}", steps);
        prop_assert_eq!(updated.n_flows(), full.n_flows());
        prop_assert_eq!(updated_rows.n_flows(), full.n_flows());
        old_db = w.db.clone();
        p = updated;
        p_rows = updated_rows;
    }
    Ok(())
}

fn run(everywhere: bool) {
    let mut runner = TestRunner::new(Config {
        cases: 24,
        ..Config::default()
    });
    let updates = prop::collection::vec(prop::collection::vec(step(), 1..4), 1..10);
    runner
        .run(&updates, |updates| check(&updates, everywhere))
        .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn updates_equal_full_compiles_on_a_chassis() {
    run(false);
}

#[test]
fn updates_equal_full_compiles_as_ovn_trace() {
    run(true);
}

/// An ACL added touches only the ACL table of its datapath: every other table is the
/// previous pipeline's, shared.
#[test]
fn an_acl_added_rebuilds_one_table() {
    let base = lflows::seed_acl();
    let p = Pipeline::compile(&base, &Residency::Everywhere);
    let mut w = World::new(base, HashSet::new());
    w.apply(&Step::SetAddressSet(0, 0b10));
    w.apply(&Step::SetPortGroup(0, 0b1));
    let p = p.recompile(&lflows::seed_acl(), &w.db, &Residency::Everywhere);
    let before = w.db.clone();
    w.apply(&Step::AddAcl(true, 2001, 0, 0, true));
    let changes = Changes::between(
        &before,
        &w.db,
        &Residency::Everywhere,
        &Residency::Everywhere,
    );
    let q = p.update(&w.db, &Residency::Everywhere, &changes);
    assert_eq!(q.tables_rebuilt_since(&p), 1);
    assert_eq!(q.n_flows(), p.n_flows() + 1);
    assert_eq!(
        q.describe(),
        Pipeline::compile(&w.db, &Residency::Everywhere).describe()
    );
    // Nothing changed: nothing rebuilt.
    let same = Changes::between(&w.db, &w.db, &Residency::Everywhere, &Residency::Everywhere);
    assert!(same.is_empty());
    assert_eq!(
        q.update(&w.db, &Residency::Everywhere, &same)
            .tables_rebuilt_since(&q),
        0
    );
}

/// Flows added one by one past 256 rows: the IDL's hash map grows and reorders its
/// rows, which moves ties in tables no added flow touches.
#[test]
fn the_idl_order_moving_reorders_untouched_tables() {
    let base = lflows::seed_acl();
    let mut w = World::new(base, HashSet::new());
    w.apply(&Step::SetPortGroup(1, 0b11));
    for set in 0..3 {
        w.apply(&Step::SetAddressSet(set, 0b101 << set));
    }
    let mut p = Pipeline::compile(&w.db, &Residency::Everywhere);
    let flows = microflows();
    let mut reordered = 0;
    for i in 0..40u8 {
        let old = w.db.clone();
        w.apply(&Step::AddAcl(i % 2 == 0, 2001, 1, i % 6, i % 3 == 0));
        let changes = Changes::between(&old, &w.db, &Residency::Everywhere, &Residency::Everywhere);
        let q = p.update(&w.db, &Residency::Everywhere, &changes);
        let full = Pipeline::compile(&w.db, &Residency::Everywhere);
        assert_eq!(
            q.describe(),
            full.describe(),
            "after {} flows",
            w.db.flows.len()
        );
        assert_eq!(traces(&q, &flows), traces(&full, &flows));
        reordered += usize::from(q.tables_rebuilt_since(&p) > 1);
        p = q;
    }
    assert!(w.db.flows.len() > 256);
    assert!(reordered > 0, "no step moved ties in another table");
}

/// The generated topology behind the scale benchmark (more switches, port groups named
/// per datapath, ACLs on them): it compiles without errors, and an ACL added or a port
/// joining a group updates to what a full compile gives.
#[test]
fn scaled_topology_updates_equal_full_compiles() {
    let db = lflows::scaled(600, 100, 100);
    let res = lflows::dmz_resident(&db);
    let p = Pipeline::compile(&db, &res);
    assert!(
        p.errors.is_empty(),
        "{:?}",
        &p.errors[..p.errors.len().min(3)]
    );
    let mut acl = db.clone();
    lflows::add_acl(&mut acl, 1);
    let q = p.recompile(&db, &acl, &res);
    assert_eq!(q.describe(), Pipeline::compile(&acl, &res).describe());
    assert!(q.tables_rebuilt_since(&p) >= 1);
    let mut pg = acl.clone();
    for (name, ports) in pg.port_groups.iter_mut() {
        if name == "pg0" || name == "1_pg0" {
            ports.push("dmz-k1".into());
        }
    }
    let r = q.recompile(&acl, &pg, &res);
    assert_eq!(r.describe(), Pipeline::compile(&pg, &res).describe());
}

/// Hundreds of flows added to one table at its top priority, one update each, then
/// removed again: tables are edited in place until the room between two flows' tie
/// orders runs out or removed flows' slots pile up, and then rebuilt. Every step equals
/// a full compile. Some flows share a match (one shadows the other in the classifier).
#[test]
fn many_edits_of_one_table_equal_full_compiles() {
    let base = lflows::seed_acl();
    let mut w = World::new(base, HashSet::new());
    w.apply(&Step::SetPortGroup(1, 0b1111));
    let dmz =
        w.db.datapaths
            .iter()
            .find(|d| d.name.as_deref() == Some("dmz"))
            .expect("dmz")
            .uuid;
    let res = Residency::Everywhere;
    let mut p = Pipeline::compile(&w.db, &res);
    let flows = microflows();
    let mut added = Vec::new();
    let step = |p: &Pipeline, old: &Database, new: &Database, touched: Uuid, check: bool| {
        let mut rows = TouchedRows::default();
        rows.flow(old, new, touched);
        let q = p.update(new, &res, &Changes::from_rows(old, new, &rows, &res, &res));
        if check {
            let full = Pipeline::compile(new, &res);
            assert_eq!(q.describe(), full.describe(), "{} flows", new.flows.len());
            assert_eq!(traces(&q, &flows), traces(&full, &flows));
        }
        q
    };
    for i in 0..300u128 {
        let old = w.db.clone();
        let uuid = Uuid(0x5eed_0000_0000_4000_8000_0000_0000_0000 ^ (i * 0x9e37_79b9_7f4a_7c15));
        w.db.flows.push(LogicalFlow {
            uuid,
            datapaths: vec![dmz],
            egress: true,
            table_id: 4,
            priority: 65535,
            match_: format!(
                "outport == @pg1 && ip4 && ip4.src == 10.0.{}.{}",
                i % 7,
                i % 5
            )
            .into(),
            actions: if i % 2 == 0 { "/* drop */" } else { "next;" }.into(),
            stage_name: Some("ls_out_acl".into()),
            source: None,
        });
        added.push(uuid);
        p = step(&p, &old, &w.db, uuid, i % 10 == 9 || i < 20);
    }
    for (i, uuid) in added.into_iter().enumerate() {
        let old = w.db.clone();
        w.db.flows.retain(|f| f.uuid != uuid);
        p = step(&p, &old, &w.db, uuid, i % 10 == 9 || i > 280);
    }
    assert_eq!(p.describe(), Pipeline::compile(&w.db, &res).describe());
}
