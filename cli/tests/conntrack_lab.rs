//! Stateful ACLs with real TCP, side by side: the seed lab run by ovnest (`--datapath
//! hybrid`: XDP, AF_XDP and the logical pipeline with its connection table) and by real
//! ovn-controller 23.03 with OVS. In both, c51 gets a security group (`allow-related`
//! for what it opens, drop for what is opened to it), then the kernels of the machines
//! talk TCP: c51's connections to vm1 open, carry data both ways and close, again and
//! again; vm1's connection to c51 never opens. The two labs must agree.

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    path::PathBuf,
    thread,
    time::Duration,
};

use ovnest::agent::config::DatapathMode;
use ovnest_lab::{Addressing, AgentKind, Lab, LabArgs};
use ovnest_tests::{
    netns,
    privilege::{require_root, require_tools},
    wait,
};

const TOOLS: &[&str] = &[
    "ovsdb-server",
    "ovn-northd",
    "ovn-nbctl",
    "ovn-controller",
    "ovs-vswitchd",
    "ethtool",
];
/// How long a connection may take to open (its first packets are upcalls in both labs).
const OPEN: Duration = Duration::from_secs(5);
/// How long vm1's refused connection is given: its SYNs are dropped, so it can only
/// time out.
const REFUSED: Duration = Duration::from_secs(3);
/// Connections c51 opens one after the other.
const CONNECTIONS: usize = 20;

const C51: [u8; 4] = [172, 16, 255, 133];
const VM1: [u8; 4] = [172, 16, 255, 130];

/// A lab torn down on drop, its agent's log printed if the test failed.
struct SideLab {
    lab: Lab,
    log: &'static str,
}

impl SideLab {
    fn up(short: &str, agent: AgentKind) -> SideLab {
        let prefix = format!("t{}{short}-", std::process::id() % 10000);
        let dir = std::env::temp_dir().join(format!("ovnest-test-{prefix}"));
        Lab::down(&dir);
        let args = LabArgs {
            dir,
            prefix,
            ovnest: Some(PathBuf::from(env!("CARGO_BIN_EXE_ovnest"))),
            agent,
            datapath: DatapathMode::Hybrid,
            addressing: Addressing::Static,
            containers: Default::default(),
            hypervisors: 1,
            hv2_agent: Default::default(),
        };
        let log = match agent {
            AgentKind::OvnController => "ovn-controller.log",
            _ => "ovnest.log",
        };
        let lab = Lab::up(&args).unwrap_or_else(|e| panic!("{agent:?} lab up: {e:#}"));
        SideLab { lab, log }
    }
}

impl Drop for SideLab {
    fn drop(&mut self) {
        if std::thread::panicking()
            && let Ok(log) = std::fs::read_to_string(self.lab.dir.join(self.log))
        {
            eprintln!("--- {} ---\n{log}", self.log);
        }
        Lab::down(&self.lab.dir);
    }
}

/// A listener in namespace `ns` that echoes what each connection sends, until the
/// connection closes; it serves `n` connections.
fn echo_server(lab: &Lab, ns: &str, addr: SocketAddr, n: usize) -> thread::JoinHandle<usize> {
    let listener = {
        let _inside = netns::enter(&lab.ns(ns));
        TcpListener::bind(addr).unwrap_or_else(|e| panic!("listen on {addr} in {ns}: {e}"))
    };
    thread::spawn(move || {
        let mut served = 0;
        for stream in listener.incoming().take(n) {
            let Ok(mut s) = stream else { continue };
            let mut buf = [0u8; 256];
            while let Ok(k) = s.read(&mut buf) {
                if k == 0 || s.write_all(&buf[..k]).is_err() {
                    break;
                }
            }
            served += 1;
        }
        served
    })
}

/// A connection from namespace `ns` to `to`, opened within `timeout`.
fn connect(lab: &Lab, ns: &str, to: SocketAddr, timeout: Duration) -> std::io::Result<TcpStream> {
    let _inside = netns::enter(&lab.ns(ns));
    TcpStream::connect_timeout(&to, timeout)
}

/// What the lab did with the security group: connections of c51 that opened and echoed,
/// and whether vm1's connection to c51 opened.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    c51_echoed: usize,
    vm1_opened: bool,
}

fn run(lab: &Lab) -> Outcome {
    for acl in [
        [
            "from-lport",
            "1002",
            "inport == \"dmz-c51\" && ip4",
            "allow-related",
        ],
        ["to-lport", "1001", "outport == \"dmz-c51\" && ip4", "drop"],
    ] {
        let mut args = vec!["acl-add", "dmz"];
        args.extend_from_slice(&acl);
        lab.nbctl(&args).expect("acl-add");
    }
    lab.nbctl(&["--wait=hv", "sync"])
        .expect("wait for the chassis");

    let vm1: SocketAddr = (VM1, 8080).into();
    let server = echo_server(lab, "vm1", vm1, CONNECTIONS);
    let mut echoed = 0;
    for i in 0..CONNECTIONS {
        let mut s = connect(lab, "c51", vm1, OPEN)
            .unwrap_or_else(|e| panic!("c51's connection {i} to vm1: {e}"));
        s.set_read_timeout(Some(OPEN)).expect("timeout");
        let msg = format!("hello {i} from c51");
        s.write_all(msg.as_bytes()).expect("send");
        let mut back = vec![0u8; msg.len()];
        if s.read_exact(&mut back).is_ok() && back == msg.as_bytes() {
            echoed += 1;
        }
        // Closed by c51 first: FIN both ways, TIME_WAIT on c51's side.
    }
    assert_eq!(server.join().expect("vm1's server"), CONNECTIONS);

    let c51: SocketAddr = (C51, 9090).into();
    let _c51_server = {
        let _inside = netns::enter(&lab.ns("c51"));
        TcpListener::bind(c51).expect("listen in c51")
    };
    let vm1_opened = connect(lab, "vm1", c51, REFUSED).is_ok();
    Outcome {
        c51_echoed: echoed,
        vm1_opened,
    }
}

#[test]
fn allow_related_with_real_tcp_as_ovn_controller_does() {
    if !require_root("conntrack_lab") || !require_tools("conntrack_lab", TOOLS) {
        return;
    }
    let (ovnest, peer) = thread::scope(|s| {
        let ovnest = s.spawn(|| SideLab::up("cto", AgentKind::Ovnest));
        let peer = s.spawn(|| SideLab::up("ctp", AgentKind::OvnController));
        (ovnest.join(), peer.join())
    });
    let (ovnest, peer) = match (ovnest, peer) {
        (Ok(o), Ok(p)) => (o, p),
        (o, p) => panic!(
            "a lab did not come up: ovnest {}, ovn-controller {}",
            o.is_ok(),
            p.is_ok()
        ),
    };
    let want = Outcome {
        c51_echoed: CONNECTIONS,
        vm1_opened: false,
    };
    let from_peer = run(&peer.lab);
    assert_eq!(from_peer, want, "ovn-controller's lab");
    let from_ovnest = run(&ovnest.lab);
    assert_eq!(from_ovnest, want, "ovnest's lab");
}

/// Round trips on the long-lived connection before the ACL changes: its frames after
/// the first of each kind are carried by XDP from the decision cache.
const ROUND_TRIPS: usize = 50;

/// Established connections in XDP, end to end: c51's connection to vm1 carries data
/// through the decision cache on its mirrored connection (ovnest status counts the XDP
/// hits), then the security group is replaced by a drop with `--wait=hv`: once that
/// returns, nothing more of the connection gets through.
#[test]
fn established_connection_in_xdp_stops_once_the_acl_change_is_acknowledged() {
    if !require_root("conntrack_xdp_lab")
        || !require_tools(
            "conntrack_xdp_lab",
            &["ovsdb-server", "ovn-northd", "ovn-nbctl", "ethtool"],
        )
    {
        return;
    }
    let side = SideLab::up("cte", AgentKind::Ovnest);
    let lab = &side.lab;
    let allow = "inport == \"dmz-c51\" && ip4";
    lab.nbctl(&[
        "acl-add",
        "dmz",
        "from-lport",
        "1002",
        allow,
        "allow-related",
    ])
    .expect("acl-add");
    lab.nbctl(&["--wait=hv", "sync"])
        .expect("wait for the chassis");
    let vm1: SocketAddr = (VM1, 8081).into();
    let _server = echo_server(lab, "vm1", vm1, 1);
    let mut s = connect(lab, "c51", vm1, OPEN).expect("c51's connection to vm1");
    s.set_read_timeout(Some(OPEN)).expect("timeout");
    for i in 0..ROUND_TRIPS {
        let msg = format!("round trip {i:03}");
        s.write_all(msg.as_bytes()).expect("send");
        let mut back = vec![0u8; msg.len()];
        s.read_exact(&mut back).expect("echo");
        assert_eq!(back, msg.as_bytes());
    }
    let status = || ovnest::agent::status::Status::read(&lab.state_dir()).ok();
    let hits = wait::until(
        "the connection's frames carried in XDP (ovnest status)",
        Duration::from_secs(15),
        || {
            let c = status()?.cache?;
            (c.ct_est_hits > 0 && c.ct_mirrored > 0).then_some(c.ct_est_hits)
        },
    );
    assert!(hits > 0);

    // The security group changes under the connection.
    lab.nbctl(&["acl-del", "dmz", "from-lport", "1002", allow])
        .expect("acl-del");
    lab.nbctl(&[
        "--wait=hv",
        "acl-add",
        "dmz",
        "from-lport",
        "1002",
        allow,
        "drop",
    ])
    .expect("drop ACL");
    s.set_read_timeout(Some(REFUSED)).expect("timeout");
    s.write_all(b"after the change").expect("send (buffered)");
    let mut back = [0u8; 16];
    let echoed = s.read_exact(&mut back);
    assert!(
        echoed.is_err(),
        "the connection still carries data after --wait=hv returned"
    );
}
