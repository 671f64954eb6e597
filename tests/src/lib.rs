//! Shared test support: privilege checks, network namespaces and the lab's hypervisor built
//! from them, real OVN processes, and the fixture tables that tests and benches both run
//! (with the report of a run's failed cases).

pub mod cni;
pub mod decide;
pub mod failures;
pub mod fixtures;
pub mod flow;
pub mod hypervisor;
pub mod netns;
pub mod ovn;
pub mod ovsdb_json;
pub mod packet;
pub mod privilege;
pub mod southbound;
pub mod stall;
pub mod trace;
pub mod wait;
