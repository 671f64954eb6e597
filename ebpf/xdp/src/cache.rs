//! The decision cache (`ovnest run --datapath hybrid`): after classification, a frame's
//! key ([`crate::key`]) is looked up in an LRU hash of the logical pipeline's decisions.
//! A hit of the current generation is carried out here (drop, or the header rewrite,
//! tag and redirect the decision made); anything else goes up to userspace, which
//! decides with the pipeline and installs the entry. Design and rationale: the
//! `ovnest_datapath::cache` module.

use core::mem::MaybeUninit;

use aya_ebpf::{
    bindings::xdp_action,
    macros::map,
    maps::{Array, LruHashMap, PerCpuArray},
    programs::XdpContext,
};
use ovnest_common::{
    Counter,
    cache::{
        ACTION_ENCAP, ACTION_OUTPUT, CacheAction, CacheCounter, CacheKey, CacheKey6,
        DEFAULT_CACHE_ENTRIES, FAMILY_ARP, FAMILY_IPV4, FAMILY_IPV6, rewrite as rw,
    },
    meta::META_CACHEABLE,
};

use crate::{
    Ingress, frame::ptr_at_mut, key, maps::COUNTERS, send_back, stats, to_userspace, vlan,
};

/// Decisions for every frame but IPv6, by key. Size set at load time (`--cache-size`);
/// least recently used entries make room for new ones.
#[map]
pub static CACHE: LruHashMap<CacheKey, CacheAction> =
    LruHashMap::with_max_entries(DEFAULT_CACHE_ENTRIES, 0);

/// Decisions for IPv6 frames, by key.
#[map]
pub static CACHE6: LruHashMap<CacheKey6, CacheAction> =
    LruHashMap::with_max_entries(DEFAULT_CACHE_ENTRIES, 0);

/// Slot 0: the generation entries must carry to be used. The agent bumps it once every
/// poll thread decides with new tables, before it acknowledges the change.
#[map]
pub static CACHE_GEN: Array<u64> = Array::with_max_entries(1, 0);

/// Lookup outcomes (`CacheCounter`).
#[map]
pub static CACHE_STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(CacheCounter::COUNT, 0);

/// Set at load time (`--datapath hybrid`): look frames up in the cache before handing
/// them up. A read-only global, so the verifier drops the branch not taken.
// SAFETY: the loader finds it by this exact name; no other symbol in the object has it.
#[unsafe(no_mangle)]
static DECISION_CACHE: u8 = 0;

#[inline(always)]
fn count(counter: CacheCounter) {
    if let Some(slot) = CACHE_STATS.get_ptr_mut(counter as u32) {
        // SAFETY: per-CPU slot, only this CPU writes it while the program runs.
        unsafe { *slot += 1 };
    }
}

/// Whether the program decides from the cache (`--datapath hybrid`).
#[inline(always)]
pub fn enabled() -> bool {
    // SAFETY: a plain read of a load-time constant; volatile so the compiler cannot fold
    // the default value in.
    unsafe { core::ptr::read_volatile(&DECISION_CACHE) != 0 }
}

/// Whether `action` was decided with the tables of the current generation.
#[inline(always)]
pub fn current(action: &CacheAction) -> bool {
    action.generation == CACHE_GEN.get(0).copied().unwrap_or(0)
}

/// Every classified frame when the pipeline decides (`hybrid`, `afxdp`): carried out
/// here on a cache hit, handed up otherwise.
#[inline(always)]
pub fn decide(ctx: &XdpContext, ingress: &Ingress) -> Result<u32, Counter> {
    if !enabled() {
        return to_userspace(ctx, ingress, 0);
    }
    let mut slot = MaybeUninit::uninit();
    let key = key::empty(&mut slot, ingress.key.datapath, ingress.key.port);
    let Some(v6) = key::build(ctx, ingress, key) else {
        count(CacheCounter::Uncacheable);
        return to_userspace(ctx, ingress, 0);
    };
    // SAFETY: the value is read in place for this run only (RCU keeps it alive); the
    // program never writes it.
    let found = unsafe {
        if v6 {
            CACHE6.get(key)
        } else {
            CACHE.get(&key.base)
        }
    };
    let Some(action) = found else {
        count(CacheCounter::Miss);
        return to_userspace(ctx, ingress, META_CACHEABLE);
    };
    if !current(action) || !crate::ct::holds(action) {
        count(CacheCounter::Stale);
        return to_userspace(ctx, ingress, META_CACHEABLE);
    }
    count(CacheCounter::Hit);
    execute(ctx, ingress, action)
}

/// Carries out a cached decision.
#[inline(always)]
fn execute(ctx: &XdpContext, ingress: &Ingress, action: &CacheAction) -> Result<u32, Counter> {
    if action.kind == ACTION_ENCAP {
        return crate::tunnel::encap(ctx, ingress, action);
    }
    if action.kind != ACTION_OUTPUT {
        stats::port_drop(ingress.port);
        if let Some(slot) = COUNTERS.get_ptr_mut(action.drop_reason) {
            // SAFETY: per-CPU slot, only this CPU writes it while the program runs.
            unsafe { *slot += 1 };
        }
        return Ok(xdp_action::XDP_DROP);
    }
    if action.rewrite != 0 {
        rewrite(ctx, key::l3_offset(ingress), action).ok_or(Counter::DropRewrite)?;
    }
    vlan::retag(ctx, ingress.vid, action.out_tag).ok_or(Counter::DropRewrite)?;
    let len = (ctx.data_end() - ctx.data()) as u64;
    let verdict = send_back(action.out_ifindex)?;
    stats::port_tx(action.out_stats_slot, len);
    stats::count(if action.out_ifindex == ingress.ifindex {
        Counter::Hairpinned
    } else {
        Counter::Redirected
    });
    Ok(verdict)
}

/// Writes `N` bytes at `off`.
#[inline(always)]
pub fn put<const N: usize>(ctx: &XdpContext, off: usize, bytes: &[u8; N]) -> Option<()> {
    let p: *mut [u8; N] = ptr_at_mut(ctx, off)?;
    // SAFETY: ptr_at_mut checked the N bytes against data_end.
    unsafe { *p = *bytes };
    Some(())
}

/// One checksum update (RFC 1624 eq. 3 with the replaced and written words' sum
/// precomputed): skipped when `if_set` and the checksum is 0 (UDP without one).
#[inline(always)]
pub fn csum(ctx: &XdpContext, at: usize, delta: u16, if_set: bool) -> Option<()> {
    let p: *mut [u8; 2] = ptr_at_mut(ctx, at)?;
    // SAFETY: ptr_at_mut checked the two bytes against data_end.
    let old = u16::from_be_bytes(unsafe { *p });
    if if_set && old == 0 {
        return Some(());
    }
    let mut sum = u32::from(!old) + u32::from(delta);
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    // SAFETY: as above.
    unsafe { *p = (!(sum as u16)).to_be_bytes() };
    Some(())
}

/// The header changes of an output, at the frame's network header `l3` (before any tag
/// change, as userspace writes them before pushing the tag). Out of line: most cached
/// decisions (switching) rewrite nothing.
#[inline(never)]
pub fn rewrite(ctx: &XdpContext, l3: usize, a: &CacheAction) -> Option<()> {
    let r = a.rewrite;
    if r & rw::ETH_DST != 0 {
        put(ctx, 0, &a.eth_dst)?;
    }
    if r & rw::ETH_SRC != 0 {
        put(ctx, 6, &a.eth_src)?;
    }
    match a.family {
        FAMILY_IPV4 => {
            if r & rw::NW_SRC != 0 {
                put(ctx, l3 + 12, &a.nw_src)?;
            }
            if r & rw::NW_DST != 0 {
                put(ctx, l3 + 16, &a.nw_dst)?;
            }
            if r & rw::IP4_TOS != 0 {
                put(ctx, l3 + 1, &[a.tos])?;
            }
            if r & rw::TTL != 0 {
                put(ctx, l3 + 8, &[a.ttl])?;
            }
            if r & rw::IP4_CSUM != 0 {
                csum(ctx, l3 + 10, a.ip_csum_delta, false)?;
            }
            transport(ctx, l3 + 20, a)
        }
        FAMILY_IPV6 => {
            if r & rw::IP6_VTCFL != 0 {
                put(ctx, l3, &a.ip6_vtcfl)?;
            }
            if r & rw::TTL != 0 {
                put(ctx, l3 + 7, &[a.ttl])?;
            }
            if r & rw::IP6_SRC != 0 {
                put(ctx, l3 + 8, &a.ip6_src)?;
            }
            if r & rw::IP6_DST != 0 {
                put(ctx, l3 + 24, &a.ip6_dst)?;
            }
            transport(ctx, l3 + 40, a)
        }
        FAMILY_ARP => {
            if r & rw::ARP_OP != 0 {
                put(ctx, l3 + 6, &a.arp_op)?;
            }
            if r & rw::ARP_SHA != 0 {
                put(ctx, l3 + 8, &a.arp_sha)?;
            }
            if r & rw::NW_SRC != 0 {
                put(ctx, l3 + 14, &a.nw_src)?;
            }
            if r & rw::ARP_THA != 0 {
                put(ctx, l3 + 18, &a.arp_tha)?;
            }
            if r & rw::NW_DST != 0 {
                put(ctx, l3 + 24, &a.nw_dst)?;
            }
            Some(())
        }
        _ => Some(()),
    }
}

/// Transport checksum steps in userspace's order, then ports or ICMP type and code.
#[inline(always)]
fn transport(ctx: &XdpContext, l4: usize, a: &CacheAction) -> Option<()> {
    let at = l4 + usize::from(a.l4_csum_at);
    if a.l4_steps & 1 != 0 {
        csum(ctx, at, a.l4_delta[0], a.l4_if_set & 1 != 0)?;
    }
    if a.l4_steps & 2 != 0 {
        csum(ctx, at, a.l4_delta[1], a.l4_if_set & 2 != 0)?;
    }
    if a.l4_steps & 4 != 0 {
        csum(ctx, at, a.l4_delta[2], a.l4_if_set & 4 != 0)?;
    }
    let r = a.rewrite;
    if r & (rw::TP_SRC | rw::ICMP) != 0 {
        put(ctx, l4, &a.tp_src)?;
    }
    if r & rw::TP_DST != 0 {
        put(ctx, l4 + 2, &a.tp_dst)?;
    }
    Some(())
}
