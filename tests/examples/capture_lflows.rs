//! Captures the logical pipeline's input from a running Southbound as JSON, for the
//! fixtures in tests/data/lflows/ that tests and benches compile without OVN:
//! `cargo run -p ovnest-tests --example capture_lflows -- unix:PATH/sb.sock > FILE.json`.

use std::time::Duration;

fn main() -> anyhow::Result<()> {
    let remote = std::env::args()
        .nth(1)
        .ok_or_else(|| anyhow::anyhow!("usage: capture_lflows SB_REMOTE"))?;
    let rt = tokio::runtime::Runtime::new()?;
    let db = rt.block_on(ovnest::lflow::fetch(
        remote.parse()?,
        Duration::from_secs(10),
    ))?;
    println!("{}", serde_json::to_string_pretty(&db)?);
    Ok(())
}
