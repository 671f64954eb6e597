//! What the interpreter asks of a connection tracker in [`Semantics::Chassis`]
//! (`ovn-controller` + OVS's `ct()` action). The tracker itself is the datapath's
//! (`ovnest_datapath::conntrack`); this is the seam, so the interpreter stays free of
//! tables and clocks and `ovnest trace` keeps ovn-trace's `--ct` model.
//!
//! [`Semantics::Chassis`]: crate::Semantics::Chassis

use crate::flow::Flow;

/// A conntrack zone. ovn-controller numbers zones per local logical port (switch
/// pipelines, `MFF_LOG_CT_ZONE`) and per router (`MFF_LOG_DNAT_ZONE`,
/// `MFF_LOG_SNAT_ZONE`) and records the numbers in the OVS DB because OpenFlow needs
/// a 16-bit number; ovnest's tracker is its own, so a zone is named by what owns it
/// and no numbering has to survive restarts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Zone {
    /// A logical switch port's zone: its ingress when it sends, its egress when it
    /// receives (tunnel keys of datapath and port).
    Port { dp: u32, port: u32 },
    /// A router's DNAT zone (also its `ct_next`, `ct_commit`, `ct_lb` and the
    /// `_in_czone` actions' common zone).
    Dnat(u32),
    /// A router's SNAT zone.
    Snat(u32),
}

impl Zone {
    /// The datapath (tunnel key) the zone belongs to.
    pub fn datapath(self) -> u32 {
        match self {
            Zone::Port { dp, .. } | Zone::Dnat(dp) | Zone::Snat(dp) => dp,
        }
    }
}

/// The `nat` part of a `ct()` action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Nat {
    /// No `nat`: the packet is tracked, never rewritten (`ct_next`, `ct_commit`).
    #[default]
    None,
    /// `nat` without a range: an existing connection's NAT is applied, a new
    /// connection gets none (`ct_dnat;`, `ct_lb_mark;`, `ct_commit_nat`).
    Restore,
    /// `nat(dst=addr[:port])` (`ct_dnat(ip)`, a `ct_lb_mark` backend); addresses are
    /// IPv4-mapped IPv6 for IPv4, `port` 0 keeps the port.
    Dst { addr: u128, port: u16 },
    /// `nat(src=addr[:lo-hi])` (`ct_snat(ip)`); `lo`/`hi` 0 keep the port when it is
    /// free.
    Src { addr: u128, lo: u16, hi: u16 },
}

/// One `ct()` action: zone aside, what OVS's `ct(commit, nat(...), exec(...))` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Request {
    pub commit: bool,
    pub nat: Nat,
    /// `exec(set_field:value/mask->ct_mark)`, applied on commit.
    pub mark: Option<(u32, u32)>,
    /// `exec(set_field:value/mask->ct_label)`, applied on commit.
    pub label: Option<(u128, u128)>,
}

/// Why a `ct()` could not be carried out (the frame is dropped and counted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// The table is full: a new connection cannot be committed.
    Full,
    /// SNAT found no free source port in its range.
    NoPort,
}

impl Error {
    /// The name the datapath counts the drop under.
    pub fn name(self) -> &'static str {
        match self {
            Error::Full => "ct_table_full",
            Error::NoPort => "ct_snat_no_port",
        }
    }
}

/// The reply of a hairpinned load-balancer session, as ovn-controller's
/// `chk_lb_hairpin` flows `learn` it (lflow.c, `add_lb_vip_hairpin_reply_action`): in
/// datapath `dp`, a packet from `backend` (and `backend_port`, when the VIP has a port)
/// to `vip` (the VIP or its `hairpin_snat_ip`) over `proto` is a hairpin reply
/// (`chk_lb_hairpin_reply()` is true). OVS keeps such a learned flow until the load
/// balancer goes away, whatever the connection does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HairpinReply {
    pub dp: u32,
    /// Addresses are IPv4-mapped IPv6 for IPv4, as in [`Nat`].
    pub backend: u128,
    pub vip: u128,
    pub proto: u8,
    /// 0: any source port (a VIP without a port).
    pub backend_port: u16,
}

/// A load balancer's affinity session as `commit_lb_aff` learns it (actions.c,
/// `encode_COMMIT_LB_AFF`): in datapath `dp`, new connections from `client` to `vip`
/// (and `vip_port` over `proto`, when the action names a protocol; 0 and 0
/// otherwise) keep going to the backend first chosen, until `affinity_timeout`
/// seconds pass without one (the learned flow's idle timeout).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Affinity {
    pub dp: u32,
    pub client: u128,
    pub vip: u128,
    pub proto: u8,
    pub vip_port: u16,
}

/// A connection tracker.
pub trait Conntrack {
    /// Runs `ct(zone, ...)` on `flow`: looks the packet up in `zone`, commits it when
    /// asked, applies NAT when asked, and leaves the result in `flow`: `ct_state`,
    /// `ct_mark`, `ct_label`, the original direction's tuple (`ct_nw_*`, `ct_tp_*`)
    /// and, with NAT, the rewritten addresses and ports.
    fn execute(&mut self, zone: Zone, flow: &mut Flow, req: &Request) -> Result<(), Error>;

    /// Records a hairpin session's reply (what `chk_lb_hairpin()` learns when true).
    /// False when the tracker cannot hold another (the session's replies will not be
    /// recognised: the caller counts it).
    fn learn_hairpin_reply(&mut self, reply: HairpinReply) -> bool;

    /// Whether `reply` was learned. A `false` can turn `true` at the next learn, so a
    /// decision that read it holds for this packet only.
    fn hairpin_reply_learned(&mut self, reply: &HairpinReply) -> bool;

    /// Records (or renews) an affinity session to `backend` (address, port) that
    /// lasts `timeout_s` idle seconds. False when the tracker cannot hold another.
    fn commit_lb_affinity(
        &mut self,
        session: Affinity,
        backend: (u128, u16),
        timeout_s: u16,
    ) -> bool;

    /// The backend of a live affinity session (a hit renews it, as a learned flow's
    /// idle timer is). What it answers changes with time, so a decision that read it
    /// holds for this packet only.
    fn lb_affinity(&mut self, session: &Affinity) -> Option<(u128, u16)>;
}
