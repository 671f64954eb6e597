//! The punt stage: services that answer or take frames the forwarding stages did not
//! finish (DHCP replies, later Geneve to remote chassis), so the hot loop has no special
//! cases for them.
//!
//! Services run after the ARP responder and the known-unicast L2 lookup, right before
//! flooding: OVN's DHCP requests are broadcast (or unicast to the router port, which is
//! never a local L2 entry), so they always reach this stage.

use super::snapshot::PortInfo;

/// What a service did with a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Punt {
    /// Not for this service: the next one (then flooding) sees the frame unchanged.
    Pass,
    /// The frame buffer now holds an untagged reply of `len` bytes for the ingress port;
    /// the pipeline tags it as the port needs and sends it back.
    Reply { len: usize },
    /// The service took the frame (e.g. queued it); the pipeline frees the buffer.
    Consumed,
}

/// A frame offered to a service: always untagged (the ingress port's tag is stripped).
pub struct PuntFrame<'a> {
    /// The port it came from.
    pub ingress: &'a PortInfo,
    /// Frame bytes followed by the rest of the UMEM chunk, for a reply longer than the
    /// request.
    pub buffer: &'a mut [u8],
    pub len: usize,
}

/// A userspace service. Called on the poll thread: must not block.
pub trait Service {
    fn handle(&mut self, frame: &mut PuntFrame<'_>) -> Punt;
}

/// No services: the stage compiles to nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoServices;

impl Service for NoServices {
    #[inline(always)]
    fn handle(&mut self, _frame: &mut PuntFrame<'_>) -> Punt {
        Punt::Pass
    }
}

/// Two services in order: the first one that does not pass wins.
impl<A: Service, B: Service> Service for (A, B) {
    #[inline(always)]
    fn handle(&mut self, frame: &mut PuntFrame<'_>) -> Punt {
        match self.0.handle(frame) {
            Punt::Pass => self.1.handle(frame),
            done => done,
        }
    }
}
