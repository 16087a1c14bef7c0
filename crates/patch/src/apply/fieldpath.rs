//! Field paths and field sets, mirroring structured-merge-diff v4's `fieldpath` package:
//! `PathElement` (`element.go`, with its total order `Compare` and `String`), `Set` (`set.go`:
//! members plus children, `Union`/`Intersection`/`Difference`/`RecursiveDifference`,
//! `Iterate`) and the FieldsV1 wire form (`serialize.go`, `serialize-pe.go`): `f:<name>`,
//! `k:<json object of the key fields>`, `v:<json value>`, `i:<index>`, and `"."` for a path
//! that is both a member and has children.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::{self, Write as _};

use serde_json::{Map, Value};

use crate::gofmt;

/// One step of a path into an object.
#[derive(Clone, Debug)]
pub enum PathElement {
    /// A struct field or a map key: `f:<name>`.
    Field(String),
    /// An item of an associative list, by its key fields sorted by name: `k:{...}`.
    Key(Vec<(String, Value)>),
    /// An item of a set (associative list of scalars), by value: `v:<json>`.
    Value(Value),
    /// An item of a list by position: `i:<n>`.
    Index(i64),
}

impl PathElement {
    fn rank(&self) -> u8 {
        match self {
            PathElement::Field(_) => 0,
            PathElement::Key(_) => 1,
            PathElement::Value(_) => 2,
            PathElement::Index(_) => 3,
        }
    }

    /// The FieldsV1 key of this element (`serializePathElementToWriter`).
    pub fn serialize(&self) -> String {
        match self {
            PathElement::Field(name) => format!("f:{name}"),
            PathElement::Key(fields) => {
                let mut out = String::from("k:{");
                for (i, (name, value)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&go_json_string(name));
                    out.push(':');
                    out.push_str(&go_json(value));
                }
                out.push('}');
                out
            }
            PathElement::Value(value) => format!("v:{}", go_json(value)),
            PathElement::Index(i) => format!("i:{i}"),
        }
    }

    /// Parses a FieldsV1 key (`DeserializePathElement`); `Ok(None)` for an unknown element
    /// type, which upstream drops silently.
    pub fn deserialize(s: &str) -> Result<Option<PathElement>, String> {
        let bytes = s.as_bytes();
        if bytes.len() < 2 {
            return Err("key must be 2 characters long:".to_string());
        }
        if bytes[1] != b':' {
            return Err(format!("missing colon: {s}"));
        }
        let rest = &s[2..];
        match bytes[0] {
            b'f' => Ok(Some(PathElement::Field(rest.to_string()))),
            b'v' => serde_json::from_str(rest)
                .map(|v| Some(PathElement::Value(v)))
                .map_err(|e| e.to_string()),
            b'k' => match serde_json::from_str::<Value>(rest).map_err(|e| e.to_string())? {
                Value::Object(map) => {
                    let mut fields: Vec<(String, Value)> = map.into_iter().collect();
                    fields.sort_by(|a, b| a.0.cmp(&b.0));
                    Ok(Some(PathElement::Key(fields)))
                }
                other => Err(format!("expected an object for a key, got {other}")),
            },
            b'i' => rest
                .parse::<i64>()
                .map(|i| Some(PathElement::Index(i)))
                .map_err(|_| format!("strconv.Atoi: parsing {rest:?}: invalid syntax")),
            _ => Ok(None),
        }
    }
}

impl Ord for PathElement {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (PathElement::Field(a), PathElement::Field(b)) => a.cmp(b),
            (PathElement::Key(a), PathElement::Key(b)) => compare_field_lists(a, b),
            (PathElement::Value(a), PathElement::Value(b)) => compare_values(a, b),
            (PathElement::Index(a), PathElement::Index(b)) => a.cmp(b),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

impl PartialOrd for PathElement {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for PathElement {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for PathElement {}

impl fmt::Display for PathElement {
    /// `PathElement.String()`: `.name`, `[k=v,...]`, `[=v]`, `[i]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathElement::Field(name) => write!(f, ".{name}"),
            PathElement::Key(fields) => {
                f.write_char('[')?;
                for (i, (name, value)) in fields.iter().enumerate() {
                    if i > 0 {
                        f.write_char(',')?;
                    }
                    write!(f, "{name}={}", value_to_string(value))?;
                }
                f.write_char(']')
            }
            PathElement::Value(value) => write!(f, "[={}]", value_to_string(value)),
            PathElement::Index(i) => write!(f, "[{i}]"),
        }
    }
}

/// `Path.String()`: the elements' strings concatenated (`.spec.containers[name="x"].image`).
pub fn path_string(path: &[PathElement]) -> String {
    path.iter().map(ToString::to_string).collect()
}

/// `value.ToString`: strings Go-quoted, numbers and booleans as `%v`.
fn value_to_string(value: &Value) -> String {
    match value {
        Value::Null => "null".to_string(),
        Value::String(s) => go_quote(s),
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(value_to_string).collect();
            format!("[{}]", parts.join(","))
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .iter()
                .map(|k| {
                    format!(
                        "{k}={}",
                        map.get(k.as_str())
                            .map_or_else(String::new, value_to_string)
                    )
                })
                .collect();
            format!("{{{}}}", parts.join(","))
        }
        other => gofmt::v(other),
    }
}

/// Go's `strconv.Quote` for the characters that occur in field values.
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A JSON string as Go's `encoding/json` writes it (HTML-safe: `<`, `>`, `&` escaped).
pub(crate) fn go_json_string(s: &str) -> String {
    let encoded = Value::String(s.to_string()).to_string();
    html_escape(&encoded)
}

/// Compact JSON as Go's `encoding/json` writes it (sorted keys, HTML-safe escaping).
pub(crate) fn go_json(value: &Value) -> String {
    // serde_json without `preserve_order` already sorts object keys, as Go does for maps.
    html_escape(&value.to_string())
}

fn html_escape(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

fn compare_field_lists(a: &[(String, Value)], b: &[(String, Value)]) -> Ordering {
    for (x, y) in a.iter().zip(b.iter()) {
        let c = x.0.cmp(&y.0).then_with(|| compare_values(&x.1, &y.1));
        if c != Ordering::Equal {
            return c;
        }
    }
    a.len().cmp(&b.len())
}

fn type_rank(v: &Value) -> u8 {
    match v {
        Value::Number(n) if n.is_f64() => 0,
        Value::Number(_) => 1,
        Value::String(_) => 2,
        Value::Bool(_) => 3,
        Value::Array(_) => 4,
        Value::Object(_) => 5,
        Value::Null => 6,
    }
}

fn as_float(v: &Value) -> Option<f64> {
    v.as_number().and_then(serde_json::Number::as_f64)
}

/// `value.Compare`: a total order over values (floats < ints < strings < bools < lists <
/// maps < null; floats and ints compare numerically).
pub(crate) fn compare_values(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => {
            let (x, y) = (as_float(a).unwrap_or(0.0), as_float(b).unwrap_or(0.0));
            x.partial_cmp(&y).unwrap_or(Ordering::Equal)
        }
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x.cmp(&y),
            _ => {
                let (x, y) = (as_float(a).unwrap_or(0.0), as_float(b).unwrap_or(0.0));
                x.partial_cmp(&y).unwrap_or(Ordering::Equal)
            }
        },
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Array(x), Value::Array(y)) => {
            for (p, q) in x.iter().zip(y.iter()) {
                let c = compare_values(p, q);
                if c != Ordering::Equal {
                    return c;
                }
            }
            x.len().cmp(&y.len())
        }
        (Value::Object(x), Value::Object(y)) => {
            let mut xs: Vec<(&String, &Value)> = x.iter().collect();
            let mut ys: Vec<(&String, &Value)> = y.iter().collect();
            xs.sort_by(|p, q| p.0.cmp(q.0));
            ys.sort_by(|p, q| p.0.cmp(q.0));
            for (p, q) in xs.iter().zip(ys.iter()) {
                let c = p.0.cmp(q.0).then_with(|| compare_values(p.1, q.1));
                if c != Ordering::Equal {
                    return c;
                }
            }
            xs.len().cmp(&ys.len())
        }
        (Value::Null, Value::Null) => Ordering::Equal,
        _ => type_rank(a).cmp(&type_rank(b)),
    }
}

/// `value.Equals`: deep equality where ints and floats compare numerically.
pub(crate) fn values_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(_), Value::Number(_)) => compare_values(a, b) == Ordering::Equal,
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y.iter()).all(|(p, q)| values_equal(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| values_equal(v, w)))
        }
        _ => a == b,
    }
}

/// A set of field paths: `members` are paths ending here, `children` hold the longer ones.
/// Invariant: no child set is empty.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Set {
    members: BTreeSet<PathElement>,
    children: BTreeMap<PathElement, Set>,
}

impl Set {
    /// The empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the set has no path.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty() && self.children.is_empty()
    }

    /// Adds a path (the empty path is ignored, as upstream).
    pub fn insert(&mut self, path: &[PathElement]) {
        match path {
            [] => {}
            [last] => {
                self.members.insert(last.clone());
            }
            [first, rest @ ..] => self.children.entry(first.clone()).or_default().insert(rest),
        }
    }

    /// Whether the path is a member.
    pub fn has(&self, path: &[PathElement]) -> bool {
        match path {
            [] => false,
            [last] => self.members.contains(last),
            [first, rest @ ..] => self.children.get(first).is_some_and(|c| c.has(rest)),
        }
    }

    pub(crate) fn is_member(&self, pe: &PathElement) -> bool {
        self.members.contains(pe)
    }

    /// The paths below `pe` (`WithPrefix`), if any.
    pub(crate) fn child(&self, pe: &PathElement) -> Option<&Set> {
        self.children.get(pe)
    }

    pub(crate) fn members(&self) -> impl Iterator<Item = &PathElement> {
        self.members.iter()
    }

    pub(crate) fn children(&self) -> impl Iterator<Item = (&PathElement, &Set)> {
        self.children.iter()
    }

    pub(crate) fn from_parts(
        members: BTreeSet<PathElement>,
        children: BTreeMap<PathElement, Set>,
    ) -> Set {
        let children = children
            .into_iter()
            .filter(|(_, s)| !s.is_empty())
            .collect();
        Set { members, children }
    }

    /// Paths in either set.
    pub fn union(&self, other: &Set) -> Set {
        let members = self.members.union(&other.members).cloned().collect();
        let mut children = self.children.clone();
        for (pe, set) in &other.children {
            let merged = match children.get(pe) {
                Some(mine) => mine.union(set),
                None => set.clone(),
            };
            children.insert(pe.clone(), merged);
        }
        Set { members, children }
    }

    /// Paths in both sets.
    pub fn intersection(&self, other: &Set) -> Set {
        let members = self.members.intersection(&other.members).cloned().collect();
        let children = self
            .children
            .iter()
            .filter_map(|(pe, set)| {
                other
                    .children
                    .get(pe)
                    .map(|o| (pe.clone(), set.intersection(o)))
            })
            .collect();
        Set::from_parts(members, children)
    }

    /// Paths of `self` not in `other` (children of a member of `other` are kept).
    pub fn difference(&self, other: &Set) -> Set {
        let members = self.members.difference(&other.members).cloned().collect();
        let children = self
            .children
            .iter()
            .map(|(pe, set)| match other.children.get(pe) {
                Some(o) => (pe.clone(), set.difference(o)),
                None => (pe.clone(), set.clone()),
            })
            .collect();
        Set::from_parts(members, children)
    }

    /// Paths of `self` neither in `other` nor below a member of `other`.
    pub fn recursive_difference(&self, other: &Set) -> Set {
        let members = self.members.difference(&other.members).cloned().collect();
        let children = self
            .children
            .iter()
            .filter(|(pe, _)| !other.members.contains(pe))
            .map(|(pe, set)| match other.children.get(pe) {
                Some(o) => (pe.clone(), set.recursive_difference(o)),
                None => (pe.clone(), set.clone()),
            })
            .collect();
        Set::from_parts(members, children)
    }

    /// Every path, in upstream's `Iterate` order (this level's members, then each child).
    pub fn paths(&self) -> Vec<Vec<PathElement>> {
        let mut out = Vec::new();
        self.collect_paths(&mut Vec::new(), &mut out);
        out
    }

    fn collect_paths(&self, prefix: &mut Vec<PathElement>, out: &mut Vec<Vec<PathElement>>) {
        for pe in &self.members {
            let mut path = prefix.clone();
            path.push(pe.clone());
            out.push(path);
        }
        for (pe, set) in &self.children {
            prefix.push(pe.clone());
            set.collect_paths(prefix, out);
            prefix.pop();
        }
    }

    /// The FieldsV1 object, byte for byte as upstream writes it (`Set.ToJSON`): elements in
    /// order, `"."` last.
    pub fn to_fields_v1_string(&self) -> String {
        let mut out = String::from("{");
        self.emit(false, &mut out);
        out.push('}');
        out
    }

    fn emit(&self, include_self: bool, out: &mut String) {
        let mut first = true;
        let mut sep = |out: &mut String| {
            if !std::mem::replace(&mut first, false) {
                out.push(',');
            }
        };
        for (pe, member, child) in self.merged_elements() {
            sep(out);
            out.push_str(&go_json_string(&pe.serialize()));
            out.push(':');
            match child {
                None => out.push_str("{}"),
                Some(set) => {
                    out.push('{');
                    set.emit(member, out);
                    out.push('}');
                }
            }
        }
        if include_self && !first {
            out.push_str(",\".\":{}");
        }
    }

    /// Members and children merged in element order: (element, is member, child set).
    fn merged_elements(&self) -> Vec<(&PathElement, bool, Option<&Set>)> {
        let mut out: Vec<(&PathElement, bool, Option<&Set>)> = Vec::new();
        let mut members = self.members.iter().peekable();
        let mut children = self.children.iter().peekable();
        loop {
            match (members.peek(), children.peek()) {
                (Some(m), Some((c, set))) => match m.cmp(c) {
                    Ordering::Less => {
                        out.push((m, true, None));
                        members.next();
                    }
                    Ordering::Greater => {
                        out.push((c, false, Some(set)));
                        children.next();
                    }
                    Ordering::Equal => {
                        out.push((c, true, Some(set)));
                        members.next();
                        children.next();
                    }
                },
                (Some(m), None) => {
                    out.push((m, true, None));
                    members.next();
                }
                (None, Some((c, set))) => {
                    out.push((c, false, Some(set)));
                    children.next();
                }
                (None, None) => break,
            }
        }
        out
    }

    /// The FieldsV1 object as a JSON value (key order is the map's; the string form keeps
    /// upstream's).
    pub fn to_fields_v1(&self) -> Value {
        let mut map = Map::new();
        for (pe, member, child) in self.merged_elements() {
            let value = match child {
                None => Value::Object(Map::new()),
                Some(set) => {
                    let mut inner = match set.to_fields_v1() {
                        Value::Object(m) => m,
                        _ => Map::new(),
                    };
                    if member {
                        inner.insert(".".to_string(), Value::Object(Map::new()));
                    }
                    Value::Object(inner)
                }
            };
            map.insert(pe.serialize(), value);
        }
        Value::Object(map)
    }

    /// Decodes a FieldsV1 object (`Set.FromJSON` / `readIterV1`).
    pub fn from_fields_v1(value: &Value) -> Result<Set, String> {
        let (set, _) = read_v1(value)?;
        Ok(set.unwrap_or_default())
    }
}

/// Returns the children of this subtree (None when it has none) and whether the subtree is
/// itself a member of its parent.
fn read_v1(value: &Value) -> Result<(Option<Set>, bool), String> {
    let Value::Object(map) = value else {
        return Err(format!("expected an object, got {value}"));
    };
    let mut is_member = false;
    let mut children: Option<Set> = None;
    for (key, sub) in map {
        if key == "." {
            is_member = true;
            continue;
        }
        let Some(pe) = PathElement::deserialize(key)
            .map_err(|e| format!("parsing key as path element: {e}"))?
        else {
            continue;
        };
        let (grandchildren, child_is_member) = read_v1(sub)?;
        if child_is_member {
            children
                .get_or_insert_with(Set::new)
                .members
                .insert(pe.clone());
        }
        if let Some(g) = grandchildren {
            if !g.is_empty() {
                children.get_or_insert_with(Set::new).children.insert(pe, g);
            }
        }
    }
    if children.is_none() {
        is_member = true;
    }
    Ok((children, is_member))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn f(name: &str) -> PathElement {
        PathElement::Field(name.to_string())
    }

    #[test]
    fn serializes_in_upstream_order_with_dot_last() {
        let mut s = Set::new();
        let key = PathElement::Key(vec![("name".to_string(), json!("nginx"))]);
        s.insert(&[f("spec"), f("containers"), key.clone()]);
        s.insert(&[f("spec"), f("containers"), key.clone(), f("image")]);
        s.insert(&[f("metadata"), f("labels"), f("app")]);
        s.insert(&[f("spec"), f("finalizers"), PathElement::Value(json!("a<b"))]);
        assert_eq!(
            s.to_fields_v1_string(),
            r#"{"f:metadata":{"f:labels":{"f:app":{}}},"f:spec":{"f:containers":{"k:{\"name\":\"nginx\"}":{"f:image":{},".":{}}},"f:finalizers":{"v:\"a\\u003cb\"":{}}}}"#
        );
        let back = Set::from_fields_v1(&s.to_fields_v1()).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn element_order_and_strings() {
        let mut v = [
            PathElement::Index(1),
            PathElement::Value(json!(2)),
            PathElement::Value(json!(1.5)),
            PathElement::Key(vec![("a".into(), json!(1))]),
            f("z"),
            f("a"),
        ];
        v.sort();
        let s: Vec<String> = v.iter().map(ToString::to_string).collect();
        assert_eq!(s, vec![".a", ".z", "[a=1]", "[=1.5]", "[=2]", "[1]"]);
        let key = PathElement::Key(vec![
            ("containerPort".into(), json!(80)),
            ("protocol".into(), json!("TCP")),
        ]);
        assert_eq!(key.to_string(), r#"[containerPort=80,protocol="TCP"]"#);
        assert_eq!(
            key.serialize(),
            r#"k:{"containerPort":80,"protocol":"TCP"}"#
        );
    }

    #[test]
    fn set_algebra() {
        let mut a = Set::new();
        a.insert(&[f("a"), f("b")]);
        a.insert(&[f("a"), f("c")]);
        a.insert(&[f("d")]);
        let mut b = Set::new();
        b.insert(&[f("a")]);
        b.insert(&[f("a"), f("b")]);
        assert_eq!(a.difference(&b).paths().len(), 2);
        let rd = a.recursive_difference(&b);
        assert_eq!(rd.paths(), vec![vec![f("d")]]);
        assert_eq!(a.intersection(&b).paths(), vec![vec![f("a"), f("b")]]);
        assert_eq!(a.union(&b).paths().len(), 4);
        assert!(a.has(&[f("a"), f("c")]) && !a.has(&[f("a")]));
    }

    #[test]
    fn decode_errors_and_unknown_elements() {
        assert!(Set::from_fields_v1(&json!({"x": {}})).is_err());
        assert!(Set::from_fields_v1(&json!({"i:x": {}})).is_err());
        assert!(Set::from_fields_v1(&json!([])).is_err());
        let s = Set::from_fields_v1(&json!({"z:abc": {}, "f:a": {}})).unwrap();
        assert_eq!(s.paths(), vec![vec![f("a")]]);
    }
}
