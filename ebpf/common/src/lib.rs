//! Plain-data types shared by the eBPF programs (`ovnest-ebpf`'s XDP fast path,
//! `ovnest-ebpf-tc`'s in-VM tagger) and userspace (`ovnest-datapath`, `ovnest-cni`).
//! Every type is `#[repr(C)]` with explicit padding and its size pinned by a const
//! assert, because the kernel only sees bytes: a layout drift between the two sides
//! would silently misroute packets.
#![no_std]

pub mod cache;
pub mod counters;
pub mod ct;
pub mod flat;
pub mod layout;
pub mod maps;
pub mod meta;
pub mod tagger;
pub mod tunnel;

pub use cache::{CacheAction, CacheCounter, CacheKey, CacheKey6};
pub use counters::{Counter, PortStats};
pub use flat::{FlatKey, FlatSlot};
pub use maps::{
    ArpKey, ArpTarget, ChildKey, EgressPort, IngressPort, MacKey, PortEntry, PortKey, XskSlot,
};
pub use meta::XdpMeta;
