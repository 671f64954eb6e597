//! The XDP object built by datapath/build.rs from ebpf/xdp.

/// ELF bytes of the `ovnest-xdp` program, 8-byte aligned as aya requires.
pub(super) static XDP_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/ovnest-xdp"));
