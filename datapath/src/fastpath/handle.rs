//! Typed handles on the object's maps, by name, with the error that names the map.

use aya::{
    Ebpf,
    maps::{Map, MapError},
};

use super::FastPathError;

/// The map called `name`, as the typed map `M` (mutable access).
pub(super) fn map_mut<'a, M>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<M, FastPathError>
where
    M: TryFrom<&'a mut Map, Error = MapError>,
{
    let raw = ebpf
        .map_mut(name)
        .ok_or(FastPathError::MissingMap { map: name })?;
    M::try_from(raw).map_err(|source| FastPathError::Map { map: name, source })
}

/// The map called `name`, as the typed map `M` (read access).
pub(super) fn map<'a, M>(ebpf: &'a Ebpf, name: &'static str) -> Result<M, FastPathError>
where
    M: TryFrom<&'a Map, Error = MapError>,
{
    let raw = ebpf
        .map(name)
        .ok_or(FastPathError::MissingMap { map: name })?;
    M::try_from(raw).map_err(|source| FastPathError::Map { map: name, source })
}
