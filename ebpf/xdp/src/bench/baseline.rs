//! The benchmark baseline: the least a tagged-to-VIF path can do — strip the 802.1Q tag
//! and redirect to one fixed interface, no tables, no checks. ovnest's fast path is
//! measured against it on the same machine, frames and kernel path.

use aya_ebpf::{bindings::xdp_action, macros::xdp, programs::XdpContext};

use crate::{
    frame::{ETH_P_8021Q, EthHdr, ptr_at},
    maps::{BASELINE_EGRESS, DEVICES},
    vlan,
};

#[xdp]
pub fn baseline_strip_redirect(ctx: XdpContext) -> u32 {
    let Some(eth) = ptr_at::<EthHdr>(&ctx, 0) else {
        return xdp_action::XDP_DROP;
    };
    // SAFETY: bounds checked by ptr_at.
    if u16::from_be_bytes(unsafe { (*eth).ethertype }) == ETH_P_8021Q
        && vlan::retag(&ctx, 1, 0).is_none()
    {
        return xdp_action::XDP_DROP;
    }
    let Some(egress) = BASELINE_EGRESS.get(0).copied() else {
        return xdp_action::XDP_DROP;
    };
    DEVICES.redirect(egress, 0).unwrap_or(xdp_action::XDP_DROP)
}
