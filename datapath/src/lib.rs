//! ovnest's datapath.
//!
//! - [`tables`]: the content of the fast path's tables as a plain value, computed from the
//!   logical ports bound here, and the difference between two such values.
//! - [`fastpath`]: the XDP program on each bound VIF: load, attach, apply a table
//!   difference to its BPF maps, read its counters.
//! - [`flow`]: frames read into the logical pipeline's packet model, and its decisions
//!   written back.
//! - [`wire`]: zero-copy views of the headers the datapath reads and writes.
//! - [`pinctrl`]: the pipeline's controller actions (DHCP, ARP, ICMP, ND replies,
//!   MAC_Binding learning, load-balancer health checks), as ovn-controller's pinctrl.
//! - [`pipeline`]: the userspace datapath's per-batch processing, same semantics as XDP.
//! - [`cache`]: the logical pipeline's decisions cached in XDP (keys, actions, installs,
//!   coherence).
//! - [`geneve`]: Geneve encapsulation with OVN's metadata, between chassis.
//! - [`afxdp`]: AF_XDP sockets and the poll loop feeding the pipeline.

pub mod afxdp;
pub mod cache;
pub mod conntrack;
pub mod fastpath;
pub mod flow;
pub mod frames;
pub mod geneve;
pub mod pinctrl;
pub mod pipeline;
pub mod tables;
pub mod wire;

pub use fastpath::{FastPath, FastPathError};
pub use tables::{Attachment, Conflict, LogicalPort, TableDiff, TableSet};
