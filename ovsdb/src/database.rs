//! The raw replica: the monitored rows, column values as [`Datum`]s, updated exactly as the
//! server describes (ovsdb-server(5) update2 semantics), with no knowledge of what the
//! tables mean. Typed views (ovnest's Southbound replica) are built from it.

use std::collections::HashMap;

use crate::counters::Counters;
use crate::datum::Datum;
use crate::monitor::{RowUpdate, TableLayout, TableUpdates};
use crate::schema::ColumnType;
use crate::uuid::Uuid;

/// One row: a value per monitored column, in the table's column order.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    values: Box<[Datum]>,
    /// Set when a value the server sent could not be decoded: the row's contents are not
    /// trustworthy until the server sends the row again whole.
    error: Option<String>,
}

/// One monitored table.
#[derive(Debug, Clone)]
pub struct Table {
    name: String,
    columns: Vec<(String, ColumnType)>,
    index: HashMap<String, usize>,
    rows: HashMap<Uuid, Row>,
}

/// A borrowed row with its table's column names, for reading values by name.
#[derive(Debug, Clone, Copy)]
pub struct RowView<'a> {
    table: &'a Table,
    row: &'a Row,
}

static EMPTY: Datum = Datum::empty_set();

impl<'a> RowView<'a> {
    /// The column's value; a column this server's schema lacks reads as an empty set, which
    /// typed readers turn into the column's natural default.
    pub fn get(&self, column: &str) -> &'a Datum {
        match self.table.index.get(column) {
            Some(&i) => &self.row.values[i],
            None => &EMPTY,
        }
    }

    /// Why the row could not be decoded, if it could not.
    pub fn error(&self) -> Option<&'a str> {
        self.row.error.as_deref()
    }
}

impl Table {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn row(&self, uuid: &Uuid) -> Option<RowView<'_>> {
        self.rows.get(uuid).map(|row| RowView { table: self, row })
    }

    pub fn rows(&self) -> impl Iterator<Item = (Uuid, RowView<'_>)> {
        self.rows
            .iter()
            .map(|(u, row)| (*u, RowView { table: self, row }))
    }

    pub fn uuids(&self) -> impl Iterator<Item = &Uuid> {
        self.rows.keys()
    }

    fn new_row(&self) -> Row {
        Row {
            values: self
                .columns
                .iter()
                .map(|(_, ty)| ty.default_datum())
                .collect(),
            error: None,
        }
    }

    /// Sets `column` in `row` from its JSON; `diff` applies a modify diff to set/map columns.
    fn set(&self, row: &mut Row, column: &str, value: &serde_json::Value, diff: bool) {
        let Some(&i) = self.index.get(column) else {
            return; // _version, or a column we did not ask for: ignored.
        };
        let ty = &self.columns[i].1;
        let datum = match Datum::from_json(value) {
            Ok(Datum::Set(v)) if v.is_empty() && ty.is_map() => Datum::empty_map(),
            Ok(d) => d,
            Err(e) => {
                row.error = Some(format!("column {column}: {e}"));
                return;
            }
        };
        if diff && ty.is_composite() {
            if let Err(e) = row.values[i].apply_diff(&datum) {
                row.error = Some(format!("column {column}: {e}"));
            }
        } else {
            row.values[i] = datum;
        }
    }
}

/// The rows an update touched (inserted, modified or deleted), by table name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Touched(HashMap<String, Vec<Uuid>>);

impl Touched {
    pub fn rows(&self, table: &str) -> &[Uuid] {
        self.0.get(table).map_or(&[], Vec::as_slice)
    }

    pub fn is_empty(&self) -> bool {
        self.0.values().all(Vec::is_empty)
    }
}

/// All monitored tables of one database.
#[derive(Debug, Clone, Default)]
pub struct Database {
    tables: Vec<Table>,
}

impl Database {
    /// An empty replica with the columns the monitor asked for on this connection.
    pub fn new(layout: Vec<TableLayout>) -> Database {
        let tables = layout
            .into_iter()
            .map(|(name, columns)| Table {
                index: columns
                    .iter()
                    .enumerate()
                    .map(|(i, (n, _))| (n.clone(), i))
                    .collect(),
                name,
                columns,
                rows: HashMap::new(),
            })
            .collect();
        Database { tables }
    }

    pub fn table(&self, name: &str) -> Option<&Table> {
        self.tables.iter().find(|t| t.name == name)
    }

    /// The same tables and columns, no rows: what a full snapshot is loaded into.
    pub fn empty_like(&self) -> Database {
        Database {
            tables: self
                .tables
                .iter()
                .map(|t| Table {
                    name: t.name.clone(),
                    columns: t.columns.clone(),
                    index: t.index.clone(),
                    rows: HashMap::new(),
                })
                .collect(),
        }
    }

    /// Applies one notification's (or reply's) updates. Malformed or inapplicable pieces are
    /// logged, counted in `bad_updates` and skipped; the rest is applied.
    pub fn apply(&mut self, updates: TableUpdates, counters: &Counters) -> Touched {
        for why in &updates.malformed {
            tracing::warn!("ovsdb: skipped malformed row update: {why}");
            Counters::inc(&counters.bad_updates);
        }
        let mut touched = Touched::default();
        for (name, rows) in updates.tables {
            let Some(table) = self.tables.iter_mut().find(|t| t.name == name) else {
                // A table we did not monitor: ignore (a newer server may add some).
                continue;
            };
            let list = touched.0.entry(name).or_default();
            list.reserve(rows.len());
            for (uuid, update) in rows {
                match update {
                    RowUpdate::Insert(cols) => {
                        let mut row = table.new_row();
                        for (c, v) in &cols {
                            table.set(&mut row, c, v, false);
                        }
                        table.rows.insert(uuid, row);
                    }
                    RowUpdate::Modify(cols) | RowUpdate::Replace(cols)
                        if !table.rows.contains_key(&uuid) =>
                    {
                        tracing::warn!(
                            "ovsdb: update for {}.{uuid} which the replica does not have: skipped",
                            table.name
                        );
                        let _ = cols;
                        Counters::inc(&counters.bad_updates);
                        continue;
                    }
                    RowUpdate::Modify(cols) => {
                        if let Some(mut row) = table.rows.remove(&uuid) {
                            for (c, v) in &cols {
                                table.set(&mut row, c, v, true);
                            }
                            table.rows.insert(uuid, row);
                        }
                    }
                    RowUpdate::Replace(cols) => {
                        if let Some(mut row) = table.rows.remove(&uuid) {
                            for (c, v) in &cols {
                                table.set(&mut row, c, v, false);
                            }
                            table.rows.insert(uuid, row);
                        }
                    }
                    RowUpdate::Delete => {
                        if table.rows.remove(&uuid).is_none() {
                            tracing::warn!(
                                "ovsdb: delete of {}.{uuid} which the replica does not have",
                                table.name
                            );
                            Counters::inc(&counters.bad_updates);
                            continue;
                        }
                    }
                }
                list.push(uuid);
            }
        }
        touched
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::{TableMonitor, UpdateFormat, layout};
    use crate::schema::tests_support::sb_schema;
    use serde_json::json;

    fn pb_db() -> Database {
        let spec = [TableMonitor::new(
            "Port_Binding",
            &[
                "logical_port",
                "tag",
                "mac",
                "options",
                "chassis",
                "up",
                "type",
                "tunnel_key",
            ],
        )];
        Database::new(layout(&spec, &sb_schema()))
    }

    fn apply(db: &mut Database, v: serde_json::Value) -> Touched {
        db.apply(
            TableUpdates::from_json(v, UpdateFormat::V2).unwrap(),
            &Counters::default(),
        )
    }

    const U: &str = "48b8c51f-4146-410e-89b6-832c83d5689d";

    #[test]
    fn initial_fills_defaults_and_modify_applies_diffs() {
        let mut db = pb_db();
        apply(
            &mut db,
            json!({"Port_Binding": {U: {"initial": {"logical_port": "c52", "tag": 52, "mac": "m1", "options": ["map", [["a", "1"], ["b", "2"]]]}}}}),
        );
        let t = db.table("Port_Binding").unwrap();
        let u = U.parse().unwrap();
        let r = t.row(&u).unwrap();
        assert_eq!(r.get("type"), &Datum::atom(""));
        assert_eq!(r.get("tunnel_key"), &Datum::atom(0));
        assert_eq!(r.get("up"), &Datum::empty_set());
        assert_eq!(r.get("chassis"), &Datum::empty_set());
        assert_eq!(r.get("not_monitored"), &Datum::empty_set());

        let touched = apply(
            &mut db,
            json!({"Port_Binding": {U: {"modify": {
                "tag": 53,
                "mac": ["set", ["m1", "m2"]],
                "options": ["map", [["a", "1"], ["b", "3"], ["c", "4"]]],
                "_version": ["uuid", "af8161db-82b2-44cd-ad5d-06209a995950"]
            }}}}),
        );
        assert_eq!(touched.rows("Port_Binding"), &[u]);
        let r = db.table("Port_Binding").unwrap().row(&u).unwrap();
        assert_eq!(r.get("tag"), &Datum::atom(53));
        assert_eq!(r.get("mac"), &Datum::atom("m2"));
        assert_eq!(r.get("options"), &Datum::map([("b", "3"), ("c", "4")]));
        assert!(r.error().is_none());

        // Optional columns are replaced, and an empty set clears them (task4-updates.jsonl).
        apply(
            &mut db,
            json!({"Port_Binding": {U: {"modify": {"chassis": ["uuid", "18def1d9-d961-489a-9496-aec15ec7e81d"], "up": true}}}}),
        );
        apply(
            &mut db,
            json!({"Port_Binding": {U: {"modify": {"chassis": ["set", []], "up": ["set", []]}}}}),
        );
        let r = db.table("Port_Binding").unwrap().row(&u).unwrap();
        assert_eq!(r.get("chassis"), &Datum::empty_set());
        assert_eq!(r.get("up"), &Datum::empty_set());

        apply(&mut db, json!({"Port_Binding": {U: {"delete": null}}}));
        assert!(db.table("Port_Binding").unwrap().is_empty());
    }

    #[test]
    fn inapplicable_updates_are_counted_not_fatal() {
        let mut db = pb_db();
        let c = Counters::default();
        let u =
            json!({"Port_Binding": {U: {"modify": {"tag": 1}}}, "Other": {U: {"delete": null}}});
        db.apply(TableUpdates::from_json(u, UpdateFormat::V2).unwrap(), &c);
        let u = json!({"Port_Binding": {U: {"delete": null}}});
        db.apply(TableUpdates::from_json(u, UpdateFormat::V2).unwrap(), &c);
        assert_eq!(c.snapshot().bad_updates, 2);
        // A malformed value marks the row instead of being dropped silently.
        apply(
            &mut db,
            json!({"Port_Binding": {U: {"insert": {"tag": ["set", 5]}}}}),
        );
        let r = db
            .table("Port_Binding")
            .unwrap()
            .row(&U.parse().unwrap())
            .unwrap();
        assert!(r.error().unwrap().contains("tag"));
    }
}
