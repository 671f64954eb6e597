//! ovnest's control plane: the OVSDB client, the Southbound replica and (later) chassis
//! registration, port claims and the reconcile loop that programs the datapath.

pub mod ovsdb;
pub mod sb;
