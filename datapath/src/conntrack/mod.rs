//! Connection tracking for the logical pipeline: stateful ACLs (`allow-related`),
//! load balancers (`ct_lb_mark`) and router NAT (`ct_snat`, `ct_dnat`).
//!
//! # The engine, and why
//! Three ways were open:
//! - **Linux conntrack from XDP** (`bpf_xdp_ct_lookup`, `bpf_xdp_ct_alloc`,
//!   `bpf_ct_insert_entry`, `bpf_ct_set_nat_info`; this kernel has them). It brings
//!   TCP window tracking, helpers and `conntrack -L` for free, but OVN's model does not
//!   fit its kfunc surface: a lookup takes a netns and a 5-tuple, no zone (zones live in
//!   `nf_conntrack_zone` templates the kfuncs cannot set), so every logical port's zone
//!   would collapse into one table and a switch's two ends (the child's ingress and
//!   vm1's egress, each in its own zone) would see each other's connections. `ct_mark`
//!   is writable but `ct_label` is not, and OVN keeps ACL labels in `ct_label.label`.
//!   The userspace pipeline would reach the same table only through netlink, a syscall
//!   per first packet.
//! - **Cilium's model**: the table is ovnest's own, in BPF hash maps keyed by zone and
//!   tuple, written by userspace on commit and read (and aged) by XDP. Zones, marks and
//!   labels are whatever OVN needs, the userspace pipeline reads it without syscalls
//!   through a memory-mapped map, and the XDP fast path can look a connection up in one
//!   map access.
//! - A userspace-only table, like OVS's userspace datapath (`lib/conntrack.c`).
//!
//! ovnest takes the second. The [`Table`] below is the engine's semantics and the only
//! place connections are created, changed and removed (userspace, under one lock, on
//! the frames that go up); XDP carries *established* connections.
//!
//! # Established connections in XDP ([`Mirror`], `ebpf/xdp/src/ct.rs`)
//! A connection's first frames change it (SYN, SYN-ACK, the ACK that establishes it,
//! a commit that sets its mark); after that, until a FIN or RST, a frame changes
//! nothing but its expiry. So the fast path only needs to answer one question per
//! frame: is this still the connection the cached decision was made with?
//! - The table **mirrors** every stable connection (a reply seen; for TCP, ESTABLISHED)
//!   into the program's `CT` array at its slot in the table: a serial, and a last-seen
//!   time. Every commit, and every change of what a decision can read (state, mark,
//!   label), gives the connection a new serial and rewrites or clears its slot, under
//!   the table's lock, before the frame that changed it is delivered.
//! - A frame's walk through the pipeline records the connections it met ([`Met`]):
//!   when every `ct()` found a mirrored connection and changed nothing, the decision
//!   is a function of the frame's key and those connections, and is installed in the
//!   decision cache with their (slot, serial) pairs. Anything else — a new connection,
//!   a commit that changed one, an ICMP error, an invalid packet, a full table — holds
//!   for that frame only and is not cached (counted as `conntrack`, as before).
//! - XDP uses such an entry only while each slot holds its serial, and stamps the
//!   slots' last-seen time (`bpf_ktime_get_coarse_ns`); otherwise the frame goes up
//!   (`stale`, `ct_gone`) and userspace decides and installs again. NAT needs nothing
//!   more: a connection's translation is fixed for its serial, so the decision's header
//!   rewrite (with its checksum deltas) already holds it, for `ct_dnat`, `ct_snat` and
//!   `ct_lb_mark` alike.
//! - TCP flags are in the cache key, so a FIN, RST or SYN of an established connection
//!   has a key of its own whose decision is never installed: it goes up, and the
//!   table's state machine sees it.
//! - **Coherence**: a changed ACL is a new snapshot generation, so every cached
//!   decision is stale once the agent moves `CACHE_GEN`, before it acknowledges
//!   `--wait=hv`; the next frame of a connection the ACL no longer allows goes up,
//!   meets northd's `ct_commit { ct_mark.blocked = 1; }` (a new serial), and its drop
//!   is cached with the blocked connection.
//! - **Timeouts**: userspace still expires connections, reading the mirror's last-seen
//!   time for one that looks expired ([`Table::expire`]), so a connection XDP carries
//!   stays as long as frames flow. Removal clears the slot.
//! - Why serials and slots, not a second hash keyed by zone and tuple: the cached
//!   decision already fixes the tuples (its key fixes the frame, and the validated
//!   connections fix the NAT between zones), so a direct array index is enough, and an
//!   array lookup is inlined by the verifier: two of them per frame for a switch's two
//!   port zones, no hashing. Slots beyond the array (`DEFAULT_CT_SLOTS`) stay
//!   userspace-only.
//! - Race: userspace rewrites a slot with one syscall while XDP may read it; a frame
//!   that reads the old serial in that instant is carried out with the decision its
//!   connection had just before, as if it had arrived a moment earlier.
//!
//! # OVN's semantics, as kept here
//! - **Zones.** ovn-controller gives each local logical switch port a zone (loaded into
//!   `MFF_LOG_CT_ZONE` on the port's ingress, and on egress towards it) and each router
//!   a DNAT and an SNAT zone. A switch's `ct_next` thus tracks the child's outgoing SYN
//!   in the child's zone on ingress, and vm1's reply in the child's zone again on the
//!   child's egress, where it is the reply direction. [`Zone`] names zones by their
//!   owner; no 16-bit numbering needs to persist.
//! - **States** (OVS's `ct_state`): `trk` on every tracked packet; `new` for a packet
//!   of no committed connection, or of one that has not seen a reply; `est` once it
//!   has; `rpl` in the reply direction; `rel` for an ICMP error quoting a packet of a
//!   connection (the datapath reads the quoted header from the frame, [`quoted`]);
//!   `inv` for what conntrack refuses (TCP flags no connection can have, a SYN-ACK or
//!   RST opening one, non-IP, later fragments, an ICMP error about no connection, or
//!   about a NATted one, whose quoted headers would need rewriting: fail closed);
//!   `snat`/`dnat` when NAT rewrote the packet.
//!   `ct_next` without `commit` never creates an entry (OVS discards unconfirmed
//!   connections), so a new connection must be committed by the ACL stage's
//!   `ct_commit` to exist.
//! - **ct_mark, ct_label** are the connection's: read into the flow on every lookup,
//!   written (value/mask) on commit; `ct_mark.blocked` is how northd marks
//!   connections a changed ACL no longer allows.
//! - **ct_clear** forgets the flow's connection fields (the interpreter's business).
//! - **NAT** is per connection: the original tuple and the reply tuple (the reverse of
//!   the translated original) both index the entry; a packet of the original direction
//!   is rewritten to the translated tuple, a reply to the reverse of the original.
//!   `nat` without a range on an existing connection applies whatever it has, as the
//!   kernel does.
//! - **A packet keeps its connection** across `ct()` actions in one zone ([`Met`]), as
//!   OVS keeps the skb's conntrack entry: `ct_commit` after `ct_lb_mark` commits the
//!   load-balanced connection, not the DNATted tuple as a second one.
//! - **TCP** states SYN_SENT, SYN_RECV, ESTABLISHED, closing (a FIN seen),
//!   TIME_WAIT (both FINs), CLOSE (RST), each with a timeout; a SYN on a TIME_WAIT or
//!   CLOSE connection reopens it (port reuse, `TCP_CRR`). No window tracking.
//!   Timeouts follow OVS's userspace conntrack defaults where they differ from Linux.
//! - **Flush**: a zone goes when its port or router goes ([`Table::retain_zones`]).
//! - **Limits**: at [`Table::limit`] entries, a commit fails with
//!   [`Error::Full`](ovnest_logical::conntrack::Error) and the frame is dropped and
//!   counted, never silently forwarded.
//!
//! # Load-balancer hairpin
//! A backend reaching its own VIP: `chk_lb_hairpin()` learns the session's reply
//! ([`HairpinReply`], kept in the table as OVS keeps its learned flows: per VIP and
//! backend, not per connection), `ct_snat_to_vip` commits the connection in the
//! switch's SNAT zone with the VIP as its source, `chk_lb_hairpin_reply()` reads what
//! was learned. A decision that read "not learned" is not cached (the next hairpin
//! session may learn it).
//!
//! # Load-balancer affinity
//! `commit_lb_aff` learns a session (client, VIP, port → backend) with the load
//! balancer's `affinity_timeout` as an idle timeout, `chk_lb_aff()` finds it and loads
//! the backend where northd's flows look for it; sessions live in the table
//! ([`Affinity`]), bounded, expired when read after their idle time. Decisions that
//! read them are never cached (they age).
//!
//! # Load-balancer health checks
//! Backends with a Service_Monitor row are probed by pinctrl
//! ([`crate::pinctrl::svc_monitor`]); northd drops an offline backend from the
//! `ct_lb_mark` backends, so conntrack needs nothing of its own for them. The probes
//! and their replies skip conntrack (northd's `eth.src/dst == $svc_monitor_mac` flows).
//!
//! [`Affinity`]: ovnest_logical::conntrack::Affinity
//! [`HairpinReply`]: ovnest_logical::conntrack::HairpinReply
//!
//! # Not yet
//! - New connections in XDP: every connection's handshake goes up (three frames for
//!   TCP), which is what bounds the connections-per-second rate.
//! - IPv6 decisions carry connections like IPv4 ones, but only IPv4 is tested through
//!   XDP.
//! - ICMP errors about NATted connections (their quoted headers would need NAT too),
//!   helpers (FTP, TFTP), TCP window tracking, SCTP states (SCTP is tracked as "other").
//!
//! [`Decision::conntrack`]: ovnest_logical::Decision

mod mirror;
mod shared;
mod table;
mod tuple;

pub use mirror::{BpfMirror, Mirror};
pub use shared::{Shared, Tracker};
pub use table::{Met, Stats, Table};
pub use tuple::{Tuple, quoted};

pub use ovnest_logical::conntrack::Zone;

#[cfg(test)]
mod tests;
