//! The underlay interface (the one holding this chassis's Encap.ip): Geneve frames
//! (IPv4, UDP to port 6081) whose decision is cached are decapsulated and carried out
//! here ([`crate::tunnel`], `--datapath hybrid`); the others go to the userspace
//! datapath, which decapsulates them and runs the egress pipeline; everything else is the host's own traffic (ARP, routing,
//! its connections to the Southbound) and passes to the kernel untouched.

use aya_ebpf::{bindings::xdp_action, macros::xdp, programs::XdpContext};
use ovnest_common::{Counter, PortKey, XdpMeta, meta::XDP_META_MAGIC};

use crate::{
    frame::{self, EthHdr, ptr_at},
    maps::{XSK_SLOTS, XSKS},
    stats,
};

const ETH_P_IP: u16 = 0x0800;
const IPPROTO_UDP: u8 = 17;
const GENEVE_PORT: u16 = 6081;

#[xdp]
pub fn underlay_ingress(ctx: XdpContext) -> u32 {
    if !is_geneve(&ctx) {
        return xdp_action::XDP_PASS;
    }
    let mut flags = 0;
    if crate::cache::enabled() {
        match crate::tunnel::decap(&ctx) {
            Ok(Ok(verdict)) => return verdict,
            Ok(Err(drop)) => {
                stats::count(drop);
                return xdp_action::XDP_DROP;
            }
            Err(up) => flags = up.flags,
        }
    }
    // Metadata only says whether userspace may install its decision: the frame's
    // ports are in its Geneve option.
    if flags != 0 {
        let _ = frame::write_meta(
            &ctx,
            XdpMeta {
                magic: XDP_META_MAGIC,
                ingress: PortKey::default(),
                vid: 0,
                flags,
            },
        );
    }
    // SAFETY: copied out at once.
    let Some(slot) = (unsafe { XSK_SLOTS.get(&(ctx.ingress_ifindex() as u32)) }).copied() else {
        stats::count(Counter::DropNoUserspace);
        return xdp_action::XDP_DROP;
    };
    let queue = ctx.rx_queue_index();
    if queue >= slot.n_queues {
        stats::count(Counter::DropNoUserspace);
        return xdp_action::XDP_DROP;
    }
    match XSKS.redirect(slot.base + queue, 0) {
        Ok(action) => {
            stats::count(Counter::ToUserspace);
            action
        }
        Err(_) => {
            stats::count(Counter::DropNoUserspace);
            xdp_action::XDP_DROP
        }
    }
}

/// An IPv4 UDP datagram to port 6081, first fragment (later fragments have no UDP
/// header; userspace drops any fragment it gets).
#[inline(always)]
fn is_geneve(ctx: &XdpContext) -> bool {
    let Some(eth) = ptr_at::<EthHdr>(ctx, 0) else {
        return false;
    };
    // SAFETY: ptr_at checked the whole header is in bounds.
    if u16::from_be_bytes(unsafe { (*eth).ethertype }) != ETH_P_IP {
        return false;
    }
    let Some(ip) = ptr_at::<[u8; 20]>(ctx, EthHdr::LEN) else {
        return false;
    };
    // SAFETY: ptr_at checked the 20 bytes are in bounds.
    let ip = unsafe { &*ip };
    if ip[9] != IPPROTO_UDP || u16::from_be_bytes([ip[6], ip[7]]) & 0x1fff != 0 {
        return false;
    }
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    if ihl < 20 {
        return false;
    }
    let Some(udp) = ptr_at::<[u8; 4]>(ctx, EthHdr::LEN + ihl) else {
        return false;
    };
    // SAFETY: ptr_at checked the 4 bytes are in bounds.
    let udp = unsafe { &*udp };
    u16::from_be_bytes([udp[2], udp[3]]) == GENEVE_PORT
}
