//! ovnest's control plane: the OVSDB client ([`ovsdb`]), the Southbound replica ([`sb`]),
//! the agent that registers the chassis, claims ports and reconciles the datapath
//! ([`agent`]), and the seed lab ([`lab`]).

pub mod agent;
pub mod bench;
pub mod lab;
pub mod ovsdb;
pub mod sb;
