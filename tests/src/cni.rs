//! Driving `ovnest-cni` as a container runtime does: exec the plugin (inside the VM's
//! network namespace) with the CNI environment and the configuration on stdin, read the
//! JSON it prints. Plus a lab whose vm5 runs containers through the plugin, and what
//! tests need to look at: container namespaces, the VM's ports in the Northbound.

use std::{
    io::Write as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use ovnest_lab::{Lab, LabArgs, containers::Containers};
use serde_json::Value;

use crate::netns::NetNs;

/// A lab torn down on drop, with its own prefix and directory.
pub struct CniLab {
    pub lab: Lab,
}

impl CniLab {
    /// `name` keeps labs of parallel tests apart; `ovnest` is the binary under test.
    pub fn up(name: &str, containers: Containers, ovnest: &Path) -> CniLab {
        let prefix = format!("c{}{name}-", std::process::id() % 10000);
        let dir = std::env::temp_dir().join(format!("ovnest-test-{prefix}"));
        Lab::down(&dir);
        let args = LabArgs {
            dir,
            prefix,
            ovnest: Some(ovnest.to_owned()),
            agent: ovnest_lab::AgentKind::Ovnest,
            // The lab's default: the XDP fast path, the logical pipeline behind it (the
            // router answers the containers' gateway pings).
            datapath: ovnest::agent::config::DatapathMode::Hybrid,
            containers,
            addressing: ovnest_lab::Addressing::Static,
            hypervisors: 1,
            hv2_agent: Default::default(),
        };
        CniLab {
            lab: Lab::up(&args).unwrap_or_else(|e| panic!("lab up: {e:#}")),
        }
    }

    /// The plugin as a runtime finds it (`ovnest-cni` → the ovnest binary).
    pub fn plugin(&self) -> PathBuf {
        ovnest_lab::containers::cni_dir(&self.lab).join("bin/ovnest-cni")
    }

    /// The single-plugin configuration for a VM of this lab (`extra` keys override).
    pub fn conf(&self, vm_port: &str, uplink: &str, extra: Value) -> Value {
        ovnest_lab::containers::single_conf(&ovnest_lab::containers::plugin_conf(
            &self.lab, "dmz", vm_port, uplink, extra,
        ))
    }

    /// vm5's configuration as the lab wrote it.
    pub fn vm5_conf(&self) -> Value {
        self.conf("dmz-vm5", "brvm5-brint", serde_json::json!({}))
    }

    pub fn nbctl(&self, args: &[&str]) -> String {
        self.lab
            .nbctl(args)
            .unwrap_or_else(|e| panic!("ovn-nbctl {}: {e:#}", args.join(" ")))
    }

    /// The VM's child ports: (name, tag, up, external_ids) per row.
    pub fn children(&self, parent: &str) -> Vec<Port> {
        let out = self.nbctl(&[
            "--format=json",
            "--columns=name,tag,up,addresses,port_security,external_ids",
            "find",
            "Logical_Switch_Port",
            &format!("parent_name={parent}"),
        ]);
        let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
        v["data"]
            .as_array()
            .into_iter()
            .flatten()
            .map(Port::from_row)
            .collect()
    }

    pub fn ping(&self, ns: &str, ip: &str) -> bool {
        Command::new("ip")
            .args(["netns", "exec", ns, "ping", "-c1", "-W1", ip])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Pings until one answer, or panics after `timeout`.
    pub fn assert_pings(&self, ns: &str, ip: &str, timeout: Duration) {
        crate::wait::until(&format!("{ns} -> {ip} answers"), timeout, || {
            self.ping(ns, ip).then_some(())
        });
    }
}

impl Drop for CniLab {
    fn drop(&mut self) {
        if std::thread::panicking()
            && let Ok(log) = std::fs::read_to_string(self.lab.dir.join("ovnest.log"))
        {
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!("--- ovnest.log (last lines) ---");
            for l in tail.into_iter().rev() {
                eprintln!("{l}");
            }
        }
        Lab::down(&self.lab.dir);
    }
}

/// One child port of a VM in the Northbound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Port {
    pub name: String,
    pub tag: Option<u16>,
    pub up: bool,
    pub addresses: Vec<String>,
    pub port_security: Vec<String>,
    pub external_ids: Vec<(String, String)>,
}

fn set_items(v: &Value) -> Vec<Value> {
    match v {
        Value::Array(a) if a.first() == Some(&Value::from("set")) => a
            .get(1)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default(),
        other => vec![other.clone()],
    }
}

impl Port {
    fn from_row(row: &Value) -> Port {
        let ids = row[5][1]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|kv| Some((kv[0].as_str()?.to_owned(), kv[1].as_str()?.to_owned())))
            .collect();
        Port {
            name: row[0].as_str().unwrap_or_default().to_owned(),
            tag: set_items(&row[1])
                .first()
                .and_then(Value::as_u64)
                .map(|t| t as u16),
            up: set_items(&row[2]).first().and_then(Value::as_bool) == Some(true),
            addresses: set_items(&row[3])
                .iter()
                .filter_map(|a| a.as_str().map(str::to_owned))
                .collect(),
            port_security: set_items(&row[4])
                .iter()
                .filter_map(|a| a.as_str().map(str::to_owned))
                .collect(),
            external_ids: ids,
        }
    }

    pub fn id(&self, key: &str) -> Option<&str> {
        self.external_ids
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Whose it is: `Some(container)` when a container holds it.
    pub fn container(&self) -> Option<&str> {
        (self.id("ovnest-cni:state") == Some("used"))
            .then(|| self.id("ovnest-cni:container"))
            .flatten()
    }

    pub fn is_free(&self) -> bool {
        self.id("ovnest-cni:state") == Some("free")
    }
}

/// One plugin call.
#[derive(Debug, Clone)]
pub struct Call<'a> {
    pub command: &'a str,
    pub container: &'a str,
    pub netns: Option<&'a str>,
    pub ifname: &'a str,
    pub args: Option<&'a str>,
}

impl<'a> Call<'a> {
    pub fn new(command: &'a str, container: &'a str, netns: Option<&'a str>) -> Call<'a> {
        Call {
            command,
            container,
            netns,
            ifname: "eth0",
            args: None,
        }
    }
}

/// What a plugin run printed, how it exited, how long it took.
#[derive(Debug, Clone)]
pub struct Reply {
    pub success: bool,
    pub json: Option<Value>,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Reply {
    /// The error code of a failed run.
    pub fn code(&self) -> Option<u64> {
        self.json.as_ref()?["code"].as_u64()
    }

    pub fn expect_ok(&self, what: &str) -> &Reply {
        assert!(
            self.success,
            "{what} failed: {:?} {}",
            self.json, self.stderr
        );
        self
    }

    pub fn ip(&self) -> String {
        self.json.as_ref().expect("a result")["ips"][0]["address"]
            .as_str()
            .and_then(|a| a.split('/').next())
            .expect("an address in the result")
            .to_owned()
    }
}

/// Runs `plugin` in the VM namespace `vm_ns` (`None`: here) as a runtime does.
pub fn exec(plugin: &Path, vm_ns: Option<&str>, call: &Call<'_>, conf: &Value) -> Reply {
    exec_raw(plugin, vm_ns, call, conf.to_string().as_bytes())
}

/// [`exec`] with any bytes on stdin.
pub fn exec_raw(plugin: &Path, vm_ns: Option<&str>, call: &Call<'_>, stdin: &[u8]) -> Reply {
    let mut cmd = match vm_ns {
        Some(ns) => {
            let mut c = Command::new("nsenter");
            c.arg(format!("--net=/run/netns/{ns}")).arg(plugin);
            c
        }
        None => Command::new(plugin),
    };
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("CNI_COMMAND", call.command)
        .env("CNI_CONTAINERID", call.container)
        .env("CNI_IFNAME", call.ifname)
        .env("CNI_PATH", plugin.parent().unwrap_or(Path::new("/")))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(ns) = call.netns {
        cmd.env("CNI_NETNS", format!("/run/netns/{ns}"));
    }
    if let Some(a) = call.args {
        cmd.env("CNI_ARGS", a);
    }
    let start = Instant::now();
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("exec {}: {e}", plugin.display()));
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin)
        .expect("write config");
    let out = child.wait_with_output().expect("plugin output");
    let elapsed = start.elapsed();
    let text = String::from_utf8_lossy(&out.stdout);
    Reply {
        success: out.status.success(),
        json: (!text.trim().is_empty()).then(|| {
            serde_json::from_str(text.trim())
                .unwrap_or_else(|e| panic!("plugin printed no JSON ({e}): {text:?}"))
        }),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        elapsed,
    }
}

/// A container's namespace (deleted on drop) and what the plugin put in it.
pub struct Container {
    pub ns: NetNs,
}

impl Container {
    pub fn new(label: &str) -> Container {
        Container {
            ns: NetNs::new(label),
        }
    }

    pub fn name(&self) -> &str {
        self.ns.name()
    }

    /// `ip -4 -o addr show IFNAME` as (address/prefix), and the interface's MAC.
    pub fn interface(&self, ifname: &str) -> Option<(String, String)> {
        let out = Command::new("ip")
            .args(["-n", self.name(), "-o", "link", "show", ifname])
            .output()
            .ok()?;
        if !out.status.success() {
            return None;
        }
        let link = String::from_utf8_lossy(&out.stdout).into_owned();
        let mac = link
            .split_whitespace()
            .skip_while(|w| *w != "link/ether")
            .nth(1)?
            .to_owned();
        let addr = self.ns.ip(&["-4", "-o", "addr", "show", ifname]);
        let ip = addr
            .split_whitespace()
            .skip_while(|w| *w != "inet")
            .nth(1)
            .unwrap_or_default()
            .to_owned();
        Some((ip, mac))
    }
}
