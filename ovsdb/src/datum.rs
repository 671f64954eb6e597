//! OVSDB values: atoms and data (RFC 7047 §5.1), their JSON encodings, and the `update2`
//! diff rule for set and map columns (ovsdb-server(5), "update2 notification").
//!
//! Every OVSDB value is a set or a map: a scalar column holds a set of exactly one atom, an
//! optional column a set of zero or one. On the wire a one-element set is sent as the bare
//! atom, everything else as `["set", [...]]`; maps are always `["map", [[k, v], ...]]`.
//! Sets and maps are kept sorted so that equal values compare equal.

use std::cmp::Ordering;

use serde_json::{Value, json};

use crate::uuid::Uuid;

/// One scalar value (RFC 7047 §5.1 `<atom>`).
#[derive(Debug, Clone)]
pub enum Atom {
    Integer(i64),
    Real(f64),
    Boolean(bool),
    String(String),
    Uuid(Uuid),
    /// `["named-uuid", name]`: only meaningful inside one `transact` (RFC 7047 §5.1), to
    /// refer to a row inserted earlier in the same transaction.
    NamedUuid(String),
}

impl Atom {
    fn rank(&self) -> u8 {
        match self {
            Atom::Integer(_) => 0,
            Atom::Real(_) => 1,
            Atom::Boolean(_) => 2,
            Atom::String(_) => 3,
            Atom::Uuid(_) => 4,
            Atom::NamedUuid(_) => 5,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Atom::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_integer(&self) -> Option<i64> {
        match self {
            Atom::Integer(i) => Some(*i),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Atom::Boolean(b) => Some(*b),
            _ => None,
        }
    }

    pub fn as_uuid(&self) -> Option<Uuid> {
        match self {
            Atom::Uuid(u) => Some(*u),
            _ => None,
        }
    }

    /// Decodes an atom without knowing its column type: JSON numbers that fit an i64 are
    /// integers, other numbers reals.
    pub fn from_json(value: &Value) -> Result<Atom, DatumError> {
        match value {
            Value::String(s) => Ok(Atom::String(s.clone())),
            Value::Bool(b) => Ok(Atom::Boolean(*b)),
            Value::Number(n) => match n.as_i64() {
                Some(i) => Ok(Atom::Integer(i)),
                None => n
                    .as_f64()
                    .map(Atom::Real)
                    .ok_or_else(|| DatumError::new("number out of range", value)),
            },
            Value::Array(a) => match (a.first().and_then(Value::as_str), a.get(1), a.len()) {
                (Some("uuid"), Some(Value::String(s)), 2) => s
                    .parse()
                    .map(Atom::Uuid)
                    .map_err(|_| DatumError::new("bad uuid", value)),
                (Some("named-uuid"), Some(Value::String(s)), 2) => Ok(Atom::NamedUuid(s.clone())),
                _ => Err(DatumError::new("not an atom", value)),
            },
            _ => Err(DatumError::new("not an atom", value)),
        }
    }

    pub fn to_json(&self) -> Value {
        match self {
            Atom::Integer(i) => json!(i),
            Atom::Real(r) => json!(r),
            Atom::Boolean(b) => json!(b),
            Atom::String(s) => json!(s),
            Atom::Uuid(u) => json!(["uuid", u.to_string()]),
            Atom::NamedUuid(n) => json!(["named-uuid", n]),
        }
    }
}

impl PartialEq for Atom {
    fn eq(&self, other: &Atom) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Atom {}

impl PartialOrd for Atom {
    fn partial_cmp(&self, other: &Atom) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Atom {
    fn cmp(&self, other: &Atom) -> Ordering {
        match (self, other) {
            (Atom::Integer(a), Atom::Integer(b)) => a.cmp(b),
            // total_cmp keeps Ord lawful even for NaN, which a server never sends.
            (Atom::Real(a), Atom::Real(b)) => a.total_cmp(b),
            (Atom::Boolean(a), Atom::Boolean(b)) => a.cmp(b),
            (Atom::String(a), Atom::String(b)) => a.cmp(b),
            (Atom::Uuid(a), Atom::Uuid(b)) => a.cmp(b),
            (Atom::NamedUuid(a), Atom::NamedUuid(b)) => a.cmp(b),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

impl From<&str> for Atom {
    fn from(s: &str) -> Atom {
        Atom::String(s.to_owned())
    }
}
impl From<String> for Atom {
    fn from(s: String) -> Atom {
        Atom::String(s)
    }
}
impl From<i64> for Atom {
    fn from(i: i64) -> Atom {
        Atom::Integer(i)
    }
}
impl From<bool> for Atom {
    fn from(b: bool) -> Atom {
        Atom::Boolean(b)
    }
}
impl From<Uuid> for Atom {
    fn from(u: Uuid) -> Atom {
        Atom::Uuid(u)
    }
}

/// A column value (RFC 7047 §5.1 `<value>`): a sorted, duplicate-free set or map.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Datum {
    Set(Atoms),
    Map(Vec<(Atom, Atom)>),
}

/// The atoms of a set, sorted, duplicate-free; read them as a slice. One atom (a scalar
/// column's value, most of a replica) is kept inline instead of in a vector of its own.
#[derive(Clone)]
pub struct Atoms(AtomsRepr);

#[derive(Clone)]
enum AtomsRepr {
    One(Atom),
    /// Never exactly one.
    Many(Vec<Atom>),
}

impl Atoms {
    pub const fn new() -> Atoms {
        Atoms(AtomsRepr::Many(Vec::new()))
    }

    pub fn one(atom: Atom) -> Atoms {
        Atoms(AtomsRepr::One(atom))
    }

    pub fn as_slice(&self) -> &[Atom] {
        match &self.0 {
            AtomsRepr::One(a) => std::slice::from_ref(a),
            AtomsRepr::Many(v) => v,
        }
    }

    /// Inserts `atom` at `index` (where a binary search put it).
    pub fn insert(&mut self, index: usize, atom: Atom) {
        let mut v = self.take();
        v.insert(index, atom);
        *self = v.into();
    }

    pub fn remove(&mut self, index: usize) -> Atom {
        let mut v = self.take();
        let atom = v.remove(index);
        *self = v.into();
        atom
    }

    fn take(&mut self) -> Vec<Atom> {
        match std::mem::replace(&mut self.0, AtomsRepr::Many(Vec::new())) {
            AtomsRepr::One(a) => vec![a],
            AtomsRepr::Many(v) => v,
        }
    }
}

impl Default for Atoms {
    fn default() -> Atoms {
        Atoms::new()
    }
}

impl From<Vec<Atom>> for Atoms {
    fn from(mut v: Vec<Atom>) -> Atoms {
        match v.len() {
            1 => Atoms(AtomsRepr::One(v.remove(0))),
            _ => Atoms(AtomsRepr::Many(v)),
        }
    }
}

impl std::ops::Deref for Atoms {
    type Target = [Atom];
    fn deref(&self) -> &[Atom] {
        self.as_slice()
    }
}

impl<'a> IntoIterator for &'a Atoms {
    type Item = &'a Atom;
    type IntoIter = std::slice::Iter<'a, Atom>;
    fn into_iter(self) -> Self::IntoIter {
        self.as_slice().iter()
    }
}

impl PartialEq for Atoms {
    fn eq(&self, other: &Atoms) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for Atoms {}

impl PartialOrd for Atoms {
    fn partial_cmp(&self, other: &Atoms) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Atoms {
    fn cmp(&self, other: &Atoms) -> Ordering {
        self.as_slice().cmp(other.as_slice())
    }
}

/// As the vector it stands for: `[String("a")]`.
impl std::fmt::Debug for Atoms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.as_slice().fmt(f)
    }
}

/// A JSON value that is not an OVSDB datum of the expected shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what}: {excerpt}")]
pub struct DatumError {
    pub what: &'static str,
    /// The start of the offending JSON, for the log line.
    pub excerpt: String,
}

impl DatumError {
    pub(crate) fn new(what: &'static str, value: &Value) -> DatumError {
        let mut excerpt = value.to_string();
        if excerpt.len() > 120 {
            let mut cut = 120;
            while !excerpt.is_char_boundary(cut) {
                cut -= 1;
            }
            excerpt.truncate(cut);
            excerpt.push('…');
        }
        DatumError { what, excerpt }
    }
}

impl Default for Datum {
    fn default() -> Datum {
        Datum::empty_set()
    }
}

impl Datum {
    pub const fn empty_set() -> Datum {
        Datum::Set(Atoms::new())
    }

    pub const fn empty_map() -> Datum {
        Datum::Map(Vec::new())
    }

    /// A set holding one atom: how scalar columns are stored.
    pub fn atom(atom: impl Into<Atom>) -> Datum {
        Datum::Set(Atoms::one(atom.into()))
    }

    /// A set from any atoms (sorted, duplicates dropped).
    pub fn set(atoms: impl IntoIterator<Item = Atom>) -> Datum {
        let mut v: Vec<Atom> = atoms.into_iter().collect();
        v.sort();
        v.dedup();
        Datum::Set(v.into())
    }

    /// A map from pairs (sorted by key; for a repeated key the last pair wins).
    pub fn map<K: Into<Atom>, V: Into<Atom>>(pairs: impl IntoIterator<Item = (K, V)>) -> Datum {
        let mut v: Vec<(Atom, Atom)> = pairs
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        normalize_map(&mut v);
        Datum::Map(v)
    }

    /// `["named-uuid", name]`, to point at a row inserted earlier in the same transaction.
    pub fn named_uuid(name: impl Into<String>) -> Datum {
        Datum::Set(Atoms::one(Atom::NamedUuid(name.into())))
    }

    pub fn len(&self) -> usize {
        match self {
            Datum::Set(v) => v.len(),
            Datum::Map(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The atoms of a set (empty for a map).
    pub fn atoms(&self) -> &[Atom] {
        match self {
            Datum::Set(v) => v.as_slice(),
            Datum::Map(_) => &[],
        }
    }

    /// The pairs of a map (empty for a set).
    pub fn pairs(&self) -> &[(Atom, Atom)] {
        match self {
            Datum::Map(v) => v,
            Datum::Set(_) => &[],
        }
    }

    /// Decodes a datum as the server sends it (RFC 7047 §5.1), without a schema: the JSON
    /// shape says whether it is a set, a map or a single atom.
    pub fn from_json(value: &Value) -> Result<Datum, DatumError> {
        if let Value::Array(a) = value
            && let (Some(Value::String(tag)), 2) = (a.first(), a.len())
        {
            match tag.as_str() {
                "set" => {
                    let Some(Value::Array(items)) = a.get(1) else {
                        return Err(DatumError::new("set without an array", value));
                    };
                    let atoms = items
                        .iter()
                        .map(Atom::from_json)
                        .collect::<Result<Vec<_>, _>>()?;
                    return Ok(Datum::set(atoms));
                }
                "map" => {
                    let Some(Value::Array(items)) = a.get(1) else {
                        return Err(DatumError::new("map without an array", value));
                    };
                    let mut pairs = Vec::with_capacity(items.len());
                    for item in items {
                        match item {
                            Value::Array(kv) if kv.len() == 2 => {
                                pairs.push((Atom::from_json(&kv[0])?, Atom::from_json(&kv[1])?))
                            }
                            _ => {
                                return Err(DatumError::new(
                                    "map entry is not a [key, value] pair",
                                    item,
                                ));
                            }
                        }
                    }
                    normalize_map(&mut pairs);
                    return Ok(Datum::Map(pairs));
                }
                _ => {}
            }
        }
        Ok(Datum::Set(Atoms::one(Atom::from_json(value)?)))
    }

    pub fn to_json(&self) -> Value {
        match self {
            Datum::Set(v) if v.len() == 1 => v[0].to_json(),
            Datum::Set(v) => json!(["set", v.iter().map(Atom::to_json).collect::<Vec<_>>()]),
            Datum::Map(v) => json!([
                "map",
                v.iter()
                    .map(|(k, v)| json!([k.to_json(), v.to_json()]))
                    .collect::<Vec<_>>()
            ]),
        }
    }

    /// Applies an `update2` "modify" diff to a set or map column (ovsdb-server(5)): a set
    /// element in the diff is toggled; a map key absent from `self` is added, present with
    /// the same value is removed, present with another value is replaced.
    pub fn apply_diff(&mut self, diff: &Datum) -> Result<(), DatumError> {
        match (self, diff) {
            (Datum::Set(have), Datum::Set(toggle)) => {
                for atom in toggle {
                    match have.as_slice().binary_search(atom) {
                        Ok(i) => {
                            have.remove(i);
                        }
                        Err(i) => have.insert(i, atom.clone()),
                    }
                }
                Ok(())
            }
            (Datum::Map(have), Datum::Map(changes)) => {
                for (k, v) in changes {
                    match have.binary_search_by(|(hk, _)| hk.cmp(k)) {
                        Ok(i) if have[i].1 == *v => {
                            have.remove(i);
                        }
                        Ok(i) => have[i].1 = v.clone(),
                        Err(i) => have.insert(i, (k.clone(), v.clone())),
                    }
                }
                Ok(())
            }
            // An empty set is how a server spells "no change" for either kind.
            (_, d) if d.is_empty() => Ok(()),
            // A map column that is empty locally may have been defaulted as a set.
            (this @ Datum::Set(_), Datum::Map(changes)) if this.is_empty() => {
                *this = Datum::Map(changes.clone());
                Ok(())
            }
            (_, d) => Err(DatumError::new(
                "diff does not match the column's kind",
                &d.to_json(),
            )),
        }
    }
}

fn normalize_map(v: &mut Vec<(Atom, Atom)>) {
    // Stable sort, then keep the last of equal keys.
    v.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out: Vec<(Atom, Atom)> = Vec::with_capacity(v.len());
    for pair in v.drain(..) {
        match out.last_mut() {
            Some(last) if last.0 == pair.0 => *last = pair,
            _ => out.push(pair),
        }
    }
    *v = out;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_atom_inline_equals_one_in_a_vector() {
        let inline = Datum::atom("a");
        assert_eq!(inline, Datum::Set(vec![Atom::from("a")].into()));
        assert_eq!(inline, Datum::set([Atom::from("a"), Atom::from("a")]));
        assert_eq!(format!("{inline:?}"), r#"Set([String("a")])"#);
        // Toggling through two and back to one, and to none.
        let mut d = Datum::atom("a");
        d.apply_diff(&Datum::atom("b")).unwrap();
        assert_eq!(d, Datum::set(["a".into(), "b".into()]));
        d.apply_diff(&Datum::atom("a")).unwrap();
        assert_eq!(d, Datum::atom("b"));
        assert!(matches!(&d, Datum::Set(a) if matches!(a.0, AtomsRepr::One(_))));
        d.apply_diff(&Datum::atom("b")).unwrap();
        assert_eq!(d, Datum::empty_set());
        assert!(Datum::atom(1i64) < Datum::set([Atom::Integer(1), Atom::Integer(2)]));
    }

    fn d(v: Value) -> Datum {
        Datum::from_json(&v).unwrap()
    }

    #[test]
    fn decodes_wire_shapes() {
        assert_eq!(d(json!(52)), Datum::atom(52));
        assert_eq!(d(json!("dmz-vm5")), Datum::atom("dmz-vm5"));
        assert_eq!(d(json!(false)), Datum::atom(false));
        assert_eq!(d(json!(["set", []])), Datum::empty_set());
        let u: Uuid = "31f08edb-c664-4990-9370-c6e10f844b2d".parse().unwrap();
        assert_eq!(
            d(json!(["uuid", "31f08edb-c664-4990-9370-c6e10f844b2d"])),
            Datum::atom(u)
        );
        assert_eq!(
            d(json!(["map", [["peer", "lr0-dmz"]]])),
            Datum::map([("peer", "lr0-dmz")])
        );
        assert_eq!(
            d(json!(["set", ["b", "a", "b"]])),
            Datum::set(["a".into(), "b".into()])
        );
        assert_eq!(d(json!(["named-uuid", "row1"])), Datum::named_uuid("row1"));
        assert_eq!(d(json!(1.5)), Datum::atom(Atom::Real(1.5)));
    }

    #[test]
    fn rejects_malformed() {
        for v in [
            json!(null),
            json!({}),
            json!(["set", 5]),
            json!(["map", [["a"]]]),
            json!(["map", "x"]),
            json!(["uuid", "nope"]),
            json!(["uuid", 5]),
            json!(["set", [["set", []]]]),
        ] {
            assert!(Datum::from_json(&v).is_err(), "{v}");
        }
    }

    #[test]
    fn round_trips_to_json() {
        for v in [
            json!(52),
            json!(["set", []]),
            json!(["set", ["a", "b"]]),
            json!(["map", [["a", "1"], ["b", "2"]]]),
            json!(["uuid", "31f08edb-c664-4990-9370-c6e10f844b2d"]),
        ] {
            assert_eq!(d(v.clone()).to_json(), v);
        }
    }

    #[test]
    fn set_diff_toggles_elements() {
        let mut have = Datum::set(["a".into(), "b".into()]);
        have.apply_diff(&Datum::set(["b".into(), "c".into()]))
            .unwrap();
        assert_eq!(have, Datum::set(["a".into(), "c".into()]));
        // A one-element diff arrives as a bare atom.
        have.apply_diff(&d(json!("a"))).unwrap();
        assert_eq!(have, Datum::atom("c"));
    }

    #[test]
    fn map_diff_adds_replaces_and_removes() {
        let mut have = Datum::map([("a", "1"), ("b", "2"), ("c", "3")]);
        // a: same value -> removed; b: new value -> replaced; d: new key -> added.
        have.apply_diff(&Datum::map([("a", "1"), ("b", "9"), ("d", "4")]))
            .unwrap();
        assert_eq!(have, Datum::map([("b", "9"), ("c", "3"), ("d", "4")]));
        have.apply_diff(&Datum::empty_map()).unwrap();
        assert_eq!(have, Datum::map([("b", "9"), ("c", "3"), ("d", "4")]));
        assert!(have.apply_diff(&Datum::atom("x")).is_err());
    }
}
