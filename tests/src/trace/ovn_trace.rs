//! Running the oracle: real `ovn-trace` on many microflows.
//!
//! An ovn-trace process reads the whole Southbound before it traces, which costs tens of
//! milliseconds; a `--detach`ed ovn-trace reads it once and traces each request on its
//! control socket (`trace [--all] MICROFLOW`). Its `--ct`, `--lb-dst` and `--select-id`
//! are process options, though, the first two consumed as traces use them and never
//! reset: so microflows are grouped by connection state and select id, each group served
//! by a daemon started with that one state repeated far more often than its traces can
//! use (every conntrack action sees it, as with the microflow's own [`Microflow::ct`]);
//! a microflow with `--lb-dst` (used once) gets a process of its own.

use std::collections::BTreeMap;
use std::io::{BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use super::microflow::Microflow;

/// `ovn-trace --db=SB FORMAT OPTIONS MICROFLOW` as one process: its output, or why it
/// failed.
pub fn run(sb_remote: &str, format: &[&str], mf: &Microflow) -> Result<String, String> {
    let out = Command::new("ovn-trace")
        .arg(format!("--db={sb_remote}"))
        .args(format)
        .args(mf.options())
        .arg(&mf.expr)
        .output()
        .map_err(|e| format!("cannot run ovn-trace: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "ovn-trace {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// How often a daemon gets its connection state: more than all its traces' conntrack
/// actions together (a few per microflow).
const DAEMON_CT_COPIES: usize = 8192;

/// A `--detach`ed ovn-trace and a connection to its control socket.
pub struct Daemon {
    pidfile: PathBuf,
    log: PathBuf,
    /// The log's length when this daemon started (the file is shared by its successors).
    log_start: u64,
    conn: BufReader<UnixStream>,
    id: u64,
}

impl Daemon {
    /// Starts ovn-trace on `sb_remote` with state in `dir` (named `name`), every
    /// conntrack action seeing `ct` when given, `select` picking `select_id` when given.
    /// It returns once the SB has been read.
    pub fn start(
        dir: &Path,
        name: &str,
        sb_remote: &str,
        (ct, select_id): (Option<&str>, Option<u16>),
    ) -> Result<Daemon, String> {
        let pidfile = dir.join(format!("{name}.pid"));
        let ctl = dir.join(format!("{name}.ctl"));
        let log = dir.join(format!("{name}.log"));
        let log_start = std::fs::metadata(&log).map_or(0, |m| m.len());
        let mut cmd = Command::new("ovn-trace");
        cmd.arg(format!("--db={sb_remote}"))
            .arg("--detach")
            .arg("--no-chdir")
            .arg(format!("--pidfile={}", pidfile.display()))
            .arg(format!("--unixctl={}", ctl.display()))
            .arg(format!("--log-file={}", log.display()))
            .env("OVS_RUNDIR", dir)
            .env("OVN_RUNDIR", dir)
            .env("OVS_LOGDIR", dir)
            .env("OVN_LOGDIR", dir);
        if let Some(ct) = ct {
            cmd.args(std::iter::repeat_n(format!("--ct={ct}"), DAEMON_CT_COPIES));
        }
        if let Some(id) = select_id {
            cmd.arg(format!("--select-id={id}"));
        }
        let out = cmd
            .output()
            .map_err(|e| format!("cannot run ovn-trace: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "ovn-trace --detach {}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        let sock = UnixStream::connect(&ctl).map_err(|e| format!("{}: {e}", ctl.display()))?;
        sock.set_read_timeout(Some(Duration::from_secs(60)))
            .map_err(|e| e.to_string())?;
        Ok(Daemon {
            pidfile,
            log,
            log_start,
            conn: BufReader::new(sock),
            id: 0,
        })
    }

    /// The daemon's `trace FORMAT... MICROFLOW` reply.
    pub fn trace(&mut self, format: &[&str], expr: &str) -> Result<String, String> {
        let mut params: Vec<&str> = format.to_vec();
        params.push(expr);
        self.id += 1;
        let req = json!({"method": "trace", "params": params, "id": self.id});
        self.conn
            .get_mut()
            .write_all(req.to_string().as_bytes())
            .map_err(|e| format!("ovn-trace control socket: {e}"))?;
        let reply: Value = serde_json::Deserializer::from_reader(&mut self.conn)
            .into_iter()
            .next()
            .ok_or("ovn-trace closed its control socket")?
            .map_err(|e| format!("ovn-trace control socket: {e}"))?;
        if reply["id"] != json!(self.id) {
            return Err(format!("ovn-trace replied out of turn: {reply}"));
        }
        match (&reply["result"], &reply["error"]) {
            (Value::String(s), _) => Ok(s.clone()),
            (_, e) => Err(format!("ovn-trace: {e}")),
        }
    }
}

impl Daemon {
    /// What this daemon logged.
    pub fn log(&self) -> String {
        let text = std::fs::read(&self.log).unwrap_or_default();
        let start = (self.log_start as usize).min(text.len());
        String::from_utf8_lossy(&text[start..]).into_owned()
    }

    /// Forgets a daemon that died (it left its pidfile behind; until its new parent
    /// reaps it, it still looks alive, so waiting for it would only wait for init).
    pub fn abandon(mut self) {
        if let Some(pid) = ovnest_lab::process::alive(&self.pidfile) {
            // SAFETY: signalling the pid our daemon wrote; it is dead or dying.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        let _ = std::fs::remove_file(&self.pidfile);
        self.pidfile = PathBuf::new();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if !self.pidfile.as_os_str().is_empty() {
            ovnest_lab::process::stop(&self.pidfile, Duration::from_secs(10));
        }
    }
}

/// What a daemon is started with: a connection state for every conntrack action, and
/// `--select-id` (which ovn-trace never consumes).
type DaemonKey<'a> = (Option<&'a str>, Option<u16>);

/// Which ovn-trace can trace `mf`: a daemon for its options, or a process.
fn group(mf: &Microflow) -> Option<DaemonKey<'_>> {
    if mf.lb_dst.is_some() {
        return None;
    }
    match mf.ct.split_first() {
        None => Some((None, mf.select_id)),
        Some((first, rest)) if rest.iter().all(|c| c == first) => {
            Some((Some(first.as_str()), mf.select_id))
        }
        Some(_) => None,
    }
}

/// ovn-trace's output for every microflow, in input order: daemons (one per connection
/// state, in parallel) for those that allow it, `workers` threads of processes for the
/// rest. `dir` holds the daemons' sockets, pidfiles and logs.
pub fn trace_all(
    dir: &Path,
    sb_remote: &str,
    format: &[&str],
    flows: &[Microflow],
    workers: usize,
) -> Vec<Result<String, String>> {
    let mut groups: BTreeMap<DaemonKey, Vec<usize>> = BTreeMap::new();
    let mut singles: Vec<usize> = Vec::new();
    for (i, mf) in flows.iter().enumerate() {
        match group(mf) {
            Some(key) => groups.entry(key).or_default().push(i),
            None => singles.push(i),
        }
    }
    let next = AtomicUsize::new(0);
    let mut done: Vec<(usize, Result<String, String>)> = std::thread::scope(|s| {
        let mut handles = Vec::new();
        for (n, (key, members)) in groups.iter().enumerate() {
            handles.push(s.spawn(move || {
                let name = format!("ovn-trace-{n}");
                let mut daemon: Option<Daemon> = None;
                let mut mine = Vec::new();
                for &i in members {
                    let mut d = match daemon.take() {
                        Some(d) => d,
                        None => match Daemon::start(dir, &name, sb_remote, *key) {
                            Ok(d) => d,
                            Err(e) => {
                                mine.push((i, Err(e)));
                                continue;
                            }
                        },
                    };
                    match d.trace(format, &flows[i].expr) {
                        Ok(out) => {
                            mine.push((i, Ok(out)));
                            daemon = Some(d);
                        }
                        // ovn-trace died on this microflow (its log says why); the
                        // next one gets a new daemon.
                        Err(e) => {
                            let log = d.log();
                            d.abandon();
                            mine.push((i, Err(format!("{e}; it logged:\n{log}"))));
                        }
                    }
                }
                mine
            }));
        }
        for _ in 0..workers.max(1) {
            handles.push(s.spawn(|| {
                let mut mine = Vec::new();
                loop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&i) = singles.get(k) else { break mine };
                    mine.push((i, run(sb_remote, format, &flows[i])));
                }
            }));
        }
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("ovn-trace worker"))
            .collect()
    });
    done.sort_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, r)| r).collect()
}
