//! Load-balancer health checks: the Southbound's Service_Monitor rows for backends
//! bound on this chassis, probed as ovn-controller's pinctrl probes them
//! (`sync_svc_monitors`, `svc_monitors_run`, `svc_monitor_send_health_check`,
//! `pinctrl_handle_svc_check`).
//!
//! The agent hands the rows over ([`SvcMonitorSpec`], `sync`); the poll threads' timer
//! ([`Pinctrl::svc_monitors_run`](super::Pinctrl::svc_monitors_run)) sends the probes that are due; the replies
//! come back through northd's `handle_svc_check(inport)` flow. Each monitor keeps
//! pinctrl's state machine:
//!
//! - TCP: a SYN from the row's `src_mac`/`src_ip` (a random source port ≥ 1024, a random
//!   sequence number) to the backend's MAC and `ip`:`port`. A SYN-ACK acknowledging it
//!   is a success (answered with an RST-ACK, as pinctrl does), an RST a failure, no
//!   answer within `timeout` a failure.
//! - UDP: an 8-byte datagram. An ICMP port unreachable quoting it is a failure; no
//!   answer within `timeout` a success.
//!
//! `success_count` successes make the backend `online`, `failure_count` failures
//! `offline` (the counts restart after each change); a changed status is queued for the
//! agent to write into the row. Options default as pinctrl's: interval 5 s, timeout
//! 3 s, one success, one failure (northd copies the NB health check's options, which
//! ovn-nb(5) documents with larger defaults but does not fill in).
//!
//! The state lives in the [`SbQueue`](super::SbQueue) shared by every poll thread's
//! pinctrl and the agent (pinctrl's `pinctrl_mutex`): a probe is sent by whichever
//! thread's timer finds it due first.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::compose::{self, ETH_LEN};
use crate::flow::Layers;

/// pinctrl's defaults for a row's options.
pub const DEFAULT_INTERVAL_S: i64 = 5;
pub const DEFAULT_TIMEOUT_S: i64 = 3;
pub const DEFAULT_SUCCESS_COUNT: i64 = 1;
pub const DEFAULT_FAILURE_COUNT: i64 = 1;

/// Monitors kept at most (rows beyond are ignored and counted).
pub const MAX_MONITORS: usize = 4096;

const TCP_SYN: u16 = 0x02;
const TCP_RST: u16 = 0x04;
const TCP_ACK: u16 = 0x10;
const TCP_LEN: usize = 20;
const UDP_LEN: usize = 8;
/// pinctrl's UDP probe carries 8 zero bytes.
const UDP_PAYLOAD: usize = 8;
/// pinctrl's probe TTL / hop limit.
const PROBE_TTL: u8 = 63;
/// pinctrl's TCP window.
const PROBE_WINDOW: u16 = 65160;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
}

/// A backend's health as pinctrl reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Online,
    Offline,
}

impl Status {
    /// The Service_Monitor `status` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Online => "online",
            Status::Offline => "offline",
        }
    }
}

/// One Service_Monitor row whose `logical_port` is bound here, as the agent resolved it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SvcMonitorSpec {
    /// The row's UUID (the status is written there).
    pub uuid: String,
    /// The logical port's datapath and port tunnel keys.
    pub dp_key: u32,
    pub port_key: u32,
    /// The backend.
    pub ip: IpAddr,
    pub port: u16,
    pub protocol: Protocol,
    /// The logical port's MAC that holds `ip` (the probe's destination).
    pub mac: [u8; 6],
    /// Where probes come from (northd's `svc_monitor_mac` and the mapping's source IP).
    pub src_mac: [u8; 6],
    pub src_ip: IpAddr,
    /// `interval`, `timeout`, `success_count`, `failure_count`.
    pub options: BTreeMap<String, String>,
    /// The row's status as last read, to write only what differs.
    pub status: Option<String>,
}

/// A status to write into a Service_Monitor row (update only: northd owns the rows).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SvcStatusUpdate {
    pub uuid: String,
    pub status: Status,
}

/// A frame pinctrl sends straight to a logical port (pinctrl's packet-out to
/// `OFTABLE_LOCAL_OUTPUT`, no logical pipeline).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub dp_key: u32,
    pub port_key: u32,
    pub frame: Vec<u8>,
}

/// The health checks' counters: `ovnest_pinctrl_svc_monitor_events_total{event}`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SvcCounters {
    by: BTreeMap<&'static str, u64>,
}

impl SvcCounters {
    pub const NAME: &'static str = "ovnest_pinctrl_svc_monitor_events_total";

    fn add(&mut self, event: &'static str) {
        *self.by.entry(event).or_default() += 1;
    }

    /// The count of one event: `probe_tcp`, `probe_udp`, `syn_ack`, `rst`,
    /// `port_unreachable`, `timeout`, `reset_sent`, `online`, `offline`, or a drop
    /// reason (`unknown_monitor`, `ignored`, `malformed`, `unsupported_protocol`).
    pub fn get(&self, event: &str) -> u64 {
        self.by.get(event).copied().unwrap_or(0)
    }

    /// Every (event, count), sorted by event.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        self.by.iter().map(|(k, v)| (*k, *v))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Init,
    Waiting,
    Online,
    Offline,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Key {
    dp_key: u32,
    port_key: u32,
    ip: IpAddr,
    port: u16,
    protocol: Protocol,
}

#[derive(Debug, Clone)]
struct Monitor {
    key: Key,
    spec: SvcMonitorSpec,
    interval: Duration,
    timeout: Duration,
    success_count: i64,
    failure_count: i64,
    n_success: i64,
    n_failures: i64,
    state: State,
    status: Option<Status>,
    wait_time: Instant,
    next_send_time: Instant,
    seq_no: u32,
    tp_src: u16,
}

/// OVS's `smap_get_int`: the value when it is a decimal integer, else the default.
fn option(options: &BTreeMap<String, String>, key: &str, default: i64) -> i64 {
    options
        .get(key)
        .and_then(|v| v.trim().parse::<i32>().ok())
        .map_or(default, i64::from)
}

fn millis(v: i64) -> Duration {
    Duration::from_millis(u64::try_from(v.saturating_mul(1000)).unwrap_or(0))
}

impl Monitor {
    fn configure(&mut self) {
        let o = &self.spec.options;
        self.interval = millis(option(o, "interval", DEFAULT_INTERVAL_S));
        self.timeout = millis(option(o, "timeout", DEFAULT_TIMEOUT_S));
        self.success_count = option(o, "success_count", DEFAULT_SUCCESS_COUNT);
        self.failure_count = option(o, "failure_count", DEFAULT_FAILURE_COUNT);
    }
}

/// The monitors, their pending status writes and counters.
#[derive(Debug, Default)]
pub(crate) struct SvcMonitors {
    monitors: Vec<Monitor>,
    /// Status writes not taken by the agent yet (one per row, the latest).
    writes: Vec<SvcStatusUpdate>,
    counters: SvcCounters,
    rng: u64,
}

impl SvcMonitors {
    /// pinctrl's `sync_svc_monitors`: keeps the state of monitors still present (same
    /// datapath, port, address, port number and protocol), starts new ones, forgets the
    /// others, and queues the status of any row that says otherwise than pinctrl knows.
    pub(crate) fn sync(&mut self, specs: Vec<SvcMonitorSpec>, now: Instant) {
        let mut old = std::mem::take(&mut self.monitors);
        for spec in specs {
            if self.monitors.len() >= MAX_MONITORS {
                self.counters.add("too_many");
                continue;
            }
            let key = Key {
                dp_key: spec.dp_key,
                port_key: spec.port_key,
                ip: spec.ip,
                port: spec.port,
                protocol: spec.protocol,
            };
            if self.monitors.iter().any(|m| m.key == key) {
                continue;
            }
            if spec.ip.is_ipv4() != spec.src_ip.is_ipv4() {
                // pinctrl would send a malformed probe; there is nothing to probe from.
                self.counters.add("bad_source");
                continue;
            }
            let mut m = match old.iter().position(|m| m.key == key) {
                Some(i) => old.swap_remove(i),
                None => Monitor {
                    key,
                    spec: spec.clone(),
                    interval: Duration::ZERO,
                    timeout: Duration::ZERO,
                    success_count: 0,
                    failure_count: 0,
                    n_success: 0,
                    n_failures: 0,
                    state: State::Init,
                    status: None,
                    wait_time: now,
                    next_send_time: now,
                    seq_no: 0,
                    tp_src: 0,
                },
            };
            m.spec = spec;
            m.configure();
            if let Some(status) = m.status
                && m.spec.status.as_deref() != Some(status.as_str())
            {
                queue_write(&mut self.writes, &m.spec.uuid, status);
            }
            self.monitors.push(m);
        }
        // Writes for rows that are gone would fail: drop them.
        self.writes
            .retain(|w| self.monitors.iter().any(|m| m.spec.uuid == w.uuid));
    }

    /// pinctrl's `svc_monitors_run`: sends the probes due at `now`, times out the ones
    /// unanswered, and moves statuses. Returns the probes.
    pub(crate) fn run(&mut self, now: Instant) -> Vec<Probe> {
        let mut probes = Vec::new();
        for i in 0..self.monitors.len() {
            let m = &self.monitors[i];
            match m.state {
                State::Init => {
                    let probe = self.send(i, now);
                    probes.push(probe);
                }
                State::Waiting => {
                    if now > m.wait_time {
                        self.counters.add("timeout");
                        let m = &mut self.monitors[i];
                        // No answer: a TCP backend is down; a UDP one did not refuse.
                        match m.key.protocol {
                            Protocol::Tcp => {
                                m.n_failures += 1;
                                m.state = State::Offline;
                            }
                            Protocol::Udp => {
                                m.n_success += 1;
                                m.state = State::Online;
                            }
                        }
                        m.next_send_time = now + m.interval;
                        // pinctrl settles at its next run, which may be an interval
                        // away; the count is reached now.
                        self.settle(i);
                    }
                }
                State::Online | State::Offline => {
                    self.settle(i);
                    if now >= self.monitors[i].next_send_time {
                        let probe = self.send(i, now);
                        probes.push(probe);
                    }
                }
            }
        }
        probes
    }

    /// When [`SvcMonitors::run`] next has something to do, if there are monitors.
    pub(crate) fn next_run(&self) -> Option<Instant> {
        self.monitors
            .iter()
            .map(|m| match m.state {
                // `run` times out strictly after the wait time.
                State::Waiting => m.wait_time + Duration::from_millis(1),
                State::Init => m.wait_time.min(m.next_send_time),
                State::Online | State::Offline => m.next_send_time,
            })
            .min()
    }

    /// The first part of pinctrl's ONLINE/OFFLINE states: enough successes or failures
    /// change the status (queued for the Southbound).
    fn settle(&mut self, i: usize) {
        let m = &mut self.monitors[i];
        let status = match m.state {
            State::Online if m.n_success >= m.success_count => {
                m.n_success = 0;
                Status::Online
            }
            State::Offline if m.n_failures >= m.failure_count => {
                m.n_failures = 0;
                Status::Offline
            }
            _ => return,
        };
        if m.status != Some(status) {
            m.status = Some(status);
            let uuid = m.spec.uuid.clone();
            self.counters.add(status.as_str());
            queue_write(&mut self.writes, &uuid, status);
        }
    }

    /// pinctrl's `svc_monitor_send_health_check`.
    fn send(&mut self, i: usize, now: Instant) -> Probe {
        let (seq, port) = (self.random() as u32, self.src_port());
        let m = &mut self.monitors[i];
        let frame = match m.key.protocol {
            Protocol::Tcp => {
                m.seq_no = seq;
                m.tp_src = port;
                tcp_frame(m, TCP_SYN, m.seq_no, 0, m.tp_src)
            }
            Protocol::Udp => {
                if m.tp_src == 0 {
                    m.tp_src = port;
                }
                udp_frame(m)
            }
        };
        m.wait_time = now + m.timeout;
        m.state = State::Waiting;
        let probe = Probe {
            dp_key: m.key.dp_key,
            port_key: m.key.port_key,
            frame,
        };
        self.counters.add(match self.monitors[i].key.protocol {
            Protocol::Tcp => "probe_tcp",
            Protocol::Udp => "probe_udp",
        });
        probe
    }

    /// pinctrl's `pinctrl_handle_svc_check`: a frame `handle_svc_check(inport)` sent up
    /// (addressed to the service monitor MAC) from port `port_key` of datapath
    /// `dp_key`. Returns the outcome (counted) and the RST-ACK answering a SYN-ACK.
    pub(crate) fn handle(
        &mut self,
        dp_key: u32,
        port_key: u32,
        frame: &[u8],
        layers: Layers,
        now: Instant,
    ) -> Result<(&'static str, Option<Probe>), &'static str> {
        let r = self.reply(dp_key, port_key, frame, layers, now);
        self.counters.add(match &r {
            Ok((outcome, _)) | Err(outcome) => outcome,
        });
        if let Ok((_, Some(_))) = &r {
            self.counters.add("reset_sent");
        }
        r
    }

    fn reply(
        &mut self,
        dp_key: u32,
        port_key: u32,
        frame: &[u8],
        layers: Layers,
        now: Instant,
    ) -> Result<(&'static str, Option<Probe>), &'static str> {
        let l3 = frame.get(layers.l3..).ok_or("malformed")?;
        let ethertype = frame
            .get(layers.l3.wrapping_sub(2)..layers.l3)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
            .ok_or("malformed")?;
        let (src, proto) = match ethertype {
            compose::ETH_TYPE_IP => {
                if l3.len() < 20 || usize::from(u16::from_be_bytes([l3[2], l3[3]])) < 20 {
                    return Err("malformed");
                }
                let s: [u8; 4] = l3[12..16].try_into().map_err(|_| "malformed")?;
                (IpAddr::from(s), l3[9])
            }
            compose::ETH_TYPE_IPV6 => {
                if l3.len() < 40 {
                    return Err("malformed");
                }
                let s: [u8; 16] = l3[8..24].try_into().map_err(|_| "malformed")?;
                (IpAddr::from(s), l3[6])
            }
            _ => return Err("unsupported_protocol"),
        };
        let l4 = frame
            .get(layers.l4.ok_or("malformed")?..)
            .ok_or("malformed")?;
        match proto {
            6 => self.tcp_reply(dp_key, port_key, src, l4, now),
            1 | 58 => self.icmp_reply(dp_key, port_key, src, proto == 58, l4, now),
            _ => Err("unsupported_protocol"),
        }
    }

    fn find(
        &self,
        dp_key: u32,
        port_key: u32,
        ip: IpAddr,
        port: u16,
        p: Protocol,
    ) -> Option<usize> {
        let key = Key {
            dp_key,
            port_key,
            ip,
            port,
            protocol: p,
        };
        self.monitors.iter().position(|m| m.key == key)
    }

    /// pinctrl's `pinctrl_handle_tcp_svc_check`.
    fn tcp_reply(
        &mut self,
        dp_key: u32,
        port_key: u32,
        src: IpAddr,
        th: &[u8],
        now: Instant,
    ) -> Result<(&'static str, Option<Probe>), &'static str> {
        if th.len() < TCP_LEN {
            return Err("malformed");
        }
        let be16 = |o: usize| u16::from_be_bytes([th[o], th[o + 1]]);
        let be32 = |o: usize| u32::from_be_bytes([th[o], th[o + 1], th[o + 2], th[o + 3]]);
        let (sport, dport, seq, ack) = (be16(0), be16(2), be32(4), be32(8));
        let flags = be16(12) & 0x0fff;
        let i = self
            .find(dp_key, port_key, src, sport, Protocol::Tcp)
            .ok_or("unknown_monitor")?;
        let m = &mut self.monitors[i];
        if dport != m.tp_src || ack != m.seq_no.wrapping_add(1) {
            return Err("ignored");
        }
        if flags & (TCP_SYN | TCP_ACK) == TCP_SYN | TCP_ACK {
            m.n_success += 1;
            m.state = State::Online;
            // pinctrl answers with an RST-ACK (its sequence number one past the ACK it
            // got, as pinctrl writes it) so the backend frees the half-open connection.
            let rst = tcp_frame(
                m,
                TCP_RST | TCP_ACK,
                ack.wrapping_add(1),
                seq.wrapping_add(1),
                dport,
            );
            m.next_send_time = now + m.interval;
            let probe = Probe {
                dp_key,
                port_key,
                frame: rst,
            };
            self.settle(i);
            return Ok(("syn_ack", Some(probe)));
        }
        if flags & TCP_RST != 0 {
            m.n_failures += 1;
            m.state = State::Offline;
            m.next_send_time = now + m.interval;
            self.settle(i);
            return Ok(("rst", None));
        }
        Err("ignored")
    }

    /// The UDP half of pinctrl's `pinctrl_handle_svc_check`: an ICMP port unreachable
    /// quoting the probe.
    fn icmp_reply(
        &mut self,
        dp_key: u32,
        port_key: u32,
        src: IpAddr,
        v6: bool,
        ih: &[u8],
        now: Instant,
    ) -> Result<(&'static str, Option<Probe>), &'static str> {
        if ih.len() < 8 {
            return Err("malformed");
        }
        let quoted = &ih[8..];
        let udp = if v6 {
            if (ih[0], ih[1]) != (1, 4) {
                return Err("ignored");
            }
            if quoted.len() < 40 + 4 {
                return Err("malformed");
            }
            // pinctrl only warns about an odd quoted length here.
            &quoted[40..]
        } else {
            if (ih[0], ih[1]) != (3, 3) {
                return Err("ignored");
            }
            if quoted.len() < 20 + 4 {
                return Err("malformed");
            }
            let total = usize::from(u16::from_be_bytes([quoted[2], quoted[3]]));
            if total != 20 + UDP_LEN + UDP_PAYLOAD {
                return Err("malformed");
            }
            &quoted[20..]
        };
        let (sport, dport) = (
            u16::from_be_bytes([udp[0], udp[1]]),
            u16::from_be_bytes([udp[2], udp[3]]),
        );
        let i = self
            .find(dp_key, port_key, src, dport, Protocol::Udp)
            .ok_or("unknown_monitor")?;
        let m = &mut self.monitors[i];
        if sport != m.tp_src {
            return Err("ignored");
        }
        m.n_failures += 1;
        m.state = State::Offline;
        m.next_send_time = now + m.interval;
        self.settle(i);
        Ok(("port_unreachable", None))
    }

    /// Removes and returns the status writes waiting.
    pub(crate) fn take_writes(&mut self) -> Vec<SvcStatusUpdate> {
        std::mem::take(&mut self.writes)
    }

    pub(crate) fn has_writes(&self) -> bool {
        !self.writes.is_empty()
    }

    pub(crate) fn counters(&self) -> &SvcCounters {
        &self.counters
    }

    pub(crate) fn len(&self) -> usize {
        self.monitors.len()
    }

    /// The status pinctrl holds for each monitor (row UUID, status), for `ovnest status`.
    pub(crate) fn statuses(&self) -> Vec<(String, Option<Status>)> {
        self.monitors
            .iter()
            .map(|m| (m.spec.uuid.clone(), m.status))
            .collect()
    }

    /// pinctrl's `get_random_src_port`: a random port above 1023.
    fn src_port(&mut self) -> u16 {
        loop {
            let p = self.random() as u16;
            if p >= 1024 {
                return p;
            }
        }
    }

    /// xorshift64*: probe ports and sequence numbers need no better randomness.
    fn random(&mut self) -> u64 {
        if self.rng == 0 {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64);
            self.rng = t | 1;
        }
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

fn queue_write(writes: &mut Vec<SvcStatusUpdate>, uuid: &str, status: Status) {
    match writes.iter_mut().find(|w| w.uuid == uuid) {
        Some(w) => w.status = status,
        None => writes.push(SvcStatusUpdate {
            uuid: uuid.to_owned(),
            status,
        }),
    }
}

/// Ethernet + IP from the monitor's source to its backend, `payload` bytes of zeros.
fn ip_frame(m: &Monitor, proto: u8, payload: usize) -> Option<(Vec<u8>, usize, bool)> {
    match (m.spec.src_ip, m.key.ip) {
        (IpAddr::V4(s), IpAddr::V4(d)) => Some((
            compose::ipv4(
                m.spec.src_mac,
                m.spec.mac,
                u32::from(s),
                u32::from(d),
                proto,
                PROBE_TTL,
                payload,
            ),
            ETH_LEN + compose::IPV4_LEN,
            false,
        )),
        (IpAddr::V6(s), IpAddr::V6(d)) => Some((
            compose::ipv6(
                m.spec.src_mac,
                m.spec.mac,
                u128::from(s),
                u128::from(d),
                proto,
                PROBE_TTL,
                payload,
            ),
            ETH_LEN + compose::IPV6_LEN,
            true,
        )),
        // The agent only hands over monitors whose source and backend families match.
        _ => None,
    }
}

/// pinctrl's `svc_monitor_send_tcp_health_check__`: a bare TCP segment.
fn tcp_frame(m: &Monitor, flags: u16, seq: u32, ack: u32, sport: u16) -> Vec<u8> {
    let Some((mut b, l4, v6)) = ip_frame(m, 6, TCP_LEN) else {
        return Vec::new();
    };
    let th = &mut b[l4..];
    th[0..2].copy_from_slice(&sport.to_be_bytes());
    th[2..4].copy_from_slice(&m.key.port.to_be_bytes());
    th[4..8].copy_from_slice(&seq.to_be_bytes());
    th[8..12].copy_from_slice(&ack.to_be_bytes());
    th[12..14].copy_from_slice(&((5 << 12) | flags).to_be_bytes());
    th[14..16].copy_from_slice(&PROBE_WINDOW.to_be_bytes());
    let l3 = ETH_LEN;
    let sum = if v6 {
        compose::csum6(&b, l3, 6, &b[l4..])
    } else {
        compose::csum4(&b, l3, 6, &b[l4..])
    };
    b[l4 + 16..l4 + 18].copy_from_slice(&sum.to_be_bytes());
    b
}

/// pinctrl's `svc_monitor_send_udp_health_check`: 8 zero bytes, checksummed on IPv6
/// only.
fn udp_frame(m: &Monitor) -> Vec<u8> {
    let Some((mut b, l4, v6)) = ip_frame(m, 17, UDP_LEN + UDP_PAYLOAD) else {
        return Vec::new();
    };
    let uh = &mut b[l4..];
    uh[0..2].copy_from_slice(&m.tp_src.to_be_bytes());
    uh[2..4].copy_from_slice(&m.key.port.to_be_bytes());
    uh[4..6].copy_from_slice(&((UDP_LEN + UDP_PAYLOAD) as u16).to_be_bytes());
    if v6 {
        let mut sum = compose::csum6(&b, ETH_LEN, 17, &b[l4..]);
        if sum == 0 {
            sum = 0xffff;
        }
        b[l4 + 6..l4 + 8].copy_from_slice(&sum.to_be_bytes());
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::extract;

    const SRC_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xfe];
    const BACKEND_MAC: [u8; 6] = [0x02, 0xac, 0x10, 0xff, 0x01, 0x33];

    fn spec(protocol: Protocol, options: &[(&str, &str)]) -> SvcMonitorSpec {
        SvcMonitorSpec {
            uuid: "row".into(),
            dp_key: 1,
            port_key: 5,
            ip: "172.16.255.133".parse().unwrap(),
            port: 8080,
            protocol,
            mac: BACKEND_MAC,
            src_mac: SRC_MAC,
            src_ip: "172.16.255.150".parse().unwrap(),
            options: options
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect(),
            status: None,
        }
    }

    fn monitors(spec: SvcMonitorSpec, now: Instant) -> SvcMonitors {
        let mut s = SvcMonitors::default();
        s.sync(vec![spec], now);
        s
    }

    fn layers(frame: &[u8]) -> Layers {
        extract(frame).expect("a frame").1
    }

    /// The backend's answer to TCP probe `probe` with `flags`.
    fn tcp_answer(probe: &[u8], flags: u16, ack_delta: u32) -> Vec<u8> {
        let l4 = ETH_LEN + compose::IPV4_LEN;
        let seq = u32::from_be_bytes(probe[l4 + 4..l4 + 8].try_into().unwrap());
        let mut b = compose::ipv4(BACKEND_MAC, SRC_MAC, 0xac10ff85, 0xac10ff96, 6, 64, 20);
        b[l4..l4 + 2].copy_from_slice(&8080u16.to_be_bytes());
        b[l4 + 2..l4 + 4].copy_from_slice(&probe[l4..l4 + 2]);
        b[l4 + 4..l4 + 8].copy_from_slice(&500u32.to_be_bytes());
        b[l4 + 8..l4 + 12].copy_from_slice(&seq.wrapping_add(ack_delta).to_be_bytes());
        b[l4 + 12..l4 + 14].copy_from_slice(&((5 << 12) | flags).to_be_bytes());
        b
    }

    /// ICMP port unreachable (type, code) quoting `probe`'s first 28 bytes from IP on.
    fn unreachable(probe: &[u8], ty: u8, code: u8) -> Vec<u8> {
        let quote = &probe[ETH_LEN..ETH_LEN + 28 + UDP_PAYLOAD];
        let mut b = compose::ipv4(
            BACKEND_MAC,
            SRC_MAC,
            0xac10ff85,
            0xac10ff96,
            1,
            64,
            8 + quote.len(),
        );
        let l4 = ETH_LEN + compose::IPV4_LEN;
        b[l4] = ty;
        b[l4 + 1] = code;
        b[l4 + 8..].copy_from_slice(quote);
        b
    }

    fn handle(
        s: &mut SvcMonitors,
        frame: &[u8],
        now: Instant,
    ) -> Result<&'static str, &'static str> {
        s.handle(1, 5, frame, layers(frame), now).map(|(o, _)| o)
    }

    #[test]
    fn options_default_as_pinctrl_and_bad_values_fall_back() {
        let t = Instant::now();
        let s = monitors(
            spec(Protocol::Tcp, &[("interval", "x"), ("timeout", "7")]),
            t,
        );
        let m = &s.monitors[0];
        assert_eq!(m.interval, Duration::from_secs(5));
        assert_eq!(m.timeout, Duration::from_secs(7));
        assert_eq!((m.success_count, m.failure_count), (1, 1));
    }

    #[test]
    fn tcp_counts_successes_and_failures_before_changing_status() {
        let t = Instant::now();
        let opts = [
            ("interval", "5"),
            ("timeout", "3"),
            ("success_count", "2"),
            ("failure_count", "2"),
        ];
        let mut s = monitors(spec(Protocol::Tcp, &opts), t);
        let probe = s.run(t).pop().expect("a SYN at once").frame;
        assert_eq!(
            s.next_run(),
            Some(t + Duration::from_secs(3) + Duration::from_millis(1))
        );
        // An answer not acknowledging our SYN is ignored.
        assert_eq!(
            handle(&mut s, &tcp_answer(&probe, 0x12, 7), t),
            Err("ignored")
        );
        assert_eq!(
            handle(&mut s, &tcp_answer(&probe, 0x12, 1), t),
            Ok("syn_ack")
        );
        assert!(s.take_writes().is_empty(), "one success of two");
        let t2 = t + Duration::from_secs(5);
        let probe = s
            .run(t2)
            .pop()
            .expect("next probe after the interval")
            .frame;
        assert_eq!(
            handle(&mut s, &tcp_answer(&probe, 0x12, 1), t2),
            Ok("syn_ack")
        );
        assert_eq!(
            s.take_writes(),
            vec![SvcStatusUpdate {
                uuid: "row".into(),
                status: Status::Online
            }]
        );
        // Two failures: an RST, then silence past the timeout.
        let t3 = t2 + Duration::from_secs(5);
        let probe = s.run(t3).pop().expect("probe").frame;
        assert_eq!(handle(&mut s, &tcp_answer(&probe, 0x14, 1), t3), Ok("rst"));
        assert!(s.take_writes().is_empty());
        let t4 = t3 + Duration::from_secs(5);
        assert_eq!(s.run(t4).len(), 1);
        assert!(
            s.run(t4 + Duration::from_secs(3)).is_empty(),
            "not past the timeout yet"
        );
        assert!(s.run(t4 + Duration::from_secs(4)).is_empty());
        assert_eq!(s.take_writes()[0].status, Status::Offline);
        for (event, n) in [
            ("probe_tcp", 4),
            ("syn_ack", 2),
            ("rst", 1),
            ("timeout", 1),
            ("ignored", 1),
            ("online", 1),
            ("offline", 1),
        ] {
            assert_eq!(s.counters().get(event), n, "{event}");
        }
    }

    #[test]
    fn udp_is_online_when_silent_and_offline_on_port_unreachable() {
        let t = Instant::now();
        let mut s = monitors(spec(Protocol::Udp, &[("timeout", "1")]), t);
        let probe = s.run(t).pop().expect("a datagram").frame;
        let l4 = ETH_LEN + compose::IPV4_LEN;
        assert_eq!(probe.len(), l4 + UDP_LEN + UDP_PAYLOAD);
        assert_eq!(probe[ETH_LEN + 9], 17);
        assert_eq!(&probe[l4 + 2..l4 + 6], &[0x1f, 0x90, 0, 16]);
        assert!(s.run(t + Duration::from_millis(1500)).is_empty());
        assert_eq!(s.take_writes()[0].status, Status::Online);
        // The next datagram keeps its source port; a refusal quoting it is a failure,
        // one quoting another port or of another code is not.
        let again = s
            .run(t + Duration::from_secs(7))
            .pop()
            .expect("datagram")
            .frame;
        assert_eq!(probe[l4..l4 + 2], again[l4..l4 + 2]);
        assert_eq!(
            handle(&mut s, &unreachable(&again, 3, 1), t),
            Err("ignored")
        );
        let mut other = again.clone();
        other[l4] ^= 1;
        assert_eq!(
            handle(&mut s, &unreachable(&other, 3, 3), t),
            Err("ignored")
        );
        assert_eq!(
            handle(&mut s, &unreachable(&again, 3, 3), t),
            Ok("port_unreachable")
        );
        assert_eq!(s.take_writes()[0].status, Status::Offline);
    }

    #[test]
    fn replies_nobody_expects_and_broken_ones_are_counted_drops() {
        let t = Instant::now();
        let mut s = monitors(spec(Protocol::Tcp, &[]), t);
        let probe = s.run(t).pop().unwrap().frame;
        let answer = tcp_answer(&probe, 0x12, 1);
        // From another port of the switch.
        assert_eq!(
            s.handle(1, 6, &answer, layers(&answer), t).map(|(o, _)| o),
            Err("unknown_monitor")
        );
        // Truncated TCP header.
        let short = &answer[..ETH_LEN + compose::IPV4_LEN + 10];
        let l = Layers {
            l3: ETH_LEN,
            l4: Some(ETH_LEN + compose::IPV4_LEN),
        };
        assert_eq!(
            s.handle(1, 5, short, l, t).map(|(o, _)| o),
            Err("malformed")
        );
        // UDP is not a reply pinctrl reads.
        let mut udp = answer.clone();
        udp[ETH_LEN + 9] = 17;
        assert_eq!(handle(&mut s, &udp, t), Err("unsupported_protocol"));
        assert_eq!(s.counters().get("unknown_monitor"), 1);
        assert_eq!(s.counters().get("malformed"), 1);
        assert_eq!(s.counters().get("unsupported_protocol"), 1);
    }

    #[test]
    fn sync_keeps_state_and_writes_what_the_row_does_not_say() {
        let t = Instant::now();
        let mut s = monitors(spec(Protocol::Tcp, &[]), t);
        let probe = s.run(t).pop().unwrap().frame;
        assert_eq!(
            handle(&mut s, &tcp_answer(&probe, 0x12, 1), t),
            Ok("syn_ack")
        );
        s.take_writes();
        // The row still says nothing (our write not seen yet): written again.
        s.sync(vec![spec(Protocol::Tcp, &[])], t);
        assert_eq!(s.take_writes().len(), 1);
        let mut online = spec(Protocol::Tcp, &[]);
        online.status = Some("online".into());
        s.sync(vec![online], t);
        assert!(s.take_writes().is_empty(), "the row says so");
        assert_eq!(s.statuses(), vec![("row".into(), Some(Status::Online))]);
        // A row of another family source is refused; a row gone is forgotten.
        let mut v6 = spec(Protocol::Tcp, &[]);
        v6.src_ip = "fe80::1".parse().unwrap();
        s.sync(vec![v6], t);
        assert_eq!((s.len(), s.counters().get("bad_source")), (0, 1));
    }

    #[test]
    fn ipv6_probe_is_checksummed() {
        let t = Instant::now();
        let mut sp = spec(Protocol::Tcp, &[]);
        sp.ip = "fd00::33".parse().unwrap();
        sp.src_ip = "fd00::96".parse().unwrap();
        let mut s = monitors(sp, t);
        let probe = s.run(t).pop().unwrap().frame;
        let l4 = ETH_LEN + compose::IPV6_LEN;
        assert_eq!(probe.len(), l4 + TCP_LEN);
        assert_eq!(compose::csum6(&probe, ETH_LEN, 6, &probe[l4..]), 0);
        assert_eq!(probe[ETH_LEN + 7], PROBE_TTL);
    }

    proptest::proptest! {
        /// Any bytes at any offsets handed up by `handle_svc_check` are an outcome or a
        /// counted drop, never a panic; a frame whose headers were cut short anywhere
        /// too.
        #[test]
        fn no_reply_bytes_panic(
            frame in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..160),
            l3 in 0usize..180,
            l4 in proptest::option::of(0usize..200),
            cut in 0usize..80,
        ) {
            let t = Instant::now();
            let mut s = monitors(spec(Protocol::Udp, &[]), t);
            s.sync(vec![spec(Protocol::Udp, &[]), spec(Protocol::Tcp, &[])], t);
            let probes = s.run(t);
            let _ = s.handle(1, 5, &frame, Layers { l3, l4 }, t);
            for p in probes {
                let answer = if p.frame[ETH_LEN + 9] == 6 {
                    tcp_answer(&p.frame, 0x12, 1)
                } else {
                    unreachable(&p.frame, 3, 3)
                };
                let short = &answer[..answer.len().saturating_sub(cut)];
                let _ = s.handle(1, 5, short, layers(&answer), t);
            }
            let n: u64 = s.counters().iter().map(|(_, n)| n).sum();
            proptest::prop_assert!(n >= 3);
        }
    }
}
