//! From the Southbound to the logical pipeline (ovn-controller's lflow.c): the typed
//! replica's rows turned into the plain rows [`ovnest_logical::db::Database`] compiles
//! from, and the compile itself, redone when the tables it reads change.

pub mod incremental;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use ovnest_logical::{
    db::{
        Database, Datapath, DhcpOption, Fdb as LFdb, LoadBalancer as LLb, LogicalFlow as LFlow,
        MacBinding as LMac, McGroup, Port, Uuid as LUuid,
    },
    pipeline::{Pipeline, Residency},
};

use crate::ovsdb::{Remotes, Uuid};
use crate::sb::{
    self, AddressSet, DatapathBinding, DhcpOptions, Dhcpv6Options, Fdb, LoadBalancer, LogicalFlow,
    MacBinding, MulticastGroup, PortAddresses, PortBinding, PortGroup, Snapshot, Southbound,
    StaticMacBinding,
};

fn luuid(u: &Uuid) -> LUuid {
    LUuid(u128::from_be_bytes(*u.as_bytes()))
}

/// `MAC IP...` as the SB writes a port_security entry.
fn addresses(a: &PortAddresses) -> Option<String> {
    match a {
        PortAddresses::Static { mac, ips } => {
            let mut s = mac.to_string();
            for ip in ips {
                s.push(' ');
                s.push_str(&ip.addr.to_string());
            }
            Some(s)
        }
        _ => None,
    }
}

/// The pipeline's input from a typed Southbound snapshot: every table converted row by
/// row with the functions below, which [`incremental`] also uses for the rows a change
/// set names (one conversion, so a patched database equals this one).
pub fn database(snap: &Snapshot) -> Database {
    let mut db = Database {
        datapaths: datapaths(snap),
        ports: snap
            .table::<PortBinding>()
            .iter()
            .map(|p| port(p))
            .collect(),
        mcgroups: mcgroups(snap),
        flows: {
            let mut names = Names::default();
            snap.table::<LogicalFlow>()
                .iter()
                .map(|f| flow(snap, f, &mut names))
                .collect()
        },
        mac_bindings: mac_bindings(snap),
        fdbs: fdbs(snap),
        dhcp_options: dhcp_options::<DhcpOptions>(snap),
        dhcpv6_options: dhcp_options::<Dhcpv6Options>(snap),
        address_sets: snap
            .table::<AddressSet>()
            .iter()
            .map(|a| address_set(a))
            .collect(),
        port_groups: snap
            .table::<PortGroup>()
            .iter()
            .map(|g| port_group(g))
            .collect(),
        load_balancers: load_balancers(snap),
    };
    // The replica keys Logical_Flow by uuid, so this only checks.
    db.flows.sort_by_key(|f| f.uuid);
    db
}

pub(crate) fn datapaths(snap: &Snapshot) -> Vec<Datapath> {
    let dp = |d: &DatapathBinding| {
        let ids = &d.external_ids;
        let nb = ids
            .get("logical-switch")
            .or_else(|| ids.get("logical-router"));
        Datapath {
            uuid: luuid(&d.uuid),
            tunnel_key: d.tunnel_key,
            name: ids.get("name").cloned(),
            name2: ids.get("name2").cloned(),
            nb_uuid: nb.and_then(|n| n.parse().ok()),
            is_router: ids.contains_key("logical-router"),
        }
    };
    snap.table::<DatapathBinding>()
        .iter()
        .map(|d| dp(d))
        .collect()
}

/// One Port_Binding (`database` keeps them in the replica's key order: by name).
pub(crate) fn port(pb: &PortBinding) -> Port {
    Port {
        uuid: luuid(&pb.uuid),
        name: pb.logical_port.clone(),
        datapath: luuid(&pb.datapath),
        tunnel_key: pb.tunnel_key,
        ty: pb.port_type.clone(),
        peer: pb.options.get("peer").cloned(),
        distributed_port: pb.options.get("distributed-port").cloned(),
        name2: pb.external_ids.get("name").cloned(),
        port_security: pb.port_security.iter().filter_map(addresses).collect(),
    }
}

pub(crate) fn mcgroups(snap: &Snapshot) -> Vec<McGroup> {
    let mg = |mg: &MulticastGroup| McGroup {
        datapath: luuid(&mg.datapath),
        name: mg.name.clone(),
        tunnel_key: u32::from(mg.tunnel_key),
        ports: mg.ports.iter().map(luuid).collect(),
    };
    snap.table::<MulticastGroup>()
        .iter()
        .map(|m| mg(m))
        .collect()
}

/// One copy of each stage name and source for the flows converted together (a few
/// hundred distinct among 100,000s of rows).
#[derive(Default)]
pub(crate) struct Names(HashSet<Arc<str>>);

impl Names {
    fn get(&mut self, s: &str) -> Arc<str> {
        if let Some(n) = self.0.get(s) {
            return n.clone();
        }
        let n: Arc<str> = s.into();
        self.0.insert(n.clone());
        n
    }
}

/// One Logical_Flow, its datapath group (read from `snap`) expanded; its match and
/// actions are the replica's strings.
pub(crate) fn flow(snap: &Snapshot, f: &LogicalFlow, names: &mut Names) -> LFlow {
    LFlow {
        uuid: luuid(&f.uuid),
        datapaths: snap.flow_datapaths(f).map(|d| luuid(&d)).collect(),
        egress: f.pipeline == sb::Pipeline::Egress,
        table_id: f.table_id,
        priority: f.priority,
        match_: f.match_expr.clone(),
        actions: f.actions.clone(),
        stage_name: f.stage_name().map(|s| names.get(s)),
        source: f.source().map(|s| names.get(s)),
    }
}

/// MAC_Binding then Static_MAC_Binding.
pub(crate) fn mac_bindings(snap: &Snapshot) -> Vec<LMac> {
    let dynamic = snap.table::<MacBinding>().iter().map(|m| LMac {
        logical_port: m.logical_port.clone(),
        ip: m.ip.to_string(),
        mac: m.mac.to_string(),
        datapath: luuid(&m.datapath),
    });
    let fixed = snap.table::<StaticMacBinding>().iter().map(|m| LMac {
        logical_port: m.logical_port.clone(),
        ip: m.ip.to_string(),
        mac: m.mac.to_string(),
        datapath: luuid(&m.datapath),
    });
    dynamic.chain(fixed).collect()
}

pub(crate) fn fdbs(snap: &Snapshot) -> Vec<LFdb> {
    let f = |f: &Fdb| LFdb {
        mac: f.mac.to_string(),
        dp_key: f.dp_key,
        port_key: f.port_key,
    };
    snap.table::<Fdb>().iter().map(|r| f(r)).collect()
}

/// DHCP_Options or DHCPv6_Options.
pub(crate) fn dhcp_options<T: DhcpOptionRow>(snap: &Snapshot) -> Vec<DhcpOption> {
    snap.table::<T>()
        .iter()
        .map(|o| {
            let (name, code, ty) = o.option();
            DhcpOption {
                name: name.to_owned(),
                code,
                ty: ty.to_owned(),
            }
        })
        .collect()
}

/// The two DHCP option tables, read alike.
pub(crate) trait DhcpOptionRow: sb::SbRow {
    fn option(&self) -> (&str, u32, &str);
}

impl DhcpOptionRow for DhcpOptions {
    fn option(&self) -> (&str, u32, &str) {
        (&self.name, u32::from(self.code), self.option_type.as_str())
    }
}

impl DhcpOptionRow for Dhcpv6Options {
    fn option(&self) -> (&str, u32, &str) {
        (&self.name, u32::from(self.code), self.option_type.as_str())
    }
}

pub(crate) fn address_set(a: &AddressSet) -> (String, Vec<String>) {
    (a.name.clone(), a.addresses.clone())
}

pub(crate) fn port_group(g: &PortGroup) -> (String, Vec<String>) {
    (g.name.clone(), g.ports.clone())
}

pub(crate) fn load_balancers(snap: &Snapshot) -> Vec<LLb> {
    let lb = |lb: &LoadBalancer| LLb {
        name: lb.name.clone(),
        vips: lb.vips.keys().cloned().collect(),
        hairpin_snat_ip: lb
            .options
            .get("hairpin_snat_ip")
            .map(|s| s.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default(),
    };
    snap.table::<LoadBalancer>().iter().map(|l| lb(l)).collect()
}

/// Compiles `snap`'s logical flows for a chassis on which `resident` ports are bound.
pub fn compile(snap: &Snapshot, residency: &Residency) -> Arc<Pipeline> {
    Arc::new(Pipeline::compile(&database(snap), residency))
}

/// Returns the whole free pages of the heap to the system. glibc keeps freed memory for
/// reuse, and a full compile frees much of what it allocates (at `--scale`, 76 MB of a
/// 212 MB peak: `cargo run --release -p ovnest-benches --example memory_scale -- --local`,
/// which also shows what this gives back, 7.8 MB there, and its time).
pub(crate) fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes no pointers and only gives the allocator's own free pages
    // back to the kernel; it is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Reads the Southbound at `remotes` once (for `ovnest trace`).
pub async fn fetch(remotes: Remotes, timeout: Duration) -> anyhow::Result<Database> {
    let sb = Southbound::start(sb::config(remotes.clone()));
    let snap = tokio::time::timeout(timeout, sb.wait_synced())
        .await
        .map_err(|_| anyhow::anyhow!("{remotes}: no Southbound snapshot within {timeout:?}"))??;
    Ok(database(&snap))
}
