//! The in-VM tagger for nested containers, without OVS in the VM.
//!
//! - `tagger_container`, on the ingress of each container's host-side veth: push the
//!   container's 802.1Q tag and redirect the frame out of the VM's uplink, where the
//!   hypervisor (OVN) maps `(VIF, tag)` to the container's logical port.
//! - `tagger_uplink`, on the ingress of the uplink: a tagged frame whose VID belongs to a
//!   container is untagged and redirected straight into the container's namespace
//!   (`bpf_redirect_peer`); untagged frames stay the VM's own.
//!
//! No 8021q module and no bridge VLAN filtering needed: the tag is pushed and popped by
//! the kernel's skb helpers.
// On the host (`cargo test --workspace`, clippy) the crate builds as an empty binary.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]
// `#[classifier]` generates a public entry point taking the kernel's raw `__sk_buff`
// pointer; the kernel guarantees it, nothing in Rust can call it.
#![allow(clippy::not_unsafe_ptr_arg_deref)]

mod maps;

use aya_ebpf::{
    EbpfContext as _,
    bindings::{__sk_buff, TC_ACT_OK, TC_ACT_SHOT},
    helpers::generated::{bpf_redirect, bpf_redirect_peer, bpf_skb_vlan_pop, bpf_skb_vlan_push},
    macros::classifier,
    programs::TcContext,
};
use ovnest_common::tagger::{MAX_VID, TaggerCounter};

use crate::maps::{TAGGER_COUNTERS, TAGGER_PORTS, TAGGER_VIDS};

const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88a8;
/// Offset of the ethertype (or TPID) in an Ethernet header.
const ETHERTYPE_OFF: usize = 12;

#[classifier]
pub fn tagger_container(ctx: TcContext) -> i32 {
    verdict(try_container(&ctx))
}

#[classifier]
pub fn tagger_uplink(ctx: TcContext) -> i32 {
    verdict(try_uplink(&ctx))
}

/// Counts the verdict; drops are `Err` with their reason.
#[inline(always)]
fn verdict(result: Result<(i32, TaggerCounter), TaggerCounter>) -> i32 {
    match result {
        Ok((action, counter)) => {
            count(counter);
            action
        }
        Err(drop) => {
            count(drop);
            TC_ACT_SHOT
        }
    }
}

#[inline(always)]
fn count(counter: TaggerCounter) {
    if let Some(slot) = TAGGER_COUNTERS.get_ptr_mut(counter as u32) {
        // SAFETY: per-CPU slot, only this CPU writes it while the program runs.
        unsafe { *slot += 1 };
    }
}

/// The frame's 802.1Q VID: from the skb's offloaded tag (the receive path moves the
/// outer tag there before TC runs) or, if still in the payload, from the frame.
/// `None` when untagged.
/// The `__sk_buff` the kernel passed in.
#[inline(always)]
fn skb(ctx: &TcContext) -> *mut __sk_buff {
    ctx.as_ptr().cast()
}

#[inline(always)]
fn vid(ctx: &TcContext) -> Result<Option<u16>, TaggerCounter> {
    // SAFETY: `skb` is the context the kernel passed in for this run, valid throughout.
    let (present, tci) = unsafe { ((*skb(ctx)).vlan_present, (*skb(ctx)).vlan_tci) };
    if present != 0 {
        return Ok(Some(tci as u16 & 0x0fff));
    }
    let tpid = ethertype(ctx)?;
    if tpid == ETH_P_8021Q || tpid == ETH_P_8021AD {
        let tci: u16 = ctx
            .load::<[u8; 2]>(ETHERTYPE_OFF + 2)
            .map(u16::from_be_bytes)
            .map_err(|_| TaggerCounter::DropTruncated)?;
        return Ok(Some(tci & 0x0fff));
    }
    Ok(None)
}

#[inline(always)]
fn ethertype(ctx: &TcContext) -> Result<u16, TaggerCounter> {
    ctx.load::<[u8; 2]>(ETHERTYPE_OFF)
        .map(u16::from_be_bytes)
        .map_err(|_| TaggerCounter::DropTruncated)
}

#[inline(always)]
fn try_container(ctx: &TcContext) -> Result<(i32, TaggerCounter), TaggerCounter> {
    // SAFETY: as in `vid`.
    let ifindex = unsafe { (*skb(ctx)).ifindex };
    // SAFETY: a plain-data value read in place; userspace replaces whole entries.
    let port = unsafe { TAGGER_PORTS.get(&ifindex) }.ok_or(TaggerCounter::DropUnknownPort)?;
    // A container must not pick its own VLAN: anything already tagged is dropped.
    if vid(ctx)?.is_some() {
        return Err(TaggerCounter::DropTaggedFromContainer);
    }
    let (uplink, vid) = (port.uplink_ifindex, port.vid);
    // SAFETY: the helper takes the context the kernel passed in; it may reallocate the
    // packet, so nothing read from it before is used after.
    if unsafe { bpf_skb_vlan_push(skb(ctx), ETH_P_8021Q.to_be(), vid) } != 0 {
        return Err(TaggerCounter::DropRewrite);
    }
    // SAFETY: bpf_redirect only records the target; the verdict makes the kernel act.
    let action = unsafe { bpf_redirect(uplink, 0) } as i32;
    Ok((action, TaggerCounter::Pushed))
}

#[inline(always)]
fn try_uplink(ctx: &TcContext) -> Result<(i32, TaggerCounter), TaggerCounter> {
    let vid = match vid(ctx)? {
        // VID 0 is a priority tag on the VM's own traffic, not a container.
        None | Some(0) => return Ok((TC_ACT_OK, TaggerCounter::VmOwn)),
        Some(v) if v > MAX_VID => return Err(TaggerCounter::DropUnknownVid),
        Some(v) => v,
    };
    let veth = match TAGGER_VIDS.get(u32::from(vid)) {
        Some(&ifindex) if ifindex != 0 => ifindex,
        _ => return Err(TaggerCounter::DropUnknownVid),
    };
    // SAFETY: as in `try_container`.
    if unsafe { bpf_skb_vlan_pop(skb(ctx)) } != 0 {
        return Err(TaggerCounter::DropRewrite);
    }
    // Straight into the container's namespace: its eth0 receives the frame without a
    // second pass through the veth's transmit path.
    // SAFETY: bpf_redirect_peer only records the target; the verdict makes the kernel act.
    let action = unsafe { bpf_redirect_peer(veth, 0) } as i32;
    Ok((action, TaggerCounter::Popped))
}

#[cfg(not(target_arch = "bpf"))]
fn main() {}

#[cfg(target_arch = "bpf")]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[cfg(target_arch = "bpf")]
// SAFETY: the kernel reads the licence from the section of this name; the symbol name is
// unique in the object.
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
