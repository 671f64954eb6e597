//! The underlay interface's XDP program (`underlay_ingress`, in the same object as the
//! VIFs' so it shares the AF_XDP socket map): Geneve to the userspace datapath, the
//! host's own traffic to the kernel. Its link is not pinned: across a restart of the
//! agent, Geneve frames reach the kernel (which has no Geneve and refuses them) until
//! the new agent attaches again, while the VIFs keep forwarding.

use std::os::fd::AsFd as _;

use aya::{
    Ebpf,
    programs::{ProgramError, Xdp, XdpMode, links::FdLink},
};
use tracing::warn;

use super::{AttachMode, FastPath, FastPathError, TestRunner};

const PROGRAM: &str = "underlay_ingress";

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

    /// Attaches the underlay program to `ifindex` (native, else generic mode). A no-op
    /// when it is attached there already.
    pub fn attach_underlay(&mut self, ifindex: u32) -> Result<AttachMode, FastPathError> {
        if self.underlay_links.contains_key(&ifindex) {
            return Ok(AttachMode::Native);
        }
        let program = self.underlay_program()?;
        let (id, mode) = match program.attach(ifindex, XdpMode::Driver) {
            Ok(id) => (id, AttachMode::Native),
            Err(native) => {
                warn!("underlay ifindex {ifindex}: native XDP refused ({native}); generic mode");
                let id = program
                    .attach(ifindex, XdpMode::Skb)
                    .map_err(|source| FastPathError::Attach { ifindex, source })?;
                (id, AttachMode::Generic)
            }
        };
        let link = FdLink::try_from(program.take_link(id)?).map_err(|e| FastPathError::Link {
            ifindex,
            why: format!("{e} (a BPF link is needed: kernel 5.9 or later)"),
        })?;
        self.underlay_links.insert(ifindex, link);
        Ok(mode)
    }

    /// Detaches the underlay program from `ifindex`.
    pub fn detach_underlay(&mut self, ifindex: u32) -> Result<(), FastPathError> {
        self.underlay_links
            .remove(&ifindex)
            .map(drop)
            .ok_or(FastPathError::NotAttached(ifindex))
    }

    /// Where the underlay program is attached.
    pub fn underlays(&self) -> impl Iterator<Item = u32> + '_ {
        self.underlay_links.keys().copied()
    }

    /// BPF_PROG_TEST_RUN of the underlay program (tests).
    pub fn underlay_test_runner(&mut self) -> Result<TestRunner, FastPathError> {
        let fd = self.underlay_program()?.fd()?.as_fd().try_clone_to_owned();
        Ok(TestRunner::new(fd.map_err(|e| {
            FastPathError::Program(ProgramError::IOError(e))
        })?))
    }
}
