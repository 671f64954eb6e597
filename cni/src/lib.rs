//! `ovnest-cni`: a CNI plugin (spec 1.0.0) for containers inside a VM whose NIC is an OVN
//! logical port — OVN's *nested containers*. For each container it creates (or takes from
//! a pool) a logical switch port with `parent_name` = the VM's port and a VLAN `tag`
//! unique in the VM, reads back the addresses OVN allocated, plugs a veth into the
//! container and makes the VM tag the container's frames: with TC eBPF (no OVS in the
//! VM) or on the VM's OVS bridge. The Northbound is the only state.
//!
//! - [`plugin`]: the executable (env + stdin → JSON); [`spec`]: CNI's types; [`config`]:
//!   the network configuration;
//! - [`add`], [`del`], [`check`], [`gc`]: the commands; [`refill`]: the pool's refill;
//! - [`nb`]: Northbound rows and reads; [`pool`]: ports, tags, marks (pure);
//!   [`addressing`]: MAC/IP/gateway/MTU from NB rows (pure);
//! - [`netlink`], [`netns`]: the container's interface; [`tagger`]: in-VM tagging;
//! - [`network`]: `ovnest cni network create|list|delete` (the seed's `ovn-docker`);
//!   [`cli`]: the `ovnest cni` subcommands.

pub mod add;
pub mod addressing;
pub mod check;
pub mod cli;
pub mod config;
pub mod del;
pub mod gc;
pub mod lock;
pub mod nb;
pub mod netlink;
pub mod netns;
pub mod network;
pub mod plugin;
pub mod pool;
pub mod refill;
pub mod spec;
pub mod tagger;
pub mod vm;
