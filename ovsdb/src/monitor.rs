//! Monitors: what to ask for (`monitor_cond_since`, `monitor_cond`, `monitor`) and how to
//! read what comes back (`update3`, `update2`, `update`).
//!
//! - RFC 7047 §4.1.5/§4.1.6: `monitor` and its `update` notification, whose rows carry
//!   `old`/`new` with full column values.
//! - ovsdb-server(5) "Monitor_cond": `monitor_cond`/`update2`, whose rows carry one of
//!   `initial`, `insert`, `modify` (set/map columns as diffs), `delete`.
//! - ovsdb-server(5) "Monitor_cond_since": `monitor_cond_since`/`update3`, the same rows
//!   plus the id of the last transaction, so a reconnect can resume from it.

use serde_json::{Map, Value, json};

use crate::condition::MonitorCondition;
use crate::schema::{ColumnType, Schema};
use crate::uuid::Uuid;

/// What to monitor in one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableMonitor {
    pub table: String,
    /// Columns wanted; ones the server's schema lacks are left out of the request (their
    /// values read as defaults). Empty means every column of the schema.
    pub columns: Vec<String>,
    pub condition: MonitorCondition,
}

impl TableMonitor {
    pub fn new(table: impl Into<String>, columns: &[&str]) -> TableMonitor {
        TableMonitor {
            table: table.into(),
            columns: columns.iter().map(|c| (*c).to_owned()).collect(),
            condition: MonitorCondition::All,
        }
    }

    pub fn with_condition(mut self, condition: MonitorCondition) -> TableMonitor {
        self.condition = condition;
        self
    }
}

/// The monitor method in use, newest first; a server that answers "unknown method" gets
/// the next one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MonitorMethod {
    CondSince,
    Cond,
    Plain,
}

impl MonitorMethod {
    pub fn name(self) -> &'static str {
        match self {
            MonitorMethod::CondSince => "monitor_cond_since",
            MonitorMethod::Cond => "monitor_cond",
            MonitorMethod::Plain => "monitor",
        }
    }

    pub fn fallback(self) -> Option<MonitorMethod> {
        match self {
            MonitorMethod::CondSince => Some(MonitorMethod::Cond),
            MonitorMethod::Cond => Some(MonitorMethod::Plain),
            MonitorMethod::Plain => None,
        }
    }

    pub fn supports_conditions(self) -> bool {
        self != MonitorMethod::Plain
    }
}

/// The columns one table is monitored with on this connection.
pub type TableLayout = (String, Vec<(String, ColumnType)>);

/// Intersects the wanted tables and columns with the server's schema. Tables the server
/// does not have are left out (a newer client against an older server keeps working).
pub fn layout(spec: &[TableMonitor], schema: &Schema) -> Vec<TableLayout> {
    let mut out = Vec::with_capacity(spec.len());
    for t in spec {
        let Some(ts) = schema.tables.get(&t.table) else {
            tracing::warn!(
                "ovsdb: table {} is not in schema {} {}: not monitored",
                t.table,
                schema.name,
                schema.version
            );
            continue;
        };
        let mut cols: Vec<(String, ColumnType)> = if t.columns.is_empty() {
            ts.columns
                .iter()
                .map(|(n, ty)| (n.clone(), ty.clone()))
                .collect()
        } else {
            t.columns
                .iter()
                .filter_map(|c| match ts.columns.get(c) {
                    Some(ty) => Some((c.clone(), ty.clone())),
                    None => {
                        tracing::info!(
                            "ovsdb: column {}.{c} is not in this schema; it reads as its default",
                            t.table
                        );
                        None
                    }
                })
                .collect()
        };
        cols.sort_by(|a, b| a.0.cmp(&b.0));
        cols.dedup_by(|a, b| a.0 == b.0);
        out.push((t.table.clone(), cols));
    }
    out
}

/// The `<monitor-requests>` object for `method`.
pub fn requests(spec: &[TableMonitor], layout: &[TableLayout], method: MonitorMethod) -> Value {
    let mut o = Map::new();
    for (table, cols) in layout {
        let names: Vec<&str> = cols.iter().map(|(n, _)| n.as_str()).collect();
        let req = match method {
            MonitorMethod::Plain => json!({"columns": names}),
            _ => {
                let cond = spec
                    .iter()
                    .find(|t| &t.table == table)
                    .map(|t| t.condition.clone())
                    .unwrap_or_default();
                json!([{"columns": names, "where": cond.to_json()}])
            }
        };
        o.insert(table.clone(), req);
    }
    Value::Object(o)
}

/// One row's change, before column values are decoded (that needs the column types).
#[derive(Debug, Clone, PartialEq)]
pub enum RowUpdate {
    /// `initial` or `insert` (update2/3), or `new` without `old` (update): the columns
    /// present; missing ones are at their default.
    Insert(Map<String, Value>),
    /// `modify` (update2/3): new values for scalar columns, diffs for set/map columns.
    Modify(Map<String, Value>),
    /// `new` with `old` (update): full new values of the monitored columns.
    Replace(Map<String, Value>),
    Delete,
}

/// The updates of one notification or monitor reply, table by table.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TableUpdates {
    pub tables: Vec<(String, Vec<(Uuid, RowUpdate)>)>,
    /// Row updates that were malformed and skipped, with why.
    pub malformed: Vec<String>,
}

/// An update that is not even a `<table-updates>` object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed table updates: {0}")]
pub struct UpdatesError(pub &'static str);

/// Which notification format a value is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateFormat {
    /// `update` (RFC 7047 §4.1.6).
    V1,
    /// `update2` and `update3`.
    V2,
}

impl TableUpdates {
    /// Decodes `<table-updates>` (or `<table-updates2>`) without copying column values.
    pub fn from_json(value: Value, format: UpdateFormat) -> Result<TableUpdates, UpdatesError> {
        let Value::Object(tables) = value else {
            return Err(UpdatesError("not an object"));
        };
        let mut out = TableUpdates {
            tables: Vec::with_capacity(tables.len()),
            malformed: Vec::new(),
        };
        for (table, rows) in tables {
            let Value::Object(rows) = rows else {
                out.malformed
                    .push(format!("{table}: rows are not an object"));
                continue;
            };
            let mut list = Vec::with_capacity(rows.len());
            for (uuid, update) in rows {
                let Ok(uuid) = uuid.parse::<Uuid>() else {
                    out.malformed
                        .push(format!("{table}: row key {uuid:?} is not a UUID"));
                    continue;
                };
                match decode_row(update, format) {
                    Ok(u) => list.push((uuid, u)),
                    Err(why) => out.malformed.push(format!("{table} {uuid}: {why}")),
                }
            }
            out.tables.push((table, list));
        }
        Ok(out)
    }

    pub fn is_empty(&self) -> bool {
        self.tables.iter().all(|(_, rows)| rows.is_empty())
    }
}

fn decode_row(update: Value, format: UpdateFormat) -> Result<RowUpdate, &'static str> {
    let Value::Object(mut o) = update else {
        return Err("row update is not an object");
    };
    let cols = |v: Value| match v {
        Value::Object(m) => Ok(m),
        _ => Err("row is not an object"),
    };
    match format {
        UpdateFormat::V2 => {
            if o.len() != 1 {
                return Err("row update2 must have exactly one of initial/insert/modify/delete");
            }
            if let Some(v) = o.remove("initial").or_else(|| o.remove("insert")) {
                return Ok(RowUpdate::Insert(cols(v)?));
            }
            if let Some(v) = o.remove("modify") {
                return Ok(RowUpdate::Modify(cols(v)?));
            }
            if o.remove("delete").is_some() {
                return Ok(RowUpdate::Delete);
            }
            Err("unknown row update2 kind")
        }
        UpdateFormat::V1 => match (o.remove("old"), o.remove("new")) {
            (None, Some(new)) => Ok(RowUpdate::Insert(cols(new)?)),
            (Some(_), Some(new)) => Ok(RowUpdate::Replace(cols(new)?)),
            (Some(_), None) => Ok(RowUpdate::Delete),
            (None, None) => Err("row update has neither old nor new"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::condition::Clause;
    use crate::datum::Datum;

    #[test]
    fn decodes_all_row_kinds() {
        let v = json!({"Port_Binding": {
            "48b8c51f-4146-410e-89b6-832c83d5689d": {"modify": {"tag": 53}},
            "af7cc177-f4af-499b-a150-f36294fdec0d": {"delete": null},
            "dad425a3-ac89-4234-9d51-bccf63fad547": {"initial": {"logical_port": "dmz-vm5"}},
            "not-a-uuid": {"delete": null},
            "c7b5c042-49d2-4431-9a00-2dfb2c32a034": {"frobnicate": {}}
        }});
        let u = TableUpdates::from_json(v, UpdateFormat::V2).unwrap();
        assert_eq!(u.tables[0].1.len(), 3);
        assert_eq!(u.malformed.len(), 2);
        let v1 = json!({"Port_Binding": {
            "48b8c51f-4146-410e-89b6-832c83d5689d": {"new": {"tag": 53}, "old": {"tag": 52}},
            "af7cc177-f4af-499b-a150-f36294fdec0d": {"old": {"tag": 1}},
            "dad425a3-ac89-4234-9d51-bccf63fad547": {"new": {"tag": 2}}
        }});
        let u = TableUpdates::from_json(v1, UpdateFormat::V1).unwrap();
        let kinds: Vec<_> = u.tables[0]
            .1
            .iter()
            .map(|(_, r)| std::mem::discriminant(r))
            .collect();
        assert!(kinds.contains(&std::mem::discriminant(&RowUpdate::Delete)));
        assert!(TableUpdates::from_json(json!([1]), UpdateFormat::V2).is_err());
    }

    #[test]
    fn requests_follow_the_schema_and_method() {
        let schema = crate::schema::tests_support::sb_schema();
        let spec = vec![
            TableMonitor::new(
                "Port_Binding",
                &["logical_port", "tag", "column_from_the_future"],
            )
            .with_condition(MonitorCondition::Any(vec![Clause::eq(
                "parent_port",
                Datum::atom("dmz-vm5"),
            )])),
            TableMonitor::new("Table_From_The_Future", &["x"]),
        ];
        let l = layout(&spec, &schema);
        assert_eq!(l.len(), 1);
        assert_eq!(
            l[0].1.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
            ["logical_port", "tag"]
        );
        assert_eq!(
            requests(&spec, &l, MonitorMethod::CondSince),
            json!({"Port_Binding": [{"columns": ["logical_port", "tag"], "where": [["parent_port", "==", "dmz-vm5"]]}]})
        );
        assert_eq!(
            requests(&spec, &l, MonitorMethod::Plain),
            json!({"Port_Binding": {"columns": ["logical_port", "tag"]}})
        );
    }
}
