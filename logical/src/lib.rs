//! OVN's logical pipeline as a library.
//!
//! The Southbound's Logical_Flow table is OVN's contract with a chassis. This crate
//! reads it as ovn-controller and ovn-trace do: the match and action languages of
//! ovn-sb(5) are lexed ([`lex`]), parsed against OVN's logical fields ([`symtab`],
//! [`expr`], [`actions`]), compiled per datapath and table into classifiers
//! ([`classifier`], [`pipeline`]) and executed on a packet model ([`flow`],
//! [`execute`]). The same interpreter gives `ovnest trace` its output ([`trace`](mod@trace)),
//! which is ovn-trace's, line for line, and gives the datapath its decisions.
//!
//! ```
//! use ovnest_logical::{db::*, pipeline::{Pipeline, Residency}, trace::Formats, TraceOptions};
//! let dp = Uuid(1);
//! let db = Database {
//!     datapaths: vec![Datapath { uuid: dp, tunnel_key: 1, name: Some("sw".into()), ..Default::default() }],
//!     ports: vec![
//!         Port { uuid: Uuid(2), name: "a".into(), datapath: dp, tunnel_key: 1, ..Default::default() },
//!         Port { uuid: Uuid(3), name: "b".into(), datapath: dp, tunnel_key: 2, ..Default::default() },
//!     ],
//!     flows: vec![
//!         LogicalFlow { uuid: Uuid(4 << 96), datapaths: vec![dp], table_id: 0, priority: 50,
//!             match_: "eth.dst == 02:00:00:00:00:02".into(), actions: "outport = \"b\"; output;".into(),
//!             ..Default::default() },
//!         LogicalFlow { uuid: Uuid(5 << 96), datapaths: vec![dp], egress: true, table_id: 0,
//!             priority: 0, match_: "1".into(), actions: "output;".into(), ..Default::default() },
//!     ],
//!     ..Default::default()
//! };
//! let p = Pipeline::compile(&db, &Residency::Everywhere);
//! let out = ovnest_logical::trace(&p, None, "inport == \"a\" && eth.dst == 02:00:00:00:00:02",
//!     &TraceOptions::default(), Formats { minimal: true, ..Default::default() }).unwrap();
//! assert!(out.ends_with("output(\"b\");\n"));
//! ```

pub mod actions;
pub mod classifier;
pub mod conntrack;
pub mod db;
pub mod execute;
pub mod expr;
pub mod flow;
pub mod idl_order;
pub mod lex;
pub mod microflow;
pub mod pipeline;
pub mod symtab;
pub mod trace;
pub mod value;

pub use execute::{Decision, Interpreter, Semantics, TraceOptions};
pub use pipeline::Pipeline;

use expr::Sets;

/// What `ovn-trace [--minimal|--detailed|--summary] [DATAPATH] MICROFLOW` prints for
/// the same inputs, or its error text.
pub fn trace(
    p: &Pipeline,
    datapath: Option<&str>,
    microflow: &str,
    opts: &TraceOptions,
    formats: trace::Formats,
) -> Result<String, String> {
    let sets = p.sets();
    let dp = match datapath {
        Some(name) => p
            .datapath_by_name(name)
            .ok_or_else(|| format!("unknown datapath \"{name}\"\n"))?,
        None => {
            let port = microflow::find_inport(microflow, sets)
                .map_err(|e| format!("error parsing flow: {e}\n"))?;
            let id = p
                .port_id(&port)
                .ok_or_else(|| format!("unknown port \"{port}\"\n"))?;
            p.port(id).dp
        }
    };
    let mut flow = microflow::parse(microflow, sets, &|name| p.lookup_port(dp, name))
        .map_err(|e| format!("error parsing flow: {e}\n"))?;
    let mut it = Interpreter::new(p, trace::Tree::default(), Semantics::Trace, opts.clone());
    let start = flow;
    it.run(dp, &mut flow);
    Ok(trace::render(&start, &it.sink, formats))
}

impl Pipeline {
    fn sets(&self) -> &Sets {
        &self.sets
    }
}
