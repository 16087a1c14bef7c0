//! Tables of custom resources (upstream's `customresource/tableconvertor`): a Name column,
//! then the version's `additionalPrinterColumns` (or Age when it has none), each cell the
//! value of the column's JSONPath; `date` cells are shown as ages, as upstream prints them.

use ferrokube_api::time::age;
use serde_json::{json, Value};

#[derive(Debug, Clone, PartialEq)]
pub struct PrinterColumn {
    pub name: String,
    pub type_: String,
    pub format: String,
    pub description: String,
    pub priority: i64,
    pub json_path: String,
}

impl PrinterColumn {
    /// Upstream's column when a version defines none.
    pub fn age() -> PrinterColumn {
        PrinterColumn {
            name: "Age".into(),
            type_: "date".into(),
            format: String::new(),
            description: "CreationTimestamp is a timestamp representing the server time when this object was created.".into(),
            priority: 0,
            json_path: ".metadata.creationTimestamp".into(),
        }
    }

    pub fn from_crd(v: &Value) -> Option<PrinterColumn> {
        Some(PrinterColumn {
            name: v.get("name")?.as_str()?.to_string(),
            type_: v.get("type")?.as_str()?.to_string(),
            format: v.get("format").and_then(Value::as_str).unwrap_or("").into(),
            description: v
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or("")
                .into(),
            priority: v.get("priority").and_then(Value::as_i64).unwrap_or(0),
            json_path: v.get("jsonPath")?.as_str()?.to_string(),
        })
    }
}

/// One step of a simple JSONPath.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    Key(String),
    Index(i64),
    All,
    /// `[?(@.a.b=="x")]` (or `!=`).
    Filter {
        path: Vec<String>,
        equal: bool,
        value: Value,
    },
}

/// Parses the JSONPath subset CRDs use: `.a.b`, `.a[0]`, `.a[*].b`, `.a['x.y']`,
/// `.a[?(@.type=="Ready")].status`. Errors say what is wrong (CRD validation reports it).
pub fn parse(path: &str) -> Result<Vec<Step>, String> {
    let p = path.trim();
    let p = p
        .strip_prefix('{')
        .and_then(|s| s.strip_suffix('}'))
        .unwrap_or(p);
    let p = p.strip_prefix('$').unwrap_or(p);
    if !p.starts_with('.') && !p.starts_with('[') {
        return Err("must be a simple json path starting with .".into());
    }
    let chars: Vec<char> = p.chars().collect();
    let mut steps = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '.' => {
                let start = i + 1;
                let mut j = start;
                while j < chars.len() && chars[j] != '.' && chars[j] != '[' {
                    j += 1;
                }
                let key: String = chars[start..j].iter().collect();
                if key.is_empty() {
                    return Err(format!("empty field name at offset {i}"));
                }
                if key == "*" {
                    steps.push(Step::All);
                } else {
                    steps.push(Step::Key(key));
                }
                i = j;
            }
            '[' => {
                let close = chars[i..]
                    .iter()
                    .position(|c| *c == ']')
                    .map(|n| n + i)
                    .ok_or_else(|| "unterminated [".to_string())?;
                let inner: String = chars[i + 1..close].iter().collect();
                steps.push(bracket(inner.trim())?);
                i = close + 1;
            }
            c => return Err(format!("unexpected {c:?} at offset {i}")),
        }
    }
    Ok(steps)
}

fn bracket(inner: &str) -> Result<Step, String> {
    if inner == "*" {
        return Ok(Step::All);
    }
    if let Ok(n) = inner.parse::<i64>() {
        return Ok(Step::Index(n));
    }
    for q in ['\'', '"'] {
        if let Some(k) = inner.strip_prefix(q).and_then(|s| s.strip_suffix(q)) {
            return Ok(Step::Key(k.to_string()));
        }
    }
    let Some(expr) = inner.strip_prefix("?(").and_then(|s| s.strip_suffix(')')) else {
        return Err(format!("unsupported [{inner}]"));
    };
    let (lhs, rhs, equal) = if let Some((l, r)) = expr.split_once("==") {
        (l, r, true)
    } else if let Some((l, r)) = expr.split_once("!=") {
        (l, r, false)
    } else {
        return Err(format!("unsupported filter {expr:?}"));
    };
    let lhs = lhs
        .trim()
        .strip_prefix("@.")
        .ok_or("filter must test @.<field>")?;
    let rhs = rhs.trim();
    let value = if let Some(s) = rhs
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .or_else(|| rhs.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')))
    {
        Value::String(s.to_string())
    } else {
        serde_json::from_str(rhs).map_err(|_| format!("bad filter value {rhs:?}"))?
    };
    Ok(Step::Filter {
        path: lhs.split('.').map(str::to_string).collect(),
        equal,
        value,
    })
}

/// Every value the path selects.
fn find<'a>(steps: &[Step], v: &'a Value) -> Vec<&'a Value> {
    let mut current = vec![v];
    for step in steps {
        let mut next = Vec::new();
        for v in current {
            match (step, v) {
                (Step::Key(k), Value::Object(m)) => next.extend(m.get(k)),
                (Step::Index(n), Value::Array(a)) => {
                    let idx = if *n < 0 { a.len() as i64 + n } else { *n };
                    next.extend(usize::try_from(idx).ok().and_then(|i| a.get(i)));
                }
                (Step::All, Value::Array(a)) => next.extend(a.iter()),
                (Step::All, Value::Object(m)) => next.extend(m.values()),
                (Step::Filter { path, equal, value }, Value::Array(a)) => {
                    next.extend(a.iter().filter(|item| {
                        let mut cur = Some(*item);
                        for k in path {
                            cur = cur.and_then(|c| c.get(k));
                        }
                        (cur == Some(value)) == *equal
                    }))
                }
                _ => {}
            }
        }
        current = next;
    }
    current
}

fn cell(col: &PrinterColumn, obj: &Value) -> Value {
    let Ok(steps) = parse(&col.json_path) else {
        return Value::Null;
    };
    let found = find(&steps, obj);
    match found.as_slice() {
        [] => Value::Null,
        [one] => match (col.type_.as_str(), one) {
            ("date", Value::String(s)) => json!(age(Some(s))),
            ("string", v) if !v.is_string() => json!(plain(v)),
            (_, v) => (*v).clone(),
        },
        many => json!(many.iter().map(|v| plain(v)).collect::<Vec<_>>().join(" ")),
    }
}

fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The Table of custom resources.
pub fn to_table(
    columns: &[PrinterColumn],
    objects: &[Value],
    list_meta: Option<Value>,
    version: &str,
    include_object: bool,
) -> Value {
    let mut defs = vec![json!({"name": "Name", "type": "string", "format": "name",
        "description": "Name must be unique within a namespace.", "priority": 0})];
    defs.extend(columns.iter().map(|c| {
        json!({"name": c.name, "type": c.type_, "format": c.format, "description": c.description, "priority": c.priority})
    }));
    let cells = |o: &Value| {
        let mut cells = vec![o.pointer("/metadata/name").cloned().unwrap_or(Value::Null)];
        cells.extend(columns.iter().map(|c| cell(c, o)));
        cells
    };
    crate::handlers::table::table(defs, objects, cells, list_meta, version, include_object)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_paths() {
        let obj = json!({"spec": {"replicas": 3, "a.b": "dotted", "items": [{"n": 1}, {"n": 2}]},
            "status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "Synced", "status": "False"}]}});
        let get = |p: &str| {
            find(&parse(p).unwrap(), &obj)
                .into_iter()
                .cloned()
                .collect::<Vec<_>>()
        };
        assert_eq!(get(".spec.replicas"), [json!(3)]);
        assert_eq!(get(".spec['a.b']"), [json!("dotted")]);
        assert_eq!(get(".spec.items[*].n"), [json!(1), json!(2)]);
        assert_eq!(get(".spec.items[-1].n"), [json!(2)]);
        assert_eq!(
            get(".status.conditions[?(@.type==\"Ready\")].status"),
            [json!("True")]
        );
        assert_eq!(
            get(".status.conditions[?(@.type!='Ready')].type"),
            [json!("Synced")]
        );
        assert!(get(".missing.x").is_empty());
        assert!(parse("spec").is_err());
        assert!(parse(".a[").is_err());
    }

    #[test]
    fn table_cells() {
        let cols = vec![
            PrinterColumn::from_crd(
                &json!({"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"}),
            )
            .unwrap(),
            PrinterColumn::from_crd(
                &json!({"name": "Missing", "type": "string", "jsonPath": ".spec.nope"}),
            )
            .unwrap(),
        ];
        let t = to_table(
            &cols,
            &[json!({"metadata": {"name": "w"}, "spec": {"replicas": 2}})],
            None,
            "v1",
            false,
        );
        assert_eq!(t["rows"][0]["cells"], json!(["w", 2, null]));
        assert_eq!(t["columnDefinitions"][1]["name"], "Replicas");
    }
}
