//! Writing decisions into the cache maps from a poll thread: entries queue while a batch
//! is processed and are written after it, one `BPF_MAP_UPDATE_ELEM` each (the slow
//! path's cost: only frames that missed queue anything).

use std::{
    os::fd::{AsFd, OwnedFd},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
};

use aya::maps::{Array, HashMap, Map, MapData, MapError};
use ovnest_common::{
    cache::{ACTION_ENCAP, CacheAction, CacheKey, CacheKey6},
    tunnel::{MAX_PEERS, TunnelKey, TunnelPeer},
};

use super::Key;
use crate::pipeline::Snapshot;

/// `BPF_ANY`: create or replace.
const BPF_ANY: u64 = 0;
/// `BPF_NOEXIST`: create only.
const BPF_NOEXIST: u64 = 1;

/// Entries one poll thread may queue between two flushes (a batch's worth; more misses
/// in one batch wait for the next frame of their flow).
pub const PENDING: usize = 64;

/// Install counters, shared by every poll thread's writer and read by the agent.
#[derive(Debug, Default)]
pub struct CacheStats {
    /// New entries written (`BPF_NOEXIST` succeeded).
    pub installs: AtomicU64,
    /// Entries written over an existing one of the same key (a stale generation, or two
    /// threads deciding the same flow).
    pub replaced: AtomicU64,
    /// Writes the kernel refused.
    pub failed: AtomicU64,
    /// Frames XDP keyed whose decision went through conntrack and held for that frame
    /// only (a new or changing connection, an ICMP error...), so was not installed.
    pub conntrack: AtomicU64,
    /// The connection table as of the last frame that went through it: connections
    /// held, committed so far, commits refused by a full table, connections mirrored
    /// into XDP so far (`crate::conntrack::Stats`).
    pub ct_entries: AtomicU64,
    pub ct_commits: AtomicU64,
    pub ct_full: AtomicU64,
    pub ct_mirrored: AtomicU64,
}

/// What [`CacheStats`] held at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InstallCounts {
    pub installs: u64,
    pub replaced: u64,
    pub failed: u64,
    pub conntrack: u64,
    pub ct_entries: u64,
    pub ct_commits: u64,
    pub ct_full: u64,
    pub ct_mirrored: u64,
}

impl CacheStats {
    pub fn read(&self) -> InstallCounts {
        InstallCounts {
            installs: self.installs.load(Relaxed),
            replaced: self.replaced.load(Relaxed),
            failed: self.failed.load(Relaxed),
            conntrack: self.conntrack.load(Relaxed),
            ct_entries: self.ct_entries.load(Relaxed),
            ct_commits: self.ct_commits.load(Relaxed),
            ct_full: self.ct_full.load(Relaxed),
            ct_mirrored: self.ct_mirrored.load(Relaxed),
        }
    }
}

/// The two cache maps' descriptors, from which each poll thread opens its own writer.
#[derive(Debug)]
pub struct CacheMaps {
    pub(crate) v4: OwnedFd,
    pub(crate) v6: OwnedFd,
    /// `TUNNEL_CACHE` (decisions for frames from a tunnel) and `TUNNEL_PEERS` (the
    /// encapsulations' outer header templates).
    pub(crate) tunnel: OwnedFd,
    pub(crate) peers: OwnedFd,
    /// The `CT` array established connections are mirrored into (`crate::conntrack`).
    pub(crate) ct: Option<OwnedFd>,
    pub stats: Arc<CacheStats>,
}

impl CacheMaps {
    /// A writer of its own for one poll thread (the descriptors are duplicated).
    pub fn writer(&self) -> Result<CacheWriter, MapError> {
        let open = |fd: &OwnedFd| -> Result<MapData, MapError> {
            let fd = fd.as_fd().try_clone_to_owned().map_err(|io_error| {
                MapError::SyscallError(aya::sys::SyscallError {
                    call: "dup",
                    io_error,
                })
            })?;
            MapData::from_fd(fd)
        };
        Ok(CacheWriter {
            v4: HashMap::try_from(Map::from_map_data(open(&self.v4)?)?)?,
            v6: HashMap::try_from(Map::from_map_data(open(&self.v6)?)?)?,
            tunnel: HashMap::try_from(Map::from_map_data(open(&self.tunnel)?)?)?,
            peers: Array::try_from(Map::from_map_data(open(&self.peers)?)?)?,
            pending: Vec::with_capacity(PENDING),
            stats: self.stats.clone(),
            ct: match &self.ct {
                Some(fd) => Some(fd.as_fd().try_clone_to_owned().map_err(|io_error| {
                    MapError::SyscallError(aya::sys::SyscallError {
                        call: "dup",
                        io_error,
                    })
                })?),
                None => None,
            },
        })
    }
}

/// One poll thread's access to the cache maps.
pub struct CacheWriter {
    v4: HashMap<MapData, CacheKey, CacheAction>,
    v6: HashMap<MapData, CacheKey6, CacheAction>,
    tunnel: HashMap<MapData, TunnelKey, CacheAction>,
    peers: Array<MapData, TunnelPeer>,
    pending: Vec<(Key, CacheAction)>,
    stats: Arc<CacheStats>,
    ct: Option<OwnedFd>,
}

impl core::fmt::Debug for CacheWriter {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("CacheWriter")
            .field("pending", &self.pending.len())
            .finish_non_exhaustive()
    }
}

impl CacheWriter {
    /// A mirror of the connection table into the program's `CT` array, for the
    /// datapath's [`Shared`](crate::conntrack::Shared) table (`None` without one). Tried
    /// once: after a failure (logged once) established connections stay in userspace.
    pub fn ct_mirror(&mut self) -> Option<crate::conntrack::BpfMirror> {
        let fd = self.ct.take()?;
        crate::conntrack::BpfMirror::open(&fd)
            .inspect_err(|e| {
                tracing::warn!(
                    "conntrack mirror: {e}; established connections are not carried in XDP"
                )
            })
            .ok()
    }

    /// Counts a keyed frame whose decision is not installed because it went through
    /// conntrack.
    #[inline]
    pub fn count_conntrack(&self) {
        self.stats.conntrack.fetch_add(1, Relaxed);
    }

    /// Publishes the connection table's figures for `ovnest status`.
    #[inline]
    pub fn publish_conntrack(&self, entries: usize, stats: &crate::conntrack::Stats) {
        let s = &self.stats;
        s.ct_entries.store(entries as u64, Relaxed);
        s.ct_commits.store(stats.committed, Relaxed);
        s.ct_full.store(stats.full, Relaxed);
        s.ct_mirrored.store(stats.mirrored, Relaxed);
    }

    /// Queues an entry (once per key per batch; dropped when the queue is full).
    #[inline]
    pub fn push(&mut self, key: Key, action: CacheAction) {
        if self.pending.len() < PENDING && !self.pending.iter().any(|(k, _)| *k == key) {
            self.pending.push((key, action));
        }
    }

    /// [`CacheWriter::push`] for a decision made with `snap`: an encapsulation first
    /// writes its peer's outer header template, tagged with the entry's generation
    /// (always: another poll thread may have written the slot from other tables; the
    /// program uses a template only for entries of its generation).
    pub fn push_decision(&mut self, snap: &Snapshot, key: Key, action: CacheAction) {
        if action.kind == ACTION_ENCAP {
            let Some(peer) =
                super::action::peer_template(snap, action.tunnel_peer, action.generation)
            else {
                return;
            };
            if action.tunnel_peer >= MAX_PEERS {
                return;
            }
            if let Err(e) = self.peers.set(action.tunnel_peer, &peer, 0) {
                tracing::debug!("tunnel peer template {}: {e}", action.tunnel_peer);
                self.stats.failed.fetch_add(1, Relaxed);
                return;
            }
        }
        self.push(key, action);
    }

    /// Entries queued and not yet written.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Writes the queued entries.
    pub fn flush(&mut self) {
        for (key, action) in self.pending.drain(..) {
            let result = match &key {
                Key::V4(k) => write(&mut self.v4, k, &action),
                Key::V6(k) => write(&mut self.v6, k, &action),
                Key::Tunnel(k) => write(&mut self.tunnel, k, &action),
            };
            let counter = match result {
                Ok(true) => &self.stats.installs,
                Ok(false) => &self.stats.replaced,
                Err(e) => {
                    tracing::debug!("decision cache install: {e}");
                    &self.stats.failed
                }
            };
            counter.fetch_add(1, Relaxed);
        }
    }
}

/// Creates the entry (`Ok(true)`), or replaces the one of its key (`Ok(false)`).
fn write<K: aya::Pod>(
    map: &mut HashMap<MapData, K, CacheAction>,
    key: &K,
    action: &CacheAction,
) -> Result<bool, MapError> {
    match map.insert(key, action, BPF_NOEXIST) {
        Ok(()) => Ok(true),
        Err(MapError::SyscallError(e)) if e.io_error.raw_os_error() == Some(libc::EEXIST) => {
            map.insert(key, action, BPF_ANY).map(|()| false)
        }
        Err(e) => Err(e),
    }
}
