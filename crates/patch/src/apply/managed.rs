//! `metadata.managedFields`, mirroring `k8s.io/apimachinery/pkg/util/managedfields/internal`:
//! `managedfields.go` (`DecodeManagedFields`, `encodeManagedFields`,
//! `sortEncodedManagedFields`), `buildmanagerinfo.go` (`BuildManagerIdentifier`),
//! `capmanagers.go` (at most 10 Update entries, the oldest merged into "ancient-changes"),
//! `fieldmanager.go` (`isResetManagedFields`) and `conflict.go` (`printManager`).

use std::cmp::Ordering;
use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::fieldpath::{go_json_string, Set};

/// The set one manager owns (`fieldpath.VersionedSet`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct VersionedSet {
    pub(crate) set: Set,
    pub(crate) api_version: String,
    pub(crate) applied: bool,
}

/// Manager identifier (the JSON `BuildManagerIdentifier` builds) → owned set.
pub(crate) type ManagedFields = BTreeMap<String, VersionedSet>;

/// Decoded managed fields with their timestamps (`internal.Managed`).
#[derive(Clone, Debug, Default)]
pub(crate) struct Managed {
    pub(crate) fields: ManagedFields,
    pub(crate) times: BTreeMap<String, String>,
}

/// The parts of a manager identifier.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ManagerId {
    pub(crate) manager: String,
    pub(crate) operation: String,
    pub(crate) api_version: String,
    pub(crate) subresource: String,
}

/// `BuildManagerIdentifier`: the entry's JSON without fields, time and type, and without
/// the API version for appliers (so an applier keeps one entry across versions).
pub(crate) fn identifier(
    manager: &str,
    operation: &str,
    api_version: &str,
    subresource: &str,
) -> String {
    let mut parts = Vec::new();
    if !manager.is_empty() {
        parts.push(format!("\"manager\":{}", go_json_string(manager)));
    }
    if !operation.is_empty() {
        parts.push(format!("\"operation\":{}", go_json_string(operation)));
    }
    if !api_version.is_empty() && operation != "Apply" {
        parts.push(format!("\"apiVersion\":{}", go_json_string(api_version)));
    }
    if !subresource.is_empty() {
        parts.push(format!("\"subresource\":{}", go_json_string(subresource)));
    }
    format!("{{{}}}", parts.join(","))
}

pub(crate) fn parse_identifier(id: &str) -> ManagerId {
    let value: Value = serde_json::from_str(id).unwrap_or(Value::Null);
    let get = |k: &str| {
        value
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    ManagerId {
        manager: get("manager"),
        operation: get("operation"),
        api_version: get("apiVersion"),
        subresource: get("subresource"),
    }
}

/// `printManager`: `"name"`, `"name" with subresource "status"`, `"name" using apps/v1`.
pub(crate) fn print_manager(id: &str) -> String {
    let parsed = parse_identifier(id);
    let mut out = go_json_string(&parsed.manager);
    if !parsed.subresource.is_empty() {
        out = format!(
            "{out} with subresource {}",
            go_json_string(&parsed.subresource)
        );
    }
    if parsed.operation == "Update" {
        out = format!("{out} using {}", parsed.api_version);
    }
    out
}

/// The object's `metadata.managedFields`, if present and not null.
pub(crate) fn managed_fields_of(obj: &Value) -> Option<&Value> {
    obj.get("metadata")
        .and_then(|m| m.get("managedFields"))
        .filter(|v| !v.is_null())
}

/// `isResetManagedFields`: `[]` or `[{}]` asks to drop all managed fields.
pub(crate) fn is_reset(entries: Option<&Value>) -> bool {
    match entries.and_then(Value::as_array).map(Vec::as_slice) {
        Some([]) => true,
        Some([Value::Object(m)]) => m.values().all(|v| v.is_null() || v.as_str() == Some("")),
        _ => false,
    }
}

/// `DecodeManagedFields`.
pub(crate) fn decode(entries: Option<&Value>) -> Result<Managed, String> {
    let mut managed = Managed::default();
    let Some(entries) = entries else {
        return Ok(managed);
    };
    let Value::Array(entries) = entries else {
        return Err(format!("managedFields must be a list, got {entries}"));
    };
    for (i, entry) in entries.iter().enumerate() {
        let Value::Object(entry) = entry else {
            return Err(format!("managed fields entry {i} is not an object"));
        };
        let text = |k: &str| -> Result<String, String> {
            match entry.get(k) {
                None | Some(Value::Null) => Ok(String::new()),
                Some(Value::String(s)) => Ok(s.clone()),
                Some(other) => Err(format!(
                    "managed fields entry {i}: {k} must be a string, got {other}"
                )),
            }
        };
        let operation = text("operation")?;
        if operation != "Apply" && operation != "Update" {
            return Err("operation must be `Apply` or `Update`".to_string());
        }
        let api_version = text("apiVersion")?;
        if api_version.is_empty() {
            return Err("apiVersion must not be empty".to_string());
        }
        match text("fieldsType")?.as_str() {
            "FieldsV1" => {}
            "" => return Err(format!("missing fieldsType in managed fields entry {i}")),
            other => {
                return Err(format!(
                    "invalid fieldsType {other:?} in managed fields entry {i}"
                ))
            }
        }
        let set = match entry.get("fieldsV1") {
            None | Some(Value::Null) => Set::new(),
            Some(v) => Set::from_fields_v1(v)
                .map_err(|e| format!("error decoding versioned set from entry {i}: {e}"))?,
        };
        let manager = text("manager")?;
        let subresource = text("subresource")?;
        let id = identifier(&manager, &operation, &api_version, &subresource);
        let time = text("time")?;
        managed.fields.insert(
            id.clone(),
            VersionedSet {
                set,
                api_version,
                applied: operation == "Apply",
            },
        );
        if time.is_empty() {
            managed.times.remove(&id);
        } else {
            managed.times.insert(id, time);
        }
    }
    Ok(managed)
}

/// `encodeManagedFields` + `sortEncodedManagedFields`: `None` when nothing is managed.
pub(crate) fn encode(managed: &Managed) -> Option<Value> {
    if managed.fields.is_empty() {
        return None;
    }
    struct Encoded {
        id: ManagerId,
        seconds: i64,
        entry: Map<String, Value>,
    }
    let mut out: Vec<Encoded> = managed
        .fields
        .iter()
        .map(|(id, vs)| {
            let mut parsed = parse_identifier(id);
            parsed.api_version.clone_from(&vs.api_version);
            if vs.applied {
                parsed.operation = "Apply".to_string();
            }
            let time = managed.times.get(id);
            let mut entry = Map::new();
            if !parsed.manager.is_empty() {
                entry.insert("manager".into(), Value::String(parsed.manager.clone()));
            }
            entry.insert("operation".into(), Value::String(parsed.operation.clone()));
            entry.insert(
                "apiVersion".into(),
                Value::String(parsed.api_version.clone()),
            );
            if let Some(t) = time {
                entry.insert("time".into(), Value::String(t.clone()));
            }
            entry.insert("fieldsType".into(), Value::String("FieldsV1".into()));
            entry.insert("fieldsV1".into(), vs.set.to_fields_v1());
            if !parsed.subresource.is_empty() {
                entry.insert(
                    "subresource".into(),
                    Value::String(parsed.subresource.clone()),
                );
            }
            Encoded {
                seconds: time.and_then(|t| unix_seconds(t)).unwrap_or(0),
                id: parsed,
                entry,
            }
        })
        .collect();
    out.sort_by(|p, q| {
        p.id.operation
            .cmp(&q.id.operation)
            .then(p.seconds.cmp(&q.seconds))
            .then_with(|| p.id.manager.cmp(&q.id.manager))
            .then_with(|| p.id.api_version.cmp(&q.id.api_version))
            .then_with(|| p.id.subresource.cmp(&q.id.subresource))
    });
    Some(Value::Array(
        out.into_iter().map(|e| Value::Object(e.entry)).collect(),
    ))
}

/// Sets (or removes, for `None`) the object's `metadata.managedFields`.
pub(crate) fn set_managed_fields(obj: &mut Value, entries: Option<Value>) {
    let Some(root) = obj.as_object_mut() else {
        return;
    };
    match entries {
        Some(entries) => {
            let meta = root
                .entry("metadata")
                .or_insert_with(|| Value::Object(Map::new()));
            if !meta.is_object() {
                *meta = Value::Object(Map::new());
            }
            if let Some(meta) = meta.as_object_mut() {
                meta.insert("managedFields".into(), entries);
            }
        }
        None => {
            if let Some(meta) = root.get_mut("metadata").and_then(Value::as_object_mut) {
                crate::remove_key(meta, "managedFields");
            }
        }
    }
}

/// The name of the bucket that old Update entries are merged into.
pub(crate) const ANCIENT_CHANGES: &str = "ancient-changes";
/// `DefaultMaxUpdateManagers`.
pub(crate) const MAX_UPDATE_MANAGERS: usize = 10;

/// `capManagersManager.capUpdateManagers`.
pub(crate) fn cap_update_managers(managed: &mut Managed, max: usize) {
    let mut updaters: Vec<String> = managed
        .fields
        .iter()
        .filter(|(_, vs)| !vs.applied)
        .map(|(id, _)| id.clone())
        .collect();
    if updaters.len() <= max {
        return;
    }
    let seconds = |id: &String| {
        managed
            .times
            .get(id)
            .and_then(|t| unix_seconds(t))
            .unwrap_or(0)
    };
    updaters.sort_by(|a, b| match seconds(a).cmp(&seconds(b)) {
        Ordering::Equal => a.cmp(b),
        other => other,
    });
    let mut version_to_first: BTreeMap<String, String> = BTreeMap::new();
    let mut length = updaters.len();
    for manager in updaters {
        if length <= max {
            break;
        }
        let Some(vs) = managed.fields.get(&manager).cloned() else {
            continue;
        };
        let time = managed.times.get(&manager).cloned();
        let bucket = identifier(ANCIENT_CHANGES, "Update", &vs.api_version, "");
        match version_to_first.get(&vs.api_version) {
            Some(first) => {
                if !managed.fields.contains_key(&bucket) {
                    if let Some(s) = managed.fields.remove(first) {
                        managed.fields.insert(bucket.clone(), s);
                    }
                }
                let merged = managed
                    .fields
                    .get(&bucket)
                    .map_or_else(|| vs.set.clone(), |b| vs.set.union(&b.set));
                managed.fields.insert(
                    bucket.clone(),
                    VersionedSet {
                        set: merged,
                        api_version: vs.api_version.clone(),
                        applied: vs.applied,
                    },
                );
                managed.fields.remove(&manager);
                length -= 1;
                match time {
                    Some(t) => managed.times.insert(bucket, t),
                    None => managed.times.remove(&bucket),
                };
            }
            None => {
                version_to_first.insert(vs.api_version.clone(), manager);
            }
        }
    }
}

/// Seconds since the epoch of an RFC 3339 timestamp (`metav1.Time.Unix()`).
pub(crate) fn unix_seconds(t: &str) -> Option<i64> {
    let b = t.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> { t.get(r)?.parse().ok() };
    if b.len() < 20
        || b.get(4) != Some(&b'-')
        || b.get(10).map(u8::to_ascii_uppercase) != Some(b'T')
    {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut rest = &t[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        rest = &frac[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first() {
                Some(b'+') => 1,
                Some(b'-') => -1,
                _ => return None,
            };
            let h: i64 = rest.get(1..3)?.parse().ok()?;
            let m: i64 = rest.get(4..6)?.parse().ok()?;
            sign * (h * 3600 + m * 60)
        }
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hour * 3600 + minute * 60 + second - offset)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn identifiers_and_printing() {
        let id = identifier("kubectl", "Apply", "apps/v1", "");
        assert_eq!(id, r#"{"manager":"kubectl","operation":"Apply"}"#);
        let up = identifier("kube-controller-manager", "Update", "apps/v1", "status");
        assert_eq!(
            up,
            r#"{"manager":"kube-controller-manager","operation":"Update","apiVersion":"apps/v1","subresource":"status"}"#
        );
        assert_eq!(print_manager(&id), "\"kubectl\"");
        assert_eq!(
            print_manager(&up),
            "\"kube-controller-manager\" with subresource \"status\" using apps/v1"
        );
    }

    #[test]
    fn time_parsing() {
        assert_eq!(unix_seconds("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(unix_seconds("2024-03-01T12:00:01Z"), Some(1_709_294_401));
        assert_eq!(
            unix_seconds("2024-03-01T14:00:01.5+02:00"),
            Some(1_709_294_401)
        );
        assert_eq!(unix_seconds("yesterday"), None);
    }

    #[test]
    fn decode_validates_entries() {
        let bad_op = json!([{"manager": "a", "operation": "Patch", "apiVersion": "v1", "fieldsType": "FieldsV1"}]);
        assert_eq!(
            decode(Some(&bad_op)).unwrap_err(),
            "operation must be `Apply` or `Update`"
        );
        let no_version = json!([{"manager": "a", "operation": "Update", "fieldsType": "FieldsV1"}]);
        assert_eq!(
            decode(Some(&no_version)).unwrap_err(),
            "apiVersion must not be empty"
        );
        let no_type = json!([{"manager": "a", "operation": "Update", "apiVersion": "v1"}]);
        assert_eq!(
            decode(Some(&no_type)).unwrap_err(),
            "missing fieldsType in managed fields entry 0"
        );
        let bad_type = json!([{"manager": "a", "operation": "Update", "apiVersion": "v1", "fieldsType": "FieldsV2"}]);
        assert_eq!(
            decode(Some(&bad_type)).unwrap_err(),
            "invalid fieldsType \"FieldsV2\" in managed fields entry 0"
        );
        assert!(is_reset(Some(&json!([{}]))) && is_reset(Some(&json!([]))));
        assert!(!is_reset(None));
    }

    #[test]
    fn caps_update_managers_into_ancient_changes() {
        let mut managed = Managed::default();
        for i in 0..12 {
            let id = identifier(&format!("m{i:02}"), "Update", "v1", "");
            let mut set = Set::new();
            set.insert(&[super::super::fieldpath::PathElement::Field(format!("f{i}"))]);
            managed.fields.insert(
                id.clone(),
                VersionedSet {
                    set,
                    api_version: "v1".into(),
                    applied: false,
                },
            );
            managed
                .times
                .insert(id, format!("2024-01-01T00:00:{i:02}Z"));
        }
        cap_update_managers(&mut managed, MAX_UPDATE_MANAGERS);
        assert_eq!(managed.fields.len(), 10);
        let bucket = identifier(ANCIENT_CHANGES, "Update", "v1", "");
        let merged = &managed.fields[&bucket];
        assert_eq!(merged.set.paths().len(), 3);
        assert_eq!(managed.times[&bucket], "2024-01-01T00:00:02Z");
    }
}
