//! A decision as the cache holds it: a drop with its reason, or one output with the
//! header rewrite `flow::commit` would make, checksum deltas included, or one tunnel
//! copy (that rewrite, then the Geneve headers `Pipeline::tunnel_out` writes).

use ovnest_common::{
    Counter,
    cache::{
        ACTION_DROP, ACTION_ENCAP, ACTION_OUTPUT, CacheAction, FAMILY_ARP, FAMILY_IPV4,
        FAMILY_IPV6, FAMILY_OTHER, rewrite as rw,
    },
    ct::{CT_DEPS, CtDep},
    tunnel::TunnelPeer,
};
use ovnest_logical::{
    Decision,
    execute::TunnelOut,
    flow::{ETH_TYPE_ARP, ETH_TYPE_IP, ETH_TYPE_IPV6, ETH_TYPE_RARP, Field, Flow},
};

use crate::{
    flow, geneve,
    pipeline::{LogicalView, Snapshot, TunnelTable},
};

/// The entry for `decision`, made on `start` (the flow at the start of the ingress
/// pipeline) with `snap`, tagged `generation`; `None` when the cache cannot hold it
/// (a flood, controller actions, an unsupported action, conntrack).
pub fn decide(
    snap: &Snapshot,
    view: &LogicalView,
    decision: &Decision,
    start: &Flow,
    generation: u64,
) -> Option<CacheAction> {
    decide_tracked(snap, view, decision, start, generation, None)
}

/// [`decide`] for a decision that went through conntrack: `ct` lists the mirrored
/// connections it met (`crate::conntrack::Tracker::finish`), all established and
/// stable, so the decision holds for the key's frames while each keeps its serial;
/// `None` when it holds for this frame only.
pub fn decide_tracked(
    snap: &Snapshot,
    view: &LogicalView,
    decision: &Decision,
    start: &Flow,
    generation: u64,
    ct: Option<&[CtDep]>,
) -> Option<CacheAction> {
    // Of tunnel copies only exactly one, to a port (not a group), with no local
    // delivery is cached (encapsulated in XDP); floods across chassis stay in
    // userspace. A decision that went through conntrack depends on the connections'
    // state: cached only with the connections XDP must find unchanged.
    if decision.aborted
        || (decision.conntrack && ct.is_none())
        || ct.is_some_and(|c| c.len() > CT_DEPS)
        || !decision.unsupported.is_empty()
        || !decision.controller.is_empty()
        || decision.tunnels.len() > 1
        || (!decision.tunnels.is_empty() && !decision.deliveries.is_empty())
    {
        return None;
    }
    let mut action = CacheAction {
        generation,
        ..CacheAction::default()
    };
    if let Some(ct) = ct {
        action.ct_n = ct.len() as u32;
        action.ct[..ct.len()].copy_from_slice(ct);
    }
    let local = |port| {
        let index = view.port_index(port)?;
        snap.port(index).filter(|p| p.is_local())
    };
    if let [t] = decision.tunnels.as_slice() {
        encap(snap, view, t, start, &mut action)?;
        return Some(action);
    }
    match decision.deliveries.as_slice() {
        [] => {
            action.kind = ACTION_DROP;
            action.drop_reason = Counter::DropLogical as u32;
        }
        [only] => match local(only.port) {
            Some(out) => {
                action.kind = ACTION_OUTPUT;
                action.out_ifindex = snap.device(out.device)?.ifindex;
                action.out_tag = out.tag;
                action.out_stats_slot = out.stats_slot;
                rewrite(start, &only.flow, &mut action)?;
            }
            None => {
                action.kind = ACTION_DROP;
                action.drop_reason = Counter::DropNotLocal as u32;
            }
        },
        all if all.iter().all(|d| local(d.port).is_none()) => {
            action.kind = ACTION_DROP;
            action.drop_reason = Counter::DropNotLocal as u32;
        }
        // Several local deliveries: a flood, copies made in userspace.
        _ => return None,
    }
    Some(action)
}

/// Fills `a` as the encapsulation of tunnel copy `t`, as `Pipeline::tunnel_out` makes
/// it: the inner rewrite, the peer, VNI, option and UDP source port. `None` for a
/// multicast group's copy or a chassis without a tunnel.
fn encap(
    snap: &Snapshot,
    view: &LogicalView,
    t: &TunnelOut,
    start: &Flow,
    a: &mut CacheAction,
) -> Option<()> {
    let outport = u16::try_from(t.outport_key).ok()?;
    if outport >= geneve::MULTICAST_KEY_MIN {
        return None;
    }
    let table = snap.tunnels()?;
    let peer = table.peer(t.chassis)?;
    a.kind = ACTION_ENCAP;
    a.out_ifindex = table.underlay_ifindex;
    a.tunnel_peer = u32::from(t.chassis);
    a.tunnel_vni = view.pipeline.datapath(t.dp).key;
    a.tunnel_option = geneve::Metadata {
        vni: a.tunnel_vni,
        ingress: t.flow.reg(14) as u16,
        egress: outport,
    }
    .option_data();
    a.tunnel_remote = peer.underlay.remote_ip;
    a.tunnel_sport = TunnelTable::source_port(start).to_be_bytes();
    rewrite(start, &t.flow, a)
}

/// The outer header template of chassis `chassis` in `snap`'s tunnels, as the XDP
/// program's `TUNNEL_PEERS` holds it for entries of `generation`.
pub fn peer_template(snap: &Snapshot, chassis: u32, generation: u64) -> Option<TunnelPeer> {
    let table = snap.tunnels()?;
    let peer = table.peer(u16::try_from(chassis).ok()?)?;
    let (header, ip_sum) = geneve::template(&peer.underlay);
    Some(TunnelPeer {
        generation,
        header,
        csum: u8::from(peer.underlay.csum),
        valid: 1,
        ip_sum,
        _pad: [0; 2],
        ifindex: table.underlay_ifindex,
        _pad2: 0,
    })
}

/// Big-endian bytes of the low `N` bytes of `v`.
fn be<const N: usize>(v: u128) -> [u8; N] {
    let all = v.to_be_bytes();
    let mut out = [0u8; N];
    out.copy_from_slice(&all[16 - N..]);
    out
}

/// The one's-complement sum of `new`'s 16-bit words and of the complements of `old`'s:
/// what RFC 1624 eq. 3 adds to a checksum's complement when `old` becomes `new`.
fn delta(old: &[u8], new: &[u8]) -> u32 {
    let (old, new) = (old.as_chunks::<2>().0, new.as_chunks::<2>().0);
    let old: u32 = old.iter().map(|c| u32::from(!u16::from_be_bytes(*c))).sum();
    let new: u32 = new.iter().map(|c| u32::from(u16::from_be_bytes(*c))).sum();
    old + new
}

/// Folds a sum to 16 bits with end-around carry (0 only for 0): adding the folded value
/// to a checksum's complement and folding again gives what adding the sum would.
fn fold(mut sum: u32) -> u16 {
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// A transport checksum step (`commit`'s order: source address, destination address,
/// ports or ICMP type/code).
fn step(a: &mut CacheAction, i: usize, sum: u32, if_set: bool) {
    a.l4_steps |= 1 << i;
    if if_set {
        a.l4_if_set |= 1 << i;
    }
    a.l4_delta[i] = fold(sum);
}

/// Fills `a`'s rewrite from `start` → `to`, as [`flow::commit`] writes it. `None` when
/// `commit` would refuse it or a field is outside what the XDP program writes.
pub fn rewrite(start: &Flow, to: &Flow, a: &mut CacheAction) -> Option<()> {
    flow::check(start, to).ok()?;
    let dl = start.dl_type();
    let proto = start.nw_proto();
    a.family = match dl {
        ETH_TYPE_IP => FAMILY_IPV4,
        ETH_TYPE_IPV6 => FAMILY_IPV6,
        ETH_TYPE_ARP | ETH_TYPE_RARP => FAMILY_ARP,
        _ => FAMILY_OTHER,
    };
    let changed = |f: Field| start.get(f) != to.get(f);
    let mut ip_sum = 0u32;
    let mut ip_changed = false;
    for f in flow::changed(start, to) {
        match (a.family, f) {
            (_, Field::EthDst) => {
                a.rewrite |= rw::ETH_DST;
                a.eth_dst = be(to.get(f));
            }
            (_, Field::EthSrc) => {
                a.rewrite |= rw::ETH_SRC;
                a.eth_src = be(to.get(f));
            }
            (FAMILY_IPV4, Field::Ipv4Src | Field::Ipv4Dst) => {
                let (old, new): ([u8; 4], [u8; 4]) = (be(start.get(f)), be(to.get(f)));
                if f == Field::Ipv4Src {
                    a.rewrite |= rw::NW_SRC;
                    a.nw_src = new;
                } else {
                    a.rewrite |= rw::NW_DST;
                    a.nw_dst = new;
                }
                ip_sum += delta(&old, &new);
                ip_changed = true;
                // TCP always, UDP when its checksum is set; ICMP has no pseudo-header.
                if matches!(proto, 6 | 17) {
                    let i = usize::from(f == Field::Ipv4Dst);
                    step(a, i, delta(&old, &new), proto == 17);
                }
            }
            (FAMILY_IPV4, Field::IpDscp | Field::IpEcn) => {
                let tos = |fl: &Flow| ((fl.get(Field::IpDscp) << 2) | fl.get(Field::IpEcn)) as u8;
                if a.rewrite & rw::IP4_TOS == 0 {
                    a.rewrite |= rw::IP4_TOS;
                    a.tos = tos(to);
                    // The key only holds IHL 5 frames: the word is [0x45, TOS].
                    ip_sum += delta(&[0x45, tos(start)], &[0x45, tos(to)]);
                    ip_changed = true;
                }
            }
            (FAMILY_IPV4, Field::IpTtl) => {
                a.rewrite |= rw::TTL;
                a.ttl = to.get(f) as u8;
                ip_sum += delta(&[start.get(f) as u8, proto], &[a.ttl, proto]);
                ip_changed = true;
            }
            (FAMILY_IPV6, Field::IpDscp | Field::IpEcn | Field::Ipv6Label) => {
                let tc = ((to.get(Field::IpDscp) << 2) | to.get(Field::IpEcn)) as u32;
                let vtcfl = (6u32 << 28) | (tc << 20) | to.get(Field::Ipv6Label) as u32;
                a.rewrite |= rw::IP6_VTCFL;
                a.ip6_vtcfl = vtcfl.to_be_bytes();
            }
            (FAMILY_IPV6, Field::IpTtl) => {
                a.rewrite |= rw::TTL;
                a.ttl = to.get(f) as u8;
            }
            (FAMILY_IPV6, Field::Ipv6Src | Field::Ipv6Dst) => {
                let (old, new) = (start.get(f).to_be_bytes(), to.get(f).to_be_bytes());
                if f == Field::Ipv6Src {
                    a.rewrite |= rw::IP6_SRC;
                    a.ip6_src = new;
                } else {
                    a.rewrite |= rw::IP6_DST;
                    a.ip6_dst = new;
                }
                if matches!(proto, 6 | 17 | 58) {
                    let i = usize::from(f == Field::Ipv6Dst);
                    step(a, i, delta(&old, &new), false);
                }
            }
            (
                FAMILY_IPV4 | FAMILY_IPV6,
                Field::TcpSrc | Field::TcpDst | Field::UdpSrc | Field::UdpDst,
            ) => {
                let src = matches!(f, Field::TcpSrc | Field::UdpSrc);
                let field = if src { Field::TcpSrc } else { Field::TcpDst };
                let new: [u8; 2] = be(to.get(field));
                if src {
                    a.rewrite |= rw::TP_SRC;
                    a.tp_src = new;
                } else {
                    a.rewrite |= rw::TP_DST;
                    a.tp_dst = new;
                }
            }
            (FAMILY_IPV4, Field::Icmpv4Type | Field::Icmpv4Code)
            | (FAMILY_IPV6, Field::Icmpv6Type | Field::Icmpv6Code) => {
                a.rewrite |= rw::ICMP;
                a.tp_src = [to.get(Field::TcpSrc) as u8, to.get(Field::TcpDst) as u8];
            }
            (FAMILY_ARP, Field::ArpOp) => {
                a.rewrite |= rw::ARP_OP;
                a.arp_op = (to.get(f) as u16).to_be_bytes();
            }
            (FAMILY_ARP, Field::ArpSha) => {
                a.rewrite |= rw::ARP_SHA;
                a.arp_sha = be(to.get(f));
            }
            (FAMILY_ARP, Field::ArpTha) => {
                a.rewrite |= rw::ARP_THA;
                a.arp_tha = be(to.get(f));
            }
            (FAMILY_ARP, Field::ArpSpa) => {
                a.rewrite |= rw::NW_SRC;
                a.nw_src = be(to.get(f));
            }
            (FAMILY_ARP, Field::ArpTpa) => {
                a.rewrite |= rw::NW_DST;
                a.nw_dst = be(to.get(f));
            }
            _ => return None,
        }
    }
    if ip_changed {
        a.rewrite |= rw::IP4_CSUM;
        a.ip_csum_delta = fold(ip_sum);
    }
    // Ports or ICMP type and code: one step after the addresses'.
    let ports = changed(Field::TcpSrc) || changed(Field::TcpDst);
    if ports {
        let v6 = a.family == FAMILY_IPV6;
        match proto {
            6 | 17 => {
                let mut sum = 0;
                for f in [Field::TcpSrc, Field::TcpDst] {
                    if changed(f) {
                        let (old, new): ([u8; 2], [u8; 2]) = (be(start.get(f)), be(to.get(f)));
                        sum += delta(&old, &new);
                    }
                }
                // TCP always; UDP only when its checksum is set (checked once, as
                // `commit` does, after the addresses' updates).
                step(a, 2, sum, proto == 17);
            }
            1 if !v6 => {
                let old = [
                    start.get(Field::TcpSrc) as u8,
                    start.get(Field::TcpDst) as u8,
                ];
                step(a, 2, delta(&old, &a.tp_src), false);
            }
            58 if v6 => {
                let old = [
                    start.get(Field::TcpSrc) as u8,
                    start.get(Field::TcpDst) as u8,
                ];
                step(a, 2, delta(&old, &a.tp_src), false);
            }
            // `commit` writes ports of no other protocol.
            _ => return None,
        }
    }
    a.l4_csum_at = match proto {
        6 => 16,
        17 => 6,
        _ => 2,
    };
    if a.l4_steps == 0 {
        a.l4_csum_at = 0;
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folded_sums_update_checksums_as_the_whole_sum_does() {
        // fold(fold(a) + b) == fold(a + b): one precomputed delta equals a sequence of
        // RFC 1624 updates.
        for (a, b) in [
            (0, 0),
            (0, 0xffff),
            (0xffff, 0),
            (0x1_fffe, 3),
            (5, 0x2_0000),
            (1, 0xfffe),
        ] {
            assert_eq!(fold(u32::from(fold(a)) + b), fold(a + b), "{a:#x} {b:#x}");
        }
    }

    #[test]
    fn sctp_port_changes_are_not_cached() {
        let mut from = Flow::default();
        from.set(Field::EthType, 0x0800);
        from.set(Field::IpProto, 132);
        let mut to = from;
        to.set(Field::TcpDst, 9);
        assert_eq!(rewrite(&from, &to, &mut CacheAction::default()), None);
    }
}
