//! `tcp_reset {}` and the TCP case of `reject {}`: pinctrl's
//! `pinctrl_handle_tcp_reset` — a RST+ACK (TTL/hop limit 63, ports swapped, ack =
//! the segment's sequence number + 1); addresses swapped only for `reject`.

use ovnest_logical::flow::{ETH_TYPE_IPV6, Field, Flow};

use super::Drop;
use super::compose::{self, ETH_LEN, IPV4_LEN, IPV6_LEN, mac};
use crate::flow::Layers;

const TCP_RST: u16 = 0x004;
const TCP_ACK: u16 = 0x010;
const TCP_LEN: usize = 20;

/// Builds the reset for the TCP segment in `pkt`. `loopback` (reject) also refuses to
/// answer a reset with a reset.
pub fn build(pkt: &[u8], layers: Layers, flow: &Flow, loopback: bool) -> Result<Vec<u8>, Drop> {
    if flow.nw_proto() != 6 || !flow.is_ip_any() {
        return Err(Drop::Ignored("not_tcp"));
    }
    let th = layers
        .l4
        .and_then(|o| pkt.get(o..o + TCP_LEN))
        .ok_or(Drop::Ignored("truncated"))?;
    if loopback && u16::from_be_bytes([th[12], th[13]]) & TCP_RST != 0 {
        return Err(Drop::Ignored("tcp_rst"));
    }
    let seq = u32::from_be_bytes([th[4], th[5], th[6], th[7]]).wrapping_add(1);
    let (es, ed) = (mac(flow.get(Field::EthSrc)), mac(flow.get(Field::EthDst)));
    let (eth_src, eth_dst) = if loopback { (ed, es) } else { (es, ed) };
    let v6 = flow.dl_type() == ETH_TYPE_IPV6;
    let (mut b, l4) = if v6 {
        let (s, d) = (flow.get(Field::Ipv6Src), flow.get(Field::Ipv6Dst));
        let (src, dst) = if loopback { (d, s) } else { (s, d) };
        (
            compose::ipv6(eth_src, eth_dst, src, dst, 6, 63, TCP_LEN),
            ETH_LEN + IPV6_LEN,
        )
    } else {
        let (s, d) = (
            flow.get(Field::Ipv4Src) as u32,
            flow.get(Field::Ipv4Dst) as u32,
        );
        let (src, dst) = if loopback { (d, s) } else { (s, d) };
        (
            compose::ipv4(eth_src, eth_dst, src, dst, 6, 63, TCP_LEN),
            ETH_LEN + IPV4_LEN,
        )
    };
    b[l4..l4 + 2].copy_from_slice(&flow.tp_dst().to_be_bytes());
    b[l4 + 2..l4 + 4].copy_from_slice(&flow.tp_src().to_be_bytes());
    b[l4 + 8..l4 + 12].copy_from_slice(&seq.to_be_bytes());
    b[l4 + 12..l4 + 14].copy_from_slice(&((5 << 12) | TCP_RST | TCP_ACK).to_be_bytes());
    let c = if v6 {
        compose::csum6(&b, ETH_LEN, 6, &b[l4..])
    } else {
        compose::csum4(&b, ETH_LEN, 6, &b[l4..])
    };
    b[l4 + 16..l4 + 18].copy_from_slice(&c.to_be_bytes());
    Ok(b)
}
