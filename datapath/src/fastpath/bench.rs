//! Packet-rate tooling for `ovnest bench`: a generator (BPF_PROG_TEST_RUN in live-frames
//! mode with a program that transmits each frame out of the interface it is "received"
//! on), a sink (counts and drops), a capture (a sink that keeps the last frame), and the
//! baseline program (strip + redirect). They are
//! an object of their own (`ovnest-xdp-bench`), so the fast path's object never carries
//! their maps; a kit is one instance of it, with counters and a device map of its own.

use std::time::Duration;

use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, DevMapHash, MapData, PerCpuArray},
    programs::{
        TestRun, TestRunAttrs, TestRunOptions, TestRunResult, Xdp, XdpMode, xdp::XdpLinkId,
    },
};

use ovnest_common::maps::{BENCH_TEMPLATE_BYTES, BenchTemplate, capacity};

use super::{FastPathError, handle, maps, object, xdp_md};

const GENERATOR: &str = "bench_tx";
const SINK: &str = "bench_sink";
const CAPTURE: &str = "bench_capture";
const BASELINE: &str = "baseline_strip_redirect";
/// The kernel's largest live-frames batch.
pub const MAX_BATCH: u32 = 256;

pub struct BenchKit {
    ebpf: Ebpf,
}

impl BenchKit {
    pub fn load() -> Result<BenchKit, FastPathError> {
        let mut ebpf = EbpfLoader::new().load(object::BENCH_OBJECT)?;
        for name in [GENERATOR, SINK, CAPTURE, BASELINE] {
            let program: &mut Xdp = ebpf
                .program_mut(name)
                .ok_or(FastPathError::MissingMap { map: name })?
                .try_into()?;
            program.load()?;
        }
        Ok(BenchKit { ebpf })
    }

    fn xdp_mut(&mut self, name: &'static str) -> Result<&mut Xdp, FastPathError> {
        Ok(self
            .ebpf
            .program_mut(name)
            .ok_or(FastPathError::MissingMap { map: name })?
            .try_into()?)
    }

    fn attach(&mut self, name: &'static str, ifindex: u32) -> Result<XdpLinkId, FastPathError> {
        let program = self.xdp_mut(name)?;
        program
            .attach(ifindex, XdpMode::Driver)
            .or_else(|_| program.attach(ifindex, XdpMode::Skb))
            .map_err(|source| FastPathError::Attach { ifindex, source })
    }

    /// Counts (and drops) every frame arriving on `ifindex` (calling thread's namespace).
    pub fn attach_sink(&mut self, ifindex: u32) -> Result<(), FastPathError> {
        self.attach(SINK, ifindex).map(|_| ())
    }

    /// Counts and drops every frame arriving on `ifindex` as the sink does, keeping a
    /// copy of the last one ([`BenchKit::captured`]) until [`BenchKit::detach_capture`].
    pub fn attach_capture(&mut self, ifindex: u32) -> Result<XdpLinkId, FastPathError> {
        self.attach(CAPTURE, ifindex)
    }

    pub fn detach_capture(&mut self, link: XdpLinkId) -> Result<(), FastPathError> {
        self.xdp_mut(CAPTURE)?.detach(link)?;
        Ok(())
    }

    /// The last frame the capture kept, if any.
    pub fn captured(&self) -> Result<Option<Vec<u8>>, FastPathError> {
        let map = "BENCH_CAPTURED";
        let array: Array<&MapData, BenchTemplate> = handle::map(&self.ebpf, map)?;
        let template = array
            .get(&0, 0)
            .map_err(|source| FastPathError::Map { map, source })?;
        let len = (template.len as usize).min(BENCH_TEMPLATE_BYTES);
        Ok((len > 0).then(|| template.bytes[..len].to_vec()))
    }

    /// Makes the generator transmit one frame every `gap_ns` nanoseconds (0: as fast as
    /// its core goes).
    pub fn set_gap_ns(&mut self, gap_ns: u64) -> Result<(), FastPathError> {
        maps::set_array(&mut self.ebpf, "BENCH_GAP_NS", 0, &gap_ns)
    }

    /// Frames the generator has transmitted so far.
    pub fn sent(&self) -> Result<u64, FastPathError> {
        self.sum_per_cpu("BENCH_SENT")
    }

    /// Frames the sink has counted so far.
    pub fn received(&self) -> Result<u64, FastPathError> {
        self.sum_per_cpu("BENCH_RECEIVED")
    }

    fn sum_per_cpu(&self, map: &'static str) -> Result<u64, FastPathError> {
        let counts: PerCpuArray<&MapData, u64> = handle::map(&self.ebpf, map)?;
        let values = counts
            .get(&0, 0)
            .map_err(|source| FastPathError::Map { map, source })?;
        Ok(values.iter().sum())
    }

    /// Points the baseline at `egress` (and makes it a redirect target).
    pub fn set_baseline_egress(&mut self, egress: u32) -> Result<(), FastPathError> {
        let mut devices: DevMapHash<&mut MapData> = handle::map_mut(&mut self.ebpf, "DEVICES")?;
        devices
            .insert(egress, egress, None, 0)
            .map_err(|source| FastPathError::Device {
                ifindex: egress,
                source,
            })?;
        maps::set_array(&mut self.ebpf, "BASELINE_EGRESS", 0, &egress)
    }

    /// Attaches the baseline on `ifindex`, redirecting to `egress` (same namespace).
    pub fn attach_baseline(&mut self, ifindex: u32, egress: u32) -> Result<(), FastPathError> {
        self.set_baseline_egress(egress)?;
        self.attach(BASELINE, ifindex).map(|_| ())
    }

    fn baseline(&self) -> Result<&Xdp, FastPathError> {
        let program = self
            .ebpf
            .program(BASELINE)
            .ok_or(FastPathError::MissingMap { map: BASELINE })?;
        Ok(<&Xdp>::try_from(program)?)
    }

    /// Runs the baseline once on `frame` arriving on `ifindex` (BPF_PROG_TEST_RUN, after
    /// [`BenchKit::set_baseline_egress`]); nothing is transmitted.
    pub fn test_run_baseline(
        &self,
        ifindex: u32,
        frame: &[u8],
    ) -> Result<TestRunResult, FastPathError> {
        super::test_run(self.baseline()?, ifindex, frame, None)
    }

    /// The baseline `repeat` times in live-frames mode (redirects really transmit), as
    /// [`FastPath::test_run_live`](super::FastPath::test_run_live) runs the fast path.
    pub fn test_run_baseline_live(
        &self,
        ifindex: u32,
        frame: &[u8],
        repeat: u32,
        batch: u32,
    ) -> Result<TestRunResult, FastPathError> {
        super::test_run_live(self.baseline()?, ifindex, frame, repeat, batch)
    }

    /// Sets the frames the generator cycles through, one per flow; all of one length (at
    /// most `BENCH_TEMPLATE_BYTES`), at most `capacity::BENCH_FLOWS` of them.
    pub fn set_frames(&mut self, frames: &[Vec<u8>]) -> Result<(), FastPathError> {
        let flows = frames.len().min(capacity::BENCH_FLOWS as usize);
        for (i, frame) in frames.iter().take(flows).enumerate() {
            let len = frame.len().min(BENCH_TEMPLATE_BYTES);
            let mut template = BenchTemplate {
                len: len as u32,
                bytes: [0; BENCH_TEMPLATE_BYTES],
            };
            template.bytes[..len].copy_from_slice(&frame[..len]);
            maps::set_array(&mut self.ebpf, "BENCH_TEMPLATES", i as u32, &template)?;
        }
        maps::set_array(&mut self.ebpf, "BENCH_FLOWS", 0, &(flows as u32))
    }

    /// New-flows mode: from now on the generator writes a 32-bit sequence number,
    /// starting at `first`, at byte `offset` of every frame (a UDP port pair), so every
    /// frame is a new flow; `None` turns it off.
    pub fn set_new_flows(&mut self, offset: Option<u32>, first: u32) -> Result<(), FastPathError> {
        let map = "BENCH_SEQ";
        let mut seq: PerCpuArray<&mut MapData, u32> = handle::map_mut(&mut self.ebpf, map)?;
        let syscall = |call, io_error| FastPathError::Map {
            map,
            source: aya::maps::MapError::SyscallError(aya::sys::SyscallError { call, io_error }),
        };
        let cpus = aya::util::nr_cpus().map_err(|(_, e)| syscall("nr_cpus", e))?;
        let values = aya::maps::PerCpuValues::try_from(vec![first; cpus.get() as usize])
            .map_err(|e| syscall("nr_cpus", e))?;
        seq.set(0, values, 0)
            .map_err(|source| FastPathError::Map { map, source })?;
        maps::set_array(&mut self.ebpf, "BENCH_SEQ_AT", 0, &offset.unwrap_or(0))
    }

    /// Transmits `repeat` frames out of `ifindex` (in the calling thread's namespace),
    /// cycling through the frames of [`BenchKit::set_frames`], rewritten before each
    /// repetition, flushed to the interface every `batch` frames (at most [`MAX_BATCH`]).
    /// `frame` is the first of them (it sets the length). Returns the kernel's time for
    /// them.
    pub fn inject(
        &self,
        ifindex: u32,
        frame: &[u8],
        repeat: u32,
        batch: u32,
    ) -> Result<Duration, FastPathError> {
        let repeat = repeat.max(1);
        let ctx = xdp_md(ifindex, frame.len());
        let opts = TestRunOptions {
            data_in: Some(frame),
            ctx_in: Some(&ctx),
            repeat,
            attrs: TestRunAttrs::new().xdp_live_frames(batch.clamp(1, MAX_BATCH).min(repeat)),
            ..Default::default()
        };
        let program: &Xdp = self
            .ebpf
            .program(GENERATOR)
            .ok_or(FastPathError::MissingMap { map: GENERATOR })?
            .try_into()?;
        // The kernel reports the mean time of one repetition.
        Ok(program.test_run(opts)?.duration * repeat)
    }
}
