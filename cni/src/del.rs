//! DEL: the container's veth and tagger entry go, its port returns to the pool or leaves
//! the Northbound. Idempotent, and works without the container's namespace: the host
//! veth's name is derived from the attachment, and deleting it takes the container's end
//! with it.

use serde_json::Value;

use crate::{
    config::NetConf,
    pool,
    spec::{CniError, Env},
    vm::{Vm, host_ifname},
};

pub async fn del(env: &Env, conf: &NetConf) -> Result<Value, CniError> {
    let host = host_ifname(&env.container_id, &env.ifname);
    let mut vm = match Vm::connect(conf).await {
        Ok(vm) => vm,
        Err(e) => {
            // No Northbound: still take the VM side down now; the port is released by a
            // retried DEL or by GC (its container is gone, so its veth is).
            local_only(conf, &host);
            return Err(e);
        }
    };
    let _lock = vm.lock()?;
    let view = vm.view().await?;
    let port = pool::attachment(&view.children, &env.container_id, &env.ifname).cloned();
    let mut tagger = vm.existing_tagger()?;
    vm.unplug(tagger.as_mut(), &host, port.as_ref().and_then(|p| p.tag))?;
    if let Some(port) = port {
        vm.release(&port, &env.container_id, vm.free_now(&view))
            .await?;
    }
    Ok(Value::Null)
}

/// The VM side of DEL without the Northbound (best effort).
fn local_only(conf: &NetConf, host: &str) {
    let Ok(mut nl) = crate::netlink::Netlink::open() else {
        return;
    };
    if let Ok(Some(link)) = nl.link(host) {
        if let Ok(Some(mut tagger)) = crate::tagger::Tagger::existing(conf, &mut nl) {
            let _ = tagger.remove(host, Some(link.index), None);
        }
        let _ = nl.delete_link(host);
    }
}
