//! The `transact` method (RFC 7047 §4.1.3) and its operations (§5.2).
//!
//! Build a `Vec<Operation>`, pass it to [`Client::transact`](super::Client::transact), get
//! one [`OperationResult`] per operation. If any operation fails the whole transaction is
//! aborted (§4.1.3) and `transact` returns [`Error::Transaction`](super::Error::Transaction)
//! naming the first failed operation.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::condition::Clause;
use crate::datum::Datum;
use crate::uuid::Uuid;

/// A row to insert or the columns to update (§5.1 `<row>`).
pub type RowData = BTreeMap<String, Datum>;

/// RFC 7047 §5.1 `<mutator>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutator {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Insert,
    Delete,
}

impl Mutator {
    pub fn as_str(self) -> &'static str {
        match self {
            Mutator::Add => "+=",
            Mutator::Sub => "-=",
            Mutator::Mul => "*=",
            Mutator::Div => "/=",
            Mutator::Mod => "%=",
            Mutator::Insert => "insert",
            Mutator::Delete => "delete",
        }
    }
}

/// `[column, mutator, value]` (§5.1 `<mutation>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mutation {
    pub column: String,
    pub mutator: Mutator,
    pub value: Datum,
}

impl Mutation {
    pub fn new(column: impl Into<String>, mutator: Mutator, value: Datum) -> Mutation {
        Mutation {
            column: column.into(),
            mutator,
            value,
        }
    }
}

/// The `until` of a `wait` operation (§5.2.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitUntil {
    Equal,
    NotEqual,
}

/// One operation of a transaction (§5.2).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Operation {
    /// §5.2.1. `uuid_name` lets later operations refer to the new row as
    /// `Datum::named_uuid(name)`.
    Insert {
        table: String,
        row: RowData,
        uuid_name: Option<String>,
    },
    /// §5.2.2.
    Select {
        table: String,
        conditions: Vec<Clause>,
        columns: Option<Vec<String>>,
    },
    /// §5.2.3.
    Update {
        table: String,
        conditions: Vec<Clause>,
        row: RowData,
    },
    /// §5.2.4.
    Mutate {
        table: String,
        conditions: Vec<Clause>,
        mutations: Vec<Mutation>,
    },
    /// §5.2.5.
    Delete {
        table: String,
        conditions: Vec<Clause>,
    },
    /// §5.2.6: abort unless the selected rows' `columns` are (not) exactly `rows` within
    /// `timeout_ms` (0: check once).
    Wait {
        table: String,
        conditions: Vec<Clause>,
        columns: Vec<String>,
        until: WaitUntil,
        rows: Vec<RowData>,
        timeout_ms: Option<u64>,
    },
    /// §5.2.7: a comment the server writes to its log.
    Comment(String),
}

fn row_json(row: &RowData) -> Value {
    Value::Object(
        row.iter()
            .map(|(k, v)| (k.clone(), v.to_json()))
            .collect::<Map<_, _>>(),
    )
}

fn where_json(conditions: &[Clause]) -> Value {
    Value::Array(conditions.iter().map(Clause::to_json).collect())
}

impl Operation {
    pub fn to_json(&self) -> Value {
        match self {
            Operation::Insert {
                table,
                row,
                uuid_name,
            } => {
                let mut o = json!({"op": "insert", "table": table, "row": row_json(row)});
                if let (Some(name), Some(map)) = (uuid_name, o.as_object_mut()) {
                    map.insert("uuid-name".into(), json!(name));
                }
                o
            }
            Operation::Select {
                table,
                conditions,
                columns,
            } => {
                let mut o =
                    json!({"op": "select", "table": table, "where": where_json(conditions)});
                if let (Some(cols), Some(map)) = (columns, o.as_object_mut()) {
                    map.insert("columns".into(), json!(cols));
                }
                o
            }
            Operation::Update {
                table,
                conditions,
                row,
            } => {
                json!({"op": "update", "table": table, "where": where_json(conditions), "row": row_json(row)})
            }
            Operation::Mutate {
                table,
                conditions,
                mutations,
            } => json!({
                "op": "mutate", "table": table, "where": where_json(conditions),
                "mutations": mutations.iter().map(|m| json!([m.column, m.mutator.as_str(), m.value.to_json()])).collect::<Vec<_>>(),
            }),
            Operation::Delete { table, conditions } => {
                json!({"op": "delete", "table": table, "where": where_json(conditions)})
            }
            Operation::Wait {
                table,
                conditions,
                columns,
                until,
                rows,
                timeout_ms,
            } => {
                let mut o = json!({
                    "op": "wait", "table": table, "where": where_json(conditions), "columns": columns,
                    "until": match until { WaitUntil::Equal => "==", WaitUntil::NotEqual => "!=" },
                    "rows": rows.iter().map(row_json).collect::<Vec<_>>(),
                });
                if let (Some(t), Some(map)) = (timeout_ms, o.as_object_mut()) {
                    map.insert("timeout".into(), json!(t));
                }
                o
            }
            Operation::Comment(c) => json!({"op": "comment", "comment": c}),
        }
    }
}

/// The result of one successful operation (§5.2).
#[derive(Debug, Clone, PartialEq)]
pub enum OperationResult {
    /// `insert`: the new row's UUID.
    Inserted(Uuid),
    /// `update`, `mutate`, `delete`: how many rows matched.
    Count(u64),
    /// `select`: the rows, as raw JSON column values.
    Rows(Vec<Map<String, Value>>),
    /// `wait`, `comment` and the like.
    Empty,
}

/// A transaction the server refused (§4.1.3): the first failing operation's index, or
/// `None` when the failure is the commit itself (an extra trailing error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("transaction failed at {}: {error}{}", index.map_or("commit".to_string(), |i| format!("operation {i}")), details.as_ref().map(|d| format!(" ({d})")).unwrap_or_default())]
pub struct TransactionError {
    pub index: Option<usize>,
    pub error: String,
    pub details: Option<String>,
}

/// Reads a `transact` result array (§4.1.3).
pub(crate) fn parse_results(
    n_ops: usize,
    result: &Value,
) -> Result<Vec<OperationResult>, TransactionError> {
    let malformed = |why: &str| TransactionError {
        index: None,
        error: "malformed reply".into(),
        details: Some(why.into()),
    };
    let items = result
        .as_array()
        .ok_or_else(|| malformed("result is not an array"))?;
    let mut out = Vec::with_capacity(n_ops);
    for (i, item) in items.iter().enumerate() {
        let Some(o) = item.as_object() else {
            // Operations after a failed one get null results.
            if item.is_null() {
                continue;
            }
            return Err(malformed("result element is not an object"));
        };
        if let Some(e) = o.get("error").filter(|e| !e.is_null()) {
            return Err(TransactionError {
                index: (i < n_ops).then_some(i),
                error: e.as_str().unwrap_or("unspecified error").to_owned(),
                details: o.get("details").and_then(Value::as_str).map(str::to_owned),
            });
        }
        if i >= n_ops {
            continue;
        }
        let r = if let Some(u) = o.get("uuid") {
            match crate::datum::Atom::from_json(u) {
                Ok(crate::Atom::Uuid(u)) => OperationResult::Inserted(u),
                _ => return Err(malformed("bad uuid in insert result")),
            }
        } else if let Some(c) = o.get("count") {
            OperationResult::Count(c.as_u64().ok_or_else(|| malformed("bad count"))?)
        } else if let Some(rows) = o.get("rows") {
            let rows = rows
                .as_array()
                .ok_or_else(|| malformed("rows is not an array"))?;
            OperationResult::Rows(rows.iter().filter_map(|r| r.as_object().cloned()).collect())
        } else {
            OperationResult::Empty
        };
        out.push(r);
    }
    if out.len() != n_ops {
        return Err(malformed("fewer results than operations"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_chassis_add_like_ovn_sbctl() {
        // shared/reference/ovn-23.03/ovsdb-wire/ovn-sbctl-chassis-add-transact.log
        let ops = [
            Operation::Insert {
                table: "Encap".into(),
                row: RowData::from([
                    ("ip".into(), Datum::atom("127.0.0.2")),
                    ("chassis_name".into(), Datum::atom("hv2")),
                    ("options".into(), Datum::map([("csum", "true")])),
                    ("type".into(), Datum::atom("geneve")),
                ]),
                uuid_name: Some("encap".into()),
            },
            Operation::Insert {
                table: "Chassis".into(),
                row: RowData::from([
                    ("name".into(), Datum::atom("hv2")),
                    ("encaps".into(), Datum::named_uuid("encap")),
                ]),
                uuid_name: None,
            },
        ];
        assert_eq!(
            ops[1].to_json(),
            json!({"op": "insert", "table": "Chassis", "row": {"encaps": ["named-uuid", "encap"], "name": "hv2"}})
        );
        assert_eq!(ops[0].to_json()["uuid-name"], "encap");
        assert_eq!(
            ops[0].to_json()["row"]["options"],
            json!(["map", [["csum", "true"]]])
        );
    }

    #[test]
    fn parses_results_and_errors() {
        let ok =
            json!([{"uuid": ["uuid", "388b9291-76c1-4d2a-bddd-9dce1bb54ada"]}, {"count": 1}, {}]);
        let r = parse_results(3, &ok).unwrap();
        assert!(matches!(r[0], OperationResult::Inserted(_)));
        assert_eq!(r[1], OperationResult::Count(1));
        assert_eq!(r[2], OperationResult::Empty);
        let failed =
            json!([{"count": 1}, {"error": "constraint violation", "details": "no"}, null]);
        let e = parse_results(3, &failed).unwrap_err();
        assert_eq!(e.index, Some(1));
        let commit = json!([{}, {"error": "referential integrity violation"}]);
        assert_eq!(parse_results(1, &commit).unwrap_err().index, None);
        assert!(parse_results(2, &json!([{}])).is_err());
        assert!(parse_results(1, &json!("x")).is_err());
    }
}
