//! JSON request bodies read as upstream's strict decoder (sigs.k8s.io/json) reads them:
//! the value, and every duplicate field by its path (`duplicate field "spec.replicas"`,
//! `…containers[0].name`) — the later value wins, as in Go. Paths are only rendered for
//! the duplicates found, so a body without any costs what a plain parse does.

use std::cell::RefCell;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

enum Segment<'a> {
    Key(&'a str),
    Index(usize),
}

struct Path<'a> {
    segment: Segment<'a>,
    parent: Option<&'a Path<'a>>,
}

fn render(path: &Path<'_>) -> String {
    let mut segments = Vec::new();
    let mut at = Some(path);
    while let Some(p) = at {
        segments.push(&p.segment);
        at = p.parent;
    }
    let mut out = String::new();
    for s in segments.into_iter().rev() {
        match s {
            Segment::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Segment::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

#[derive(Clone, Copy)]
struct Seed<'p, 'd> {
    path: Option<&'p Path<'p>>,
    duplicates: &'d RefCell<Vec<String>>,
}

impl<'de> DeserializeSeed<'de> for Seed<'_, '_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Seed<'_, '_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        loop {
            let node = Path {
                segment: Segment::Index(out.len()),
                parent: self.path,
            };
            let seed = Seed {
                path: Some(&node),
                duplicates: self.duplicates,
            };
            match seq.next_element_seed(seed)? {
                Some(v) => out.push(v),
                None => return Ok(Value::Array(out)),
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some(key) = access.next_key::<String>()? {
            let value = {
                let node = Path {
                    segment: Segment::Key(&key),
                    parent: self.path,
                };
                access.next_value_seed(Seed {
                    path: Some(&node),
                    duplicates: self.duplicates,
                })?
            };
            match map.entry(key) {
                serde_json::map::Entry::Occupied(mut o) => {
                    let node = Path {
                        segment: Segment::Key(o.key()),
                        parent: self.path,
                    };
                    self.duplicates
                        .borrow_mut()
                        .push(format!("duplicate field \"{}\"", render(&node)));
                    o.insert(value);
                }
                serde_json::map::Entry::Vacant(v) => {
                    v.insert(value);
                }
            }
        }
        Ok(Value::Object(map))
    }
}

/// The body's value, and `duplicate field "…"` for each duplicate (in document order).
pub fn decode(bytes: &[u8]) -> Result<(Value, Vec<String>), serde_json::Error> {
    let duplicates = RefCell::new(Vec::new());
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = Seed {
        path: None,
        duplicates: &duplicates,
    }
    .deserialize(&mut de)?;
    de.end()?;
    Ok((value, duplicates.into_inner()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn duplicates_by_path_and_the_later_value_wins() {
        let (v, d) = decode(
            br#"{"spec": {"replicas": 2, "replicas": 3, "template": {"spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b", "name": "c"}]}}}, "kind": "A", "kind": "B"}"#,
        )
        .unwrap();
        assert_eq!(v["spec"]["replicas"], 3);
        assert_eq!(v["kind"], "B");
        assert_eq!(v["spec"]["template"]["spec"]["containers"][1]["name"], "c");
        assert_eq!(
            d,
            vec![
                "duplicate field \"spec.replicas\"",
                "duplicate field \"spec.template.spec.containers[1].name\"",
                "duplicate field \"kind\"",
            ]
        );
    }

    #[test]
    fn same_values_as_serde_json() {
        for body in [
            r#"{"a": [1, -2, 3.5, true, null, "s\u00e9"], "b": {}, "c": [], "d": 18446744073709551615}"#,
            r#"[{"x": {"y": [[]]}}]"#,
            r#""text""#,
            "12",
        ] {
            let (v, d) = decode(body.as_bytes()).unwrap();
            assert_eq!(v, serde_json::from_str::<Value>(body).unwrap(), "{body}");
            assert!(d.is_empty());
        }
        assert_eq!(decode(b"{}").unwrap().0, json!({}));
    }

    #[test]
    fn malformed_bodies_fail_as_serde_json_does() {
        for body in ["{", "{\"a\":}", "[1,]", "{} {}", "", "{\"a\": 1,}"] {
            assert!(decode(body.as_bytes()).is_err(), "{body}");
        }
        let deep = "[".repeat(10_000);
        assert!(decode(deep.as_bytes()).is_err());
    }
}
