//! The wire views (`ovnest_datapath::wire`): every accessor of every view that accepted
//! the input, layer after layer, must answer without panicking (`new_checked` promises it).
#![no_main]

use libfuzzer_sys::fuzz_target;
use ovnest_datapath::wire::{
    ArpPacket, EthernetFrame, VlanTag, dhcp::DhcpPacket, ethertype, ipv4::Ipv4Packet,
    udp::UdpPacket,
};

fuzz_target!(|data: &[u8]| {
    let Ok(eth) = EthernetFrame::new_checked(data) else {
        return;
    };
    let _ = (eth.dst(), eth.src());
    let (mut kind, mut payload) = (eth.ethertype(), eth.payload());
    while kind == ethertype::VLAN {
        let Ok(tag) = VlanTag::new_checked(payload) else {
            return;
        };
        let _ = (tag.tci(), tag.vid());
        let _ = tag.payload();
        kind = tag.inner_ethertype();
        payload = &payload[VlanTag::<&[u8]>::HEADER_LEN..];
    }
    if kind == ethertype::ARP {
        if let Ok(arp) = ArpPacket::new_checked(payload) {
            let _ = (
                arp.htype(),
                arp.ptype(),
                arp.hlen(),
                arp.plen(),
                arp.operation(),
            );
            let _ = (
                arp.sha(),
                arp.spa(),
                arp.tha(),
                arp.tpa(),
                arp.request_target(),
            );
        }
        return;
    }
    let Ok(ip) = Ipv4Packet::new_checked(payload) else {
        return;
    };
    let _ = (
        ip.header_len(),
        ip.tos(),
        ip.total_len(),
        ip.ident(),
        ip.flags_frag(),
    );
    let _ = (
        ip.ttl(),
        ip.protocol(),
        ip.checksum(),
        ip.src(),
        ip.dst(),
        ip.header(),
    );
    let Ok(udp) = UdpPacket::new_checked(ip.payload()) else {
        return;
    };
    let _ = (udp.src_port(), udp.dst_port(), udp.len(), udp.checksum());
    let Ok(dhcp) = DhcpPacket::new_checked(udp.payload()) else {
        return;
    };
    let _ = (
        dhcp.op(),
        dhcp.xid(),
        dhcp.flags(),
        dhcp.ciaddr(),
        dhcp.yiaddr(),
    );
    let _ = (
        dhcp.siaddr(),
        dhcp.giaddr(),
        dhcp.chaddr(),
        dhcp.has_magic(),
    );
    for option in dhcp.options() {
        let _ = (option.code, option.data.len());
    }
});
