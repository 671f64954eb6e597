//! Load-balancer health checks on real OVN: the seed's `dmz` with load balancer `lb0`
//! (VIP 172.16.255.140:80, two backends on 8080) and a health check typed as an
//! operator types it (`Load_Balancer_Health_Check`, `ip_port_mappings`). Real northd
//! creates the Service_Monitor rows and the `handle_svc_check(inport)` flow; the agent's
//! Southbound replica picks the rows of backends bound here; the datapath's pinctrl
//! probes them; the agent's pinctrl writer writes the status into the real rows; and
//! northd then drops the offline backend from `ct_lb_mark`.
//! - TCP through one `Pipeline`, its timer driven with explicit instants (never by
//!   sleeping): containers c51/c52 (tags 51/52), SYN-ACK, silence, RST.
//! - UDP the same way: port unreachable, silence.
//! - The whole way over AF_XDP with the poll thread's own timer, to real TCP stacks.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use ovnest::{
    pinctrl::{self as agent_pinctrl, svc_monitor},
    sb::{self, ServiceMonitor, Southbound},
};
use ovnest_datapath::{
    FastPath, LogicalPort, TableSet,
    afxdp::{AfXdp, AfXdpConfig},
    fastpath::{Decisions, Options},
    frames::{Frame, checksum, ipv4},
    pinctrl::{Pinctrl, SbQueue, SbRequest, svc_monitor::Status},
    pipeline::{
        Desc, FramePool, LogicalOutcome, NoServices, Pipeline, SharedCounters, Snapshot,
        SnapshotCell, TxBatches, Umem, Verdict,
    },
};
use ovnest_tests::{
    fixtures::lab::{self, Iface, Wiring},
    hypervisor::Hypervisor,
    netns::NetNs,
    ovn::OvnCentral,
    privilege, southbound, wait,
};

const TOOLS: &[&str] = &[
    "ovsdb-server",
    "ovsdb-tool",
    "ovn-northd",
    "ovn-nbctl",
    "ovn-sbctl",
];
const WIRING: Wiring = Wiring {
    vm1: 11,
    vm2: 12,
    vm5: 15,
    stray: 99,
};
const CHUNK: u32 = 2048;
const CHUNKS: usize = 64;
const HEADROOM: usize = 256;
const DEADLINE: Duration = Duration::from_secs(30);

const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const ACK: u8 = 0x10;

/// The health check's source address (ip_port_mappings), answered by northd's ARP
/// responder for the service monitor MAC.
const SRC_IP: [u8; 4] = [172, 16, 255, 150];
/// Options as the operator sets them: probes every 30 s, 10 s to answer, one success
/// or failure changes the status.
const INTERVAL: Duration = Duration::from_secs(30);
const TIMEOUT: Duration = Duration::from_secs(10);

fn mac_text(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The seed's dmz with its ports, `lb0` on it (VIP 172.16.255.140:80 over `protocol`,
/// `backends` on 8080), and its health check probing every `interval` with `timeout`
/// to answer.
fn seed(
    ovn: &OvnCentral,
    backends: [&str; 2],
    protocol: &str,
    interval: Duration,
    timeout: Duration,
) {
    // This chassis first, with the features ovnest registers as ovn-controller 23.03
    // does (northd writes `ct_lb_mark` only when every chassis has
    // `ct-no-masked-label`).
    ovn.sbctl(&["chassis-add", "hv1", "geneve", "127.0.0.1"]);
    ovn.sbctl(&[
        "set",
        "Chassis",
        "hv1",
        "other_config:ct-no-masked-label=true",
        "other_config:ovn-ct-lb-related=true",
        "other_config:mac-binding-timestamp=true",
        "other_config:port-up-notif=true",
    ]);
    ovn.seed_dmz_and_router();
    for port in lab::PORTS.iter().filter(|p| p.name != "dmz-lr0") {
        let ip = std::net::Ipv4Addr::from(port.ipv4);
        let addresses = format!("{} {ip}", mac_text(port.mac));
        match port.place {
            lab::Place::Child { tag, .. } => {
                ovn.nbctl(&["lsp-add", "dmz", port.name, "dmz-vm5", &tag.to_string()])
            }
            _ => ovn.nbctl(&["lsp-add", "dmz", port.name]),
        };
        ovn.nbctl(&["lsp-set-addresses", port.name, &addresses]);
        ovn.nbctl(&["lsp-set-port-security", port.name, &addresses]);
    }
    let ips = backends.map(|b| std::net::Ipv4Addr::from(lab::port(b).ipv4));
    ovn.nbctl(&[
        "lb-add",
        "lb0",
        "172.16.255.140:80",
        &format!("{}:8080,{}:8080", ips[0], ips[1]),
        protocol,
    ]);
    ovn.nbctl(&["ls-lb-add", "dmz", "lb0"]);
    let options = [
        format!("options:interval={}", interval.as_secs()),
        format!("options:timeout={}", timeout.as_secs()),
        "options:success_count=1".into(),
        "options:failure_count=1".into(),
    ];
    let mut args = vec![
        "--id=@hc",
        "create",
        "Load_Balancer_Health_Check",
        "vip=\"172.16.255.140:80\"",
    ];
    args.extend(options.iter().map(String::as_str));
    args.extend(["--", "add", "Load_Balancer", "lb0", "health_check", "@hc"]);
    ovn.nbctl(&args);
    let mappings: Vec<String> = backends
        .iter()
        .zip(ips)
        .map(|(b, ip)| format!("ip_port_mappings:\"{ip}\"=\"{b}:172.16.255.150\""))
        .collect();
    let mut args = vec!["set", "Load_Balancer", "lb0"];
    args.extend(mappings.iter().map(String::as_str));
    ovn.nbctl(&args);
    // The backends bound here and up (northd turns the monitor of a port that is not up
    // offline).
    for port in backends {
        ovn.sbctl(&["lsp-bind", port, "hv1"]);
        ovn.sbctl(&["set", "Port_Binding", port, "up=true"]);
    }
    ovn.sync();
}

/// The datapath's view: the pipeline and the lab's ports with northd's tunnel keys.
fn compile(ovn: &OvnCentral, wiring: &Wiring, generation: u64) -> Snapshot {
    let db = southbound::fetch(ovn);
    let keys = southbound::port_keys(&db);
    let pipeline = southbound::compile_lab(&db, &[]);
    let mut ports: Vec<LogicalPort> = lab::logical_ports(wiring);
    ports.retain(|p| keys.contains_key(&p.name));
    for p in &mut ports {
        p.key = keys[&p.name];
    }
    Snapshot::build(generation, &ports).with_logical(pipeline)
}

fn pipeline<'a>(area: &'a mut [u8], snap: &Snapshot, queue: &SbQueue) -> Pipeline<'a> {
    let umem = Umem::new(area, CHUNK).expect("umem");
    let mut pool = FramePool::with_capacity(CHUNKS, HEADROOM as u32);
    for c in 0..CHUNKS {
        pool.give((c * CHUNK as usize) as u64);
    }
    let mut tx = TxBatches::new(64);
    tx.prepare(snap.devices().len(), |_| true, |_| {});
    let mut p = Pipeline::new(umem, pool, tx, NoServices);
    p.controller = Box::new(Pinctrl::with_queue(queue.clone()));
    p
}

/// A TCP segment as it went out (or as a test builds one).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Segment {
    ifindex: u32,
    tag: u16,
    eth_dst: [u8; 6],
    eth_src: [u8; 6],
    src: [u8; 4],
    dst: [u8; 4],
    ttl: u8,
    sport: u16,
    dport: u16,
    seq: u32,
    ack: u32,
    flags: u8,
    window: u16,
    checksums_ok: bool,
}

fn pseudo(src: [u8; 4], dst: [u8; 4], l4: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&src);
    v.extend_from_slice(&dst);
    v.extend_from_slice(&[0, 6]);
    v.extend_from_slice(&(l4.len() as u16).to_be_bytes());
    v.extend_from_slice(l4);
    v
}

impl Segment {
    fn read(ifindex: u32, b: &[u8]) -> Segment {
        let (tag, l3) = if b[12..14] == [0x81, 0x00] {
            (u16::from_be_bytes([b[14], b[15]]) & 0xfff, 18)
        } else {
            (0, 14)
        };
        let ip = &b[l3..];
        assert_eq!(ip[9], 6, "a TCP segment: {b:02x?}");
        let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
        let l4 = &ip[20..total];
        let src: [u8; 4] = ip[12..16].try_into().unwrap();
        let dst: [u8; 4] = ip[16..20].try_into().unwrap();
        let be16 = |o: usize| u16::from_be_bytes([l4[o], l4[o + 1]]);
        let be32 = |o: usize| u32::from_be_bytes(l4[o..o + 4].try_into().unwrap());
        Segment {
            ifindex,
            tag,
            eth_dst: b[0..6].try_into().unwrap(),
            eth_src: b[6..12].try_into().unwrap(),
            src,
            dst,
            ttl: ip[8],
            sport: be16(0),
            dport: be16(2),
            seq: be32(4),
            ack: be32(8),
            flags: l4[13],
            window: be16(14),
            checksums_ok: checksum(&ip[..20]) == 0 && checksum(&pseudo(src, dst, l4)) == 0,
        }
    }
}

/// A segment from a backend container (tagged, as its VM sends it) to the monitor.
fn from_backend(backend: &str, monitor_mac: [u8; 6], probe: &Segment, flags: u8) -> Vec<u8> {
    let b = lab::port(backend);
    let lab::Place::Child { tag, .. } = b.place else {
        panic!("{backend} is a container");
    };
    let mut l4 = vec![0u8; 20];
    l4[0..2].copy_from_slice(&probe.dport.to_be_bytes());
    l4[2..4].copy_from_slice(&probe.sport.to_be_bytes());
    l4[4..8].copy_from_slice(&7000u32.to_be_bytes());
    l4[8..12].copy_from_slice(&probe.seq.wrapping_add(1).to_be_bytes());
    l4[12] = 5 << 4;
    l4[13] = flags;
    l4[14..16].copy_from_slice(&64240u16.to_be_bytes());
    let sum = checksum(&pseudo(b.ipv4, SRC_IP, &l4));
    l4[16..18].copy_from_slice(&sum.to_be_bytes());
    Frame::eth(monitor_mac, b.mac)
        .vlan(tag)
        .ethertype(0x0800, &ipv4(6, b.ipv4, SRC_IP, &l4))
        .build()
}

/// What `p` queued for transmission, as segments.
fn drain(p: &mut Pipeline<'_>, snap: &Snapshot) -> Vec<Segment> {
    let mut out = Vec::new();
    let mut chunks = Vec::new();
    p.tx.drain_all(|device, d| {
        let bytes = &p.umem.as_mut_slice()[d.addr as usize..(d.addr + d.len as u64) as usize];
        out.push(Segment::read(
            snap.devices()[device as usize].ifindex,
            bytes,
        ));
        chunks.push(d.addr & !(u64::from(CHUNK) - 1));
    });
    for c in chunks {
        p.pool.give(c);
    }
    out
}

/// One frame from `backend`'s VM interface through `p`: its verdict and what went out.
fn send(p: &mut Pipeline<'_>, snap: &Snapshot, frame: &[u8]) -> (Verdict, Vec<Segment>) {
    let before: Vec<u64> = Verdict::all().map(|v| p.counters.get(v)).collect();
    let chunk = p.pool.take().expect("a free chunk");
    let at = chunk as usize + HEADROOM;
    p.umem.as_mut_slice()[at..at + frame.len()].copy_from_slice(frame);
    p.process_batch(
        snap,
        WIRING.ifindex(Iface::Vm5),
        &[Desc::new(at as u64, frame.len() as u32)],
    );
    let verdict = Verdict::all()
        .zip(before)
        .find(|(v, b)| p.counters.get(*v) != *b)
        .map(|(v, _)| v)
        .expect("a verdict");
    (verdict, drain(p, snap))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// The Service_Monitor rows by backend IP: (uuid, status).
fn monitor_rows(ovn: &OvnCentral) -> Vec<(String, String)> {
    ovn.sb_rows("Service_Monitor", &["ip", "status"])
        .into_iter()
        .map(|r| {
            let ip = r["ip"].as_str().unwrap_or_default().to_owned();
            // An empty optional column is ["set", []].
            let status = r["status"].as_str().unwrap_or_default().to_owned();
            (ip, status)
        })
        .collect()
}

fn status_of(ovn: &OvnCentral, ip: &str) -> String {
    monitor_rows(ovn)
        .into_iter()
        .find(|(i, _)| i == ip)
        .map(|(_, s)| s)
        .unwrap_or_default()
}

/// The VIP's `ct_lb_mark` actions in the switch's logical flows.
fn vip_actions(ovn: &OvnCentral) -> Vec<String> {
    vip_actions_over(ovn, "tcp")
}

/// [`vip_actions`] for a VIP over `protocol`.
fn vip_actions_over(ovn: &OvnCentral, protocol: &str) -> Vec<String> {
    let prefix = format!("ct.new && ip4.dst == 172.16.255.140 && {protocol}.dst == 80");
    ovn.sb_rows("Logical_Flow", &["match", "actions"])
        .into_iter()
        .filter(|r| r["match"].as_str().unwrap_or_default().starts_with(&prefix))
        .map(|r| r["actions"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn health_checks_probe_backends_and_northd_drops_the_offline_one() {
    if !privilege::require_tools("svc_monitor", TOOLS) {
        return;
    }
    let ovn = OvnCentral::start();
    seed(&ovn, ["dmz-c51", "dmz-c52"], "tcp", INTERVAL, TIMEOUT);
    let rt = runtime();
    let _guard = rt.enter();
    let sb = Southbound::start(sb::config(ovn.sb_remote().parse().expect("SB remote")));

    // Northd made a monitor per backend, with the service monitor MAC as the source.
    let (c51, c52) = (lab::port("dmz-c51"), lab::port("dmz-c52"));
    let specs = wait::until("both Service_Monitor rows replicated", DEADLINE, || {
        let snap = sb.snapshot();
        let rows = snap.table::<ServiceMonitor>();
        let ready = snap.is_synced()
            && rows.len() == 2
            && rows
                .iter()
                .all(|r| !r.src_mac.is_empty() && !r.src_ip.is_empty());
        ready.then(|| svc_monitor::specs(&snap, "hv1"))
    });
    assert_eq!(specs.len(), 2, "both backends are bound here: {specs:?}");
    assert!(
        svc_monitor::specs(&sb.snapshot(), "hv2").is_empty(),
        "another chassis probes nothing"
    );
    let monitor_mac = specs[0].src_mac;
    let sb_global_mac = ovn.sbctl(&["get", "SB_Global", ".", "options:svc_monitor_mac"]);
    assert_eq!(
        mac_text(monitor_mac),
        sb_global_mac.trim().trim_matches('"'),
        "probes come from northd's svc_monitor_mac"
    );
    // (northd reads the chassis' features from the SB on its own time: polled.)
    wait::until(
        "both backends in ct_lb_mark before any status",
        DEADLINE,
        || {
            let actions = vip_actions(&ovn);
            (actions.len() == 1
                && actions[0]
                    .contains("ct_lb_mark(backends=172.16.255.133:8080,172.16.255.134:8080)"))
            .then_some(())
        },
    );

    // The datapath's pinctrl, with the agent's writer on the real SB.
    let queue = SbQueue::default();
    queue.sync_svc_monitors(specs.clone());
    let writer =
        agent_pinctrl::spawn_writer(queue.clone(), sb.client().clone(), rt.handle().clone());
    let snap = compile(&ovn, &WIRING, 1);
    let mut area = vec![0u8; CHUNKS * CHUNK as usize];
    let mut p = pipeline(&mut area, &snap, &queue);
    let vm5 = WIRING.ifindex(Iface::Vm5);

    // The first timer run probes both backends: a SYN each, from the monitor to the
    // backend's MAC and port, tagged for its VM.
    let t0 = Instant::now();
    let next = p
        .controller_run(&snap, t0)
        .expect("monitors have a next run");
    assert!(next <= t0 + TIMEOUT + Duration::from_millis(1), "{next:?}");
    let mut probes = drain(&mut p, &snap);
    probes.sort_by_key(|s| s.tag);
    assert_eq!(probes.len(), 2, "{probes:?}");
    for (probe, b, tag) in [(&probes[0], c51, 51), (&probes[1], c52, 52)] {
        assert_eq!(
            (
                probe.ifindex,
                probe.tag,
                probe.eth_dst,
                probe.eth_src,
                probe.src,
                probe.dst,
                probe.dport,
                probe.flags,
                probe.ack,
                probe.ttl,
                probe.window,
            ),
            (
                vm5,
                tag,
                b.mac,
                monitor_mac,
                SRC_IP,
                b.ipv4,
                8080,
                SYN,
                0,
                63,
                65160
            ),
            "probe of {}",
            b.name
        );
        assert!(probe.sport >= 1024, "{probe:?}");
        assert!(probe.checksums_ok, "{probe:?}");
    }
    // Nothing more before the answers are due.
    p.controller_run(&snap, t0 + Duration::from_secs(1));
    assert!(drain(&mut p, &snap).is_empty());

    // c51 answers with a SYN-ACK: pinctrl resets the half-open connection, c51 is
    // online, and the agent's writer says so in the row.
    let synack = from_backend("dmz-c51", monitor_mac, &probes[0], SYN | ACK);
    let (verdict, out) = send(&mut p, &snap, &synack);
    assert_ne!(verdict, Verdict::Logical(LogicalOutcome::Unsupported));
    assert_eq!(out.len(), 1, "one RST to c51: {out:?}");
    let rst = &out[0];
    assert_eq!(
        (
            rst.ifindex,
            rst.tag,
            rst.eth_dst,
            rst.eth_src,
            rst.src,
            rst.dst,
            rst.sport,
            rst.dport,
            rst.flags,
            rst.seq,
            rst.ack,
        ),
        (
            vm5,
            51,
            c51.mac,
            monitor_mac,
            SRC_IP,
            c51.ipv4,
            probes[0].sport,
            8080,
            RST | ACK,
            probes[0].seq.wrapping_add(2),
            7001,
        ),
        "pinctrl's RST-ACK"
    );
    assert!(rst.checksums_ok);
    assert!(
        p.counters.unsupported_counts().is_empty(),
        "nothing refused: {:?}",
        p.counters.unsupported_counts()
    );
    wait::until("c51 online in the SB", DEADLINE, || {
        (status_of(&ovn, "172.16.255.133") == "online").then_some(())
    });

    // A reply no monitor expects (another port) is a counted drop.
    let mut stray = probes[0].clone();
    stray.dport = 9999;
    let (verdict, out) = send(
        &mut p,
        &snap,
        &from_backend("dmz-c51", monitor_mac, &stray, SYN | ACK),
    );
    assert_eq!(
        (verdict, out.len()),
        (Verdict::Logical(LogicalOutcome::Dropped), 0)
    );
    let (counters, monitors) = queue.svc_monitor_counters();
    assert_eq!(monitors, 2);
    assert_eq!(counters.get("unknown_monitor"), 1, "{counters:?}");

    // c52 never answers: past the timeout it is offline, and northd drops it from the
    // load balancer.
    let later = t0 + TIMEOUT + Duration::from_secs(1);
    p.controller_run(&snap, later);
    assert!(drain(&mut p, &snap).is_empty(), "c51 is not due again yet");
    wait::until("c52 offline in the SB", DEADLINE, || {
        (status_of(&ovn, "172.16.255.134") == "offline").then_some(())
    });
    wait::until("northd dropping c52 from the VIP", DEADLINE, || {
        let actions = vip_actions(&ovn);
        (actions.len() == 1 && actions[0].contains("ct_lb_mark(backends=172.16.255.133:8080)"))
            .then_some(())
    });

    // The next round probes c51 again (one interval after its answer), and c51
    // refuses with an RST: offline too, and the VIP has no backend left.
    // (c51 answered moments after t0; c52's next probe is due at `later` + INTERVAL.)
    let round = t0 + INTERVAL + Duration::from_secs(5);
    p.controller_run(&snap, round);
    let again = drain(&mut p, &snap);
    assert_eq!(
        again.iter().map(|s| (s.tag, s.flags)).collect::<Vec<_>>(),
        vec![(51, SYN)],
        "c51 probed again"
    );
    let (_, out) = send(
        &mut p,
        &snap,
        &from_backend("dmz-c51", monitor_mac, &again[0], RST | ACK),
    );
    assert!(out.is_empty(), "no answer to an RST: {out:?}");
    wait::until("c51 offline in the SB", DEADLINE, || {
        (status_of(&ovn, "172.16.255.133") == "offline").then_some(())
    });
    wait::until("northd with no backend for the VIP", DEADLINE, || {
        let actions = vip_actions(&ovn);
        (actions.len() == 1 && !actions[0].contains("172.16.255.13")).then_some(())
    });

    let (counters, _) = queue.svc_monitor_counters();
    for (event, n) in [
        ("probe_tcp", 3),
        ("syn_ack", 1),
        ("reset_sent", 1),
        ("rst", 1),
        ("timeout", 1),
        ("online", 1),
        ("offline", 2),
    ] {
        assert_eq!(counters.get(event), n, "{event}: {counters:?}");
    }
    assert!(
        writer
            .counters
            .updated
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 3,
        "the writer updated the rows"
    );
    writer.stop();

    // A resync with the SB's statuses queues no write: the rows already say so.
    let snap_sb = wait::until("statuses replicated", DEADLINE, || {
        let s = sb.snapshot();
        let all_offline = s
            .table::<ServiceMonitor>()
            .iter()
            .all(|r| r.status.as_deref() == Some("offline"));
        all_offline.then_some(s)
    });
    queue.sync_svc_monitors(svc_monitor::specs(&snap_sb, "hv1"));
    assert!(
        !queue
            .take_due(Instant::now())
            .iter()
            .any(|r| matches!(r, SbRequest::ServiceMonitorStatus(_))),
        "nothing to write"
    );
    assert!(
        queue
            .svc_monitor_statuses()
            .iter()
            .all(|(_, s)| *s == Some(Status::Offline))
    );
}

/// What `p` queued for transmission: (ifindex, bytes).
fn drain_raw(p: &mut Pipeline<'_>, snap: &Snapshot) -> Vec<(u32, Vec<u8>)> {
    let mut out = Vec::new();
    let mut chunks = Vec::new();
    p.tx.drain_all(|device, d| {
        let bytes = &p.umem.as_mut_slice()[d.addr as usize..(d.addr + d.len as u64) as usize];
        out.push((snap.devices()[device as usize].ifindex, bytes.to_vec()));
        chunks.push(d.addr & !(u64::from(CHUNK) - 1));
    });
    for c in chunks {
        p.pool.give(c);
    }
    out
}

/// UDP health checks on real northd's flows: a datagram to each backend; c51's port
/// unreachable (quoting the datagram, as its kernel would) makes it offline, c52's
/// silence past the timeout online, and northd keeps only c52 behind the VIP.
#[test]
fn udp_health_checks_follow_port_unreachable_and_silence() {
    if !privilege::require_tools("svc_monitor_udp", TOOLS) {
        return;
    }
    let ovn = OvnCentral::start();
    seed(&ovn, ["dmz-c51", "dmz-c52"], "udp", INTERVAL, TIMEOUT);
    let rt = runtime();
    let _guard = rt.enter();
    let sb = Southbound::start(sb::config(ovn.sb_remote().parse().expect("SB remote")));
    let specs = wait::until("both Service_Monitor rows replicated", DEADLINE, || {
        let snap = sb.snapshot();
        let rows = snap.table::<ServiceMonitor>();
        let ready = snap.is_synced()
            && rows.len() == 2
            && rows
                .iter()
                .all(|r| !r.src_mac.is_empty() && r.protocol.as_deref() == Some("udp"));
        ready.then(|| svc_monitor::specs(&snap, "hv1"))
    });
    let monitor_mac = specs[0].src_mac;
    let queue = SbQueue::default();
    queue.sync_svc_monitors(specs);
    let writer =
        agent_pinctrl::spawn_writer(queue.clone(), sb.client().clone(), rt.handle().clone());
    let snap = compile(&ovn, &WIRING, 1);
    let mut area = vec![0u8; CHUNKS * CHUNK as usize];
    let mut p = pipeline(&mut area, &snap, &queue);
    let (c51, c52) = (lab::port("dmz-c51"), lab::port("dmz-c52"));

    let t0 = Instant::now();
    p.controller_run(&snap, t0);
    let mut datagrams = drain_raw(&mut p, &snap);
    datagrams.sort_by_key(|(_, b)| u16::from_be_bytes([b[14], b[15]]) & 0xfff);
    assert_eq!(datagrams.len(), 2);
    for ((ifindex, b), port, tag) in [(&datagrams[0], c51, 51u16), (&datagrams[1], c52, 52)] {
        assert_eq!(*ifindex, WIRING.ifindex(Iface::Vm5));
        assert_eq!(&b[12..16], &[0x81, 0, 0, tag as u8], "tag {tag}");
        assert_eq!((&b[0..6], &b[6..12]), (&port.mac[..], &monitor_mac[..]));
        let ip = &b[18..];
        assert_eq!(
            (ip[9], &ip[12..16], &ip[16..20]),
            (17, &SRC_IP[..], &port.ipv4[..])
        );
        assert_eq!(u16::from_be_bytes([ip[2], ip[3]]), 36, "20 + 8 + 8 bytes");
        assert_eq!(checksum(&ip[..20]), 0);
        assert_eq!(u16::from_be_bytes([ip[22], ip[23]]), 8080);
    }

    // c51's kernel refuses: port unreachable quoting the datagram.
    let quote = &datagrams[0].1[18..18 + 36];
    let mut icmp = vec![3, 3, 0, 0, 0, 0, 0, 0];
    icmp.extend_from_slice(quote);
    let sum = checksum(&icmp);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
    let refusal = Frame::eth(monitor_mac, c51.mac)
        .vlan(51)
        .ethertype(0x0800, &ipv4(1, c51.ipv4, SRC_IP, &icmp))
        .build();
    let (verdict, out) = send(&mut p, &snap, &refusal);
    assert_ne!(verdict, Verdict::Logical(LogicalOutcome::Unsupported));
    assert!(out.is_empty(), "{out:?}");
    wait::until("c51 offline in the SB", DEADLINE, || {
        (status_of(&ovn, "172.16.255.133") == "offline").then_some(())
    });
    // c52 says nothing: past the timeout it is online.
    p.controller_run(&snap, t0 + TIMEOUT + Duration::from_secs(1));
    assert!(drain_raw(&mut p, &snap).is_empty());
    wait::until("c52 online in the SB", DEADLINE, || {
        (status_of(&ovn, "172.16.255.134") == "online").then_some(())
    });
    wait::until("northd keeping only c52 behind the VIP", DEADLINE, || {
        let actions = vip_actions_over(&ovn, "udp");
        (actions.len() == 1 && actions[0].contains("ct_lb_mark(backends=172.16.255.134:8080)"))
            .then_some(())
    });
    let (counters, _) = queue.svc_monitor_counters();
    for (event, n) in [
        ("probe_udp", 2),
        ("port_unreachable", 1),
        ("timeout", 1),
        ("online", 1),
        ("offline", 1),
    ] {
        assert_eq!(counters.get(event), n, "{event}: {counters:?}");
    }
    writer.stop();
}

/// A VM's `eth0` with its lab port's MAC and address.
fn address(vm: &NetNs, port: &lab::LabPort) {
    vm.ip(&["link", "set", "eth0", "address", &mac_text(port.mac)]);
    let ip = std::net::Ipv4Addr::from(port.ipv4);
    vm.ip(&["addr", "add", &format!("{ip}/26"), "dev", "eth0"]);
}

/// The whole way on real parts: the poll thread's own timer sends the probes over
/// AF_XDP to two VMs' real TCP stacks (this kernel has no 802.1Q, so the tagged path is
/// the pipeline test's). vm1 listens on 8080: its kernel resolves the monitor's source
/// address through northd's ARP responder and answers the SYN with a SYN-ACK; vm2 does
/// not listen: its kernel answers with an RST. pinctrl marks vm1 online and vm2
/// offline, and the agent's writer says so in the Southbound.
#[test]
fn the_poll_thread_probes_real_tcp_stacks_over_af_xdp() {
    let name = "svc_monitor_af_xdp";
    if !privilege::require_root(name) || !privilege::require_tools(name, TOOLS) {
        return;
    }
    if !privilege::require_tools(name, &["ethtool"]) {
        return;
    }
    let ovn = OvnCentral::start();
    seed(
        &ovn,
        ["dmz-vm1", "dmz-vm2"],
        "tcp",
        Duration::from_secs(1),
        Duration::from_secs(2),
    );
    let rt = runtime();
    let _guard = rt.enter();
    let sb = Southbound::start(sb::config(ovn.sb_remote().parse().expect("SB remote")));
    let specs = wait::until("both Service_Monitor rows replicated", DEADLINE, || {
        let snap = sb.snapshot();
        let rows = snap.table::<ServiceMonitor>();
        let ready = snap.is_synced()
            && rows.len() == 2
            && rows
                .iter()
                .all(|r| !r.src_mac.is_empty() && !r.src_ip.is_empty());
        ready.then(|| svc_monitor::specs(&snap, "hv1"))
    });
    let (vm1, vm2) = (lab::port("dmz-vm1"), lab::port("dmz-vm2"));
    let uuids = [
        monitor_uuid(&ovn, &std::net::Ipv4Addr::from(vm1.ipv4).to_string()),
        monitor_uuid(&ovn, &std::net::Ipv4Addr::from(vm2.ipv4).to_string()),
    ];

    let (hv, vms) = Hypervisor::with_vms();
    address(&vms.vm1, vm1);
    address(&vms.vm2, vm2);
    let listener = {
        let _inside = vms.vm1.enter();
        std::net::TcpListener::bind((std::net::Ipv4Addr::from(vm1.ipv4), 8080)).expect("listen")
    };

    let cell = Arc::new(SnapshotCell::new(compile(&ovn, &hv.wiring, 1)));
    let shared = Arc::new(SharedCounters::new());
    let stop = Arc::new(AtomicBool::new(false));
    let queue = SbQueue::default();
    queue.sync_svc_monitors(specs);
    let writer =
        agent_pinctrl::spawn_writer(queue.clone(), sb.client().clone(), rt.handle().clone());
    let vifs = [hv.wiring.vm1, hv.wiring.vm2];
    let (threads, _fast_path) = {
        let _inside = hv.ns.enter();
        let mut fast_path = FastPath::open(&Options {
            pins: None,
            decisions: Decisions::Userspace,
            newer_layout: Vec::new(),
        })
        .expect("XDP program");
        let (tables, conflicts) = TableSet::build(&lab::logical_ports(&hv.wiring));
        assert!(conflicts.is_empty(), "{conflicts:?}");
        fast_path.apply(&tables).expect("tables");
        for ifindex in vifs {
            fast_path.attach(ifindex).expect("attach");
        }
        let config = AfXdpConfig {
            cores: 1,
            ..AfXdpConfig::default()
        };
        let afxdp = AfXdp::open(&config, &vifs).expect("AF_XDP sockets");
        afxdp.register(&mut fast_path).expect("XSKMAP");
        let q = queue.clone();
        let threads = afxdp
            .spawn(cell, shared.clone(), stop.clone(), &|| {
                Box::new(Pinctrl::with_queue(q.clone()))
            })
            .expect("poll thread");
        (threads, fast_path)
    };

    wait::until("vm1 online and vm2 offline in pinctrl", DEADLINE, || {
        let s = queue.svc_monitor_statuses();
        let status = |uuid: &String| s.iter().find(|(u, _)| u == uuid).and_then(|(_, st)| *st);
        (status(&uuids[0]) == Some(Status::Online) && status(&uuids[1]) == Some(Status::Offline))
            .then_some(())
    });
    wait::until("the statuses in the SB", DEADLINE, || {
        (status_of(&ovn, "172.16.255.130") == "online"
            && status_of(&ovn, "172.16.255.131") == "offline")
            .then_some(())
    });
    let (counters, _) = queue.svc_monitor_counters();
    assert!(counters.get("syn_ack") >= 1, "{counters:?}");
    assert!(counters.get("rst") >= 1, "{counters:?}");
    assert!(counters.get("reset_sent") >= 1, "{counters:?}");

    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().expect("poll thread");
    }
    writer.stop();
    drop(listener);
}

/// The UUID of the Service_Monitor row for backend `ip`.
fn monitor_uuid(ovn: &OvnCentral, ip: &str) -> String {
    ovn.sbctl(&[
        "--bare",
        "--columns=_uuid",
        "find",
        "Service_Monitor",
        &format!("ip=\"{ip}\""),
    ])
    .trim()
    .to_owned()
}
