//! ovnest datapath.
