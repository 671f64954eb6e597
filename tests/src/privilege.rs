//! Privileged tests run for real in CI: where a test cannot run (not root, a tool
//! missing) it skips locally but fails when `CI=true`, so CI never goes green by skipping.

/// Returns `true` when the test may proceed. Off CI without root it prints why and returns
/// `false`; on CI (`CI=true`) it panics instead, so a skip is a failure there.
pub fn require_root(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    if euid == 0 {
        return true;
    }
    skip_or_fail(test, "needs root (network namespaces, BPF)")
}

/// Returns `true` when every program in `tools` is on PATH; see [`require_root`].
pub fn require_tools(test: &str, tools: &[&str]) -> bool {
    let missing: Vec<&str> = tools
        .iter()
        .copied()
        .filter(|t| which(t).is_none())
        .collect();
    if missing.is_empty() {
        return true;
    }
    skip_or_fail(
        test,
        &format!(
            "missing tools: {} (run scripts/setup.sh)",
            missing.join(", ")
        ),
    )
}

fn skip_or_fail(test: &str, why: &str) -> bool {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{test}: cannot run on CI: {why}");
    }
    eprintln!("SKIP {test}: {why}");
    false
}

/// The full path of `program` on PATH, if any.
pub fn which(program: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}
