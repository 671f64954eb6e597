//! Readers of OVSDB's JSON notation (RFC 7047 §5.1) as `ovn-sbctl --format=json` prints
//! it, written independently of the library's decoder so tests compare two readings.

use std::collections::BTreeMap;

use serde_json::Value;

/// The atoms of a set (a bare atom is a one-element set).
pub fn set(v: &Value) -> Vec<Value> {
    match v.as_array() {
        Some(a) if a.len() == 2 && a[0] == "set" => a[1].as_array().cloned().unwrap_or_default(),
        _ => vec![v.clone()],
    }
}

pub fn uuid(v: &Value) -> String {
    v[1].as_str()
        .unwrap_or_else(|| panic!("not a uuid: {v}"))
        .to_owned()
}

pub fn opt<T>(v: &Value, f: impl Fn(&Value) -> T) -> Option<T> {
    set(v).first().map(f)
}

pub fn string(v: &Value) -> String {
    v.as_str()
        .unwrap_or_else(|| panic!("not a string: {v}"))
        .to_owned()
}

pub fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or_else(|| panic!("not an integer: {v}"))
}

pub fn map(v: &Value) -> BTreeMap<String, String> {
    v[1].as_array()
        .into_iter()
        .flatten()
        .map(|kv| (string(&kv[0]), string(&kv[1])))
        .collect()
}

/// A set of uuids, sorted.
pub fn uuids(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = set(v).iter().map(uuid).collect();
    out.sort();
    out
}

/// A set of strings, sorted.
pub fn strings(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = set(v).iter().map(string).collect();
    out.sort();
    out
}
