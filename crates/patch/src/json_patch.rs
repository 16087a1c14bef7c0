//! JSON patch (RFC 6902, `application/json-patch+json`) with JSON pointers (RFC 6901): the
//! engine behind upstream's `jsonPatcher` in `k8s.io/apiserver/.../handlers/patch.go`, which
//! uses `gopkg.in/evanphx/json-patch.v4`. Error messages follow that library; semantics follow
//! the RFC where the library is laxer (a `replace` or `copy` of a missing member fails), and the
//! library where it extends the RFC (negative array indices count from the end).

use serde_json::{Map, Value};

use crate::error::{PatchError, PointerRole};

/// The most operations upstream's API server accepts in one JSON patch (`maxJSONPatchOperations`).
pub const MAX_JSON_PATCH_OPERATIONS: usize = 10_000;

/// RFC 6902 JSON patch (application/json-patch+json): add, remove, replace, move, copy, test;
/// JSON pointer with ~0/~1 escapes and "-" for append; applied atomically (on error the input
/// is untouched – return a new Value).
pub fn apply_json_patch(doc: &Value, patch: &Value) -> Result<Value, PatchError> {
    let ops = match patch {
        // Go decodes `null` into an empty patch.
        Value::Null => return Ok(doc.clone()),
        Value::Array(ops) => ops,
        other => {
            return Err(PatchError::JsonPatchDecode {
                reason: format!(
                    "json: cannot unmarshal {} into Go value of type jsonpatch.Patch",
                    go_json_kind(other)
                ),
            })
        }
    };
    // Decoding the whole patch happens before any operation applies, so shape errors win.
    for op in ops {
        if !matches!(op, Value::Object(_) | Value::Null) {
            return Err(PatchError::JsonPatchDecode {
                reason: format!(
                    "json: cannot unmarshal {} into Go value of type jsonpatch.Operation",
                    go_json_kind(op)
                ),
            });
        }
    }
    if ops.len() > MAX_JSON_PATCH_OPERATIONS {
        return Err(PatchError::JsonPatchTooManyOperations {
            max: MAX_JSON_PATCH_OPERATIONS,
            got: ops.len(),
        });
    }
    let empty = Map::new();
    let mut out = doc.clone();
    for op in ops {
        apply_operation(&mut out, op.as_object().unwrap_or(&empty))?;
    }
    Ok(out)
}

fn go_json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn apply_operation(doc: &mut Value, op: &Map<String, Value>) -> Result<(), PatchError> {
    let kind = op.get("op").and_then(Value::as_str).unwrap_or("unknown");
    match kind {
        "add" => {
            let path = string_member(op, "add", "path")?;
            let value = value_member(op, "add")?;
            add(doc, path, value.clone(), "add", PointerRole::Path)
        }
        "remove" => {
            let path = string_member(op, "remove", "path")?;
            remove(doc, path, "remove", PointerRole::Path).map(drop)
        }
        "replace" => {
            let path = string_member(op, "replace", "path")?;
            let value = value_member(op, "replace")?;
            replace(doc, path, value.clone())
        }
        "move" => {
            let from = string_member(op, "move", "from")?;
            let path = string_member(op, "move", "path")?;
            move_value(doc, from, path)
        }
        "copy" => {
            let from = string_member(op, "copy", "from")?;
            let path = string_member(op, "copy", "path")?;
            let value = get(doc, from, "copy", PointerRole::From)?.clone();
            add(doc, path, value, "copy", PointerRole::Destination)
        }
        "test" => {
            let path = string_member(op, "test", "path")?;
            let value = value_member(op, "test")?;
            test(doc, path, value)
        }
        other => Err(PatchError::JsonPatchUnknownOperation {
            op: other.to_string(),
        }),
    }
}

fn string_member<'a>(
    op: &'a Map<String, Value>,
    kind: &'static str,
    field: &'static str,
) -> Result<&'a str, PatchError> {
    op.get(field)
        .and_then(Value::as_str)
        .ok_or(PatchError::JsonPatchMissingField { op: kind, field })
}

fn value_member<'a>(
    op: &'a Map<String, Value>,
    kind: &'static str,
) -> Result<&'a Value, PatchError> {
    op.get("value").ok_or(PatchError::JsonPatchMissingField {
        op: kind,
        field: "value",
    })
}

/// Splits a JSON pointer into unescaped reference tokens; `None` if it is not a pointer.
fn parse_pointer(path: &str) -> Option<Vec<String>> {
    if path.is_empty() {
        return Some(Vec::new());
    }
    let rest = path.strip_prefix('/')?;
    Some(rest.split('/').map(unescape).collect())
}

/// RFC 6901 §4: `~1` is `/` and `~0` is `~`, decoded in one pass so `~01` stays `~1`.
fn unescape(token: &str) -> String {
    let mut out = String::with_capacity(token.len());
    let mut chars = token.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '~' {
            match chars.peek() {
                Some('0') => {
                    out.push('~');
                    chars.next();
                    continue;
                }
                Some('1') => {
                    out.push('/');
                    chars.next();
                    continue;
                }
                _ => {}
            }
        }
        out.push(c);
    }
    out
}

/// Go's `strconv.Atoi`: optional sign, decimal digits (leading zeros allowed).
fn atoi(token: &str) -> Option<i64> {
    let digits = token.strip_prefix(['+', '-']).unwrap_or(token);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    token.parse::<i64>().ok()
}

/// Resolves an existing element index; negative indices count from the end (json-patch v4).
fn element_index(token: &str, len: usize) -> Option<usize> {
    let idx = atoi(token)?;
    let len_i = i64::try_from(len).ok()?;
    let idx = if idx < 0 { idx + len_i } else { idx };
    if (0..len_i).contains(&idx) {
        usize::try_from(idx).ok()
    } else {
        None
    }
}

/// The container (object or array) a pointer's parent tokens lead to.
fn container_mut<'a>(mut cur: &'a mut Value, tokens: &[String]) -> Option<&'a mut Value> {
    for token in tokens {
        cur = match cur {
            Value::Object(map) => map.get_mut(token.as_str()).filter(|v| !v.is_null())?,
            Value::Array(items) => {
                let i = element_index(token, items.len())?;
                items.get_mut(i)?
            }
            _ => return None,
        };
    }
    matches!(cur, Value::Object(_) | Value::Array(_)).then_some(cur)
}

fn container<'a>(mut cur: &'a Value, tokens: &[String]) -> Option<&'a Value> {
    for token in tokens {
        cur = match cur {
            Value::Object(map) => map.get(token.as_str()).filter(|v| !v.is_null())?,
            Value::Array(items) => items.get(element_index(token, items.len())?)?,
            _ => return None,
        };
    }
    matches!(cur, Value::Object(_) | Value::Array(_)).then_some(cur)
}

fn path_not_found(op: &'static str, path: &str, role: PointerRole) -> PatchError {
    PatchError::JsonPatchPathNotFound {
        op,
        path: path.to_string(),
        role,
    }
}

fn invalid_index(op: &'static str, path: &str, token: &str) -> PatchError {
    PatchError::JsonPatchInvalidIndex {
        op,
        path: path.to_string(),
        index: token.to_string(),
    }
}

fn add(
    doc: &mut Value,
    path: &str,
    value: Value,
    op: &'static str,
    role: PointerRole,
) -> Result<(), PatchError> {
    let tokens = parse_pointer(path).ok_or_else(|| path_not_found(op, path, role))?;
    let Some((last, parents)) = tokens.split_last() else {
        // RFC 6902 §4.1: adding at the root replaces the whole document.
        *doc = value;
        return Ok(());
    };
    match container_mut(doc, parents).ok_or_else(|| path_not_found(op, path, role))? {
        Value::Object(map) => {
            map.insert(last.clone(), value);
            Ok(())
        }
        Value::Array(items) => {
            if last == "-" {
                items.push(value);
                return Ok(());
            }
            let idx = atoi(last).ok_or_else(|| PatchError::JsonPatchNotAnIndex {
                op,
                path: path.to_string(),
                token: last.clone(),
            })?;
            // Inserting is allowed up to and including the end (len), negatives from the end.
            let slots = i64::try_from(items.len())
                .unwrap_or(i64::MAX)
                .saturating_add(1);
            let idx = if idx < 0 { idx + slots } else { idx };
            let pos = usize::try_from(idx)
                .ok()
                .filter(|p| *p <= items.len())
                .ok_or_else(|| invalid_index(op, path, last))?;
            items.insert(pos, value);
            Ok(())
        }
        _ => Err(path_not_found(op, path, role)),
    }
}

/// Removes and returns the value at `path`.
fn remove(
    doc: &mut Value,
    path: &str,
    op: &'static str,
    role: PointerRole,
) -> Result<Value, PatchError> {
    let tokens = parse_pointer(path).ok_or_else(|| path_not_found(op, path, role))?;
    let (last, parents) = tokens
        .split_last()
        .ok_or_else(|| path_not_found(op, path, role))?;
    match container_mut(doc, parents).ok_or_else(|| path_not_found(op, path, role))? {
        Value::Object(map) => {
            crate::remove_key(map, last.as_str()).ok_or_else(|| PatchError::JsonPatchKeyNotFound {
                op,
                path: path.to_string(),
                key: last.clone(),
            })
        }
        Value::Array(items) => {
            let i =
                element_index(last, items.len()).ok_or_else(|| invalid_index(op, path, last))?;
            Ok(items.remove(i))
        }
        _ => Err(path_not_found(op, path, role)),
    }
}

fn get<'a>(
    doc: &'a Value,
    path: &str,
    op: &'static str,
    role: PointerRole,
) -> Result<&'a Value, PatchError> {
    let tokens = parse_pointer(path).ok_or_else(|| path_not_found(op, path, role))?;
    let Some((last, parents)) = tokens.split_last() else {
        return Ok(doc);
    };
    match container(doc, parents).ok_or_else(|| path_not_found(op, path, role))? {
        Value::Object(map) => {
            map.get(last.as_str())
                .ok_or_else(|| PatchError::JsonPatchKeyNotFound {
                    op,
                    path: path.to_string(),
                    key: last.clone(),
                })
        }
        Value::Array(items) => element_index(last, items.len())
            .and_then(|i| items.get(i))
            .ok_or_else(|| invalid_index(op, path, last)),
        _ => Err(path_not_found(op, path, role)),
    }
}

fn replace(doc: &mut Value, path: &str, value: Value) -> Result<(), PatchError> {
    let op = "replace";
    let tokens = parse_pointer(path).ok_or_else(|| path_not_found(op, path, PointerRole::Path))?;
    let Some((last, parents)) = tokens.split_last() else {
        *doc = value;
        return Ok(());
    };
    let missing_key = || PatchError::JsonPatchKeyNotFound {
        op,
        path: path.to_string(),
        key: last.clone(),
    };
    let slot = match container_mut(doc, parents)
        .ok_or_else(|| path_not_found(op, path, PointerRole::Path))?
    {
        // RFC 6902 §4.3: the target must exist (json-patch v4 would silently add it).
        Value::Object(map) => map.get_mut(last.as_str()).ok_or_else(missing_key)?,
        Value::Array(items) => {
            let i = element_index(last, items.len()).ok_or_else(missing_key)?;
            items.get_mut(i).ok_or_else(missing_key)?
        }
        _ => return Err(path_not_found(op, path, PointerRole::Path)),
    };
    *slot = value;
    Ok(())
}

fn move_value(doc: &mut Value, from: &str, path: &str) -> Result<(), PatchError> {
    let from_tokens =
        parse_pointer(from).ok_or_else(|| path_not_found("move", from, PointerRole::From))?;
    let path_tokens = parse_pointer(path)
        .ok_or_else(|| path_not_found("move", path, PointerRole::Destination))?;
    if path_tokens.len() > from_tokens.len() && path_tokens.starts_with(&from_tokens) {
        return Err(PatchError::JsonPatchMoveIntoChild {
            from: from.to_string(),
            path: path.to_string(),
        });
    }
    if from_tokens == path_tokens {
        // Moving onto itself changes nothing, but the location must exist.
        return get(doc, from, "move", PointerRole::From).map(drop);
    }
    let value = remove(doc, from, "move", PointerRole::From)?;
    add(doc, path, value, "move", PointerRole::Destination)
}

fn test(doc: &Value, path: &str, expected: &Value) -> Result<(), PatchError> {
    let op = "test";
    let failed = || PatchError::JsonPatchTestFailed {
        path: path.to_string(),
    };
    let tokens = parse_pointer(path).ok_or_else(|| path_not_found(op, path, PointerRole::Path))?;
    let Some((last, parents)) = tokens.split_last() else {
        return if doc == expected {
            Ok(())
        } else {
            Err(failed())
        };
    };
    let actual =
        match container(doc, parents).ok_or_else(|| path_not_found(op, path, PointerRole::Path))? {
            // json-patch v4 treats an absent member like `null`.
            Value::Object(map) => map.get(last.as_str()).unwrap_or(&Value::Null),
            Value::Array(items) => element_index(last, items.len())
                .and_then(|i| items.get(i))
                .ok_or_else(|| invalid_index(op, path, last))?,
            _ => return Err(path_not_found(op, path, PointerRole::Path)),
        };
    if actual == expected {
        Ok(())
    } else {
        Err(failed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pointer_unescapes_in_one_pass() {
        assert_eq!(
            parse_pointer("/a~1b/m~0n/~01"),
            Some(vec!["a/b".into(), "m~n".into(), "~1".into()])
        );
        assert_eq!(parse_pointer(""), Some(vec![]));
        assert_eq!(parse_pointer("a"), None);
    }

    #[test]
    fn negative_indices_count_from_the_end() {
        let doc = json!({"a": [1, 2, 3]});
        let out = apply_json_patch(&doc, &json!([{"op": "remove", "path": "/a/-1"}])).unwrap();
        assert_eq!(out, json!({"a": [1, 2]}));
        let out =
            apply_json_patch(&doc, &json!([{"op": "add", "path": "/a/-1", "value": 9}])).unwrap();
        assert_eq!(out, json!({"a": [1, 2, 3, 9]}));
    }

    #[test]
    fn messages_match_json_patch_v4() {
        let doc = json!({"a": {"b": 1}, "l": [1]});
        let err = |p: Value| apply_json_patch(&doc, &p).unwrap_err().to_string();
        assert_eq!(
            err(json!([{"op": "test", "path": "/a/b", "value": 2}])),
            "testing value /a/b failed: test failed"
        );
        assert_eq!(
            err(json!([{"op": "remove", "path": "/a/c"}])),
            "error in remove for path: '/a/c': Unable to remove nonexistent key: c: missing value"
        );
        assert_eq!(
            err(json!([{"op": "replace", "path": "/a/c", "value": 1}])),
            "replace operation does not apply: doc is missing key: /a/c: missing value"
        );
        assert_eq!(
            err(json!([{"op": "add", "path": "/x/y", "value": 1}])),
            "add operation does not apply: doc is missing path: \"/x/y\": missing value"
        );
        assert_eq!(
            err(json!([{"op": "add", "path": "/l/5", "value": 1}])),
            "error in add for path: '/l/5': Unable to access invalid index: 5: invalid index referenced"
        );
        assert_eq!(
            err(json!([{"op": "frob", "path": "/a"}])),
            "Unexpected kind: frob"
        );
        assert_eq!(
            err(json!({})),
            "json: cannot unmarshal object into Go value of type jsonpatch.Patch"
        );
    }

    #[test]
    fn too_many_operations_is_413() {
        let ops: Vec<Value> = (0..=MAX_JSON_PATCH_OPERATIONS)
            .map(|_| json!({"op": "test", "path": "", "value": {}}))
            .collect();
        let err = apply_json_patch(&json!({}), &Value::Array(ops)).unwrap_err();
        assert_eq!(err.http_status(), 413);
    }
}
