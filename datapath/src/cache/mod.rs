//! The decision cache: XDP carries out decisions the logical pipeline already made.
//!
//! With `--datapath hybrid` the XDP program classifies a frame (VIF + tag → logical
//! port, the physical layer) and looks its key up in an LRU hash map of decisions. A hit
//! is executed in the kernel; a miss goes up over AF_XDP, the userspace datapath runs the
//! pipeline, carries the decision out and installs it, so the flow's next frames never
//! leave the kernel. The pipeline stays the only place that decides: the cache holds its
//! answers, keyed so that an answer is only ever reused for a frame the pipeline would
//! answer the same way.
//!
//! # Exact match, not megaflows
//! An entry is a microflow (OVS's EMC, not its megaflow cache): the key
//! ([`key`]) holds every header field the pipeline's packet model has for a frame of that
//! type, plus the logical inport and datapath. Why:
//! - *Correct by construction.* The interpreter is a pure function of the start flow,
//!   the tables and the connections it met (`check_pkt_larger` and every other
//!   length-dependent action is unsupported and never cached), so two frames with one
//!   key get one decision while those connections stay as they were: an entry that went
//!   through conntrack lists them, and XDP checks each before using it
//!   (`crate::conntrack`). A megaflow is only right if its mask covers every bit the
//!   decision depends on: the classifier reports what its lookups consulted
//!   (`Interpreter::wc`), but actions read fields too (`eth.dst = eth.src`,
//!   `arp.tha = arp.sha`, `ip4.dst <-> ip4.src`, `lookup_arp`, `put_dhcp_opts`'s
//!   conditions), and OVS also un-wildcards what it rewrites. One read missed there is a
//!   decision served to the wrong flow: an ACL bypass, found by nobody.
//! - *One lookup.* XDP has no tuple-space search: megaflows with different masks need a
//!   lookup per mask (OVS's dpcls subtables), per frame; exact match is one hash lookup,
//!   and its cost is what the fast path pays on every frame.
//! - *The price* is one miss per new microflow (each connection's first frame goes up).
//!   `ovnest bench` measures that rate against ovn-controller + OVS's upcalls.
//!   The key is already the classifier's word layout, so masks can be added later as a
//!   second level once the interpreter marks every field it reads.
//!
//! # Keys ([`key`])
//! A projection of `Flow` words (`ovnest_common::cache`): userspace picks them from the
//! flow it decided with ([`key::FromFlow`]), XDP computes them from the frame with the
//! values `flow::extract` gives. Frames whose headers the key cannot describe exactly —
//! IPv4 options and fragments, IPv6 extension headers, ND, transport headers cut short,
//! ARP the flow cannot hold — get no key in XDP and always go up; userspace only installs
//! for a frame XDP marked `META_CACHEABLE` (it built a key and missed), so both sides
//! agree on what is cached. IPv6 frames use a second map with a longer key, so the
//! common IPv4 key stays 64 bytes (the kernel hashes the whole key per lookup).
//!
//! # Actions ([`action`])
//! A decision is cached when it is a drop (no delivery, or only deliveries to ports not
//! bound here; counted as `drop_logical` / `drop_not_local`) or exactly one local
//! delivery: egress interface, tag to push, and the header rewrite from `commit`'s view
//! (MACs; IPv4 addresses, TOS, TTL; TCP/UDP ports; ICMP type and code; ARP fields; IPv6
//! addresses, traffic class, flow label, hop limit), with the IPv4 header and transport
//! checksum deltas precomputed: constant per entry because the key fixes every field they
//! read. Transport checksum steps are kept in `commit`'s order with UDP's "only when set"
//! condition per step, so the bytes are `commit`'s bit for bit. Floods (several
//! deliveries), controller actions, unsupported actions and rewrites `commit` refuses are
//! never cached: those frames are decided in userspace every time.
//!
//! # Tunnels
//! A decision that is exactly one tunnel copy to a port (not a group) and no local
//! delivery is cached as an encapsulation (`ACTION_ENCAP`): the inner rewrite as above,
//! then the Geneve headers `Pipeline::tunnel_out` writes, from a per-peer template
//! (`TUNNEL_PEERS`, made by `geneve::template` from the same code) plus the per-entry
//! VNI, option and UDP source port (the flow hash of the start flow, which the key fixes)
//! and the per-frame lengths and checksums. Frames from a tunnel have a map of their own
//! (`TUNNEL_CACHE`), keyed by the inner frame's key (datapath = VNI, inport = the
//! option's ingress key), the option's egress key and the sender's address: exactly what
//! the tunnel path decides on (only the egress pipeline runs); userspace installs them
//! from `Pipeline::tunnel_in` for frames the underlay program marked `META_CACHEABLE`.
//! The program takes only OVN's exact shape (IPv4 without options, not a fragment, one
//! option, lengths matching the frame, a UDP checksum it verifies) and hands anything
//! else up, counted by reason (`TunnelCounter`). Floods across chassis stay in userspace.
//!
//! # Installing ([`install`])
//! The poll thread that decided a frame queues its entry, tagged with the generation of
//! the snapshot it decided with, and writes the batch's entries after the batch (a
//! syscall each: the slow path's cost, not the hot loop's).
//!
//! # Coherence: generations, not flushes
//! Entries carry the snapshot generation they were decided with; the program uses an
//! entry only when it equals `CACHE_GEN`. The agent publishes snapshot G, waits until
//! every poll thread decides with G, sets `CACHE_GEN = G`, and only then acknowledges
//! `nb_cfg`: after the acknowledgement no frame is served by a decision of an older
//! table. An entry decided with G - 1 but written after the switch carries G - 1 and is a
//! miss; one decided with G and written before the switch is unused until it. A flush
//! would need a syscall per entry while the old entries go on serving; the switch is one
//! word, and stale entries are overwritten by the next install or evicted by the LRU.
//!
//! # Bounded
//! Both maps are LRU hashes of `--cache-size` entries. Counters: hits, misses (no entry,
//! or a stale one), uncacheable frames (XDP, per CPU), upcalls (frames handed up),
//! installs and replacements (userspace; an install is `BPF_NOEXIST` first, so a new
//! entry is told from the replacement of a stale one), entries, evictions
//! (= new entries installed - entries present: the LRU is the only thing that removes
//! any) and invalidations (generation switches).
//!
//! Known limit: a preallocated BPF hash map reuses a removed element at once, so a
//! program reading an entry while the LRU evicts it and the slot is refilled could read
//! a mix of two entries; the window is a few instructions on an entry that was least
//! recently used.

pub mod action;
pub mod install;
pub mod key;

pub use action::{decide, decide_tracked};
pub use install::{CacheMaps, CacheStats, CacheWriter, InstallCounts};
pub use key::{FromFlow, Key};
