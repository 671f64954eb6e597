//! ovnest's control plane: the Southbound replica ([`sb`]) on the OVSDB client ([`ovsdb`]),
//! the agent that registers the chassis, claims ports and reconciles the datapath
//! ([`agent`]), and the seed lab ([`lab`]).

pub mod agent;
pub mod bench;
pub mod lab;
pub mod sb;

/// The OVSDB client, re-exported so `ovnest::ovsdb` names it for the agent's users.
pub use ovnest_ovsdb as ovsdb;
