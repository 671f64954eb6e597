//! A small string-to-string map, sorted by key, in one allocation of its pairs: what the
//! rows of large tables (Logical_Flow: 145,000 rows at `--scale`) keep their maps in,
//! where a `BTreeMap` takes a node of room for 11 pairs per non-empty map.

use std::collections::BTreeMap;
use std::fmt;

/// A `string`-to-`string` map column's value, sorted by key, keys unique.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StringMap(Box<[(String, String)]>);

impl StringMap {
    pub fn get(&self, key: &str) -> Option<&String> {
        self.0
            .binary_search_by(|(k, _)| k.as_str().cmp(key))
            .ok()
            .map(|i| &self.0[i].1)
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The pairs, by key.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &String)> {
        self.0.iter().map(|(k, v)| (k, v))
    }

    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.0.iter().map(|(k, _)| k)
    }
}

impl StringMap {
    /// From pairs that are normally sorted by key, keys unique (an OVSDB map's, as the raw
    /// replica keeps it); others are sorted, the last of a repeated key kept.
    pub(crate) fn from_sorted(pairs: Vec<(String, String)>) -> StringMap {
        if pairs.windows(2).all(|w| w[0].0 < w[1].0) {
            StringMap(pairs.into_boxed_slice())
        } else {
            pairs.into_iter().collect()
        }
    }
}

impl From<BTreeMap<String, String>> for StringMap {
    fn from(map: BTreeMap<String, String>) -> StringMap {
        StringMap(map.into_iter().collect())
    }
}

impl FromIterator<(String, String)> for StringMap {
    /// For a repeated key the last pair wins.
    fn from_iter<I: IntoIterator<Item = (String, String)>>(pairs: I) -> StringMap {
        pairs.into_iter().collect::<BTreeMap<_, _>>().into()
    }
}

impl<'a> IntoIterator for &'a StringMap {
    type Item = (&'a String, &'a String);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, (String, String)>,
        fn(&'a (String, String)) -> (&'a String, &'a String),
    >;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(|(k, v)| (k, v))
    }
}

/// As a `BTreeMap`'s: `{"k": "v", ...}`.
impl fmt::Debug for StringMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_prints_as_the_btree_map_it_came_from() {
        let b: BTreeMap<String, String> = [("source", "northd.c:1"), ("stage-name", "ls_in_acl")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let m = StringMap::from(b.clone());
        assert_eq!(format!("{m:?}"), format!("{b:?}"));
        assert_eq!(m.get("stage-name").map(String::as_str), Some("ls_in_acl"));
        assert_eq!(m.get("source").map(String::as_str), Some("northd.c:1"));
        assert_eq!(m.get("stage-hint"), None);
        assert!(m.contains_key("source") && !m.contains_key("sourc"));
        assert_eq!(m.len(), 2);
        assert!(
            m.iter()
                .map(|(k, _)| k.as_str())
                .eq(["source", "stage-name"])
        );
        let last: StringMap = [("a", "1"), ("a", "2")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        assert_eq!(last.get("a").map(String::as_str), Some("2"));
        assert!(StringMap::default().is_empty());
        let unsorted = StringMap::from_sorted(vec![
            ("b".into(), "1".into()),
            ("a".into(), "2".into()),
            ("b".into(), "3".into()),
        ]);
        assert!(
            unsorted
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .eq([("a", "2"), ("b", "3")])
        );
    }
}
