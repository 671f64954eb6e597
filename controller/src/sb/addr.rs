//! Port addresses as OVN writes them in Port_Binding `mac` and `port_security`
//! (ovn-sb(5)): `"MAC [IP[/PLEN]]..."`, or the words `router`, `unknown`, `dynamic`.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// An Ethernet address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MacAddr(pub [u8; 6]);

impl FromStr for MacAddr {
    type Err = ();

    /// Accepts `xx:xx:xx:xx:xx:xx` (hex, either case), as OVN does.
    fn from_str(s: &str) -> Result<MacAddr, ()> {
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for byte in &mut out {
            let p = parts.next().ok_or(())?;
            if p.is_empty() || p.len() > 2 {
                return Err(());
            }
            *byte = u8::from_str_radix(p, 16).map_err(|_| ())?;
        }
        if parts.next().is_some() {
            return Err(());
        }
        Ok(MacAddr(out))
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// An address with its prefix length (the full length when none was written).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IpNet {
    pub addr: IpAddr,
    pub prefix_len: u8,
}

impl FromStr for IpNet {
    type Err = ();

    fn from_str(s: &str) -> Result<IpNet, ()> {
        let (a, len) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l.parse::<u8>().map_err(|_| ())?)),
            None => (s, None),
        };
        let addr: IpAddr = a.parse().map_err(|_| ())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix_len = len.unwrap_or(max);
        if prefix_len > max {
            return Err(());
        }
        Ok(IpNet { addr, prefix_len })
    }
}

/// One entry of `mac` or `port_security`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PortAddresses {
    /// A patch port to a router takes the router port's addresses.
    Router,
    /// Forward frames for unknown destinations to this port.
    Unknown,
    /// Addresses to be allocated by northd (not yet resolved).
    Dynamic,
    Static {
        mac: MacAddr,
        ips: Vec<IpNet>,
    },
}

/// Why an address entry was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AddrError {
    Mac,
    Ip(String),
}

impl FromStr for PortAddresses {
    type Err = String;

    fn from_str(s: &str) -> Result<PortAddresses, String> {
        PortAddresses::parse(s).map_err(|e| format!("{s:?}: {e:?}"))
    }
}

impl PortAddresses {
    pub(crate) fn parse(entry: &str) -> Result<PortAddresses, AddrError> {
        let mut words = entry.split_ascii_whitespace();
        let first = words.next().ok_or(AddrError::Mac)?;
        match first {
            "router" => return Ok(PortAddresses::Router),
            "unknown" => return Ok(PortAddresses::Unknown),
            "dynamic" => return Ok(PortAddresses::Dynamic),
            _ => {}
        }
        let mac = first.parse().map_err(|_| AddrError::Mac)?;
        let ips = words
            .map(|w| w.parse::<IpNet>().map_err(|_| AddrError::Ip(w.to_owned())))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(PortAddresses::Static { mac, ips })
    }

    pub fn mac(&self) -> Option<MacAddr> {
        match self {
            PortAddresses::Static { mac, .. } => Some(*mac),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_northd_writes() {
        let a = PortAddresses::parse("02:ac:10:ff:01:33 172.16.255.133").unwrap();
        assert_eq!(a.mac().unwrap().to_string(), "02:ac:10:ff:01:33");
        let PortAddresses::Static { ips, .. } =
            PortAddresses::parse("02:AC:10:ff:01:29 172.16.255.129/26 fe80::1").unwrap()
        else {
            panic!()
        };
        assert_eq!(ips[0].prefix_len, 26);
        assert_eq!(ips[1].prefix_len, 128);
        assert_eq!(
            PortAddresses::parse("router").unwrap(),
            PortAddresses::Router
        );
        assert_eq!(
            PortAddresses::parse("unknown").unwrap(),
            PortAddresses::Unknown
        );
        assert_eq!(
            PortAddresses::parse("02:ac:10:ff:01:32").unwrap().mac(),
            Some(MacAddr([2, 0xac, 0x10, 0xff, 1, 0x32]))
        );
    }

    #[test]
    fn refuses_bad_addresses() {
        for bad in [
            "",
            "zz:ac:10:ff:01:33",
            "02:ac:10:ff:01",
            "02:ac:10:ff:01:33:44",
            "02:ac:10:ff:01:333",
            "02:ac:10:ff::33",
        ] {
            assert_eq!(PortAddresses::parse(bad), Err(AddrError::Mac), "{bad:?}");
        }
        assert!(matches!(
            PortAddresses::parse("02:ac:10:ff:01:33 10.0.0.300"),
            Err(AddrError::Ip(_))
        ));
        assert!(matches!(
            PortAddresses::parse("02:ac:10:ff:01:33 10.0.0.1/33"),
            Err(AddrError::Ip(_))
        ));
    }
}
