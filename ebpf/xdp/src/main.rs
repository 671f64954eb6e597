//! ovnest's XDP fast path, attached to every bound VIF on the hypervisor.
//!
//! Per frame: classify `(ingress ifindex, vid)` to a logical port and enforce port
//! security (the physical layer). Then, when OVN's logical pipeline decides
//! (`--datapath hybrid`, the default), look the frame up in the decision cache
//! ([`cache`]): a hit is carried out here, a miss goes to the userspace datapath through
//! the XSKMAP. With `--datapath xdp` (the physical-layer benchmark mode, no logical
//! flows) it instead answers ARP for known addresses and forwards known local unicast
//! (strip / push / rewrite the 802.1Q tag, redirect or hairpin). Drops are counted by
//! reason. [`underlay`] is the program of the underlay interface (Geneve decapsulated from
//! the cache, [`tunnel`], or to userspace).
// On the host (`cargo test --workspace`, clippy) the crate builds as an empty binary.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]
// Inline assembly for the BPF target (two wide packet loads, `frame::load_mac48`).
#![cfg_attr(target_arch = "bpf", feature(asm_experimental_arch))]

mod arp;
mod cache;
mod ct;
mod flat;
mod frame;
mod key;
mod maps;
mod stats;
mod tunnel;
mod underlay;
mod vlan;

use aya_ebpf::{bindings::xdp_action, macros::xdp, programs::XdpContext};
use ovnest_common::{
    ArpKey, ChildKey, Counter, IngressPort, MacKey, PortEntry, PortKey, XdpMeta,
    flat::{mac_hash, slots},
    maps::mac_octets,
    meta::XDP_META_MAGIC,
};

use crate::{
    frame::{
        ETH_P_8021AD, ETH_P_8021Q, ETH_P_ARP, EthHdr, VlanHdr, is_multicast, load_mac48, ptr_at,
    },
    maps::{
        ARP_SPILL, ARP_TARGETS, CHILD_SPILL, CHILDREN, DEVICES, MAC_SPILL, MACS, VIF_SPILL, VIFS,
        XSK_SLOTS, XSKS,
    },
};

#[xdp]
pub fn vif_ingress(ctx: XdpContext) -> u32 {
    match try_vif_ingress(&ctx) {
        Ok(action) => action,
        Err(drop) => {
            stats::count(drop);
            xdp_action::XDP_DROP
        }
    }
}

/// A classified frame: where it came from and how it arrived. `port` points into the
/// table entry that classified it.
struct Ingress<'a> {
    ifindex: u32,
    key: PortKey,
    port: &'a PortEntry,
    /// VLAN id of the arriving tag, 0 when untagged.
    vid: u16,
    /// Ethertype of the payload (after the tag, if any).
    ethertype: u16,
    /// The Ethernet addresses, read once, as `mac48`s.
    dst: u64,
    src: u64,
}

/// Set at load time (`--datapath hybrid|afxdp`): the logical pipeline decides every
/// classified frame, from the decision cache ([`cache`]) or in userspace.
/// A read-only global, so the verifier drops the branch not taken.
// SAFETY: the loader finds it by this exact name; no other symbol in the object has it.
#[unsafe(no_mangle)]
static ALL_TO_USERSPACE: u8 = 0;

// The per-frame steps are inlined so the classified frame stays in registers; the cold
// ones (ARP, userspace) take it by reference.
#[inline(always)]
fn try_vif_ingress(ctx: &XdpContext) -> Result<u32, Counter> {
    let ingress = classify(ctx)?;
    // SAFETY: a plain read of a load-time constant; volatile so the compiler cannot fold
    // the default value in.
    if unsafe { core::ptr::read_volatile(&ALL_TO_USERSPACE) } != 0 {
        return cache::decide(ctx, &ingress);
    }

    // OVN answers ARP (ls_in_arp_rsp) before the L2 lookup, unicast requests included.
    if ingress.ethertype == ETH_P_ARP
        && let Some(action) = answer_arp(ctx, &ingress)?
    {
        return Ok(action);
    }
    if !is_multicast(ingress.dst)
        && let Some(action) = forward_known_unicast(ctx, &ingress)?
    {
        return Ok(action);
    }
    to_userspace(ctx, &ingress, 0)
}

/// Step 1 and 2: the logical port the frame belongs to, with port security applied.
#[inline(always)]
fn classify(ctx: &XdpContext) -> Result<Ingress<'static>, Counter> {
    let ifindex = ctx.ingress_ifindex() as u32;
    let eth: *const EthHdr = ptr_at(ctx, 0).ok_or(Counter::DropTruncated)?;
    // SAFETY: ptr_at checked bounds for the whole header.
    let (dst, src, ethertype) = unsafe {
        (
            load_mac48((*eth).dst.as_ptr()),
            load_mac48((*eth).src.as_ptr()),
            u16::from_be_bytes((*eth).ethertype),
        )
    };

    let (found, vid, inner_type) = match ethertype {
        ETH_P_8021Q => {
            let tag: *const VlanHdr = ptr_at(ctx, EthHdr::LEN).ok_or(Counter::DropTruncated)?;
            // SAFETY: bounds checked by ptr_at.
            let (tci, inner) = unsafe { ((*tag).tci(), u16::from_be_bytes((*tag).ethertype)) };
            let vid = tci & 0x0fff;
            if vid == 0 {
                return Err(Counter::DropVid0);
            }
            if vid == 0x0fff {
                return Err(Counter::DropVid4095);
            }
            // A second tag would be reinterpreted by whoever strips the first one.
            if inner == ETH_P_8021Q || inner == ETH_P_8021AD {
                return Err(Counter::DropDoubleTag);
            }
            let child = ChildKey::new(ifindex, vid);
            let found = flat::lookup(&CHILDREN, slots::CHILDREN, &CHILD_SPILL, &child)
                .ok_or(Counter::DropUnknownTag)?;
            (found, vid, inner)
        }
        ETH_P_8021AD => return Err(Counter::DropQinQ),
        _ => {
            let found = flat::lookup(&VIFS, slots::VIFS, &VIF_SPILL, &ifindex)
                .ok_or(Counter::DropUnknownVif)?;
            (found, 0, ethertype)
        }
    };
    let IngressPort { key, port } = found;
    // rx counts every frame classified to the port; `drops` is the subset dropped.
    stats::port_rx(port, (ctx.data_end() - ctx.data()) as u64);
    if is_multicast(src) {
        stats::port_drop(port);
        return Err(Counter::DropBadSource);
    }
    if !port.allows_source48(src) {
        stats::port_drop(port);
        return Err(Counter::DropPortSecurity);
    }
    Ok(Ingress {
        ifindex,
        key: *key,
        port,
        vid,
        ethertype: inner_type,
        dst,
        src,
    })
}

/// Step 4: OVN's ls_in_arp_rsp. Replies in place (the requester's tag, if any, stays) and
/// sends the frame back out of the ingress interface. Kept out of line: the unicast
/// path's code stays short.
#[inline(never)]
fn answer_arp(ctx: &XdpContext, ingress: &Ingress) -> Result<Option<u32>, Counter> {
    let l3_offset = if ingress.vid != 0 {
        EthHdr::LEN + VlanHdr::LEN
    } else {
        EthHdr::LEN
    };
    let src = mac_octets(ingress.src);
    let Some(tpa) = arp::request_target(ctx, l3_offset) else {
        return Ok(None);
    };
    let arp_key = ArpKey::new(ingress.key.datapath, tpa);
    let Some(target) = flat::lookup(&ARP_TARGETS, slots::ARP_TARGETS, &ARP_SPILL, &arp_key) else {
        return Ok(None);
    };
    // A port asking for its own address (duplicate address detection) is not answered.
    if target.owner == ingress.key {
        return Ok(None);
    }
    arp::rewrite_reply(ctx, l3_offset, &src, &target.mac, &tpa).ok_or(Counter::DropTruncated)?;
    let action = send_back(ingress.ifindex)?;
    stats::port_tx(
        ingress.port.stats_slot,
        (ctx.data_end() - ctx.data()) as u64,
    );
    stats::count(Counter::ArpReplied);
    Ok(Some(action))
}

/// Step 3 and 5: known unicast to a port bound on this chassis.
#[inline(always)]
fn forward_known_unicast(ctx: &XdpContext, ingress: &Ingress) -> Result<Option<u32>, Counter> {
    let (datapath, dst) = (ingress.key.datapath, ingress.dst);
    let found = flat::probe(&MACS, slots::MACS, mac_hash(datapath, dst), |key| {
        key.datapath == datapath && key.mac48() == dst
    })
    .or_else(|| flat::spilled(&MACS, &MAC_SPILL, &MacKey::new(datapath, mac_octets(dst))));
    let Some(out) = found else {
        return Ok(None);
    };
    if out.key == ingress.key {
        stats::port_drop(ingress.port);
        return Err(Counter::DropLoop);
    }
    if !out.is_local() {
        return Ok(None);
    }
    vlan::retag(ctx, ingress.vid, out.tag).ok_or(Counter::DropRewrite)?;
    let len = (ctx.data_end() - ctx.data()) as u64;
    let action = send_back(out.egress_ifindex)?;
    stats::port_tx(out.stats_slot, len);
    stats::count(if out.egress_ifindex == ingress.ifindex {
        Counter::Hairpinned
    } else {
        Counter::Redirected
    });
    Ok(Some(action))
}

/// Redirects through the device map, also back to the ingress interface (hairpin, ARP
/// replies). Not XDP_TX: veth queues XDP_TX frames without waking its peer unless the
/// peer runs XDP too, so they stall; a devmap redirect flushes on every driver.
#[inline(always)]
fn send_back(ifindex: u32) -> Result<u32, Counter> {
    DEVICES
        .redirect(ifindex, 0)
        .map_err(|_| Counter::DropNoEgress)
}

/// Step 6: everything the fast path does not finish goes to the userspace datapath,
/// untagged, with its classification in XDP metadata.
#[inline(never)]
fn to_userspace(ctx: &XdpContext, ingress: &Ingress, flags: u16) -> Result<u32, Counter> {
    // With the classification in metadata the frame goes up untagged; without room for
    // metadata it keeps its tag, so userspace classifies it again instead of taking a
    // container's frame for its parent's (adjust_head moves the metadata along). Done
    // before looking for the socket, so a test run shows what would go up.
    let meta = XdpMeta {
        magic: XDP_META_MAGIC,
        ingress: ingress.key,
        vid: ingress.vid,
        flags,
    };
    if frame::write_meta(ctx, meta).is_some() {
        vlan::retag(ctx, ingress.vid, 0).ok_or(Counter::DropRewrite)?;
    }
    // SAFETY: copied out at once.
    let slot = unsafe { XSK_SLOTS.get(&ingress.ifindex) }
        .copied()
        .ok_or(Counter::DropNoUserspace)?;
    let queue = ctx.rx_queue_index();
    if queue >= slot.n_queues {
        return Err(Counter::DropNoUserspace);
    }
    match XSKS.redirect(slot.base + queue, 0) {
        Ok(action) => {
            stats::count(Counter::ToUserspace);
            Ok(action)
        }
        Err(_) => Err(Counter::DropNoUserspace),
    }
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
