//! The connection table: entries indexed by (zone, tuple) in both directions, TCP
//! state, timeouts, NAT.

use ovnest_common::ct::{CT_DEPS, CtDep};
use ovnest_logical::{
    conntrack::{Affinity, Conntrack, Error, HairpinReply, Nat, Request, Zone},
    flow::{Field, Flow, cs},
};
use rustc_hash::{FxHashMap, FxHashSet};

use super::{
    mirror::Mirror,
    tuple::{Class, ICMP, ICMPV6, TCP, Tuple, UDP},
};

/// Milliseconds.
type Ms = u64;

/// Timeouts, OVS userspace conntrack's defaults (`lib/conntrack.c`, `ct-dpif`),
/// shortened where a closed connection's tuple must be reusable soon (TIME_WAIT).
mod timeout {
    use super::Ms;
    pub const TCP_SYN_SENT: Ms = 30_000;
    pub const TCP_SYN_RECV: Ms = 30_000;
    pub const TCP_ESTABLISHED: Ms = 24 * 3600 * 1000;
    pub const TCP_CLOSING: Ms = 120_000;
    pub const TCP_TIME_WAIT: Ms = 30_000;
    pub const TCP_CLOSE: Ms = 10_000;
    pub const UDP_FIRST: Ms = 30_000;
    pub const UDP_MULTIPLE: Ms = 120_000;
    pub const ICMP: Ms = 30_000;
    pub const OTHER_FIRST: Ms = 60_000;
    pub const OTHER_MULTIPLE: Ms = 600_000;
}

mod tcp_flags {
    pub const FIN: u16 = 0x01;
    pub const SYN: u16 = 0x02;
    pub const RST: u16 = 0x04;
    pub const ACK: u16 = 0x10;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TcpState {
    SynSent,
    SynRecv,
    Established,
    /// A FIN seen in the directions whose bits are set (1 original, 2 reply).
    Closing(u8),
    TimeWait,
    Close,
}

/// Which direction of its connection a packet travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dir {
    Original,
    Reply,
}

const NAT_SRC: u8 = 1;
const NAT_DST: u8 = 2;

#[derive(Debug, Clone, Copy)]
struct Entry {
    zone: Zone,
    orig: Tuple,
    reply: Tuple,
    /// `NAT_SRC`/`NAT_DST`: what translating `orig` to `reply.reverse()` changes.
    nat: u8,
    mark: u32,
    label: u128,
    seen_reply: bool,
    tcp: TcpState,
    expires: Ms,
    /// The timeout of the connection's state (`expires` - last packet).
    timeout: Ms,
    /// This incarnation of the connection: new on commit and on every change of what a
    /// decision can read (state, mark, label).
    serial: u32,
    /// The serial the XDP mirror's slot holds for it, if any.
    mirrored: Option<u32>,
}

/// Counters, read by `ovnest status` through the datapath's stats.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub lookups: u64,
    pub committed: u64,
    pub invalid: u64,
    pub expired: u64,
    pub flushed: u64,
    pub full: u64,
    /// Established connections written into the XDP mirror.
    pub mirrored: u64,
    /// Mirror writes the kernel refused (the connection stays userspace-only).
    pub mirror_failed: u64,
}

/// The connection table.
#[derive(Debug)]
pub struct Table {
    entries: Vec<Option<Entry>>,
    free: Vec<u32>,
    index: FxHashMap<(Zone, Tuple), (u32, Dir)>,
    len: usize,
    limit: usize,
    now: Ms,
    /// Where the incremental expiry sweep resumes.
    cursor: usize,
    /// The last serial given (0 is never one).
    serial: u32,
    /// Where established connections are mirrored for XDP, when it caches decisions.
    mirror: Option<Box<dyn Mirror>>,
    /// Load-balancer hairpin replies learned (OVS's learned flows: one per datapath,
    /// backend, VIP and backend port, not per connection; kept like OVS keeps them).
    hairpins: FxHashSet<HairpinReply>,
    /// Load-balancer affinity sessions (`commit_lb_aff`'s learned flows).
    affinities: FxHashMap<Affinity, AffinityEntry>,
    pub stats: Stats,
}

/// An affinity session's backend and idle timer.
#[derive(Debug, Clone, Copy)]
struct AffinityEntry {
    backend: (u128, u16),
    idle_ms: Ms,
    last_used: Ms,
}

impl AffinityEntry {
    fn live(&self, now: Ms) -> bool {
        now.saturating_sub(self.last_used) <= self.idle_ms
    }
}

impl Default for Table {
    fn default() -> Self {
        Table::new(Table::DEFAULT_LIMIT)
    }
}

impl Table {
    /// OVS's userspace default (`ct-set-maxconns`).
    pub const DEFAULT_LIMIT: usize = 3_000_000;

    pub fn new(limit: usize) -> Table {
        Table {
            entries: Vec::new(),
            free: Vec::new(),
            index: FxHashMap::default(),
            len: 0,
            limit,
            now: 0,
            cursor: 0,
            serial: 0,
            mirror: None,
            hairpins: FxHashSet::default(),
            affinities: FxHashMap::default(),
            stats: Stats::default(),
        }
    }

    /// Hairpin replies learned at most: a bound on configuration (VIPs × backends ×
    /// switches), not on traffic.
    pub const HAIRPIN_LIMIT: usize = 65_536;

    /// Affinity sessions held at most (one per client and VIP while it lasts).
    pub const AFFINITY_LIMIT: usize = 1 << 20;

    /// Mirrors established connections into `mirror` from now on.
    pub fn set_mirror(&mut self, mirror: Box<dyn Mirror>) {
        self.mirror = Some(mirror);
    }

    /// Whether established connections are mirrored for XDP.
    pub fn has_mirror(&self) -> bool {
        self.mirror.is_some()
    }

    fn next_serial(&mut self) -> u32 {
        self.serial = self.serial.wrapping_add(1).max(1);
        self.serial
    }

    /// Whether the connection in `idx` is still alive: its own expiry, pushed back by
    /// the frames XDP carried for it since userspace last saw one.
    fn alive(&mut self, idx: u32) -> bool {
        let now = self.now;
        let Some(e) = self.entries[idx as usize].as_mut() else {
            return false;
        };
        if e.expires > now {
            return true;
        }
        if e.mirrored.is_some()
            && let Some(seen) = self.mirror.as_ref().and_then(|m| m.last_seen(idx))
        {
            e.expires = e.expires.max((seen / 1_000_000).saturating_add(e.timeout));
        }
        e.expires > now
    }

    /// Writes the connection in `idx` into the mirror when it is established and
    /// stable (its next frames change nothing but its expiry), clears it otherwise.
    fn sync(&mut self, idx: u32) {
        let now = self.now;
        let Some(m) = self.mirror.as_mut() else {
            return;
        };
        let Some(e) = self.entries[idx as usize].as_mut() else {
            return;
        };
        let want = e.stable() && idx < m.capacity();
        match (want, e.mirrored) {
            (true, Some(s)) if s == e.serial => {}
            (true, _) => {
                if m.set(idx, e.serial, now.saturating_mul(1_000_000)) {
                    e.mirrored = Some(e.serial);
                    self.stats.mirrored += 1;
                } else {
                    // The slot may still hold the old serial: cleared below on the
                    // next change, and decisions are only cached for `mirrored`.
                    e.mirrored = None;
                    self.stats.mirror_failed += 1;
                }
            }
            (false, Some(_)) => {
                if !m.clear(idx) {
                    self.stats.mirror_failed += 1;
                }
                e.mirrored = None;
            }
            (false, None) => {}
        }
    }

    /// Connections held.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Sets the clock (milliseconds, monotonic): the caller reads it once per burst so
    /// a lookup costs no syscall.
    pub fn set_now(&mut self, now: Ms) {
        self.now = now;
    }

    /// Connections in `zone`.
    pub fn zone_len(&self, zone: Zone) -> usize {
        self.entries
            .iter()
            .flatten()
            .filter(|e| e.zone == zone)
            .count()
    }

    /// Drops every connection whose zone `keep` refuses (its port or router is gone).
    pub fn retain_zones(&mut self, mut keep: impl FnMut(Zone) -> bool) {
        for i in 0..self.entries.len() {
            if let Some(e) = self.entries[i]
                && !keep(e.zone)
            {
                self.remove(i as u32);
                self.stats.flushed += 1;
            }
        }
    }

    /// Removes up to `budget` expired connections, resuming where the last call
    /// stopped, so housekeeping never stalls the loop on a large table.
    pub fn expire(&mut self, budget: usize) -> usize {
        let n = self.entries.len();
        let mut removed = 0;
        for _ in 0..budget.min(n) {
            self.cursor = (self.cursor + 1) % n;
            if self.entries[self.cursor].is_some_and(|e| e.expires <= self.now)
                && !self.alive(self.cursor as u32)
            {
                self.remove(self.cursor as u32);
                self.stats.expired += 1;
                removed += 1;
            }
        }
        removed
    }

    fn remove(&mut self, idx: u32) {
        if let Some(e) = self.entries[idx as usize].take() {
            if e.mirrored.is_some()
                && let Some(m) = self.mirror.as_mut()
                && !m.clear(idx)
            {
                self.stats.mirror_failed += 1;
            }
            self.index.remove(&(e.zone, e.orig));
            self.index.remove(&(e.zone, e.reply));
            self.free.push(idx);
            self.len -= 1;
        }
    }

    fn insert(&mut self, e: Entry) -> u32 {
        let idx = match self.free.pop() {
            Some(i) => {
                self.entries[i as usize] = Some(e);
                i
            }
            None => {
                self.entries.push(Some(e));
                (self.entries.len() - 1) as u32
            }
        };
        self.index.insert((e.zone, e.orig), (idx, Dir::Original));
        self.index.insert((e.zone, e.reply), (idx, Dir::Reply));
        self.len += 1;
        idx
    }

    /// The live connection `t` belongs to in `zone`.
    fn find(&mut self, zone: Zone, t: &Tuple, flags: u16) -> Option<(u32, Dir)> {
        let (idx, dir) = *self.index.get(&(zone, *t))?;
        let e = self.entries[idx as usize].as_ref()?;
        let reopen = t.proto == TCP
            && dir == Dir::Original
            && flags & (tcp_flags::SYN | tcp_flags::ACK) == tcp_flags::SYN
            && matches!(e.tcp, TcpState::TimeWait | TcpState::Close);
        if reopen || !self.alive(idx) {
            self.remove(idx);
            self.stats.expired += u64::from(!reopen);
            return None;
        }
        Some((idx, dir))
    }

    /// A translated original tuple for a new connection, and what it changes.
    fn translate(&self, zone: Zone, orig: Tuple, nat: Nat) -> Result<(Tuple, u8), Error> {
        let mut t = orig;
        match nat {
            Nat::None | Nat::Restore => Ok((t, 0)),
            Nat::Dst { addr, port } => {
                t.dst = addr;
                if port != 0 && t.has_ports() {
                    t.dport = port;
                }
                Ok((t, NAT_DST))
            }
            Nat::Src { addr, lo, hi } => {
                t.src = addr;
                if !t.has_ports() {
                    return Ok((t, NAT_SRC));
                }
                // The source port stays when the reply tuple is free (and in the
                // range, when one is given); otherwise the next free one in range.
                let keep = t.sport;
                let (lo, hi, keep_ok) = if lo == 0 {
                    (1024, u16::MAX, true)
                } else {
                    let hi = hi.max(lo);
                    (lo, hi, (lo..=hi).contains(&keep))
                };
                let free = |p: u16| {
                    let mut c = t;
                    c.sport = p;
                    !self.index.contains_key(&(zone, c.reverse()))
                };
                if keep_ok && free(keep) {
                    return Ok((t, NAT_SRC));
                }
                let span = u32::from(hi - lo) + 1;
                let start = u32::from(keep) % span;
                for i in 0..span {
                    let p = lo + ((start + i) % span) as u16;
                    if free(p) {
                        t.sport = p;
                        return Ok((t, NAT_SRC));
                    }
                }
                Err(Error::NoPort)
            }
        }
    }
}

/// TCP flag combinations no connection can have (OVS's `tcp_invalid_flags`).
fn tcp_invalid(flags: u16) -> bool {
    use tcp_flags::*;
    if flags & SYN != 0 {
        flags & (RST | FIN) != 0
    } else {
        flags & (ACK | RST) == 0
    }
}

/// Whether a packet may open a connection (OVS's `*_valid_new`).
fn valid_new(t: &Tuple, flags: u16) -> bool {
    match t.proto {
        TCP => {
            use tcp_flags::*;
            !tcp_invalid(flags) && flags & (SYN | ACK) != (SYN | ACK) && flags & RST == 0
        }
        ICMP => matches!(t.sport, 8 | 13 | 15 | 17),
        ICMPV6 => t.sport == 128,
        _ => true,
    }
}

impl Entry {
    /// Whether a frame of the connection changes nothing but its expiry, unless it
    /// carries a TCP flag other than ACK, PSH, URG, ECE, CWR (cache keys hold the
    /// flags, so such frames have keys of their own and go to userspace).
    fn stable(&self) -> bool {
        self.seen_reply && (self.orig.proto != TCP || self.tcp == TcpState::Established)
    }

    /// Advances the connection's state for a packet; false when the packet is invalid
    /// for it (its state is then left alone).
    fn update(&mut self, dir: Dir, flags: u16, now: Ms) -> bool {
        let timeout = match self.orig.proto {
            TCP => {
                use tcp_flags::*;
                if tcp_invalid(flags) {
                    return false;
                }
                let bit = if dir == Dir::Original { 1 } else { 2 };
                self.tcp = match (self.tcp, dir) {
                    _ if flags & RST != 0 => TcpState::Close,
                    (TcpState::Closing(b), _) if flags & FIN != 0 => {
                        if b | bit == 3 {
                            TcpState::TimeWait
                        } else {
                            TcpState::Closing(b | bit)
                        }
                    }
                    (TcpState::TimeWait | TcpState::Close, _) => self.tcp,
                    _ if flags & FIN != 0 => TcpState::Closing(bit),
                    (TcpState::SynSent, Dir::Reply) if flags & SYN != 0 => TcpState::SynRecv,
                    (TcpState::SynSent, Dir::Reply) => TcpState::Established,
                    (TcpState::SynRecv, Dir::Original) if flags & ACK != 0 => TcpState::Established,
                    (s, _) => s,
                };
                match self.tcp {
                    TcpState::SynSent => timeout::TCP_SYN_SENT,
                    TcpState::SynRecv => timeout::TCP_SYN_RECV,
                    TcpState::Established => timeout::TCP_ESTABLISHED,
                    TcpState::Closing(_) => timeout::TCP_CLOSING,
                    TcpState::TimeWait => timeout::TCP_TIME_WAIT,
                    TcpState::Close => timeout::TCP_CLOSE,
                }
            }
            UDP if self.seen_reply || dir == Dir::Reply => timeout::UDP_MULTIPLE,
            UDP => timeout::UDP_FIRST,
            ICMP | ICMPV6 => timeout::ICMP,
            _ if self.seen_reply || dir == Dir::Reply => timeout::OTHER_MULTIPLE,
            _ => timeout::OTHER_FIRST,
        };
        if dir == Dir::Reply {
            self.seen_reply = true;
        }
        self.timeout = timeout;
        self.expires = now.saturating_add(timeout);
        true
    }
}

/// The connections one packet met, by zone. OVS keeps a packet's connection across
/// recirculations (the kernel's `skb_nfct_cached`, userspace's cached `conn`): a second
/// `ct()` in the same zone continues with it, even after NAT changed the packet's
/// tuple. Without this, `ct_commit` after `ct_lb_mark` would commit the DNATted tuple
/// as a connection of its own, whose reply tuple is the load-balanced one's.
///
/// It also keeps what the packet's decision depends on, for the XDP decision cache: the
/// established connections it met, or that it met something else (a new connection,
/// a change, an ICMP error, an invalid packet) and its decision holds for it alone.
#[derive(Debug, Default, Clone)]
pub struct Met {
    slots: [Option<(Zone, u32, Dir, Tuple)>; 4],
    /// For an ICMP error: the tuple of the packet it quotes.
    related: Option<Tuple>,
    deps: [CtDep; CT_DEPS],
    n_deps: usize,
    one_off: bool,
}

impl Met {
    /// A packet's memory, for an ICMP error quoting `related` ([`super::quoted`]).
    pub fn for_icmp_error(related: Option<Tuple>) -> Met {
        Met {
            related,
            ..Met::default()
        }
    }

    /// The mirrored connections the packet's decision depends on; `None` when the
    /// decision holds for this packet only (it must not be cached).
    pub fn deps(&self) -> Option<&[CtDep]> {
        (!self.one_off).then_some(&self.deps[..self.n_deps])
    }

    /// The decision holds for this packet only.
    pub fn refuse(&mut self) {
        self.one_off = true;
    }

    fn depend(&mut self, slot: u32, serial: u32) {
        let dep = CtDep { slot, serial };
        if self.deps[..self.n_deps].contains(&dep) {
            return;
        }
        if self.n_deps == CT_DEPS {
            self.one_off = true;
            return;
        }
        self.deps[self.n_deps] = dep;
        self.n_deps += 1;
    }

    fn get(&self, zone: Zone, t: &Tuple) -> Option<(u32, Dir)> {
        self.slots
            .iter()
            .flatten()
            .find(|(z, _, _, seen)| *z == zone && seen == t)
            .map(|(_, idx, dir, _)| (*idx, *dir))
    }

    fn put(&mut self, zone: Zone, idx: u32, dir: Dir, t: Tuple) {
        let slot = self
            .slots
            .iter()
            .position(|s| s.is_none_or(|(z, ..)| z == zone))
            .unwrap_or(0);
        self.slots[slot] = Some((zone, idx, dir, t));
    }
}

impl Conntrack for Table {
    fn execute(&mut self, zone: Zone, flow: &mut Flow, req: &Request) -> Result<(), Error> {
        self.execute_for(zone, flow, req, &mut Met::default())
    }

    fn learn_hairpin_reply(&mut self, reply: HairpinReply) -> bool {
        self.hairpins.contains(&reply)
            || (self.hairpins.len() < Self::HAIRPIN_LIMIT && self.hairpins.insert(reply))
    }

    fn hairpin_reply_learned(&mut self, reply: &HairpinReply) -> bool {
        self.hairpins.contains(reply)
    }

    fn commit_lb_affinity(
        &mut self,
        session: Affinity,
        backend: (u128, u16),
        timeout_s: u16,
    ) -> bool {
        let now = self.now;
        if self.affinities.len() >= Self::AFFINITY_LIMIT && !self.affinities.contains_key(&session)
        {
            self.affinities.retain(|_, e| e.live(now));
            if self.affinities.len() >= Self::AFFINITY_LIMIT {
                return false;
            }
        }
        // A learned flow's idle timeout of 0 is none.
        let idle_ms = match timeout_s {
            0 => Ms::MAX,
            s => Ms::from(s) * 1000,
        };
        self.affinities.insert(
            session,
            AffinityEntry {
                backend,
                idle_ms,
                last_used: now,
            },
        );
        true
    }

    fn lb_affinity(&mut self, session: &Affinity) -> Option<(u128, u16)> {
        let now = self.now;
        let e = self.affinities.get_mut(session)?;
        if e.live(now) {
            e.last_used = now;
            Some(e.backend)
        } else {
            self.affinities.remove(session);
            None
        }
    }
}

impl Table {
    /// [`Conntrack::execute`] for a packet that already met the connections in `met`.
    pub fn execute_for(
        &mut self,
        zone: Zone,
        flow: &mut Flow,
        req: &Request,
        met: &mut Met,
    ) -> Result<(), Error> {
        self.stats.lookups += 1;
        let t = match Tuple::classify(flow) {
            Class::Tuple(t) => t,
            Class::IcmpError => {
                met.one_off = true;
                self.related(zone, flow, req, met.related);
                return Ok(());
            }
            Class::Invalid => {
                met.one_off = true;
                self.stats.invalid += 1;
                set_result(flow, cs::TRACKED | cs::INVALID, 0, 0, None);
                return Ok(());
            }
        };
        let flags = if t.proto == TCP {
            flow.get(Field::TcpFlags) as u16
        } else {
            0
        };
        let cached = met.get(zone, &t).filter(|(idx, _)| {
            self.entries[*idx as usize]
                .as_ref()
                .is_some_and(|e| e.zone == zone)
        });
        if let Some((idx, dir)) = cached.or_else(|| self.find(zone, &t, flags)) {
            let now = self.now;
            let e = self.entries[idx as usize].as_mut().expect("indexed entry");
            let before = (e.seen_reply, e.tcp, e.mark, e.label);
            if !e.update(dir, flags, now) {
                met.one_off = true;
                self.stats.invalid += 1;
                set_result(flow, cs::TRACKED | cs::INVALID, 0, 0, None);
                return Ok(());
            }
            if req.commit {
                apply(&mut e.mark, &mut e.label, req);
            }
            // What a decision reads changed: decisions made before are void.
            let changed = before != (e.seen_reply, e.tcp, e.mark, e.label);
            if changed {
                self.serial = self.serial.wrapping_add(1).max(1);
                e.serial = self.serial;
            }
            self.sync(idx);
            let e = self.entries[idx as usize].as_mut().expect("indexed entry");
            match e.mirrored {
                Some(serial) if !changed && serial == e.serial => met.depend(idx, serial),
                _ => met.one_off = true,
            }
            let mut state = cs::TRACKED;
            state |= if e.seen_reply {
                cs::ESTABLISHED
            } else {
                cs::NEW
            };
            if dir == Dir::Reply {
                state |= cs::REPLY_DIR;
            }
            if req.nat != Nat::None && e.nat != 0 {
                // Original: to the translated tuple; reply: to the original's reverse.
                let (to, changed) = match dir {
                    Dir::Original => (e.reply.reverse(), e.nat),
                    // Undoing DNAT rewrites the reply's source, undoing SNAT its
                    // destination.
                    Dir::Reply => (e.orig.reverse(), swap_nat(e.nat)),
                };
                to.write(flow);
                if changed & NAT_SRC != 0 {
                    state |= cs::SRC_NAT;
                }
                if changed & NAT_DST != 0 {
                    state |= cs::DST_NAT;
                }
            }
            let (mark, label, orig) = (e.mark, e.label, e.orig);
            set_result(flow, state, mark, label, Some(orig));
            if let Class::Tuple(now) = Tuple::classify(flow) {
                met.put(zone, idx, dir, now);
            }
            return Ok(());
        }
        // No connection: what the decision did depends on there being none, and a
        // commit creates one.
        met.one_off = true;
        if !valid_new(&t, flags) {
            self.stats.invalid += 1;
            set_result(flow, cs::TRACKED | cs::INVALID, 0, 0, None);
            return Ok(());
        }
        let mut state = cs::TRACKED | cs::NEW;
        let (mut mark, mut label) = (0, 0);
        if req.commit {
            if self.len >= self.limit {
                self.stats.full += 1;
                return Err(Error::Full);
            }
            let (translated, nat) = self.translate(zone, t, req.nat)?;
            let mut e = Entry {
                zone,
                orig: t,
                reply: translated.reverse(),
                nat,
                mark: 0,
                label: 0,
                seen_reply: false,
                tcp: TcpState::SynSent,
                expires: 0,
                timeout: 0,
                serial: self.next_serial(),
                mirrored: None,
            };
            if t.proto == TCP && flags & tcp_flags::SYN == 0 {
                // Picked up mid-stream (a restart, an expired entry): as Linux's
                // `nf_conntrack_tcp_loose`.
                e.tcp = TcpState::Established;
            }
            e.update(Dir::Original, flags, self.now);
            apply(&mut e.mark, &mut e.label, req);
            (mark, label) = (e.mark, e.label);
            let idx = self.insert(e);
            self.stats.committed += 1;
            met.put(zone, idx, Dir::Original, translated);
            if nat != 0 {
                translated.write(flow);
                state |= if nat & NAT_SRC != 0 {
                    cs::SRC_NAT
                } else {
                    cs::DST_NAT
                };
            }
        }
        set_result(flow, state, mark, label, Some(t));
        Ok(())
    }
}

impl Table {
    /// An ICMP error: related (`rel`, and `rpl` when it travels against the connection)
    /// to the connection of the packet it quotes in `zone`; invalid without one, or when
    /// NAT would have to rewrite the quoted headers (not done: fail closed).
    fn related(&mut self, zone: Zone, flow: &mut Flow, req: &Request, quoted: Option<Tuple>) {
        let found = quoted.and_then(|q| {
            let (idx, dir) = *self.index.get(&(zone, q))?;
            self.alive(idx).then_some(())?;
            Some((self.entries[idx as usize].as_ref()?, dir))
        });
        match found {
            Some((e, quoted_dir)) if req.nat == Nat::None || e.nat == 0 => {
                let mut state = cs::TRACKED | cs::RELATED;
                // The error answers the quoted packet: it travels the other way.
                if quoted_dir == Dir::Original {
                    state |= cs::REPLY_DIR;
                }
                let (mark, label, orig) = (e.mark, e.label, e.orig);
                set_result(flow, state, mark, label, Some(orig));
            }
            _ => {
                self.stats.invalid += 1;
                set_result(flow, cs::TRACKED | cs::INVALID, 0, 0, None);
            }
        }
    }
}

fn swap_nat(n: u8) -> u8 {
    ((n & NAT_SRC) << 1) | ((n & NAT_DST) >> 1)
}

fn apply(mark: &mut u32, label: &mut u128, req: &Request) {
    if let Some((v, m)) = req.mark {
        *mark = (*mark & !m) | (v & m);
    }
    if let Some((v, m)) = req.label {
        *label = (*label & !m) | (v & m);
    }
}

fn set_result(flow: &mut Flow, state: u32, mark: u32, label: u128, orig: Option<Tuple>) {
    flow.set(Field::CtState, u128::from(state));
    flow.set(Field::CtMark, u128::from(mark));
    flow.set(Field::CtLabel, label);
    if let Some(o) = orig {
        o.write_orig(flow);
    }
}
