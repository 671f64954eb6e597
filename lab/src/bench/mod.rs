//! `ovnest bench`: packet rate on the seed lab, side by side with the most this machine's
//! veth path carries (the baseline: strip + redirect, nothing else) and the peer
//! (ovn-controller with a userspace ovs-vswitchd), from one interleaved run.
//!
//! Each target gets its own copy of the lab (same namespaces, same veths). The generator
//! is BPF_PROG_TEST_RUN in live-frames mode on the sending VM's interface (its frames
//! leave exactly as the VM's would); the receiver is an XDP program on the destination
//! VM's interface that counts and drops. Offered and received rates are both reported, and
//! a ratio is printed only when the generator offered at least what the faster target
//! received.

pub mod cni;
pub mod latency;
mod lock;
mod miss;
mod plot;
mod run;
pub mod scale;
mod search;
pub mod tunnel;

use std::path::PathBuf;

use clap::Args;
use serde::Serialize;

pub use run::run;

#[derive(Args, Clone, Debug)]
pub struct BenchArgs {
    /// Frame sizes in bytes (Ethernet, FCS included, untagged; the tagged leg is 4 more).
    #[arg(long, value_delimiter = ',', default_value = "64,128,512,1518")]
    pub sizes: Vec<usize>,
    /// UDP flows (distinct source ports) per measurement.
    #[arg(long, value_delimiter = ',', default_value = "1,1024")]
    pub flows: Vec<usize>,
    /// Measurement rounds; targets alternate within each round (A B A B ...).
    #[arg(long, default_value = "3")]
    pub rounds: usize,
    /// Length of one measurement window (a search runs about ten per target and case).
    #[arg(long, default_value = "200")]
    pub window_ms: u64,
    /// Offered load: `search` finds each target's throughput (the highest rate it carries
    /// with at most `--loss` lost, RFC 2544 style); `max` runs the generator as fast as
    /// its core goes (overload); a number is a fixed rate in Mpps.
    #[arg(long, default_value = "search", value_parser = parse_load)]
    pub load: Load,
    /// Loss the throughput search accepts, in percent of the offered frames.
    #[arg(long, default_value = "0.5")]
    pub loss: f64,
    /// Frames the generator hands the kernel per flush into the sending VM's interface
    /// (BPF_PROG_TEST_RUN live-frames batch; 64 is the kernel's default and a NIC's NAPI
    /// budget, 256 the most it takes)
    #[arg(long, default_value = "64", value_parser = clap::value_parser!(u32).range(1..=256))]
    pub batch: u32,
    /// Targets to measure.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "baseline,hybrid,afxdp,peer"
    )]
    pub targets: Vec<Target>,
    /// Miss path (`hybrid` against `peer`): first-frame latency samples per target, and a
    /// throughput search of new flows per second (0: skip).
    #[arg(long, default_value = "200")]
    pub miss_samples: usize,
    /// NB changes for the control-plane latency figures (0: skip).
    #[arg(long, default_value = "30")]
    pub changes: usize,
    /// Print JSON instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Where to write the plot (SVG: Mpps by frame size per target).
    #[arg(long, default_value = "ovnest-bench.svg")]
    pub plot: PathBuf,
    /// Instead of packet rates: full sync time and memory with 4095 containers on one
    /// parent, 20,000 logical ports and 1,000 ACLs in port groups, ovnest vs
    /// ovn-controller.
    #[arg(long)]
    pub scale: bool,
    /// The agents --scale measures, in order.
    #[arg(long, value_delimiter = ',', default_value = "ovnest,ovn-controller")]
    pub scale_agents: Vec<crate::AgentKind>,
    /// Instead of packet rates: container network set-up time through `ovnest-cni`
    /// (ADD until the port is up; `podman run` until the container pings its gateway), with
    /// and without the port pool.
    #[arg(long)]
    pub cni: bool,
    /// Instead of the one-hypervisor rate cases: c51 -> vm1 across two hypervisors
    /// through Geneve, ovnest and ovn-controller + OVS on either end, each side of the
    /// ovnest pair alone (encapsulation, decapsulation) and ovnest on one chassis
    /// (`--sizes`, `--rounds`, `--loss`, `--window-ms`, `--batch` apply; one flow).
    #[arg(long)]
    pub tunnel: bool,
    /// Containers per series for --cni.
    #[arg(long, default_value = "100")]
    pub cni_containers: usize,
    /// Where the labs live while the bench runs.
    #[arg(long, default_value = "/tmp/ovnest-bench")]
    pub dir: PathBuf,
}

/// What the generator offers.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Load {
    /// Throughput search per target and case.
    Search,
    /// As fast as the generator's core goes.
    Max,
    /// A fixed rate, packets per second.
    Rate(f64),
}

fn parse_load(text: &str) -> Result<Load, String> {
    match text {
        "search" => Ok(Load::Search),
        "max" => Ok(Load::Max),
        mpps => match mpps.parse::<f64>() {
            Ok(mpps) if mpps > 0.0 && mpps <= 100.0 => Ok(Load::Rate(mpps * 1e6)),
            _ => Err(format!(
                "`{text}`: expected `search`, `max` or a rate in Mpps (0 < rate <= 100)"
            )),
        },
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// Minimal XDP: strip the tag and devmap-redirect.
    Baseline,
    /// ovnest --datapath hybrid (the default): OVN's logical pipeline, its decisions
    /// cached in XDP; measured with a warm cache.
    Hybrid,
    /// ovnest --datapath xdp: the physical layer alone (hand-written, no logical flows).
    Xdp,
    /// ovnest --datapath afxdp: the logical pipeline in userspace for every frame.
    Afxdp,
    /// ovn-controller + ovs-vswitchd (userspace datapath, `system` ports).
    Peer,
}

impl Target {
    pub fn label(self) -> &'static str {
        match self {
            Target::Baseline => "baseline",
            Target::Hybrid => "ovnest hybrid",
            Target::Xdp => "ovnest xdp",
            Target::Afxdp => "ovnest afxdp",
            Target::Peer => "ovn-controller+OVS",
        }
    }
}

/// Which way frames go through the lab.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// c51 (tag 51 on vm5's VIF) → vm1: classify, strip, redirect.
    C51ToVm1,
    /// vm1 → c51: push tag 51 onto vm5's VIF.
    Vm1ToC51,
    /// vm2 → vm1, untagged VIF to VIF.
    Vm2ToVm1,
    /// c51 → vm3 across lr0 (dmz → inside): strip, route (MACs rewritten, TTL
    /// decremented, IPv4 checksum updated), deliver.
    C51ToVm3,
    /// c51 → vm1 once `dmz` holds 100 ACLs (none of them matching the traffic): what a
    /// policy costs the established flow.
    C51ToVm1Acls,
    /// c51 → vm1 on established connections through c51's security group
    /// (`from-lport allow-related`, added after the ACL cases): what conntrack costs the
    /// established flow. Each flow is opened (c51's frame) and answered (vm1's) first.
    C51ToVm1Stateful,
}

/// ACLs `dmz` gets for [`Direction::C51ToVm1Acls`], half from-lport, half to-lport.
pub const ACLS: usize = 100;

impl Direction {
    pub const ALL: [Direction; 6] = [
        Direction::C51ToVm1,
        Direction::Vm1ToC51,
        Direction::Vm2ToVm1,
        Direction::C51ToVm3,
        Direction::C51ToVm1Acls,
        Direction::C51ToVm1Stateful,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Direction::C51ToVm1 => "c51->vm1 (strip)",
            Direction::Vm1ToC51 => "vm1->c51 (push)",
            Direction::Vm2ToVm1 => "vm2->vm1 (untagged)",
            Direction::C51ToVm3 => "c51->vm3 (routed)",
            Direction::C51ToVm1Acls => "c51->vm1 (100 ACLs)",
            Direction::C51ToVm1Stateful => "c51->vm1 (allow-related, est.)",
        }
    }

    /// Whether `target` can carry this direction at all: the baseline only strips and
    /// redirects, and `--datapath xdp` has no logical flows (no router, no ACLs).
    pub fn served_by(self, target: Target) -> bool {
        match self {
            Direction::C51ToVm3 | Direction::C51ToVm1Acls | Direction::C51ToVm1Stateful => {
                !matches!(target, Target::Baseline | Target::Xdp)
            }
            _ => true,
        }
    }

    /// When the direction is measured: 0 first; 1 once the ACLs are in place; 2 once
    /// c51's security group is too (each stage's ACLs stay).
    pub fn stage(self) -> u8 {
        match self {
            Direction::C51ToVm1Acls => 1,
            Direction::C51ToVm1Stateful => 2,
            _ => 0,
        }
    }
}

/// One measured case, medians over the rounds.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub direction: Direction,
    pub size: usize,
    pub flows: usize,
    pub target: Target,
    pub offered_mpps: f64,
    pub received_mpps: f64,
    pub received_min_mpps: f64,
    pub received_max_mpps: f64,
    /// Frames lost at the reported point, percent of offered (median).
    pub loss_percent: f64,
    /// Under a search: received while the generator ran unpaced (median).
    pub overload_mpps: Option<f64>,
    /// Under a search: in some round even overload stayed within the loss tolerance, so
    /// the generator, not the target, set the figure.
    pub generator_limited: bool,
    /// received / baseline received, when honest.
    pub ratio_to_baseline: Option<f64>,
    /// received / peer received, when honest.
    pub ratio_to_peer: Option<f64>,
    /// Under a search: the overload figures' ratios, when honest.
    pub overload_ratio_to_baseline: Option<f64>,
    pub overload_ratio_to_peer: Option<f64>,
}

/// The miss path of one target: frames of flows it never saw (each one a decision in
/// the slow path and a new cache entry; for the peer, with megaflows off, an upcall).
#[derive(Clone, Debug, Serialize)]
pub struct MissPath {
    pub target: Target,
    /// New flows set up per second (every frame a new flow), the highest rate losing at
    /// most `--loss`, median over the rounds; `None` when no trial passed.
    pub new_flows_per_s: Option<f64>,
    /// New flows delivered per second with the generator unpaced (median).
    pub overload_new_flows_per_s: Option<f64>,
    /// A new flow's first frame: from injection until the receiver counted it.
    pub first_frame_p50_us: f64,
    pub first_frame_p99_us: f64,
    /// A frame of a flow already set up, measured the same way.
    pub known_frame_p50_us: f64,
    pub known_frame_p99_us: f64,
    pub samples: usize,
    /// Probes that never arrived (within 100 ms).
    pub lost: usize,
}

/// `ovnest hybrid`'s decision cache over the rate cases (its `ovnest status`).
#[derive(Clone, Debug, Serialize)]
pub struct CacheFigures {
    pub hits: u64,
    pub misses: u64,
    pub stale: u64,
    pub installs: u64,
    pub upcalls: u64,
    /// Hits on established connections (decisions validated against the `CT` mirror),
    /// and connections mirrored.
    pub ct_est_hits: u64,
    pub ct_mirrored: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct ControlPlane {
    pub agent: String,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub changes: usize,
    pub agent_rss_kib: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    pub kernel: String,
    pub cpu: String,
    pub cores: usize,
    pub load_before: String,
    pub load_after: String,
    /// Host settings the run held (see `run::HostTuning`).
    pub tuning: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub machine: Machine,
    pub window_ms: u64,
    pub load: Load,
    /// Loss accepted by the throughput search, percent.
    pub loss_percent: f64,
    pub batch: u32,
    pub rounds: usize,
    pub rows: Vec<Row>,
    /// `ovnest hybrid`'s decision cache over the rate cases (warm-up included).
    pub cache: Option<CacheFigures>,
    pub miss_path: Vec<MissPath>,
    pub control_plane: Vec<ControlPlane>,
}
