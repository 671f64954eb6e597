//! `sctp_abort {}` and the SCTP case of `reject {}`: pinctrl's
//! `pinctrl_handle_sctp_abort` — an ABORT chunk (RFC 4960 §8.4) with the verification
//! tag reflected (T bit) or, for an INIT with tag 0, the INIT's initiate tag.

use ovnest_logical::flow::{ETH_TYPE_IPV6, Field, Flow};

use super::Drop;
use super::compose::{self, ETH_LEN, IPV4_LEN, IPV6_LEN, mac};
use crate::flow::Layers;

const SCTP_HEADER_LEN: usize = 12;
const CHUNK_HEADER_LEN: usize = 4;
const CHUNK_INIT: u8 = 1;
const CHUNK_ABORT: u8 = 6;
const ABORT_FLAG_T: u8 = 1;

/// Builds the ABORT for the SCTP packet in `pkt`.
pub fn build(pkt: &[u8], layers: Layers, flow: &Flow, loopback: bool) -> Result<Vec<u8>, Drop> {
    if flow.nw_proto() != 132 || !flow.is_ip_any() {
        return Err(Drop::Ignored("not_sctp"));
    }
    let l4 = layers.l4.ok_or(Drop::Ignored("truncated"))?;
    let sh = pkt
        .get(l4..l4 + SCTP_HEADER_LEN)
        .ok_or(Drop::Ignored("truncated"))?;
    let chunk = pkt
        .get(l4 + SCTP_HEADER_LEN..l4 + SCTP_HEADER_LEN + CHUNK_HEADER_LEN)
        .ok_or(Drop::Ignored("no_chunks"))?;
    if chunk[0] == CHUNK_ABORT {
        return Err(Drop::Ignored("sctp_abort"));
    }
    let init_tag = if chunk[0] == CHUNK_INIT {
        let at = l4 + SCTP_HEADER_LEN + CHUNK_HEADER_LEN;
        let init = pkt
            .get(at..at + 16)
            .ok_or(Drop::Ignored("truncated_init"))?;
        Some([init[0], init[1], init[2], init[3]])
    } else {
        None
    };
    let in_vtag = [sh[4], sh[5], sh[6], sh[7]];
    let (vtag, reflected) = match init_tag {
        Some(t) if in_vtag == [0; 4] => (t, false),
        _ => (in_vtag, true),
    };

    let (es, ed) = (mac(flow.get(Field::EthSrc)), mac(flow.get(Field::EthDst)));
    let (eth_src, eth_dst) = if loopback { (ed, es) } else { (es, ed) };
    let len = SCTP_HEADER_LEN + CHUNK_HEADER_LEN;
    let (mut b, o) = if flow.dl_type() == ETH_TYPE_IPV6 {
        let (s, d) = (flow.get(Field::Ipv6Src), flow.get(Field::Ipv6Dst));
        let (src, dst) = if loopback { (d, s) } else { (s, d) };
        (
            compose::ipv6(eth_src, eth_dst, src, dst, 132, 63, len),
            ETH_LEN + IPV6_LEN,
        )
    } else {
        let (s, d) = (
            flow.get(Field::Ipv4Src) as u32,
            flow.get(Field::Ipv4Dst) as u32,
        );
        let (src, dst) = if loopback { (d, s) } else { (s, d) };
        (
            compose::ipv4(eth_src, eth_dst, src, dst, 132, 63, len),
            ETH_LEN + IPV4_LEN,
        )
    };
    b[o..o + 2].copy_from_slice(&flow.tp_dst().to_be_bytes());
    b[o + 2..o + 4].copy_from_slice(&flow.tp_src().to_be_bytes());
    b[o + 4..o + 8].copy_from_slice(&vtag);
    b[o + 12] = CHUNK_ABORT;
    b[o + 13] = if reflected { ABORT_FLAG_T } else { 0 };
    b[o + 14..o + 16].copy_from_slice(&(CHUNK_HEADER_LEN as u16).to_be_bytes());
    let c = crc32c(&b[o..]);
    // RFC 4960 Appendix B: the CRC goes out least significant byte first.
    b[o + 8..o + 12].copy_from_slice(&c.to_le_bytes());
    Ok(b)
}

/// CRC32c (Castagnoli, RFC 3309), bitwise: this is the slow path.
pub fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82f6_3b78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    #[test]
    fn crc32c_check_value() {
        // The standard check value for "123456789".
        assert_eq!(super::crc32c(b"123456789"), 0xe306_9283);
    }
}
