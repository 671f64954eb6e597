//! Keeping the pool at `min` free ports: new ports are created `batch` per NB
//! transaction, then locked down (`port_security`) once ovn-northd gave them addresses.
//! The hypervisor's agent binds them right away (their parent is bound), so a container
//! that takes one later finds it `up`.
//!
//! An ADD that drains the pool below `min` starts [`spawn`]: this same binary, detached
//! (own session, no stdio), so the runtime gets its result without waiting. A refill
//! already running makes the next one a no-op (a second lock).

use std::{
    io::Write as _,
    os::unix::process::CommandExt as _,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::{Value, json};

use crate::{
    config::NetConf,
    lock::{self, Lock},
    nb::TxnError,
    pool::{self, NewPort},
    spec::{CniError, code},
    vm::{Vm, io_error, now_ms},
};

/// The environment variable that makes the plugin binary refill instead of serving CNI.
pub const REFILL_ENV: &str = "OVNEST_CNI_REFILL";

/// Starts a detached refill with configuration `raw` (as the runtime sent it).
pub fn spawn(raw: &[u8]) {
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let mut cmd = Command::new(exe);
    cmd.arg0("ovnest-cni")
        .env(REFILL_ENV, "1")
        .env_remove("CNI_COMMAND")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: setsid is async-signal-safe and touches no memory of the parent; the child
    // leaves the runtime's session so it outlives this plugin run.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        })
    };
    match cmd.spawn() {
        // The pipe holds the configuration after we exit; the child is not waited for.
        Ok(mut child) => {
            if let Some(mut stdin) = child.stdin.take() {
                let _ = stdin.write_all(raw);
            }
        }
        Err(e) => tracing::warn!("ovnest-cni: cannot start the pool refill: {e}"),
    }
}

/// Brings the pool up to `min` free ports; returns the names created.
pub async fn fill(conf: &NetConf) -> Result<Value, CniError> {
    let path = lock::path(&conf.state_dir, &conf.vm_port, "refill");
    let Some(_refilling) = Lock::try_acquire(&path).map_err(io_error("refill lock"))? else {
        return Ok(json!({ "created": [], "skipped": "another refill is running" }));
    };
    let vm = Vm::connect(conf).await?;
    let mut created = Vec::new();
    let mut conflicts = 0;
    loop {
        let lock = vm.lock()?;
        let view = vm.view().await?;
        let Some(switch) = view.switch.as_ref() else {
            return Err(CniError::new(
                code::INVALID_CONFIG,
                format!("logical switch {:?} is not in the Northbound", conf.switch),
            ));
        };
        let want = pool::refill_batch(&view.children, &conf.switch, conf.pool, created.len());
        if want == 0 {
            break;
        }
        let tags = pool::free_tags(&view.children, want);
        if tags.is_empty() {
            break;
        }
        let now = now_ms();
        let ports: Vec<NewPort> = tags
            .iter()
            .map(|&tag| NewPort {
                tag,
                name: pool::port_name(&conf.vm_port, tag),
                addresses: "dynamic".into(),
                external_ids: pool::free_ids(&conf.switch, now),
            })
            .collect();
        let dhcp = crate::addressing::switch_subnet(&view).and_then(|s| {
            view.dhcp
                .iter()
                .find(|d| {
                    d.cidr
                        .parse::<crate::spec::Ipv4Net>()
                        .is_ok_and(|c| c.network() == s)
                })
                .map(|d| d.uuid)
        });
        match vm
            .nb
            .transact(pool::insert_ops(switch.uuid, &conf.vm_port, dhcp, &ports))
            .await
        {
            Ok(_) => created.extend(ports.into_iter().map(|p| p.name)),
            Err(TxnError::Failed { index: Some(i), .. })
                if i < pool::GUARDS * ports.len() && conflicts < 8 =>
            {
                conflicts += 1;
            }
            Err(e) => return Err(e.into_cni("creating pool ports")),
        }
        drop(lock);
    }
    lock_down(&vm, conf.up_timeout).await?;
    Ok(json!({ "created": created }))
}

/// Completes pending pool ports once northd has allocated their addresses (one
/// transaction per pass), so the hypervisor binds them and they are `up` when taken.
async fn lock_down(vm: &Vm<'_>, timeout: Duration) -> Result<(), CniError> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(5);
    loop {
        let view = vm.view().await?;
        let pending_ports = pool::pending_free(&view.children, &vm.conf.switch);
        let ops: Vec<_> = pending_ports
            .iter()
            .filter_map(|p| {
                let tag = pool::reserved_tag(p)?;
                let (mac, ip) = crate::addressing::port_mac_ip(p).ok()?;
                Some(pool::complete_op(
                    p,
                    tag,
                    &format!("{} {ip}", crate::spec::format_mac(&mac)),
                ))
            })
            .collect();
        let pending = pending_ports.len() - ops.len();
        if !ops.is_empty() {
            vm.nb
                .transact(ops)
                .await
                .map_err(|e| e.into_cni("completing pool ports"))?;
        }
        if pending == 0 || Instant::now() >= deadline {
            return Ok(());
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}
