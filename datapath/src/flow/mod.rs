//! Frames as the logical pipeline sees them: [`extract`] reads a frame into an
//! [`ovnest_logical::flow::Flow`] (OVS's `flow_extract`), [`commit`] writes a decision's
//! header changes back (OVS's `odp_execute`). Deciding (the pipeline) and doing (these,
//! the physical layer, the sockets) stay apart.

mod commit;
mod extract;

pub use commit::{Unwritable, changed, check, commit, csum};
pub use extract::{Layers, extract};

/// The flow the ingress pipeline starts with for `frame` arriving on logical port
/// `port`: its headers, `metadata` = the port's datapath, `reg14` (inport) = the port.
pub fn ingress(
    frame: &[u8],
    port: ovnest_common::PortKey,
) -> Option<(ovnest_logical::flow::Flow, Layers)> {
    let (mut flow, layers) = extract(frame)?;
    flow.set(
        ovnest_logical::flow::Field::Metadata,
        u128::from(port.datapath),
    );
    flow.set_reg(14, port.port);
    Some((flow, layers))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ovnest_logical::flow::Field;

    /// An IPv4 ICMP echo request from 172.16.255.133 to .129, with valid checksums.
    fn echo_request() -> Vec<u8> {
        let mut f = vec![
            0x02, 0xac, 0x10, 0xff, 0x01, 0x29, 0x02, 0xac, 0x10, 0xff, 0x01, 0x33, 0x08, 0x00,
        ];
        let mut ip = vec![
            0x45,
            0,
            0,
            28 + 8,
            0x12,
            0x34,
            0x40,
            0,
            64,
            1,
            0,
            0,
            172,
            16,
            255,
            133,
            172,
            16,
            255,
            129,
        ];
        let c = csum::of(&ip);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        let mut icmp = vec![8, 0, 0, 0, 0x00, 0x01, 0x00, 0x07, 1, 2, 3, 4, 5, 6, 7, 8];
        let c = csum::of(&icmp);
        icmp[2..4].copy_from_slice(&c.to_be_bytes());
        f.extend(ip);
        f.extend(icmp);
        f
    }

    #[test]
    fn extract_reads_what_ovn_matches() {
        let frame = echo_request();
        let (flow, layers) = extract(&frame).unwrap();
        assert_eq!(flow.dl_type(), 0x0800);
        assert_eq!(flow.nw_proto(), 1);
        assert_eq!(flow.get(Field::Ipv4Src), 0xac10_ff85);
        assert_eq!(flow.get(Field::IpTtl), 64);
        assert_eq!(flow.tp_src(), 8);
        assert_eq!(
            layers,
            Layers {
                l3: 14,
                l4: Some(34)
            }
        );
        // Every prefix of the frame parses without panicking.
        for n in 0..frame.len() {
            let _ = extract(&frame[..n]);
        }
    }

    #[test]
    fn commit_keeps_checksums_valid() {
        let mut frame = echo_request();
        let (from, layers) = extract(&frame).unwrap();
        let mut to = from;
        // The router's echo reply: addresses swapped, TTL 255, type 0, MACs swapped.
        to.set(Field::Ipv4Src, from.get(Field::Ipv4Dst));
        to.set(Field::Ipv4Dst, from.get(Field::Ipv4Src));
        to.set(Field::IpTtl, 255);
        to.set(Field::Icmpv4Type, 0);
        to.set(Field::EthSrc, from.get(Field::EthDst));
        to.set(Field::EthDst, from.get(Field::EthSrc));
        commit(&mut frame, layers, &from, &to).unwrap();
        let (again, _) = extract(&frame).unwrap();
        assert_eq!(again, to);
        assert_eq!(csum::of(&frame[14..34]), 0, "IPv4 header checksum");
        assert_eq!(csum::of(&frame[34..]), 0, "ICMP checksum");
    }

    #[test]
    fn every_prefix_commits_a_ttl_rewrite_or_says_truncated() {
        // Found by fuzz/flow_extract: a frame ending inside the IPv4 header.
        let frame = echo_request();
        for n in 0..frame.len() {
            let mut prefix = frame[..n].to_vec();
            let Some((from, layers)) = extract(&prefix) else {
                continue;
            };
            let mut to = from;
            to.set(Field::IpTtl, 63);
            let _ = commit(&mut prefix, layers, &from, &to);
            assert_eq!(prefix.len(), n);
        }
    }

    #[test]
    fn unwritable_changes_are_refused_whole() {
        let mut frame = echo_request();
        let before = frame.clone();
        let (from, layers) = extract(&frame).unwrap();
        let mut to = from;
        to.set(Field::EthSrc, 1);
        to.set(Field::IpProto, 17);
        assert_eq!(
            commit(&mut frame, layers, &from, &to),
            Err(Unwritable(Field::IpProto))
        );
        assert_eq!(frame, before);
    }
}
