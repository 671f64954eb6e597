//! Integer values and the syntaxes they are written and printed in: decimal,
//! hexadecimal, IPv4, IPv6 (glibc `inet_ntop` style, as OVN prints it) and Ethernet.

use std::fmt;

/// How a constant was written, and so how it prints back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    Decimal,
    Hexadecimal,
    Ipv4,
    Ipv6,
    Ethernet,
}

impl Format {
    /// The width of the values this format can show.
    pub fn width(self) -> u32 {
        match self {
            Format::Decimal => 64,
            Format::Hexadecimal | Format::Ipv6 => 128,
            Format::Ipv4 => 32,
            Format::Ethernet => 48,
        }
    }
}

/// Writes `v` in `format`.
pub fn write(f: &mut impl fmt::Write, v: u128, format: Format) -> fmt::Result {
    match format {
        Format::Decimal => write!(f, "{}", v as u64),
        Format::Hexadecimal => write_hex(f, v),
        Format::Ipv4 => write!(f, "{}", std::net::Ipv4Addr::from(v as u32)),
        Format::Ipv6 => write_ipv6(f, v),
        Format::Ethernet => write_mac(f, v as u64),
    }
}

/// OVS's `ds_put_hex`: `0x` and the digits without leading zeros, or `0`.
pub fn write_hex(f: &mut impl fmt::Write, v: u128) -> fmt::Result {
    if v == 0 {
        f.write_str("0")
    } else {
        write!(f, "{v:#x}")
    }
}

pub fn write_mac(f: &mut impl fmt::Write, v: u64) -> fmt::Result {
    let b = v.to_be_bytes();
    write!(
        f,
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        b[2], b[3], b[4], b[5], b[6], b[7]
    )
}

pub fn mac_string(v: u64) -> String {
    let mut s = String::with_capacity(17);
    let _ = write_mac(&mut s, v);
    s
}

pub fn ipv6_string(v: u128) -> String {
    let mut s = String::new();
    let _ = write_ipv6(&mut s, v);
    s
}

/// IPv6 text as glibc's `inet_ntop` writes it: the longest run of two or more zero
/// groups becomes `::`, IPv4-compatible and IPv4-mapped addresses end in dotted quad.
pub fn write_ipv6(f: &mut impl fmt::Write, v: u128) -> fmt::Result {
    let words: [u16; 8] = std::array::from_fn(|i| (v >> (112 - 16 * i)) as u16);
    let (mut best_base, mut best_len) = (None::<usize>, 0usize);
    let (mut cur_base, mut cur_len) = (None::<usize>, 0usize);
    for (i, &w) in words.iter().enumerate() {
        if w == 0 {
            if cur_base.is_none() {
                cur_base = Some(i);
                cur_len = 1;
            } else {
                cur_len += 1;
            }
        } else if let Some(b) = cur_base {
            if best_base.is_none() || cur_len > best_len {
                best_base = Some(b);
                best_len = cur_len;
            }
            cur_base = None;
        }
    }
    if let Some(b) = cur_base
        && (best_base.is_none() || cur_len > best_len)
    {
        best_base = Some(b);
        best_len = cur_len;
    }
    if best_len < 2 {
        best_base = None;
    }
    let mut i = 0;
    while i < 8 {
        if let Some(b) = best_base
            && i >= b
            && i < b + best_len
        {
            if i == b {
                f.write_str(":")?;
            }
            i += 1;
            continue;
        }
        if i != 0 {
            f.write_str(":")?;
        }
        if i == 6
            && best_base == Some(0)
            && (best_len == 6 || (best_len == 5 && words[5] == 0xffff))
        {
            write!(f, "{}", std::net::Ipv4Addr::from(v as u32))?;
            break;
        }
        write!(f, "{:x}", words[i])?;
        i += 1;
    }
    if let Some(b) = best_base
        && b + best_len == 8
    {
        f.write_str(":")?;
    }
    Ok(())
}

/// `xx:xx:xx:xx:xx:xx` (hex digits either case).
pub fn parse_mac(s: &str) -> Option<u64> {
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() != 6 {
        return None;
    }
    let mut v = 0u64;
    for p in parts {
        if p.is_empty() || p.len() > 2 {
            return None;
        }
        v = (v << 8) | u64::from(u8::from_str_radix(p, 16).ok()?);
    }
    Some(v)
}

/// A dotted-quad IPv4 address, strictly as `inet_pton` reads it.
pub fn parse_ipv4(s: &str) -> Option<u32> {
    s.parse::<std::net::Ipv4Addr>().ok().map(u32::from)
}

/// The mask with the top `bits` of `width` set.
pub fn prefix_mask(bits: u32, width: u32) -> u128 {
    let all = ones(width);
    if bits == 0 {
        0
    } else {
        all & !(ones(width - bits.min(width)))
    }
}

/// `width` low-order one bits.
pub fn ones(width: u32) -> u128 {
    if width >= 128 {
        u128::MAX
    } else {
        (1u128 << width) - 1
    }
}

/// Whether `mask` (of `width` bits) is a prefix mask.
pub fn is_cidr(mask: u128, width: u32) -> bool {
    let inv = !mask & ones(width);
    inv & inv.wrapping_add(1) == 0
}

pub fn cidr_bits(mask: u128, width: u32) -> u32 {
    (mask & ones(width)).count_ones()
}

/// `Display` for a value in a format.
pub struct Shown(pub u128, pub Format);

impl fmt::Display for Shown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write(f, self.0, self.1)
    }
}

/// A string from a `fmt::Write` closure.
pub fn to_string(g: impl FnOnce(&mut String) -> fmt::Result) -> String {
    let mut s = String::new();
    let _ = g(&mut s);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v6(s: &str) -> String {
        ipv6_string(u128::from(s.parse::<std::net::Ipv6Addr>().unwrap()))
    }

    #[test]
    fn ipv6_like_glibc() {
        assert_eq!(v6("::"), "::");
        assert_eq!(v6("::1"), "::1");
        assert_eq!(v6("fe80::1"), "fe80::1");
        assert_eq!(v6("1:0:0:1:0:0:0:1"), "1:0:0:1::1");
        assert_eq!(v6("1:0:1:0:1:0:1:0"), "1:0:1:0:1:0:1:0");
        assert_eq!(v6("::1.2.3.4"), "::1.2.3.4");
        assert_eq!(v6("::ffff:1.2.3.4"), "::ffff:1.2.3.4");
        assert_eq!(v6("ff02::1:ff00:0"), "ff02::1:ff00:0");
        assert_eq!(v6("1::"), "1::");
    }

    #[test]
    fn masks() {
        assert_eq!(prefix_mask(8, 32), 0xff00_0000);
        assert_eq!(prefix_mask(0, 32), 0);
        assert_eq!(prefix_mask(32, 32), 0xffff_ffff);
        assert!(is_cidr(0xffff_ff00, 32));
        assert!(!is_cidr(0xff00_ff00, 32));
        assert_eq!(cidr_bits(0xffff_ffc0, 32), 26);
    }
}
