//! `ovnest`: the command-line entry point.

use std::{path::PathBuf, process::ExitCode};

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
    /// Inside a VM: the CNI plugin for nested containers, their networks and port pool.
    Cni {
        #[command(subcommand)]
        command: ovnest_cni::cli::CniCommand,
    },
}

/// Logs to stderr (stdout is `ovnest trace`'s and `status`'s): `RUST_LOG` if set, else
/// info (-v debug, -vv trace); `--log-format json` writes one JSON object per event, with
/// its spans (a reconcile pass's trigger and changes).
fn init_logging(verbose: u8, format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    use std::io::IsTerminal as _;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colours only on a terminal (the lab's ovnest.log is a file).
        .with_ansi(std::io::stderr().is_terminal());
    let result = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        LogFormat::Text => builder.try_init(),
    };
    if let Err(e) = result {
        eprintln!("ovnest: logging not set up: {e}");
    }
}

/// Two glibc malloc arenas for the agent instead of up to eight per core: what one thread
/// frees (the compile's transients, the snapshot's JSON) is then reused by the others
/// rather than kept in an arena of its own. `bench --scale` with `MALLOC_ARENA_MAX=2`, the
/// same setting: agent RSS 156,460 KiB against 174,096–178,388 (BENCHMARKS.md §6).
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt takes no pointers; called before the runtime starts any thread.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

fn main() -> ExitCode {
    // Runtimes exec CNI plugins by their `type`: `ovnest-cni` is a link to this binary.
    let argv0 = std::env::args_os().next().unwrap_or_default();
    if std::path::Path::new(&argv0).file_name() == Some("ovnest-cni".as_ref()) {
        return ovnest_cni::plugin::main();
    }
    let cli = Cli::parse();
    let format = match &cli.command {
        Command::Run(args) => {
            limit_malloc_arenas();
            args.log_format
        }
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
        Command::Cni { command } => ovnest_cni::cli::run(command).map_err(Into::into),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ovnest: {e:#}");
            ExitCode::FAILURE
        }
    }
}
