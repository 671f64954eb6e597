//! IPv4 header view (RFC 791), smoltcp style: after [`Ipv4Packet::new_checked`] no
//! accessor panics, whatever the bytes are.

use super::{Error, Result};

mod field {
    pub const VER_IHL: usize = 0;
    pub const TOS: usize = 1;
    pub const LENGTH: core::ops::Range<usize> = 2..4;
    pub const IDENT: core::ops::Range<usize> = 4..6;
    pub const FLAGS_FRAG: core::ops::Range<usize> = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: core::ops::Range<usize> = 10..12;
    pub const SRC: core::ops::Range<usize> = 12..16;
    pub const DST: core::ops::Range<usize> = 16..20;
}

/// IP protocol numbers the datapath tells apart.
pub mod protocol {
    pub const ICMP: u8 = 1;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const ICMPV6: u8 = 58;
    pub const SCTP: u8 = 132;
}

/// The "don't fragment" flag in the flags/fragment-offset word.
pub const DONT_FRAGMENT: u16 = 0x4000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Length of a header without options.
    pub const HEADER_LEN: usize = 20;

    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Checks the buffer holds a version-4 header of its stated length, and the total
    /// length is neither below it nor beyond the buffer.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < Self::HEADER_LEN || b[field::VER_IHL] >> 4 != 4 {
            return Err(Error);
        }
        let ihl = self.header_len();
        let total = usize::from(self.total_len());
        if ihl < Self::HEADER_LEN || b.len() < ihl || total < ihl || b.len() < total {
            return Err(Error);
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::VER_IHL] & 0xf) * 4
    }

    pub fn tos(&self) -> u8 {
        self.buffer.as_ref()[field::TOS]
    }

    pub fn total_len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::LENGTH.start)
    }

    pub fn ident(&self) -> u16 {
        be16(self.buffer.as_ref(), field::IDENT.start)
    }

    pub fn flags_frag(&self) -> u16 {
        be16(self.buffer.as_ref(), field::FLAGS_FRAG.start)
    }

    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    pub fn protocol(&self) -> u8 {
        self.buffer.as_ref()[field::PROTOCOL]
    }

    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM.start)
    }

    pub fn src(&self) -> [u8; 4] {
        let mut a = [0; 4];
        a.copy_from_slice(&self.buffer.as_ref()[field::SRC]);
        a
    }

    pub fn dst(&self) -> [u8; 4] {
        let mut a = [0; 4];
        a.copy_from_slice(&self.buffer.as_ref()[field::DST]);
        a
    }

    /// The header (with options).
    pub fn header(&self) -> &[u8] {
        &self.buffer.as_ref()[..self.header_len()]
    }

    /// The payload up to the total length (Ethernet padding excluded).
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..usize::from(self.total_len())]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    /// Writes a 20-byte header's version and length nibbles.
    pub fn set_ver_ihl(&mut self) {
        self.buffer.as_mut()[field::VER_IHL] = 0x45;
    }

    pub fn set_tos(&mut self, v: u8) {
        self.buffer.as_mut()[field::TOS] = v;
    }

    pub fn set_total_len(&mut self, v: u16) {
        self.buffer.as_mut()[field::LENGTH].copy_from_slice(&v.to_be_bytes());
    }

    pub fn set_ident(&mut self, v: u16) {
        self.buffer.as_mut()[field::IDENT].copy_from_slice(&v.to_be_bytes());
    }

    pub fn set_flags_frag(&mut self, v: u16) {
        self.buffer.as_mut()[field::FLAGS_FRAG].copy_from_slice(&v.to_be_bytes());
    }

    pub fn set_ttl(&mut self, v: u8) {
        self.buffer.as_mut()[field::TTL] = v;
    }

    pub fn set_protocol(&mut self, v: u8) {
        self.buffer.as_mut()[field::PROTOCOL] = v;
    }

    pub fn set_src(&mut self, a: [u8; 4]) {
        self.buffer.as_mut()[field::SRC].copy_from_slice(&a);
    }

    pub fn set_dst(&mut self, a: [u8; 4]) {
        self.buffer.as_mut()[field::DST].copy_from_slice(&a);
    }

    /// Recomputes the header checksum over the first `len` bytes of the header (OVS
    /// and pinctrl checksum 20 bytes even when there are options; callers say which).
    pub fn fill_checksum_over(&mut self, len: usize) {
        let b = self.buffer.as_mut();
        b[field::CHECKSUM].copy_from_slice(&[0, 0]);
        let end = len.min(b.len());
        let c = crate::flow::csum::of(&b[..end]);
        b[field::CHECKSUM].copy_from_slice(&c.to_be_bytes());
    }
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// The TCP/UDP pseudo-header sum (RFC 793 §3.1) for `len` bytes of `proto` payload.
pub fn pseudo_header_sum(src: [u8; 4], dst: [u8; 4], proto: u8, len: u16) -> u32 {
    let mut s = crate::flow::csum::add(0, &src);
    s = crate::flow::csum::add(s, &dst);
    s + u32::from(proto) + u32::from(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The DHCPOFFER real ovn-controller sent dmz-c51 (shared/reference): its IP header.
    const OFFER_IP: [u8; 20] = [
        0x45, 0x00, 0x01, 0x30, 0xd7, 0x9d, 0x00, 0x00, 0x40, 0x11, 0xf6, 0x8d, 0xac, 0x10, 0xff,
        0x81, 0xff, 0xff, 0xff, 0xff,
    ];

    #[test]
    fn deconstruct() {
        let mut b = OFFER_IP.to_vec();
        b.resize(0x130, 0);
        let p = Ipv4Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.header_len(), 20);
        assert_eq!(p.total_len(), 0x130);
        assert_eq!(p.ttl(), 64);
        assert_eq!(p.protocol(), protocol::UDP);
        assert_eq!(p.src(), [172, 16, 255, 129]);
        assert_eq!(p.dst(), [255; 4]);
        assert_eq!(p.payload().len(), 0x130 - 20);
        assert_eq!(crate::flow::csum::of(p.header()), 0);
    }

    #[test]
    fn construct_checksum() {
        let mut b = OFFER_IP;
        b[10] = 0;
        b[11] = 0;
        let mut p = Ipv4Packet::new_unchecked(&mut b[..]);
        p.fill_checksum_over(20);
        assert_eq!(b, OFFER_IP);
    }

    #[test]
    fn negative_lengths() {
        // Too short for a header.
        assert!(Ipv4Packet::new_checked(&OFFER_IP[..19]).is_err());
        // Total length beyond the buffer.
        assert!(Ipv4Packet::new_checked(&OFFER_IP[..]).is_err());
        // IHL below 5.
        let mut b = OFFER_IP;
        b[0] = 0x44;
        b[2] = 0;
        b[3] = 20;
        assert!(Ipv4Packet::new_checked(&b[..]).is_err());
        // Not version 4.
        b[0] = 0x65;
        assert!(Ipv4Packet::new_checked(&b[..]).is_err());
        // Total length below the header length.
        let mut b = OFFER_IP;
        b[2] = 0;
        b[3] = 10;
        assert!(Ipv4Packet::new_checked(&b[..]).is_err());
    }
}
