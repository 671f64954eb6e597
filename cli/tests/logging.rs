//! `ovnest run --log-format json` against a real Southbound: every line on stderr is one
//! JSON object, and each reconcile pass is a span carrying its trigger, whose closing
//! event says what the pass changed (the first one registers the chassis).

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ovnest_tests::{ovn::OvnCentral, privilege};
use serde_json::Value;

const DEADLINE: Duration = Duration::from_secs(30);

#[test]
fn json_logs_with_a_span_per_reconcile_pass() {
    let test = "json_logs_with_a_span_per_reconcile_pass";
    if !privilege::require_root(test)
        || !privilege::require_tools(test, &["ovsdb-server", "ovn-northd", "ovn-sbctl"])
    {
        return;
    }
    let ovn = OvnCentral::start();
    let state = ovn.dir().join("ovnest-state");
    let chassis = format!("hv-log-{}", std::process::id());
    let mut child = Command::new(env!("CARGO_BIN_EXE_ovnest"))
        .args(["run", "--log-format", "json", "--datapath", "xdp"])
        .args(["--chassis", &chassis, "--ovn-remote", &ovn.sb_remote()])
        .args(["--encap-ip", "127.0.0.1", "--bind", "nonexistent0=lp1"])
        .arg("--state-dir")
        .arg(&state)
        .env_remove("RUST_LOG")
        .stderr(Stdio::piped())
        .spawn()
        .expect("ovnest run");
    let (tx, rx) = mpsc::channel::<String>();
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });

    // Wait for the pass that registered the chassis.
    let mut lines = Vec::new();
    let deadline = Instant::now() + DEADLINE;
    let registered = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(line) = rx.recv_timeout(left) else {
            let _ = child.kill();
            panic!(
                "no 'reconciled' event with SB operations; stderr so far:\n{}",
                lines.join("\n")
            );
        };
        lines.push(line.clone());
        let Ok(v) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        if v["message"] == "reconciled" && v["sb_ops"].as_u64().is_some_and(|n| n > 0) {
            break v;
        }
    };
    assert_eq!(registered["level"], "INFO");
    assert_eq!(registered["target"], "ovnest::agent");
    let span = &registered["span"];
    assert_eq!(span["name"], "reconcile", "{registered}");
    assert!(
        span["pass"].as_u64().is_some_and(|p| p >= 1),
        "{registered}"
    );
    assert!(
        ["start", "southbound", "local-ovs", "resync"]
            .contains(&span["trigger"].as_str().unwrap_or("")),
        "{registered}"
    );
    assert!(span["sb_generation"].is_u64(), "{registered}");
    assert!(registered["monitor"].is_boolean() && registered["map_updates"].is_u64());
    assert!(
        ovn.sbctl(&[
            "--bare",
            "--columns=name",
            "find",
            "Chassis",
            &format!("name={chassis}")
        ])
        .contains(&chassis)
    );

    // SIGTERM: a clean exit, and every line it wrote was JSON.
    // SAFETY: kill(2) on the pid of the child this test spawned.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().expect("wait");
    reader.join().unwrap();
    lines.extend(rx.try_iter());
    assert!(status.success(), "{status:?}\n{}", lines.join("\n"));
    for line in &lines {
        let v: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        for key in ["timestamp", "level", "target", "message"] {
            assert!(v.get(key).is_some(), "{key} missing: {line}");
        }
    }
    assert!(lines.iter().any(|l| l.contains("stopping")));
}
