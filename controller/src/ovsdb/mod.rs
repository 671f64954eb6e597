//! OVSDB JSON-RPC client (RFC 7047 with OVSDB's monitor_cond / monitor_cond_since
//! extensions).
