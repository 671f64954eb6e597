//! `ovnest`: the command-line entry point.

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "ovnest", version, about = "OVN nested-container hypervisor agent")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the datapath's counters (requires root: reads pinned BPF maps).
    Status,
}

fn main() -> anyhow::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let cli = Cli::parse();
    match cli.command {
        Command::Status => {
            println!("ovnest: no agent running (the agent lands with `ovnest run`)");
            Ok(())
        }
    }
}
