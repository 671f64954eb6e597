//! Errors returned to callers of [`Client`](super::Client).

use crate::jsonrpc::RpcError;
use crate::transact::TransactionError;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No connection right now; the client keeps reconnecting in the background. Retry
    /// later (a reconcile loop's next pass).
    #[error("not connected to the OVSDB server (reconnecting)")]
    NotConnected,
    /// The connection dropped after the request was sent: it may or may not have been
    /// executed (RFC 7047 gives no way to know).
    #[error("connection lost before the server replied")]
    Disconnected,
    /// The client's background task is gone (the runtime is shutting down).
    #[error("OVSDB client task has stopped")]
    Stopped,
    /// The server answered with an error (RFC 7047 §3.1).
    #[error("server error: {0}")]
    Rpc(RpcError),
    /// A `transact` the server aborted (RFC 7047 §4.1.3).
    #[error(transparent)]
    Transaction(#[from] TransactionError),
    /// The server sent a reply this client cannot read.
    #[error("unexpected reply: {0}")]
    Protocol(String),
    /// The table is not part of the monitor, so it has no condition to change.
    #[error("table {0} is not monitored")]
    NotMonitored(String),
    /// The server only speaks plain `monitor`, which has no conditions.
    #[error("the server does not support monitor conditions (no monitor_cond)")]
    ConditionsUnsupported,
}
