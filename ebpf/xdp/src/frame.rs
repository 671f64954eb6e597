//! Header layouts and the one bounds-checked accessor every packet read goes through.

use core::mem::size_of;

use aya_ebpf::{helpers::generated::bpf_xdp_adjust_meta, programs::XdpContext};
use ovnest_common::XdpMeta;

pub const ETH_P_8021Q: u16 = 0x8100;
pub const ETH_P_8021AD: u16 = 0x88a8;
pub const ETH_P_ARP: u16 = 0x0806;

#[repr(C)]
pub struct EthHdr {
    pub dst: [u8; 6],
    pub src: [u8; 6],
    pub ethertype: [u8; 2],
}

impl EthHdr {
    pub const LEN: usize = size_of::<EthHdr>();
}

/// The 4 bytes after the MACs of a tagged frame, seen from the TCI: TCI then inner type.
#[repr(C)]
pub struct VlanHdr {
    pub tci: [u8; 2],
    pub ethertype: [u8; 2],
}

impl VlanHdr {
    pub const LEN: usize = size_of::<VlanHdr>();

    #[inline(always)]
    pub fn tci(&self) -> u16 {
        u16::from_be_bytes(self.tci)
    }
}

/// Group bit of the first octet (the lowest bit of a `mac48`): broadcast and multicast
/// destinations, and invalid sources.
#[inline(always)]
pub fn is_multicast(mac48: u64) -> bool {
    mac48 & 1 != 0
}

/// The six packet bytes at `p` as a `mac48`, in one 4-byte and one 2-byte load. In
/// assembly because packet addresses are only 2-byte aligned and the BPF backend splits
/// an unaligned Rust read into six byte loads (plus the shifts to join them); the
/// verifier allows unaligned packet loads where the CPU does them at full speed (x86,
/// arm64), which is where the JIT runs them.
///
/// # Safety
/// `p .. p + 6` must be inside the packet, checked against `data_end`.
#[inline(always)]
pub unsafe fn load_mac48(p: *const u8) -> u64 {
    #[cfg(target_arch = "bpf")]
    {
        let (lo, hi): (u64, u64);
        // SAFETY: the caller checked the six bytes are in bounds; the two loads read
        // exactly them and write nothing.
        unsafe {
            core::arch::asm!(
                "{lo} = *(u32 *)({p} + 0)",
                "{hi} = *(u16 *)({p} + 4)",
                p = in(reg) p,
                lo = out(reg) lo,
                hi = out(reg) hi,
                options(pure, readonly, nostack, preserves_flags),
            );
        }
        lo | hi << 32
    }
    #[cfg(not(target_arch = "bpf"))]
    {
        // SAFETY: in bounds per the caller; [u8; 6] has no alignment.
        ovnest_common::maps::mac48(unsafe { &*(p as *const [u8; 6]) })
    }
}

/// A pointer to a `T` at `offset` from the packet start, if the whole `T` is in bounds.
#[inline(always)]
pub fn ptr_at<T>(ctx: &XdpContext, offset: usize) -> Option<*const T> {
    let start = ctx.data();
    let end = ctx.data_end();
    if start + offset + size_of::<T>() > end {
        return None;
    }
    Some((start + offset) as *const T)
}

/// Mutable variant of [`ptr_at`].
#[inline(always)]
pub fn ptr_at_mut<T>(ctx: &XdpContext, offset: usize) -> Option<*mut T> {
    ptr_at::<T>(ctx, offset).map(|p| p as *mut T)
}

/// Prepends `meta` in the XDP metadata area. `None` when the driver has no room for it.
#[inline(always)]
pub fn write_meta(ctx: &XdpContext, meta: XdpMeta) -> Option<()> {
    let delta = -(size_of::<XdpMeta>() as i32);
    // SAFETY: the helper only moves data_meta within the headroom, checking bounds itself.
    if unsafe { bpf_xdp_adjust_meta(ctx.ctx, delta) } != 0 {
        return None;
    }
    let start = ctx.metadata();
    let end = ctx.data();
    if start + size_of::<XdpMeta>() > end {
        return None;
    }
    // SAFETY: [start, start + size_of::<XdpMeta>()) was checked against data, the end of
    // the metadata area; write_unaligned because metadata is only 4-byte aligned.
    unsafe { core::ptr::write_unaligned(start as *mut XdpMeta, meta) };
    Some(())
}
