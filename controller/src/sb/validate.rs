//! Reading typed values out of raw rows, and refusing the ones OVN's schema forbids.
//!
//! ovsdb-server enforces the schema's ranges, so a bad value here means a broken or
//! hostile server, a hand-edited database, or a schema we do not know. Either way the row
//! is left out of the replica, logged once and counted; the rest of the replica stays
//! correct and the client never panics on it.

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::ovsdb::{Atom, Datum, RowView, Uuid};

use super::StringMap;
use super::addr::{AddrError, MacAddr, PortAddresses};

/// Why a row was left out of the typed replica.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RowError {
    #[error("column {column}: expected {expected}")]
    WrongType {
        column: &'static str,
        expected: &'static str,
    },
    #[error("tag {0} is outside 1..=4095")]
    TagOutOfRange(i64),
    #[error("tunnel_key {value} is outside 1..={max}")]
    TunnelKeyOutOfRange { value: i64, max: i64 },
    #[error("column {column}: {value} is outside {min}..={max}")]
    OutOfRange {
        column: &'static str,
        value: i64,
        min: i64,
        max: i64,
    },
    #[error("column {column}: {value:?} is not {expected}")]
    BadValue {
        column: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("column {column}: {entry:?} does not start with a MAC address")]
    BadMac { column: &'static str, entry: String },
    #[error("column {column}: {word:?} in {entry:?} is not an IP address")]
    BadIp {
        column: &'static str,
        entry: String,
        word: String,
    },
    #[error("datapath {0} is not in Datapath_Binding")]
    DanglingDatapath(Uuid),
    #[error("another row already has key {0:?}")]
    DuplicateKey(String),
    #[error("undecodable: {0}")]
    Undecodable(String),
}

type R<T> = Result<T, RowError>;

fn wrong(column: &'static str, expected: &'static str) -> RowError {
    RowError::WrongType { column, expected }
}

fn at_most_one<'a>(
    row: &RowView<'a>,
    column: &'static str,
    expected: &'static str,
) -> R<Option<&'a Atom>> {
    match row.get(column) {
        Datum::Set(v) if v.len() <= 1 => Ok(v.first()),
        _ => Err(wrong(column, expected)),
    }
}

/// A required string column ("" when absent from this schema).
pub(crate) fn string(row: &RowView<'_>, column: &'static str) -> R<String> {
    Ok(opt_string(row, column)?.unwrap_or_default())
}

pub(crate) fn opt_string(row: &RowView<'_>, column: &'static str) -> R<Option<String>> {
    match at_most_one(row, column, "a string")? {
        None => Ok(None),
        Some(Atom::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(wrong(column, "a string")),
    }
}

pub(crate) fn opt_integer(row: &RowView<'_>, column: &'static str) -> R<Option<i64>> {
    match at_most_one(row, column, "an integer")? {
        None => Ok(None),
        Some(Atom::Integer(i)) => Ok(Some(*i)),
        Some(_) => Err(wrong(column, "an integer")),
    }
}

/// A required integer column (0 when absent from this schema).
pub(crate) fn integer(row: &RowView<'_>, column: &'static str) -> R<i64> {
    Ok(opt_integer(row, column)?.unwrap_or(0))
}

/// A required boolean column (false when absent from this schema).
pub(crate) fn boolean(row: &RowView<'_>, column: &'static str) -> R<bool> {
    Ok(opt_bool(row, column)?.unwrap_or(false))
}

/// An integer the schema bounds to `min..=max`.
pub(crate) fn bounded(column: &'static str, value: i64, min: i64, max: i64) -> R<i64> {
    if (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err(RowError::OutOfRange {
            column,
            value,
            min,
            max,
        })
    }
}

/// A required integer column bounded to `min..=max` (a column missing from this schema
/// reads 0, refused when 0 is out of range).
pub(crate) fn integer_in(row: &RowView<'_>, column: &'static str, min: i64, max: i64) -> R<i64> {
    bounded(column, integer(row, column)?, min, max)
}

/// A string column holding one of the schema's enumerated values.
pub(crate) fn one_of(
    column: &'static str,
    value: String,
    allowed: &'static [&'static str],
    expected: &'static str,
) -> R<String> {
    if allowed.contains(&value.as_str()) {
        Ok(value)
    } else {
        Err(RowError::BadValue {
            column,
            value,
            expected,
        })
    }
}

pub(crate) fn mac(column: &'static str, value: &str) -> R<MacAddr> {
    value.parse().map_err(|_| RowError::BadValue {
        column,
        value: value.to_owned(),
        expected: "a MAC address",
    })
}

pub(crate) fn ip(column: &'static str, value: &str) -> R<IpAddr> {
    value.parse().map_err(|_| RowError::BadValue {
        column,
        value: value.to_owned(),
        expected: "an IP address",
    })
}

pub(crate) fn opt_bool(row: &RowView<'_>, column: &'static str) -> R<Option<bool>> {
    match at_most_one(row, column, "a boolean")? {
        None => Ok(None),
        Some(Atom::Boolean(b)) => Ok(Some(*b)),
        Some(_) => Err(wrong(column, "a boolean")),
    }
}

pub(crate) fn opt_uuid(row: &RowView<'_>, column: &'static str) -> R<Option<Uuid>> {
    match at_most_one(row, column, "a uuid")? {
        None => Ok(None),
        Some(Atom::Uuid(u)) => Ok(Some(*u)),
        Some(_) => Err(wrong(column, "a uuid")),
    }
}

pub(crate) fn uuids(row: &RowView<'_>, column: &'static str) -> R<Vec<Uuid>> {
    match row.get(column) {
        Datum::Set(v) => v
            .iter()
            .map(|a| a.as_uuid().ok_or_else(|| wrong(column, "a set of uuids")))
            .collect(),
        Datum::Map(_) => Err(wrong(column, "a set of uuids")),
    }
}

pub(crate) fn strings(row: &RowView<'_>, column: &'static str) -> R<Vec<String>> {
    match row.get(column) {
        Datum::Set(v) => v
            .iter()
            .map(|a| {
                a.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| wrong(column, "a set of strings"))
            })
            .collect(),
        Datum::Map(_) => Err(wrong(column, "a set of strings")),
    }
}

pub(crate) fn string_map(row: &RowView<'_>, column: &'static str) -> R<BTreeMap<String, String>> {
    match row.get(column) {
        Datum::Map(v) => v
            .iter()
            .map(|(k, v)| match (k, v) {
                (Atom::String(k), Atom::String(v)) => Ok((k.clone(), v.clone())),
                _ => Err(wrong(column, "a string-to-string map")),
            })
            .collect(),
        Datum::Set(v) if v.is_empty() => Ok(BTreeMap::new()),
        Datum::Set(_) => Err(wrong(column, "a string-to-string map")),
    }
}

/// A string-to-string map column as a [`StringMap`]: the raw map's pairs are already sorted
/// by key, unique.
pub(crate) fn compact_string_map(row: &RowView<'_>, column: &'static str) -> R<StringMap> {
    match row.get(column) {
        Datum::Map(v) => v
            .iter()
            .map(|(k, v)| match (k, v) {
                (Atom::String(k), Atom::String(v)) => Ok((k.clone(), v.clone())),
                _ => Err(wrong(column, "a string-to-string map")),
            })
            .collect::<R<Vec<_>>>()
            .map(StringMap::from_sorted),
        Datum::Set(v) if v.is_empty() => Ok(StringMap::default()),
        Datum::Set(_) => Err(wrong(column, "a string-to-string map")),
    }
}

/// A VLAN tag for a nested port: 802.1Q VIDs 1..=4095 (0 means "priority tag only").
pub(crate) fn tag(value: Option<i64>) -> R<Option<u16>> {
    match value {
        None => Ok(None),
        Some(t @ 1..=4095) => Ok(Some(t as u16)),
        Some(t) => Err(RowError::TagOutOfRange(t)),
    }
}

/// A tunnel key in 1..=max (ovn-sb(5): 15 bits for ports, 24 for datapaths).
pub(crate) fn tunnel_key(value: i64, max: i64) -> R<u32> {
    if (1..=max).contains(&value) {
        Ok(value as u32)
    } else {
        Err(RowError::TunnelKeyOutOfRange { value, max })
    }
}

pub(crate) fn addresses(column: &'static str, entries: Vec<String>) -> R<Vec<PortAddresses>> {
    entries
        .into_iter()
        .map(|entry| match PortAddresses::parse(&entry) {
            Ok(a) => Ok(a),
            Err(AddrError::Mac) => Err(RowError::BadMac { column, entry }),
            Err(AddrError::Ip(word)) => Err(RowError::BadIp {
                column,
                entry,
                word,
            }),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(tag(None), Ok(None));
        assert_eq!(tag(Some(51)), Ok(Some(51)));
        assert_eq!(tag(Some(4095)), Ok(Some(4095)));
        assert_eq!(tag(Some(0)), Err(RowError::TagOutOfRange(0)));
        assert_eq!(tag(Some(5000)), Err(RowError::TagOutOfRange(5000)));
        assert_eq!(tunnel_key(7, 32767), Ok(7));
        assert!(tunnel_key(0, 32767).is_err());
        assert!(tunnel_key(32768, 32767).is_err());
        assert!(tunnel_key(16777215, 16777215).is_ok());
    }
}
