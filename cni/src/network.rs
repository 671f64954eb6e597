//! Networks for containers, as the seed's `ovn-docker create network LS1` / `list
//! networks`: a logical switch with `other_config:subnet` (OVN is the IPAM), optionally a
//! router port as gateway and DHCP options (gateway, MTU, DNS for the containers), and the
//! CNI conflist a VM's runtime needs to attach containers to it. Everything ovnest made
//! carries `external_ids:ovnest-cni:network` so `delete` removes exactly that.

use std::{
    collections::BTreeMap,
    net::Ipv4Addr,
    path::{Path, PathBuf},
};

use ovnest_ovsdb::{Atom, Clause, Datum, Mutation, Mutator, Operation, RowData, WaitUntil};
use serde_json::{Value, json};

use crate::{
    config::{SslFiles, TaggerKind},
    nb::{self, DhcpOptions, Lsp, Nb, RouterPort, Switch, eq, select},
    pool,
    spec::{CniError, Ipv4Net, code, format_mac},
};

pub const NETWORK: &str = "ovnest-cni:network";

/// What `ovnest cni network create` makes.
#[derive(Debug, Clone)]
pub struct NetworkSpec {
    pub name: String,
    pub subnet: Ipv4Net,
    /// Addresses OVN must not hand out (`other_config:exclude_ips` syntax).
    pub exclude_ips: Option<String>,
    /// Connect to this logical router with a port holding `gateway`.
    pub router: Option<String>,
    pub gateway: Option<Ipv4Addr>,
    /// Create DHCP options (router, server, lease, MTU, DNS) for the subnet.
    pub dhcp: bool,
    pub mtu: Option<u32>,
    pub dns: Vec<Ipv4Addr>,
}

/// The plugin settings written into the conflist.
#[derive(Debug, Clone)]
pub struct PluginSpec {
    pub nb: String,
    pub ssl: Option<SslFiles>,
    pub vm_port: String,
    pub uplink: String,
    pub tagger: TaggerKind,
    pub ovs_bridge: Option<String>,
    pub pool: Option<(u32, u32, u32)>,
    pub up_timeout_ms: Option<u64>,
    pub bpffs: Option<PathBuf>,
}

/// A MAC for the router port, derived from the gateway address (`0a:58:` + the four
/// octets, as OVN-Kubernetes does for its gateways): stable and readable.
pub fn gateway_mac(gw: Ipv4Addr) -> [u8; 6] {
    let o = gw.octets();
    [0x0a, 0x58, o[0], o[1], o[2], o[3]]
}

fn ids(name: &str) -> Datum {
    Datum::map([(NETWORK, name)])
}

fn nb_error(what: &str) -> impl FnOnce(nb::TxnError) -> CniError + '_ {
    move |e| e.into_cni(what)
}

/// Creates the switch (and router port, DHCP options) in one transaction.
pub async fn create(nb: &Nb, spec: &NetworkSpec) -> Result<Value, CniError> {
    let net = spec.subnet.network();
    let gateway = spec.gateway.or_else(|| {
        spec.router
            .as_ref()
            .map(|_| Ipv4Addr::from(u32::from(net.addr) + 1))
    });
    if let Some(gw) = gateway
        && !net.contains(gw)
    {
        return Err(CniError::new(
            code::INVALID_CONFIG,
            format!("gateway {gw} is outside {net}"),
        ));
    }
    let mut other_config = BTreeMap::from([("subnet".to_owned(), net.to_string())]);
    if let Some(x) = &spec.exclude_ips {
        other_config.insert("exclude_ips".into(), x.clone());
    }
    if let Some(mtu) = spec.mtu {
        other_config.insert("mtu".into(), mtu.to_string());
    }
    let mut ops = vec![Operation::Wait {
        table: "Logical_Switch".into(),
        conditions: vec![eq("name", &spec.name)],
        columns: vec!["name".into()],
        until: WaitUntil::Equal,
        rows: vec![],
        timeout_ms: Some(0),
    }];
    if let Some(router) = &spec.router {
        // The router must exist: without this the port would be created dangling.
        ops.push(Operation::Wait {
            table: "Logical_Router".into(),
            conditions: vec![eq("name", router)],
            columns: vec!["name".into()],
            until: WaitUntil::NotEqual,
            rows: vec![],
            timeout_ms: Some(0),
        });
    }
    let mut switch_ports = Vec::new();
    let mut made = json!({ "switch": spec.name, "subnet": net.to_string() });
    if let (Some(router), Some(gw)) = (&spec.router, gateway) {
        let lrp = format!("{router}-{}", spec.name);
        let lsp = format!("{}-{router}", spec.name);
        let mac = format_mac(&gateway_mac(gw));
        ops.push(Operation::Insert {
            table: "Logical_Router_Port".into(),
            row: RowData::from([
                ("name".into(), Datum::atom(lrp.as_str())),
                ("mac".into(), Datum::atom(mac.as_str())),
                (
                    "networks".into(),
                    Datum::atom(format!("{gw}/{}", net.prefix)),
                ),
                ("external_ids".into(), ids(&spec.name)),
            ]),
            uuid_name: Some("lrp".into()),
        });
        ops.push(Operation::Mutate {
            table: "Logical_Router".into(),
            conditions: vec![eq("name", router)],
            mutations: vec![Mutation::new(
                "ports",
                Mutator::Insert,
                Datum::named_uuid("lrp"),
            )],
        });
        ops.push(Operation::Insert {
            table: "Logical_Switch_Port".into(),
            row: RowData::from([
                ("name".into(), Datum::atom(lsp.as_str())),
                ("type".into(), Datum::atom("router")),
                ("addresses".into(), Datum::atom("router")),
                (
                    "options".into(),
                    Datum::map([("router-port", lrp.as_str())]),
                ),
                ("external_ids".into(), ids(&spec.name)),
            ]),
            uuid_name: Some("rsp".into()),
        });
        switch_ports.push(Atom::NamedUuid("rsp".into()));
        made["router_port"] = json!(lrp);
        made["gateway"] = json!(gw.to_string());
    }
    if spec.dhcp {
        let mut options: Vec<(String, String)> = vec![("lease_time".into(), "3600".into())];
        if let Some(gw) = gateway {
            options.push(("router".into(), gw.to_string()));
            options.push(("server_id".into(), gw.to_string()));
            options.push(("server_mac".into(), format_mac(&gateway_mac(gw))));
        }
        if let Some(mtu) = spec.mtu {
            options.push(("mtu".into(), mtu.to_string()));
        }
        if !spec.dns.is_empty() {
            let list: Vec<String> = spec.dns.iter().map(ToString::to_string).collect();
            options.push(("dns_server".into(), format!("{{{}}}", list.join(", "))));
        }
        ops.push(Operation::Insert {
            table: "DHCP_Options".into(),
            row: RowData::from([
                ("cidr".into(), Datum::atom(net.to_string())),
                (
                    "options".into(),
                    Datum::map(options.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
                ),
                ("external_ids".into(), ids(&spec.name)),
            ]),
            uuid_name: Some("dhcp".into()),
        });
        made["dhcp"] = json!(true);
    }
    let mut ls = RowData::from([
        ("name".into(), Datum::atom(spec.name.as_str())),
        (
            "other_config".into(),
            Datum::map(other_config.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
        ),
        ("external_ids".into(), ids(&spec.name)),
    ]);
    if !switch_ports.is_empty() {
        ls.insert("ports".into(), Datum::set(switch_ports));
    }
    ops.push(Operation::Insert {
        table: "Logical_Switch".into(),
        row: ls,
        uuid_name: None,
    });
    match nb.transact(ops).await {
        Ok(_) => Ok(made),
        Err(nb::TxnError::Failed { index: Some(0), .. }) => Err(CniError::new(
            code::INVALID_CONFIG,
            format!("logical switch {} already exists", spec.name),
        )),
        Err(nb::TxnError::Failed { index: Some(1), .. }) if spec.router.is_some() => {
            Err(CniError::new(
                code::INVALID_CONFIG,
                format!(
                    "logical router {} does not exist",
                    spec.router.as_deref().unwrap_or_default()
                ),
            ))
        }
        Err(e) => Err(e.into_cni("creating the network")),
    }
}

/// The conflist a VM's runtime reads (`/etc/cni/net.d/NAME.conflist`).
pub fn conflist(name: &str, plugin: &PluginSpec) -> Value {
    let mut p = json!({
        "type": "ovnest-cni",
        "nb": plugin.nb,
        "vmPort": plugin.vm_port,
        "switch": name,
        "tagger": match plugin.tagger { TaggerKind::Bpf => "bpf", TaggerKind::Ovs => "ovs" },
    });
    if plugin.tagger == TaggerKind::Bpf {
        p["uplink"] = json!(plugin.uplink);
    }
    if let Some(b) = &plugin.ovs_bridge {
        p["ovsBridge"] = json!(b);
    }
    if let Some(ssl) = &plugin.ssl {
        p["ssl"] = json!({
            "privateKey": ssl.private_key,
            "certificate": ssl.certificate,
            "caCert": ssl.ca_cert,
        });
    }
    if let Some((min, max, batch)) = plugin.pool {
        p["pool"] = json!({ "min": min, "max": max, "batch": batch });
    }
    if let Some(t) = plugin.up_timeout_ms {
        p["upTimeoutMs"] = json!(t);
    }
    if let Some(b) = &plugin.bpffs {
        p["bpffs"] = json!(b);
    }
    json!({ "cniVersion": "1.0.0", "name": name, "plugins": [p] })
}

pub fn write_conflist(dir: &Path, name: &str, plugin: &PluginSpec) -> Result<PathBuf, CniError> {
    std::fs::create_dir_all(dir).map_err(|e| {
        CniError::new(code::IO_FAILURE, format!("creating {}", dir.display())).with_details(e)
    })?;
    let path = dir.join(format!("{name}.conflist"));
    let text = serde_json::to_string_pretty(&conflist(name, plugin)).unwrap_or_default();
    std::fs::write(&path, text + "\n").map_err(|e| {
        CniError::new(code::IO_FAILURE, format!("writing {}", path.display())).with_details(e)
    })?;
    Ok(path)
}

/// A switch a VM can attach containers to (one with a subnet, so OVN allocates).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkInfo {
    pub name: String,
    pub subnet: String,
    pub by_ovnest: bool,
    pub gateway: Option<String>,
    pub ports: usize,
    /// Containers of the given VM on it (used / free in its pool).
    pub vm_used: usize,
    pub vm_free: usize,
}

pub async fn list(nb: &Nb, vm_port: Option<&str>) -> Result<Vec<NetworkInfo>, CniError> {
    let mut ops = vec![
        select("Logical_Switch", vec![], nb::SWITCH_COLUMNS),
        select(
            "Logical_Switch_Port",
            vec![eq("type", "router")],
            nb::LSP_COLUMNS,
        ),
        select("Logical_Router_Port", vec![], nb::LRP_COLUMNS),
    ];
    if let Some(vm) = vm_port {
        ops.push(select(
            "Logical_Switch_Port",
            vec![eq("parent_name", vm)],
            nb::LSP_COLUMNS,
        ));
    }
    let r = nb.select(ops).await.map_err(nb_error("listing networks"))?;
    let switches: Vec<Switch> = r[0].iter().filter_map(Switch::from_row).collect();
    let routers: Vec<Lsp> = r[1].iter().filter_map(Lsp::from_row).collect();
    let lrps: Vec<RouterPort> = r[2].iter().filter_map(RouterPort::from_row).collect();
    let children: Vec<Lsp> = r.get(3).map_or(Vec::new(), |rows| {
        rows.iter().filter_map(Lsp::from_row).collect()
    });
    let mut out: Vec<NetworkInfo> = switches
        .into_iter()
        .filter_map(|s| {
            let subnet = s.other_config.get("subnet")?.clone();
            let gateway = routers
                .iter()
                .filter(|p| s.ports.contains(&p.uuid))
                .filter_map(|p| p.options.get("router-port"))
                .filter_map(|n| lrps.iter().find(|l| &l.name == n))
                .flat_map(|l| l.networks.iter())
                .next()
                .cloned();
            let mine = |state: &str| {
                children
                    .iter()
                    .filter(|c| s.ports.contains(&c.uuid))
                    .filter(|c| c.external_ids.get(pool::STATE).map(String::as_str) == Some(state))
                    .count()
            };
            Some(NetworkInfo {
                by_ovnest: s.external_ids.contains_key(NETWORK),
                gateway,
                ports: s.ports.len(),
                vm_used: mine(pool::USED),
                vm_free: mine(pool::FREE),
                name: s.name,
                subnet,
            })
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Deletes network `name` if no container uses it: its free pool ports, the router port
/// and DHCP options ovnest made with it, and the switch, in one guarded transaction.
pub async fn delete(nb: &Nb, name: &str) -> Result<Value, CniError> {
    let r = nb
        .select(vec![
            select("Logical_Switch", vec![eq("name", name)], nb::SWITCH_COLUMNS),
            select("Logical_Switch_Port", vec![], nb::LSP_COLUMNS),
            select("DHCP_Options", vec![], nb::DHCP_COLUMNS),
            select("Logical_Router_Port", vec![], nb::LRP_COLUMNS),
        ])
        .await
        .map_err(nb_error("reading the network"))?;
    let switch = r[0]
        .iter()
        .find_map(Switch::from_row)
        .ok_or_else(|| CniError::new(code::INVALID_CONFIG, format!("no logical switch {name}")))?;
    let ports: Vec<Lsp> = r[1]
        .iter()
        .filter_map(Lsp::from_row)
        .filter(|p| switch.ports.contains(&p.uuid))
        .collect();
    let ours = |ids: &BTreeMap<String, String>| ids.get(NETWORK).map(String::as_str) == Some(name);
    let in_use: Vec<&str> = ports
        .iter()
        .filter(|p| !(p.kind == "router" && ours(&p.external_ids)))
        .filter(|p| pool::owned(p) != Some(pool::Owned::Free))
        .map(|p| p.name.as_str())
        .collect();
    if !in_use.is_empty() {
        return Err(CniError::new(
            code::INVALID_CONFIG,
            format!("network {name} still has ports: {}", in_use.join(", ")),
        ));
    }
    let by_uuid = |u| Clause::eq("_uuid", Datum::atom(u));
    // Nothing may have joined the switch since we looked.
    let mut ops = vec![Operation::Wait {
        table: "Logical_Switch".into(),
        conditions: vec![by_uuid(switch.uuid)],
        columns: vec!["ports".into()],
        until: WaitUntil::Equal,
        rows: vec![RowData::from([(
            "ports".into(),
            Datum::set(switch.ports.iter().map(|u| Atom::Uuid(*u))),
        )])],
        timeout_ms: Some(0),
    }];
    ops.push(Operation::Delete {
        table: "Logical_Switch".into(),
        conditions: vec![by_uuid(switch.uuid)],
    });
    for p in &ports {
        ops.push(Operation::Delete {
            table: "Logical_Switch_Port".into(),
            conditions: vec![by_uuid(p.uuid)],
        });
        if let Some(lrp) = p.options.get("router-port")
            && let Some(l) = r[3]
                .iter()
                .filter_map(RouterPort::from_row)
                .find(|l| &l.name == lrp)
        {
            ops.push(Operation::Mutate {
                table: "Logical_Router".into(),
                conditions: vec![Clause::new(
                    "ports",
                    ovnest_ovsdb::Function::Includes,
                    Datum::set([Atom::Uuid(l.uuid)]),
                )],
                mutations: vec![Mutation::new(
                    "ports",
                    Mutator::Delete,
                    Datum::set([Atom::Uuid(l.uuid)]),
                )],
            });
            ops.push(Operation::Delete {
                table: "Logical_Router_Port".into(),
                conditions: vec![by_uuid(l.uuid)],
            });
        }
    }
    let dhcp: Vec<DhcpOptions> = r[2]
        .iter()
        .filter_map(DhcpOptions::from_row)
        .filter(|d| ours(&d.external_ids))
        .collect();
    for d in &dhcp {
        ops.push(Operation::Delete {
            table: "DHCP_Options".into(),
            conditions: vec![by_uuid(d.uuid)],
        });
    }
    match nb.transact(ops).await {
        Ok(_) => Ok(json!({ "deleted": name, "ports": ports.len(), "dhcp_options": dhcp.len() })),
        Err(nb::TxnError::Failed { index: Some(0), .. }) => Err(CniError::new(
            code::TRY_AGAIN_LATER,
            format!("network {name} changed while deleting it; try again"),
        )),
        Err(e) => Err(e.into_cni("deleting the network")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflist_is_what_the_plugin_reads() {
        let plugin = PluginSpec {
            nb: "tcp:10.0.0.2:6641".into(),
            ssl: None,
            vm_port: "dmz-vm5".into(),
            uplink: "eth0".into(),
            tagger: TaggerKind::Bpf,
            ovs_bridge: None,
            pool: Some((2, 8, 4)),
            up_timeout_ms: None,
            bpffs: None,
        };
        let list = conflist("dmz", &plugin);
        let mut conf = list["plugins"][0].clone();
        conf["cniVersion"] = list["cniVersion"].clone();
        conf["name"] = list["name"].clone();
        let parsed = crate::config::NetConf::parse(conf.to_string().as_bytes()).unwrap();
        assert_eq!(parsed.vm_port, "dmz-vm5");
        assert_eq!(parsed.pool.max, 8);
        assert_eq!(
            gateway_mac("10.1.2.1".parse().unwrap()),
            [0x0a, 0x58, 10, 1, 2, 1]
        );
    }
}
