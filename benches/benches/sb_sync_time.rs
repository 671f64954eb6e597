//! Hand measurement: how long the ovnest client takes from start to a synced typed
//! replica against a real SB server loaded with many rows (see BENCHMARKS.md, OVSDB).
//!
//! `OVNEST_SB_REMOTE=unix:/tmp/sbbench/sb.sock cargo bench -p ovnest-benches --bench sb_sync_time`
//! Without OVNEST_SB_REMOTE it measures nothing.

use std::time::{Duration, Instant};

fn main() {
    let Ok(remote) = std::env::var("OVNEST_SB_REMOTE") else {
        eprintln!("sb_sync_time: set OVNEST_SB_REMOTE to a loaded Southbound; nothing measured");
        return;
    };
    let remotes: ovnest_ovsdb::Remotes = match remote.parse() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("OVNEST_SB_REMOTE {remote:?}: {e}");
            std::process::exit(2);
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    for _ in 0..5 {
        let start = Instant::now();
        let sb = {
            let _guard = rt.enter();
            ovnest::sb::Southbound::start(ovnest::sb::config(remotes.clone()))
        };
        let synced = rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(60), sb.wait_synced()).await
        });
        match synced {
            Ok(Ok(snap)) => println!(
                "synced {} Port_Bindings in {:.1} ms",
                snap.port_bindings().count(),
                start.elapsed().as_secs_f64() * 1000.0
            ),
            other => {
                eprintln!("no synced replica within 60 s: {other:?}");
                std::process::exit(1);
            }
        }
    }
}
