//! `put_arp` / `put_nd`: learned IP → MAC bindings for the Southbound MAC_Binding
//! table, buffered as pinctrl buffers them (controller/mac-learn.c): one entry per
//! (datapath, port, IP) with the latest MAC, at most 1000 waiting, committed at once
//! when the frame that taught it was unicast and after a random 1-50 ms otherwise (so
//! chassis that all saw the same broadcast do not race to write the same row).

use std::time::{Duration, Instant};

use ovnest_logical::db::Uuid;
use ovnest_logical::flow::{Field, Flow};
use ovnest_logical::pipeline::{DpId, Pipeline, v4_mapped};
use ovnest_logical::symtab::FieldRef;

/// pinctrl's `MAX_MAC_BINDINGS`.
pub const MAX_PENDING: usize = 1000;
/// pinctrl's `MAX_MAC_BINDING_DELAY_MSEC`.
pub const MAX_DELAY_MS: u64 = 50;

/// One MAC_Binding row to insert, or to update when (logical_port, ip) exists with
/// another MAC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MacBindingUpsert {
    pub logical_port: String,
    /// Datapath_Binding UUID.
    pub datapath: Uuid,
    pub dp_key: u32,
    pub port_key: u32,
    /// As OVN writes it: dotted IPv4 for IPv4, IPv6 text otherwise.
    pub ip: String,
    /// `aa:bb:cc:dd:ee:ff`.
    pub mac: String,
    /// Learned by `put_nd`.
    pub nd: bool,
}

#[derive(Debug, Clone)]
struct Pending {
    dp_key: u32,
    port_key: u32,
    ip: u128,
    mac: u64,
    nd: bool,
    commit_at: Instant,
    logical_port: String,
    datapath: Uuid,
}

#[derive(Debug, Default)]
pub(crate) struct PutMacBindings {
    pending: Vec<Pending>,
    rng: u64,
}

impl PutMacBindings {
    /// Buffers the binding `flow` carries in `port`, `ip`, `mac`; returns the counter
    /// outcome.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn put(
        &mut self,
        p: &Pipeline,
        dp: DpId,
        flow: &Flow,
        nd: bool,
        port: FieldRef,
        ip: FieldRef,
        mac: FieldRef,
        now: Instant,
    ) -> &'static str {
        let read = |r: FieldRef| {
            let sf = r.resolve();
            (flow.get_bits(sf.field, sf.ofs, sf.n_bits), sf.n_bits)
        };
        // The op's datapath, not the flow's metadata: the interpreter keeps the ingress
        // switch's there across patch ports.
        let dp_key = p.datapath(dp).key;
        let port_key = read(port).0 as u32;
        let (ipv, bits) = read(ip);
        let ip = if bits <= 32 {
            v4_mapped(ipv as u32)
        } else {
            ipv
        };
        let mac = read(mac).0 as u64;
        let unicast = (flow.get(Field::EthDst) >> 40) & 1 == 0;

        if let Some(e) = self
            .pending
            .iter_mut()
            .find(|e| (e.dp_key, e.port_key, e.ip) == (dp_key, port_key, ip))
        {
            e.mac = mac;
            return "updated";
        }
        let Some(pb) = p.port_by_key(dp, port_key) else {
            return "unknown_port";
        };
        if self.pending.len() >= MAX_PENDING {
            return "dropped_full";
        }
        let delay = if unicast {
            0
        } else {
            1 + self.random() % MAX_DELAY_MS
        };
        self.pending.push(Pending {
            dp_key,
            port_key,
            ip,
            mac,
            nd,
            commit_at: now + Duration::from_millis(delay),
            logical_port: pb.name.clone(),
            datapath: p.datapath(dp).uuid,
        });
        "queued"
    }

    /// Removes and returns the bindings due at `now`.
    pub(crate) fn flush(&mut self, now: Instant) -> Vec<MacBindingUpsert> {
        let (due, keep): (Vec<Pending>, Vec<Pending>) =
            self.pending.drain(..).partition(|e| e.commit_at <= now);
        self.pending = keep;
        due.into_iter()
            .map(|e| MacBindingUpsert {
                logical_port: e.logical_port,
                datapath: e.datapath,
                dp_key: e.dp_key,
                port_key: e.port_key,
                ip: ip_text(e.ip),
                mac: super::compose::mac_text(&super::compose::mac(u128::from(e.mac))),
                nd: e.nd,
            })
            .collect()
    }

    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.pending.iter().map(|e| e.commit_at).min()
    }

    /// xorshift64*: spreading commits needs no better randomness.
    fn random(&mut self) -> u64 {
        if self.rng == 0 {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64);
            self.rng = t | 1;
        }
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// OVN's `ipv6_format_mapped`: IPv4-mapped addresses as IPv4.
fn ip_text(ip: u128) -> String {
    let v6 = std::net::Ipv6Addr::from(ip);
    match v6.to_ipv4_mapped() {
        Some(v4) => v4.to_string(),
        None => v6.to_string(),
    }
}
