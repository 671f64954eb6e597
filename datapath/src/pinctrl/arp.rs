//! `arp { ... }`: pinctrl's `pinctrl_handle_arp` — an ARP request for the IPv4
//! packet's destination, from its source (OVS's `compose_arp__`, 42 bytes, the tag
//! pushed back when the packet had one). The nested actions then set the target and
//! send it.
//!
//! pinctrl also buffers the IP packet and sends it once the MAC_Binding appears; ovnest
//! does not (the sender's retransmission goes through once the binding is known).

use ovnest_logical::flow::{ETH_TYPE_IP, Field, Flow};

use super::Drop;
use super::compose::{self, ETH_TYPE_ARP, mac};
use crate::flow::Layers;

/// Builds the ARP request for `flow` (an IPv4 packet).
pub fn build(_pkt: &[u8], _layers: Layers, flow: &Flow) -> Result<Vec<u8>, Drop> {
    if flow.dl_type() != ETH_TYPE_IP {
        return Err(Drop::Ignored("not_ipv4"));
    }
    let (dst, src) = (mac(flow.get(Field::EthDst)), mac(flow.get(Field::EthSrc)));
    let mut b = compose::eth(dst, src, ETH_TYPE_ARP);
    b.extend_from_slice(&[0, 1, 0x08, 0x00, 6, 4, 0, 1]);
    b.extend_from_slice(&src);
    b.extend_from_slice(&(flow.get(Field::Ipv4Src) as u32).to_be_bytes());
    b.extend_from_slice(&[0; 6]);
    b.extend_from_slice(&(flow.get(Field::Ipv4Dst) as u32).to_be_bytes());
    if let Some(tci) = compose::tagged(flow.get(Field::VlanTci)) {
        compose::push_vlan(&mut b, tci);
    }
    Ok(b)
}

/// An Ethernet/IPv4 ARP packet's fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpFields {
    pub op: u16,
    pub sha: [u8; 6],
    pub spa: [u8; 4],
    pub tha: [u8; 6],
    pub tpa: [u8; 4],
}

/// Reads the ARP fields of a frame (Ethernet, optional tag, ARP): the fuzzing entry
/// point for ARP. `None` when it is not an Ethernet/IPv4 ARP packet.
pub fn parse(frame: &[u8]) -> Option<ArpFields> {
    use crate::wire::{ArpPacket, EthernetFrame, VlanTag, ethertype};
    let eth = EthernetFrame::new_checked(frame).ok()?;
    let off = if eth.ethertype() == ethertype::VLAN {
        let tag = VlanTag::new_checked(eth.payload()).ok()?;
        if tag.inner_ethertype() != ethertype::ARP {
            return None;
        }
        18
    } else if eth.ethertype() == ethertype::ARP {
        14
    } else {
        return None;
    };
    let payload = frame.get(off..)?;
    let a = ArpPacket::new_checked(payload).ok()?;
    if a.htype() != 1 || a.ptype() != ethertype::IPV4 || a.hlen() != 6 || a.plen() != 4 {
        return None;
    }
    Some(ArpFields {
        op: a.operation(),
        sha: a.sha(),
        spa: a.spa(),
        tha: a.tha(),
        tpa: a.tpa(),
    })
}
