//! The network configuration a runtime streams on stdin: the spec's keys (`cniVersion`,
//! `name`, `type`, `prevResult`, `runtimeConfig`) and ovnest's own. Malformed JSON is
//! error 6, a well-formed configuration that cannot work is error 7.
//!
//! ```json
//! { "cniVersion": "1.0.0", "name": "dmz", "type": "ovnest-cni",
//!   "nb": "ssl:10.0.0.2:6641", "ssl": { "privateKey": "...", "certificate": "...", "caCert": "..." },
//!   "vmPort": "dmz-vm5", "switch": "dmz", "uplink": "eth0",
//!   "tagger": "bpf", "pool": { "min": 10, "max": 50, "batch": 10 }, "upTimeoutMs": 10000 }
//! ```

use std::{path::PathBuf, time::Duration};

use serde::Deserialize;
use serde_json::Value;

use crate::spec::{CniError, SUPPORTED_VERSIONS, code};

/// How frames of the containers get their tag inside the VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum TaggerKind {
    /// TC eBPF on the veths and the uplink (no OVS in the VM).
    Bpf,
    /// An access port of the container's VLAN on the VM's own OVS bridge (the seed's way).
    Ovs,
}

/// Certificates for `ssl:` remotes, as `ovn-nbctl -p/-c/-C` take them (PEM files).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SslFiles {
    pub private_key: PathBuf,
    pub certificate: PathBuf,
    pub ca_cert: PathBuf,
}

/// Pre-created ports per VM: keep `min` free, return ports to the pool on DEL while it
/// holds fewer than `max`, create `batch` ports per NB transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PoolConfig {
    pub min: u32,
    pub max: u32,
    pub batch: u32,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            min: 0,
            max: 0,
            batch: 10,
        }
    }
}

impl PoolConfig {
    pub fn enabled(&self) -> bool {
        self.max > 0
    }
}

/// ovnest's part of the configuration, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct NetConf {
    pub cni_version: String,
    /// The CNI network name.
    pub name: String,
    /// NB remotes in OVS syntax (`unix:`, `tcp:`, `ssl:`, comma-separated).
    pub nb: String,
    pub ssl: Option<SslFiles>,
    /// The VM's own logical switch port: `parent_name` of every container port.
    pub vm_port: String,
    /// The logical switch the containers attach to.
    pub switch: String,
    /// The VM's interface towards OVN (carries the tagged frames).
    pub uplink: String,
    pub tagger: TaggerKind,
    /// For `tagger: ovs`: the VM's bridge and its database.
    pub ovs_bridge: String,
    pub ovs_db: String,
    pub pool: PoolConfig,
    pub up_timeout: Duration,
    /// GC leaves attachments changed more recently than this alone (an ADD may be
    /// between claiming its port and creating its interface).
    pub gc_grace: Duration,
    /// Overrides the MTU from the DHCP options / uplink.
    pub mtu: Option<u32>,
    /// Locks (and nothing else: state lives in the NB).
    pub state_dir: PathBuf,
    /// Where the tagger's maps and programs are pinned (a bpffs mount or a directory
    /// under one).
    pub bpffs: PathBuf,
    /// `prevResult` (CHECK, DEL).
    pub prev_result: Option<Value>,
    /// CNI 1.1 GC: `cni.dev/valid-attachments`.
    pub valid_attachments: Option<Vec<(String, String)>>,
    /// `runtimeConfig.ips` / `runtimeConfig.mac` (static addresses).
    pub runtime_ips: Vec<String>,
    pub runtime_mac: Option<String>,
    /// The configuration as received (handed to the background pool refill).
    pub raw: Vec<u8>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Raw {
    cni_version: Option<String>,
    name: Option<String>,
    #[serde(rename = "type")]
    _type: Option<String>,
    nb: Option<String>,
    ssl: Option<SslFiles>,
    vm_port: Option<String>,
    switch: Option<String>,
    uplink: Option<String>,
    tagger: Option<TaggerKind>,
    ovs_bridge: Option<String>,
    ovs_db: Option<String>,
    pool: Option<PoolConfig>,
    up_timeout_ms: Option<u64>,
    gc_grace_ms: Option<u64>,
    mtu: Option<u32>,
    state_dir: Option<PathBuf>,
    bpffs: Option<PathBuf>,
    prev_result: Option<Value>,
    runtime_config: Option<RuntimeConfig>,
    #[serde(rename = "cni.dev/valid-attachments")]
    valid_attachments: Option<Vec<ValidAttachment>>,
}

#[derive(Deserialize, Default)]
struct RuntimeConfig {
    #[serde(default)]
    ips: Vec<String>,
    mac: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ValidAttachment {
    #[serde(rename = "containerID")]
    container_id: String,
    ifname: String,
}

pub const DEFAULT_STATE_DIR: &str = "/run/ovnest-cni";
pub const DEFAULT_BPFFS: &str = "/sys/fs/bpf/ovnest-cni";
pub const DEFAULT_OVS_DB: &str = "unix:/var/run/openvswitch/db.sock";
pub const DEFAULT_UP_TIMEOUT: Duration = Duration::from_secs(10);

impl NetConf {
    /// Parses stdin. Only `cniVersion` is looked at for VERSION.
    pub fn parse(bytes: &[u8]) -> Result<NetConf, CniError> {
        let raw: Raw = serde_json::from_slice(bytes).map_err(|e| {
            // Wrong types for known keys are a configuration error, garbage is a decode one.
            let code = if e.is_data() {
                code::INVALID_CONFIG
            } else {
                code::DECODE
            };
            CniError::new(code, "cannot read the network configuration").with_details(e)
        })?;
        let invalid = |msg: String| CniError::new(code::INVALID_CONFIG, msg);
        let cni_version = raw.cni_version.unwrap_or_else(|| "0.3.0".into());
        if !SUPPORTED_VERSIONS.contains(&cni_version.as_str()) {
            return Err(CniError::new(
                code::INCOMPATIBLE_VERSION,
                format!("cniVersion {cni_version} is not supported"),
            )
            .with_details(format!("supported: {}", SUPPORTED_VERSIONS.join(", "))));
        }
        let required = |v: Option<String>, key: &str| {
            v.filter(|s| !s.trim().is_empty())
                .ok_or_else(|| invalid(format!("\"{key}\" is required")))
        };
        let name = required(raw.name, "name")?;
        let nb = required(raw.nb, "nb")?;
        let remotes = crate::nb::parse_remotes(&nb).map_err(|e| invalid(format!("\"nb\": {e}")))?;
        if remotes.iter().any(|r| r.starts_with("ssl:")) && raw.ssl.is_none() {
            return Err(invalid(
                "\"nb\" has an ssl: remote but \"ssl\" (privateKey, certificate, caCert) is missing"
                    .into(),
            ));
        }
        let vm_port = required(raw.vm_port, "vmPort")?;
        let switch = raw.switch.unwrap_or_else(|| name.clone());
        let tagger = raw.tagger.unwrap_or(TaggerKind::Bpf);
        let uplink = raw.uplink.unwrap_or_default();
        if tagger == TaggerKind::Bpf {
            crate::spec::check_ifname(&uplink)
                .map_err(|e| invalid(format!("\"uplink\" (the VM's interface to OVN): {e}")))?;
        }
        let ovs_bridge = raw.ovs_bridge.unwrap_or_default();
        if tagger == TaggerKind::Ovs && ovs_bridge.is_empty() {
            return Err(invalid("\"tagger\": \"ovs\" needs \"ovsBridge\"".into()));
        }
        let pool = raw.pool.unwrap_or_default();
        if pool.min > pool.max {
            return Err(invalid(format!(
                "\"pool\": min {} is above max {}",
                pool.min, pool.max
            )));
        }
        if pool.max > u32::from(ovnest_common::tagger::MAX_VID) {
            return Err(invalid(format!(
                "\"pool\": max {} is above the {} VLAN ids a VM has",
                pool.max,
                ovnest_common::tagger::MAX_VID
            )));
        }
        if pool.enabled() && pool.batch == 0 {
            return Err(invalid("\"pool\": batch must be at least 1".into()));
        }
        if let Some(mtu) = raw.mtu
            && !(576..=65535).contains(&mtu)
        {
            return Err(invalid(format!("\"mtu\": {mtu} is out of 576..65535")));
        }
        let runtime = raw.runtime_config.unwrap_or_default();
        let up_timeout = raw
            .up_timeout_ms
            .map_or(DEFAULT_UP_TIMEOUT, Duration::from_millis);
        Ok(NetConf {
            cni_version,
            name,
            nb,
            ssl: raw.ssl,
            vm_port,
            switch,
            uplink,
            tagger,
            ovs_bridge,
            ovs_db: raw.ovs_db.unwrap_or_else(|| DEFAULT_OVS_DB.into()),
            pool,
            up_timeout,
            gc_grace: raw
                .gc_grace_ms
                .map_or(up_timeout + Duration::from_secs(30), Duration::from_millis),
            mtu: raw.mtu,
            state_dir: raw
                .state_dir
                .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR)),
            bpffs: raw.bpffs.unwrap_or_else(|| PathBuf::from(DEFAULT_BPFFS)),
            prev_result: raw.prev_result,
            valid_attachments: raw
                .valid_attachments
                .map(|v| v.into_iter().map(|a| (a.container_id, a.ifname)).collect()),
            runtime_ips: runtime.ips,
            runtime_mac: runtime.mac,
            raw: bytes.to_vec(),
        })
    }

    /// Reads only `cniVersion` (VERSION must answer even with no or a partial config).
    pub fn version_of(bytes: &[u8]) -> Option<String> {
        let v: Value = serde_json::from_slice(bytes).ok()?;
        v["cniVersion"].as_str().map(str::to_owned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"cniVersion":"1.0.0","name":"dmz","type":"ovnest-cni",
        "nb":"unix:/run/ovn/ovnnb_db.sock","vmPort":"dmz-vm5","uplink":"eth0",
        "pool":{"min":2,"max":8,"batch":4},"upTimeoutMs":500,
        "runtimeConfig":{"ips":["10.0.0.9/24"]},
        "cni.dev/valid-attachments":[{"containerID":"a","ifname":"eth0"}],
        "someOtherPluginsKey": true}"#;

    #[test]
    fn reads_a_configuration() {
        let c = NetConf::parse(GOOD.as_bytes()).unwrap();
        assert_eq!(c.switch, "dmz", "switch defaults to the network name");
        assert_eq!(c.tagger, TaggerKind::Bpf);
        assert_eq!(
            c.pool,
            PoolConfig {
                min: 2,
                max: 8,
                batch: 4
            }
        );
        assert_eq!(c.up_timeout, Duration::from_millis(500));
        assert_eq!(c.runtime_ips, vec!["10.0.0.9/24".to_string()]);
        assert_eq!(
            c.valid_attachments,
            Some(vec![("a".to_string(), "eth0".to_string())])
        );
        assert_eq!(
            NetConf::version_of(GOOD.as_bytes()).as_deref(),
            Some("1.0.0")
        );
    }

    fn code_of(json: &str) -> u32 {
        NetConf::parse(json.as_bytes()).unwrap_err().code
    }

    #[test]
    fn bad_configurations_have_the_spec_codes() {
        assert_eq!(code_of("{not json"), code::DECODE);
        assert_eq!(code_of(""), code::DECODE);
        let with = |patch: &str| {
            let mut v: Value = serde_json::from_str(GOOD).unwrap();
            let p: Value = serde_json::from_str(patch).unwrap();
            for (k, val) in p.as_object().unwrap() {
                if val.is_null() {
                    v.as_object_mut().unwrap().remove(k);
                } else {
                    v[k] = val.clone();
                }
            }
            v.to_string()
        };
        assert_eq!(
            code_of(&with(r#"{"cniVersion":"9.9.9"}"#)),
            code::INCOMPATIBLE_VERSION
        );
        for patch in [
            r#"{"nb":null}"#,
            r#"{"nb":"http://x"}"#,
            r#"{"nb":"ssl:10.0.0.1:6641"}"#,
            r#"{"vmPort":null}"#,
            r#"{"uplink":null}"#,
            r#"{"uplink":"a/b"}"#,
            r#"{"tagger":"ovs"}"#,
            r#"{"tagger":"vlan"}"#,
            r#"{"pool":{"min":9,"max":8}}"#,
            r#"{"pool":{"max":5000}}"#,
            r#"{"pool":{"max":5,"batch":0}}"#,
            r#"{"pool":{"maximum":5}}"#,
            r#"{"mtu":100}"#,
            r#"{"upTimeoutMs":"soon"}"#,
            r#"{"name":""}"#,
        ] {
            assert_eq!(code_of(&with(patch)), code::INVALID_CONFIG, "{patch}");
        }
    }
}
