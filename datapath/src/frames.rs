//! A small frame builder for fixtures, tests and `ovnest bench`: Ethernet, any stack of
//! tags, ARP, IPv4/UDP. Not used on the packet path.

pub type Mac = [u8; 6];

pub const BROADCAST: Mac = [0xff; 6];
pub const ETH_P_8021Q: u16 = 0x8100;
pub const ETH_P_8021AD: u16 = 0x88a8;

/// A frame under construction. `build()` gives the bytes.
#[derive(Clone, Debug)]
pub struct Frame {
    dst: Mac,
    src: Mac,
    /// (TPID, TCI) pairs, outermost first.
    tags: Vec<(u16, u16)>,
    ethertype: u16,
    payload: Vec<u8>,
}

impl Frame {
    pub fn eth(dst: Mac, src: Mac) -> Frame {
        Frame {
            dst,
            src,
            tags: Vec::new(),
            ethertype: 0x0800,
            payload: Vec::new(),
        }
    }

    /// Adds an 802.1Q tag with `vid` (PCP 0).
    pub fn vlan(self, vid: u16) -> Frame {
        self.tag(ETH_P_8021Q, vid)
    }

    /// Adds any tag: TPID and the whole TCI.
    pub fn tag(mut self, tpid: u16, tci: u16) -> Frame {
        self.tags.push((tpid, tci));
        self
    }

    /// The same frame without any tag.
    pub fn untagged(&self) -> Frame {
        Frame {
            tags: Vec::new(),
            ..self.clone()
        }
    }

    /// The same frame with exactly one 802.1Q tag `vid`.
    pub fn retagged(&self, vid: u16) -> Frame {
        self.untagged().vlan(vid)
    }

    pub fn ethertype(mut self, ethertype: u16, payload: &[u8]) -> Frame {
        self.ethertype = ethertype;
        self.payload = payload.to_vec();
        self
    }

    pub fn arp_request(self, sha: Mac, spa: [u8; 4], tpa: [u8; 4]) -> Frame {
        self.ethertype(0x0806, &arp(1, sha, spa, [0; 6], tpa))
    }

    pub fn arp_reply(self, sha: Mac, spa: [u8; 4], tha: Mac, tpa: [u8; 4]) -> Frame {
        self.ethertype(0x0806, &arp(2, sha, spa, tha, tpa))
    }

    /// IPv4/UDP with `len` payload bytes of a fixed pattern, valid IPv4 checksum.
    pub fn udp(self, src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, len: usize) -> Frame {
        let mut l4 = Vec::with_capacity(8 + len);
        l4.extend_from_slice(&sport.to_be_bytes());
        l4.extend_from_slice(&dport.to_be_bytes());
        l4.extend_from_slice(&((8 + len) as u16).to_be_bytes());
        l4.extend_from_slice(&[0, 0]); // UDP checksum optional over IPv4
        l4.extend((0..len).map(|i| i as u8));
        self.ethertype(0x0800, &ipv4(17, src, dst, &l4))
    }

    pub fn build(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(14 + 4 * self.tags.len() + self.payload.len());
        out.extend_from_slice(&self.dst);
        out.extend_from_slice(&self.src);
        for (tpid, tci) in &self.tags {
            out.extend_from_slice(&tpid.to_be_bytes());
            out.extend_from_slice(&tci.to_be_bytes());
        }
        out.extend_from_slice(&self.ethertype.to_be_bytes());
        out.extend_from_slice(&self.payload);
        out
    }
}

fn arp(op: u16, sha: Mac, spa: [u8; 4], tha: Mac, tpa: [u8; 4]) -> Vec<u8> {
    let mut p = vec![0, 1, 8, 0, 6, 4];
    p.extend_from_slice(&op.to_be_bytes());
    p.extend_from_slice(&sha);
    p.extend_from_slice(&spa);
    p.extend_from_slice(&tha);
    p.extend_from_slice(&tpa);
    p
}

/// An IPv4 header (no options, TTL 64) in front of `l4`.
pub fn ipv4(proto: u8, src: [u8; 4], dst: [u8; 4], l4: &[u8]) -> Vec<u8> {
    let total = (20 + l4.len()) as u16;
    let mut h = vec![0x45, 0];
    h.extend_from_slice(&total.to_be_bytes());
    h.extend_from_slice(&[0x12, 0x34, 0x40, 0x00, 64, proto, 0, 0]);
    h.extend_from_slice(&src);
    h.extend_from_slice(&dst);
    let sum = checksum(&h);
    h[10..12].copy_from_slice(&sum.to_be_bytes());
    h.extend_from_slice(l4);
    h
}

/// The Internet checksum (RFC 1071).
pub fn checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Lowercase hex, for failure messages.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
