//! CHECK: the attachment is still what ADD set up: the port is the container's and `up`
//! in OVN, the container's interface has the port's MAC and address (and what
//! `prevResult` says), the host veth is up and the tagger maps it to the port's tag.

use serde_json::Value;

use crate::{
    addressing,
    netlink::Netlink,
    pool,
    spec::{CniError, Env, Expected, code, format_mac},
    vm::{Vm, host_ifname, io_error, open_netns},
};

fn failed(msg: String) -> CniError {
    CniError::new(code::CHECK_FAILED, msg)
}

pub async fn check(env: &Env, conf: &crate::config::NetConf) -> Result<Value, CniError> {
    let prev = conf.prev_result.as_ref().ok_or_else(|| {
        CniError::new(
            code::INVALID_CONFIG,
            "CHECK needs prevResult in the configuration",
        )
    })?;
    let expected = Expected::from_prev_result(prev, &env.ifname)
        .map_err(|e| CniError::new(code::INVALID_CONFIG, format!("prevResult: {e}")))?;
    let netns = open_netns(&env.netns.clone().unwrap_or_default())?;
    let mut vm = Vm::connect(conf).await?;
    let view = vm.view().await?;
    let port = pool::attachment(&view.children, &env.container_id, &env.ifname)
        .ok_or_else(|| {
            failed(format!(
                "no port in the Northbound for {}/{}",
                env.container_id, env.ifname
            ))
        })?
        .clone();
    if port.up != Some(true) {
        return Err(failed(format!("port {} is not up in OVN", port.name)));
    }
    let want = addressing::addressing(&view, &port, None)
        .map_err(|e| failed(format!("port {} has no usable address: {e:?}", port.name)))?;
    if expected.mac.is_some_and(|m| m != want.mac) {
        return Err(failed(format!(
            "prevResult has MAC {}, the port has {}",
            format_mac(&expected.mac.unwrap_or_default()),
            format_mac(&want.mac)
        )));
    }
    if !expected
        .addresses
        .iter()
        .any(|a| a.addr == want.address.addr)
    {
        return Err(failed(format!(
            "prevResult does not have the port's address {}",
            want.address
        )));
    }
    let mut cnl = Netlink::open_in(&netns).map_err(io_error("rtnetlink in the container"))?;
    let c = cnl
        .link(&env.ifname)
        .map_err(io_error("looking up the container's interface"))?
        .ok_or_else(|| failed(format!("the container has no {}", env.ifname)))?;
    if c.mac != Some(want.mac) || !c.up {
        return Err(failed(format!("{} is down or has another MAC", env.ifname)));
    }
    let addrs = cnl
        .addresses(c.index)
        .map_err(io_error("reading addresses"))?;
    if !addrs.contains(&want.address) {
        return Err(failed(format!("{} lacks {}", env.ifname, want.address)));
    }
    let host = host_ifname(&env.container_id, &env.ifname);
    let h = vm
        .netlink
        .link(&host)
        .map_err(io_error("looking up the host veth"))?
        .filter(|h| h.up)
        .ok_or_else(|| failed(format!("host veth {host} is missing or down")))?;
    let tag = port
        .tag
        .ok_or_else(|| failed(format!("port {} has no tag", port.name)))?;
    let tagger = vm
        .existing_tagger()?
        .ok_or_else(|| failed(format!("no tagger on {}", conf.uplink)))?;
    tagger.check(&h, tag).map_err(failed)?;
    Ok(Value::Null)
}
