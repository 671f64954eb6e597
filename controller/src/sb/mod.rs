//! Typed replica of the OVN Southbound tables ovnest needs.
