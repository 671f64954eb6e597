//! Real OVN processes (ovsdb-server with the OVN schemas, ovn-northd) for tests.
//!
//! [`OvnCentral::start`] brings up NB and SB ovsdb-servers and ovn-northd by hand (no
//! systemd, no ovn-ctl) in a fresh temporary directory, with every runtime path
//! (`OVS_RUNDIR`, `OVN_RUNDIR`, logs, pidfiles, control sockets) inside it, so parallel
//! tests never share anything and nothing touches /var/run. The ovsdb-servers are started
//! and every daemon is stopped as `ovnest lab` does it ([`ovnest_lab::central`]); on top
//! of that the SB also listens on a free loopback TCP port (IPv4, and IPv6 when `::1`
//! exists) and can be a RAFT cluster. Dropping the value stops every process by its
//! pidfile and removes the directory.
//!
//! ```no_run
//! let ovn = ovnest_tests::ovn::OvnCentral::start();
//! ovn.nbctl(&["ls-add", "dmz"]);
//! ovn.sync(); // northd has written SB
//! println!("{}", ovn.sbctl(&["list", "Datapath_Binding"]));
//! ```

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use ovnest_lab::{
    central::{self, NB_SCHEMA, SB_SCHEMA},
    process::{self, Daemon},
};
use serde_json::{Map, Value};

/// How the SB database is run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SbModel {
    /// One database file (`ovsdb-tool create`): `monitor_cond_since` never resumes.
    #[default]
    Standalone,
    /// A one-member RAFT cluster (`ovsdb-tool create-cluster`): transaction ids are real
    /// and `monitor_cond_since` can resume.
    Clustered,
}

/// A running OVN central: NB + SB ovsdb-server and ovn-northd.
pub struct OvnCentral {
    dir: PathBuf,
    model: SbModel,
    sb_port: u16,
    sb_port6: Option<u16>,
}

static INSTANCE: AtomicU32 = AtomicU32::new(0);

impl OvnCentral {
    /// Starts a standalone-SB central. Panics with the daemons' logs if anything fails.
    pub fn start() -> OvnCentral {
        OvnCentral::start_with(SbModel::Standalone)
    }

    /// Starts a central whose SB is a one-member RAFT cluster.
    pub fn start_clustered() -> OvnCentral {
        OvnCentral::start_with(SbModel::Clustered)
    }

    pub fn start_with(model: SbModel) -> OvnCentral {
        let n = INSTANCE.fetch_add(1, Ordering::Relaxed);
        // Short path: unix socket paths are limited to 107 bytes.
        let dir = std::env::temp_dir().join(format!("ovnest-ovn-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        let has_v6 = std::net::TcpListener::bind("[::1]:0").is_ok();
        let mut ovn = OvnCentral {
            dir,
            model,
            sb_port: free_port(),
            sb_port6: has_v6.then(free_port6),
        };

        // `start_db` creates a missing database standalone; a cluster is made here.
        if model == SbModel::Clustered {
            let raft = format!("tcp:127.0.0.1:{}", free_port());
            ovn.run(
                "ovsdb-tool",
                &["create-cluster", &ovn.path("sb.db"), SB_SCHEMA, &raft],
            );
        }
        if let Err(e) = central::start_db(&ovn.dir, "nb", NB_SCHEMA, &[]) {
            panic!("NB ovsdb-server would not start: {e:#}\n{}", ovn.logs());
        }
        // A port picked free may be taken by a parallel test before the server binds it.
        let mut tries = 0;
        while let Err(e) = ovn.try_start_sb() {
            tries += 1;
            if tries >= 5 {
                panic!("SB ovsdb-server would not start: {e}\n{}", ovn.logs());
            }
            ovn.sb_port = free_port();
            ovn.sb_port6 = ovn.sb_port6.map(|_| free_port6());
        }
        ovn.nbctl(&["--no-wait", "init"]);
        ovn.sbctl(&["init"]);
        ovn.start_northd();
        ovn.sync();
        ovn
    }

    /// The directory holding everything of this instance.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn model(&self) -> SbModel {
        self.model
    }

    pub fn nb_remote(&self) -> String {
        central::nb_remote(&self.dir)
    }

    /// The SB's unix socket remote.
    pub fn sb_remote(&self) -> String {
        central::sb_remote(&self.dir)
    }

    /// The SB's loopback TCP remote (`tcp:127.0.0.1:PORT`).
    pub fn sb_tcp_remote(&self) -> String {
        format!("tcp:127.0.0.1:{}", self.sb_port)
    }

    /// The SB's IPv6 loopback remote (`tcp:[::1]:PORT`), when the machine has `::1`.
    pub fn sb_tcp6_remote(&self) -> Option<String> {
        self.sb_port6.map(|p| format!("tcp:[::1]:{p}"))
    }

    pub fn sb_port(&self) -> u16 {
        self.sb_port
    }

    /// Runs `ovn-nbctl` against this NB; panics (with stderr) if it fails.
    /// The seed's switch `dmz` and router `lr0` on it (`lr0-dmz`, 172.16.255.129/26,
    /// and its router-type port `dmz-lr0`), as an operator types them; the tests add
    /// their own ports.
    pub fn seed_dmz_and_router(&self) {
        self.nbctl(&["ls-add", "dmz"]);
        self.nbctl(&["lr-add", "lr0"]);
        self.nbctl(&[
            "lrp-add",
            "lr0",
            "lr0-dmz",
            "02:ac:10:ff:01:29",
            "172.16.255.129/26",
        ]);
        self.nbctl(&[
            "lsp-add",
            "dmz",
            "dmz-lr0",
            "--",
            "lsp-set-type",
            "dmz-lr0",
            "router",
            "--",
            "lsp-set-addresses",
            "dmz-lr0",
            "router",
            "--",
            "lsp-set-options",
            "dmz-lr0",
            "router-port=lr0-dmz",
        ]);
    }

    pub fn nbctl(&self, args: &[&str]) -> String {
        self.try_nbctl(args)
            .unwrap_or_else(|e| panic!("ovn-nbctl {}: {e}", args.join(" ")))
    }

    pub fn try_nbctl(&self, args: &[&str]) -> Result<String, String> {
        self.ctl("ovn-nbctl", &self.nb_remote(), args)
    }

    /// Runs `ovn-sbctl` against this SB; panics (with stderr) if it fails.
    pub fn sbctl(&self, args: &[&str]) -> String {
        self.try_sbctl(args)
            .unwrap_or_else(|e| panic!("ovn-sbctl {}: {e}", args.join(" ")))
    }

    pub fn try_sbctl(&self, args: &[&str]) -> Result<String, String> {
        self.ctl("ovn-sbctl", &self.sb_remote(), args)
    }

    /// `ovn-sbctl --format=json --columns=... list TABLE`, one JSON object per row keyed
    /// by column name, values in OVSDB's JSON notation (RFC 7047 §5.1).
    pub fn sb_rows(&self, table: &str, columns: &[&str]) -> Vec<Map<String, Value>> {
        let cols = format!("--columns={}", columns.join(","));
        let out = self.sbctl(&["--format=json", &cols, "list", table]);
        let v: Value =
            serde_json::from_str(&out).unwrap_or_else(|e| panic!("sbctl json: {e}: {out}"));
        let headings: Vec<String> = v["headings"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|h| h.as_str().map(str::to_owned))
            .collect();
        v["data"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_array)
            .map(|row| headings.iter().cloned().zip(row.iter().cloned()).collect())
            .collect()
    }

    /// Waits until northd has brought SB up to date with NB (`ovn-nbctl --wait=sb sync`).
    pub fn sync(&self) {
        self.nbctl(&["--wait=sb", "sync"]);
    }

    /// Stops the SB ovsdb-server (its database file stays).
    pub fn stop_sb(&self) {
        self.stop("sb");
    }

    /// Starts the SB ovsdb-server again on the same file, socket and ports.
    pub fn start_sb(&self) {
        if let Err(e) = self.try_start_sb() {
            panic!("SB ovsdb-server would not restart: {e}\n{}", self.logs());
        }
    }

    pub fn restart_northd(&self) {
        self.stop("northd");
        self.start_northd();
    }

    /// The daemons' log files, for failure messages.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for name in ["nb.log", "sb.log", "northd.log"] {
            let text = std::fs::read_to_string(self.dir.join(name)).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(30).collect();
            out += &format!("--- {name} (last {} lines)\n", tail.len());
            for l in tail.into_iter().rev() {
                out += l;
                out.push('\n');
            }
        }
        out
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).to_string_lossy().into_owned()
    }

    fn command(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        for var in [
            "OVS_RUNDIR",
            "OVN_RUNDIR",
            "OVS_LOGDIR",
            "OVN_LOGDIR",
            "OVS_DBDIR",
            "OVN_DBDIR",
            "OVS_SYSCONFDIR",
            "OVN_SYSCONFDIR",
        ] {
            c.env(var, &self.dir);
        }
        c.current_dir(&self.dir);
        c
    }

    fn output(&self, program: &str, args: &[&str]) -> Result<String, String> {
        let out = self
            .command(program)
            .args(args)
            .output()
            .map_err(|e| format!("cannot run {program}: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!(
                "{}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    fn run(&self, program: &str, args: &[&str]) {
        if let Err(e) = self.output(program, args) {
            panic!("{program} {}: {e}\n{}", args.join(" "), self.logs());
        }
    }

    /// `ovn-nbctl` or `ovn-sbctl` against `remote`.
    fn ctl(&self, program: &str, remote: &str, args: &[&str]) -> Result<String, String> {
        let db = format!("--db={remote}");
        let mut full = vec![db.as_str(), "--timeout=30"];
        full.extend_from_slice(args);
        self.output(program, &full)
    }

    fn try_start_sb(&self) -> Result<(), String> {
        let mut remotes = vec![format!("--remote=ptcp:{}:127.0.0.1", self.sb_port)];
        if let Some(p6) = self.sb_port6 {
            remotes.push(format!("--remote=ptcp:{p6}:[::1]"));
        }
        central::start_db(&self.dir, "sb", SB_SCHEMA, &remotes).map_err(|e| format!("{e:#}"))?;
        // ovsdb-server --detach returns once its remotes are set up, but a port it could
        // not bind is only logged: make sure both are listening.
        let listening = process::wait_for("SB TCP port(s)", Duration::from_secs(10), || {
            let v4 = std::net::TcpStream::connect(("127.0.0.1", self.sb_port)).is_ok();
            let v6 = self
                .sb_port6
                .is_none_or(|p| std::net::TcpStream::connect(("::1", p)).is_ok());
            v4 && v6
        });
        if let Err(e) = listening {
            self.stop("sb");
            return Err(format!("SB is not listening on its TCP port(s): {e:#}"));
        }
        if self.model == SbModel::Clustered {
            let remote = self.sb_remote();
            self.output(
                "ovsdb-client",
                &[
                    "--timeout=30",
                    "wait",
                    &remote,
                    "OVN_Southbound",
                    "connected",
                ],
            )?;
        }
        Ok(())
    }

    // The same command line as `central::start` gives northd, which it does not offer on
    // its own (restart_northd needs it).
    fn start_northd(&self) {
        let northd = Daemon::new(&self.dir, "northd");
        let args = [
            format!("--ovnnb-db={}", self.nb_remote()),
            format!("--ovnsb-db={}", self.sb_remote()),
            format!("--unixctl={}", self.path("northd.ctl")),
            northd.pidfile_arg(),
            northd.log_arg(),
            "--detach".into(),
            "--no-chdir".into(),
        ];
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.run("ovn-northd", &args);
    }

    /// Stops one daemon by its pidfile (never by name). Returns once the pidfile is gone,
    /// which an OVS daemon removes in its last step on SIGTERM.
    fn stop(&self, name: &str) {
        let pidfile = self.dir.join(format!("{name}.pid"));
        process::stop(&pidfile, Duration::from_secs(10));
    }
}

impl Drop for OvnCentral {
    fn drop(&mut self) {
        for name in ["northd", "sb", "nb"] {
            self.stop(name);
        }
        if std::env::var_os("OVNEST_KEEP_OVN").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A loopback TCP port that was free a moment ago.
pub fn free_port() -> u16 {
    free_port_on("127.0.0.1:0")
}

fn free_port6() -> u16 {
    free_port_on("[::1]:0")
}

fn free_port_on(any_port: &str) -> u16 {
    std::net::TcpListener::bind(any_port)
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"))
}
