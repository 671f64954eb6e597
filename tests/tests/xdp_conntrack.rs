//! Established connections in the XDP fast path (`ovnest_datapath::conntrack`, the `CT`
//! mirror) against the userspace pipeline, through the real program with
//! BPF_PROG_TEST_RUN, on topologies real ovn-northd compiled:
//! - equal: every frame of TCP conversations through c51's security group
//!   (`allow-related`) and through a load balancer on dmz goes through XDP, up to the
//!   userspace pipeline exactly as XDP hands it over (its connection table shared
//!   across frames), which decides, delivers and installs; then through XDP again. A
//!   frame userspace installed must be carried out from the cache with the same bytes
//!   to the same port (or both drop); the handshake's frames change their connection
//!   and are never installed, an established connection's frames are, and their
//!   repeats never leave XDP;
//! - coherent: a connection that changes (a FIN) voids the decisions made with it in
//!   the same generation; the security group replaced by a drop under an established
//!   connection stops its next frame once the generation moves (what the agent does
//!   before it acknowledges `--wait=hv`).

use std::{collections::BTreeMap, sync::Arc};

use ovnest_common::{CacheCounter, Counter, PortKey, cache::ACTION_OUTPUT, ct::CtCounter};
use ovnest_datapath::{
    FastPath, LogicalPort, TableSet,
    cache::{CacheMaps, CacheStats},
    conntrack::Shared,
    fastpath::Decisions,
    frames::{Frame, checksum, ipv4},
    pipeline::{
        Desc, FramePool, LogicalOutcome, NoServices, Pipeline, Snapshot, TxBatches, Umem, Verdict,
    },
};
use ovnest_tests::{
    fixtures::{Iface, frames::hex, lab},
    hypervisor::Hypervisor,
    ovn::OvnCentral,
    privilege::{require_root, require_tools},
    southbound,
};

const TOOLS: &[&str] = &["ovsdb-server", "ovn-northd", "ovn-nbctl"];
const XDP_DROP: u32 = 1;
const XDP_REDIRECT: u32 = 4;
const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
const PSH: u8 = 0x08;
const FIN: u8 = 0x01;

/// The seed lab's lr0 port on dmz.
const ROUTER_MAC: [u8; 6] = [0x02, 0xac, 0x10, 0xff, 0x01, 0x29];
const VIP: [u8; 4] = [172, 16, 255, 140];

fn mac(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The seed's dmz with its ports, in real OVN.
fn seed() -> OvnCentral {
    let ovn = OvnCentral::start();
    ovn.seed_dmz_and_router();
    for port in lab::PORTS.iter().filter(|p| p.name != "dmz-lr0") {
        let ip = std::net::Ipv4Addr::from(port.ipv4);
        let addresses = format!("{} {ip}", mac(port.mac));
        match port.place {
            lab::Place::Child { tag, .. } => {
                ovn.nbctl(&["lsp-add", "dmz", port.name, "dmz-vm5", &tag.to_string()])
            }
            _ => ovn.nbctl(&["lsp-add", "dmz", port.name]),
        };
        ovn.nbctl(&["lsp-set-addresses", port.name, &addresses]);
        ovn.nbctl(&["lsp-set-port-security", port.name, &addresses]);
    }
    ovn
}

/// The Southbound compiled as the agent compiles it: port tunnel keys and the pipeline.
fn compile(ovn: &OvnCentral) -> (BTreeMap<String, PortKey>, Arc<ovnest_logical::Pipeline>) {
    let db = southbound::fetch(ovn);
    (
        southbound::port_keys(&db),
        southbound::compile_lab(&db, &[]),
    )
}

/// The hypervisor's namespace, the program deciding from its cache, and the datapath's
/// one connection table.
struct Bed {
    hv: Hypervisor,
    fast_path: FastPath,
    maps: CacheMaps,
    stats: Arc<CacheStats>,
    ct: Arc<Shared>,
    ports: Vec<LogicalPort>,
    generation: u64,
    snap: Option<Snapshot>,
}

impl Bed {
    fn new(keys: &BTreeMap<String, PortKey>) -> Bed {
        let hv = Hypervisor::alone();
        let mut ports = lab::logical_ports(&hv.wiring);
        for p in &mut ports {
            p.key = keys[&p.name];
        }
        let mut fast_path = FastPath::load_decisions(Decisions::Cached { entries: 4096 })
            .expect("load the XDP program with its decision cache");
        {
            let _inside = hv.ns.enter();
            let (tables, conflicts) = TableSet::build(&ports);
            assert!(conflicts.is_empty(), "{conflicts:?}");
            fast_path.apply(&tables).expect("apply lab tables");
        }
        let stats = Arc::new(CacheStats::default());
        let maps = fast_path.cache_maps(stats.clone()).expect("cache maps");
        Bed {
            hv,
            fast_path,
            maps,
            stats,
            ct: Arc::new(Shared::default()),
            ports,
            generation: 0,
            snap: None,
        }
    }

    /// New tables: a new generation, every entry written so far stale (the agent's
    /// switch before it acknowledges `nb_cfg`).
    fn publish(&mut self, pipeline: Arc<ovnest_logical::Pipeline>) {
        self.generation += 1;
        self.snap = Some(Snapshot::build(self.generation, &self.ports).with_logical(pipeline));
        self.fast_path
            .set_cache_generation(self.generation)
            .expect("set generation");
    }

    fn ct_counter(&self, c: CtCounter) -> u64 {
        let _inside = self.hv.ns.enter();
        self.fast_path.ct_counters().expect("CT_STATS")[c as usize]
    }

    /// One BPF_PROG_TEST_RUN.
    fn xdp(&self, ingress: u32, frame: &[u8]) -> XdpRun {
        let _inside = self.hv.ns.enter();
        let before = (
            self.fast_path.cache_counters().unwrap(),
            self.fast_path.counters().unwrap(),
        );
        let mut out = vec![0u8; frame.len() + 64];
        let (result, meta) = self
            .fast_path
            .test_run_with_meta(ingress, frame, &mut out)
            .expect("test_run");
        out.truncate(result.data_size_out as usize);
        let after = (
            self.fast_path.cache_counters().unwrap(),
            self.fast_path.counters().unwrap(),
        );
        XdpRun {
            action: result.return_value,
            meta,
            out,
            lookup: CacheCounter::ALL
                .into_iter()
                .find(|c| after.0.get(*c) != before.0.get(*c)),
            counters: after
                .1
                .since(&before.1)
                .iter()
                .filter(|(_, n)| *n != 0)
                .map(|(c, _)| c)
                .collect(),
        }
    }

    /// The frame through the userspace pipeline as XDP handed it over (`meta` bytes of
    /// metadata in front), with the bed's connection table and cache writer.
    fn userspace(&self, ingress: u32, input: &[u8], meta: usize) -> UserspaceRun {
        const CHUNK: u32 = 2048;
        const CHUNKS: usize = 16;
        const HEADROOM: usize = 256;
        let snap = self.snap.as_ref().expect("published");
        let mut area = vec![0u8; CHUNKS * CHUNK as usize];
        let umem = Umem::new(&mut area, CHUNK).unwrap();
        let mut pool = FramePool::with_capacity(CHUNKS, HEADROOM as u32);
        for c in 1..CHUNKS {
            pool.give((c * CHUNK as usize) as u64);
        }
        let mut tx = TxBatches::new(64);
        tx.prepare(snap.devices().len(), |_| true, |_| {});
        let mut p = Pipeline::new(umem, pool, tx, NoServices);
        p.cache = Some(self.maps.writer().expect("cache writer"));
        p.conntrack = self.ct.clone();
        let len = input.len() - meta;
        p.umem.as_mut_slice()[HEADROOM - meta..HEADROOM + len].copy_from_slice(input);
        let before = self.stats.read();
        p.process_batch(snap, ingress, &[Desc::new(HEADROOM as u64, len as u32)]);
        let after = self.stats.read();
        let verdict = Verdict::all()
            .find(|v| p.counters.get(*v) == 1)
            .expect("a verdict");
        let mut descs = Vec::new();
        p.tx.drain_all(|device, d| descs.push((snap.devices()[device as usize].ifindex, d)));
        let area = p.umem.as_mut_slice();
        let out = descs
            .iter()
            .map(|(i, d)| {
                (
                    *i,
                    area[d.addr as usize..(d.addr + d.len as u64) as usize].to_vec(),
                )
            })
            .collect();
        UserspaceRun {
            verdict,
            out,
            installed: after.installs + after.replaced > before.installs + before.replaced,
        }
    }
}

#[derive(Debug)]
struct XdpRun {
    action: u32,
    meta: usize,
    out: Vec<u8>,
    lookup: Option<CacheCounter>,
    counters: Vec<Counter>,
}

impl XdpRun {
    fn frame(&self) -> &[u8] {
        &self.out[self.meta.min(self.out.len())..]
    }
}

#[derive(Debug)]
struct UserspaceRun {
    verdict: Verdict,
    out: Vec<(u32, Vec<u8>)>,
    installed: bool,
}

/// What became of one frame.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Fate {
    /// Carried out in XDP from the cache on its first pass.
    Hit(Option<(u32, Vec<u8>)>),
    /// Decided in userspace (delivered to `out`, or dropped when `None`); `installed`:
    /// the decision went into the cache, and XDP carried out the same on the next pass.
    Up {
        out: Option<(u32, Vec<u8>)>,
        installed: bool,
    },
}

impl Fate {
    fn out(&self) -> Option<&(u32, Vec<u8>)> {
        match self {
            Fate::Hit(o) | Fate::Up { out: o, .. } => o.as_ref(),
        }
    }
}

/// A frame from lab port `from` (tagged when a container).
struct Sender {
    mac: [u8; 6],
    ipv4: [u8; 4],
    tag: Option<u16>,
    iface: Iface,
}

fn sender(name: &str) -> Sender {
    let p = lab::port(name);
    let (iface, tag) = match p.place {
        lab::Place::Vif(i) => (i, None),
        lab::Place::Child { parent, tag } => (parent, Some(tag)),
        lab::Place::Remote => panic!("{name} is remote"),
    };
    Sender {
        mac: p.mac,
        ipv4: p.ipv4,
        tag,
        iface,
    }
}

/// An Ethernet/IPv4/TCP frame from `from` to `dst` through the L2 next hop `dst_mac`.
fn tcp(
    from: &str,
    dst_mac: [u8; 6],
    dst: [u8; 4],
    ports: (u16, u16),
    flags: u8,
    payload: &[u8],
) -> Vec<u8> {
    let a = sender(from);
    let mut l4 = vec![0u8; 20];
    l4[0..2].copy_from_slice(&ports.0.to_be_bytes());
    l4[2..4].copy_from_slice(&ports.1.to_be_bytes());
    l4[4..8].copy_from_slice(&1000u32.to_be_bytes());
    l4[12] = 5 << 4;
    l4[13] = flags;
    l4[14..16].copy_from_slice(&64240u16.to_be_bytes());
    l4.extend_from_slice(payload);
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(&a.ipv4);
    pseudo.extend_from_slice(&dst);
    pseudo.extend_from_slice(&[0, 6]);
    pseudo.extend_from_slice(&(l4.len() as u16).to_be_bytes());
    pseudo.extend_from_slice(&l4);
    let sum = checksum(&pseudo);
    l4[16..18].copy_from_slice(&sum.to_be_bytes());
    let mut f = Frame::eth(dst_mac, a.mac);
    if let Some(tag) = a.tag {
        f = f.vlan(tag);
    }
    f.ethertype(0x0800, &ipv4(6, a.ipv4, dst, &l4)).build()
}

/// A TCP frame between two lab ports on dmz.
fn tcp_lab(from: &str, to: &str, ports: (u16, u16), flags: u8, payload: &[u8]) -> Vec<u8> {
    let b = lab::port(to);
    tcp(from, b.mac, b.ipv4, ports, flags, payload)
}

/// The frame through XDP; when it goes up, through userspace and XDP again: a decision
/// userspace installed must be what XDP then carries out, bytes and port; one it did
/// not install must miss again.
fn step(bed: &Bed, from: &str, frame: &[u8]) -> Result<Fate, String> {
    let ingress = bed.hv.wiring.ifindex(sender(from).iface);
    let context = || format!("{from}'s frame {}", hex(frame));
    let cold = bed.xdp(ingress, frame);
    let xdp_out = |run: &XdpRun| -> Result<Option<(u32, Vec<u8>)>, String> {
        match run.action {
            XDP_DROP => Ok(None),
            XDP_REDIRECT => {
                // The target port is the entry's, checked against userspace's below.
                if !matches!(
                    run.counters.as_slice(),
                    [Counter::Redirected | Counter::Hairpinned]
                ) {
                    return Err(format!("XDP redirected counting {:?}", run.counters));
                }
                Ok(Some((0, run.frame().to_vec())))
            }
            a => Err(format!("XDP action {a}")),
        }
    };
    match cold.lookup {
        Some(CacheCounter::Hit) => return Ok(Fate::Hit(xdp_out(&cold)?)),
        Some(CacheCounter::Miss | CacheCounter::Stale) => {}
        other => return Err(format!("XDP counted {other:?}: {cold:?}; {}", context())),
    }
    if cold.counters != [Counter::DropNoUserspace] || cold.meta == 0 {
        return Err(format!("a miss not handed up: {cold:?}; {}", context()));
    }
    let us = bed.userspace(ingress, &cold.out, cold.meta);
    let out = match (us.verdict, us.out.as_slice()) {
        (Verdict::Logical(LogicalOutcome::Delivered), [one]) => Some(one.clone()),
        (Verdict::Logical(LogicalOutcome::Dropped), []) => None,
        other => return Err(format!("userspace {other:?}; {}", context())),
    };
    let warm = bed.xdp(ingress, frame);
    if !us.installed {
        return match warm.lookup {
            Some(CacheCounter::Miss | CacheCounter::Stale) => Ok(Fate::Up {
                out,
                installed: false,
            }),
            _ => Err(format!(
                "not installed, yet XDP found {warm:?}; {}",
                context()
            )),
        };
    }
    if warm.lookup != Some(CacheCounter::Hit) {
        return Err(format!(
            "installed, yet XDP missed: {warm:?}; {}",
            context()
        ));
    }
    let from_cache = xdp_out(&warm)?;
    match (&out, &from_cache) {
        (None, None) => {}
        (Some((ifindex, bytes)), Some((_, xdp_bytes))) if bytes == xdp_bytes => {
            // The port: the redirect's target is the entry's.
            let key = ovnest_datapath::cache::key::of_frame(
                &untagged(frame),
                bed.ports
                    .iter()
                    .find(|p| p.name == from)
                    .expect("lab port")
                    .key,
            )
            .ok_or("no key")?;
            let entry = {
                let _inside = bed.hv.ns.enter();
                bed.fast_path.cache_entry(&key).unwrap().ok_or("no entry")?
            };
            if entry.kind != ACTION_OUTPUT || entry.out_ifindex != *ifindex {
                return Err(format!(
                    "userspace sent to {ifindex}, the entry to {}; {}",
                    entry.out_ifindex,
                    context()
                ));
            }
        }
        _ => {
            return Err(format!(
                "userspace {}, XDP from the cache {}; {}",
                out.as_ref()
                    .map_or("dropped".into(), |(i, b)| format!("to {i}: {}", hex(b))),
                from_cache
                    .as_ref()
                    .map_or("dropped".into(), |(_, b)| hex(b)),
                context()
            ));
        }
    }
    Ok(Fate::Up {
        out,
        installed: true,
    })
}

/// The frame as the pipeline keys it: its tag (if any) taken off.
fn untagged(frame: &[u8]) -> Vec<u8> {
    if frame[12..14] != [0x81, 0x00] {
        return frame.to_vec();
    }
    let mut f = frame[..12].to_vec();
    f.extend_from_slice(&frame[16..]);
    f
}

fn must(bed: &Bed, from: &str, frame: &[u8]) -> Fate {
    step(bed, from, frame).unwrap_or_else(|e| panic!("{e}"))
}

fn up(out: bool, installed: bool) -> impl Fn(&Fate) -> bool {
    move |f| matches!(f, Fate::Up { out: o, installed: i } if o.is_some() == out && *i == installed)
}

#[test]
fn established_connections_are_carried_in_xdp_as_userspace_decides() {
    if !require_root("xdp_conntrack") || !require_tools("xdp_conntrack", TOOLS) {
        return;
    }
    let ovn = seed();
    // c51's security group: what it opens, nothing opened to it; c52's keeps dmz
    // stateful when c51's changes.
    for (dir, prio, m, verdict) in [
        (
            "from-lport",
            "1002",
            "inport == \"dmz-c51\" && ip4",
            "allow-related",
        ),
        ("to-lport", "1001", "outport == \"dmz-c51\" && ip4", "drop"),
        (
            "from-lport",
            "1002",
            "inport == \"dmz-c52\" && ip4",
            "allow-related",
        ),
    ] {
        ovn.nbctl(&["acl-add", "dmz", dir, prio, m, verdict]);
    }
    let (keys, pipeline) = compile(&ovn);
    let mut bed = Bed::new(&keys);
    bed.publish(pipeline);
    let (vm1, vm5) = (
        bed.hv.wiring.ifindex(Iface::Vm1),
        bed.hv.wiring.ifindex(Iface::Vm5),
    );
    let c51 = ("dmz-c51", (40000, 80));
    let vm1_to_c51 =
        |flags, payload: &[u8]| tcp_lab("dmz-vm1", "dmz-c51", (80, 40000), flags, payload);
    let c51_to_vm1 = |flags, payload: &[u8]| tcp_lab(c51.0, "dmz-vm1", c51.1, flags, payload);

    // The handshake: each frame changes its connection, none is installed.
    for (from, frame, to) in [
        (c51.0, c51_to_vm1(SYN, b""), vm1),
        ("dmz-vm1", vm1_to_c51(SYN | ACK, b""), vm5),
        (c51.0, c51_to_vm1(ACK, b""), vm1),
    ] {
        let fate = must(&bed, from, &frame);
        assert!(up(true, false)(&fate), "{from}'s handshake frame: {fate:?}");
        assert_eq!(fate.out().map(|o| o.0), Some(to));
    }
    // Established: each direction's next frame is decided once, installed, and XDP
    // carries it out as userspace did; its repeats never go up.
    let est_before = bed.ct_counter(CtCounter::EstHit);
    for (from, frame, to) in [
        (c51.0, c51_to_vm1(ACK, b""), vm1),
        ("dmz-vm1", vm1_to_c51(ACK, b""), vm5),
        (c51.0, c51_to_vm1(PSH | ACK, b"hello vm1"), vm1),
        (
            "dmz-vm1",
            vm1_to_c51(PSH | ACK, b"hello c51, how are you"),
            vm5,
        ),
    ] {
        let fate = must(&bed, from, &frame);
        assert!(
            up(true, true)(&fate),
            "{from}'s established frame: {fate:?}"
        );
        assert_eq!(fate.out().map(|o| o.0), Some(to));
        for _ in 0..3 {
            let again = must(&bed, from, &frame);
            assert!(
                matches!(&again, Fate::Hit(Some((_, b))) if Some(b) == fate.out().map(|o| &o.1)),
                "{from}'s repeat: {again:?}"
            );
        }
    }
    // One verification pass and three repeats of four frames, each through XDP's
    // conntrack check.
    assert_eq!(bed.ct_counter(CtCounter::EstHit) - est_before, 16);
    {
        let table = bed.ct.lock(bed.ct.now());
        assert!(table.stats.mirrored >= 2, "{:?}", table.stats);
    }
    // vm1 opening a connection to c51: dropped in userspace, never cached.
    for _ in 0..2 {
        let fate = must(
            &bed,
            "dmz-vm1",
            &tcp_lab("dmz-vm1", "dmz-c51", (41000, 22), SYN, b""),
        );
        assert!(up(false, false)(&fate), "vm1's SYN: {fate:?}");
    }
    // A second connection of c51 whose FIN changes it: the decisions made for its
    // established frames in this generation stop holding at once.
    let c51b = (45000, 80);
    for (from, frame) in [
        (c51.0, tcp_lab(c51.0, "dmz-vm1", c51b, SYN, b"")),
        (
            "dmz-vm1",
            tcp_lab("dmz-vm1", c51.0, (80, 45000), SYN | ACK, b""),
        ),
        (c51.0, tcp_lab(c51.0, "dmz-vm1", c51b, ACK, b"")),
    ] {
        must(&bed, from, &frame);
    }
    let reply = tcp_lab("dmz-vm1", c51.0, (80, 45000), ACK, b"");
    assert!(up(true, true)(&must(&bed, "dmz-vm1", &reply)));
    assert!(matches!(must(&bed, "dmz-vm1", &reply), Fate::Hit(Some(_))));
    let fin = must(
        &bed,
        c51.0,
        &tcp_lab(c51.0, "dmz-vm1", c51b, FIN | ACK, b""),
    );
    assert!(up(true, false)(&fin), "c51's FIN: {fin:?}");
    let gone_before = bed.ct_counter(CtCounter::Gone);
    let after_fin = must(&bed, "dmz-vm1", &reply);
    assert!(
        up(true, false)(&after_fin),
        "vm1's ACK after c51's FIN goes up (the connection is closing): {after_fin:?}"
    );
    assert_eq!(
        bed.ct_counter(CtCounter::Gone) - gone_before,
        2,
        "cold and warm passes"
    );

    // The security group changes under the established connection: c51 may no longer
    // open anything. Once the generation moves, the next frame is dropped both ways.
    ovn.nbctl(&[
        "acl-del",
        "dmz",
        "from-lport",
        "1002",
        "inport == \"dmz-c51\" && ip4",
    ]);
    ovn.nbctl(&[
        "acl-add",
        "dmz",
        "from-lport",
        "1002",
        "inport == \"dmz-c51\" && ip4",
        "drop",
    ]);
    let (_, pipeline) = compile(&ovn);
    bed.publish(pipeline);
    let ack = c51_to_vm1(ACK, b"");
    let first = must(&bed, c51.0, &ack);
    assert!(
        up(false, false)(&first),
        "c51's ACK after the change: dropped, ct_mark.blocked committed: {first:?}"
    );
    // The blocked connection is stable again: its drops are cached with it.
    for (from, frame) in [(c51.0, ack.clone()), ("dmz-vm1", vm1_to_c51(ACK, b""))] {
        let fate = must(&bed, from, &frame);
        assert!(
            matches!(fate, Fate::Up { out: None, .. }),
            "{from}'s frame after the change: {fate:?}"
        );
        assert_eq!(must(&bed, from, &frame), Fate::Hit(None), "{from}'s repeat");
    }
}

#[test]
fn load_balanced_connections_are_carried_in_xdp_with_their_nat() {
    if !require_root("xdp_conntrack_lb") || !require_tools("xdp_conntrack_lb", TOOLS) {
        return;
    }
    let ovn = seed();
    ovn.nbctl(&[
        "lb-add",
        "lb0",
        "172.16.255.140:80",
        "172.16.255.133:8080,172.16.255.134:8080",
        "tcp",
    ]);
    ovn.nbctl(&["ls-lb-add", "dmz", "lb0"]);
    let (keys, pipeline) = compile(&ovn);
    let mut bed = Bed::new(&keys);
    bed.publish(pipeline);
    let vm1 = lab::port("dmz-vm1");
    let mut cached = 0;
    for sport in 40000..40016u16 {
        // vm1 opens a connection to the VIP; the backend is c51 or c52 (by its tag).
        let syn = must(
            &bed,
            "dmz-vm1",
            &tcp("dmz-vm1", ROUTER_MAC, VIP, (sport, 80), SYN, b""),
        );
        let Some((_, delivered)) = syn.out() else {
            panic!("SYN from {sport}: {syn:?}")
        };
        let tag = u16::from_be_bytes([delivered[14], delivered[15]]) & 0xfff;
        let backend = match tag {
            51 => "dmz-c51",
            52 => "dmz-c52",
            t => panic!("delivered on tag {t}"),
        };
        let reply = |flags, payload: &[u8]| {
            tcp(backend, ROUTER_MAC, vm1.ipv4, (8080, sport), flags, payload)
        };
        let to_vip =
            |flags, payload: &[u8]| tcp("dmz-vm1", ROUTER_MAC, VIP, (sport, 80), flags, payload);
        must(&bed, backend, &reply(SYN | ACK, b""));
        must(&bed, "dmz-vm1", &to_vip(ACK, b""));
        for (from, frame) in [
            ("dmz-vm1", to_vip(PSH | ACK, b"GET /")),
            (backend, reply(PSH | ACK, b"200 OK")),
        ] {
            let fate = must(&bed, from, &frame);
            let Fate::Up {
                out: Some((_, bytes)),
                installed: true,
            } = &fate
            else {
                panic!("{from}'s established frame from {sport}: {fate:?}")
            };
            // NAT as userspace made it: to the backend, or back from the VIP.
            let l3 = if bytes[12..14] == [0x81, 0] { 18 } else { 14 };
            if from == "dmz-vm1" {
                assert_eq!(bytes[l3 + 16..l3 + 20], lab::port(backend).ipv4);
            } else {
                assert_eq!(bytes[l3 + 12..l3 + 16], VIP);
            }
            assert!(matches!(must(&bed, from, &frame), Fate::Hit(Some(_))));
            cached += 1;
        }
    }
    assert_eq!(cached, 32);
}
