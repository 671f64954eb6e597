//! Shared test support: privilege checks, network namespaces, real OVN processes, and the
//! fixture tables that tests and benches both run.

pub mod fixtures;
pub mod netns;
pub mod ovn;
pub mod packet;
pub mod privilege;
pub mod wait;
