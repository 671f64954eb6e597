//! Cache keys from the flow the pipeline decided with: a projection of its words.

use ovnest_common::{
    cache::{CacheKey, CacheKey6},
    tunnel::TunnelKey,
};
use ovnest_logical::flow::{ETH_TYPE_IPV6, Flow};

/// A key of either cache map.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Key {
    /// `CACHE`: every frame but IPv6.
    V4(CacheKey),
    /// `CACHE6`: IPv6 frames.
    V6(CacheKey6),
    /// `TUNNEL_CACHE`: frames received from a tunnel.
    Tunnel(TunnelKey),
}

/// The key of a frame received from a tunnel: `start` is the inner frame's flow as the
/// tunnel path starts it (datapath = VNI, reg14 = the option's ingress key; reg15 = its
/// egress key, given as `egress`), from `remote_ip`. `None` for what the key cannot
/// describe (IPv6 inner frames, a flow with other registers).
pub fn of_tunnel(start: &Flow, egress: u32, remote_ip: [u8; 4]) -> Option<TunnelKey> {
    let mut flow = *start;
    flow.set_reg(15, 0);
    if flow.dl_type() == ETH_TYPE_IPV6 {
        return None;
    }
    Some(TunnelKey {
        base: CacheKey::from_flow(&flow)?,
        egress,
        remote_ip,
    })
}

/// Building a key from a flow at the start of the ingress pipeline (metadata and
/// `reg14` set, everything else as `flow::extract` left it).
pub trait FromFlow: Sized {
    /// `None` when the flow holds something the key does not (a register, conntrack
    /// state, IPv6 words in an IPv4 key).
    fn from_flow(flow: &Flow) -> Option<Self>;
}

impl FromFlow for CacheKey {
    fn from_flow(flow: &Flow) -> Option<CacheKey> {
        CacheKey::from_words(&flow.w)
    }
}

impl FromFlow for CacheKey6 {
    fn from_flow(flow: &Flow) -> Option<CacheKey6> {
        CacheKey6::from_words(&flow.w)
    }
}

impl FromFlow for Key {
    fn from_flow(flow: &Flow) -> Option<Key> {
        if flow.dl_type() == ETH_TYPE_IPV6 {
            CacheKey6::from_flow(flow).map(Key::V6)
        } else {
            CacheKey::from_flow(flow).map(Key::V4)
        }
    }
}

/// The key of `frame` (untagged, as the pipeline sees it) arriving on logical port
/// `port`: what XDP must compute for the frame as it arrived.
pub fn of_frame(frame: &[u8], port: ovnest_common::PortKey) -> Option<Key> {
    let (flow, _) = crate::flow::ingress(frame, port)?;
    Key::from_flow(&flow)
}

#[cfg(test)]
mod tests {
    use ovnest_common::cache::{slot, word};
    use ovnest_logical::flow::{Field, WORDS};

    use super::*;

    /// The word numbers `ovnest_common::cache` projects are where the flow keeps the
    /// fields a frame fills: a change of the flow's layout fails here, not in XDP.
    #[test]
    fn projected_words_are_the_flows() {
        assert_eq!(WORDS, word::WORDS);
        let at = |f: Field| f.loc().word as usize;
        assert_eq!(at(Field::Metadata), word::METADATA);
        assert_eq!(at(Field::Reg(14)), word::REG14_15);
        assert_eq!(Field::Reg(14).loc().shift, 32);
        assert_eq!(at(Field::Reg(15)), word::REG14_15);
        for f in [Field::VlanTci, Field::EthDst] {
            assert_eq!(at(f), word::DL_DST);
        }
        for f in [Field::EthType, Field::EthSrc] {
            assert_eq!(at(f), word::DL_SRC);
        }
        for f in [Field::Ipv4Src, Field::Ipv4Dst, Field::ArpSpa, Field::ArpTpa] {
            assert_eq!(at(f), word::NW);
        }
        assert_eq!(at(Field::Ipv6Src), word::IPV6);
        assert_eq!(at(Field::Ipv6Dst), word::IPV6 + 2);
        assert_eq!(at(Field::NdTarget), word::IPV6 + 4);
        for f in [
            Field::TcpSrc,
            Field::Icmpv4Type,
            Field::ArpSha,
            Field::NdSll,
        ] {
            assert_eq!(at(f), word::TP_SRC);
        }
        for f in [
            Field::TcpDst,
            Field::Icmpv4Code,
            Field::ArpTha,
            Field::NdTll,
        ] {
            assert_eq!(at(f), word::TP_DST);
        }
        for f in [
            Field::IpProto,
            Field::ArpOp,
            Field::IpDscp,
            Field::IpEcn,
            Field::IpTtl,
            Field::IpFrag,
            Field::TcpFlags,
        ] {
            assert_eq!(at(f), word::IP);
        }
        // The XDP program writes the TOS byte whole at bit 8 and the TTL at 16.
        assert_eq!(
            (Field::IpEcn.loc().shift, Field::IpDscp.loc().shift),
            (8, 10)
        );
        assert_eq!(Field::IpTtl.loc().shift, 16);
        assert_eq!(Field::TcpFlags.loc().shift, 32);
        assert_eq!(at(Field::Ipv6Label), word::MARK);
        assert_eq!(Field::Ipv6Label.loc().shift, 32);
        assert_eq!(slot::WORDS.len(), 7);
    }

    #[test]
    fn keys_of_flows() {
        let mut f = Flow::default();
        f.set(Field::Metadata, 1);
        f.set_reg(14, 7);
        f.set(Field::EthType, 0x0800);
        f.set(Field::Ipv4Src, 0xac10_ff85);
        let Some(Key::V4(k)) = Key::from_flow(&f) else {
            panic!("an IPv4 key")
        };
        assert_eq!((k.datapath, k.inport), (1, 7));
        assert_eq!(k.w[slot::NW], 0xac10_ff85 << 32);
        f.set(Field::EthType, 0x86dd);
        f.set(Field::Ipv6Src, 1);
        assert!(matches!(Key::from_flow(&f), Some(Key::V6(k)) if k.ipv6[1] == 1));
        // A flow that already went through stages holds registers: no key.
        f.set_reg(0, 1);
        assert_eq!(Key::from_flow(&f), None);
    }
}
