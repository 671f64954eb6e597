//! `nd_na {}`, `nd_na_router {}`, `nd_ns {}`: pinctrl's `pinctrl_handle_nd_na` /
//! `pinctrl_handle_nd_ns` with OVS's `compose_nd_na` / `compose_nd_ns` (RFC 4861 §4.3,
//! §4.4), and the ND fields (`nd.target`, `nd.sll`, `nd.tll`) the nested actions set,
//! written into the frame (OVS's `packet_set_nd`).

use ovnest_logical::db::link_local;
use ovnest_logical::flow::{ETH_TYPE_IPV6, Field, Flow};

use super::Drop;
use super::compose::{self, ETH_LEN, IPV6_LEN, mac};
use crate::flow::{Layers, csum};

const ND_NS: u8 = 135;
const ND_NA: u8 = 136;
const OPT_SLL: u8 = 1;
const OPT_TLL: u8 = 2;
const RSO_ROUTER: u32 = 0x8000_0000;
const RSO_SOLICITED: u32 = 0x4000_0000;
const RSO_OVERRIDE: u32 = 0x2000_0000;
/// ICMPv6 header, flags, target, one link-layer address option.
const ND_LEN: usize = 4 + 4 + 16 + 8;

fn is_nd(f: &Flow) -> bool {
    f.dl_type() == ETH_TYPE_IPV6
        && f.nw_proto() == 58
        && f.tp_dst() == 0
        && matches!(f.tp_src(), 135 | 136)
}

/// An ND message (type, flags, target, one link-layer address option) in a new frame.
#[allow(clippy::too_many_arguments)]
fn compose(
    eth_src: [u8; 6],
    eth_dst: [u8; 6],
    ip_src: u128,
    ip_dst: u128,
    ty: u8,
    flags: u32,
    target: u128,
    opt: u8,
) -> Vec<u8> {
    let mut b = compose::ipv6(eth_src, eth_dst, ip_src, ip_dst, 58, 255, ND_LEN);
    let l4 = ETH_LEN + IPV6_LEN;
    b[l4] = ty;
    b[l4 + 4..l4 + 8].copy_from_slice(&flags.to_be_bytes());
    b[l4 + 8..l4 + 24].copy_from_slice(&target.to_be_bytes());
    b[l4 + 24] = opt;
    b[l4 + 25] = 1;
    b[l4 + 26..l4 + 32].copy_from_slice(&eth_src);
    let c = compose::csum6(&b, ETH_LEN, 58, &b[l4..]);
    b[l4 + 2..l4 + 4].copy_from_slice(&c.to_be_bytes());
    b
}

/// The advertisement answering the solicitation `flow` describes: from its target,
/// to its source, with the target's link-layer address (the frame's destination MAC,
/// which the nested actions usually set).
pub fn build_na(flow: &Flow, router: bool) -> Result<Vec<u8>, Drop> {
    if !is_nd(flow) {
        return Err(Drop::Ignored("not_nd"));
    }
    let mut flags = RSO_SOLICITED | RSO_OVERRIDE;
    if router {
        flags |= RSO_ROUTER;
    }
    Ok(compose(
        mac(flow.get(Field::EthDst)),
        mac(flow.get(Field::EthSrc)),
        flow.get(Field::NdTarget),
        flow.get(Field::Ipv6Src),
        ND_NA,
        flags,
        flow.get(Field::NdTarget),
        OPT_TLL,
    ))
}

/// The solicitation for the IPv6 packet's destination, from the link-local address of
/// its source MAC to the destination's solicited-node group (RFC 4291 §2.7.1).
pub fn build_ns(flow: &Flow) -> Result<Vec<u8>, Drop> {
    if flow.dl_type() != ETH_TYPE_IPV6 {
        return Err(Drop::Ignored("not_ipv6"));
    }
    let src_mac = flow.get(Field::EthSrc) as u64;
    let target = flow.get(Field::Ipv6Dst);
    let sn = (0xff02u128 << 112) | 0x1_ff00_0000u128 | (target & 0xff_ffff);
    let mut dst_mac = [0x33, 0x33, 0, 0, 0, 0];
    dst_mac[2..].copy_from_slice(&(sn as u32).to_be_bytes());
    Ok(compose(
        mac(u128::from(src_mac)),
        dst_mac,
        link_local(src_mac),
        sn,
        ND_NS,
        0,
        target,
        OPT_SLL,
    ))
}

/// Writes the ND fields `to` changed relative to `from` into an ND frame, fixing the
/// ICMPv6 checksum (OVS's `packet_set_nd`: the first link-layer option of its kind).
pub fn rewrite(frame: &mut [u8], layers: Layers, from: &Flow, to: &Flow) -> Result<(), Drop> {
    if !is_nd(from) {
        return Ok(());
    }
    let Some(l4) = layers.l4 else {
        return Ok(());
    };
    if frame.len() < l4 + 24 {
        return Ok(());
    }
    let patch = |frame: &mut [u8], at: usize, new: &[u8]| {
        let old = frame[at..at + new.len()].to_vec();
        frame[at..at + new.len()].copy_from_slice(new);
        let c = u16::from_be_bytes([frame[l4 + 2], frame[l4 + 3]]);
        let c = csum::update(c, &old, new);
        frame[l4 + 2..l4 + 4].copy_from_slice(&c.to_be_bytes());
    };
    if from.get(Field::NdTarget) != to.get(Field::NdTarget) {
        patch(frame, l4 + 8, &to.get(Field::NdTarget).to_be_bytes());
    }
    let ty = frame[l4];
    let (want, field) = if ty == ND_NS {
        (OPT_SLL, Field::NdSll)
    } else {
        (OPT_TLL, Field::NdTll)
    };
    if from.get(field) != to.get(field) {
        let mut o = l4 + 24;
        while o + 8 <= frame.len() && frame[o + 1] != 0 {
            if frame[o + 1] == 1 && (frame[o] == OPT_SLL || frame[o] == OPT_TLL) {
                if frame[o] == want {
                    patch(frame, o + 2, &mac(to.get(field)));
                }
                break;
            }
            o += usize::from(frame[o + 1]) * 8;
        }
    }
    Ok(())
}

/// Makes `from`'s ND fields `to`'s, once [`rewrite`] wrote them (for ND packets only:
/// the link-layer fields share storage with ARP's).
pub fn copy_fields(from: &mut Flow, to: &Flow) {
    if is_nd(from) {
        for f in [Field::NdTarget, Field::NdSll, Field::NdTll] {
            from.set(f, to.get(f));
        }
    }
}
