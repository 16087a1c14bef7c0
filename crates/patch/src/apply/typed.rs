//! Schema-aware walks over JSON values, mirroring structured-merge-diff v4's `typed`
//! package: `ToFieldSet` (`tofieldset.go`), `Merge` (`merge.go`, rule "keep RHS" and the
//! shared-order list merge), `Compare` (`compare.go`, with the post-item hook that records
//! added/removed maps and lists), `RemoveItems` (`remove.go`), validation (`validate.go`) and
//! `Set.EnsureNamedFieldsAreMembers` (`fieldpath/set.go`), plus `listItemToPathElement`
//! (`helpers.go`: `k:` keys with schema defaults, `v:` set values, `i:` indexes).
//!
//! "Absent" (Go `nil`) and JSON `null` differ throughout: `Option<&Value>` is presence.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use super::fieldpath::{path_string, values_equal, PathElement, Set};
use super::schema::{Atom, ListType, MapType, Scalar, TypeRef, TypeSchema};

/// What changed between two objects (`typed.Comparison`).
#[derive(Debug, Default)]
pub(crate) struct Comparison {
    pub(crate) removed: Set,
    pub(crate) modified: Set,
    pub(crate) added: Set,
}

impl Comparison {
    /// `ExcludeFields`: drops the ignored paths and everything below them.
    pub(crate) fn exclude(self, ignored: &Set) -> Comparison {
        if ignored.is_empty() {
            return self;
        }
        Comparison {
            removed: self.removed.recursive_difference(ignored),
            modified: self.modified.recursive_difference(ignored),
            added: self.added.recursive_difference(ignored),
        }
    }
}

/// Which of an atom's forms handles a value (`deduceAtom` + `handleAtom`).
#[derive(Clone, Copy)]
enum Shape<'a, 's> {
    Scalar(Scalar),
    List(&'a ListType<'s>),
    Map(&'a MapType<'s>),
    Invalid,
}

impl Shape<'_, '_> {
    fn same(&self, other: &Self) -> bool {
        std::mem::discriminant(self) == std::mem::discriminant(other)
    }
}

fn shape<'a, 's>(atom: &'a Atom<'s>, v: Option<&Value>) -> Shape<'a, 's> {
    match (v, &atom.scalar, &atom.list, &atom.map) {
        (Some(Value::Array(_)), _, Some(l), _) => return Shape::List(l),
        (Some(Value::Object(_)), _, _, Some(m)) => return Shape::Map(m),
        (Some(Value::Bool(_) | Value::Number(_) | Value::String(_)), Some(s), _, _) => {
            return Shape::Scalar(*s)
        }
        _ => {}
    }
    match (&atom.map, atom.scalar, &atom.list) {
        (Some(m), _, _) => Shape::Map(m),
        (None, Some(s), _) => Shape::Scalar(s),
        (None, None, Some(l)) => Shape::List(l),
        _ => Shape::Invalid,
    }
}

fn as_list(v: Option<&Value>) -> Option<&Vec<Value>> {
    v.and_then(Value::as_array)
}

fn as_map(v: Option<&Value>) -> Option<&Map<String, Value>> {
    v.and_then(Value::as_object)
}

/// `listItemToPathElement`.
pub(crate) fn list_item_pe(
    schema: &TypeSchema,
    list: &ListType<'_>,
    index: usize,
    item: &Value,
) -> Result<PathElement, String> {
    if !list.associative {
        return Ok(PathElement::Index(i64::try_from(index).unwrap_or(i64::MAX)));
    }
    if list.keys.is_empty() {
        return match item {
            Value::Object(_) => {
                Err("associative list without keys has an element that's a map type".into())
            }
            Value::Array(_) => Err("not supported: associative list with lists as elements".into()),
            Value::Null => {
                Err("associative list without keys has an element that's an explicit null".into())
            }
            v => Ok(PathElement::Value(v.clone())),
        };
    }
    let map = match item {
        Value::Null => return Err("associative list with keys may not have a null element".into()),
        Value::Object(m) => m,
        _ => return Err("associative list with keys may not have non-map elements".into()),
    };
    let mut fields = Vec::with_capacity(list.keys.len());
    for key in &list.keys {
        match map.get(*key) {
            Some(v) => fields.push(((*key).to_string(), v.clone())),
            None => match schema.key_default(list, key) {
                Some(d) => fields.push(((*key).to_string(), d)),
                None => {
                    return Err(format!(
                        "associative list with keys has an element that omits key field {key:?} (and doesn't have default value)"
                    ))
                }
            },
        }
    }
    fields.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(PathElement::Key(fields))
}

/// Path elements of a live list's items; items whose element cannot be computed fall back
/// to their index so that they are kept rather than lost.
fn lenient_pes(schema: &TypeSchema, list: &ListType<'_>, items: &[Value]) -> Vec<PathElement> {
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            list_item_pe(schema, list, i, item)
                .unwrap_or_else(|_| PathElement::Index(i64::try_from(i).unwrap_or(i64::MAX)))
        })
        .collect()
}

/// `TypedValue.ToFieldSet`.
pub(crate) fn to_field_set(schema: &TypeSchema, value: &Value) -> Set {
    let mut set = Set::new();
    field_set_walk(schema, TypeRef::Root, value, &mut Vec::new(), &mut set);
    set
}

fn field_set_walk(
    schema: &TypeSchema,
    tr: TypeRef<'_>,
    value: &Value,
    path: &mut Vec<PathElement>,
    set: &mut Set,
) {
    let atom = schema.resolve(tr);
    match shape(&atom, Some(value)) {
        Shape::Scalar(_) => set.insert(path),
        Shape::List(l) => {
            if !l.associative {
                set.insert(path);
                return;
            }
            let Some(items) = value.as_array() else {
                return;
            };
            for (i, item) in items.iter().enumerate() {
                let Ok(pe) = list_item_pe(schema, l, i, item) else {
                    continue;
                };
                path.push(pe);
                field_set_walk(schema, l.elem, item, path, set);
                set.insert(path);
                path.pop();
            }
        }
        Shape::Map(m) => {
            if m.atomic {
                set.insert(path);
                return;
            }
            let Some(map) = value.as_object() else { return };
            for (k, v) in map {
                path.push(PathElement::Field(k.clone()));
                field_set_walk(schema, m.child(k), v, path, set);
                if !m.has_field(k) {
                    set.insert(path);
                }
                path.pop();
            }
        }
        Shape::Invalid => {}
    }
}

/// `TypedValue.Merge` with upstream's "keep RHS" rule: `rhs` (the applied configuration)
/// wins for leaves; maps and associative lists merge item by item.
pub(crate) fn merge(schema: &TypeSchema, lhs: &Value, rhs: &Value) -> Value {
    merge_node(schema, TypeRef::Root, Some(lhs), Some(rhs)).unwrap_or(Value::Null)
}

fn merge_node(
    schema: &TypeSchema,
    tr: TypeRef<'_>,
    lhs: Option<&Value>,
    rhs: Option<&Value>,
) -> Option<Value> {
    let atom = schema.resolve(tr);
    // When the two sides take different forms the RHS's handling produces the output.
    let s = if rhs.is_none() {
        shape(&atom, lhs)
    } else {
        shape(&atom, rhs)
    };
    let leaf = || rhs.or(lhs).cloned();
    match s {
        Shape::Scalar(_) | Shape::Invalid => leaf(),
        Shape::List(l) => {
            let (ll, rl) = (as_list(lhs), as_list(rhs));
            let empty = ll.is_none_or(Vec::is_empty) && rl.is_none_or(Vec::is_empty);
            if !l.associative || empty {
                return leaf();
            }
            let out = merge_list(
                schema,
                l,
                ll.map_or(&[][..], Vec::as_slice),
                rl.map_or(&[][..], Vec::as_slice),
            );
            (!out.is_empty()).then_some(Value::Array(out))
        }
        Shape::Map(m) => {
            let (lm, rm) = (as_map(lhs), as_map(rhs));
            let empty = lm.is_none_or(Map::is_empty) && rm.is_none_or(Map::is_empty);
            if m.atomic || empty {
                return leaf();
            }
            let mut out = Map::new();
            for (k, lv) in lm.into_iter().flatten() {
                let rv = rm.and_then(|r| r.get(k));
                if let Some(v) = merge_node(schema, m.child(k), Some(lv), rv) {
                    out.insert(k.clone(), v);
                }
            }
            for (k, rv) in rm.into_iter().flatten() {
                if lm.is_some_and(|l| l.contains_key(k)) {
                    continue;
                }
                if let Some(v) = merge_node(schema, m.child(k), None, Some(rv)) {
                    out.insert(k.clone(), v);
                }
            }
            (!out.is_empty()).then_some(Value::Object(out))
        }
    }
}

/// The list merge of `mergingWalker.visitListItems`: LHS order is kept, RHS items are
/// placed where the shared items put them, new RHS items follow the RHS order.
fn merge_list(schema: &TypeSchema, l: &ListType<'_>, lhs: &[Value], rhs: &[Value]) -> Vec<Value> {
    let rhs_pes = lenient_pes(schema, l, rhs);
    let lhs_pes = lenient_pes(schema, l, lhs);
    let mut observed_rhs: BTreeMap<&PathElement, &Value> = BTreeMap::new();
    for (pe, v) in rhs_pes.iter().zip(rhs) {
        observed_rhs.entry(pe).or_insert(v);
    }
    let null = Value::Null;
    let mut observed_lhs: BTreeMap<&PathElement, &Value> = BTreeMap::new();
    for (pe, v) in lhs_pes.iter().zip(lhs) {
        // Duplicated live items are not merged with the new value.
        observed_lhs
            .entry(pe)
            .and_modify(|e| *e = &null)
            .or_insert(v);
    }
    let mut shared = rhs_pes.iter().filter(|pe| observed_lhs.contains_key(pe));
    let mut next_shared = shared.next();
    let mut merged_rhs: BTreeSet<&PathElement> = BTreeSet::new();
    let mut out = Vec::with_capacity(lhs.len().max(rhs.len()));
    let item = |lv: Option<&Value>, rv: Option<&Value>, out: &mut Vec<Value>| {
        if let Some(v) = merge_node(schema, l.elem, lv, rv) {
            out.push(v);
        }
    };
    let (mut li, mut ri) = (0, 0);
    while li < lhs_pes.len() || ri < rhs_pes.len() {
        if li < lhs_pes.len() && ri < rhs_pes.len() {
            let pe = &lhs_pes[li];
            if *pe == rhs_pes[ri] {
                merged_rhs.insert(pe);
                item(
                    observed_lhs.get(pe).copied(),
                    observed_rhs.get(pe).copied(),
                    &mut out,
                );
                li += 1;
                ri += 1;
                next_shared = shared.next();
                continue;
            }
            if observed_rhs.contains_key(pe) && next_shared.is_some_and(|n| n != pe) {
                li += 1;
                continue;
            }
        }
        if li < lhs_pes.len() {
            let pe = &lhs_pes[li];
            if !observed_rhs.contains_key(pe) {
                item(Some(&lhs[li]), None, &mut out);
                li += 1;
                continue;
            } else if merged_rhs.contains(pe) {
                li += 1;
                continue;
            }
        }
        if ri < rhs_pes.len() {
            let pe = &rhs_pes[ri];
            merged_rhs.insert(pe);
            item(
                observed_lhs.get(pe).copied(),
                observed_rhs.get(pe).copied(),
                &mut out,
            );
            ri += 1;
            if next_shared.is_some_and(|n| n == pe) {
                next_shared = shared.next();
            }
        } else {
            // Unreachable with well-formed input; never loop forever.
            li += 1;
        }
    }
    out
}

/// `TypedValue.Compare`.
pub(crate) fn compare(schema: &TypeSchema, lhs: &Value, rhs: &Value) -> Comparison {
    let mut cmp = Comparison::default();
    compare_node(
        schema,
        TypeRef::Root,
        Some(lhs),
        Some(rhs),
        &mut Vec::new(),
        &mut cmp,
    );
    cmp
}

fn compare_node(
    schema: &TypeSchema,
    tr: TypeRef<'_>,
    lhs: Option<&Value>,
    rhs: Option<&Value>,
    path: &mut Vec<PathElement>,
    cmp: &mut Comparison,
) {
    let atom = schema.resolve(tr);
    let (sl, sr) = (shape(&atom, lhs), shape(&atom, rhs));
    let in_leaf = if rhs.is_none() {
        compare_shape(schema, sl, lhs, rhs, path, cmp)
    } else if lhs.is_none() || sl.same(&sr) {
        compare_shape(schema, sr, lhs, rhs, path, cmp)
    } else {
        let in_leaf = compare_shape(schema, sl, lhs, rhs, path, cmp);
        compare_shape(schema, sr, lhs, rhs, path, cmp);
        in_leaf
    };
    // The post-item hook: a map or list present on one side only is itself added/removed.
    if !in_leaf {
        if lhs.is_none() {
            cmp.added.insert(path);
        } else if rhs.is_none() {
            cmp.removed.insert(path);
        }
    }
}

fn compare_leaf(
    lhs: Option<&Value>,
    rhs: Option<&Value>,
    path: &[PathElement],
    cmp: &mut Comparison,
) {
    match (lhs, rhs) {
        (None, _) => cmp.added.insert(path),
        (_, None) => cmp.removed.insert(path),
        (Some(l), Some(r)) if !values_equal(l, r) => cmp.modified.insert(path),
        _ => {}
    }
}

/// Returns whether the value was a leaf.
fn compare_shape(
    schema: &TypeSchema,
    s: Shape<'_, '_>,
    lhs: Option<&Value>,
    rhs: Option<&Value>,
    path: &mut Vec<PathElement>,
    cmp: &mut Comparison,
) -> bool {
    match s {
        Shape::Scalar(_) => {
            compare_leaf(lhs, rhs, path, cmp);
            true
        }
        Shape::Invalid => false,
        Shape::List(l) => {
            let (ll, rl) = (as_list(lhs), as_list(rhs));
            if !l.associative || (ll.is_none_or(Vec::is_empty) && rl.is_none_or(Vec::is_empty)) {
                compare_leaf(lhs, rhs, path, cmp);
                return true;
            }
            let mut items: BTreeMap<PathElement, (Vec<&Value>, Vec<&Value>)> = BTreeMap::new();
            if let Some(ll) = ll {
                for (pe, v) in lenient_pes(schema, l, ll).into_iter().zip(ll) {
                    items.entry(pe).or_default().0.push(v);
                }
            }
            if let Some(rl) = rl {
                for (pe, v) in lenient_pes(schema, l, rl).into_iter().zip(rl) {
                    items.entry(pe).or_default().1.push(v);
                }
            }
            for (pe, (lv, rv)) in items {
                path.push(pe);
                match (lv.len(), rv.len()) {
                    (1, 1) => compare_node(schema, l.elem, Some(lv[0]), Some(rv[0]), path, cmp),
                    (1, 0) => compare_node(schema, l.elem, Some(lv[0]), None, path, cmp),
                    (0, 1) => compare_node(schema, l.elem, None, Some(rv[0]), path, cmp),
                    (_, 0) => cmp.removed.insert(path),
                    (0, _) => cmp.added.insert(path),
                    _ => {
                        let same = lv.len() == rv.len()
                            && lv.iter().zip(&rv).all(|(a, b)| values_equal(a, b));
                        if !same {
                            cmp.modified.insert(path);
                        }
                    }
                }
                path.pop();
            }
            false
        }
        Shape::Map(m) => {
            let (lm, rm) = (as_map(lhs), as_map(rhs));
            if m.atomic || (lm.is_none_or(Map::is_empty) && rm.is_none_or(Map::is_empty)) {
                compare_leaf(lhs, rhs, path, cmp);
                return true;
            }
            let keys: BTreeSet<&String> = lm
                .into_iter()
                .flatten()
                .chain(rm.into_iter().flatten())
                .map(|(k, _)| k)
                .collect();
            for k in keys {
                path.push(PathElement::Field(k.clone()));
                compare_node(
                    schema,
                    m.child(k),
                    lm.and_then(|x| x.get(k)),
                    rm.and_then(|x| x.get(k)),
                    path,
                    cmp,
                );
                path.pop();
            }
            false
        }
    }
}

/// `TypedValue.RemoveItems`: drops every member of `to_remove` from the value. A map or list
/// left empty becomes `null`, as upstream's walker leaves it.
pub(crate) fn remove_items(schema: &TypeSchema, value: &Value, to_remove: &Set) -> Value {
    remove_walk(schema, TypeRef::Root, value, to_remove)
}

fn remove_walk(schema: &TypeSchema, tr: TypeRef<'_>, value: &Value, to_remove: &Set) -> Value {
    let atom = schema.resolve(tr);
    match shape(&atom, Some(value)) {
        Shape::Scalar(_) => value.clone(),
        Shape::Invalid => Value::Null,
        Shape::List(l) => {
            let Some(items) = value.as_array() else {
                return value.clone();
            };
            if items.is_empty() || !l.associative {
                return Value::Null;
            }
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let Ok(pe) = list_item_pe(schema, l, i, item) else {
                    out.push(item.clone());
                    continue;
                };
                if to_remove.is_member(&pe) {
                    continue;
                }
                match to_remove.child(&pe) {
                    Some(sub) => out.push(remove_walk(schema, l.elem, item, sub)),
                    None => out.push(item.clone()),
                }
            }
            if out.is_empty() {
                Value::Null
            } else {
                Value::Array(out)
            }
        }
        Shape::Map(m) => {
            let Some(map) = value.as_object() else {
                return value.clone();
            };
            if map.is_empty() || m.atomic {
                return Value::Null;
            }
            let mut out = Map::new();
            for (k, v) in map {
                let pe = PathElement::Field(k.clone());
                if to_remove.is_member(&pe) {
                    continue;
                }
                match to_remove.child(&pe) {
                    Some(sub) => out.insert(k.clone(), remove_walk(schema, m.child(k), v, sub)),
                    None => out.insert(k.clone(), v.clone()),
                };
            }
            if out.is_empty() {
                Value::Null
            } else {
                Value::Object(out)
            }
        }
    }
}

/// `Set.EnsureNamedFieldsAreMembers`: struct fields with owned children become members too,
/// so removing what a manager stopped owning removes the emptied struct field as well.
pub(crate) fn ensure_named_fields_are_members(schema: &TypeSchema, set: &Set) -> Set {
    ensure_walk(schema, TypeRef::Root, set)
}

fn ensure_walk(schema: &TypeSchema, tr: TypeRef<'_>, set: &Set) -> Set {
    let atom = schema.resolve(tr);
    let mut members: BTreeSet<PathElement> = set.members().cloned().collect();
    let mut children = BTreeMap::new();
    for (pe, child) in set.children() {
        let child_tr = match (pe, &atom.map, &atom.list) {
            (PathElement::Field(name), Some(m), _) => {
                if m.has_field(name) {
                    members.insert(pe.clone());
                }
                m.child(name)
            }
            (PathElement::Key(_), _, Some(l)) => l.elem,
            _ => TypeRef::None,
        };
        children.insert(pe.clone(), ensure_walk(schema, child_tr, child));
    }
    Set::from_parts(members, children)
}

/// Validates a value against the schema (`TypedValue.Validate` / `AsTyped`), returning
/// upstream-style messages (`.spec.replicas: expected numeric (int or float), got string`).
pub(crate) fn validate(schema: &TypeSchema, value: &Value, allow_duplicates: bool) -> Vec<String> {
    let mut errs = Vec::new();
    validate_walk(
        schema,
        TypeRef::Root,
        value,
        &mut Vec::new(),
        allow_duplicates,
        &mut errs,
    );
    errs
}

fn validate_walk(
    schema: &TypeSchema,
    tr: TypeRef<'_>,
    value: &Value,
    path: &mut Vec<PathElement>,
    allow_duplicates: bool,
    errs: &mut Vec<String>,
) {
    let atom = schema.resolve(tr);
    fn err(errs: &mut Vec<String>, path: &[PathElement], msg: String) {
        errs.push(format!("{}: {msg}", path_string(path)));
    }
    match shape(&atom, Some(value)) {
        Shape::Invalid => err(errs, path, "schema error: invalid atom".to_string()),
        Shape::Scalar(s) => match (s, value) {
            (_, Value::Null) | (Scalar::Untyped, _) => {}
            (Scalar::Numeric, Value::Number(_))
            | (Scalar::String, Value::String(_))
            | (Scalar::Boolean, Value::Bool(_)) => {}
            (Scalar::Numeric, v) => err(
                errs,
                path,
                format!(
                    "expected numeric (int or float), got {}",
                    crate::gofmt::type_name(v)
                ),
            ),
            (Scalar::String, v) => err(errs, path, format!("expected string, got {v}")),
            (Scalar::Boolean, v) => err(
                errs,
                path,
                format!("expected boolean, got {}", crate::gofmt::v(v)),
            ),
        },
        Shape::List(l) => match value {
            Value::Null => {}
            Value::Array(items) => {
                if !l.associative {
                    return;
                }
                let mut seen = BTreeSet::new();
                for (i, item) in items.iter().enumerate() {
                    match list_item_pe(schema, l, i, item) {
                        Err(e) => err(errs, path, format!("element {i}: {e}")),
                        Ok(pe) => {
                            if !seen.insert(pe.clone()) && !allow_duplicates {
                                err(errs, path, format!("duplicate entries for key {pe}"));
                                continue;
                            }
                            path.push(pe);
                            validate_walk(schema, l.elem, item, path, allow_duplicates, errs);
                            path.pop();
                        }
                    }
                }
            }
            v => err(
                errs,
                path,
                format!("expected list, got {}", crate::gofmt::v(v)),
            ),
        },
        Shape::Map(m) => match value {
            Value::Null => {}
            Value::Object(map) => {
                if m.atomic {
                    return;
                }
                for (k, v) in map {
                    path.push(PathElement::Field(k.clone()));
                    match m.field(k) {
                        Some(ft) => validate_walk(schema, ft, v, path, allow_duplicates, errs),
                        None if matches!(m.elem, TypeRef::None) => {
                            err(errs, path, "field not declared in schema".to_string());
                        }
                        None => validate_walk(schema, m.elem, v, path, allow_duplicates, errs),
                    }
                    path.pop();
                }
            }
            v => err(
                errs,
                path,
                format!("expected map, got {}", crate::gofmt::v(v)),
            ),
        },
    }
}
