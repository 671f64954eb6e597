//! The underlay interface's XDP program (`underlay_ingress`, in the same object as the
//! VIFs' so it shares the AF_XDP socket map): Geneve to the userspace datapath, the
//! host's own traffic to the kernel.
//!
//! With a pin directory its link is pinned beside the VIFs' (`links/underlay-*`), so it
//! outlives the agent: across a restart Geneve frames never reach the kernel (which has
//! no Geneve, and would answer the other chassis with ICMP port unreachable); they wait
//! in no queue either — without an AF_XDP socket they are counted as `drop_no_userspace`
//! — until the new agent's sockets are in the shared socket map. The new agent adopts
//! the link and moves it to its own program at once (`bpf_link_update`): the program
//! holds no state of its own, so unlike the VIFs' links nothing has to be filled first.

use std::{os::fd::AsFd as _, path::PathBuf};

use aya::{
    Ebpf,
    maps::{DevMapHash, MapData},
    programs::{
        ProgramError, TestRunResult, Xdp,
        links::{FdLink, PinnedLink},
        xdp::XdpLink,
    },
};
use tracing::{info, warn};

use super::{AttachMode, FastPath, FastPathError, TestRunner, handle};

const PROGRAM: &str = "underlay_ingress";
/// The decision cache's encapsulations leave by these (`ebpf/xdp/src/tunnel.rs`).
const UNDERLAYS: &str = "UNDERLAYS";

pub(super) fn load(ebpf: &mut Ebpf) -> Result<(), FastPathError> {
    let program: &mut Xdp = ebpf
        .program_mut(PROGRAM)
        .ok_or(FastPathError::MissingMap { map: PROGRAM })?
        .try_into()?;
    program.load()?;
    Ok(())
}

impl FastPath {
    fn underlay_program(&mut self) -> Result<&mut Xdp, FastPathError> {
        let program = self
            .ebpf
            .program_mut(PROGRAM)
            .ok_or(FastPathError::MissingMap { map: PROGRAM })?;
        Ok(<&mut Xdp>::try_from(program)?)
    }

    /// Makes `ifindex` a target of the decision cache's encapsulations (the
    /// `UNDERLAYS` devmap). Done on attach; tests of the program alone call it.
    pub fn add_underlay_device(&mut self, ifindex: u32) -> Result<(), FastPathError> {
        let mut devices: DevMapHash<&mut MapData> = handle::map_mut(&mut self.ebpf, UNDERLAYS)?;
        devices
            .insert(ifindex, ifindex, None, 0)
            .map_err(|source| FastPathError::Device { ifindex, source })
    }

    /// Attaches the underlay program to `ifindex` (native, else generic mode). A no-op
    /// when it is attached there already.
    pub fn attach_underlay(&mut self, ifindex: u32) -> Result<AttachMode, FastPathError> {
        if self.underlay_links.contains_key(&ifindex) {
            return Ok(AttachMode::Native);
        }
        self.add_underlay_device(ifindex)?;
        let (link, mode) =
            super::attach_link(self.underlay_program()?, ifindex, "underlay ifindex")?;
        let (link, pin) = match &self.pins {
            Some(pins) => super::pin_link(link, ifindex, pins.underlay_link_path(ifindex, mode))?,
            None => (link, None),
        };
        self.underlay_links.insert(ifindex, (link, pin));
        Ok(mode)
    }

    /// Detaches the underlay program from `ifindex` (its pin goes too).
    pub fn detach_underlay(&mut self, ifindex: u32) -> Result<(), FastPathError> {
        let (link, pin) = self
            .underlay_links
            .remove(&ifindex)
            .ok_or(FastPathError::NotAttached(ifindex))?;
        if let Ok(mut devices) =
            handle::map_mut::<DevMapHash<&mut MapData>>(&mut self.ebpf, UNDERLAYS)
        {
            let _ = devices.remove(ifindex);
        }
        if let Some(pin) = pin {
            let _ = std::fs::remove_file(pin);
        }
        drop(link);
        Ok(())
    }

    /// The underlay links an earlier ovnest pinned, still attached to an interface, moved
    /// to this process's program.
    pub(super) fn adopt_underlays(&mut self) -> Result<(), FastPathError> {
        let Some(pins) = self.pins.clone() else {
            return Ok(());
        };
        let found = pins
            .underlay_link_pins()
            .map_err(|source| FastPathError::Pins {
                dir: pins.path().to_owned(),
                source,
            })?;
        for pin in found {
            let forget = |why: String| {
                warn!("{}: {why}; removing the pin", pin.path.display());
                let _ = std::fs::remove_file(&pin.path);
            };
            let ifindex = match super::link_target(&pin.path) {
                // Its interface was deleted: the link no longer attaches anything.
                Ok((0, _)) => {
                    let _ = std::fs::remove_file(&pin.path);
                    continue;
                }
                Ok((ifindex, _)) => ifindex,
                Err(e) => {
                    forget(e.to_string());
                    continue;
                }
            };
            let link = match PinnedLink::from_pin(&pin.path) {
                Ok(link) => FdLink::from(link),
                Err(e) => {
                    forget(e.to_string());
                    continue;
                }
            };
            let link_err = |why: String| FastPathError::Link { ifindex, why };
            let xdp = XdpLink::try_from(link).map_err(|e| link_err(e.to_string()))?;
            let program = self.underlay_program()?;
            let id = program.attach_to_link(xdp)?;
            let link =
                FdLink::try_from(program.take_link(id)?).map_err(|e| link_err(e.to_string()))?;
            self.add_underlay_device(ifindex)?;
            info!("underlay ifindex {ifindex}: pinned XDP link adopted, on this ovnest's program");
            self.underlay_links.insert(ifindex, (link, Some(pin.path)));
        }
        Ok(())
    }

    /// The id of the underlay program (tests: which program an adopted link runs).
    pub fn underlay_program_id(&mut self) -> Result<u32, FastPathError> {
        Ok(self.underlay_program()?.info()?.id())
    }

    /// The pin of the underlay program's link on `ifindex`, when pinned.
    pub fn underlay_pin(&self, ifindex: u32) -> Option<PathBuf> {
        self.underlay_links
            .get(&ifindex)
            .and_then(|(_, p)| p.clone())
    }

    /// Where the underlay program is attached.
    pub fn underlays(&self) -> impl Iterator<Item = u32> + '_ {
        self.underlay_links.keys().copied()
    }

    /// One BPF_PROG_TEST_RUN of the underlay program on `frame` arriving on `ifindex`
    /// queue 0 (tests): the result, and where the frame starts in `out` (after the XDP
    /// metadata written for userspace, as [`FastPath::test_run_with_meta`]).
    pub fn underlay_test_run_with_meta(
        &mut self,
        ifindex: u32,
        frame: &[u8],
        out: &mut [u8],
    ) -> Result<(TestRunResult, usize), FastPathError> {
        super::test_run_with_meta(self.underlay_program()?, ifindex, frame, out)
    }

    /// One BPF_PROG_TEST_RUN of the underlay program without the output frame, when
    /// only the verdict and the kernel's timing matter (benches). Nothing is transmitted.
    pub fn underlay_test_run_timed(
        &mut self,
        ifindex: u32,
        frame: &[u8],
    ) -> Result<TestRunResult, FastPathError> {
        super::test_run(self.underlay_program()?, ifindex, frame, None)
    }

    /// BPF_PROG_TEST_RUN of the underlay program (tests).
    pub fn underlay_test_runner(&mut self) -> Result<TestRunner, FastPathError> {
        let fd = self.underlay_program()?.fd()?.as_fd().try_clone_to_owned();
        Ok(TestRunner::new(fd.map_err(|e| {
            FastPathError::Program(ProgramError::IOError(e))
        })?))
    }
}
