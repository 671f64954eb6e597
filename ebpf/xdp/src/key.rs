//! The decision cache's key, read from the frame: the words of the logical pipeline's
//! flow (`ovnest_common::cache`) with exactly the values userspace's `flow::extract`
//! gives the frame once its tag is stripped. A frame whose headers the key cannot
//! describe exactly (IPv4 options or fragments, IPv6 extension headers, ND, a header
//! cut short, an ARP the flow cannot hold) gets no key: it is always decided in
//! userspace.
//!
//! Loads are single unaligned word loads (packet offsets are only 2-byte aligned, and
//! the verifier allows unaligned packet reads where the CPU does them at full speed);
//! a word loaded little-endian and byte-swapped is the big-endian value the flow holds.

use core::{
    mem::{MaybeUninit, size_of},
    ptr::write_volatile,
};

use aya_ebpf::programs::XdpContext;
use ovnest_common::cache::{CacheKey6, slot};

use crate::{
    Ingress,
    frame::{ETH_P_ARP, EthHdr, VlanHdr, load_mac48, ptr_at},
};

const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_RARP: u16 = 0x8035;

/// The four bytes at `off` as one little-endian load (zero-extended).
#[inline(always)]
pub fn load32(ctx: &XdpContext, off: usize) -> Option<u64> {
    let p: *const [u8; 4] = ptr_at(ctx, off)?;
    // SAFETY: ptr_at checked the four bytes against data_end.
    Some(unsafe { load(p as *const u8, 4) })
}

/// The eight bytes at `off` as one little-endian load.
#[inline(always)]
pub fn load64(ctx: &XdpContext, off: usize) -> Option<u64> {
    let p: *const [u8; 8] = ptr_at(ctx, off)?;
    // SAFETY: ptr_at checked the eight bytes against data_end.
    Some(unsafe { load(p as *const u8, 8) })
}

/// The two bytes at `off`, big-endian.
#[inline(always)]
pub fn be16(ctx: &XdpContext, off: usize) -> Option<u16> {
    let p: *const [u8; 2] = ptr_at(ctx, off)?;
    // SAFETY: ptr_at checked the two bytes against data_end.
    Some(u16::from_be_bytes(unsafe { *p }))
}

/// A `width`-byte (4 or 8) little-endian load at `p`.
///
/// # Safety
/// `p .. p + width` must be inside the packet, checked against `data_end`.
#[inline(always)]
pub unsafe fn load(p: *const u8, width: usize) -> u64 {
    #[cfg(target_arch = "bpf")]
    {
        let v: u64;
        // SAFETY: the caller checked the bytes are in bounds; the load reads exactly
        // them and writes nothing.
        unsafe {
            if width == 8 {
                core::arch::asm!(
                    "{v} = *(u64 *)({p} + 0)",
                    p = in(reg) p, v = out(reg) v,
                    options(pure, readonly, nostack, preserves_flags),
                );
            } else {
                core::arch::asm!(
                    "{v} = *(u32 *)({p} + 0)",
                    p = in(reg) p, v = out(reg) v,
                    options(pure, readonly, nostack, preserves_flags),
                );
            }
        }
        v
    }
    #[cfg(not(target_arch = "bpf"))]
    {
        let mut b = [0u8; 8];
        // SAFETY: in bounds per the caller.
        unsafe { core::ptr::copy_nonoverlapping(p, b.as_mut_ptr(), width) };
        u64::from_le_bytes(b)
    }
}

/// A key holding only `datapath` and `inport`, the rest zero, in `slot`. Written word by
/// word with volatile stores: LLVM turns a zeroed struct into a call to the byte-at-a-time
/// `memset` of compiler-builtins (hundreds of instructions per frame in BPF).
#[inline(always)]
pub fn empty(slot: &mut MaybeUninit<CacheKey6>, datapath: u32, inport: u32) -> &mut CacheKey6 {
    const WORDS: usize = size_of::<CacheKey6>() / 8;
    let words = slot.as_mut_ptr() as *mut u64;
    // SAFETY: CacheKey6 is #[repr(C)], 8-aligned, WORDS words of plain integers with no
    // padding (sizes pinned in ovnest_common::cache); every word is written before the
    // reference is made, and little-endian `datapath | inport << 32` is its first word
    // (`datapath` then `inport`, both u32).
    unsafe {
        write_volatile(words, u64::from(datapath) | u64::from(inport) << 32);
        let mut i = 1;
        while i < WORDS {
            write_volatile(words.add(i), 0);
            i += 1;
        }
        &mut *slot.as_mut_ptr()
    }
}

/// Offset of the network header: after the tag, when the frame still carries one.
#[inline(always)]
pub fn l3_offset(ingress: &Ingress) -> usize {
    if ingress.vid != 0 {
        EthHdr::LEN + VlanHdr::LEN
    } else {
        EthHdr::LEN
    }
}

/// Fills `key` (datapath and inport already set, the rest zero) from the frame.
/// `Some(true)`: an IPv6 key (all of `key`); `Some(false)`: `key.base` alone;
/// `None`: the frame has no key.
#[inline(always)]
pub fn build(ctx: &XdpContext, ingress: &Ingress, key: &mut CacheKey6) -> Option<bool> {
    build_at(
        ctx,
        l3_offset(ingress),
        ingress.ethertype,
        ingress.dst,
        ingress.src,
        key,
    )
}

/// [`build`] for an Ethernet frame whose network header is at `l3`, of type `ty`
/// (after any tag), from `dst` to `src` (`mac48`s): also a tunnel's inner frame.
#[inline(always)]
pub fn build_at(
    ctx: &XdpContext,
    l3: usize,
    ty: u16,
    dst: u64,
    src: u64,
    key: &mut CacheKey6,
) -> Option<bool> {
    // OVS reads values below 0x600 as 802.3 lengths: no ethertype.
    let dl_type = if ty < 0x600 { 0x05ff } else { ty };
    // A mac48 byte-swapped is the address's big-endian value shifted up 16: the flow's
    // `eth.dst << 16 | vlan_tci` with no tag (classification took it off or dropped
    // the frame).
    key.base.w[slot::DL_DST] = dst.swap_bytes();
    key.base.w[slot::DL_SRC] = src.swap_bytes() | u64::from(dl_type);
    match ty {
        ETH_P_IP => ipv4(ctx, l3, key).map(|()| false),
        ETH_P_IPV6 => ipv6(ctx, l3, key).map(|()| true),
        ETH_P_ARP | ETH_P_RARP => arp(ctx, l3, key).map(|()| false),
        _ => Some(false),
    }
}

/// The frame's length as an opaque value: compared with header lengths, it must not let
/// LLVM drop the packet loads' own bounds checks as implied (the verifier cannot follow
/// a length compare, only pointer compares).
#[inline(always)]
fn frame_len(ctx: &XdpContext) -> usize {
    let len = ctx.data_end() - ctx.data();
    // SAFETY: a read of a local just written.
    unsafe { core::ptr::read_volatile(&len) }
}

/// IPv4 without options, not a fragment, its transport header whole.
#[inline(always)]
fn ipv4(ctx: &XdpContext, l3: usize, key: &mut CacheKey6) -> Option<()> {
    // [version/IHL, TOS, total length]
    let head = load32(ctx, l3)?;
    if head & 0xff != 0x45 {
        return None;
    }
    let tos = (head >> 8) & 0xff;
    let tot_len = (((head >> 16) & 0xff) << 8 | (head >> 24)) as usize;
    if tot_len < 20 || l3 + tot_len > frame_len(ctx) {
        return None;
    }
    // Fragment offset and MF: a fragment is never cached.
    if be16(ctx, l3 + 6)? & 0x3fff != 0 {
        return None;
    }
    // [TTL, protocol, checksum]
    let ttl_proto = load32(ctx, l3 + 8)?;
    let (ttl, proto) = (ttl_proto & 0xff, (ttl_proto >> 8) & 0xff);
    // Source and destination in one load: byte-swapped, `src << 32 | dst`.
    key.base.w[slot::NW] = load64(ctx, l3 + 12)?.swap_bytes();
    key.base.w[slot::IP] = proto | tos << 8 | ttl << 16;
    transport(ctx, l3 + 20, l3 + tot_len, proto as u8, false, key)
}

/// IPv6 whose next header is the transport (no extension header).
#[inline(always)]
fn ipv6(ctx: &XdpContext, l3: usize, key: &mut CacheKey6) -> Option<()> {
    let vtcfl = (load32(ctx, l3)? as u32).swap_bytes();
    if vtcfl >> 28 != 6 {
        return None;
    }
    // [payload length, next header, hop limit]
    let rest = load32(ctx, l3 + 4)?;
    let payload = (((rest & 0xff) << 8) | ((rest >> 8) & 0xff)) as usize;
    let (next, hop) = ((rest >> 16) & 0xff, rest >> 24);
    let end = l3 + 40 + payload;
    if end > frame_len(ctx) {
        return None;
    }
    if matches!(next, 0 | 43 | 44 | 60) {
        return None;
    }
    let tc = u64::from((vtcfl >> 20) & 0xff);
    key.ipv6[0] = load64(ctx, l3 + 8)?.swap_bytes();
    key.ipv6[1] = load64(ctx, l3 + 16)?.swap_bytes();
    key.ipv6[2] = load64(ctx, l3 + 24)?.swap_bytes();
    key.ipv6[3] = load64(ctx, l3 + 32)?.swap_bytes();
    key.base.w[slot::IP] = next | tc << 8 | hop << 16;
    key.base.w[slot::MARK] = u64::from(vtcfl & 0xf_ffff) << 32;
    transport(ctx, l3 + 40, end, next as u8, true, key)
}

/// Ports and TCP flags, or ICMP type and code, within `end` (the IP length).
#[inline(always)]
fn transport(
    ctx: &XdpContext,
    l4: usize,
    end: usize,
    proto: u8,
    v6: bool,
    key: &mut CacheKey6,
) -> Option<()> {
    let need = match proto {
        6 => 20,
        17 => 8,
        132 => 12,
        1 if !v6 => 8,
        // IGMP: OVN never forwards it by its type; left to userspace.
        2 if !v6 => return None,
        58 if v6 => 4,
        _ => return Some(()),
    };
    if l4 + need > end {
        return None;
    }
    let ports = (load32(ctx, l4)? as u32).swap_bytes();
    let (src, dst) = if proto == 1 || proto == 58 {
        // ICMP type and code: the first two bytes.
        (ports >> 24, (ports >> 16) & 0xff)
    } else {
        (ports >> 16, ports & 0xffff)
    };
    // ND reads options into the flow: never cached (its replies are pinctrl's anyway).
    if proto == 58 && dst == 0 && (src == 135 || src == 136) {
        return None;
    }
    key.base.w[slot::TP_SRC] = u64::from(src);
    key.base.w[slot::TP_DST] = u64::from(dst);
    if proto == 6 {
        key.base.w[slot::IP] |= u64::from(be16(ctx, l4 + 12)? & 0x0fff) << 32;
    }
    Some(())
}

/// Ethernet/IPv4 ARP whose opcode fits the flow (OVS keeps it in `nw_proto`).
#[inline(always)]
fn arp(ctx: &XdpContext, l3: usize, key: &mut CacheKey6) -> Option<()> {
    // A packet bounds check (not a length compare): the verifier must see the 28
    // bytes are in, or LLVM drops the loads' own checks as implied by a compare it
    // cannot follow.
    ptr_at::<[u8; 28]>(ctx, l3)?;
    // [hardware type 1, protocol 0x0800, lengths 6 and 4, opcode]
    let head = load64(ctx, l3)?;
    if head & 0xffff_ffff_ffff != 0x0406_0008_0100 {
        return None;
    }
    let op = (((head >> 48) & 0xff) << 8) | (head >> 56);
    if op > 0xff {
        return None;
    }
    let spa = u64::from((load32(ctx, l3 + 14)? as u32).swap_bytes());
    let tpa = u64::from((load32(ctx, l3 + 24)? as u32).swap_bytes());
    let sha: *const [u8; 6] = ptr_at(ctx, l3 + 8)?;
    let tha: *const [u8; 6] = ptr_at(ctx, l3 + 18)?;
    // SAFETY: both six-byte ranges were checked by ptr_at.
    let (sha, tha) = unsafe { (load_mac48(sha as *const u8), load_mac48(tha as *const u8)) };
    key.base.w[slot::NW] = spa << 32 | tpa;
    key.base.w[slot::TP_SRC] = sha.swap_bytes();
    key.base.w[slot::TP_DST] = tha.swap_bytes();
    key.base.w[slot::IP] = op;
    Some(())
}
