//! [`Details`]: a finding's structured target, a string map kept as one sorted vector. The
//! operator holds every report's findings (50,000 at 5,000 nodes); a `BTreeMap` of three
//! entries costs a 544-byte tree node, this a 144-byte vector. On the wire and in the CRD
//! schema it is the same JSON object of strings.

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;
use std::fmt;

/// String keys to string values, sorted by key, each key once.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Details(Vec<(String, String)>);

impl Details {
    /// No entries.
    pub fn new() -> Self {
        Self::default()
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&String> {
        self.position(key).ok().map(|i| &self.0[i].1)
    }

    /// Set `key` to `value`, returning the value it replaces.
    pub fn insert(&mut self, key: String, value: String) -> Option<String> {
        match self.position(&key) {
            Ok(i) => Some(std::mem::replace(&mut self.0[i].1, value)),
            Err(i) => {
                self.0.insert(i, (key, value));
                None
            }
        }
    }

    /// Whether `key` has a value.
    pub fn contains_key(&self, key: &str) -> bool {
        self.position(key).is_ok()
    }

    /// The entries in key order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&String, &String)> {
        self.0.iter().map(|(k, v)| (k, v))
    }

    /// The keys in order.
    pub fn keys(&self) -> impl ExactSizeIterator<Item = &String> {
        self.0.iter().map(|(k, _)| k)
    }

    /// How many entries.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// No entries.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// As a map (an order's `parameters`).
    pub fn to_map(&self) -> BTreeMap<String, String> {
        self.0.iter().cloned().collect()
    }

    fn position(&self, key: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(k, _)| k.as_str().cmp(key))
    }
}

impl FromIterator<(String, String)> for Details {
    /// A later value of the same key wins, as in a map.
    fn from_iter<I: IntoIterator<Item = (String, String)>>(iter: I) -> Self {
        let mut entries: Vec<(String, String)> = iter.into_iter().collect();
        // Stable: equal keys stay in arrival order, and the last of them is kept.
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        let mut unique: Vec<(String, String)> = Vec::with_capacity(entries.len());
        for (k, v) in entries {
            match unique.last_mut() {
                Some(last) if last.0 == k => last.1 = v,
                _ => unique.push((k, v)),
            }
        }
        unique.shrink_to_fit();
        Self(unique)
    }
}

impl From<BTreeMap<String, String>> for Details {
    fn from(map: BTreeMap<String, String>) -> Self {
        Self(map.into_iter().collect())
    }
}

impl<const N: usize> From<[(String, String); N]> for Details {
    fn from(pairs: [(String, String); N]) -> Self {
        pairs.into_iter().collect()
    }
}

impl PartialEq<BTreeMap<String, String>> for Details {
    fn eq(&self, other: &BTreeMap<String, String>) -> bool {
        self.len() == other.len() && self.iter().zip(other).all(|(a, b)| a == b)
    }
}

impl PartialEq<Details> for BTreeMap<String, String> {
    fn eq(&self, other: &Details) -> bool {
        other == self
    }
}

impl std::ops::Index<&str> for Details {
    type Output = String;
    /// The value of `key`; panics when there is none, as a map's index does.
    fn index(&self, key: &str) -> &String {
        match self.get(key) {
            Some(v) => v,
            None => panic!("no detail {key:?}"),
        }
    }
}

impl Serialize for Details {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Details {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DetailsVisitor;
        impl<'de> Visitor<'de> for DetailsVisitor {
            type Value = Details;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of strings")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Details, A::Error> {
                let mut entries = Vec::with_capacity(access.size_hint().unwrap_or(0).min(64));
                while let Some(entry) = access.next_entry::<String, String>()? {
                    entries.push(entry);
                }
                Ok(entries.into_iter().collect())
            }
        }
        deserializer.deserialize_map(DetailsVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn behaves_as_the_map_it_replaces() {
        let input = pairs(&[
            ("ip", "10.0.0.1"),
            ("interface", "cali0"),
            ("ip", "10.0.0.2"),
        ]);
        let details: Details = input.clone().into_iter().collect();
        let map: BTreeMap<String, String> = input.into_iter().collect();
        assert_eq!(details, map);
        assert_eq!(map, details);
        assert_eq!(details.to_map(), map);
        assert_eq!(details["ip"], "10.0.0.2", "the later value wins");
        assert_eq!(details.get("netns"), None);
        assert!(details.contains_key("interface"));
        let keys: Vec<&String> = details.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["interface", "ip"]);
        let mut more = details.clone();
        assert_eq!(more.insert("netns".into(), String::new()), None);
        assert_eq!(
            more.insert("ip".into(), "10.0.0.3".into()),
            Some("10.0.0.2".into())
        );
        let mut want = map.clone();
        want.insert("netns".into(), String::new());
        want.insert("ip".into(), "10.0.0.3".into());
        assert_eq!(more, want);
        assert_ne!(more, map);
        assert_eq!(Details::from(want.clone()), more);
    }

    #[test]
    fn the_wire_form_is_the_maps() {
        let map: BTreeMap<String, String> = pairs(&[("state", "PERMANENT"), ("ip", "10.0.0.1")])
            .into_iter()
            .collect();
        let details = Details::from(map.clone());
        assert_eq!(
            serde_json::to_string(&details).unwrap(),
            serde_json::to_string(&map).unwrap()
        );
        let back: Details =
            serde_json::from_str(r#"{"state":"PERMANENT","ip":"10.0.0.1"}"#).unwrap();
        assert_eq!(back, details);
        let err = serde_json::from_str::<Details>(r#"{"ip":1}"#).unwrap_err();
        assert!(err.to_string().contains("expected a string"), "{err}");
        assert!(serde_json::from_str::<Details>("[]").is_err());
    }
}
