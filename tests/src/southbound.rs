//! The Southbound as the agent reads it, for tests on real ovn-northd: the database
//! fetched once northd is done, the ports' tunnel keys, and the logical pipeline compiled
//! with the lab's local ports resident.

use std::{collections::BTreeMap, collections::HashSet, sync::Arc, time::Duration};

use ovnest_common::PortKey;
use ovnest_logical::{Pipeline, db::Database, pipeline::Residency};

use crate::{fixtures::lab, ovn::OvnCentral};

/// The Southbound once northd has caught up with the NB.
pub fn fetch(ovn: &OvnCentral) -> Database {
    ovn.sync();
    let remotes = ovn.sb_remote().parse().expect("SB remote");
    tokio::runtime::Runtime::new()
        .expect("runtime")
        .block_on(ovnest::lflow::fetch(remotes, Duration::from_secs(30)))
        .expect("fetch the Southbound")
}

/// Every port's (datapath, port) tunnel keys, by name.
pub fn port_keys(db: &Database) -> BTreeMap<String, PortKey> {
    let datapath_key: BTreeMap<_, _> = db
        .datapaths
        .iter()
        .map(|d| (d.uuid, d.tunnel_key))
        .collect();
    db.ports
        .iter()
        .map(|p| {
            let key = PortKey {
                datapath: datapath_key[&p.datapath],
                port: p.tunnel_key,
            };
            (p.name.clone(), key)
        })
        .collect()
}

/// The pipeline as this chassis compiles it: the lab's local ports resident, and `extra`
/// (a gateway's chassisredirect port, a port on the spare interface). Every flow must
/// compile.
pub fn compile_lab(db: &Database, extra: &[&str]) -> Arc<Pipeline> {
    let resident: HashSet<String> = lab::PORTS
        .iter()
        .filter(|p| p.place != lab::Place::Remote)
        .map(|p| p.name.to_string())
        .chain(extra.iter().map(|n| n.to_string()))
        .collect();
    let pipeline = Arc::new(Pipeline::compile(db, &Residency::Ports(resident.into())));
    assert!(
        pipeline.errors.is_empty(),
        "flows not compiled: {:?}",
        pipeline.errors
    );
    pipeline
}
