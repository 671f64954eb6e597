//! What the agent reports: `ovnest status` (a JSON file in the state directory, rewritten
//! after every reconcile) and Prometheus text on `--metrics`.

use std::{collections::BTreeMap, fmt::Write as _, path::Path};

use serde::{Deserialize, Serialize};

use super::bindings::OddState;

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Status {
    pub chassis: String,
    /// `connected to REMOTE`, `disconnected`, ...
    pub southbound: String,
    pub synced: bool,
    /// Last SB_Global.nb_cfg this chassis acknowledged.
    pub nb_cfg: i64,
    pub datapath: String,
    /// Bound VIFs, each with its containers.
    pub ports: Vec<PortStatus>,
    pub odd_states: Vec<OddState>,
    /// Table conflicts (duplicate MAC/IP, ...), as text.
    pub conflicts: Vec<String>,
    /// Local interfaces with an iface-id that do not exist (yet).
    pub missing_interfaces: Vec<String>,
    /// What the SB monitor replicates: the local datapaths, or every row.
    #[serde(default)]
    pub sb_monitor: String,
    /// SB rows left out of the replica: `TABLE UUID: why`.
    #[serde(default)]
    pub invalid_rows: Vec<String>,
    /// The logical pipeline: flows compiled, classifier rules.
    #[serde(default)]
    pub logical_flows: usize,
    #[serde(default)]
    pub logical_rules: u64,
    /// Logical flows that did not parse or compile: `UUID: why`. Frames that would hit
    /// them fall to the stage's next flow or its implicit drop.
    #[serde(default)]
    pub flows_not_compiled: Vec<String>,
    /// Frames dropped because their decision needs an action not supported yet, by action.
    #[serde(default)]
    pub unsupported_actions: BTreeMap<String, u64>,
    /// The logical flows those actions are in: `ACTION in flow UUID` → frames dropped.
    #[serde(default)]
    pub unsupported_flows: BTreeMap<String, u64>,
    /// Fast-path verdict and drop counters.
    pub counters: BTreeMap<String, u64>,
    /// pinctrl's load-balancer health checks (`--datapath hybrid|afxdp`).
    #[serde(default)]
    pub svc_monitors: Option<SvcMonitorStatus>,
    /// The XDP decision cache (`--datapath hybrid`).
    #[serde(default)]
    pub cache: Option<CacheStatus>,
    /// Tunnels: `geneve on IFACE`, or `none: why` (then the chassis is unreachable from
    /// other chassis, and serves its local ports only).
    #[serde(default)]
    pub tunnels: String,
    /// The kernel's counters of each AF_XDP socket (`--datapath hybrid|afxdp`): frames
    /// lost before userspace saw them.
    #[serde(default)]
    pub afxdp_sockets: Vec<SocketStatus>,
    pub updated_unix_ms: i64,
}

/// One AF_XDP socket's `XDP_STATISTICS`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SocketStatus {
    pub interface: String,
    pub queue: u32,
    /// Counter name (`rx_dropped`, `rx_ring_full`, `rx_fill_ring_empty`, ...) → value.
    pub counters: BTreeMap<String, u64>,
}

/// The XDP decision cache: frames are counted in packets, the rest in entries.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheStatus {
    /// Entries of this generation are used; others are stale.
    pub generation: u64,
    /// Entries the two maps (IPv4 and others, IPv6) hold at most.
    pub capacity: u64,
    /// Entries present, any generation (counted every few seconds).
    pub entries: u64,
    /// Frames carried out from the cache.
    pub hits: u64,
    /// Frames with no entry: decided in userspace, then installed.
    pub misses: u64,
    /// Frames whose entry was of an older generation: a miss.
    pub stale: u64,
    /// Frames the cache cannot key (IPv4 options, IPv6 extension headers, ...).
    pub uncacheable: u64,
    /// Frames handed to userspace.
    pub upcalls: u64,
    /// New entries written by the poll threads.
    pub installs: u64,
    /// Entries written over one of the same key (stale, or decided twice).
    pub replaced: u64,
    pub install_failures: u64,
    /// Entries the LRU removed to make room (installs - entries).
    pub evictions: u64,
    /// Generation switches: each makes every entry stale.
    pub invalidations: u64,
    /// Conntrack: connections held (as of the last tracked frame decided in userspace).
    #[serde(default)]
    pub ct_entries: u64,
    /// Connections committed.
    #[serde(default)]
    pub ct_commits: u64,
    /// Commits refused by a full table (the frame dropped).
    #[serde(default)]
    pub ct_table_full: u64,
    /// Connections mirrored into XDP once established.
    #[serde(default)]
    pub ct_mirrored: u64,
    /// Frames carried out in XDP on established connections.
    #[serde(default)]
    pub ct_est_hits: u64,
    /// Cached decisions whose connection had changed or gone (handed up).
    #[serde(default)]
    pub ct_gone: u64,
    /// Geneve in XDP, by `TunnelCounter` name: encapsulations and decapsulations
    /// carried out from the cache, and Geneve frames handed up by reason.
    #[serde(default)]
    pub tunnel: BTreeMap<String, u64>,
}

/// pinctrl's health checks: backends monitored, and events by kind (probes sent,
/// replies, timeouts, status changes, drops).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SvcMonitorStatus {
    pub monitors: u64,
    pub events: BTreeMap<String, u64>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct PortStatus {
    pub logical_port: String,
    pub interface: Option<String>,
    pub tag: Option<u16>,
    pub macs: Vec<String>,
    pub tunnel_key: u32,
    /// `chassis` in the SB names this chassis.
    pub claimed: bool,
    pub up: bool,
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub drops: u64,
    pub children: Vec<PortStatus>,
}

impl Status {
    /// Writes atomically (rename), so readers never see half a file.
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let tmp = dir.join("status.json.tmp");
        std::fs::write(
            &tmp,
            serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?,
        )?;
        std::fs::rename(tmp, dir.join("status.json"))
    }

    pub fn read(dir: &Path) -> std::io::Result<Status> {
        let bytes = std::fs::read(dir.join("status.json"))?;
        serde_json::from_slice(&bytes).map_err(std::io::Error::other)
    }

    /// Human-readable form for `ovnest status`.
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "chassis {}  southbound: {}  nb_cfg {}  datapath {}",
            self.chassis, self.southbound, self.nb_cfg, self.datapath
        );
        if !self.sb_monitor.is_empty() {
            let _ = writeln!(out, "  monitoring {}", self.sb_monitor);
        }
        if !self.tunnels.is_empty() {
            let _ = writeln!(out, "  tunnels: {}", self.tunnels);
        }
        fn port(out: &mut String, p: &PortStatus, indent: &str) {
            let tag = p.tag.map(|t| format!(" tag {t}")).unwrap_or_default();
            let iface = p
                .interface
                .as_deref()
                .map(|i| format!(" on {i}"))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "{indent}{}{iface}{tag} [{}] claimed={} up={} rx={} tx={} drops={}",
                p.logical_port,
                p.macs.join(" "),
                p.claimed,
                p.up,
                p.rx_packets,
                p.tx_packets,
                p.drops
            );
            for child in &p.children {
                port(out, child, "    ");
            }
        }
        for p in &self.ports {
            port(&mut out, p, "  ");
        }
        for iface in &self.missing_interfaces {
            let _ = writeln!(out, "  missing interface: {iface}");
        }
        for odd in &self.odd_states {
            let _ = writeln!(
                out,
                "  odd: {}",
                serde_json::to_string(odd).unwrap_or_default()
            );
        }
        for conflict in &self.conflicts {
            let _ = writeln!(out, "  conflict: {conflict}");
        }
        for row in &self.invalid_rows {
            let _ = writeln!(out, "  invalid SB row: {row}");
        }
        if self.logical_flows > 0 {
            let _ = writeln!(
                out,
                "  logical pipeline: {} flows, {} rules, {} not compiled",
                self.logical_flows,
                self.logical_rules,
                self.flows_not_compiled.len()
            );
        }
        for f in &self.flows_not_compiled {
            let _ = writeln!(out, "  flow not compiled: {f}");
        }
        for (action, n) in &self.unsupported_actions {
            let _ = writeln!(out, "  unsupported action {action}: {n} frames dropped");
        }
        for (flow, n) in &self.unsupported_flows {
            let _ = writeln!(out, "    {flow}: {n} frames");
        }
        if let Some(svc) = &self.svc_monitors {
            let events: Vec<String> = svc.events.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let _ = writeln!(
                out,
                "  health checks: {} backends monitored, {}",
                svc.monitors,
                if events.is_empty() {
                    "no events".into()
                } else {
                    events.join(" ")
                }
            );
        }
        if let Some(c) = &self.cache {
            let _ = writeln!(
                out,
                "  decision cache: generation {} entries {}/{} hits={} misses={} stale={} uncacheable={} upcalls={} installs={} replaced={} evictions={} invalidations={}",
                c.generation,
                c.entries,
                c.capacity,
                c.hits,
                c.misses,
                c.stale,
                c.uncacheable,
                c.upcalls,
                c.installs,
                c.replaced,
                c.evictions,
                c.invalidations
            );
            let _ = writeln!(
                out,
                "  conntrack: entries {} commits={} ct_table_full={} mirrored={} est_hits_xdp={} gone={}",
                c.ct_entries,
                c.ct_commits,
                c.ct_table_full,
                c.ct_mirrored,
                c.ct_est_hits,
                c.ct_gone
            );
            if c.tunnel.values().any(|v| *v > 0) {
                let all: Vec<String> = c.tunnel.iter().map(|(k, v)| format!("{k}={v}")).collect();
                let _ = writeln!(out, "  tunnels in XDP: {}", all.join(" "));
            }
        }
        for socket in &self.afxdp_sockets {
            let nonzero: Vec<String> = socket
                .counters
                .iter()
                .filter(|(_, v)| **v > 0)
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            if !nonzero.is_empty() {
                let _ = writeln!(
                    out,
                    "  AF_XDP socket {} queue {}: {}",
                    socket.interface,
                    socket.queue,
                    nonzero.join(" ")
                );
            }
        }
        let counters: Vec<String> = self
            .counters
            .iter()
            .filter(|(_, v)| **v > 0)
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let _ = writeln!(
            out,
            "  counters: {}",
            if counters.is_empty() {
                "none".into()
            } else {
                counters.join(" ")
            }
        );
        out
    }

    /// Prometheus text exposition format.
    pub fn render_prometheus(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# TYPE ovnest_southbound_connected gauge");
        let _ = writeln!(
            out,
            "ovnest_southbound_connected {}",
            u8::from(self.southbound.starts_with("connected"))
        );
        let _ = writeln!(
            out,
            "# TYPE ovnest_nb_cfg gauge\novnest_nb_cfg {}",
            self.nb_cfg
        );
        let _ = writeln!(
            out,
            "# TYPE ovnest_odd_states gauge\novnest_odd_states {}",
            self.odd_states.len()
        );
        let _ = writeln!(
            out,
            "# TYPE ovnest_sb_invalid_rows gauge\novnest_sb_invalid_rows {}",
            self.invalid_rows.len()
        );
        let _ = writeln!(
            out,
            "# TYPE ovnest_logical_flows gauge\novnest_logical_flows {}",
            self.logical_flows
        );
        let _ = writeln!(
            out,
            "# TYPE ovnest_logical_flows_not_compiled gauge\novnest_logical_flows_not_compiled {}",
            self.flows_not_compiled.len()
        );
        let _ = writeln!(out, "# TYPE ovnest_unsupported_action_drops_total counter");
        for (action, n) in &self.unsupported_actions {
            let _ = writeln!(
                out,
                "ovnest_unsupported_action_drops_total{{action=\"{action}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP ovnest_afxdp_socket_events_total The kernel's XDP_STATISTICS of each AF_XDP socket.\n# TYPE ovnest_afxdp_socket_events_total counter"
        );
        for socket in &self.afxdp_sockets {
            for (event, value) in &socket.counters {
                let _ = writeln!(
                    out,
                    "ovnest_afxdp_socket_events_total{{interface=\"{}\",queue=\"{}\",event=\"{event}\"}} {value}",
                    socket.interface, socket.queue
                );
            }
        }
        if let Some(svc) = &self.svc_monitors {
            let _ = writeln!(
                out,
                "# HELP ovnest_pinctrl_svc_monitors Load-balancer backends pinctrl health-checks.\n# TYPE ovnest_pinctrl_svc_monitors gauge\novnest_pinctrl_svc_monitors {}",
                svc.monitors
            );
            let name = ovnest_datapath::pinctrl::SvcCounters::NAME;
            let _ = writeln!(
                out,
                "# HELP {name} Health-check probes sent, replies by kind, timeouts, status changes and drops.\n# TYPE {name} counter"
            );
            for (event, n) in &svc.events {
                let _ = writeln!(out, "{name}{{event=\"{event}\"}} {n}");
            }
        }
        let _ = writeln!(out, "# TYPE ovnest_fastpath_packets_total counter");
        for (name, value) in &self.counters {
            let _ = writeln!(
                out,
                "ovnest_fastpath_packets_total{{verdict=\"{name}\"}} {value}"
            );
        }
        if let Some(c) = &self.cache {
            for (name, kind, help, value) in [
                (
                    "ovnest_cache_hits_packets_total",
                    "counter",
                    "Frames carried out from the XDP decision cache.",
                    c.hits,
                ),
                (
                    "ovnest_cache_misses_packets_total",
                    "counter",
                    "Frames with no cache entry (decided in userspace).",
                    c.misses,
                ),
                (
                    "ovnest_cache_stale_packets_total",
                    "counter",
                    "Frames whose entry was of an older generation.",
                    c.stale,
                ),
                (
                    "ovnest_cache_uncacheable_packets_total",
                    "counter",
                    "Frames the cache cannot key.",
                    c.uncacheable,
                ),
                (
                    "ovnest_cache_upcalls_packets_total",
                    "counter",
                    "Frames XDP handed to userspace.",
                    c.upcalls,
                ),
                (
                    "ovnest_cache_installs_entries_total",
                    "counter",
                    "New cache entries written.",
                    c.installs,
                ),
                (
                    "ovnest_cache_replaced_entries_total",
                    "counter",
                    "Cache entries rewritten in place.",
                    c.replaced,
                ),
                (
                    "ovnest_cache_install_failures_entries_total",
                    "counter",
                    "Cache writes the kernel refused.",
                    c.install_failures,
                ),
                (
                    "ovnest_cache_evictions_entries_total",
                    "counter",
                    "Entries the LRU removed to make room.",
                    c.evictions,
                ),
                (
                    "ovnest_cache_invalidations_total",
                    "counter",
                    "Generation switches (each invalidates every entry).",
                    c.invalidations,
                ),
                (
                    "ovnest_cache_entries",
                    "gauge",
                    "Entries present.",
                    c.entries,
                ),
                (
                    "ovnest_conntrack_entries",
                    "gauge",
                    "Connections in the table.",
                    c.ct_entries,
                ),
                (
                    "ovnest_conntrack_commits_total",
                    "counter",
                    "Connections committed.",
                    c.ct_commits,
                ),
                (
                    "ovnest_conntrack_table_full_total",
                    "counter",
                    "Commits refused by a full table (frames dropped).",
                    c.ct_table_full,
                ),
                (
                    "ovnest_conntrack_mirrored_total",
                    "counter",
                    "Established connections mirrored into XDP.",
                    c.ct_mirrored,
                ),
                (
                    "ovnest_conntrack_est_hits_packets_total",
                    "counter",
                    "Frames carried out in XDP on established connections.",
                    c.ct_est_hits,
                ),
                (
                    "ovnest_conntrack_gone_packets_total",
                    "counter",
                    "Cached decisions whose connection changed or went (handed up).",
                    c.ct_gone,
                ),
                (
                    "ovnest_cache_capacity_entries",
                    "gauge",
                    "Entries the cache holds at most.",
                    c.capacity,
                ),
                (
                    "ovnest_cache_generation",
                    "gauge",
                    "Generation of the entries in use.",
                    c.generation,
                ),
            ] {
                let _ = writeln!(
                    out,
                    "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
                );
            }
            let name = "ovnest_cache_tunnel_packets_total";
            let _ = writeln!(
                out,
                "# HELP {name} Geneve frames encapsulated or decapsulated in XDP, or handed up, by reason.\n# TYPE {name} counter"
            );
            for (counter, value) in &c.tunnel {
                let _ = writeln!(out, "{name}{{counter=\"{counter}\"}} {value}");
            }
        }
        let _ = writeln!(out, "# TYPE ovnest_port_packets_total counter");
        let mut ports: Vec<&PortStatus> = self.ports.iter().collect();
        ports.extend(self.ports.iter().flat_map(|p| p.children.iter()));
        for p in ports {
            for (dir, value) in [
                ("rx", p.rx_packets),
                ("tx", p.tx_packets),
                ("drop", p.drops),
            ] {
                let _ = writeln!(
                    out,
                    "ovnest_port_packets_total{{port=\"{}\",direction=\"{dir}\"}} {value}",
                    p.logical_port
                );
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The decision cache's figures reach both outputs, Prometheus names carrying their
    /// unit (packets, entries) and `_total` on counters.
    #[test]
    fn cache_figures_in_text_and_metrics() {
        let status = Status {
            cache: Some(CacheStatus {
                generation: 7,
                capacity: 32768,
                entries: 3,
                hits: 100,
                misses: 4,
                stale: 1,
                uncacheable: 2,
                upcalls: 7,
                installs: 5,
                replaced: 1,
                install_failures: 0,
                evictions: 2,
                invalidations: 6,
                ct_entries: 9,
                ct_commits: 12,
                ct_table_full: 1,
                ct_mirrored: 8,
                ct_est_hits: 500,
                ct_gone: 3,
                tunnel: [
                    ("encap_hits".to_owned(), 40),
                    ("decap_misses".to_owned(), 2),
                ]
                .into(),
            }),
            ..Status::default()
        };
        let text = status.render_text();
        assert!(
            text.contains("decision cache: generation 7 entries 3/32768 hits=100 misses=4"),
            "{text}"
        );
        assert!(text.contains("evictions=2 invalidations=6"), "{text}");
        assert!(
            text.contains(
                "conntrack: entries 9 commits=12 ct_table_full=1 mirrored=8 est_hits_xdp=500 gone=3"
            ),
            "{text}"
        );
        assert!(
            text.contains("tunnels in XDP: decap_misses=2 encap_hits=40"),
            "{text}"
        );
        let metrics = status.render_prometheus();
        for line in [
            "ovnest_cache_tunnel_packets_total{counter=\"encap_hits\"} 40",
            "# TYPE ovnest_cache_tunnel_packets_total counter",
            "ovnest_cache_hits_packets_total 100",
            "ovnest_cache_misses_packets_total 4",
            "ovnest_cache_upcalls_packets_total 7",
            "ovnest_cache_installs_entries_total 5",
            "ovnest_cache_evictions_entries_total 2",
            "ovnest_cache_invalidations_total 6",
            "ovnest_cache_entries 3",
            "ovnest_conntrack_entries 9",
            "ovnest_conntrack_table_full_total 1",
            "ovnest_conntrack_est_hits_packets_total 500",
            "# TYPE ovnest_cache_hits_packets_total counter",
            "# TYPE ovnest_cache_entries gauge",
        ] {
            assert!(
                metrics.lines().any(|l| l == line),
                "{line} missing:\n{metrics}"
            );
        }
        // Without a cache (xdp, afxdp) nothing of it is printed.
        let none = Status::default();
        assert!(!none.render_prometheus().contains("ovnest_cache"));
        assert!(!none.render_text().contains("decision cache"));
    }

    /// pinctrl's health checks reach both outputs, by event.
    #[test]
    fn health_check_counters_in_text_and_metrics() {
        let status = Status {
            svc_monitors: Some(SvcMonitorStatus {
                monitors: 2,
                events: [("probe_tcp".to_owned(), 3), ("offline".to_owned(), 1)]
                    .into_iter()
                    .collect(),
            }),
            ..Status::default()
        };
        let text = status.render_text();
        assert!(
            text.contains("health checks: 2 backends monitored, offline=1 probe_tcp=3"),
            "{text}"
        );
        let metrics = status.render_prometheus();
        assert!(
            metrics.contains("ovnest_pinctrl_svc_monitors 2"),
            "{metrics}"
        );
        assert!(
            metrics.contains("ovnest_pinctrl_svc_monitor_events_total{event=\"probe_tcp\"} 3"),
            "{metrics}"
        );
        assert!(
            !Status::default()
                .render_prometheus()
                .contains("svc_monitor")
        );
    }
}
