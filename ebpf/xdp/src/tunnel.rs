//! Geneve in XDP (`--datapath hybrid`): the decision cache's encapsulation (a cached
//! decision that is exactly one tunnel copy: inner rewrite, outer headers from the peer's
//! template, redirect to the underlay) and decapsulation (a Geneve frame from a known
//! peer whose inner frame, with the option's ports, has a cached decision: outer headers
//! stripped, the decision carried out as for a VIF's frame). The outer headers are
//! `ovnest_datapath::geneve`'s bit for bit; anything this program does not do exactly as
//! userspace would goes up (`tests/tests/xdp_tunnel.rs` compares them).

use core::mem::MaybeUninit;

use aya_ebpf::{
    bindings::xdp_action,
    helpers::generated::{bpf_csum_diff, bpf_xdp_adjust_head},
    macros::map,
    maps::{Array, DevMapHash, LruHashMap, PerCpuArray},
    programs::XdpContext,
};
use ovnest_common::{
    Counter,
    cache::{ACTION_OUTPUT, CacheAction, DEFAULT_CACHE_ENTRIES},
    meta::META_CACHEABLE,
    tunnel::{
        GENEVE, IP, MAX_PEERS, MAX_UNDERLAYS, OPTION_DATA, OVERHEAD, TunnelCounter, TunnelKey,
        TunnelPeer, UDP,
    },
};

use crate::{
    Ingress,
    cache::{self, put},
    frame::{EthHdr, ptr_at},
    key, send_back, stats, to_userspace, vlan,
};

/// Outer header templates by peer chassis number (`CacheAction::tunnel_peer`).
#[map]
pub static TUNNEL_PEERS: Array<TunnelPeer> = Array::with_max_entries(MAX_PEERS, 0);

/// Decisions for frames received from a tunnel, by inner key, egress port and sender.
#[map]
pub static TUNNEL_CACHE: LruHashMap<TunnelKey, CacheAction> =
    LruHashMap::with_max_entries(DEFAULT_CACHE_ENTRIES, 0);

/// The underlay interfaces encapsulated frames leave by (`TunnelPeer::ifindex`): a
/// devmap of their own, as the VIFs' `DEVICES` follows the port tables.
#[map]
pub static UNDERLAYS: DevMapHash = DevMapHash::with_max_entries(MAX_UNDERLAYS, 0);

/// `TunnelCounter`s.
#[map]
pub static TUNNEL_STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(TunnelCounter::COUNT, 0);

const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88a8;
/// Largest UDP payload the program checksums (longer frames' checksums are left to
/// userspace): 4 bytes per step.
const SUM_WORDS: usize = 512;

#[inline(always)]
fn count(counter: TunnelCounter) {
    if let Some(slot) = TUNNEL_STATS.get_ptr_mut(counter as u32) {
        // SAFETY: per-CPU slot, only this CPU writes it while the program runs.
        unsafe { *slot += 1 };
    }
}

/// The frame's length, as one value: without the volatile read LLVM folds later
/// arithmetic into `data_end` itself, which the verifier refuses.
#[inline(always)]
fn frame_len(ctx: &XdpContext) -> usize {
    let len = ctx.data_end() - ctx.data();
    // SAFETY: a read of a local just written.
    unsafe { core::ptr::read_volatile(&len) }
}

/// Folds a sum to 16 bits with end-around carry.
#[inline(always)]
fn fold(mut sum: u64) -> u16 {
    sum = (sum & 0xffff_ffff) + (sum >> 32);
    sum = (sum & 0xffff_ffff) + (sum >> 32);
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    sum as u16
}

/// Longest span one `bpf_csum_diff` call sums (older kernels copy it into a 512-byte
/// scratch buffer and refuse more).
const SUM_CHUNK: usize = 512;

/// The kernel's `csum_partial` over the `N` bytes at `p` (checked by the caller to lie
/// within the frame), as a 32-bit sum of little-endian 16-bit words (x86 and arm64
/// load natively; a kernel that folds it to 16 bits gives the same sum once folded).
/// `None` if the helper refused (it never does for a constant multiple of 4 ≤ 512).
#[inline(always)]
fn csum_chunk<const N: usize>(p: usize) -> Option<u64> {
    // SAFETY: `from` is null with size 0 (nothing read from it); `to` spans N bytes the
    // caller checked against data_end, which the verifier proves again; the helper only
    // reads them.
    let s = unsafe { bpf_csum_diff(core::ptr::null_mut(), 0, p as *mut u32, N as u32, 0) };
    if s < 0 { None } else { Some(s as u64) }
}

/// The one's-complement sum of the big-endian 16-bit words from `from` to the frame's
/// end (an odd last byte padded with zero, as RFC 768 says), folded; `None` when the
/// span is longer than `SUM_WORDS` words. The kernel's checksum helper sums constant
/// sized chunks (512 bytes while they fit, then 256, 128, 64 once each: the verifier
/// checks each against the frame's end), the rest is summed here; all natively, as
/// little-endian words, so the folded sum is byte-swapped (RFC 1071's byte-order
/// independence). Out of line: its checks are verified once, not once per caller path.
#[inline(never)]
fn sum_to_end(ctx: &XdpContext, from: usize) -> Option<u16> {
    // SAFETY: `ctx.ctx` is the program's context, valid for the run. Volatile: LLVM
    // would otherwise hoist the loads into the callers and pass `data_end` in as an
    // argument it zero-extends, pointer arithmetic the verifier refuses.
    let (start, end) = unsafe {
        (
            core::ptr::read_volatile(&(*ctx.ctx).data) as usize,
            core::ptr::read_volatile(&(*ctx.ctx).data_end) as usize,
        )
    };
    let mut sum: u64 = 0;
    let mut p = start + from;
    let mut i = 0;
    while i < SUM_WORDS * 4 / SUM_CHUNK {
        if p + SUM_CHUNK > end {
            break;
        }
        sum += csum_chunk::<SUM_CHUNK>(p)?;
        p += SUM_CHUNK;
        i += 1;
    }
    if i == SUM_WORDS * 4 / SUM_CHUNK && p < end {
        return None;
    }
    // Under 512 bytes left: 256, 128 and 64 at most once each; under 64, 4-byte words
    // here (for a 64 or 512 B frame's span, one helper call where chunks down to 4
    // bytes made three).
    macro_rules! chunk {
        ($n:literal) => {
            if p + $n <= end {
                sum += csum_chunk::<$n>(p)?;
                p += $n;
            }
        };
    }
    chunk!(256);
    chunk!(128);
    chunk!(64);
    let mut w = 0;
    while w < 15 {
        if p + 4 > end {
            break;
        }
        // SAFETY: the four bytes at `p` were checked against data_end.
        sum += unsafe { key::load(p as *const u8, 4) };
        p += 4;
        w += 1;
    }
    // The 0..3 bytes left: byte k of a little-endian word is worth `b << 8k`.
    let mut k = 0;
    while k < 3 {
        if p + k + 1 > end {
            break;
        }
        // SAFETY: the byte at `p + k` was checked against data_end.
        sum += u64::from(unsafe { *((p + k) as *const u8) }) << (8 * k);
        k += 1;
    }
    Some(fold(sum).swap_bytes())
}

/// The IPv4 pseudo-header's sum for a UDP datagram of `udp_len` between `ip`'s
/// source and destination (the 8 bytes at `ip + 12`).
#[inline(always)]
fn pseudo_sum(addrs: &[u8; 8], udp_len: u16) -> u64 {
    let mut s = 17u64 + u64::from(udp_len);
    let mut i = 0;
    while i < 8 {
        s += u64::from(u16::from_be_bytes([addrs[i], addrs[i + 1]]));
        i += 2;
    }
    s
}

/// A cache hit whose decision is one tunnel copy: the inner rewrite (at the frame's
/// network header, before the tag goes, as userspace writes it), the tag stripped, the
/// peer's outer headers pushed in front, out of the underlay. Anything the template
/// cannot serve goes up, marked cacheable so userspace decides and installs again.
#[inline(never)]
pub fn encap(ctx: &XdpContext, ingress: &Ingress, a: &CacheAction) -> Result<u32, Counter> {
    // Read in place: userspace rewrites whole slots, made from the tables of the
    // generation they carry; a slot from other tables (a racing poll thread, a chassis
    // renumbered) is a miss, and userspace writes it again with the entry.
    let Some(peer) = TUNNEL_PEERS.get(a.tunnel_peer) else {
        count(TunnelCounter::EncapUpcall);
        return to_userspace(ctx, ingress, META_CACHEABLE);
    };
    if peer.valid == 0 || peer.generation != a.generation || peer.remote_ip() != a.tunnel_remote {
        count(TunnelCounter::EncapUpcall);
        return to_userspace(ctx, ingress, META_CACHEABLE);
    }
    let tag = if ingress.vid != 0 { 4 } else { 0 };
    if peer.csum != 0 && frame_len(ctx) + OVERHEAD - UDP > SUM_WORDS * 4 + tag {
        // Longer than the program checksums: userspace encapsulates it.
        count(TunnelCounter::EncapUpcall);
        return to_userspace(ctx, ingress, 0);
    }
    if a.rewrite != 0 {
        cache::rewrite(ctx, key::l3_offset(ingress), a).ok_or(Counter::DropRewrite)?;
    }
    vlan::retag(ctx, ingress.vid, 0).ok_or(Counter::DropRewrite)?;
    let inner = frame_len(ctx);
    // SAFETY: the helper validates the new head (enough headroom) itself.
    if unsafe { bpf_xdp_adjust_head(ctx.ctx, -(OVERHEAD as i32)) } != 0 {
        return Err(Counter::DropRewrite);
    }
    put(ctx, 0, &peer.header).ok_or(Counter::DropRewrite)?;
    let udp_len = (inner + OVERHEAD - UDP) as u16;
    let ip_len = udp_len + 20;
    put(ctx, IP + 2, &ip_len.to_be_bytes()).ok_or(Counter::DropRewrite)?;
    let ip_csum = !fold(u64::from(peer.ip_sum) + u64::from(ip_len));
    put(ctx, IP + 10, &ip_csum.to_be_bytes()).ok_or(Counter::DropRewrite)?;
    put(ctx, UDP, &a.tunnel_sport).ok_or(Counter::DropRewrite)?;
    put(ctx, UDP + 4, &udp_len.to_be_bytes()).ok_or(Counter::DropRewrite)?;
    put(
        ctx,
        GENEVE + 4,
        &((a.tunnel_vni & 0x00ff_ffff) << 8).to_be_bytes(),
    )
    .ok_or(Counter::DropRewrite)?;
    put(ctx, OPTION_DATA, &a.tunnel_option).ok_or(Counter::DropRewrite)?;
    if peer.csum != 0 {
        let addrs: *const [u8; 8] = ptr_at(ctx, IP + 12).ok_or(Counter::DropRewrite)?;
        // SAFETY: ptr_at checked the 8 bytes are in bounds.
        let pseudo = pseudo_sum(unsafe { &*addrs }, udp_len);
        // Within what the program sums: checked above.
        let body = sum_to_end(ctx, UDP).ok_or(Counter::DropRewrite)?;
        let mut c = !fold(pseudo + u64::from(body));
        if c == 0 {
            c = 0xffff;
        }
        put(ctx, UDP + 6, &c.to_be_bytes()).ok_or(Counter::DropRewrite)?;
    }
    let verdict = UNDERLAYS
        .redirect(peer.ifindex, 0)
        .map_err(|_| Counter::DropNoEgress)?;
    count(TunnelCounter::EncapHit);
    stats::count(Counter::Redirected);
    Ok(verdict)
}

/// Why a Geneve frame is not carried out here.
pub struct Upcall {
    /// `META_*` flags for userspace.
    pub flags: u16,
}

/// A Geneve frame on the underlay (IPv4, UDP to 6081, first fragment: `is_geneve`):
/// `Ok` when carried out from the cache, `Err` when it goes up (counted by reason).
#[inline(always)]
pub fn decap(ctx: &XdpContext) -> Result<Result<u32, Counter>, Upcall> {
    let up = |c: TunnelCounter, flags: u16| {
        count(c);
        Err(Upcall { flags })
    };
    let len = frame_len(ctx);
    let Some(ip) = ptr_at::<[u8; 20]>(ctx, IP) else {
        return up(TunnelCounter::DecapHeaders, 0);
    };
    // SAFETY: ptr_at checked the 20 bytes are in bounds.
    let ip = unsafe { &*ip };
    if u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff != 0 {
        return up(TunnelCounter::DecapFragment, 0);
    }
    // No IPv4 options, and the lengths exactly the frame's: the inner frame is the rest.
    let ip_len = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    if ip[0] != 0x45 || ip_len + IP != len || len < OVERHEAD + EthHdr::LEN {
        return up(TunnelCounter::DecapHeaders, 0);
    }
    let remote = [ip[12], ip[13], ip[14], ip[15]];
    let Some(outer) = ptr_at::<[u8; 24]>(ctx, UDP) else {
        return up(TunnelCounter::DecapHeaders, 0);
    };
    // SAFETY: ptr_at checked the 24 bytes (UDP, Geneve, option header) are in bounds.
    let outer = unsafe { &*outer };
    if usize::from(u16::from_be_bytes([outer[4], outer[5]])) + 20 != ip_len {
        return up(TunnelCounter::DecapHeaders, 0);
    }
    // Geneve version 0 with two words of options, not OAM, Ethernet payload, and the
    // one option OVN's (class 0x0102, type 0x80, length 1 word).
    let g = &outer[8..];
    if g[0] != 0x02
        || g[1] & 0x80 != 0
        || g[2..4] != [0x65, 0x58]
        || g[8..11] != [0x01, 0x02, 0x80]
        || g[11] & 0x1f != 1
    {
        return up(TunnelCounter::DecapOptions, 0);
    }
    let vni = u32::from_be_bytes([0, g[4], g[5], g[6]]);
    let Some(data) = ptr_at::<[u8; 4]>(ctx, OPTION_DATA) else {
        return up(TunnelCounter::DecapHeaders, 0);
    };
    // SAFETY: ptr_at checked the 4 bytes are in bounds.
    let data = u32::from_be_bytes(unsafe { *data });
    let (ingress, egress) = ((data >> 16) & 0x7fff, data & 0xffff);
    if outer[6] != 0 || outer[7] != 0 {
        // The UDP checksum: verified here, a bad one left to userspace to count and drop.
        let addrs: *const [u8; 8] = match ptr_at(ctx, IP + 12) {
            Some(p) => p,
            None => return up(TunnelCounter::DecapHeaders, 0),
        };
        // SAFETY: ptr_at checked the 8 bytes are in bounds.
        let pseudo = pseudo_sum(unsafe { &*addrs }, (ip_len - 20) as u16);
        match sum_to_end(ctx, UDP) {
            Some(body) if fold(pseudo + u64::from(body)) == 0xffff => {}
            _ => return up(TunnelCounter::DecapChecksum, 0),
        }
    }
    // The inner frame.
    let Some(eth) = ptr_at::<EthHdr>(ctx, OVERHEAD) else {
        return up(TunnelCounter::DecapHeaders, 0);
    };
    // SAFETY: ptr_at checked the header is in bounds.
    let (dst, src, ty) = unsafe {
        (
            crate::frame::load_mac48((*eth).dst.as_ptr()),
            crate::frame::load_mac48((*eth).src.as_ptr()),
            u16::from_be_bytes((*eth).ethertype),
        )
    };
    if ty == ETH_P_8021Q || ty == ETH_P_8021AD {
        return up(TunnelCounter::DecapUncacheable, 0);
    }
    let mut slot = MaybeUninit::uninit();
    let k = key::empty(&mut slot, vni, ingress);
    match key::build_at(ctx, OVERHEAD + EthHdr::LEN, ty, dst, src, k) {
        Some(false) => {}
        _ => return up(TunnelCounter::DecapUncacheable, 0),
    }
    // The tunnel key is the IPv4 key followed by 8 bytes, where the IPv6 words start.
    k.ipv6[0] = u64::from(egress) | u64::from(u32::from_le_bytes(remote)) << 32;
    // SAFETY: TunnelKey is #[repr(C)] { CacheKey, u32, [u8; 4] }, 72 bytes, 8-aligned;
    // CacheKey6 is { CacheKey, [u64; 6] }: its first 72 bytes, all written, are a
    // TunnelKey with `egress` and `remote_ip` in the first IPv6 word (little-endian).
    let tkey = unsafe { &*(k as *const _ as *const TunnelKey) };
    // SAFETY: the value is read in place for this run only (RCU keeps it alive); the
    // program never writes it.
    let Some(action) = (unsafe { TUNNEL_CACHE.get(tkey) }) else {
        return up(TunnelCounter::DecapMiss, META_CACHEABLE);
    };
    if !cache::current(action) || !crate::ct::holds(action) {
        return up(TunnelCounter::DecapStale, META_CACHEABLE);
    }
    count(TunnelCounter::DecapHit);
    Ok(execute(ctx, action))
}

/// A cached decision for a decapsulated frame: drop, or strip the outer headers and
/// deliver as the VIF path does (rewrite, tag, redirect).
#[inline(always)]
fn execute(ctx: &XdpContext, action: &CacheAction) -> Result<u32, Counter> {
    if action.kind != ACTION_OUTPUT {
        if let Some(slot) = crate::maps::COUNTERS.get_ptr_mut(action.drop_reason) {
            // SAFETY: per-CPU slot, only this CPU writes it while the program runs.
            unsafe { *slot += 1 };
        }
        return Ok(xdp_action::XDP_DROP);
    }
    // SAFETY: the helper validates the new head itself.
    if unsafe { bpf_xdp_adjust_head(ctx.ctx, OVERHEAD as i32) } != 0 {
        return Err(Counter::DropRewrite);
    }
    if action.rewrite != 0 {
        cache::rewrite(ctx, EthHdr::LEN, action).ok_or(Counter::DropRewrite)?;
    }
    vlan::retag(ctx, 0, action.out_tag).ok_or(Counter::DropRewrite)?;
    let len = (ctx.data_end() - ctx.data()) as u64;
    let verdict = send_back(action.out_ifindex)?;
    stats::port_tx(action.out_stats_slot, len);
    stats::count(Counter::Redirected);
    Ok(verdict)
}
