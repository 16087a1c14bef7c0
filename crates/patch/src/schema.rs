//! Patch metadata lookup for strategic merge patch: mirrors upstream's
//! `strategicpatch.LookupPatchMeta` (`LookupPatchMetadataForStruct` /
//! `LookupPatchMetadataForSlice`), backed by the static table that
//! `hack/gen-patch-schema.py` generates from the OpenAPI document instead of Go struct tags.

use crate::generated::{DEFS, GVKS};

/// Patch strategy bits of a field (`x-kubernetes-patch-strategy`, comma-separated upstream).
pub(crate) type Strategy = u8;
/// No strategy: maps merge, lists are replaced.
pub(crate) const N: Strategy = 0;
/// `merge`: lists merge (by merge key for objects, as a set for scalars).
pub(crate) const M: Strategy = 1;
/// `replace`: the value is replaced whole.
pub(crate) const R: Strategy = 2;
/// `retainKeys`: only matters to patch generation; applying honours `$retainKeys` anywhere.
pub(crate) const K: Strategy = 4;
/// `merge,retainKeys` (pod volumes, resource claims).
pub(crate) const MK: Strategy = M | K;

/// The shape of a field the table knows about.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Shape {
    /// An object of the given definition.
    Object(u16),
    /// A map from arbitrary keys to objects of the given definition (`additionalProperties`).
    MapOf(u16),
    /// A list whose elements are objects of the given definition, or scalars (`None`).
    List(Option<u16>),
}

/// One field of a definition that matters to a strategic merge.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Field {
    pub(crate) name: &'static str,
    pub(crate) shape: Shape,
    pub(crate) strategy: Strategy,
    pub(crate) merge_key: &'static str,
}

/// One OpenAPI definition: its name and its relevant fields, sorted by name.
#[derive(Debug)]
pub(crate) struct Def {
    pub(crate) name: &'static str,
    pub(crate) fields: &'static [Field],
}

/// (group, version, kind, definition index).
pub(crate) type Gvk = (&'static str, &'static str, &'static str, u16);

// Compact constructors so the generated table stays small and readable.
pub(crate) const fn o(name: &'static str, def: u16, strategy: Strategy) -> Field {
    Field {
        name,
        shape: Shape::Object(def),
        strategy,
        merge_key: "",
    }
}
pub(crate) const fn m(name: &'static str, def: u16) -> Field {
    Field {
        name,
        shape: Shape::MapOf(def),
        strategy: N,
        merge_key: "",
    }
}
pub(crate) const fn l(
    name: &'static str,
    def: u16,
    strategy: Strategy,
    key: &'static str,
) -> Field {
    Field {
        name,
        shape: Shape::List(Some(def)),
        strategy,
        merge_key: key,
    }
}
pub(crate) const fn lp(name: &'static str, strategy: Strategy, key: &'static str) -> Field {
    Field {
        name,
        shape: Shape::List(None),
        strategy,
        merge_key: key,
    }
}

/// Where a value sits in the schema.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Node {
    /// An object of a known definition.
    Struct(u16),
    /// A map whose values are objects of a known definition.
    MapOf(u16),
    /// Outside the schema: merged like JSON merge patch (maps merge, lists are replaced).
    Unknown,
}

/// What a lookup of one key yields: the schema of the value and how to merge it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PatchMeta {
    /// For a map: the schema of the map. For a list: the schema of its elements.
    pub(crate) node: Node,
    pub(crate) strategy: Strategy,
    pub(crate) merge_key: &'static str,
}

impl PatchMeta {
    const UNKNOWN: PatchMeta = PatchMeta {
        node: Node::Unknown,
        strategy: N,
        merge_key: "",
    };

    pub(crate) fn merges(&self) -> bool {
        self.strategy & M != 0
    }

    pub(crate) fn replaces(&self) -> bool {
        self.strategy & R != 0
    }
}

/// The schema of a built-in kind, for strategic merge patch: a cheap, copyable handle into a
/// static table generated from upstream's OpenAPI document.
#[derive(Clone, Copy)]
pub struct Schema {
    table: &'static [Def],
    pub(crate) node: Node,
}

impl std::fmt::Debug for Schema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Schema")
            .field(&self.definition_name().unwrap_or("<unknown>"))
            .finish()
    }
}

impl PartialEq for Schema {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self.table, other.table) && self.node == other.node
    }
}

impl Eq for Schema {}

impl Schema {
    /// The OpenAPI definition this schema describes, e.g. `io.k8s.api.apps.v1.Deployment`.
    pub fn definition_name(&self) -> Option<&'static str> {
        match self.node {
            Node::Struct(i) | Node::MapOf(i) => self.table.get(usize::from(i)).map(|d| d.name),
            Node::Unknown => None,
        }
    }

    /// A handle on another table: the upstream fixture tests use their own `mergeItem` schema.
    #[cfg(test)]
    pub(crate) fn from_table(table: &'static [Def], root: u16) -> Schema {
        Schema {
            table,
            node: Node::Struct(root),
        }
    }

    pub(crate) fn at(&self, node: Node) -> Schema {
        Schema {
            table: self.table,
            node,
        }
    }

    fn field(&self, def: u16, key: &str) -> Option<&'static Field> {
        let def = self.table.get(usize::from(def))?;
        def.fields
            .binary_search_by(|f| f.name.cmp(key))
            .ok()
            .and_then(|i| def.fields.get(i))
    }

    /// Mirrors `LookupPatchMetadataForStruct` / `LookupPatchMetadataForSlice`: the metadata
    /// of `key` inside the current object. Keys the table does not know behave like JSON
    /// merge patch (no strategy, unknown sub-schema), where upstream's struct lookup would
    /// fail: for built-in kinds such keys were already pruned by decoding into the Go type.
    pub(crate) fn lookup(&self, key: &str) -> PatchMeta {
        match self.node {
            Node::Unknown => PatchMeta::UNKNOWN,
            Node::MapOf(def) => PatchMeta {
                node: Node::Struct(def),
                strategy: N,
                merge_key: "",
            },
            Node::Struct(def) => match self.field(def, key) {
                None => PatchMeta::UNKNOWN,
                Some(f) => {
                    let node = match f.shape {
                        Shape::Object(d) => Node::Struct(d),
                        Shape::MapOf(d) => Node::MapOf(d),
                        Shape::List(Some(d)) => Node::Struct(d),
                        Shape::List(None) => Node::Unknown,
                    };
                    PatchMeta {
                        node,
                        strategy: f.strategy,
                        merge_key: f.merge_key,
                    }
                }
            },
        }
    }
}

/// The schema of a built-in kind, for strategic merge patch; `None` for unknown kinds (the API
/// server then answers 415 for strategic merge patch, as upstream does for custom resources).
/// List kinds (`PodList`, ...) are not patchable and have no schema.
pub fn schema_for(group: &str, version: &str, kind: &str) -> Option<Schema> {
    let i = GVKS
        .binary_search_by(|(g, v, k, _)| (*g, *v, *k).cmp(&(group, version, kind)))
        .ok()?;
    let (_, _, _, def) = GVKS.get(i)?;
    Some(Schema {
        table: &DEFS,
        node: Node::Struct(*def),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tables_are_sorted_and_consistent() {
        for w in GVKS.windows(2) {
            if let [a, b] = w {
                assert!((a.0, a.1, a.2) < (b.0, b.1, b.2), "{a:?} !< {b:?}");
            }
        }
        for w in DEFS.windows(2) {
            if let [a, b] = w {
                assert!(a.name < b.name);
            }
        }
        for d in DEFS.iter() {
            for w in d.fields.windows(2) {
                if let [a, b] = w {
                    assert!(a.name < b.name, "{} fields unsorted", d.name);
                }
            }
            for f in d.fields {
                let idx = match f.shape {
                    Shape::Object(i) | Shape::MapOf(i) | Shape::List(Some(i)) => Some(i),
                    Shape::List(None) => None,
                };
                if let Some(i) = idx {
                    assert!(usize::from(i) < DEFS.len());
                }
            }
        }
    }

    #[test]
    fn lookups_follow_upstream_tags() {
        let deploy = schema_for("apps", "v1", "Deployment").unwrap();
        assert_eq!(
            deploy.definition_name(),
            Some("io.k8s.api.apps.v1.Deployment")
        );
        let spec = deploy.at(deploy.lookup("spec").node);
        let tmpl = spec.at(spec.lookup("template").node);
        let pod = tmpl.at(tmpl.lookup("spec").node);
        assert_eq!(pod.definition_name(), Some("io.k8s.api.core.v1.PodSpec"));
        let containers = pod.lookup("containers");
        assert!(containers.merges());
        assert_eq!(containers.merge_key, "name");
        let volumes = pod.lookup("volumes");
        assert_eq!(volumes.strategy, MK);
        assert!(!pod.lookup("tolerations").merges());
        assert_eq!(pod.lookup("noSuchField").node, Node::Unknown);
        let meta = deploy.at(deploy.lookup("metadata").node);
        assert!(meta.lookup("finalizers").merges());
        assert_eq!(meta.lookup("ownerReferences").merge_key, "uid");
        let pdb = schema_for("policy", "v1", "PodDisruptionBudget").unwrap();
        let pdb_spec = pdb.at(pdb.lookup("spec").node);
        assert!(pdb_spec.lookup("selector").replaces());
        assert!(schema_for("apps", "v1", "DeploymentList").is_none());
        assert!(schema_for("example.com", "v1", "Widget").is_none());
        assert!(schema_for("", "v1", "Pod").is_some());
    }
}
