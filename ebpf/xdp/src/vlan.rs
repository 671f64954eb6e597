//! 802.1Q tag surgery: strip, push, or rewrite the VID in place.

use aya_ebpf::{helpers::generated::bpf_xdp_adjust_head, programs::XdpContext};

use crate::frame::{ETH_P_8021Q, EthHdr, VlanHdr, ptr_at, ptr_at_mut};

/// Makes a frame that arrived with `from_vid` (0: untagged) carry `to_vid` (0: none).
/// Rewriting the TCI in place is the strip-then-push OVN does, without moving bytes.
#[inline(always)]
pub fn retag(ctx: &XdpContext, from_vid: u16, to_vid: u16) -> Option<()> {
    match (from_vid, to_vid) {
        (0, 0) => Some(()),
        (_, 0) => strip(ctx),
        (0, vid) => push(ctx, vid),
        (_, vid) => {
            let tag: *mut VlanHdr = ptr_at_mut(ctx, EthHdr::LEN)?;
            // SAFETY: bounds checked by ptr_at_mut; PCP and DEI are cleared as OVN's
            // push does (mod_vlan_vid on a fresh tag).
            unsafe { (*tag).tci = vid.to_be_bytes() };
            Some(())
        }
    }
}

#[inline(always)]
fn strip(ctx: &XdpContext) -> Option<()> {
    let macs: *const [u8; 12] = ptr_at(ctx, 0)?;
    // SAFETY: bounds checked; copied to the stack before the head moves.
    let macs = unsafe { *macs };
    // SAFETY: the helper validates the new head itself.
    if unsafe { bpf_xdp_adjust_head(ctx.ctx, VlanHdr::LEN as i32) } != 0 {
        return None;
    }
    let head: *mut [u8; 12] = ptr_at_mut(ctx, 0)?;
    // SAFETY: re-checked against the new bounds after adjust_head.
    unsafe { *head = macs };
    Some(())
}

#[inline(always)]
fn push(ctx: &XdpContext, vid: u16) -> Option<()> {
    let macs: *const [u8; 12] = ptr_at(ctx, 0)?;
    // SAFETY: bounds checked; copied to the stack before the head moves.
    let macs = unsafe { *macs };
    // SAFETY: the helper validates the new head (enough headroom) itself.
    if unsafe { bpf_xdp_adjust_head(ctx.ctx, -(VlanHdr::LEN as i32)) } != 0 {
        return None;
    }
    let head: *mut [u8; 16] = ptr_at_mut(ctx, 0)?;
    let tpid = ETH_P_8021Q.to_be_bytes();
    let tci = vid.to_be_bytes();
    let mut hdr = [0u8; 16];
    hdr[..12].copy_from_slice(&macs);
    hdr[12] = tpid[0];
    hdr[13] = tpid[1];
    hdr[14] = tci[0];
    hdr[15] = tci[1];
    // SAFETY: 16 bytes re-checked against the new bounds; the old ethertype now sits
    // right after them, which is where the inner type of a tagged frame belongs.
    unsafe { *head = hdr };
    Some(())
}
