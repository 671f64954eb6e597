//! An established flow, counted frame by frame: one thread sends UDP frames at a fixed
//! rate from an interface in one network namespace, each carrying a sequence number;
//! another receives them on an interface in another namespace. [`Flow::stop`] says how
//! many never arrived, which is what "no established flow loses a frame" is measured by.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use crate::{netns, packet::PacketSocket};

/// Where the sequence number sits in a received (untagged) frame: the first bytes of an
/// IPv4/UDP payload without options.
const SEQ_AT_RX: usize = 14 + 20 + 8;

/// What a flow saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowReport {
    pub sent: u64,
    /// Distinct sequence numbers received.
    pub received: u64,
    pub lost: u64,
    /// The longest run of consecutive lost frames.
    pub longest_outage: u64,
}

/// A running flow.
pub struct Flow {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    received: Arc<AtomicU64>,
    sender: JoinHandle<u64>,
    receiver: JoinHandle<Vec<bool>>,
}

impl Flow {
    /// Sends `frame` (UDP, source port `marker`) from `from` = (namespace, interface) at
    /// `pps` frames per second, the sequence number written at `seq_at` of each copy
    /// (the payload start: 42 untagged, 46 tagged), and receives at `to`.
    pub fn start(
        from: (&str, &str),
        to: (&str, &str),
        frame: Vec<u8>,
        marker: u16,
        seq_at: usize,
        pps: u32,
    ) -> Flow {
        let stop = Arc::new(AtomicBool::new(false));
        let received = Arc::new(AtomicU64::new(0));
        let sent = Arc::new(AtomicU64::new(0));
        let rx = {
            let _inside = netns::enter(to.0);
            PacketSocket::open(to.1).unwrap_or_else(|e| panic!("socket on {to:?}: {e}"))
        };
        rx.set_receive_buffer(16 << 20).expect("receive buffer");
        let tx = {
            let _inside = netns::enter(from.0);
            PacketSocket::open(from.1).unwrap_or_else(|e| panic!("socket on {from:?}: {e}"))
        };
        let receiver = {
            let stop = stop.clone();
            let received = received.clone();
            std::thread::spawn(move || {
                let mut seen = Vec::new();
                // Stop once the sender stopped and nothing came for a while.
                let mut quiet_since = None;
                loop {
                    let frame = rx
                        .recv_until(Instant::now() + Duration::from_millis(50))
                        .expect("receive");
                    match frame {
                        Some(f)
                            if f.bytes.len() >= SEQ_AT_RX + 4
                                && f.bytes[34..36] == marker.to_be_bytes() =>
                        {
                            let seq = u32::from_be_bytes(
                                f.bytes[SEQ_AT_RX..SEQ_AT_RX + 4]
                                    .try_into()
                                    .expect("4 bytes"),
                            ) as usize;
                            if seq >= seen.len() {
                                seen.resize(seq + 1, false);
                            }
                            if !seen[seq] {
                                seen[seq] = true;
                                received.fetch_add(1, Ordering::Relaxed);
                            }
                            quiet_since = None;
                        }
                        _ => {
                            if stop.load(Ordering::Relaxed) {
                                let since = *quiet_since.get_or_insert_with(Instant::now);
                                if since.elapsed() > Duration::from_millis(500) {
                                    return seen;
                                }
                            }
                        }
                    }
                }
            })
        };
        let sender = {
            let stop = stop.clone();
            let sent = sent.clone();
            std::thread::spawn(move || {
                let mut frame = frame;
                let per_tick = (pps / 1000).max(1);
                let tick = Duration::from_secs_f64(f64::from(per_tick) / f64::from(pps));
                let mut next = Instant::now();
                let mut seq: u32 = 0;
                while !stop.load(Ordering::Relaxed) {
                    for _ in 0..per_tick {
                        frame[seq_at..seq_at + 4].copy_from_slice(&seq.to_be_bytes());
                        // A full socket buffer is a frame the flow lost too.
                        let _ = tx.send(&frame);
                        seq += 1;
                    }
                    sent.store(u64::from(seq), Ordering::Relaxed);
                    next += tick;
                    let now = Instant::now();
                    if next > now {
                        std::thread::sleep(next - now);
                    }
                }
                u64::from(seq)
            })
        };
        Flow {
            stop,
            sent,
            received,
            sender,
            receiver,
        }
    }

    /// Frames sent so far.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Waits until `more` frames beyond those sent so far have gone out: a measurement
    /// window counted in frames (the flow's own clock), polled with `deadline`.
    pub fn run_for(&self, more: u64, deadline: Duration) {
        let target = self.sent() + more;
        crate::wait::until("the flow's frames sent", deadline, || {
            (self.sent() >= target).then_some(())
        });
    }

    /// Frames received so far.
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    /// Stops sending, lets the last frames arrive, and counts.
    pub fn stop(self) -> FlowReport {
        self.stop.store(true, Ordering::Relaxed);
        let sent = self.sender.join().expect("sender");
        let mut seen = self.receiver.join().expect("receiver");
        seen.resize(sent as usize, false);
        let received = seen.iter().filter(|s| **s).count() as u64;
        let mut longest_outage = 0;
        let mut run = 0;
        for s in &seen {
            run = if *s { 0 } else { run + 1 };
            longest_outage = longest_outage.max(run);
        }
        FlowReport {
            sent,
            received,
            lost: sent - received,
            longest_outage,
        }
    }
}
