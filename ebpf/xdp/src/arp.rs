//! The ARP responder: the target of an IPv4-over-Ethernet request, and the in-place reply.

use aya_ebpf::programs::XdpContext;

use crate::frame::{ptr_at, ptr_at_mut};

const ARP_REQUEST: u16 = 1;
const ARP_REPLY: u16 = 2;

/// ARP for IPv4 over Ethernet (RFC 826), the only kind OVN answers.
#[repr(C)]
pub struct ArpIpv4 {
    pub htype: [u8; 2],
    pub ptype: [u8; 2],
    pub hlen: u8,
    pub plen: u8,
    pub op: [u8; 2],
    pub sha: [u8; 6],
    pub spa: [u8; 4],
    pub tha: [u8; 6],
    pub tpa: [u8; 4],
}

/// The requested IPv4 address, if the frame at `offset` is a well-formed ARP request.
#[inline(always)]
pub fn request_target(ctx: &XdpContext, offset: usize) -> Option<[u8; 4]> {
    let arp: *const ArpIpv4 = ptr_at(ctx, offset)?;
    // SAFETY: bounds checked by ptr_at.
    let arp = unsafe { &*arp };
    let well_formed = u16::from_be_bytes(arp.htype) == 1
        && u16::from_be_bytes(arp.ptype) == 0x0800
        && arp.hlen == 6
        && arp.plen == 4
        && u16::from_be_bytes(arp.op) == ARP_REQUEST;
    well_formed.then_some(arp.tpa)
}

/// Turns the request into the reply OVN's ls_in_arp_rsp builds: eth.dst = eth.src,
/// eth.src = mac, op = 2, tha = sha, sha = mac, tpa = spa, spa = the requested address.
#[inline(always)]
pub fn rewrite_reply(
    ctx: &XdpContext,
    offset: usize,
    requester: &[u8; 6],
    mac: &[u8; 6],
    ip: &[u8; 4],
) -> Option<()> {
    let eth: *mut [u8; 12] = ptr_at_mut(ctx, 0)?;
    let arp: *mut ArpIpv4 = ptr_at_mut(ctx, offset)?;
    // SAFETY: both regions were bounds checked by ptr_at_mut and do not overlap
    // (offset >= 14).
    unsafe {
        let mut macs = [0u8; 12];
        macs[..6].copy_from_slice(requester);
        macs[6..].copy_from_slice(mac);
        *eth = macs;
        let arp = &mut *arp;
        arp.op = ARP_REPLY.to_be_bytes();
        arp.tha = arp.sha;
        arp.sha = *mac;
        arp.tpa = arp.spa;
        arp.spa = *ip;
    }
    Some(())
}
