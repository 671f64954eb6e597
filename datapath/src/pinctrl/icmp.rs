//! `icmp4 {}`, `icmp4_error {}`, `icmp6 {}`, `icmp6_error {}` and the ICMP case of
//! `reject {}`: pinctrl's `pinctrl_handle_icmp` — a destination-unreachable message
//! carrying the offending packet's IP header and data, built with the same addresses
//! (swapped for `reject`); the nested actions then set type, code and addresses.
//! `icmp4.frag_mtu` / `icmp6.frag_mtu` in those actions are pinctrl's
//! `pinctrl_handle_put_icmp_frag_mtu` ([`put_frag_mtu`]).

use ovnest_logical::flow::{ETH_TYPE_IP, ETH_TYPE_IPV6, Field, Flow};
use ovnest_logical::symtab::OvnField;

use super::Drop;
use super::compose::{self, ETH_LEN, IPV4_LEN, IPV6_LEN, mac};
use crate::flow::{Layers, csum, extract};

/// Which pinctrl entry point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `icmp4 {}` / `icmp6 {}`: code "port unreachable" for UDP, else "host
    /// unreachable" (v4) / "address unreachable" (v6).
    Icmp,
    /// `icmp4_error {}` / `icmp6_error {}`: code 1; the nested actions set the rest.
    Error,
    /// `reject {}`: as `Icmp`, addressed back to the sender; never about an ICMP
    /// unreachable.
    Reject,
}

const ICMP4_DST_UNREACH: u8 = 3;
const ICMP6_DST_UNREACH: u8 = 1;
/// RFC 1122 §3.2.2: at most 576 bytes of ICMP error (with Ethernet counted, as pinctrl).
const ICMP4_ROOM: usize = 576 - (ETH_LEN + IPV4_LEN + 8);
/// RFC 4443 §3.1: within the minimum IPv6 MTU (Ethernet counted, as pinctrl).
const ICMP6_ROOM: usize = 1280 - (ETH_LEN + IPV6_LEN + 8);

/// Builds the ICMP message about the packet in `pkt` (headers `flow`).
pub fn build(pkt: &[u8], layers: Layers, flow: &Flow, mode: Mode) -> Result<Vec<u8>, Drop> {
    let dl = flow.dl_type();
    if dl != ETH_TYPE_IP && dl != ETH_TYPE_IPV6 {
        return Err(Drop::Ignored("not_ip"));
    }
    let loopback = mode == Mode::Reject;
    let set_code = mode != Mode::Error;
    if loopback {
        // pinctrl_handle_reject_ignore_pkt: no error about an ICMP unreachable.
        let l4 = layers.l4.and_then(|o| pkt.get(o));
        let unreach = if dl == ETH_TYPE_IP {
            ICMP4_DST_UNREACH
        } else {
            ICMP6_DST_UNREACH
        };
        let is_icmp = flow.nw_proto() == if dl == ETH_TYPE_IP { 1 } else { 58 };
        if is_icmp && l4.is_none_or(|&t| t == unreach) {
            return Err(Drop::Ignored("icmp_unreachable"));
        }
    }
    let (es, ed) = (mac(flow.get(Field::EthSrc)), mac(flow.get(Field::EthDst)));
    let (eth_src, eth_dst) = if loopback { (ed, es) } else { (es, ed) };
    let l3 = layers.l3;
    let mut b = if dl == ETH_TYPE_IP {
        let tot = pkt
            .get(l3 + 2..l3 + 4)
            .map(|x| usize::from(u16::from_be_bytes([x[0], x[1]])))
            .ok_or(Drop::Ignored("truncated"))?;
        if tot < IPV4_LEN {
            return Err(Drop::Ignored("bad_ip_length"));
        }
        let n = tot.min(ICMP4_ROOM);
        let inner = pkt.get(l3..l3 + n).ok_or(Drop::Ignored("truncated"))?;
        let (s, d) = (
            flow.get(Field::Ipv4Src) as u32,
            flow.get(Field::Ipv4Dst) as u32,
        );
        let (src, dst) = if loopback { (d, s) } else { (s, d) };
        let mut b = compose::ipv4(eth_src, eth_dst, src, dst, 1, 255, 8 + n);
        let l4 = ETH_LEN + IPV4_LEN;
        let code = if set_code && inner[9] == 17 { 3 } else { 1 };
        b[l4] = ICMP4_DST_UNREACH;
        b[l4 + 1] = code;
        b[l4 + 8..].copy_from_slice(inner);
        let c = csum::of(&b[l4..]);
        b[l4 + 2..l4 + 4].copy_from_slice(&c.to_be_bytes());
        b
    } else {
        let plen = pkt
            .get(l3 + 4..l3 + 6)
            .map(|x| usize::from(u16::from_be_bytes([x[0], x[1]])))
            .ok_or(Drop::Ignored("truncated"))?;
        let n = (IPV6_LEN + plen).min(ICMP6_ROOM);
        let inner = pkt.get(l3..l3 + n).ok_or(Drop::Ignored("truncated"))?;
        let (s, d) = (flow.get(Field::Ipv6Src), flow.get(Field::Ipv6Dst));
        let (src, dst) = if loopback { (d, s) } else { (s, d) };
        let mut b = compose::ipv6(eth_src, eth_dst, src, dst, 58, 255, 8 + n);
        let l4 = ETH_LEN + IPV6_LEN;
        // ICMP6_DST_UNREACH_NOPORT for UDP (the IPv6 header's next header).
        let code = if set_code && inner[6] == 17 { 4 } else { 1 };
        b[l4] = ICMP6_DST_UNREACH;
        b[l4 + 1] = code;
        b[l4 + 8..].copy_from_slice(inner);
        let c = compose::csum6(&b, ETH_LEN, 58, &b[l4..]);
        b[l4 + 2..l4 + 4].copy_from_slice(&c.to_be_bytes());
        b
    };
    if let Some(tci) = compose::tagged(flow.get(Field::VlanTci)) {
        compose::push_vlan(&mut b, tci);
    }
    Ok(b)
}

/// Writes the next-hop MTU into an ICMP message (RFC 1191 §4 for v4, the packet-too-big
/// MTU of RFC 4443 §3.2 for v6) and fixes its checksum. A frame of the other family
/// is left as it is (pinctrl warns and resumes).
pub fn put_frag_mtu(frame: &mut [u8], field: OvnField, value: u128) -> Result<(), Drop> {
    let (f, layers) = extract(frame).ok_or(Drop::Unreadable)?;
    let Some(l4) = layers.l4 else {
        return Ok(());
    };
    match field {
        OvnField::Icmp4FragMtu if f.dl_type() == ETH_TYPE_IP && f.nw_proto() == 1 => {
            let Some(old) = frame.get(l4 + 6..l4 + 8).map(|x| [x[0], x[1]]) else {
                return Ok(());
            };
            let new = (value as u16).to_be_bytes();
            frame[l4 + 6..l4 + 8].copy_from_slice(&new);
            let c = u16::from_be_bytes([frame[l4 + 2], frame[l4 + 3]]);
            let c = csum::update(c, &old, &new);
            frame[l4 + 2..l4 + 4].copy_from_slice(&c.to_be_bytes());
        }
        OvnField::Icmp6FragMtu if f.dl_type() == ETH_TYPE_IPV6 && f.nw_proto() == 58 => {
            if frame.len() < l4 + 8 {
                return Ok(());
            }
            frame[l4 + 4..l4 + 8].copy_from_slice(&(value as u32).to_be_bytes());
            frame[l4 + 2..l4 + 4].copy_from_slice(&[0, 0]);
            let c = compose::csum6(frame, layers.l3, 58, &frame[l4..]);
            frame[l4 + 2..l4 + 4].copy_from_slice(&c.to_be_bytes());
        }
        _ => {}
    }
    Ok(())
}
