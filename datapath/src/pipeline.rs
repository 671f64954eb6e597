//! The userspace datapath pipeline: same semantics as the XDP fast path, plus flooding.
