//! What every command shares: the VM's Northbound connection, its lock, its tagger, the
//! naming of host-side veths, and releasing a port (to the pool or out of the NB).

use std::{
    fs::File,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use ovnest_ovsdb::{Clause, Datum, Operation, OperationResult, WaitUntil};

use crate::{
    config::NetConf,
    lock::{self, Lock},
    nb::{Lsp, Nb, TxnError, View},
    netlink::{Link, Netlink},
    pool,
    spec::{CniError, code},
    tagger::{Tagger, TaggerError},
};

/// How long `connect` waits for the Northbound (every remote refusing ends it sooner).
pub const NB_TIMEOUT: Duration = Duration::from_secs(5);

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The VM-side end of a container's veth: derived from the attachment's key, so DEL and
/// GC find it without the Northbound. `ovc` + 12 hex digits of FNV-1a: 15 bytes, the
/// longest a Linux interface name can be.
pub fn host_ifname(container_id: &str, ifname: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in container_id.bytes().chain(*b"/").chain(ifname.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("ovc{:012x}", h & 0xffff_ffff_ffff)
}

pub fn tagger_error(e: TaggerError) -> CniError {
    CniError::new(code::TAGGER, "in-VM tagger").with_details(e)
}

pub fn io_error(what: &str) -> impl FnOnce(std::io::Error) -> CniError + '_ {
    move |e| CniError::new(code::IO_FAILURE, what.to_owned()).with_details(e)
}

/// Opens the container's namespace; a missing one means the container is gone (3).
pub fn open_netns(path: &std::path::Path) -> Result<File, CniError> {
    crate::netns::open(path).map_err(|e| {
        let code = if e.kind() == std::io::ErrorKind::NotFound {
            code::UNKNOWN_CONTAINER
        } else {
            code::IO_FAILURE
        };
        CniError::new(
            code,
            format!("cannot open the container's namespace {}", path.display()),
        )
        .with_details(e)
    })
}

/// The VM as one plugin run sees it.
pub struct Vm<'a> {
    pub conf: &'a NetConf,
    pub nb: Nb,
    /// rtnetlink in the VM's own namespace (where the plugin runs).
    pub netlink: Netlink,
}

impl<'a> Vm<'a> {
    pub async fn connect(conf: &'a NetConf) -> Result<Vm<'a>, CniError> {
        let netlink = Netlink::open().map_err(io_error("rtnetlink socket"))?;
        let nb = Nb::connect(&conf.nb, conf.ssl.as_ref(), NB_TIMEOUT).await?;
        Ok(Vm { conf, nb, netlink })
    }

    pub fn lock(&self) -> Result<Lock, CniError> {
        let path = lock::path(&self.conf.state_dir, &self.conf.vm_port, "vm");
        Lock::acquire(&path).map_err(|e| {
            CniError::new(code::IO_FAILURE, format!("locking {}", path.display())).with_details(e)
        })
    }

    pub async fn view(&self) -> Result<View, CniError> {
        let view = View::read(&self.nb, &self.conf.switch, &self.conf.vm_port)
            .await
            .map_err(|e| e.into_cni("reading the VM's ports"))?;
        if !view.parent_exists {
            return Err(CniError::new(
                code::INVALID_CONFIG,
                format!(
                    "the VM's port {:?} (\"vmPort\") is not in the Northbound",
                    self.conf.vm_port
                ),
            ));
        }
        Ok(view)
    }

    /// The tagger if it is set up; loads nothing (DEL, CHECK, GC).
    pub fn existing_tagger(&mut self) -> Result<Option<Tagger>, CniError> {
        Tagger::existing(self.conf, &mut self.netlink).map_err(tagger_error)
    }

    /// The tagger, loaded and attached if needed (ADD only), with the entries of the
    /// containers the NB says this VM has (restored if it had to be reloaded). Call
    /// under the lock.
    pub fn tagger(&mut self, view: &View) -> Result<Tagger, CniError> {
        let existing: Vec<(String, u16)> = view
            .children
            .iter()
            .filter_map(|p| match (pool::owned(p), p.tag) {
                (Some(pool::Owned::Used { container, ifname }), Some(tag)) => {
                    Some((host_ifname(container, ifname), tag))
                }
                _ => None,
            })
            .collect();
        Tagger::open(self.conf, &mut self.netlink, &existing).map_err(tagger_error)
    }

    /// Removes a container's VM side: its tagger entry and its veth (which takes the
    /// container's end with it). Missing pieces are fine (DEL is idempotent).
    pub fn unplug(
        &mut self,
        tagger: Option<&mut Tagger>,
        host: &str,
        vid: Option<u16>,
    ) -> Result<(), CniError> {
        let link: Option<Link> = self
            .netlink
            .link(host)
            .map_err(io_error("looking up the host veth"))?;
        if let Some(tagger) = tagger {
            tagger
                .remove(host, link.as_ref().map(|l| l.index), vid)
                .map_err(tagger_error)?;
        }
        if link.is_some() {
            self.netlink
                .delete_link(host)
                .map_err(io_error("deleting the host veth"))?;
        }
        Ok(())
    }

    /// Gives a container's port back: to the pool while it holds fewer than `max` (and
    /// the port's addresses came from OVN), else out of the NB. `free_now` is the pool's
    /// size; returns whether the port went back to it.
    pub async fn release(
        &self,
        port: &Lsp,
        container: &str,
        free_now: usize,
    ) -> Result<bool, CniError> {
        let recycle = pool::recycles(port, free_now, self.conf.pool.max);
        let ops = if recycle {
            vec![pool::recycle_op(
                port,
                &self.conf.switch,
                container,
                now_ms(),
            )]
        } else {
            pool::delete_ops(&[port])
        };
        self.nb
            .transact(ops)
            .await
            .map_err(|e| e.into_cni("releasing the container's port"))?;
        Ok(recycle)
    }

    pub fn free_now(&self, view: &View) -> usize {
        pool::free_ports(&view.children, &self.conf.switch).len()
    }

    /// Waits (in the NB server, RFC 7047 `wait`) until `column` of the port is no longer
    /// `empty` (`until: NotEqual`) or is `value` (`until: Equal`), up to `deadline`, and
    /// returns the port as it is then.
    pub async fn wait_port(
        &self,
        port: &Lsp,
        column: &str,
        until: WaitUntil,
        value: Datum,
        deadline: Instant,
    ) -> Result<Lsp, TxnError> {
        let timeout_ms = deadline
            .saturating_duration_since(Instant::now())
            .as_millis() as u64;
        let by_uuid = Clause::eq("_uuid", Datum::atom(port.uuid));
        let ops = vec![
            Operation::Wait {
                table: "Logical_Switch_Port".into(),
                conditions: vec![by_uuid.clone()],
                columns: vec![column.into()],
                until,
                rows: vec![ovnest_ovsdb::RowData::from([(column.to_owned(), value)])],
                timeout_ms: Some(timeout_ms.max(1)),
            },
            crate::nb::select("Logical_Switch_Port", vec![by_uuid], crate::nb::LSP_COLUMNS),
        ];
        let mut results = self.nb.transact(ops).await?;
        match results.pop() {
            Some(OperationResult::Rows(rows)) => {
                rows.first()
                    .and_then(Lsp::from_row)
                    .ok_or_else(|| TxnError::Failed {
                        index: Some(1),
                        error: format!("port {} is gone", port.name),
                    })
            }
            _ => Err(TxnError::Failed {
                index: Some(1),
                error: "no rows".into(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_veth_names_fit_and_differ() {
        let a = host_ifname("c0ffee", "eth0");
        assert_eq!(a.len(), 15);
        assert!(a.starts_with("ovc"));
        assert_eq!(a, host_ifname("c0ffee", "eth0"), "stable");
        assert_ne!(a, host_ifname("c0ffee", "eth1"));
        assert_ne!(a, host_ifname("c0ffe", "eeth0"));
    }
}
