//! XDP metadata the fast path prepends for the userspace datapath, so a frame handed over
//! through AF_XDP arrives already classified (ingress port, stripped tag).

use core::mem::size_of;

use crate::maps::PortKey;

/// `XdpMeta::magic`: marks metadata written by this program version.
pub const XDP_META_MAGIC: u32 = 0x6f76_6e31; // "ovn1"

/// Placed immediately before the packet data (`data_meta .. data`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XdpMeta {
    pub magic: u32,
    /// Logical port the frame came from (after tag classification).
    pub ingress: PortKey,
    /// The VLAN id that was stripped, 0 when the frame arrived untagged.
    pub vid: u16,
    /// `META_*` bits.
    pub flags: u16,
}

/// `XdpMeta::flags`: the decision cache has a key for this frame and missed, so
/// userspace may install the decision it makes (see `ovnest_common::cache`).
pub const META_CACHEABLE: u16 = 1 << 0;
const _: () = assert!(size_of::<XdpMeta>() == 16);
const _: () = assert!(size_of::<XdpMeta>().is_multiple_of(4));

#[cfg(feature = "user")]
// SAFETY: #[repr(C)] plain data with explicit padding; every bit pattern is valid.
unsafe impl aya::Pod for XdpMeta {}
