//! Zero-copy header views (smoltcp style) over frame bytes in the UMEM.
//!
//! Each view wraps a buffer `T: AsRef<[u8]>` (getters) or `T: AsMut<[u8]>` (setters).
//! Untrusted input goes through `new_checked`, which verifies the buffer holds the whole
//! fixed header; after that no accessor of the view panics, whatever the bytes are. The
//! `payload` accessors return the (possibly empty) rest of the buffer.
//!
//! Only what the datapath reads and writes is here: Ethernet II, one 802.1Q tag, and ARP
//! for IPv4 over Ethernet (RFC 826); the protocols pinctrl answers have a file each
//! under `wire/`.

use core::fmt;

pub mod dhcp;
pub mod ipv4;
pub mod udp;

/// The buffer is too short for the header it is viewed as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Error;

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("truncated header")
    }
}

impl std::error::Error for Error {}

pub type Result<T> = core::result::Result<T, Error>;

/// Ethertypes the datapath tells apart.
pub mod ethertype {
    pub const IPV4: u16 = 0x0800;
    pub const ARP: u16 = 0x0806;
    /// Customer tag (802.1Q): the tag a VM puts on a container's frames.
    pub const VLAN: u16 = 0x8100;
    /// Service tag (802.1ad, QinQ): never accepted from a VM.
    pub const QINQ: u16 = 0x88a8;
}

/// A MAC address.
pub type Mac = [u8; 6];

/// `ff:ff:ff:ff:ff:ff`.
pub const BROADCAST: Mac = [0xff; 6];

/// Group bit of the first octet: broadcast and multicast destinations, invalid sources.
#[inline(always)]
pub fn is_multicast(mac: &Mac) -> bool {
    mac[0] & 1 != 0
}

type Field = core::ops::Range<usize>;

mod field {
    use super::Field;

    // Ethernet II.
    pub const DST: Field = 0..6;
    pub const SRC: Field = 6..12;
    pub const ETHERTYPE: Field = 12..14;
    pub const ETH_PAYLOAD: usize = 14;

    // 802.1Q tag, offsets from the start of the tag (byte 12 of a tagged frame is the TPID,
    // which the Ethernet view calls its ethertype; the tag view starts after it).
    pub const TCI: Field = 0..2;
    pub const INNER_ETHERTYPE: Field = 2..4;
    pub const TAG_PAYLOAD: usize = 4;

    // ARP (RFC 826) for IPv4 over Ethernet.
    pub const HTYPE: Field = 0..2;
    pub const PTYPE: Field = 2..4;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: Field = 6..8;
    pub const SHA: Field = 8..14;
    pub const SPA: Field = 14..18;
    pub const THA: Field = 18..24;
    pub const TPA: Field = 24..28;
}

#[inline(always)]
fn get_u16(bytes: &[u8], field: Field) -> u16 {
    u16::from_be_bytes([bytes[field.start], bytes[field.start + 1]])
}

#[inline(always)]
fn get_array<const N: usize>(bytes: &[u8], field: Field) -> [u8; N] {
    let mut out = [0; N];
    out.copy_from_slice(&bytes[field]);
    out
}

/// An Ethernet II frame: destination, source, ethertype, payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EthernetFrame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    /// Length of the header (no tag).
    pub const HEADER_LEN: usize = field::ETH_PAYLOAD;

    /// Wraps `buffer` without checking it; accessors may panic on a short buffer.
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps `buffer` after checking it holds the 14-byte header.
    #[inline(always)]
    pub fn new_checked(buffer: T) -> Result<Self> {
        let frame = Self::new_unchecked(buffer);
        frame.check_len()?;
        Ok(frame)
    }

    #[inline(always)]
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < Self::HEADER_LEN {
            Err(Error)
        } else {
            Ok(())
        }
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline(always)]
    pub fn dst(&self) -> Mac {
        get_array(self.buffer.as_ref(), field::DST)
    }

    #[inline(always)]
    pub fn src(&self) -> Mac {
        get_array(self.buffer.as_ref(), field::SRC)
    }

    /// The outer ethertype: the TPID (0x8100, 0x88a8) on a tagged frame.
    #[inline(always)]
    pub fn ethertype(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::ETHERTYPE)
    }

    /// Everything after the 14-byte header (the tag, on a tagged frame).
    #[inline(always)]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::ETH_PAYLOAD..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetFrame<T> {
    #[inline(always)]
    pub fn set_dst(&mut self, mac: Mac) {
        self.buffer.as_mut()[field::DST].copy_from_slice(&mac);
    }

    #[inline(always)]
    pub fn set_src(&mut self, mac: Mac) {
        self.buffer.as_mut()[field::SRC].copy_from_slice(&mac);
    }

    #[inline(always)]
    pub fn set_ethertype(&mut self, ethertype: u16) {
        self.buffer.as_mut()[field::ETHERTYPE].copy_from_slice(&ethertype.to_be_bytes());
    }

    #[inline(always)]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::ETH_PAYLOAD..]
    }
}

/// The 4 bytes following the TPID of an 802.1Q frame: TCI, then the inner ethertype.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VlanTag<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> VlanTag<T> {
    /// TCI and inner ethertype.
    pub const HEADER_LEN: usize = field::TAG_PAYLOAD;
    /// VLAN ids 0 (priority tag) and 4095 (reserved) never name a container.
    pub const VID_MASK: u16 = 0x0fff;

    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps `buffer` (an Ethernet payload) after checking it holds TCI and inner type.
    #[inline(always)]
    pub fn new_checked(buffer: T) -> Result<Self> {
        let tag = Self::new_unchecked(buffer);
        tag.check_len()?;
        Ok(tag)
    }

    #[inline(always)]
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < Self::HEADER_LEN {
            Err(Error)
        } else {
            Ok(())
        }
    }

    #[inline(always)]
    pub fn tci(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::TCI)
    }

    /// The 12-bit VLAN id (PCP and DEI masked off).
    #[inline(always)]
    pub fn vid(&self) -> u16 {
        self.tci() & Self::VID_MASK
    }

    #[inline(always)]
    pub fn inner_ethertype(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::INNER_ETHERTYPE)
    }

    #[inline(always)]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::TAG_PAYLOAD..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> VlanTag<T> {
    /// Sets the whole TCI: OVN's push (mod_vlan_vid on a fresh tag) leaves PCP and DEI 0.
    #[inline(always)]
    pub fn set_tci(&mut self, tci: u16) {
        self.buffer.as_mut()[field::TCI].copy_from_slice(&tci.to_be_bytes());
    }

    #[inline(always)]
    pub fn set_inner_ethertype(&mut self, ethertype: u16) {
        self.buffer.as_mut()[field::INNER_ETHERTYPE].copy_from_slice(&ethertype.to_be_bytes());
    }
}

/// ARP operation codes.
pub mod arp_op {
    pub const REQUEST: u16 = 1;
    pub const REPLY: u16 = 2;
}

/// An ARP packet for IPv4 over Ethernet (the 28-byte form; other hardware or protocol
/// types are readable through `htype`/`ptype` but have no meaning to the address getters).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ArpPacket<T> {
    /// The Ethernet/IPv4 ARP packet.
    pub const LEN: usize = field::TPA.end;

    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps `buffer` after checking it holds the 28 bytes of an Ethernet/IPv4 ARP packet.
    #[inline(always)]
    pub fn new_checked(buffer: T) -> Result<Self> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    #[inline(always)]
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < Self::LEN {
            Err(Error)
        } else {
            Ok(())
        }
    }

    #[inline(always)]
    pub fn htype(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::HTYPE)
    }

    #[inline(always)]
    pub fn ptype(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::PTYPE)
    }

    #[inline(always)]
    pub fn hlen(&self) -> u8 {
        self.buffer.as_ref()[field::HLEN]
    }

    #[inline(always)]
    pub fn plen(&self) -> u8 {
        self.buffer.as_ref()[field::PLEN]
    }

    #[inline(always)]
    pub fn operation(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::OPER)
    }

    #[inline(always)]
    pub fn sha(&self) -> Mac {
        get_array(self.buffer.as_ref(), field::SHA)
    }

    #[inline(always)]
    pub fn spa(&self) -> [u8; 4] {
        get_array(self.buffer.as_ref(), field::SPA)
    }

    #[inline(always)]
    pub fn tha(&self) -> Mac {
        get_array(self.buffer.as_ref(), field::THA)
    }

    #[inline(always)]
    pub fn tpa(&self) -> [u8; 4] {
        get_array(self.buffer.as_ref(), field::TPA)
    }

    /// The requested address, if this is an Ethernet/IPv4 request (the only kind OVN's
    /// ls_in_arp_rsp answers). Same test as the XDP program's `arp::request_target`.
    #[inline(always)]
    pub fn request_target(&self) -> Option<[u8; 4]> {
        let well_formed = self.htype() == 1
            && self.ptype() == ethertype::IPV4
            && self.hlen() == 6
            && self.plen() == 4
            && self.operation() == arp_op::REQUEST;
        well_formed.then(|| self.tpa())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> ArpPacket<T> {
    #[inline(always)]
    pub fn set_htype(&mut self, v: u16) {
        self.buffer.as_mut()[field::HTYPE].copy_from_slice(&v.to_be_bytes());
    }

    #[inline(always)]
    pub fn set_ptype(&mut self, v: u16) {
        self.buffer.as_mut()[field::PTYPE].copy_from_slice(&v.to_be_bytes());
    }

    #[inline(always)]
    pub fn set_hlen(&mut self, v: u8) {
        self.buffer.as_mut()[field::HLEN] = v;
    }

    #[inline(always)]
    pub fn set_plen(&mut self, v: u8) {
        self.buffer.as_mut()[field::PLEN] = v;
    }

    #[inline(always)]
    pub fn set_operation(&mut self, v: u16) {
        self.buffer.as_mut()[field::OPER].copy_from_slice(&v.to_be_bytes());
    }

    #[inline(always)]
    pub fn set_sha(&mut self, v: Mac) {
        self.buffer.as_mut()[field::SHA].copy_from_slice(&v);
    }

    #[inline(always)]
    pub fn set_spa(&mut self, v: [u8; 4]) {
        self.buffer.as_mut()[field::SPA].copy_from_slice(&v);
    }

    #[inline(always)]
    pub fn set_tha(&mut self, v: Mac) {
        self.buffer.as_mut()[field::THA].copy_from_slice(&v);
    }

    #[inline(always)]
    pub fn set_tpa(&mut self, v: [u8; 4]) {
        self.buffer.as_mut()[field::TPA].copy_from_slice(&v);
    }

    /// Turns a request into the reply OVN's ls_in_arp_rsp builds (the Ethernet header is
    /// the caller's): op = 2, tha = sha, sha = `mac`, tpa = spa, spa = `ip`.
    #[inline(always)]
    pub fn make_reply(&mut self, mac: Mac, ip: [u8; 4]) {
        let (sha, spa) = (self.sha(), self.spa());
        self.set_operation(arp_op::REPLY);
        self.set_tha(sha);
        self.set_sha(mac);
        self.set_tpa(spa);
        self.set_spa(ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// dmz-c51 (02:ac:10:ff:01:33, 172.16.255.151) asks for 172.16.255.130, tagged 51.
    static TAGGED_ARP: [u8; 46] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // dst
        0x02, 0xac, 0x10, 0xff, 0x01, 0x33, // src
        0x81, 0x00, // TPID
        0x00, 0x33, // TCI: vid 51
        0x08, 0x06, // inner type: ARP
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, // htype ptype hlen plen op=request
        0x02, 0xac, 0x10, 0xff, 0x01, 0x33, // sha
        172, 16, 255, 151, // spa
        0, 0, 0, 0, 0, 0, // tha
        172, 16, 255, 130, // tpa
    ];

    #[test]
    fn deconstruct_tagged_arp() {
        let eth = EthernetFrame::new_checked(&TAGGED_ARP[..]).unwrap();
        assert_eq!(eth.dst(), BROADCAST);
        assert_eq!(eth.src(), [2, 0xac, 0x10, 0xff, 1, 0x33]);
        assert_eq!(eth.ethertype(), ethertype::VLAN);
        let tag = VlanTag::new_checked(eth.payload()).unwrap();
        assert_eq!(tag.vid(), 51);
        assert_eq!(tag.inner_ethertype(), ethertype::ARP);
        let arp = ArpPacket::new_checked(tag.payload()).unwrap();
        assert_eq!(arp.operation(), arp_op::REQUEST);
        assert_eq!(arp.spa(), [172, 16, 255, 151]);
        assert_eq!(arp.tha(), [0; 6]);
        assert_eq!(arp.request_target(), Some([172, 16, 255, 130]));
    }

    #[test]
    fn construct_tagged_arp() {
        let mut bytes = [0u8; 46];
        let mut eth = EthernetFrame::new_unchecked(&mut bytes[..]);
        eth.set_dst(BROADCAST);
        eth.set_src([2, 0xac, 0x10, 0xff, 1, 0x33]);
        eth.set_ethertype(ethertype::VLAN);
        let mut tag = VlanTag::new_unchecked(eth.payload_mut());
        tag.set_tci(51);
        tag.set_inner_ethertype(ethertype::ARP);
        let mut arp = ArpPacket::new_unchecked(&mut bytes[18..]);
        arp.set_htype(1);
        arp.set_ptype(ethertype::IPV4);
        arp.set_hlen(6);
        arp.set_plen(4);
        arp.set_operation(arp_op::REQUEST);
        arp.set_sha([2, 0xac, 0x10, 0xff, 1, 0x33]);
        arp.set_spa([172, 16, 255, 151]);
        arp.set_tha([0; 6]);
        arp.set_tpa([172, 16, 255, 130]);
        assert_eq!(bytes, TAGGED_ARP);
    }

    #[test]
    fn reply_swaps_addresses() {
        let mut bytes = TAGGED_ARP;
        let mut arp = ArpPacket::new_checked(&mut bytes[18..]).unwrap();
        let mac = [2, 0xac, 0x10, 0xff, 1, 0x30];
        arp.make_reply(mac, [172, 16, 255, 130]);
        assert_eq!(arp.operation(), arp_op::REPLY);
        assert_eq!(arp.sha(), mac);
        assert_eq!(arp.spa(), [172, 16, 255, 130]);
        assert_eq!(arp.tha(), [2, 0xac, 0x10, 0xff, 1, 0x33]);
        assert_eq!(arp.tpa(), [172, 16, 255, 151]);
        assert_eq!(arp.request_target(), None, "a reply is not a request");
    }

    #[test]
    fn multicast_bit() {
        assert!(is_multicast(&BROADCAST));
        assert!(is_multicast(&[0x01, 0, 0x5e, 0, 0, 1]));
        assert!(!is_multicast(&[2, 0xac, 0x10, 0xff, 1, 0x33]));
    }

    #[test]
    fn ethernet_too_short() {
        assert_eq!(EthernetFrame::new_checked(&TAGGED_ARP[..13]), Err(Error));
        assert!(
            EthernetFrame::new_checked(&TAGGED_ARP[..14])
                .unwrap()
                .payload()
                .is_empty()
        );
    }

    #[test]
    fn tag_too_short() {
        assert_eq!(VlanTag::new_checked(&TAGGED_ARP[14..17]), Err(Error));
        assert!(VlanTag::new_checked(&TAGGED_ARP[14..18]).is_ok());
    }

    #[test]
    fn arp_too_short() {
        assert_eq!(ArpPacket::new_checked(&TAGGED_ARP[18..45]), Err(Error));
        assert!(ArpPacket::new_checked(&TAGGED_ARP[18..46]).is_ok());
    }
}
