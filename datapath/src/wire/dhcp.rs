//! DHCPv4 message view (RFC 2131 §2, the BOOTP layout) and its options (RFC 2132).
//!
//! [`DhcpPacket::new_checked`] checks the 236-byte fixed header; after that no accessor
//! panics. [`Options`] walks the options after the magic cookie as ovn-controller's
//! pinctrl walks them: PAD is skipped, END or an option running past the buffer stops.

use super::{Error, Result};

/// BOOTP fixed header (op .. file), before the magic cookie.
pub const HEADER_LEN: usize = 236;
/// RFC 2131 §3: the first four option bytes.
pub const MAGIC_COOKIE: u32 = 0x6382_5363;
/// RFC 2131 §2: the broadcast bit of `flags`.
pub const FLAG_BROADCAST: u16 = 0x8000;

pub mod op {
    pub const REQUEST: u8 = 1;
    pub const REPLY: u8 = 2;
}

/// DHCP message types (option 53).
pub mod msg {
    pub const DISCOVER: u8 = 1;
    pub const OFFER: u8 = 2;
    pub const REQUEST: u8 = 3;
    pub const DECLINE: u8 = 4;
    pub const ACK: u8 = 5;
    pub const NAK: u8 = 6;
    pub const RELEASE: u8 = 7;
    pub const INFORM: u8 = 8;
}

/// Option codes with a meaning of their own here.
pub mod opt {
    pub const PAD: u8 = 0;
    pub const NETMASK: u8 = 1;
    pub const REQUESTED_IP: u8 = 50;
    pub const LEASE_TIME: u8 = 51;
    pub const MSG_TYPE: u8 = 53;
    pub const SERVER_ID: u8 = 54;
    pub const T1: u8 = 58;
    pub const T2: u8 = 59;
    pub const BOOTFILE: u8 = 67;
    pub const ETHERBOOT: u8 = 175;
    /// OVN's own codes (lib/ovn-l7.h): never sent as such.
    pub const NEXT_SERVER: u8 = 253;
    pub const BOOTFILE_ALT: u8 = 254;
    pub const END: u8 = 255;
}

mod field {
    pub const OP: usize = 0;
    pub const XID: core::ops::Range<usize> = 4..8;
    pub const FLAGS: core::ops::Range<usize> = 10..12;
    pub const CIADDR: core::ops::Range<usize> = 12..16;
    pub const YIADDR: core::ops::Range<usize> = 16..20;
    pub const SIADDR: core::ops::Range<usize> = 20..24;
    pub const GIADDR: core::ops::Range<usize> = 24..28;
    pub const CHADDR: core::ops::Range<usize> = 28..34;
}

/// A DHCP message (the UDP payload).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DhcpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> DhcpPacket<T> {
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Checks the buffer holds the fixed header (not the cookie: see
    /// [`DhcpPacket::has_magic`]).
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        if p.buffer.as_ref().len() < HEADER_LEN {
            return Err(Error);
        }
        Ok(p)
    }

    pub fn op(&self) -> u8 {
        self.buffer.as_ref()[field::OP]
    }

    pub fn xid(&self) -> u32 {
        be32(self.buffer.as_ref(), field::XID.start)
    }

    pub fn flags(&self) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[field::FLAGS.start], b[field::FLAGS.start + 1]])
    }

    pub fn ciaddr(&self) -> u32 {
        be32(self.buffer.as_ref(), field::CIADDR.start)
    }

    pub fn yiaddr(&self) -> u32 {
        be32(self.buffer.as_ref(), field::YIADDR.start)
    }

    pub fn siaddr(&self) -> u32 {
        be32(self.buffer.as_ref(), field::SIADDR.start)
    }

    pub fn giaddr(&self) -> u32 {
        be32(self.buffer.as_ref(), field::GIADDR.start)
    }

    pub fn chaddr(&self) -> [u8; 6] {
        let mut m = [0; 6];
        m.copy_from_slice(&self.buffer.as_ref()[field::CHADDR]);
        m
    }

    /// Whether the four bytes after the header are the magic cookie.
    pub fn has_magic(&self) -> bool {
        let b = self.buffer.as_ref();
        b.len() >= HEADER_LEN + 4 && be32(b, HEADER_LEN) == MAGIC_COOKIE
    }

    /// The options after the cookie (empty without one).
    pub fn options(&self) -> Options<'_> {
        let b = self.buffer.as_ref();
        let rest = if self.has_magic() {
            &b[HEADER_LEN + 4..]
        } else {
            &[]
        };
        Options { rest }
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> DhcpPacket<T> {
    pub fn set_op(&mut self, v: u8) {
        self.buffer.as_mut()[field::OP] = v;
    }

    pub fn set_yiaddr(&mut self, v: u32) {
        self.buffer.as_mut()[field::YIADDR].copy_from_slice(&v.to_be_bytes());
    }

    pub fn set_siaddr(&mut self, v: u32) {
        self.buffer.as_mut()[field::SIADDR].copy_from_slice(&v.to_be_bytes());
    }
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// One option: its code and value bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DhcpOption<'a> {
    pub code: u8,
    pub data: &'a [u8],
}

/// Options in order; stops at END, at the end of the buffer, or at an option whose
/// length runs past it.
#[derive(Clone, Debug)]
pub struct Options<'a> {
    rest: &'a [u8],
}

impl<'a> Options<'a> {
    /// Walks an options area without a DHCP header around it (OVN's encoded options).
    pub fn new(rest: &'a [u8]) -> Self {
        Options { rest }
    }
}

impl<'a> Iterator for Options<'a> {
    type Item = DhcpOption<'a>;

    fn next(&mut self) -> Option<DhcpOption<'a>> {
        loop {
            let (&code, tail) = self.rest.split_first()?;
            match code {
                opt::END => {
                    self.rest = &[];
                    return None;
                }
                opt::PAD => self.rest = tail,
                _ => {
                    let Some((&len, tail)) = tail.split_first() else {
                        self.rest = &[];
                        return None;
                    };
                    let len = usize::from(len);
                    if tail.len() < len {
                        self.rest = &[];
                        return None;
                    }
                    let (data, rest) = tail.split_at(len);
                    self.rest = rest;
                    return Some(DhcpOption { code, data });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn discover() -> Vec<u8> {
        let mut b = vec![0u8; HEADER_LEN];
        b[0] = op::REQUEST;
        b[1] = 1;
        b[2] = 6;
        b[4..8].copy_from_slice(&0xa4bc_72bcu32.to_be_bytes());
        b[10] = 0x80;
        b[28..34].copy_from_slice(&[2, 0xac, 0x10, 0xff, 1, 0x33]);
        b.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
        b.extend_from_slice(&[53, 1, 1, 0, 55, 4, 1, 3, 6, 51, 255, 99]);
        b
    }

    #[test]
    fn deconstruct() {
        let b = discover();
        let d = DhcpPacket::new_checked(&b[..]).unwrap();
        assert_eq!(d.op(), op::REQUEST);
        assert_eq!(d.xid(), 0xa4bc_72bc);
        assert_eq!(d.flags(), FLAG_BROADCAST);
        assert_eq!(d.chaddr(), [2, 0xac, 0x10, 0xff, 1, 0x33]);
        assert!(d.has_magic());
        let opts: Vec<_> = d.options().collect();
        assert_eq!(
            opts,
            vec![
                DhcpOption {
                    code: 53,
                    data: &[1]
                },
                DhcpOption {
                    code: 55,
                    data: &[1, 3, 6, 51]
                },
            ]
        );
    }

    #[test]
    fn options_stop_at_truncation() {
        assert_eq!(Options::new(&[53, 4, 1]).count(), 0);
        assert_eq!(Options::new(&[53]).count(), 0);
        assert_eq!(Options::new(&[0, 0, 1, 0, 255]).count(), 1);
    }

    #[test]
    fn negative_lengths() {
        let b = discover();
        assert!(DhcpPacket::new_checked(&b[..HEADER_LEN - 1]).is_err());
        let d = DhcpPacket::new_checked(&b[..HEADER_LEN + 3]).unwrap();
        assert!(!d.has_magic());
        assert_eq!(d.options().count(), 0);
    }
}
