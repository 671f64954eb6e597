use ovnest_logical::{
    conntrack::{Affinity, Conntrack, Error, Nat, Request, Zone},
    flow::{ETH_TYPE_ARP, ETH_TYPE_IP, Field, Flow, cs},
    pipeline::v4_mapped,
};

use super::Table;

const A: u32 = 0xac10_ff83; // 172.16.255.131
const B: u32 = 0xac10_ff82; // 172.16.255.130
const VIP: u32 = 0xac10_ff8a;
const Z: Zone = Zone::Port { dp: 1, port: 3 };
const SYN: u16 = 0x02;
const ACK: u16 = 0x10;
const FIN: u16 = 0x01;
const RST: u16 = 0x04;

fn tcp(src: u32, dst: u32, sport: u16, dport: u16, flags: u16) -> Flow {
    let mut f = Flow::default();
    f.set(Field::EthType, u128::from(ETH_TYPE_IP));
    f.set(Field::Ipv4Src, u128::from(src));
    f.set(Field::Ipv4Dst, u128::from(dst));
    f.set(Field::IpProto, 6);
    f.set(Field::TcpSrc, u128::from(sport));
    f.set(Field::TcpDst, u128::from(dport));
    f.set(Field::TcpFlags, u128::from(flags));
    f
}

fn icmp(src: u32, dst: u32, ty: u16) -> Flow {
    let mut f = Flow::default();
    f.set(Field::EthType, u128::from(ETH_TYPE_IP));
    f.set(Field::Ipv4Src, u128::from(src));
    f.set(Field::Ipv4Dst, u128::from(dst));
    f.set(Field::IpProto, 1);
    f.set(Field::TcpSrc, u128::from(ty));
    f
}

fn state(t: &mut Table, zone: Zone, f: &mut Flow, req: Request) -> u32 {
    t.execute(zone, f, &req).expect("ct");
    f.get(Field::CtState) as u32
}

const COMMIT: Request = Request {
    commit: true,
    nat: Nat::None,
    mark: None,
    label: None,
};
const LOOKUP: Request = Request {
    commit: false,
    nat: Nat::None,
    mark: None,
    label: None,
};
const RESTORE: Request = Request {
    commit: false,
    nat: Nat::Restore,
    mark: None,
    label: None,
};

#[test]
fn uncommitted_connection_stays_new_and_leaves_no_entry() {
    let mut t = Table::default();
    let mut f = tcp(A, B, 40000, 80, SYN);
    assert_eq!(state(&mut t, Z, &mut f, LOOKUP), cs::TRACKED | cs::NEW);
    assert!(t.is_empty());
    let mut r = tcp(B, A, 80, 40000, SYN | ACK);
    assert_eq!(
        state(&mut t, Z, &mut r, LOOKUP),
        cs::TRACKED | cs::INVALID,
        "a SYN-ACK opens nothing"
    );
}

#[test]
fn tcp_handshake_new_then_established_reply() {
    let mut t = Table::default();
    let mut syn = tcp(A, B, 40000, 80, SYN);
    assert_eq!(state(&mut t, Z, &mut syn, LOOKUP), cs::TRACKED | cs::NEW);
    state(&mut t, Z, &mut syn, COMMIT);
    assert_eq!(t.len(), 1);
    // A retransmitted SYN is still new: no reply yet.
    let mut again = tcp(A, B, 40000, 80, SYN);
    assert_eq!(state(&mut t, Z, &mut again, LOOKUP), cs::TRACKED | cs::NEW);
    let mut synack = tcp(B, A, 80, 40000, SYN | ACK);
    assert_eq!(
        state(&mut t, Z, &mut synack, LOOKUP),
        cs::TRACKED | cs::ESTABLISHED | cs::REPLY_DIR
    );
    let mut ack = tcp(A, B, 40000, 80, ACK);
    assert_eq!(
        state(&mut t, Z, &mut ack, LOOKUP),
        cs::TRACKED | cs::ESTABLISHED
    );
    assert_eq!(
        (ack.ct_nw_src, ack.ct_nw_dst, ack.ct_tp_dst),
        (A, B, 80),
        "original tuple"
    );
    // Another zone knows nothing of it.
    let other = Zone::Port { dp: 1, port: 4 };
    let mut ack2 = tcp(A, B, 40000, 80, ACK);
    assert_eq!(
        state(&mut t, other, &mut ack2, LOOKUP),
        cs::TRACKED | cs::NEW
    );
}

#[test]
fn invalid_packets() {
    let mut t = Table::default();
    for flags in [0, SYN | FIN, SYN | RST, FIN] {
        let mut f = tcp(A, B, 1, 2, flags);
        assert_eq!(
            state(&mut t, Z, &mut f, COMMIT),
            cs::TRACKED | cs::INVALID,
            "flags {flags:#x}"
        );
    }
    let mut rst = tcp(A, B, 1, 2, RST | ACK);
    assert_eq!(
        state(&mut t, Z, &mut rst, COMMIT),
        cs::TRACKED | cs::INVALID
    );
    // ICMP errors would be related traffic; without the embedded header, refused.
    let mut unreach = icmp(B, A, 3);
    assert_eq!(
        state(&mut t, Z, &mut unreach, COMMIT),
        cs::TRACKED | cs::INVALID
    );
    let mut echo_reply = icmp(B, A, 0);
    assert_eq!(
        state(&mut t, Z, &mut echo_reply, COMMIT),
        cs::TRACKED | cs::INVALID
    );
    let mut arp = Flow::default();
    arp.set(Field::EthType, u128::from(ETH_TYPE_ARP));
    assert_eq!(
        state(&mut t, Z, &mut arp, COMMIT),
        cs::TRACKED | cs::INVALID
    );
    assert!(t.is_empty());
    assert_eq!(t.stats.invalid, 8);
}

#[test]
fn icmp_echo_reply_is_the_reply_direction() {
    let mut t = Table::default();
    let mut req = icmp(A, B, 8);
    state(&mut t, Z, &mut req, COMMIT);
    let mut rep = icmp(B, A, 0);
    assert_eq!(
        state(&mut t, Z, &mut rep, LOOKUP),
        cs::TRACKED | cs::ESTABLISHED | cs::REPLY_DIR
    );
}

#[test]
fn mark_and_label_are_the_connections() {
    let mut t = Table::default();
    let mut f = tcp(A, B, 40000, 80, SYN);
    let req = Request {
        mark: Some((0, 1)),
        label: Some((7 << 96, 0xffff_ffff << 96)),
        ..COMMIT
    };
    state(&mut t, Z, &mut f, req);
    let mut r = tcp(B, A, 80, 40000, SYN | ACK);
    state(&mut t, Z, &mut r, LOOKUP);
    assert_eq!(r.get(Field::CtLabel), 7 << 96);
    assert_eq!(r.get(Field::CtMark), 0);
    // ct_commit { ct_mark.blocked = 1; } on the established connection.
    let mut a = tcp(A, B, 40000, 80, ACK);
    let block = Request {
        mark: Some((1, 1)),
        ..COMMIT
    };
    state(&mut t, Z, &mut a, block);
    let mut a2 = tcp(A, B, 40000, 80, ACK);
    state(&mut t, Z, &mut a2, LOOKUP);
    assert_eq!(a2.get(Field::CtMark), 1);
    assert_eq!(a2.get(Field::CtLabel), 7 << 96, "label kept");
}

#[test]
fn dnat_rewrites_both_directions() {
    let mut t = Table::default();
    let mut syn = tcp(A, VIP, 40000, 80, SYN);
    let lb = Request {
        commit: true,
        nat: Nat::Dst {
            addr: v4_mapped(B),
            port: 8080,
        },
        mark: Some((2, 2)),
        label: None,
    };
    assert_eq!(
        state(&mut t, Z, &mut syn, lb),
        cs::TRACKED | cs::NEW | cs::DST_NAT
    );
    assert_eq!(syn.get(Field::Ipv4Dst) as u32, B);
    assert_eq!(syn.tp_dst(), 8080);
    assert_eq!((syn.ct_nw_dst, syn.ct_tp_dst), (VIP, 80));
    // The backend's reply, un-NATted by `ct_lb_mark;` in the client's zone.
    let mut rep = tcp(B, A, 8080, 40000, SYN | ACK);
    assert_eq!(
        state(&mut t, Z, &mut rep, RESTORE),
        cs::TRACKED | cs::ESTABLISHED | cs::REPLY_DIR | cs::SRC_NAT
    );
    assert_eq!(rep.get(Field::Ipv4Src) as u32, VIP);
    assert_eq!(rep.tp_src(), 80);
    assert_eq!(rep.get(Field::CtMark), 2, "natted");
    // Later packets of the connection go to the same backend whatever the request.
    let mut ack = tcp(A, VIP, 40000, 80, ACK);
    let other = Request {
        nat: Nat::Dst {
            addr: v4_mapped(A),
            port: 1,
        },
        ..lb
    };
    state(&mut t, Z, &mut ack, other);
    assert_eq!((ack.get(Field::Ipv4Dst) as u32, ack.tp_dst()), (B, 8080));
    // Without `nat`, the packet is tracked, not rewritten.
    let mut plain = tcp(A, VIP, 40000, 80, ACK);
    assert_eq!(
        state(&mut t, Z, &mut plain, LOOKUP),
        cs::TRACKED | cs::ESTABLISHED
    );
    assert_eq!(plain.get(Field::Ipv4Dst) as u32, VIP);
}

#[test]
fn snat_picks_a_free_port_on_collision() {
    let mut t = Table::default();
    let zone = Zone::Snat(9);
    let gw = v4_mapped(0xac10_ff81);
    let snat = Request {
        commit: true,
        nat: Nat::Src {
            addr: gw,
            lo: 0,
            hi: 0,
        },
        mark: None,
        label: None,
    };
    let mut f1 = tcp(A, 0x0808_0808, 40000, 53, SYN);
    state(&mut t, zone, &mut f1, snat);
    assert_eq!(
        (f1.get(Field::Ipv4Src) as u32, f1.tp_src()),
        (0xac10_ff81, 40000)
    );
    // Another host, same source port, same destination: the port is taken.
    let mut f2 = tcp(B, 0x0808_0808, 40000, 53, SYN);
    state(&mut t, zone, &mut f2, snat);
    assert_eq!(f2.get(Field::Ipv4Src) as u32, 0xac10_ff81);
    assert_ne!(f2.tp_src(), 40000);
    let p2 = f2.tp_src();
    // The reply to the second is un-SNATted to B.
    let mut r2 = tcp(0x0808_0808, 0xac10_ff81, 53, p2, SYN | ACK);
    assert_eq!(
        state(&mut t, zone, &mut r2, RESTORE),
        cs::TRACKED | cs::ESTABLISHED | cs::REPLY_DIR | cs::DST_NAT
    );
    assert_eq!((r2.get(Field::Ipv4Dst) as u32, r2.tp_dst()), (B, 40000));
    // A one-port range that is taken: no port.
    let narrow = Request {
        nat: Nat::Src {
            addr: gw,
            lo: 40000,
            hi: 40000,
        },
        ..snat
    };
    let mut f3 = tcp(0xac10_ff84, 0x0808_0808, 40000, 53, SYN);
    assert_eq!(t.execute(zone, &mut f3, &narrow), Err(Error::NoPort));
}

#[test]
fn timeouts_expire_and_time_wait_reopens() {
    let mut t = Table::default();
    t.set_now(1_000);
    let mut syn = tcp(A, B, 40000, 80, SYN);
    state(&mut t, Z, &mut syn, COMMIT);
    // SYN_SENT lasts 30 s.
    t.set_now(31_001);
    let mut again = tcp(A, B, 40000, 80, SYN);
    assert_eq!(state(&mut t, Z, &mut again, LOOKUP), cs::TRACKED | cs::NEW);
    assert!(t.is_empty(), "expired on lookup");
    // A full open and close, then the same tuple again.
    for (src, dst, sp, dp, flags) in [
        (A, B, 40000, 80, SYN),
        (B, A, 80, 40000, SYN | ACK),
        (A, B, 40000, 80, ACK),
        (A, B, 40000, 80, FIN | ACK),
        (B, A, 80, 40000, FIN | ACK),
        (A, B, 40000, 80, ACK),
    ] {
        let mut f = tcp(src, dst, sp, dp, flags);
        state(&mut t, Z, &mut f, COMMIT);
    }
    assert_eq!(t.len(), 1);
    let mut reopen = tcp(A, B, 40000, 80, SYN);
    assert_eq!(state(&mut t, Z, &mut reopen, LOOKUP), cs::TRACKED | cs::NEW);
    assert!(t.is_empty(), "TIME_WAIT gave way to the new SYN");
    // The sweep removes what nobody looks up again.
    let mut u = tcp(A, B, 1, 2, SYN);
    state(&mut t, Z, &mut u, COMMIT);
    t.set_now(10_000_000);
    assert_eq!(t.expire(16), 1);
    assert!(t.is_empty());
}

#[test]
fn zone_flush_and_limit() {
    let mut t = Table::new(2);
    let other = Zone::Port { dp: 1, port: 4 };
    let mut f = tcp(A, B, 1, 2, SYN);
    state(&mut t, Z, &mut f, COMMIT);
    let mut g = tcp(A, B, 1, 2, SYN);
    state(&mut t, other, &mut g, COMMIT);
    let mut h = tcp(A, B, 3, 4, SYN);
    assert_eq!(t.execute(Z, &mut h, &COMMIT), Err(Error::Full));
    assert_eq!(t.stats.full, 1);
    t.retain_zones(|z| z != Z);
    assert_eq!((t.zone_len(Z), t.zone_len(other)), (0, 1));
    assert_eq!(t.stats.flushed, 1);
    let mut h = tcp(A, B, 3, 4, SYN);
    state(&mut t, Z, &mut h, COMMIT);
    assert_eq!(t.len(), 2);
}

#[test]
fn a_packet_keeps_its_connection_across_ct_actions_in_one_zone() {
    // ct_lb_mark(backends) then ct_commit { ct_mark.blocked = 0; } on the same packet,
    // as a switch with a load balancer and stateful ACLs does.
    let mut t = Table::default();
    let mut met = super::Met::default();
    let lb = Request {
        commit: true,
        nat: Nat::Dst {
            addr: v4_mapped(B),
            port: 8080,
        },
        mark: Some((2, 2)),
        label: None,
    };
    let mut syn = tcp(A, VIP, 40000, 80, SYN);
    t.execute_for(Z, &mut syn, &lb, &mut met).expect("lb");
    let block0 = Request {
        mark: Some((0, 1)),
        ..COMMIT
    };
    t.execute_for(Z, &mut syn, &block0, &mut met)
        .expect("commit");
    assert_eq!(t.len(), 1, "the DNATted tuple is the same connection");
    assert_eq!(syn.get(Field::CtMark), 2);
    let mut rep = tcp(B, A, 8080, 40000, SYN | ACK);
    state(&mut t, Z, &mut rep, RESTORE);
    assert_eq!((rep.get(Field::Ipv4Src) as u32, rep.tp_src()), (VIP, 80));
    // Without the packet's memory, the commit makes a second entry that steals the
    // reply tuple: what OVS avoids by keeping the packet's connection.
    let mut t2 = Table::default();
    let mut syn2 = tcp(A, VIP, 40000, 80, SYN);
    state(&mut t2, Z, &mut syn2, lb);
    state(&mut t2, Z, &mut syn2, block0);
    assert_eq!(t2.len(), 2);
}

/// An ICMPv4 error of `ty` from `src` to `dst` quoting a UDP packet `qs:qsp -> qd:qdp`.
fn icmp_error_quoting(src: u32, dst: u32, ty: u8, q: (u32, u32, u16, u16)) -> (Flow, Vec<u8>) {
    let mut f = icmp(src, dst, u16::from(ty));
    let mut l4 = vec![ty, 3, 0, 0, 0, 0, 0, 0];
    let mut ip = vec![0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0];
    ip.extend_from_slice(&q.0.to_be_bytes());
    ip.extend_from_slice(&q.1.to_be_bytes());
    ip.extend_from_slice(&q.2.to_be_bytes());
    ip.extend_from_slice(&q.3.to_be_bytes());
    ip.extend_from_slice(&[0, 8, 0, 0]);
    l4.extend_from_slice(&ip);
    f.set(Field::TcpDst, 3);
    (f, l4)
}

#[test]
fn icmp_errors_are_related_to_the_connection_they_quote() {
    let mut t = Table::default();
    let mut udp = tcp(A, B, 5000, 53, 0);
    udp.set(Field::IpProto, 17);
    state(&mut t, Z, &mut udp, COMMIT);
    // B answers A's datagram with port unreachable: related, in the reply direction.
    let (mut err, l4) = icmp_error_quoting(B, A, 3, (A, B, 5000, 53));
    let quoted = super::quoted(&l4, false);
    assert!(quoted.is_some());
    let mut met = super::Met::for_icmp_error(quoted);
    t.execute_for(Z, &mut err, &LOOKUP, &mut met).expect("ct");
    assert_eq!(
        err.get(Field::CtState) as u32,
        cs::TRACKED | cs::RELATED | cs::REPLY_DIR
    );
    // One about a datagram nobody sent is invalid, and so is one with no quote.
    let (mut err, l4) = icmp_error_quoting(B, A, 3, (A, B, 5001, 53));
    let mut met = super::Met::for_icmp_error(super::quoted(&l4, false));
    t.execute_for(Z, &mut err, &LOOKUP, &mut met).expect("ct");
    assert_eq!(err.get(Field::CtState) as u32, cs::TRACKED | cs::INVALID);
    let (mut err, _) = icmp_error_quoting(B, A, 3, (A, B, 5000, 53));
    assert_eq!(
        state(&mut t, Z, &mut err, LOOKUP),
        cs::TRACKED | cs::INVALID
    );
    // Truncated quotes parse to nothing, never panic.
    for n in 0..l4.len() {
        let _ = super::quoted(&l4[..n], false);
        let _ = super::quoted(&l4[..n], true);
    }
    assert!(super::quoted(&l4[..27], false).is_none());
}

/// A mirror in memory: what XDP's `CT` array would hold.
#[derive(Debug, Clone, Default)]
struct Slots(std::sync::Arc<std::sync::Mutex<std::collections::BTreeMap<u32, (u32, u64)>>>);

impl super::Mirror for Slots {
    fn capacity(&self) -> u32 {
        16
    }
    fn set(&mut self, slot: u32, serial: u32, now_ns: u64) -> bool {
        self.0.lock().unwrap().insert(slot, (serial, now_ns));
        true
    }
    fn clear(&mut self, slot: u32) -> bool {
        self.0.lock().unwrap().remove(&slot);
        true
    }
    fn last_seen(&self, slot: u32) -> Option<u64> {
        self.0.lock().unwrap().get(&slot).map(|(_, t)| *t)
    }
}

impl Slots {
    fn get(&self) -> Vec<(u32, u32)> {
        let m = self.0.lock().unwrap();
        m.iter().map(|(k, (s, _))| (*k, *s)).collect()
    }
    /// XDP carrying a frame of `slot`'s connection at `ms`.
    fn touch(&self, slot: u32, ms: u64) {
        if let Some(e) = self.0.lock().unwrap().get_mut(&slot) {
            e.1 = ms * 1_000_000;
        }
    }
}

/// Runs `f` through the table as one packet; its decision's connections.
fn deps_of(t: &mut Table, f: &mut Flow, req: Request) -> Option<Vec<(u32, u32)>> {
    let mut met = super::Met::default();
    t.execute_for(Z, f, &req, &mut met).expect("ct");
    met.deps()
        .map(|d| d.iter().map(|d| (d.slot, d.serial)).collect())
}

#[test]
fn established_connections_are_mirrored_and_decisions_depend_on_them() {
    let mut t = Table::default();
    let slots = Slots::default();
    t.set_mirror(Box::new(slots.clone()));
    t.set_now(1_000);
    // The handshake: every frame changes the connection, none is cacheable, nothing
    // is mirrored until it is established.
    assert_eq!(
        deps_of(&mut t, &mut tcp(A, B, 40000, 80, SYN), COMMIT),
        None
    );
    assert_eq!(
        deps_of(&mut t, &mut tcp(B, A, 80, 40000, SYN | ACK), LOOKUP),
        None
    );
    assert!(slots.get().is_empty(), "SYN_RECV is not mirrored");
    assert_eq!(
        deps_of(&mut t, &mut tcp(A, B, 40000, 80, ACK), LOOKUP),
        None
    );
    let mirrored = slots.get();
    let [(slot, serial)] = mirrored[..] else {
        panic!("one connection mirrored: {mirrored:?}")
    };
    // Established frames both ways depend on it.
    for mut f in [tcp(A, B, 40000, 80, ACK), tcp(B, A, 80, 40000, ACK)] {
        assert_eq!(deps_of(&mut t, &mut f, LOOKUP), Some(vec![(slot, serial)]));
    }
    // A commit that changes nothing keeps it; one that sets the mark makes a new
    // serial: decisions made with the old one are void.
    let same = Request {
        mark: Some((0, 1)),
        ..COMMIT
    };
    assert_eq!(
        deps_of(&mut t, &mut tcp(A, B, 40000, 80, ACK), same),
        Some(vec![(slot, serial)])
    );
    let blocked = Request {
        mark: Some((1, 1)),
        ..COMMIT
    };
    assert_eq!(
        deps_of(&mut t, &mut tcp(A, B, 40000, 80, ACK), blocked),
        None
    );
    let [(_, serial2)] = slots.get()[..] else {
        panic!("still mirrored")
    };
    assert_ne!(serial2, serial);
    // Idle in userspace but carried by XDP: alive past its userspace expiry.
    t.set_now(1_000 + 24 * 3600 * 1000 + 1);
    slots.touch(slot, 1_000 + 24 * 3600 * 1000);
    assert_eq!(t.expire(16), 0, "XDP saw it a moment ago");
    // A FIN: closing, cleared from the mirror.
    assert_eq!(
        deps_of(&mut t, &mut tcp(A, B, 40000, 80, FIN | ACK), LOOKUP),
        None
    );
    assert!(
        slots.get().is_empty(),
        "closing connections are not mirrored"
    );
    // An ICMP error, a new packet, an invalid one: one-off decisions.
    assert_eq!(deps_of(&mut t, &mut icmp(A, B, 8), LOOKUP), None);
    let mut arp = Flow::default();
    arp.set(Field::EthType, u128::from(ETH_TYPE_ARP));
    assert_eq!(deps_of(&mut t, &mut arp, LOOKUP), None);
}

#[test]
fn expired_mirrored_connections_leave_the_mirror() {
    let mut t = Table::default();
    let slots = Slots::default();
    t.set_mirror(Box::new(slots.clone()));
    t.set_now(1_000);
    // A UDP exchange: established once answered (120 s).
    let udp = |src, dst, sport, dport| {
        let mut f = tcp(src, dst, sport, dport, 0);
        f.set(Field::IpProto, 17);
        f
    };
    deps_of(&mut t, &mut udp(A, B, 5000, 53), COMMIT);
    deps_of(&mut t, &mut udp(B, A, 53, 5000), LOOKUP);
    let [(slot, serial)] = slots.get()[..] else {
        panic!("mirrored")
    };
    assert_eq!(
        deps_of(&mut t, &mut udp(A, B, 5000, 53), LOOKUP),
        Some(vec![(slot, serial)])
    );
    // XDP carries it for a while, then it goes quiet.
    slots.touch(slot, 100_000);
    t.set_now(200_000);
    assert_eq!(t.expire(16), 0, "seen at 100 s, expires at 220 s");
    t.set_now(220_001);
    assert_eq!(t.expire(16), 1);
    assert!(slots.get().is_empty() && t.is_empty());
}

#[test]
fn affinity_sessions_last_while_used_and_end_after_their_idle_timeout() {
    let mut t = Table::default();
    let session = Affinity {
        dp: 1,
        client: v4_mapped(A),
        vip: v4_mapped(VIP),
        proto: 6,
        vip_port: 80,
    };
    let backend = (v4_mapped(B), 8080);
    t.set_now(1_000);
    assert_eq!(t.lb_affinity(&session), None, "nothing learned yet");
    assert!(t.commit_lb_affinity(session, backend, 60));
    // Each hit renews the idle timer, as a learned flow's.
    for now in [50_000, 100_000, 160_000] {
        t.set_now(now);
        assert_eq!(t.lb_affinity(&session), Some(backend), "at {now} ms");
    }
    let other = Affinity {
        client: v4_mapped(0xac10_ff84),
        ..session
    };
    assert_eq!(t.lb_affinity(&other), None, "another client has no session");
    t.set_now(160_000 + 60_001);
    assert_eq!(t.lb_affinity(&session), None, "idle for more than 60 s");
    assert_eq!(t.lb_affinity(&session), None, "and gone");
    // Timeout 0: the learned flow has no idle timeout.
    assert!(t.commit_lb_affinity(session, backend, 0));
    t.set_now(u64::MAX / 2);
    assert_eq!(t.lb_affinity(&session), Some(backend));
}
