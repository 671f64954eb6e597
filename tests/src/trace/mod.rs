//! The differential test of `ovnest trace` against real `ovn-trace`: logical networks
//! built with ovn-nbctl ([`topology`]), the microflows generated for them
//! ([`microflow`]), the oracle ([`ovn_trace`]) and the diff a mismatch prints ([`diff`]).

pub mod diff;
pub mod microflow;
pub mod ovn_trace;
pub mod topology;

pub use microflow::{Microflow, microflows};
pub use topology::Topology;
