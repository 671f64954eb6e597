//! `ovnest trace`: what the logical pipeline does with a packet, printed as ovn-trace
//! prints it (the same microflow syntax, the same output line for line).

use std::time::Duration;

use clap::Args;
use ovnest_logical::{
    TraceOptions,
    actions::{Addr, parse_ip_port},
    flow::cs,
    pipeline::{Pipeline, Residency},
    trace::Formats,
};

use crate::ovsdb::Remotes;

#[derive(Debug, Args)]
pub struct TraceArgs {
    /// The Southbound database (as ovn-trace's --db).
    #[arg(
        long,
        env = "OVN_SB_DB",
        default_value = "unix:/var/run/ovn/ovnsb_db.sock"
    )]
    pub db: String,
    /// Table-by-table backtrace (the default).
    #[arg(long)]
    pub detailed: bool,
    /// Less detailed, more parseable.
    #[arg(long)]
    pub summary: bool,
    /// The minimum to explain externally visible behaviour.
    #[arg(long)]
    pub minimal: bool,
    /// All three forms.
    #[arg(long)]
    pub all: bool,
    /// Connection state for each successive ct_next, e.g. `new` or `est,rpl` (trk is implied).
    #[arg(long = "ct")]
    pub ct: Vec<String>,
    /// Load-balancer destination `IP[:PORT]` for ct_lb.
    #[arg(long)]
    pub lb_dst: Option<String>,
    /// Group member for `select`.
    #[arg(long)]
    pub select_id: Option<u16>,
    /// Evaluate is_chassis_resident() for the ports bound to this chassis instead of
    /// treating every port as resident (ovn-trace's assumption).
    #[arg(long)]
    pub chassis_ports: Vec<String>,
    /// `[DATAPATH] MICROFLOW`.
    #[arg(num_args = 1..=2, required = true)]
    pub args: Vec<String>,
}

impl TraceArgs {
    pub fn options(&self) -> anyhow::Result<TraceOptions> {
        let ct_states = self
            .ct
            .iter()
            .map(|s| cs::parse(s, cs::TRACKED).map_err(anyhow::Error::msg))
            .collect::<anyhow::Result<_>>()?;
        let lb_dst = match &self.lb_dst {
            Some(s) => Some(parse_lb_dst(s).ok_or_else(|| anyhow::anyhow!("{s}: bad address"))?),
            None => None,
        };
        Ok(TraceOptions {
            ct_states,
            lb_dst,
            select_id: self.select_id,
        })
    }

    pub fn formats(&self) -> Formats {
        Formats {
            detailed: self.detailed || self.all,
            summary: self.summary || self.all,
            minimal: self.minimal || self.all,
        }
    }
}

fn parse_lb_dst(s: &str) -> Option<(Addr, u16)> {
    parse_ip_port(s)
}

/// Runs `ovnest trace`: prints the trace, or ovn-trace's error text and fails.
pub fn run(args: TraceArgs) -> anyhow::Result<()> {
    let remotes: Remotes = args.db.parse()?;
    let opts = args.options()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let db = rt.block_on(crate::lflow::fetch(remotes, Duration::from_secs(30)))?;
    let residency = if args.chassis_ports.is_empty() {
        Residency::Everywhere
    } else {
        Residency::Ports(std::sync::Arc::new(
            args.chassis_ports.iter().cloned().collect(),
        ))
    };
    let pipeline = Pipeline::compile(&db, &residency);
    for e in &pipeline.errors {
        tracing::warn!("logical flow {} not compiled: {}", e.uuid, e.reason);
    }
    let (dp, flow) = match args.args.as_slice() {
        [flow] => (None, flow.as_str()),
        [dp, flow] => (Some(dp.as_str()), flow.as_str()),
        _ => anyhow::bail!("one or two non-option arguments are required"),
    };
    match ovnest_logical::trace(&pipeline, dp, flow, &opts, args.formats()) {
        Ok(out) => {
            print!("{out}");
            Ok(())
        }
        Err(e) => {
            print!("{e}");
            anyhow::bail!("{}", e.trim_end())
        }
    }
}
