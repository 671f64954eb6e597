//! ADD: a logical port for the container (from the pool, or new with a tag unique under
//! the VM's port), its addresses read back from the Northbound, a veth with one end in
//! the container as `CNI_IFNAME`, the tagger entry, and the port `up` in OVN before the
//! result goes back (so the container starts reachable).
//!
//! The VM's lock is held only while a port is chosen and claimed; waiting for ovn-northd
//! (addresses) and for the hypervisor (`up`) happens outside it, so concurrent ADDs in
//! one VM overlap their waits.

use std::{net::Ipv4Addr, time::Instant};

use ovnest_ovsdb::{Datum, OperationResult, WaitUntil};
use serde_json::Value;

use crate::{
    addressing::{self, Addressing, Missing},
    config::{NetConf, TaggerKind},
    nb::{Lsp, TxnError, View},
    netlink::{Link, Netlink},
    pool::{self, NewPort},
    spec::{Attachment, CniError, Env, Ipv4Net, code, format_mac, parse_mac},
    tagger::Tagger,
    vm::{Vm, host_ifname, io_error, now_ms, open_netns, tagger_error},
};

/// Attempts at inserting a new port when a racing run took the tag first.
const INSERT_TRIES: usize = 8;

/// Addresses the runtime asked for (`CNI_ARGS` `IP`/`MAC`, or `runtimeConfig`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Requested {
    pub ip: Option<Ipv4Addr>,
    /// The prefix given with the address (else the switch's subnet decides).
    pub prefix: Option<u8>,
    pub mac: Option<[u8; 6]>,
}

impl Requested {
    pub fn from(env: &Env, conf: &NetConf) -> Result<Requested, CniError> {
        let bad = |m: String| CniError::new(code::INVALID_CONFIG, m);
        let mut r = Requested::default();
        let ip_text = env
            .arg("IP")
            .map(str::to_owned)
            .or_else(|| conf.runtime_ips.first().cloned());
        if let Some(t) = ip_text {
            if t.contains('/') {
                let n: Ipv4Net = t.parse().map_err(|e| bad(format!("IP: {e}")))?;
                r.ip = Some(n.addr);
                r.prefix = Some(n.prefix);
            } else {
                r.ip = Some(t.parse().map_err(|e| bad(format!("IP {t:?}: {e}")))?);
            }
        }
        if let Some(t) = env
            .arg("MAC")
            .map(str::to_owned)
            .or_else(|| conf.runtime_mac.clone())
        {
            r.mac =
                Some(parse_mac(&t).ok_or_else(|| bad(format!("MAC {t:?} is not a MAC address")))?);
        }
        Ok(r)
    }

    pub fn is_empty(&self) -> bool {
        self.ip.is_none() && self.mac.is_none()
    }

    /// The `addresses` column for a new port: OVN allocates whatever was not given.
    pub fn addresses(&self) -> String {
        match (self.mac, self.ip) {
            (None, None) => "dynamic".into(),
            (Some(m), None) => format!("{} dynamic", format_mac(&m)),
            (None, Some(ip)) => format!("dynamic {ip}"),
            (Some(m), Some(ip)) => format!("{} {ip}", format_mac(&m)),
        }
    }
}

/// How the port was obtained (what to undo if a later step fails).
enum Origin {
    Pool,
    New,
    /// The NB already had this attachment (an ADD retried without DEL): reused.
    Existing,
}

pub async fn add(env: &Env, conf: &NetConf) -> Result<Value, CniError> {
    let deadline = Instant::now() + conf.up_timeout;
    let requested = Requested::from(env, conf)?;
    let netns_path = env.netns.clone().unwrap_or_default();
    let netns = open_netns(&netns_path)?;
    let mut container_nl =
        Netlink::open_in(&netns).map_err(io_error("rtnetlink in the container"))?;
    if container_nl
        .link(&env.ifname)
        .map_err(io_error("looking up the container's interface"))?
        .is_some()
    {
        return Err(CniError::new(
            code::INTERFACE,
            format!("interface {} already exists in the container", env.ifname),
        )
        .with_details(netns_path.display()));
    }
    let mut vm = Vm::connect(conf).await?;
    let host = host_ifname(&env.container_id, &env.ifname);

    // Choose and claim under the lock; the tagger is opened (loaded if needed) here too.
    let lock = vm.lock()?;
    let view = vm.view().await?;
    let Some(switch) = view.switch.clone() else {
        return Err(CniError::new(
            code::INVALID_CONFIG,
            format!(
                "logical switch {:?} (\"switch\") is not in the Northbound",
                conf.switch
            ),
        ));
    };
    let (port, origin) = claim(&vm, &view, switch.uuid, env, &requested).await?;
    let mut tagger = match vm.tagger(&view) {
        Ok(t) => t,
        Err(e) => {
            release_after_failure(&vm, &view, &port, &origin, &env.container_id).await;
            return Err(e);
        }
    };
    // A veth left by an earlier attempt for this very attachment is stale.
    let _ = vm.unplug(Some(&mut tagger), &host, port.tag);
    drop(lock);

    match plug(
        &mut vm,
        &mut tagger,
        &view,
        env,
        &netns,
        &mut container_nl,
        &host,
        port.clone(),
        &requested,
        deadline,
    )
    .await
    {
        Ok(attachment) => {
            if conf.pool.enabled() {
                let free = pool::free_ports(&view.children, &conf.switch).len();
                let taken = usize::from(matches!(origin, Origin::Pool));
                if free.saturating_sub(taken) < conf.pool.min as usize {
                    crate::refill::spawn(&conf.raw);
                }
            }
            Ok(attachment.result_json(&conf.cni_version))
        }
        Err(e) => {
            let _ = vm.unplug(Some(&mut tagger), &host, port.tag);
            release_after_failure(&vm, &view, &port, &origin, &env.container_id).await;
            Err(e)
        }
    }
}

/// A port for the container: its own if the NB already has the attachment, else a free
/// pool port (dynamic addressing only), else a new one.
async fn claim(
    vm: &Vm<'_>,
    view: &View,
    switch: ovnest_ovsdb::Uuid,
    env: &Env,
    requested: &Requested,
) -> Result<(Lsp, Origin), CniError> {
    let conf = vm.conf;
    if let Some(p) = pool::attachment(&view.children, &env.container_id, &env.ifname) {
        return Ok((p.clone(), Origin::Existing));
    }
    let mut ids = pool::used_ids(&conf.switch, &env.container_id, &env.ifname, now_ms());
    let mut pool_ids = ids.clone();
    pool_ids.insert(pool::ORIGIN.into(), "pool".into());
    ids.insert(pool::ORIGIN.into(), "new".into());
    if conf.pool.enabled() && requested.is_empty() {
        for candidate in pool::free_ports(&view.children, &conf.switch) {
            let r = vm
                .nb
                .transact(vec![pool::claim_op(candidate, &pool_ids)])
                .await
                .map_err(|e| e.into_cni("claiming a pool port"))?;
            if r.first() == Some(&OperationResult::Count(1)) {
                let mut p = candidate.clone();
                p.external_ids.extend(pool_ids.clone());
                return Ok((p, Origin::Pool));
            }
        }
    }
    let dhcp = view
        .dhcp
        .iter()
        .find(|d| {
            addressing::switch_subnet(view)
                .is_some_and(|s| d.cidr.parse::<Ipv4Net>().is_ok_and(|c| c.network() == s))
        })
        .map(|d| d.uuid);
    let mut view = view.clone();
    for _ in 0..INSERT_TRIES {
        let Some(&tag) = pool::free_tags(&view.children, 1).first() else {
            return Err(CniError::new(
                code::NO_FREE_TAG,
                format!(
                    "the VM's port {} has all {} VLAN ids in use: no more containers fit in this VM",
                    conf.vm_port,
                    ovnest_common::tagger::MAX_VID
                ),
            ));
        };
        let new = NewPort {
            tag,
            name: pool::port_name(&conf.vm_port, tag),
            addresses: requested.addresses(),
            external_ids: ids.clone(),
        };
        match vm
            .nb
            .transact(pool::insert_ops(
                switch,
                &conf.vm_port,
                dhcp,
                std::slice::from_ref(&new),
            ))
            .await
        {
            Ok(results) => {
                let uuid = results.iter().find_map(|r| match r {
                    OperationResult::Inserted(u) => Some(*u),
                    _ => None,
                });
                let lsp = read_port(vm, uuid).await?.ok_or_else(|| {
                    CniError::new(
                        code::NB_REFUSED,
                        format!("port {} vanished after insert", new.name),
                    )
                })?;
                return Ok((lsp, Origin::New));
            }
            // A guard failed: someone took the tag or the name meanwhile. Look again.
            Err(TxnError::Failed { index: Some(i), .. }) if i < pool::GUARDS => {
                view = vm.view().await?;
            }
            Err(e) => return Err(e.into_cni("creating the container's port")),
        }
    }
    Err(CniError::new(
        code::TRY_AGAIN_LATER,
        "could not claim a VLAN id: too many concurrent changes",
    ))
}

async fn read_port(vm: &Vm<'_>, uuid: Option<ovnest_ovsdb::Uuid>) -> Result<Option<Lsp>, CniError> {
    let Some(uuid) = uuid else { return Ok(None) };
    let by_uuid = ovnest_ovsdb::Clause::eq("_uuid", Datum::atom(uuid));
    let rows = vm
        .nb
        .select(vec![crate::nb::select(
            "Logical_Switch_Port",
            vec![by_uuid],
            crate::nb::LSP_COLUMNS,
        )])
        .await
        .map_err(|e| e.into_cni("reading the new port"))?;
    Ok(rows.first().and_then(|r| r.first()).and_then(Lsp::from_row))
}

async fn release_after_failure(
    vm: &Vm<'_>,
    view: &View,
    port: &Lsp,
    origin: &Origin,
    container: &str,
) {
    let r = match origin {
        // A port we just made goes; a pooled or earlier one follows the pool's rule.
        Origin::New => vm
            .nb
            .transact(pool::delete_ops(&[port]))
            .await
            .map(drop)
            .map_err(|e| e.into_cni("deleting the port")),
        Origin::Pool | Origin::Existing => vm
            .release(port, container, vm.free_now(view))
            .await
            .map(drop),
    };
    if let Err(e) = r {
        tracing::warn!(
            "ovnest-cni: giving back {} after a failed ADD: {e} (GC will)",
            port.name
        );
    }
}

/// Addresses, interface, tagger, `up`.
#[allow(clippy::too_many_arguments)]
async fn plug(
    vm: &mut Vm<'_>,
    tagger: &mut Tagger,
    view: &View,
    env: &Env,
    netns: &std::fs::File,
    container_nl: &mut Netlink,
    host: &str,
    mut port: Lsp,
    requested: &Requested,
    deadline: Instant,
) -> Result<Attachment, CniError> {
    let conf = vm.conf;
    let tag = port
        .tag
        .or_else(|| pool::reserved_tag(&port))
        .ok_or_else(|| CniError::new(code::NB_REFUSED, format!("port {} has no tag", port.name)))?;
    let addressing = loop {
        match addressing::addressing(view, &port, requested.prefix) {
            Ok(a) => break a,
            Err(Missing::NotYetAllocated) => {
                // ovn-northd fills dynamic_addresses; the NB server tells us when.
                port = vm
                    .wait_port(
                        &port,
                        "dynamic_addresses",
                        WaitUntil::NotEqual,
                        Datum::set([]),
                        deadline,
                    )
                    .await
                    .map_err(|e| match e {
                        TxnError::Failed { .. } => CniError::new(
                            code::NO_ADDRESS,
                            format!(
                                "ovn-northd gave {} no address within {:?}",
                                port.name, conf.up_timeout
                            ),
                        )
                        .with_details("is ovn-northd running?"),
                        e => e.into_cni("waiting for the port's addresses"),
                    })?;
            }
            Err(Missing::NoIpv4(p)) => {
                return Err(CniError::new(
                    code::NO_ADDRESS,
                    format!("OVN gave port {p} no IPv4 address"),
                )
                .with_details(format!(
                    "set other_config:subnet on logical switch {} (ovnest cni network create does)",
                    conf.switch
                )));
            }
            Err(Missing::Malformed(m)) => return Err(CniError::new(code::NB_REFUSED, m)),
        }
    };
    if port.tag.is_none() {
        // Pending: now that northd chose its addresses, the port becomes bindable.
        let mac_ip = format!(
            "{} {}",
            format_mac(&addressing.mac),
            addressing.address.addr
        );
        vm.nb
            .transact(vec![pool::complete_op(&port, tag, &mac_ip)])
            .await
            .map_err(|e| e.into_cni("completing the port"))?;
        port.tag = Some(tag);
        port.up = None;
    }
    let mtu = match (conf.mtu, addressing.mtu) {
        (Some(m), _) | (None, Some(m)) => m,
        (None, None) => uplink_mtu(vm),
    };
    let host_link = interface(vm, env, netns, container_nl, host, &addressing, mtu)?;
    tagger.add(&host_link, tag).map_err(tagger_error)?;
    // The hypervisor's agent sets `up` once it programmed the port (a pool port already is).
    if port.up != Some(true) {
        vm.wait_port(&port, "up", WaitUntil::Equal, Datum::atom(true), deadline)
            .await
            .map_err(|e| match e {
                TxnError::Failed { .. } => CniError::new(
                    code::PORT_NOT_UP,
                    format!(
                        "port {} is not up in OVN after {:?}",
                        port.name, conf.up_timeout
                    ),
                )
                .with_details(format!(
                    "is the hypervisor's agent running and is the VM's port {} bound?",
                    conf.vm_port
                )),
                e => e.into_cni("waiting for the port to come up"),
            })?;
    }
    Ok(Attachment {
        host_ifname: host.to_owned(),
        host_mac: host_link.mac,
        ifname: env.ifname.clone(),
        mac: addressing.mac,
        netns: env.netns.clone().unwrap_or_default(),
        mtu,
        address: addressing.address,
        gateway: addressing.gateway,
        dns: addressing.dns,
    })
}

fn uplink_mtu(vm: &mut Vm<'_>) -> u32 {
    if vm.conf.tagger == TaggerKind::Bpf
        && let Ok(Some(l)) = vm.netlink.link(&vm.conf.uplink)
    {
        return l.mtu;
    }
    1500
}

/// The veth: VM end `host` (up), container end `CNI_IFNAME` with the port's MAC, address
/// and default route (up).
fn interface(
    vm: &mut Vm<'_>,
    env: &Env,
    netns: &std::fs::File,
    container_nl: &mut Netlink,
    host: &str,
    a: &Addressing,
    mtu: u32,
) -> Result<Link, CniError> {
    let fail = |what: &str| {
        let what = what.to_owned();
        move |e: std::io::Error| CniError::new(code::INTERFACE, what).with_details(e)
    };
    vm.netlink
        .create_veth(host, &env.ifname, netns, a.mac, mtu)
        .map_err(fail(&format!("creating veth {host} / {}", env.ifname)))?;
    let host_link = vm
        .netlink
        .link(host)
        .map_err(fail("looking up the host veth"))?
        .ok_or_else(|| CniError::new(code::INTERFACE, format!("veth {host} vanished")))?;
    vm.netlink
        .set_up(host_link.index)
        .map_err(fail("host veth up"))?;
    let c = container_nl
        .link(&env.ifname)
        .map_err(fail("looking up the container's interface"))?
        .ok_or_else(|| CniError::new(code::INTERFACE, format!("{} vanished", env.ifname)))?;
    container_nl
        .add_address(c.index, a.address)
        .map_err(fail(&format!("adding {}", a.address)))?;
    container_nl.set_up(c.index).map_err(fail("interface up"))?;
    if let Some(gw) = a.gateway {
        container_nl
            .add_default_route(c.index, gw, a.address)
            .map_err(fail(&format!("default route via {gw}")))?;
    }
    Ok(host_link)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requested_addresses_become_the_addresses_column() {
        assert_eq!(Requested::default().addresses(), "dynamic");
        let mac = Some([2, 0, 0, 0, 0, 9]);
        let ip = Some("10.0.0.9".parse().unwrap());
        let r = |ip, mac| Requested {
            ip,
            prefix: None,
            mac,
        };
        assert_eq!(r(None, mac).addresses(), "02:00:00:00:00:09 dynamic");
        assert_eq!(r(ip, None).addresses(), "dynamic 10.0.0.9");
        assert_eq!(r(ip, mac).addresses(), "02:00:00:00:00:09 10.0.0.9");
    }
}
