//! `ovnest bench --tunnel`: the packet rate of c51 → vm1 across two hypervisors, through
//! Geneve over the underlay veth (`--hypervisors 2`: c51 on hv, vm1 on hv2), for each
//! pair of chassis agents in one run — ovnest on both ends, the two mixed pairs, and
//! ovn-controller + userspace OVS on both ends — beside ovnest's own rate for the same
//! frames with vm1 on the same chassis (the one-hypervisor lab), and each side of the
//! ovnest pair alone.
//!
//! Same generator and receiver as the rate cases (BPF_PROG_TEST_RUN live frames out of
//! vm5's uplink, an XDP counter on vm1's NIC), same throughput search; the rows
//! alternate within each round. Both hypervisors are namespaces of one machine, and a
//! veth runs its receiver's NAPI on the sending CPU: the generator's core carries every
//! XDP pass a frame triggers, so an end-to-end tunnelled frame pays hv's encapsulation
//! and hv2's decapsulation on one core, where two hosts would each pay their own half.
//! So each side is also measured alone, as a host of a real pair would run it:
//! - **encapsulation alone**: c51's frames through hv's XDP (cache hit, Geneve
//!   encapsulation, redirect to `und`), counted and dropped by the sink on hv2's end of
//!   `und` instead of being decapsulated (a lab of its own, ovn-controller + OVS on hv2
//!   so that vm1 is bound there, its underlay never reached once the sink is on);
//! - **decapsulation alone**: the Geneve frames hv sends (captured on the encapsulation
//!   lab's underlay, checked byte for byte against `geneve::encapsulate` for the ovnest
//!   pair's addresses and keys) transmitted by the generator out of hv's end of `und` of
//!   the ovnest pair's lab, so that hv2's XDP decapsulates them and delivers to vm1,
//!   counted as ever at vm1's NIC.
//!
//! The harness's own cost is measured too (**floor**: the generator's frames straight
//! into the sink over a bare veth pair, no datapath): every other row's time per frame
//! on the generator's core, less the floor's, is what its datapath costs (its XDP passes
//! and the extra veth hop), the part a host of a real pair would pay without the
//! generator beside it.
//!
//! Both tunnels' XDP counters (`ovnest status` on each hypervisor) are read before and
//! after: the frames must be served by encapsulation and decapsulation hits, not upcalls.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant, SystemTime},
};

use anyhow::{Context as _, bail};
use ovnest::agent::config::DatapathMode;
use ovnest_datapath::{
    fastpath::bench::BenchKit,
    geneve::{self, Metadata, Underlay},
};
use serde::Serialize;
use tracing::info;

use super::{
    BenchArgs, Direction,
    run::{self, ifindex},
    search::{Sample, Search},
};
use crate::{
    AgentKind, Lab, LabArgs,
    hypervisors::{self, HV1_ENCAP, HV2, HV2_ENCAP, Hv2Agent},
    process,
};

/// Who runs each hypervisor (a row of the table).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Pair {
    /// ovnest (`hybrid`) on both.
    OvnestOvnest,
    /// hv's half of ovnest -> ovnest: encapsulation into `und`, counted and dropped at
    /// hv2's end of it.
    EncapOnly,
    /// hv2's half of ovnest -> ovnest: hv's Geneve frames injected into `und`,
    /// decapsulated and delivered to vm1 (on ovnest -> ovnest's lab).
    DecapOnly,
    /// ovnest sends, ovn-controller + OVS receives.
    OvnestOvs,
    /// ovn-controller + OVS sends, ovnest receives.
    OvsOvnest,
    /// ovn-controller + OVS on both.
    OvsOvs,
    /// ovnest, vm1 on the same chassis as c51 (no tunnel): the reference for the ratio.
    OvnestLocal,
    /// No datapath: the generator's frames straight into the sink over a veth pair of
    /// their own (in the same-chassis lab's vm4): the harness's cost per frame.
    Floor,
}

impl Pair {
    /// The rows, in the order they are measured and printed.
    pub const ALL: [Pair; 8] = [
        Pair::OvnestOvnest,
        Pair::EncapOnly,
        Pair::DecapOnly,
        Pair::OvnestOvs,
        Pair::OvsOvnest,
        Pair::OvsOvs,
        Pair::OvnestLocal,
        Pair::Floor,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Pair::OvnestOvnest => "ovnest -> ovnest (Geneve)",
            Pair::EncapOnly => "  hv alone: encap",
            Pair::DecapOnly => "  hv2 alone: decap",
            Pair::OvnestOvs => "ovnest -> OVS (Geneve)",
            Pair::OvsOvnest => "OVS -> ovnest (Geneve)",
            Pair::OvsOvs => "OVS -> OVS (Geneve)",
            Pair::OvnestLocal => "ovnest, same chassis",
            Pair::Floor => "floor: generator -> sink, no datapath",
        }
    }

    /// The row whose lab this row is measured on: its own, except decapsulation alone
    /// (ovnest -> ovnest's hv2).
    fn lab(self) -> Pair {
        match self {
            Pair::DecapOnly => Pair::OvnestOvnest,
            Pair::Floor => Pair::OvnestLocal,
            other => other,
        }
    }

    /// Where the generator transmits: out of vm5's uplink (c51's frames), or for
    /// decapsulation alone out of hv's end of the underlay (hv's Geneve frames).
    fn source(self) -> (&'static str, &'static str) {
        match self {
            Pair::DecapOnly => ("hv", "und"),
            Pair::Floor => ("vm4", FLOOR_TX),
            _ => ("vm5", "brvm5-brint"),
        }
    }

    fn lab_args(self, dir: &std::path::Path, short: &str) -> LabArgs {
        let (agent, hv2_agent, hypervisors) = match self {
            Pair::OvnestOvnest => (AgentKind::Ovnest, Hv2Agent::Ovnest, 2),
            Pair::OvnestOvs => (AgentKind::Ovnest, Hv2Agent::OvnController, 2),
            Pair::OvsOvnest => (AgentKind::OvnController, Hv2Agent::Ovnest, 2),
            Pair::OvsOvs => (AgentKind::OvnController, Hv2Agent::OvnController, 2),
            Pair::OvnestLocal => (AgentKind::Ovnest, Hv2Agent::OvnController, 1),
            // hv2 binds vm1 (so hv's cache sends c51's frames there); its own datapath is
            // never reached once the sink sits on its end of the underlay.
            Pair::EncapOnly => (AgentKind::Ovnest, Hv2Agent::OvnController, 2),
            Pair::DecapOnly | Pair::Floor => unreachable!("measured on another row's lab"),
        };
        LabArgs {
            dir: dir.join(short),
            prefix: format!("ot{short}-"),
            ovnest: None,
            agent,
            datapath: DatapathMode::Hybrid,
            containers: Default::default(),
            addressing: crate::Addressing::Static,
            hypervisors,
            hv2_agent,
        }
    }
}

/// The floor's veth pair, both ends in the same-chassis lab's vm4 (gone with it).
const FLOOR_TX: &str = "floor-tx";
const FLOOR_RX: &str = "floor-rx";

/// One pair's lab, torn down on drop.
struct Bed {
    pair: Pair,
    lab: Lab,
    kit: BenchKit,
}

impl Drop for Bed {
    fn drop(&mut self) {
        Lab::down(&self.lab.dir);
    }
}

/// One row's figures at one frame size, medians over the rounds.
#[derive(Clone, Debug, Serialize)]
pub struct TunnelRow {
    pub pair: Pair,
    pub size: usize,
    /// The throughput search's figure (at most `--loss` lost); `None`: no trial passed.
    pub throughput_mpps: Option<f64>,
    pub throughput_min_mpps: Option<f64>,
    pub throughput_max_mpps: Option<f64>,
    /// Received with the generator unpaced.
    pub overload_mpps: f64,
    /// Some round's overload stayed within the loss: the generator set the figure.
    pub generator_limited: bool,
    /// Frames the generator sent and the receiver counted over all of the row's trials
    /// (warm-ups included): what the tunnel counters are checked against.
    pub frames_sent: u64,
    pub frames_received: u64,
}

/// What two real hosts would carry: the slower of the two sides measured alone (each
/// with the generator's core to itself), derived, not measured end to end.
#[derive(Clone, Debug, Serialize)]
pub struct TwoHosts {
    pub size: usize,
    pub slower_side: Pair,
    pub throughput_mpps: f64,
    pub overload_mpps: f64,
    /// Throughput / ovnest's same-chassis throughput (both medians).
    pub ratio_to_local: Option<f64>,
    pub overload_ratio_to_local: Option<f64>,
    /// One of the figures it is made of was generator-limited.
    pub generator_limited: bool,
    /// Datapath cost per frame (ns): 1/throughput − 1/floor's throughput, on the
    /// generator's core; `None` without a floor below the row.
    pub local_ns: Option<f64>,
    pub encap_ns: Option<f64>,
    pub decap_ns: Option<f64>,
    /// local_ns / the larger of encap_ns and decap_ns: the two-host ratio with the
    /// harness's own cost taken out (derived).
    pub cost_ratio_to_local: Option<f64>,
}

/// One hypervisor's XDP tunnel counters over the run (after − before), by
/// `TunnelCounter` name.
#[derive(Clone, Debug, Serialize)]
pub struct TunnelCounters {
    pub lab: Pair,
    pub hypervisor: &'static str,
    pub counters: BTreeMap<String, u64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct TunnelReport {
    pub load_before: String,
    pub load_after: String,
    pub tuning: String,
    pub rounds: usize,
    pub window_ms: u64,
    /// hv2's Encap `options:csum` (the encapsulation checksums the UDP datagram when
    /// true), the same in the two labs the sides are measured on.
    pub hv2_csum: bool,
    pub rows: Vec<TunnelRow>,
    pub two_hosts: Vec<TwoHosts>,
    pub counters: Vec<TunnelCounters>,
}

fn bed(args: &BenchArgs, pair: Pair, short: &str) -> anyhow::Result<Bed> {
    // Loaded first: a kit that fails to load leaves no lab behind.
    let kit = BenchKit::load()?;
    let lab_args = pair.lab_args(&args.dir, short);
    Lab::down(&lab_args.dir);
    let lab = Lab::up(&lab_args).with_context(|| format!("lab for {}", pair.label()))?;
    // From here on the lab is torn down on any error (Bed's drop).
    let mut bed = Bed { pair, lab, kit };
    // Frames the generator transmits out of vm5's uplink arrive as XDP frames on the
    // hypervisor's end: with no program of ovnest's there (OVS), NAPI must take them.
    bed.lab
        .exec("hv", "ethtool", &["-K", "brint-brvm5", "gro", "on"])?;
    {
        let _in = process::enter_netns(&bed.lab.ns("vm1"))?;
        bed.kit.attach_sink(ifindex("eth0")?)?;
    }
    Ok(bed)
}

/// The pids of every agent and vswitchd of a bed's lab (both hypervisors).
fn datapath_pids(lab: &Lab) -> Vec<i32> {
    [
        "ovnest.pid",
        "hv2-ovnest.pid",
        "ovn-controller.pid",
        "hv2-ovn-controller.pid",
        "hv-vswitchd.pid",
        "hv2-vswitchd.pid",
    ]
    .iter()
    .filter_map(|f| process::alive(&lab.dir.join(f)))
    .collect()
}

/// Waits until `row`'s frames reach its receiver: the pair's tunnel is up, its next
/// hops resolved (`ping`: c51 pings vm1 first, as the first frames resolve the
/// underlay's neighbours) and its caches warm.
fn wait_through(bed: &mut Bed, row: Pair, frames: &[Vec<u8>], ping: bool) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if ping {
            bed.lab
                .exec("c51", "ping", &["-c1", "-W1", "172.16.255.130"])
                .ok();
        }
        let s = run::measure_from(
            &mut bed.kit,
            &bed.lab,
            row.label(),
            row.source(),
            frames,
            Duration::from_millis(50),
            20_000,
            1,
        )?;
        if s.received > 0.0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{}: no frame reaches the receiver", row.label());
        }
    }
}

/// Makes hv's neighbour entry for hv2's tunnel address permanent (same MAC): once the
/// sink drops everything on hv2's end of the underlay, ARP there goes unanswered, and
/// the entry must not expire under the encapsulations that use it.
fn hold_neighbour(lab: &Lab) -> anyhow::Result<()> {
    let shown = lab.exec("hv", "ip", &["neigh", "show", HV2_ENCAP, "dev", "und"])?;
    let mac = shown
        .split_whitespace()
        .skip_while(|w| *w != "lladdr")
        .nth(1)
        .with_context(|| format!("hv has no neighbour entry for {HV2_ENCAP}: {shown}"))?
        .to_owned();
    lab.exec(
        "hv",
        "ip",
        &[
            "neigh",
            "replace",
            HV2_ENCAP,
            "lladdr",
            &mac,
            "dev",
            "und",
            "nud",
            "permanent",
        ],
    )?;
    Ok(())
}

/// The Geneve frame hv sends for `frames[0]`, taken on hv2's end of the underlay (a
/// capture program there while a few frames go through, then removed).
fn capture(bed: &mut Bed, frames: &[Vec<u8>]) -> anyhow::Result<Vec<u8>> {
    let link = {
        let _in = process::enter_netns(&bed.lab.ns(HV2))?;
        bed.kit.attach_capture(ifindex("und")?)?
    };
    let sample = run::measure_on(
        &mut bed.kit,
        &bed.lab,
        "capture",
        Direction::C51ToVm1,
        frames,
        Duration::from_millis(50),
        20_000,
        1,
    );
    let captured = bed.kit.captured();
    bed.kit.detach_capture(link)?;
    let sample = sample?;
    let frame = captured?
        .filter(|_| sample.received > 0.0)
        .context("no frame captured on hv2's end of the underlay")?;
    Ok(frame)
}

/// The floor's veth pair in the same-chassis lab's vm4, the sink on its receiving end
/// (GRO on, as on the hypervisors' ends of the lab's veths).
fn floor(bed: &mut Bed) -> anyhow::Result<()> {
    let ns = bed.lab.ns("vm4");
    process::run_in(
        &ns,
        "ip",
        &[
            "link", "add", FLOOR_TX, "type", "veth", "peer", "name", FLOOR_RX,
        ],
    )?;
    for dev in [FLOOR_TX, FLOOR_RX] {
        process::run_in(&ns, "ip", &["link", "set", dev, "up"])?;
    }
    process::run_in(&ns, "ethtool", &["-K", FLOOR_RX, "gro", "on"])?;
    let _in = process::enter_netns(&ns)?;
    bed.kit.attach_sink(ifindex(FLOOR_RX)?)?;
    Ok(())
}

/// A Southbound row's `tunnel_key`.
fn tunnel_key(lab: &Lab, table: &str, condition: &str) -> anyhow::Result<u32> {
    let out = lab.sbctl(&["--bare", "--columns=tunnel_key", "find", table, condition])?;
    out.trim()
        .parse()
        .with_context(|| format!("{table} {condition}: tunnel_key `{}`", out.trim()))
}

/// hv2's Encap `options:csum` as the lab's Southbound holds it.
fn hv2_csum(lab: &Lab) -> anyhow::Result<bool> {
    let out = lab.sbctl(&[
        "--bare",
        "--columns=options",
        "find",
        "Encap",
        &format!("ip=\"{HV2_ENCAP}\""),
    ])?;
    Ok(out.split_whitespace().any(|o| o == "csum=true"))
}

fn und_mac(lab: &Lab, ns: &str) -> anyhow::Result<[u8; 6]> {
    let text = lab.exec(ns, "cat", &["/sys/class/net/und/address"])?;
    ovnest::agent::underlay::parse_mac(&text)
        .with_context(|| format!("{ns}'s und MAC `{}`", text.trim()))
}

/// The frames for decapsulation alone on `lab` (ovnest -> ovnest's): the frame hv sent
/// on the encapsulation lab (`captured`), made again with `geneve::encapsulate` (the
/// code hv's XDP template comes from) for this lab's underlay MACs, tunnel addresses,
/// Encap checksum option and Southbound keys, with the source port hv chose. Every byte
/// after the outer MACs must equal the captured frame's: the labs differ only in MACs.
fn decap_frames(lab: &Lab, captured: &[u8]) -> anyhow::Result<Vec<Vec<u8>>> {
    let ip = |s: &str| -> anyhow::Result<[u8; 4]> { Ok(s.parse::<std::net::Ipv4Addr>()?.octets()) };
    let (local_ip, remote_ip) = (ip(HV1_ENCAP)?, ip(HV2_ENCAP)?);
    if captured.len() < geneve::OVERHEAD + 14
        || captured[12..14] != [0x08, 0x00]
        || captured[23] != 17
        || captured[26..30] != local_ip
        || captured[30..34] != remote_ip
        || captured[36..38] != geneve::UDP_PORT.to_be_bytes()
    {
        bail!("the captured frame is not Geneve from hv to hv2: {captured:02x?}");
    }
    let underlay = Underlay {
        local_mac: und_mac(lab, "hv")?,
        next_hop_mac: und_mac(lab, HV2)?,
        local_ip,
        remote_ip,
        csum: hv2_csum(lab)?,
    };
    let meta = Metadata {
        vni: tunnel_key(lab, "Datapath_Binding", "external_ids:name=dmz")?,
        ingress: tunnel_key(lab, "Port_Binding", "logical_port=dmz-c51")? as u16,
        egress: tunnel_key(lab, "Port_Binding", "logical_port=dmz-vm1")? as u16,
    };
    let sport = u16::from_be_bytes([captured[34], captured[35]]);
    let mut frame = captured.to_vec();
    frame[..geneve::OVERHEAD].fill(0);
    geneve::encapsulate(&mut frame, &underlay, &meta, sport)
        .map_err(|_| anyhow::anyhow!("inner frame too long to encapsulate"))?;
    if frame[12..] != captured[12..] {
        bail!(
            "geneve::encapsulate for the ovnest pair's lab differs from what hv sent:\nmade {:02x?}\nsent {:02x?}",
            &frame[..geneve::OVERHEAD],
            &captured[..geneve::OVERHEAD]
        );
    }
    Ok(vec![frame])
}

/// A hypervisor's XDP tunnel counters from a status its agent wrote after `after`.
fn tunnel_counters(
    state_dir: &std::path::Path,
    after: SystemTime,
) -> anyhow::Result<BTreeMap<String, u64>> {
    let after_ms = after
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(status) = ovnest::agent::status::Status::read(state_dir)
            && status.updated_unix_ms > after_ms
        {
            return Ok(status.cache.map(|c| c.tunnel).unwrap_or_default());
        }
        std::thread::park_timeout(Duration::from_millis(50));
    }
    bail!("no fresh status in {}", state_dir.display())
}

/// The hypervisors whose tunnel counters the run reads: (lab, hypervisor, state dir).
fn counted(beds: &[Bed]) -> Vec<(Pair, &'static str, std::path::PathBuf)> {
    let mut out = Vec::new();
    for bed in beds {
        match bed.pair {
            Pair::OvnestOvnest => {
                out.push((bed.pair, "hv", bed.lab.state_dir()));
                out.push((bed.pair, HV2, hypervisors::ovnest_state_dir(&bed.lab)));
            }
            Pair::EncapOnly => out.push((bed.pair, "hv", bed.lab.state_dir())),
            _ => {}
        }
    }
    out
}

pub fn measure(args: &BenchArgs) -> anyhow::Result<TunnelReport> {
    let load_before = run::loadavg();
    run::catch_interrupts();
    let tuning = run::HostTuning::hold();
    let labs: Vec<Pair> = Pair::ALL.into_iter().filter(|p| p.lab() == *p).collect();
    let mut beds = Vec::new();
    for (i, pair) in labs.iter().enumerate() {
        run::check_interrupted()?;
        info!("bringing up the lab for {}", pair.label());
        beds.push(bed(args, *pair, &i.to_string())?);
    }
    for bed in &beds {
        for pid in datapath_pids(&bed.lab) {
            let _ = process::run(
                "taskset",
                &[
                    "-a",
                    "-p",
                    "-c",
                    &run::DATAPATH_CPU.to_string(),
                    &pid.to_string(),
                ],
            );
        }
    }
    run::pin_self(run::GENERATOR_CPU);
    let bed_of = |pair: Pair| labs.iter().position(|l| *l == pair.lab()).unwrap_or(0);
    let (pair_bed, encap_bed) = (bed_of(Pair::OvnestOvnest), bed_of(Pair::EncapOnly));

    // The sides alone. Both labs must encapsulate alike: the same checksum option.
    let csum = hv2_csum(&beds[pair_bed].lab)?;
    if hv2_csum(&beds[encap_bed].lab)? != csum {
        bail!(
            "hv2's Encap options:csum differs between the ovnest pair's lab and the encapsulation lab"
        );
    }
    let mut frames_of: BTreeMap<(Pair, usize), Vec<Vec<u8>>> = BTreeMap::new();
    for size in &args.sizes {
        let frames = run::frames(Direction::C51ToVm1, *size, 1);
        for pair in Pair::ALL {
            frames_of.insert((pair, *size), frames.clone());
        }
        // Through hv2's OVS to vm1 first: the underlay's neighbours resolved, hv's cache
        // holding the decision.
        wait_through(&mut beds[encap_bed], Pair::EncapOnly, &frames, true)?;
        if *size == args.sizes[0] {
            hold_neighbour(&beds[encap_bed].lab)?;
        }
        let captured = capture(&mut beds[encap_bed], &frames)?;
        info!(
            "{size} bytes: hv sends {} bytes of Geneve: {captured:02x?}",
            captured.len()
        );
        frames_of.insert(
            (Pair::DecapOnly, *size),
            decap_frames(&beds[pair_bed].lab, &captured)?,
        );
    }
    {
        let bed = &mut beds[encap_bed];
        let _in = process::enter_netns(&bed.lab.ns(HV2))?;
        bed.kit.attach_sink(ifindex("und")?)?;
    }
    floor(&mut beds[bed_of(Pair::Floor)])?;

    let counted = counted(&beds);
    let before_at = SystemTime::now();
    let before: Vec<BTreeMap<String, u64>> = counted
        .iter()
        .map(|(_, _, dir)| tunnel_counters(dir, before_at))
        .collect::<anyhow::Result<_>>()?;

    let window = Duration::from_millis(args.window_ms);
    let mut rows = Vec::new();
    for size in &args.sizes {
        // The end-to-end rows first: decapsulation alone needs hv2's cache warm.
        for pair in Pair::ALL {
            let ping = !matches!(pair, Pair::EncapOnly | Pair::DecapOnly | Pair::Floor);
            wait_through(
                &mut beds[bed_of(pair)],
                pair,
                &frames_of[&(pair, *size)],
                ping,
            )?;
        }
        let mut found: Vec<Vec<(Option<Sample>, Sample, bool)>> = vec![Vec::new(); Pair::ALL.len()];
        let mut totals = vec![(0u64, 0u64); Pair::ALL.len()];
        for round in 0..args.rounds {
            info!("{size} bytes, round {} of {}", round + 1, args.rounds);
            for (i, pair) in Pair::ALL.into_iter().enumerate() {
                let bed = &mut beds[bed_of(pair)];
                let frames = &frames_of[&(pair, *size)];
                let mut trial = |gap: u64| {
                    run::check_interrupted()?;
                    let (sent, received) = (bed.kit.sent()?, bed.kit.received()?);
                    let sample = run::measure_from(
                        &mut bed.kit,
                        &bed.lab,
                        pair.label(),
                        pair.source(),
                        frames,
                        window,
                        gap,
                        args.batch,
                    )?;
                    totals[i].0 += bed.kit.sent()? - sent;
                    totals[i].1 += bed.kit.received()? - received;
                    anyhow::Ok(sample)
                };
                let mut search = Search::new(args.loss / 100.0);
                search.start(trial(0)?);
                while let Some(rate) = search.next_rate() {
                    let sample = trial(run::gap_ns(rate))?;
                    search.record(rate, sample);
                }
                let outcome = search.outcome().context("search without an outcome")?;
                found[i].push((
                    outcome.throughput,
                    outcome.overload,
                    outcome.generator_limited,
                ));
            }
        }
        for ((pair, rounds), (sent, received)) in Pair::ALL.into_iter().zip(found).zip(totals) {
            let mut points: Vec<f64> = rounds
                .iter()
                .filter_map(|(t, _, _)| t.map(|t| t.received / 1e6))
                .collect();
            let mut overload: Vec<f64> = rounds.iter().map(|(_, o, _)| o.received / 1e6).collect();
            let complete = points.len() == rounds.len();
            rows.push(TunnelRow {
                pair,
                size: *size,
                throughput_min_mpps: complete
                    .then(|| points.iter().copied().fold(f64::INFINITY, f64::min)),
                throughput_max_mpps: complete.then(|| points.iter().copied().fold(0.0, f64::max)),
                throughput_mpps: complete.then(|| run::median(&mut points)),
                overload_mpps: run::median(&mut overload),
                generator_limited: rounds.iter().any(|(_, _, g)| *g),
                frames_sent: sent,
                frames_received: received,
            });
        }
    }

    let after_at = SystemTime::now();
    let mut counters = Vec::new();
    for ((lab, hypervisor, dir), before) in counted.iter().zip(before) {
        let after = tunnel_counters(dir, after_at)?;
        counters.push(TunnelCounters {
            lab: *lab,
            hypervisor,
            counters: after
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.saturating_sub(before.get(k).copied().unwrap_or(0)),
                    )
                })
                .collect(),
        });
    }
    let two_hosts = args
        .sizes
        .iter()
        .filter_map(|size| two_hosts(&rows, *size))
        .collect();
    Ok(TunnelReport {
        load_before,
        load_after: run::loadavg(),
        tuning: tuning.describe(),
        rounds: args.rounds,
        window_ms: args.window_ms,
        hv2_csum: csum,
        rows,
        two_hosts,
        counters,
    })
}

/// The derived two-host figure at `size`: the slower side alone, against same chassis.
fn two_hosts(rows: &[TunnelRow], size: usize) -> Option<TwoHosts> {
    let row = |pair: Pair| rows.iter().find(|r| r.pair == pair && r.size == size);
    let (encap, decap, local) = (
        row(Pair::EncapOnly)?,
        row(Pair::DecapOnly)?,
        row(Pair::OvnestLocal)?,
    );
    let slower = match (encap.throughput_mpps, decap.throughput_mpps) {
        (Some(e), Some(d)) if d < e => decap,
        (Some(_), Some(_)) => encap,
        _ => return None,
    };
    let throughput = slower.throughput_mpps?;
    // The datapath's share of a frame's time on the generator's core.
    let floor = row(Pair::Floor).and_then(|f| f.throughput_mpps);
    let cost = |r: &TunnelRow| match (r.throughput_mpps, floor) {
        (Some(t), Some(f)) if t > 0.0 && f > t => Some(1e3 / t - 1e3 / f),
        _ => None,
    };
    let (local_ns, encap_ns, decap_ns) = (cost(local), cost(encap), cost(decap));
    Some(TwoHosts {
        size,
        slower_side: slower.pair,
        throughput_mpps: throughput,
        overload_mpps: encap.overload_mpps.min(decap.overload_mpps),
        ratio_to_local: local
            .throughput_mpps
            .filter(|l| *l > 0.0)
            .map(|l| throughput / l),
        overload_ratio_to_local: (local.overload_mpps > 0.0)
            .then(|| encap.overload_mpps.min(decap.overload_mpps) / local.overload_mpps),
        generator_limited: encap.generator_limited
            || decap.generator_limited
            || local.generator_limited,
        local_ns,
        encap_ns,
        decap_ns,
        cost_ratio_to_local: match (local_ns, encap_ns, decap_ns) {
            (Some(l), Some(e), Some(d)) if e.max(d) > 0.0 => Some(l / e.max(d)),
            _ => None,
        },
    })
}

/// The table `ovnest bench --tunnel` prints.
pub fn print(report: &TunnelReport) {
    println!(
        "load before {} / after {}; {}; {} rounds of {} ms windows; hv2's Encap csum={}",
        report.load_before,
        report.load_after,
        report.tuning,
        report.rounds,
        report.window_ms,
        report.hv2_csum
    );
    println!(
        "{:<34} {:>6} {:>8} {:>8} {:>8} {:>9}  {:>6} {:>8} {:>9}  {:>12}",
        "c51 -> vm1",
        "bytes",
        "Mpps",
        "min",
        "max",
        "overload",
        "x OVS",
        "x local",
        "ovl x loc",
        "overload xOVS"
    );
    let fmt = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.4}"));
    let find = |pair: Pair, size: usize| {
        report
            .rows
            .iter()
            .find(|r| r.pair == pair && r.size == size)
    };
    for row in &report.rows {
        let ratio = |other: Option<f64>| match (row.throughput_mpps, other) {
            (Some(a), Some(b)) if b > 0.0 && !row.generator_limited => format!("{:.2}", a / b),
            _ => "-".to_owned(),
        };
        // Against the same chassis, also where the generator set the figures (every
        // ovnest row, when each frame's whole path shares the generator's core): marked.
        let local = find(Pair::OvnestLocal, row.size);
        let marked = |a: Option<f64>, b: Option<f64>| match (a, b, local) {
            (Some(a), Some(b), Some(l)) if b > 0.0 => format!(
                "{:.2}{}",
                a / b,
                if row.generator_limited || l.generator_limited {
                    "*"
                } else {
                    ""
                }
            ),
            _ => "-".to_owned(),
        };
        let overload_ratio = find(Pair::OvsOvs, row.size)
            .filter(|r| r.overload_mpps > 0.0)
            .map_or("-".to_owned(), |r| {
                format!("{:.2}", row.overload_mpps / r.overload_mpps)
            });
        println!(
            "{:<34} {:>6} {:>8} {:>8} {:>8} {:>9.4}  {:>6} {:>8} {:>9}  {:>12}{}",
            row.pair.label(),
            row.size,
            fmt(row.throughput_mpps),
            fmt(row.throughput_min_mpps),
            fmt(row.throughput_max_mpps),
            row.overload_mpps,
            ratio(find(Pair::OvsOvs, row.size).and_then(|r| r.throughput_mpps)),
            marked(row.throughput_mpps, local.and_then(|l| l.throughput_mpps)),
            marked(Some(row.overload_mpps), local.map(|l| l.overload_mpps)),
            overload_ratio,
            if row.generator_limited {
                "  (generator-limited)"
            } else {
                ""
            }
        );
        if row.pair == Pair::DecapOnly
            && let Some(t) = report.two_hosts.iter().find(|t| t.size == row.size)
        {
            println!(
                "{:<34} {:>6} {:>8} {:>8} {:>8} {:>9.4}  {:>6} {:>8} {:>9}  {:>12}  (derived: the slower side alone, {})",
                "  two hosts (derived)",
                t.size,
                format!("{:.4}", t.throughput_mpps),
                "",
                "",
                t.overload_mpps,
                "",
                t.ratio_to_local.map_or("-".to_owned(), |r| format!(
                    "{r:.2}{}",
                    if t.generator_limited { "*" } else { "" }
                )),
                t.overload_ratio_to_local
                    .map_or("-".to_owned(), |r| format!(
                        "{r:.2}{}",
                        if t.generator_limited { "*" } else { "" }
                    )),
                "",
                match t.slower_side {
                    Pair::DecapOnly => "decap",
                    _ => "encap",
                }
            );
            let ns = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.0} ns"));
            println!(
                "  datapath per frame above the floor (derived): same chassis {}, encap {}, decap {}; two hosts x local {}",
                ns(t.local_ns),
                ns(t.encap_ns),
                ns(t.decap_ns),
                t.cost_ratio_to_local
                    .map_or("-".to_owned(), |r| format!("{r:.2}"))
            );
        }
    }
    println!(
        "*: a figure in the ratio is generator-limited (lost <= the tolerance even unpaced: the generator's core, which here also runs every XDP pass of the frame, set it)"
    );
    for row in &report.rows {
        println!(
            "frames over the trials: {:<34} {:>6} B  sent {:>11}  received {:>11}",
            row.pair.label(),
            row.size,
            row.frames_sent,
            row.frames_received
        );
    }
    for c in &report.counters {
        let all: Vec<String> = c
            .counters
            .iter()
            .filter(|(_, v)| **v > 0)
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        println!(
            "tunnel counters over the run, {} lab, {}: {}",
            c.lab.label().trim(),
            c.hypervisor,
            if all.is_empty() {
                "all zero".to_owned()
            } else {
                all.join(" ")
            }
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(pair: Pair, mpps: f64, generator_limited: bool) -> TunnelRow {
        TunnelRow {
            pair,
            size: 64,
            throughput_mpps: Some(mpps),
            throughput_min_mpps: Some(mpps),
            throughput_max_mpps: Some(mpps),
            overload_mpps: mpps,
            generator_limited,
            frames_sent: 0,
            frames_received: 0,
        }
    }

    #[test]
    fn two_hosts_is_the_slower_side_and_its_cost_above_the_floor() {
        // 4 Mpps floor = 250 ns; same chassis 2 Mpps = 500 ns (250 above the floor);
        // encap 1.6 Mpps = 625 ns (375 above); decap 2.5 Mpps = 400 ns (150 above).
        let rows = [
            row(Pair::EncapOnly, 1.6, true),
            row(Pair::DecapOnly, 2.5, false),
            row(Pair::OvnestLocal, 2.0, false),
            row(Pair::Floor, 4.0, false),
        ];
        let t = two_hosts(&rows, 64).unwrap();
        assert_eq!(t.slower_side, Pair::EncapOnly);
        assert_eq!(t.throughput_mpps, 1.6);
        assert!((t.ratio_to_local.unwrap() - 0.8).abs() < 1e-9);
        assert!(t.generator_limited, "encap's figure was generator-limited");
        assert!((t.local_ns.unwrap() - 250.0).abs() < 1e-6);
        assert!((t.encap_ns.unwrap() - 375.0).abs() < 1e-6);
        assert!((t.decap_ns.unwrap() - 150.0).abs() < 1e-6);
        assert!((t.cost_ratio_to_local.unwrap() - 250.0 / 375.0).abs() < 1e-9);
    }

    #[test]
    fn no_two_host_figure_without_both_sides() {
        let mut decap = row(Pair::DecapOnly, 2.5, false);
        decap.throughput_mpps = None;
        let rows = [
            row(Pair::EncapOnly, 1.6, false),
            decap,
            row(Pair::OvnestLocal, 2.0, false),
        ];
        assert!(two_hosts(&rows, 64).is_none());
        // Without a floor the ratio stands, the costs do not.
        let rows = [
            row(Pair::EncapOnly, 1.6, false),
            row(Pair::DecapOnly, 1.2, false),
            row(Pair::OvnestLocal, 2.0, false),
        ];
        let t = two_hosts(&rows, 64).unwrap();
        assert_eq!(t.slower_side, Pair::DecapOnly);
        assert!(t.local_ns.is_none() && t.cost_ratio_to_local.is_none());
    }
}
