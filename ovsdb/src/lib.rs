//! OVSDB JSON-RPC client (RFC 7047, plus ovsdb-server(5)'s `monitor_cond`,
//! `monitor_cond_since`, `monitor_cond_change` and `set_db_change_aware`). It knows the
//! protocol, not any schema: what the tables mean is the caller's business.
//!
//! Start a client with a monitor; it connects, reconnects and resumes on its own:
//!
//! ```no_run
//! # async fn demo(sink: Box<dyn ovnest_ovsdb::MonitorSink>) -> Result<(), Box<dyn std::error::Error>> {
//! use ovnest_ovsdb::*;
//! let config = ClientConfig::new("unix:/run/ovn/ovnsb_db.sock".parse()?, "OVN_Southbound");
//! let tables = vec![TableMonitor::new("Chassis", &["name", "encaps"])];
//! let client = Client::start(config, Some(Monitor { tables, sink }));
//! // Narrow the monitor (monitor_cond_change), as ovn-controller does:
//! client
//!     .set_condition("Chassis", MonitorCondition::Any(vec![Clause::eq("name", Datum::atom("hv1"))]))
//!     .await?;
//! // Transact (RFC 7047 §4.1.3); named-uuid links rows inserted together:
//! let ops = vec![
//!     Operation::Insert {
//!         table: "Encap".into(),
//!         row: RowData::from([("type".into(), Datum::atom("geneve")), ("ip".into(), Datum::atom("10.0.0.1")), ("chassis_name".into(), Datum::atom("hv1"))]),
//!         uuid_name: Some("e".into()),
//!     },
//!     Operation::Insert {
//!         table: "Chassis".into(),
//!         row: RowData::from([("name".into(), Datum::atom("hv1")), ("encaps".into(), Datum::named_uuid("e"))]),
//!         uuid_name: None,
//!     },
//! ];
//! let results = client.transact(ops).await?; // [Inserted(uuid), Inserted(uuid)]
//! println!("{:?}", client.counters().snapshot());
//! # Ok(()) }
//! ```
//!
//! The [`MonitorSink`] sees the raw replica ([`Database`]) after every change; a typed
//! view of the tables (ovnest's Southbound replica is one) is built on it. `ssl:` remotes
//! take the PEM files OVS takes ([`SslConfig`] in [`ClientConfig::ssl`]).

mod client;
#[cfg(test)]
mod client_tests;
mod codec;
mod condition;
mod counters;
mod database;
mod datum;
mod error;
mod jsonrpc;
mod monitor;
mod remote;
mod schema;
mod ssl;
mod transact;
mod uuid;

pub use client::{Client, ClientConfig, ConnectionState, DbChange, Monitor, MonitorSink};
pub use codec::{CodecError, DEFAULT_MAX_MESSAGE, FrameDecoder};
pub use condition::{Clause, Function, MonitorCondition};
pub use counters::{CounterValues, Counters};
pub use database::{Database, RowView, Table, Touched};
pub use datum::{Atom, Atoms, Datum, DatumError};
pub use error::Error;
pub use jsonrpc::{Message, MessageError, RpcError};
pub use monitor::{
    MonitorMethod, RowUpdate, TableLayout, TableMonitor, TableUpdates, UpdateFormat, UpdatesError,
    layout,
};
pub use remote::{DEFAULT_PORT, Remote, RemoteError, Remotes};
pub use schema::{AtomicType, ColumnType, Schema, SchemaError, TableSchema};
pub use ssl::SslConfig;
pub use transact::{
    Mutation, Mutator, Operation, OperationResult, RowData, TransactionError, WaitUntil,
};
pub use uuid::{Uuid, UuidError};

/// Arbitrary JSON values for property tests (here and in users' tests, with the
/// `proptest` feature): the shapes of OVSDB messages, nested and broken.
#[cfg(any(test, feature = "proptest"))]
pub fn proptest_json() -> impl proptest::strategy::Strategy<Value = serde_json::Value> {
    use proptest::prelude::*;
    use serde_json::Value;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        "[a-z_\"\\\\{}\\[\\] ]{0,8}".prop_map(Value::String),
        Just(Value::String("48b8c51f-4146-410e-89b6-832c83d5689d".into())),
        Just(Value::String("set".into())),
        Just(Value::String("map".into())),
        Just(Value::String("uuid".into())),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map(
                prop_oneof![
                    "[a-z_]{1,6}",
                    Just("initial".to_string()),
                    Just("modify".to_string()),
                    Just("delete".to_string()),
                    Just("insert".to_string()),
                    Just("Port_Binding".to_string()),
                    Just("tag".to_string()),
                    Just("48b8c51f-4146-410e-89b6-832c83d5689d".to_string()),
                ],
                inner,
                0..5
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}
