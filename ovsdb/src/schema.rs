//! Database schemas (RFC 7047 §3.2), as `get_schema` returns them (§4.1.2).
//!
//! The client needs only three things from a schema: which tables and columns exist (so a
//! monitor asks for nothing an older server lacks), whether a column is a set/map with more
//! than one element allowed (its `update2` "modify" values are diffs, not new values), and
//! each column's default (rows in "initial"/"insert" omit columns at their default).

use std::collections::HashMap;

use serde_json::Value;

use crate::datum::{Atom, Atoms, Datum};
use crate::uuid::Uuid;

/// The atomic types of RFC 7047 §3.2 `<atomic-type>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AtomicType {
    Integer,
    Real,
    Boolean,
    String,
    Uuid,
}

impl AtomicType {
    fn parse(s: &str) -> Option<AtomicType> {
        Some(match s {
            "integer" => AtomicType::Integer,
            "real" => AtomicType::Real,
            "boolean" => AtomicType::Boolean,
            "string" => AtomicType::String,
            "uuid" => AtomicType::Uuid,
            _ => return None,
        })
    }

    /// The default atom of the type (RFC 7047 §5.1 does not say; ovsdb-server uses these).
    pub fn default_atom(self) -> Atom {
        match self {
            AtomicType::Integer => Atom::Integer(0),
            AtomicType::Real => Atom::Real(0.0),
            AtomicType::Boolean => Atom::Boolean(false),
            AtomicType::String => Atom::String(String::new()),
            AtomicType::Uuid => Atom::Uuid(Uuid::ZERO),
        }
    }
}

/// A column's type (RFC 7047 §3.2 `<type>`); constraints other than the ones the client
/// needs (enum, min/max values, refTable) are not kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnType {
    pub key: AtomicType,
    pub value: Option<AtomicType>,
    pub min: u64,
    /// `None` for "unlimited".
    pub max: Option<u64>,
}

impl ColumnType {
    /// True when the column may hold more than one element: its `update2` "modify" value
    /// is a diff (ovsdb-server(5); OVS's `ovsdb_type_is_composite`). Scalars and optional
    /// (0..1) columns carry the new value instead, an empty set meaning "cleared".
    pub fn is_composite(&self) -> bool {
        self.max != Some(1)
    }

    pub fn is_map(&self) -> bool {
        self.value.is_some()
    }

    /// The value of a column the server left out of a row.
    pub fn default_datum(&self) -> Datum {
        match (self.min, self.value) {
            (0, None) => Datum::empty_set(),
            (0, Some(_)) => Datum::empty_map(),
            (_, None) => Datum::Set(Atoms::one(self.key.default_atom())),
            (_, Some(v)) => Datum::Map(vec![(self.key.default_atom(), v.default_atom())]),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TableSchema {
    pub columns: HashMap<String, ColumnType>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Schema {
    pub name: String,
    pub version: String,
    pub cksum: Option<String>,
    pub tables: HashMap<String, TableSchema>,
}

/// A `get_schema` result that is not a schema.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad schema: {0}")]
pub struct SchemaError(pub String);

impl Schema {
    pub fn from_json(value: &Value) -> Result<Schema, SchemaError> {
        let obj = value
            .as_object()
            .ok_or_else(|| SchemaError("not an object".into()))?;
        let name = obj
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| SchemaError("no name".into()))?;
        let tables_json = obj
            .get("tables")
            .and_then(Value::as_object)
            .ok_or_else(|| SchemaError("no tables".into()))?;
        let mut tables = HashMap::with_capacity(tables_json.len());
        for (tname, t) in tables_json {
            let cols = t
                .get("columns")
                .and_then(Value::as_object)
                .ok_or_else(|| SchemaError(format!("table {tname} has no columns")))?;
            let mut columns = HashMap::with_capacity(cols.len());
            for (cname, c) in cols {
                let ty = c
                    .get("type")
                    .and_then(parse_type)
                    .ok_or_else(|| SchemaError(format!("column {tname}.{cname} has a bad type")))?;
                columns.insert(cname.clone(), ty);
            }
            tables.insert(tname.clone(), TableSchema { columns });
        }
        Ok(Schema {
            name: name.to_owned(),
            version: obj
                .get("version")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
            cksum: obj.get("cksum").and_then(Value::as_str).map(str::to_owned),
            tables,
        })
    }

    pub fn column(&self, table: &str, column: &str) -> Option<&ColumnType> {
        self.tables.get(table)?.columns.get(column)
    }
}

fn parse_base(v: &Value) -> Option<AtomicType> {
    match v {
        Value::String(s) => AtomicType::parse(s),
        Value::Object(o) => AtomicType::parse(o.get("type")?.as_str()?),
        _ => None,
    }
}

fn parse_type(v: &Value) -> Option<ColumnType> {
    match v {
        Value::String(_) => Some(ColumnType {
            key: parse_base(v)?,
            value: None,
            min: 1,
            max: Some(1),
        }),
        Value::Object(o) => {
            let key = parse_base(o.get("key")?)?;
            let value = match o.get("value") {
                Some(v) => Some(parse_base(v)?),
                None => None,
            };
            let min = match o.get("min") {
                Some(m) => m.as_u64()?,
                None => 1,
            };
            let max = match o.get("max") {
                Some(Value::String(s)) if s == "unlimited" => None,
                Some(m) => Some(m.as_u64()?),
                None => Some(1),
            };
            Some(ColumnType {
                key,
                value,
                min,
                max,
            })
        }
        _ => None,
    }
}

#[cfg(test)]
pub(crate) mod tests_support {
    use super::*;

    pub(crate) fn sb_schema() -> Schema {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/data/ovsdb-wire/rpc-basic.json"
        );
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        for line in text.lines() {
            let v: Value = serde_json::from_str(line).unwrap();
            if v["msg"]["id"] == 1 && v["dir"] == "<-" {
                return Schema::from_json(&v["msg"]["result"]).unwrap();
            }
        }
        panic!("no get_schema reply in rpc-basic.json");
    }
}

#[cfg(test)]
mod tests {
    use super::tests_support::sb_schema;
    use super::*;

    #[test]
    fn parses_the_real_southbound_schema() {
        let s = sb_schema();
        assert_eq!(s.name, "OVN_Southbound");
        assert_eq!(s.version, "20.27.0");
        let tag = s.column("Port_Binding", "tag").unwrap();
        assert_eq!(
            (tag.key, tag.min, tag.max),
            (AtomicType::Integer, 0, Some(1))
        );
        assert!(!tag.is_composite());
        assert_eq!(tag.default_datum(), Datum::empty_set());
        let mac = s.column("Port_Binding", "mac").unwrap();
        assert!(mac.is_composite() && !mac.is_map());
        let options = s.column("Port_Binding", "options").unwrap();
        assert!(options.is_composite() && options.is_map());
        assert_eq!(options.default_datum(), Datum::empty_map());
        let tk = s.column("Port_Binding", "tunnel_key").unwrap();
        assert_eq!(tk.default_datum(), Datum::atom(0));
        assert_eq!(
            s.column("Port_Binding", "type").unwrap().default_datum(),
            Datum::atom("")
        );
        assert!(s.column("Port_Binding", "no_such").is_none());
    }
}
