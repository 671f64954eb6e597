//! Conditions: `where` clauses of `transact` operations (RFC 7047 §5.1 `<condition>`) and
//! the per-table conditions of `monitor_cond` (ovsdb-server(5) "Monitor_cond").

use serde_json::{Value, json};

use crate::datum::Datum;

/// RFC 7047 §5.1 `<function>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Function {
    Lt,
    Le,
    Eq,
    Ne,
    Ge,
    Gt,
    Includes,
    Excludes,
}

impl Function {
    pub fn as_str(self) -> &'static str {
        match self {
            Function::Lt => "<",
            Function::Le => "<=",
            Function::Eq => "==",
            Function::Ne => "!=",
            Function::Ge => ">=",
            Function::Gt => ">",
            Function::Includes => "includes",
            Function::Excludes => "excludes",
        }
    }
}

/// `[column, function, value]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clause {
    pub column: String,
    pub function: Function,
    pub value: Datum,
}

impl Clause {
    pub fn new(column: impl Into<String>, function: Function, value: Datum) -> Clause {
        Clause {
            column: column.into(),
            function,
            value,
        }
    }

    /// `column == value`, the common case.
    pub fn eq(column: impl Into<String>, value: Datum) -> Clause {
        Clause::new(column, Function::Eq, value)
    }

    pub fn to_json(&self) -> Value {
        json!([self.column, self.function.as_str(), self.value.to_json()])
    }
}

/// Which rows of a table a monitor sends. In `monitor_cond` the clauses of a table's
/// condition are OR-ed (observed on OVN 23.03: `[["logical_port","==","dmz-vm1"],
/// ["logical_port","==","dmz-vm2"]]` selects both ports).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum MonitorCondition {
    /// Every row (`[true]`).
    #[default]
    All,
    /// No row (`[false]`).
    Nothing,
    /// Rows matching at least one clause. An empty list selects nothing (it is sent as
    /// `[false]`: the server would read `[]` as "all", which an empty OR is not).
    Any(Vec<Clause>),
}

impl MonitorCondition {
    pub fn to_json(&self) -> Value {
        match self {
            MonitorCondition::All => json!([true]),
            MonitorCondition::Nothing => json!([false]),
            MonitorCondition::Any(v) if v.is_empty() => json!([false]),
            MonitorCondition::Any(v) => Value::Array(v.iter().map(Clause::to_json).collect()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datum::Datum;

    #[test]
    fn encodes_like_ovn_controller() {
        let u = "3cd26caa-fb38-42b9-832f-bc3dcbe6e04f".parse().unwrap();
        let c = MonitorCondition::Any(vec![
            Clause::eq("parent_port", Datum::atom("dmz-vm5")),
            Clause::eq("chassis", Datum::atom(crate::Atom::Uuid(u))),
            Clause::new(
                "options",
                Function::Includes,
                Datum::map([("l2gateway-chassis", "hv1")]),
            ),
        ]);
        assert_eq!(
            c.to_json(),
            json!([
                ["parent_port", "==", "dmz-vm5"],
                [
                    "chassis",
                    "==",
                    ["uuid", "3cd26caa-fb38-42b9-832f-bc3dcbe6e04f"]
                ],
                [
                    "options",
                    "includes",
                    ["map", [["l2gateway-chassis", "hv1"]]]
                ]
            ])
        );
        assert_eq!(MonitorCondition::Any(vec![]).to_json(), json!([false]));
        assert_eq!(MonitorCondition::All.to_json(), json!([true]));
    }
}
