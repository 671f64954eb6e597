//! The OVSDB `uuid` atom (RFC 7047 §5.1: `["uuid", "<36-char string>"]`).

use std::fmt;
use std::str::FromStr;

/// A row identifier. Kept as 16 raw bytes so maps keyed by it stay small and cheap to hash.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Uuid([u8; 16]);

/// A string that is not a canonical 8-4-4-4-12 hex UUID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a UUID: {0:?}")]
pub struct UuidError(pub String);

impl Uuid {
    /// The all-zero UUID: what `monitor_cond_since` takes as "I have nothing" (and what a
    /// standalone server sends as its last transaction id).
    pub const ZERO: Uuid = Uuid([0; 16]);

    pub const fn from_bytes(bytes: [u8; 16]) -> Uuid {
        Uuid(bytes)
    }

    pub const fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    pub fn is_zero(&self) -> bool {
        self.0 == [0; 16]
    }
}

impl FromStr for Uuid {
    type Err = UuidError;

    fn from_str(s: &str) -> Result<Uuid, UuidError> {
        let bad = || UuidError(s.chars().take(64).collect());
        let b = s.as_bytes();
        if b.len() != 36 {
            return Err(bad());
        }
        let mut out = [0u8; 16];
        let mut n = 0;
        let mut i = 0;
        while i < 36 {
            if matches!(i, 8 | 13 | 18 | 23) {
                if b[i] != b'-' {
                    return Err(bad());
                }
                i += 1;
                continue;
            }
            let hi = hex(b[i]).ok_or_else(bad)?;
            let lo = hex(b[i + 1]).ok_or_else(bad)?;
            out[n] = hi << 4 | lo;
            n += 1;
            i += 2;
        }
        Ok(Uuid(out))
    }
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

impl fmt::Display for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, byte) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let s = "31f08edb-c664-4990-9370-c6e10f844b2d";
        let u: Uuid = s.parse().unwrap();
        assert_eq!(u.to_string(), s);
        assert!(!u.is_zero());
        assert!(
            "00000000-0000-0000-0000-000000000000"
                .parse::<Uuid>()
                .unwrap()
                .is_zero()
        );
    }

    #[test]
    fn rejects_malformed() {
        for s in [
            "",
            "31f08edb",
            "31f08edb-c664-4990-9370-c6e10f844b2dx",
            "31f08edbxc664-4990-9370-c6e10f844b2d",
            "g1f08edb-c664-4990-9370-c6e10f844b2d",
            "31f08edb-c664-4990-9370-c6e10f844bé",
        ] {
            assert!(s.parse::<Uuid>().is_err(), "{s}");
        }
    }
}
