//! From the Southbound to the logical pipeline (ovn-controller's lflow.c): the typed
//! replica's rows turned into the plain rows [`ovnest_logical::db::Database`] compiles
//! from, and the compile itself, redone when the tables it reads change.

pub mod incremental;

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

/// The pipeline's input from a typed Southbound snapshot.
pub fn database(snap: &Snapshot) -> Database {
    let mut db = Database::default();
    for d in snap.table::<DatapathBinding>().iter() {
        let ids = &d.external_ids;
        let nb = ids
            .get("logical-switch")
            .or_else(|| ids.get("logical-router"));
        db.datapaths.push(Datapath {
            uuid: luuid(&d.uuid),
            tunnel_key: d.tunnel_key,
            name: ids.get("name").cloned(),
            name2: ids.get("name2").cloned(),
            nb_uuid: nb.and_then(|n| n.parse().ok()),
            is_router: ids.contains_key("logical-router"),
        });
    }
    for pb in snap.table::<PortBinding>().iter() {
        db.ports.push(Port {
            uuid: luuid(&pb.uuid),
            name: pb.logical_port.clone(),
            datapath: luuid(&pb.datapath),
            tunnel_key: pb.tunnel_key,
            ty: pb.port_type.clone(),
            peer: pb.options.get("peer").cloned(),
            distributed_port: pb.options.get("distributed-port").cloned(),
            name2: pb.external_ids.get("name").cloned(),
            port_security: pb.port_security.iter().filter_map(addresses).collect(),
        });
    }
    for mg in snap.table::<MulticastGroup>().iter() {
        db.mcgroups.push(McGroup {
            datapath: luuid(&mg.datapath),
            name: mg.name.clone(),
            tunnel_key: u32::from(mg.tunnel_key),
            ports: mg.ports.iter().map(luuid).collect(),
        });
    }
    for f in snap.table::<LogicalFlow>().iter() {
        db.flows.push(LFlow {
            uuid: luuid(&f.uuid),
            datapaths: snap.flow_datapaths(f).map(|d| luuid(&d)).collect(),
            egress: f.pipeline == sb::Pipeline::Egress,
            table_id: f.table_id,
            priority: f.priority,
            match_: f.match_expr.clone(),
            actions: f.actions.clone(),
            stage_name: f.stage_name().map(str::to_owned),
            source: f.external_ids.get("source").cloned(),
        });
    }
    for m in snap.table::<MacBinding>().iter() {
        db.mac_bindings.push(LMac {
            logical_port: m.logical_port.clone(),
            ip: m.ip.to_string(),
            mac: m.mac.to_string(),
            datapath: luuid(&m.datapath),
        });
    }
    for m in snap.table::<StaticMacBinding>().iter() {
        db.mac_bindings.push(LMac {
            logical_port: m.logical_port.clone(),
            ip: m.ip.to_string(),
            mac: m.mac.to_string(),
            datapath: luuid(&m.datapath),
        });
    }
    for f in snap.table::<Fdb>().iter() {
        db.fdbs.push(LFdb {
            mac: f.mac.to_string(),
            dp_key: f.dp_key,
            port_key: f.port_key,
        });
    }
    for o in snap.table::<DhcpOptions>().iter() {
        db.dhcp_options.push(DhcpOption {
            name: o.name.clone(),
            code: u32::from(o.code),
            ty: o.option_type.as_str().to_owned(),
        });
    }
    for o in snap.table::<Dhcpv6Options>().iter() {
        db.dhcpv6_options.push(DhcpOption {
            name: o.name.clone(),
            code: u32::from(o.code),
            ty: o.option_type.as_str().to_owned(),
        });
    }
    for a in snap.table::<AddressSet>().iter() {
        db.address_sets.push((a.name.clone(), a.addresses.clone()));
    }
    for g in snap.table::<PortGroup>().iter() {
        db.port_groups.push((g.name.clone(), g.ports.clone()));
    }
    for lb in snap.table::<LoadBalancer>().iter() {
        db.load_balancers.push(LLb {
            name: lb.name.clone(),
            vips: lb.vips.keys().cloned().collect(),
            hairpin_snat_ip: lb
                .options
                .get("hairpin_snat_ip")
                .map(|s| s.split_whitespace().map(str::to_owned).collect())
                .unwrap_or_default(),
        });
    }
    db.flows.sort_by_key(|f| f.uuid);
    db
}

/// Compiles `snap`'s logical flows for a chassis on which `resident` ports are bound.
pub fn compile(snap: &Snapshot, residency: &Residency) -> Arc<Pipeline> {
    Arc::new(Pipeline::compile(&database(snap), residency))
}

/// Reads the Southbound at `remotes` once (for `ovnest trace`).
pub async fn fetch(remotes: Remotes, timeout: Duration) -> anyhow::Result<Database> {
    let sb = Southbound::start(sb::config(remotes.clone()));
    let snap = tokio::time::timeout(timeout, sb.wait_synced())
        .await
        .map_err(|_| anyhow::anyhow!("{remotes}: no Southbound snapshot within {timeout:?}"))??;
    Ok(database(&snap))
}
