//! `ovnest`: the command-line entry point.

use std::{io::Write as _, path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};
use ovnest::agent::{
    self,
    config::{LogFormat, RunArgs},
    status::Status,
};

#[derive(Parser)]
#[command(
    name = "ovnest",
    version,
    about = "OVN nested-container hypervisor agent"
)]
struct Cli {
    /// More logging (-v debug, -vv trace).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the agent: register the chassis, claim ports, program the XDP datapath.
    /// SIGTERM/SIGINT stop it for a restart: chassis, claims and datapath stay.
    Run(RunArgs),
    /// Leave the hypervisor: stop the agent, release its ports, remove its chassis from
    /// the Southbound and its XDP programs and maps from the kernel.
    Cleanup(ovnest::agent::cleanup::CleanupArgs),
    /// Show what the running agent reports: chassis, connection, ports, counters.
    Status {
        #[arg(long, default_value = "/run/ovnest")]
        state_dir: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// What OVN's logical pipeline does with a packet, printed as ovn-trace prints it.
    Trace(ovnest::trace::TraceArgs),
    /// Packet rate on the lab against the baseline and ovn-controller + OVS; table + plot.
    Bench(ovnest_lab::bench::BenchArgs),
    /// The seed lab: real OVN, namespaces for the VMs and containers, and ovnest.
    Lab {
        #[command(subcommand)]
        command: ovnest_lab::LabCommand,
    },
}

fn init_logging(verbose: u8, format: LogFormat) {
    let default = match verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let mut builder =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default));
    if format == LogFormat::Json {
        builder.format(|buf, record| {
            let line = serde_json::json!({
                "ts": buf.timestamp_millis().to_string(),
                "level": record.level().as_str(),
                "target": record.target(),
                "msg": record.args().to_string(),
            });
            writeln!(buf, "{line}")
        });
    }
    builder.init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let format = match &cli.command {
        Command::Run(args) => args.log_format,
        _ => LogFormat::Text,
    };
    init_logging(cli.verbose, format);
    let result = match cli.command {
        Command::Run(args) => tokio::runtime::Runtime::new()
            .map_err(anyhow::Error::from)
            .and_then(|rt| rt.block_on(agent::run(args))),
        Command::Status { state_dir, json } => match Status::read(&state_dir) {
            Ok(status) if json => serde_json::to_string_pretty(&status)
                .map(|s| println!("{s}"))
                .map_err(Into::into),
            Ok(status) => {
                print!("{}", status.render_text());
                Ok(())
            }
            Err(e) => Err(anyhow::anyhow!(
                "no status in {}: {e} (is `ovnest run --state-dir {}` running?)",
                state_dir.display(),
                state_dir.display()
            )),
        },
        Command::Cleanup(args) => tokio::runtime::Runtime::new()
            .map_err(anyhow::Error::from)
            .and_then(|rt| rt.block_on(ovnest::agent::cleanup::run(args))),
        Command::Lab { command } => ovnest_lab::run(command),
        Command::Bench(args) => ovnest_lab::bench::run(args),
        Command::Trace(args) => ovnest::trace::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ovnest: {e:#}");
            ExitCode::FAILURE
        }
    }
}
