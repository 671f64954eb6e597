//! The seed's way, for VMs that run OVS: the container's host-side veth becomes an
//! access port of its VLAN on the VM's own bridge (`ovs-vsctl add-port BR IF tag=N`), and
//! the bridge's uplink carries the tagged frames.

use std::process::Command;

use super::TaggerError;

pub struct OvsTagger {
    db: String,
    bridge: String,
}

impl OvsTagger {
    pub fn new(db: &str, bridge: &str) -> OvsTagger {
        OvsTagger {
            db: db.to_owned(),
            bridge: bridge.to_owned(),
        }
    }

    fn vsctl(&self, args: &[&str]) -> Result<String, TaggerError> {
        let db = format!("--db={}", self.db);
        let out = Command::new("ovs-vsctl")
            .args([db.as_str(), "--timeout=10"])
            .args(args)
            .output()
            .map_err(|e| {
                TaggerError(format!(
                    "running ovs-vsctl (is OVS installed in the VM?): {e}"
                ))
            })?;
        if !out.status.success() {
            return Err(TaggerError(format!(
                "ovs-vsctl {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    pub fn add(&self, veth: &str, vid: u16) -> Result<(), TaggerError> {
        let tag = format!("tag={vid}");
        self.vsctl(&["--", "--may-exist", "add-port", &self.bridge, veth, &tag])
            .map(drop)
    }

    pub fn remove(&self, veth: &str) -> Result<(), TaggerError> {
        self.vsctl(&["--if-exists", "del-port", &self.bridge, veth])
            .map(drop)
    }

    /// The access VLAN of `veth` on the bridge.
    pub fn vid(&self, veth: &str) -> Result<Option<u16>, TaggerError> {
        let out = self.vsctl(&["--if-exists", "get", "Port", veth, "tag"])?;
        Ok(out.parse().ok())
    }
}
