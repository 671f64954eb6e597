//! Real OVN central: NB and SB ovsdb-server with Debian's OVN schemas, and ovn-northd.

use std::{path::Path, time::Duration};

use anyhow::Context as _;

use crate::process::{self, Daemon, run};

pub const NB_SCHEMA: &str = "/usr/share/ovn/ovn-nb.ovsschema";
pub const SB_SCHEMA: &str = "/usr/share/ovn/ovn-sb.ovsschema";
pub const VSWITCH_SCHEMA: &str = "/usr/share/openvswitch/vswitch.ovsschema";

/// Socket paths of a running central.
pub fn nb_remote(dir: &Path) -> String {
    format!("unix:{}", dir.join("nb.sock").display())
}

pub fn sb_remote(dir: &Path) -> String {
    format!("unix:{}", dir.join("sb.sock").display())
}

/// Starts an ovsdb-server for `schema` named `name` in `dir` (database created if new).
pub fn start_db(
    dir: &Path,
    name: &str,
    schema: &str,
    extra_remotes: &[String],
) -> anyhow::Result<String> {
    let db = dir.join(format!("{name}.db"));
    if !db.exists() {
        run("ovsdb-tool", &["create", &db.to_string_lossy(), schema])?;
    }
    let daemon = Daemon::new(dir, name);
    let sock = dir.join(format!("{name}.sock"));
    let mut args = vec![
        db.to_string_lossy().into_owned(),
        format!("--remote=punix:{}", sock.display()),
        daemon.pidfile_arg(),
        daemon.log_arg(),
        format!("--unixctl={}", dir.join(format!("{name}.ctl")).display()),
        "--detach".into(),
        "--no-chdir".into(),
    ];
    args.extend(extra_remotes.iter().cloned());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run("ovsdb-server", &args).with_context(|| format!("starting ovsdb-server {name}"))?;
    let remote = format!("unix:{}", sock.display());
    process::wait_for(&format!("{name} socket"), Duration::from_secs(10), || {
        sock.exists()
    })?;
    Ok(remote)
}

/// NB + SB + northd. Returns (NB remote, SB remote).
pub fn start(dir: &Path) -> anyhow::Result<(String, String)> {
    let nb = start_db(dir, "nb", NB_SCHEMA, &[])?;
    let sb = start_db(dir, "sb", SB_SCHEMA, &[])?;
    run("ovn-nbctl", &[&format!("--db={nb}"), "--no-wait", "init"])?;
    run("ovn-sbctl", &[&format!("--db={sb}"), "init"])?;
    let northd = Daemon::new(dir, "northd");
    run(
        "ovn-northd",
        &[
            &format!("--ovnnb-db={nb}"),
            &format!("--ovnsb-db={sb}"),
            &northd.pidfile_arg(),
            &northd.log_arg(),
            &format!("--unixctl={}", dir.join("northd.ctl").display()),
            "--detach",
            "--no-chdir",
        ],
    )
    .context("starting ovn-northd")?;
    Ok((nb, sb))
}

/// Stops everything `start` and `start_db` started in `dir`.
pub fn stop(dir: &Path, names: &[&str]) {
    for name in names {
        process::stop(&dir.join(format!("{name}.pid")), Duration::from_secs(5));
    }
}
