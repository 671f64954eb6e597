//! ovnest's control plane: the Southbound replica ([`sb`]) on the OVSDB client ([`ovsdb`]),
//! and the agent that registers the chassis, claims ports and reconciles the datapath
//! ([`agent`]). The `ovnest` binary is in `cli/`, the lab and the bench in `lab/`.

pub mod agent;
pub mod lflow;
pub mod pinctrl;
pub mod sb;
pub mod trace;

/// The OVSDB client, re-exported so `ovnest::ovsdb` names it for the agent's users.
pub use ovnest_ovsdb as ovsdb;
