//! The underlay as the host knows it: the next hop toward another chassis's Encap.ip
//! (the routing table) and that hop's MAC (the neighbour table), read from procfs so the
//! host's own configuration decides, as OVS's tunnel neighbour cache does from the
//! kernel's. Parsers are pure; [`next_hop_mac`] reads the files.

use std::net::Ipv4Addr;

use ovnest_datapath::{
    geneve::Underlay,
    pipeline::{TunnelPeer, TunnelTable},
};

use ovnest_common::PortKey;

use super::encaps::RemoteChassis;

/// The gateway for `dst` on interface `dev` from `/proc/net/route` text (longest prefix
/// first); `Some(dst)` itself when on-link; `None` when no route uses `dev`.
pub fn next_hop(route: &str, dev: &str, dst: Ipv4Addr) -> Option<Ipv4Addr> {
    let dst = u32::from(dst);
    let mut best: Option<(u32, Ipv4Addr)> = None;
    for line in route.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 8 || f[0] != dev {
            continue;
        }
        // The kernel prints each address as the u32 it holds in memory (network-order
        // bytes) in host order: on a little-endian host its bytes come out reversed.
        let parse = |h: &str| {
            u32::from_str_radix(h, 16)
                .ok()
                .map(|v| u32::from_be_bytes(v.to_ne_bytes()))
        };
        let (Some(net), Some(gw), Some(mask)) = (parse(f[1]), parse(f[2]), parse(f[7])) else {
            continue;
        };
        if dst & mask != net & mask {
            continue;
        }
        if best.is_none_or(|(m, _)| mask.count_ones() > m) {
            let hop = if gw == 0 {
                Ipv4Addr::from(dst)
            } else {
                Ipv4Addr::from(gw)
            };
            best = Some((mask.count_ones(), hop));
        }
    }
    best.map(|(_, hop)| hop)
}

/// `ip`'s MAC on `dev` from `/proc/net/arp` text, when the entry is complete.
pub fn neighbour(arp: &str, dev: &str, ip: Ipv4Addr) -> Option<[u8; 6]> {
    for line in arp.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        // IP address, HW type, Flags, HW address, Mask, Device.
        if f.len() < 6 || f[5] != dev || f[0].parse::<Ipv4Addr>().ok() != Some(ip) {
            continue;
        }
        // ATF_COM (0x2): the entry is resolved.
        let flags = u32::from_str_radix(f[2].trim_start_matches("0x"), 16).ok()?;
        if flags & 0x2 == 0 {
            return None;
        }
        return parse_mac(f[3]);
    }
    None
}

pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = s.trim().split(':');
    for byte in &mut mac {
        *byte = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// The MAC of the next hop toward `dst` through `dev`, from this host's tables; `None`
/// while unresolved (the kernel resolves it on the first packet it sends there).
pub fn next_hop_mac(dev: &str, dst: Ipv4Addr) -> Option<[u8; 6]> {
    let route = std::fs::read_to_string("/proc/net/route").ok()?;
    let hop = next_hop(&route, dev, dst)?;
    let arp = std::fs::read_to_string("/proc/net/arp").ok()?;
    neighbour(&arp, dev, hop)
}

/// The MAC of interface `name` in this thread's network namespace (from getifaddrs'
/// link-layer entries: sysfs may be another namespace's when entered with nsenter).
pub fn interface_mac(name: &str) -> Option<[u8; 6]> {
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs writes a list it allocated into `list`, freed below.
    if unsafe { libc::getifaddrs(&mut list) } != 0 {
        return None;
    }
    let mut found = None;
    let mut cursor = list;
    while !cursor.is_null() {
        // SAFETY: `cursor` is a node of the list getifaddrs returned, not yet freed.
        let entry = unsafe { &*cursor };
        cursor = entry.ifa_next;
        if entry.ifa_addr.is_null() || entry.ifa_name.is_null() {
            continue;
        }
        // SAFETY: ifa_name is a NUL-terminated string owned by the list.
        let this = unsafe { std::ffi::CStr::from_ptr(entry.ifa_name) };
        // SAFETY: ifa_addr points to a sockaddr whose family says its real type.
        let family = i32::from(unsafe { (*entry.ifa_addr).sa_family });
        if family != libc::AF_PACKET || this.to_bytes() != name.as_bytes() {
            continue;
        }
        // SAFETY: an AF_PACKET address is a sockaddr_ll.
        let ll = unsafe { &*(entry.ifa_addr as *const libc::sockaddr_ll) };
        if ll.sll_halen == 6 {
            let mut mac = [0u8; 6];
            mac.copy_from_slice(&ll.sll_addr[..6]);
            found = Some(mac);
            break;
        }
    }
    // SAFETY: `list` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(list) };
    found
}

/// Makes the kernel resolve the next hop toward `peer`: one empty datagram from the
/// encap address to the discard port (RFC 863), which resolution needs and the peer
/// ignores.
pub fn solicit(local: Ipv4Addr, peer: Ipv4Addr) {
    if let Ok(socket) = std::net::UdpSocket::bind((local, 0)) {
        let _ = socket.send_to(&[], (peer, 9));
    }
}

/// The datapath's tunnel table: the peers whose next hop is resolved (the others are
/// returned by name, to retry) and the ports bound on them, renumbered to match.
pub fn tunnel_table(
    underlay: (u32, &str),
    local: ([u8; 6], Ipv4Addr),
    peers: &[RemoteChassis],
    remote_ports: &[(PortKey, u16)],
    resolve: &dyn Fn(Ipv4Addr) -> Option<[u8; 6]>,
) -> (TunnelTable, Vec<String>) {
    let (ifindex, _) = underlay;
    let mut table = TunnelTable {
        underlay_ifindex: ifindex,
        ..TunnelTable::default()
    };
    let mut unresolved = Vec::new();
    // Old number (1-based, as in `remote_ports`) → new one, 0 when left out.
    let mut renumber = vec![0u16; peers.len() + 1];
    for (i, peer) in peers.iter().enumerate() {
        let Some(next_hop_mac) = resolve(peer.ip) else {
            unresolved.push(peer.name.clone());
            continue;
        };
        table.peers.push(TunnelPeer {
            chassis: peer.name.clone(),
            underlay: Underlay {
                local_mac: local.0,
                next_hop_mac,
                local_ip: local.1.octets(),
                remote_ip: peer.ip.octets(),
                csum: peer.csum,
            },
        });
        renumber[i + 1] = table.peers.len() as u16;
    }
    table.remote_ports = remote_ports
        .iter()
        .filter_map(|(key, n)| {
            let new = *renumber.get(usize::from(*n))?;
            (new != 0).then_some((*key, new))
        })
        .collect();
    (table, unresolved)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROUTE: &str =
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
und\t0000630A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
und\t00000000\t0100630A\t0003\t0\t0\t0\t00000000\t0\t0\t0
eth0\t0000A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
";
    const ARP: &str =
        "IP address       HW type     Flags       HW address            Mask     Device
10.99.0.2        0x1         0x2         86:fa:26:32:5c:42     *        und
10.99.0.1        0x1         0x2         2a:ee:99:2d:b6:49     *        und
10.99.0.9        0x1         0x0         00:00:00:00:00:00     *        und
";

    #[test]
    fn on_link_peers_are_their_own_next_hop_others_go_by_the_gateway() {
        let ip = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        assert_eq!(
            next_hop(ROUTE, "und", ip("10.99.0.2")),
            Some(ip("10.99.0.2"))
        );
        assert_eq!(
            next_hop(ROUTE, "und", ip("192.0.2.5")),
            Some(ip("10.99.0.1"))
        );
        assert_eq!(next_hop(ROUTE, "eth9", ip("10.99.0.2")), None);
        assert_eq!(
            neighbour(ARP, "und", ip("10.99.0.2")),
            Some([0x86, 0xfa, 0x26, 0x32, 0x5c, 0x42])
        );
        // Incomplete, or on another device: not usable.
        assert_eq!(neighbour(ARP, "und", ip("10.99.0.9")), None);
        assert_eq!(neighbour(ARP, "eth0", ip("10.99.0.2")), None);
        assert_eq!(parse_mac("86:fa:26:32:5c"), None);
        // Loopback has an all-zero link-layer address; no such interface has none.
        assert_eq!(interface_mac("lo"), Some([0; 6]));
        assert_eq!(interface_mac("no-such-if0"), None);
    }

    #[test]
    fn unresolved_peers_and_their_ports_are_left_out_and_the_rest_renumbered() {
        let peer = |name: &str, last: u8| RemoteChassis {
            name: name.into(),
            ip: Ipv4Addr::new(10, 99, 0, last),
            csum: true,
        };
        let key = |port| PortKey { datapath: 1, port };
        let (table, unresolved) = tunnel_table(
            (40, "und"),
            ([2, 0, 0, 0, 0, 1], Ipv4Addr::new(10, 99, 0, 1)),
            &[peer("hv2", 2), peer("hv3", 3)],
            &[(key(5), 1), (key(6), 2)],
            &|ip| (ip.octets()[3] == 3).then_some([2, 0, 0, 0, 0, 3]),
        );
        assert_eq!(unresolved, ["hv2"]);
        assert_eq!(table.peers.len(), 1);
        assert_eq!(table.peers[0].chassis, "hv3");
        assert_eq!(table.peers[0].underlay.remote_ip, [10, 99, 0, 3]);
        assert_eq!(table.remote_ports, [(key(6), 1)]);
        assert_eq!(table.underlay_ifindex, 40);
    }
}
