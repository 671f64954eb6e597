//! Garbage collection (CNI 1.1 GC semantics): every attachment of this VM that is not
//! valid any more gives its port back, and the pool is trimmed to `max`. "Valid" is the
//! runtime's list (`cni.dev/valid-attachments`) when it sends one; without it (`ovnest
//! cni gc`, runtimes before CNI 1.1) an attachment is valid while its host veth exists:
//! a container's namespace going away deletes its veth pair.

use std::time::Duration;

use serde_json::{Value, json};

use crate::{
    config::NetConf,
    pool,
    spec::CniError,
    vm::{Vm, host_ifname, io_error, now_ms},
};

/// Attachments changed more recently than this are left to their ADD or DEL.
pub fn grace(conf: &NetConf) -> Duration {
    conf.gc_grace
}

/// Runs a collection; returns what it did (`released`, `deleted_free` port names).
pub async fn gc(conf: &NetConf, grace: Duration) -> Result<Value, CniError> {
    let mut vm = Vm::connect(conf).await?;
    let _lock = vm.lock()?;
    let view = vm.view().await?;
    let live: Vec<String> = vm
        .netlink
        .links()
        .map_err(io_error("listing interfaces"))?
        .into_iter()
        .map(|l| l.name)
        .collect();
    let valid = conf.valid_attachments.clone();
    let plan = pool::gc_plan(
        &view.children,
        &conf.switch,
        conf.pool.max,
        now_ms(),
        grace.as_millis() as u64,
        |c, i| match &valid {
            Some(list) => list.iter().any(|(vc, vi)| vc == c && vi == i),
            None => live.contains(&host_ifname(c, i)),
        },
    );
    let mut tagger = vm.existing_tagger()?;
    let mut released = Vec::new();
    let mut free = vm.free_now(&view).saturating_sub(plan.delete_free.len());
    for port in &plan.release {
        if let Some(pool::Owned::Used { container, ifname }) = pool::owned(port) {
            vm.unplug(tagger.as_mut(), &host_ifname(container, ifname), port.tag)?;
            if vm.release(port, container, free).await? {
                free += 1;
            }
            released.push(port.name.clone());
        }
    }
    if !plan.delete_free.is_empty() {
        vm.nb
            .transact(pool::delete_ops(&plan.delete_free))
            .await
            .map_err(|e| e.into_cni("trimming the pool"))?;
    }
    let deleted: Vec<&str> = plan.delete_free.iter().map(|p| p.name.as_str()).collect();
    Ok(json!({ "released": released, "deleted_free": deleted }))
}
