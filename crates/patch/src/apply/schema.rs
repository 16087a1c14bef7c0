//! Type information for server-side apply, read lazily from OpenAPI v3 schemas the way
//! `k8s.io/kube-openapi/pkg/schemaconv` (`ToSchemaFromOpenAPI`, `parseSchema`,
//! `parseObject`, `parseList`, `getListElementRelationship`, `getMapElementRelationship`)
//! converts them into structured-merge-diff `schema.Atom`s:
//!
//! - `type: object` → a map whose `properties` are struct fields; unknown keys use
//!   `additionalProperties`, or the deduced type when there are no properties or
//!   `x-kubernetes-preserve-unknown-fields` is set (inherited by inline sub-schemas), or are
//!   not allowed; `x-kubernetes-map-type: atomic` makes it one leaf;
//! - `type: array` → atomic unless `x-kubernetes-list-type` is `set`/`map` (with
//!   `x-kubernetes-list-map-keys`) or, without a list type, `x-kubernetes-patch-strategy:
//!   merge` (keyed by `x-kubernetes-patch-merge-key`, a set without one);
//! - no `type` → untyped scalar, list and map at once; `string` with a format other than
//!   `byte` (int-or-string, date-time, …) → untyped scalar;
//! - `Quantity` and `RawExtension` → untyped scalars (leaves whatever their value);
//! - `__untyped_deduced_` (granular maps, atomic lists) for anything without a schema.

use std::sync::Arc;

use serde_json::{Map, Value};

const QUANTITY: &str = "io.k8s.apimachinery.pkg.api.resource.Quantity";
const RAW_EXTENSION: &str = "io.k8s.apimachinery.pkg.runtime.RawExtension";
const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";
const MAX_REF_DEPTH: usize = 8;

/// Type information for one kind. Cheap to clone.
#[derive(Clone, Debug)]
pub struct TypeSchema {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    components: Arc<Map<String, Value>>,
    /// `None` for [`TypeSchema::deduced`].
    root: Option<Value>,
    /// Custom resources: zero object `{}`, `metadata` typed as ObjectMeta when known.
    custom_resource: bool,
    metadata_ref: Option<Value>,
    zero: Value,
}

/// A reference to a type, resolved on use (`schema.TypeRef`).
#[derive(Clone, Copy, Debug)]
pub(crate) enum TypeRef<'s> {
    /// An OpenAPI schema object (inline or `$ref`), with the inherited
    /// preserve-unknown-fields flag.
    Schema { node: &'s Value, preserve: bool },
    /// The kind's root schema.
    Root,
    /// `__untyped_deduced_`.
    Deduced,
    /// `__untyped_atomic_`.
    Untyped,
    /// No type: the field is not declared in the schema.
    None,
}

/// A scalar type (`schema.Scalar`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scalar {
    Numeric,
    String,
    Boolean,
    Untyped,
}

/// A list type (`schema.List`); non-associative lists are atomic.
#[derive(Clone, Debug)]
pub(crate) struct ListType<'s> {
    pub(crate) elem: TypeRef<'s>,
    pub(crate) associative: bool,
    pub(crate) keys: Vec<&'s str>,
}

/// A map or struct type (`schema.Map`).
#[derive(Clone, Debug)]
pub(crate) struct MapType<'s> {
    props: Option<&'s Map<String, Value>>,
    preserve: bool,
    metadata: Option<&'s Value>,
    /// A custom resource's root: `apiVersion` and `kind` are strings even when its
    /// schema does not declare them (upstream adds them to every CRD's schema).
    type_meta: bool,
    pub(crate) elem: TypeRef<'s>,
    pub(crate) atomic: bool,
}

/// `{"type": "string"}`: the type of a custom resource's `apiVersion` and `kind`.
fn string_schema() -> &'static Value {
    static STRING: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    STRING.get_or_init(|| serde_json::json!({"type": "string"}))
}

impl<'s> MapType<'s> {
    /// The declared field's type (`FindField`).
    pub(crate) fn field(&self, name: &str) -> Option<TypeRef<'s>> {
        if name == "metadata" {
            if let Some(node) = self.metadata {
                return Some(TypeRef::Schema {
                    node,
                    preserve: false,
                });
            }
        }
        let declared = self
            .props
            .and_then(|p| p.get(name))
            .map(|node| TypeRef::Schema {
                node,
                preserve: self.preserve,
            });
        match declared {
            None if self.type_meta && matches!(name, "apiVersion" | "kind") => {
                Some(TypeRef::Schema {
                    node: string_schema(),
                    preserve: false,
                })
            }
            other => other,
        }
    }

    pub(crate) fn has_field(&self, name: &str) -> bool {
        self.field(name).is_some()
    }

    /// The type of the value under `key`: the field's, else the element type.
    pub(crate) fn child(&self, key: &str) -> TypeRef<'s> {
        self.field(key).unwrap_or(self.elem)
    }

    fn field_default(&self, name: &str) -> Option<&'s Value> {
        self.props
            .and_then(|p| p.get(name))
            .and_then(|node| node.get("default"))
    }
}

/// The possible shapes of a value (`schema.Atom`).
#[derive(Clone, Debug, Default)]
pub(crate) struct Atom<'s> {
    pub(crate) scalar: Option<Scalar>,
    pub(crate) list: Option<ListType<'s>>,
    pub(crate) map: Option<MapType<'s>>,
}

impl TypeSchema {
    /// Type information for a built-in kind: `components` is an OpenAPI v3
    /// `components/schemas` map and `root` the kind's schema (possibly a `$ref` into it).
    pub fn new(components: Arc<Map<String, Value>>, root: Value) -> Self {
        Self::build(components, Some(root), false)
    }

    /// Type information for a custom resource: `root` is the CRD version's structural
    /// `openAPIV3Schema`. When `components` holds ObjectMeta, the root's `metadata` is typed
    /// as ObjectMeta (as the API server's CRD handler does); it may be empty.
    pub fn custom_resource(components: Arc<Map<String, Value>>, root: Value) -> Self {
        Self::build(components, Some(root), true)
    }

    /// For kinds without any schema: everything deduced (maps granular, lists atomic).
    pub fn deduced() -> Self {
        Self::build(Arc::new(Map::new()), None, true)
    }

    fn build(
        components: Arc<Map<String, Value>>,
        root: Option<Value>,
        custom_resource: bool,
    ) -> Self {
        let metadata_ref = (custom_resource && components.contains_key(OBJECT_META))
            .then(|| serde_json::json!({ "$ref": format!("#/components/schemas/{OBJECT_META}") }));
        let zero = match (&root, custom_resource) {
            (Some(root), false) => zero_value(&components, root, 0),
            _ => None,
        };
        TypeSchema {
            inner: Arc::new(Inner {
                components,
                root,
                custom_resource,
                metadata_ref,
                zero: zero.unwrap_or_else(|| Value::Object(Map::new())),
            }),
        }
    }

    /// What a freshly created object looks like before the request's values are applied:
    /// the Go zero value of a built-in kind serialized (struct fields that are not pointers
    /// present as `{}`, required lists as `null`), or `{}` for custom resources. Upstream
    /// diffs creates against it, so its shape decides which fields get a `"."` entry.
    pub fn zero_object(&self) -> &Value {
        &self.inner.zero
    }

    pub(crate) fn resolve<'s>(&'s self, tr: TypeRef<'s>) -> Atom<'s> {
        match tr {
            TypeRef::Root => match &self.inner.root {
                None => deduced_atom(),
                Some(root) => {
                    let mut atom = self.resolve_node(root, false, 0);
                    if let (Some(map), Some(meta)) =
                        (atom.map.as_mut(), self.inner.metadata_ref.as_ref())
                    {
                        let typed = map
                            .props
                            .and_then(|p| p.get("metadata"))
                            .is_some_and(|m| ref_name(m).is_some());
                        if !typed {
                            map.metadata = Some(meta);
                        }
                        map.type_meta = true;
                    }
                    atom
                }
            },
            TypeRef::Schema { node, preserve } => self.resolve_node(node, preserve, 0),
            TypeRef::Deduced => deduced_atom(),
            TypeRef::Untyped => untyped_atom(),
            TypeRef::None => Atom::default(),
        }
    }

    fn resolve_node<'s>(&'s self, node: &'s Value, preserve: bool, depth: usize) -> Atom<'s> {
        let Some(name) = ref_name(node) else {
            return self.parse(node, preserve);
        };
        if name == QUANTITY || name == RAW_EXTENSION {
            return Atom {
                scalar: Some(Scalar::Untyped),
                ..Atom::default()
            };
        }
        let Some(def) = self
            .inner
            .components
            .get(name)
            .filter(|_| depth < MAX_REF_DEPTH)
        else {
            return deduced_atom();
        };
        // A named type starts from the converter's global setting (off), not the referrer's.
        let mut atom = self.resolve_node(def, false, depth + 1);
        if let (Some(map), Some(atomic)) = (atom.map.as_mut(), map_type(node)) {
            map.atomic = atomic;
        }
        atom
    }

    fn parse<'s>(&'s self, node: &'s Value, preserve: bool) -> Atom<'s> {
        let preserve = preserve
            || node.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
        let typ = match node.get("type") {
            Some(Value::String(t)) => t.as_str(),
            Some(Value::Array(ts)) => ts.first().and_then(Value::as_str).unwrap_or(""),
            _ => "",
        };
        match typ {
            "" => Atom {
                scalar: Some(Scalar::Untyped),
                list: Some(self.parse_list(node, preserve)),
                map: Some(self.parse_object(node, preserve)),
            },
            "object" => Atom {
                map: Some(self.parse_object(node, preserve)),
                ..Atom::default()
            },
            "array" => Atom {
                list: Some(self.parse_list(node, preserve)),
                ..Atom::default()
            },
            "integer" | "number" => scalar(Scalar::Numeric),
            "boolean" => scalar(Scalar::Boolean),
            "string" => match node.get("format").and_then(Value::as_str).unwrap_or("") {
                "" | "byte" => scalar(Scalar::String),
                _ => scalar(Scalar::Untyped),
            },
            _ => scalar(Scalar::Untyped),
        }
    }

    fn parse_object<'s>(&'s self, node: &'s Value, preserve: bool) -> MapType<'s> {
        let props = node.get("properties").and_then(Value::as_object);
        let no_props = props.is_none_or(Map::is_empty);
        let elem = match node.get("additionalProperties") {
            None | Some(Value::Null) => {
                if preserve || no_props {
                    TypeRef::Deduced
                } else {
                    TypeRef::None
                }
            }
            Some(Value::Bool(true)) => TypeRef::Deduced,
            Some(Value::Bool(false)) => TypeRef::None,
            Some(schema) => TypeRef::Schema {
                node: schema,
                preserve,
            },
        };
        MapType {
            props,
            preserve,
            metadata: None,
            type_meta: false,
            elem,
            atomic: map_type(node).unwrap_or(false),
        }
    }

    fn parse_list<'s>(&'s self, node: &'s Value, preserve: bool) -> ListType<'s> {
        let elem = match node.get("items") {
            Some(items @ Value::Object(_)) => TypeRef::Schema {
                node: items,
                preserve,
            },
            Some(Value::Array(items)) if items.len() == 1 => TypeRef::Schema {
                node: &items[0],
                preserve,
            },
            Some(_) => TypeRef::Deduced,
            None => TypeRef::Untyped,
        };
        let (associative, keys) = list_relationship(node);
        ListType {
            elem,
            associative,
            keys,
        }
    }

    /// The value an associative list key takes when the item omits it: the key field's
    /// schema `default`. The generated built-in documents lack defaults, so for built-ins a
    /// missing `protocol` key is `"TCP"`, the default of every built-in `protocol` key field.
    pub(crate) fn key_default<'s>(&'s self, list: &ListType<'s>, key: &str) -> Option<Value> {
        let atom = self.resolve(list.elem);
        if let Some(d) = atom.map.as_ref().and_then(|m| m.field_default(key)) {
            return Some(d.clone());
        }
        (!self.inner.custom_resource && key == "protocol").then(|| Value::String("TCP".to_string()))
    }
}

/// The serialized Go zero value of a built-in type (see [`TypeSchema::zero_object`]).
fn zero_value(components: &Map<String, Value>, node: &Value, depth: usize) -> Option<Value> {
    if depth > MAX_REF_DEPTH {
        return None;
    }
    let def = match ref_name(node) {
        Some(name) => components.get(name)?,
        None => node,
    };
    let props = def.get("properties").and_then(Value::as_object)?;
    let required: Vec<&str> = def
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut out = Map::new();
    if ref_name(node) == Some(OBJECT_META) {
        // metav1.Time is a struct: Go writes `null` for it even with omitempty.
        out.insert("creationTimestamp".to_string(), Value::Null);
    }
    for (name, prop) in props {
        let is_struct = ref_name(prop)
            .and_then(|n| components.get(n))
            .and_then(|d| d.get("properties"))
            .and_then(Value::as_object)
            .is_some_and(|p| !p.is_empty());
        if let Some(default) = prop.get("default") {
            let value = match default {
                Value::Object(m) if m.is_empty() && is_struct => {
                    zero_value(components, prop, depth + 1).unwrap_or_else(|| default.clone())
                }
                _ => default.clone(),
            };
            out.insert(name.clone(), value);
        } else if is_struct
            && (required.contains(&name.as_str()) || NON_POINTER_STRUCTS.contains(&name.as_str()))
        {
            if let Some(v) = zero_value(components, prop, depth + 1) {
                out.insert(name.clone(), v);
            }
        } else if required.contains(&name.as_str())
            && matches!(
                prop.get("type").and_then(Value::as_str),
                Some("array" | "object")
            )
        {
            out.insert(name.clone(), Value::Null);
        }
    }
    Some(Value::Object(out))
}

/// Struct fields that are values (not pointers) in every built-in kind; the generated
/// OpenAPI documents do not carry upstream's `default: {}` marker for them.
const NON_POINTER_STRUCTS: &[&str] = &[
    "metadata",
    "spec",
    "status",
    "template",
    "strategy",
    "updateStrategy",
    "jobTemplate",
];

fn scalar<'s>(s: Scalar) -> Atom<'s> {
    Atom {
        scalar: Some(s),
        ..Atom::default()
    }
}

fn deduced_atom<'s>() -> Atom<'s> {
    Atom {
        scalar: Some(Scalar::Untyped),
        list: Some(ListType {
            elem: TypeRef::Untyped,
            associative: false,
            keys: Vec::new(),
        }),
        map: Some(MapType {
            props: None,
            preserve: false,
            metadata: None,
            type_meta: false,
            elem: TypeRef::Deduced,
            atomic: false,
        }),
    }
}

fn untyped_atom<'s>() -> Atom<'s> {
    Atom {
        scalar: Some(Scalar::Untyped),
        list: Some(ListType {
            elem: TypeRef::Untyped,
            associative: false,
            keys: Vec::new(),
        }),
        map: Some(MapType {
            props: None,
            preserve: false,
            metadata: None,
            type_meta: false,
            elem: TypeRef::Untyped,
            atomic: true,
        }),
    }
}

/// The named type a schema refers to: `$ref`, or a single-element `allOf` holding one.
fn ref_name(node: &Value) -> Option<&str> {
    let reference = node.get("$ref").and_then(Value::as_str).or_else(|| {
        match node
            .get("allOf")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
        {
            Some([only]) => only.get("$ref").and_then(Value::as_str),
            _ => None,
        }
    })?;
    reference.rsplit('/').next().filter(|n| !n.is_empty())
}

/// `x-kubernetes-map-type`: `Some(true)` atomic, `Some(false)` granular.
fn map_type(node: &Value) -> Option<bool> {
    match node.get("x-kubernetes-map-type").and_then(Value::as_str) {
        Some("atomic") => Some(true),
        Some("granular") => Some(false),
        _ => None,
    }
}

/// `getListElementRelationship`: (associative, keys).
fn list_relationship(node: &Value) -> (bool, Vec<&str>) {
    if let Some(list_type) = node.get("x-kubernetes-list-type") {
        return match list_type.as_str() {
            Some("set") => (true, Vec::new()),
            Some("map") => {
                let keys = node
                    .get("x-kubernetes-list-map-keys")
                    .and_then(Value::as_array)
                    .map(|k| k.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                (true, keys)
            }
            _ => (false, Vec::new()),
        };
    }
    match node
        .get("x-kubernetes-patch-strategy")
        .and_then(Value::as_str)
    {
        Some("merge" | "merge,retainKeys") => {
            let key = node
                .get("x-kubernetes-patch-merge-key")
                .and_then(Value::as_str);
            (true, key.into_iter().collect())
        }
        _ => (false, Vec::new()),
    }
}
