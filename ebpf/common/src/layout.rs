//! Semantic versions of the maps' layouts, for pinned maps shared across ovnest builds
//! (`ovnest-datapath`'s `fastpath::pins`). A map's pin name holds this version and a hash
//! of its shape (type, key and value size, entries, flags); a build adopts a pinned map
//! only when both match. The shape catches size changes; bump a map's version here when
//! the meaning of its bytes changes at the same size (a field reused, a flag redefined,
//! the flat tables' hash, probe window or slot protocol changed), so a new build never
//! reads an old build's bytes with new meanings.

/// `(map name, version)`; maps not listed are at version 1.
pub const VERSIONS: &[(&str, u32)] = &[
    // Flat tables (`crate::flat`): slot layout, `flat_hash`, FLAT_PROBE, window sizes.
    ("VIFS", 1),
    ("CHILDREN", 1),
    ("MACS", 1),
    ("ARP_TARGETS", 1),
    ("VIF_SPILL", 1),
    ("CHILD_SPILL", 1),
    ("MAC_SPILL", 1),
    ("ARP_SPILL", 1),
];

/// The layout version of map `name`.
pub fn version(name: &str) -> u32 {
    VERSIONS
        .iter()
        .find(|(n, _)| *n == name)
        .map_or(1, |(_, v)| *v)
}
