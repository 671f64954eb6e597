//! What went wrong (and right) on the wire, counted. Every input the client refuses is
//! logged once and counted here, so a test or an operator can see it without log scraping.

use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! counters {
    ($($(#[doc = $doc:literal])* $name:ident),* $(,)?) => {
        /// Live counters, shared by the client task and its handles.
        #[derive(Debug, Default)]
        pub struct Counters {
            $($(#[doc = $doc])* pub $name: AtomicU64,)*
        }

        /// A copy of [`Counters`] at one instant.
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        pub struct CounterValues {
            $($(#[doc = $doc])* pub $name: u64,)*
        }

        impl Counters {
            pub fn snapshot(&self) -> CounterValues {
                CounterValues { $($name: self.$name.load(Ordering::Relaxed),)* }
            }
        }
    };
}

counters! {
    /// Connections established.
    connects,
    /// Connection attempts that failed.
    connect_failures,
    /// Established connections that ended (server closed, error, probe timeout, resync).
    disconnects,
    /// Inputs that were not JSON or not JSON-RPC (connection dropped).
    malformed_messages,
    /// Messages larger than the configured maximum (connection dropped).
    oversized_messages,
    /// Connections that ended in the middle of a message.
    truncated_messages,
    /// Our inactivity probes that got no answer (connection dropped).
    probe_timeouts,
    /// `echo` requests from the server that we answered.
    echo_requests,
    /// Requests or notifications from the server with a method we do not know.
    unknown_methods,
    /// Replies whose id matches no request of ours.
    unexpected_replies,
    /// Parts of update notifications that were malformed or did not fit the replica
    /// (e.g. "modify" of a row we do not have); skipped.
    bad_updates,
    /// Rows with values the typed replica refuses (bad tag, MAC, tunnel key, dangling
    /// reference, wrong type): counted once per row and reason, left out of the replica.
    bad_rows,
    /// Monitors started from a full snapshot (first connect or no resume possible).
    full_syncs,
    /// Reconnects resumed with `monitor_cond_since` (server answered found=true).
    resumes,
    /// Update notifications applied.
    updates_applied,
}

impl Counters {
    /// Adds one to a counter (a sink counts what it refuses in `bad_rows`).
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}
