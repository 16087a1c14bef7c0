//! Server-side apply and managed-fields tracking, wire-compatible with upstream v1.33
//! (`k8s.io/apimachinery/pkg/util/managedfields/internal` on top of
//! `sigs.k8s.io/structured-merge-diff/v4`). Pure functions over `serde_json::Value`.
//!
//! The upstream field manager is a chain of decorators; [`apply`] and [`update`] run the
//! same chain:
//!
//! | upstream (`internal/`)       | here                                                       |
//! |------------------------------|------------------------------------------------------------|
//! | `fieldmanager.go`            | [`apply`], [`update`], [`update_no_errors`]                |
//! | `versioncheck.go`            | left to the caller (apiVersion/kind of the config vs URL)  |
//! | `lastappliedupdater.go`      | manager `kubectl` keeps `last-applied-configuration` fresh |
//! | `lastappliedmanager.go`      | manager `kubectl` may take fields client-side apply set    |
//! | `skipnonapplied.go`          | no tracking for objects that never had managed fields; the |
//! |                              | first apply assigns them to `before-first-apply`           |
//! | `capmanagers.go`             | at most 10 Update entries (`ancient-changes`)              |
//! | `buildmanagerinfo.go`        | manager identifiers (`managed`)                            |
//! | `managedfieldsupdater.go`    | timestamps; Update entries merged per manager              |
//! | `stripmeta.go`               | apiVersion, kind, metadata name/uid/… never owned          |
//! | `structuredmerge.go`         | typed conversion (`typed`) and `merge.Updater` (`updater`) |
//!
//! Usage: build one [`TypeSchema`] per kind ([`TypeSchema::new`] for built-ins,
//! [`TypeSchema::custom_resource`] for a CRD version, [`TypeSchema::deduced`] without a
//! schema); call [`apply`] for `application/apply-patch+yaml` and [`update`] (or
//! [`update_no_errors`]) for every create/update/patch. Beyond the name, version, time and
//! subresource, [`Manager`] carries the endpoint's reset fields (upstream passes them when
//! building the field manager), and [`TypeSchema::custom_resource`] exists because upstream
//! types a CRD's `metadata` as ObjectMeta and diffs creates of custom resources against `{}`.
//!
//! Differences from upstream: objects are never converted between API versions (sets of
//! managers recorded at another version are compared as if at the request's version);
//! `reconcileManagedFieldsWithSchemaChanges` and union normalization are not done; the
//! merged object of an apply is not defaulted (the caller defaults it as for any write).
//!
//! Errors map to HTTP as upstream does: [`ApplyError::Conflicts`] → 409 Conflict with one
//! `FieldManagerConflict` cause per [`Conflict`]; [`ApplyError::ManagedFieldsInConfig`] →
//! 400; the others are plain errors upstream (500), though 400/422 suit them.

mod fieldpath;
mod managed;
mod schema;
mod typed;
mod updater;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_builtin;

use serde_json::Value;

pub use fieldpath::{path_string, PathElement, Set};
pub use schema::TypeSchema;

use fieldpath::go_json;
use managed::{Managed, ManagedFields};
use updater::{ConflictSets, Updater};

/// The annotation client-side `kubectl apply` keeps.
pub const LAST_APPLIED_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";
/// The manager the first apply assigns pre-existing fields to.
pub const BEFORE_FIRST_APPLY: &str = "before-first-apply";
/// `TotalAnnotationSizeLimitB`.
const ANNOTATIONS_SIZE_LIMIT: usize = 256 * 1024;

/// Who writes, and at which endpoint (upstream's `FieldManager` is built per kind and
/// subresource; the name and time come with each request).
#[derive(Clone, Copy, Debug)]
pub struct Manager<'a> {
    /// `fieldManager` (or the user agent for non-apply writes); empty means `unknown`.
    pub name: &'a str,
    /// The group/version of the endpoint (`apps/v1`, `v1`).
    pub api_version: &'a str,
    /// Now, RFC 3339 in UTC with seconds (`2024-05-01T10:00:00Z`).
    pub time: &'a str,
    /// `""` for the main resource, `"status"`, `"scale"`, ….
    pub subresource: &'a str,
    /// Field paths (field names from the root) whose ownership the endpoint does not track:
    /// upstream's reset fields, e.g. `&[&["status"]]` for the main resource of a kind with a
    /// status subresource, `&[&["spec"], &["metadata"]]` for its `/status`.
    pub reset_fields: &'a [&'a [&'a str]],
}

/// One field another manager owns that the apply would change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    /// The other manager's name.
    pub manager: String,
    /// How upstream prints it: `"kubectl-create" using apps/v1`, `"ctrl" with subresource
    /// "status" using v1`, or `"kubectl"` for an applier.
    pub description: String,
    /// The field, as upstream prints paths (`.spec.containers[name="nginx"].image`).
    pub field_path: String,
}

impl Conflict {
    /// The `message` of the Status cause (`field` is [`Conflict::field_path`], `type`
    /// `FieldManagerConflict`).
    pub fn cause_message(&self) -> String {
        format!("conflict with {}", self.description)
    }
}

/// The conflicts of a refused apply; displays as upstream's Status message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflicts(pub Vec<Conflict>);

impl std::fmt::Display for Conflicts {
    /// `getConflictMessage`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let [only] = self.0.as_slice() {
            return write!(
                f,
                "Apply failed with 1 conflict: conflict with {}: {}",
                only.description, only.field_path
            );
        }
        // Grouped per manager, managers in identifier order (the order of the list).
        let mut by_manager: Vec<(&str, Vec<&str>)> = Vec::new();
        for c in &self.0 {
            match by_manager.iter_mut().find(|(m, _)| *m == c.description) {
                Some((_, paths)) => paths.push(&c.field_path),
                None => by_manager.push((&c.description, vec![&c.field_path])),
            }
        }
        let mut lines = Vec::new();
        for (manager, paths) in by_manager {
            lines.push(format!("conflicts with {manager}:"));
            lines.extend(paths.into_iter().map(|p| format!("- {p}")));
        }
        write!(
            f,
            "Apply failed with {} conflicts: {}",
            self.0.len(),
            lines.join("\n")
        )
    }
}

/// Why an apply or update failed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ApplyError {
    /// The applied configuration is not a JSON object.
    #[error("apply configuration must be an object")]
    ConfigNotObject,
    /// The applied configuration sets `metadata.managedFields`.
    #[error("metadata.managedFields must be nil")]
    ManagedFieldsInConfig,
    /// The applied configuration does not fit the kind's schema.
    #[error("failed to create typed patch object: {}", validation_message(.errors))]
    InvalidConfig { errors: Vec<String> },
    /// `metadata.managedFields` of the live object cannot be decoded.
    #[error("failed to decode managed fields: {reason}")]
    DecodeManagedFields { reason: String },
    /// Fields of other managers would change; retry with force to take them.
    #[error("{0}")]
    Conflicts(Conflicts),
}

fn validation_message(errors: &[String]) -> String {
    match errors {
        [one] => one.clone(),
        many => format!("errors:\n  {}", many.join("\n  ")),
    }
}

/// Server-side apply. `live` is the current object (`None` when the apply creates it),
/// `config` the applied configuration. Returns the new object with `metadata.managedFields`
/// updated, or the conflicts (unless `force`, which takes the fields over).
pub fn apply(
    schema: &TypeSchema,
    live: Option<&Value>,
    config: &Value,
    mgr: &Manager<'_>,
    force: bool,
) -> Result<Value, ApplyError> {
    if !config.is_object() {
        return Err(ApplyError::ConfigNotObject);
    }
    if managed::managed_fields_of(config).is_some() {
        return Err(ApplyError::ManagedFieldsInConfig);
    }
    let errors = typed::validate(schema, config, false);
    if !errors.is_empty() {
        return Err(ApplyError::InvalidConfig { errors });
    }
    let live_obj = match live {
        Some(live) => without_managed_fields(live),
        None => schema.zero_object().clone(),
    };
    let managed = managed::decode(live.and_then(managed::managed_fields_of))
        .map_err(|reason| ApplyError::DecodeManagedFields { reason })?;
    let ctx = Ctx::new(schema, mgr);

    // lastAppliedManager: kubectl may take over what its client-side apply had set.
    let (mut object, managed) = match ctx.apply_chain(&live_obj, config, managed.clone(), force) {
        Err(ApplyError::Conflicts(conflicts)) if mgr.name == "kubectl" => {
            match allowed_from_last_applied(schema, &live_obj) {
                None => return Err(ApplyError::Conflicts(conflicts)),
                Some(allowed) => {
                    let remaining: Vec<Conflict> = conflicts
                        .0
                        .into_iter()
                        .filter(|c| !allowed.contains(&c.field_path))
                        .collect();
                    if !remaining.is_empty() {
                        return Err(ApplyError::Conflicts(Conflicts(remaining)));
                    }
                    ctx.apply_chain(&live_obj, config, managed, true)?
                }
            }
        }
        other => other?,
    };

    // lastAppliedUpdater.
    if mgr.name == "kubectl"
        && annotation(&object, LAST_APPLIED_ANNOTATION).is_some_and(|a| !a.is_empty())
    {
        set_last_applied(&mut object, config);
    }
    managed::set_managed_fields(&mut object, managed::encode(&managed));
    Ok(object)
}

/// Managed-fields bookkeeping for every non-apply write (`FieldManager.Update`): records
/// what `mgr` changed between `old` (`None` on create) and `new` in its Update entry,
/// takes those fields from the other managers, and returns `new` with
/// `metadata.managedFields` set. Clients may edit `managedFields` directly (`[]` or `[{}]`
/// resets them); a subresource write keeps the stored ones.
pub fn update(
    schema: &TypeSchema,
    old: Option<&Value>,
    new: &Value,
    mgr: &Manager<'_>,
) -> Result<Value, ApplyError> {
    let managed = decode_live_or_new(old, new, !mgr.subresource.is_empty());
    let mut new_obj = without_managed_fields(new);
    let old_obj = match old {
        Some(old) => without_managed_fields(old),
        None => schema.zero_object().clone(),
    };
    // skipNonAppliedManager: an existing object without managed fields stays untracked.
    let existing = old
        .and_then(|o| o.get("metadata"))
        .and_then(|m| m.get("uid"))
        .and_then(Value::as_str)
        .is_some_and(|uid| !uid.is_empty());
    if managed.fields.is_empty() && existing {
        return Ok(new_obj);
    }
    let managed = Ctx::new(schema, mgr).update_chain(&old_obj, &new_obj, managed, mgr.name)?;
    managed::set_managed_fields(&mut new_obj, managed::encode(&managed));
    Ok(new_obj)
}

/// [`update`] that never fails (`UpdateNoErrors`): on error `new` keeps the managed fields
/// of `old`.
pub fn update_no_errors(
    schema: &TypeSchema,
    old: Option<&Value>,
    new: &Value,
    mgr: &Manager<'_>,
) -> Value {
    update(schema, old, new, mgr).unwrap_or_else(|_| {
        let mut out = new.clone();
        managed::set_managed_fields(&mut out, old.and_then(managed::managed_fields_of).cloned());
        out
    })
}

/// `decodeLiveOrNew`.
fn decode_live_or_new(old: Option<&Value>, new: &Value, subresource: bool) -> Managed {
    let from_old = || managed::decode(old.and_then(managed::managed_fields_of)).unwrap_or_default();
    if subresource {
        return from_old();
    }
    let requested = managed::managed_fields_of(new);
    if managed::is_reset(requested) {
        return Managed::default();
    }
    match managed::decode(requested) {
        Ok(m) if !m.fields.is_empty() => m,
        _ => from_old(),
    }
}

fn without_managed_fields(obj: &Value) -> Value {
    let mut out = obj.clone();
    managed::set_managed_fields(&mut out, None);
    out
}

/// What one request's field manager works with.
struct Ctx<'a> {
    schema: &'a TypeSchema,
    mgr: &'a Manager<'a>,
    ignored: Set,
}

/// `stripMetaManager`'s paths: never owned by the manager that wrote them.
const STRIPPED: &[&[&str]] = &[
    &["apiVersion"],
    &["kind"],
    &["metadata"],
    &["metadata", "name"],
    &["metadata", "namespace"],
    &["metadata", "creationTimestamp"],
    &["metadata", "selfLink"],
    &["metadata", "uid"],
    &["metadata", "clusterName"],
    &["metadata", "generation"],
    &["metadata", "managedFields"],
    &["metadata", "resourceVersion"],
];

fn field_paths(paths: &[&[&str]]) -> Set {
    let mut set = Set::new();
    for path in paths {
        let pes: Vec<PathElement> = path
            .iter()
            .map(|f| PathElement::Field((*f).to_string()))
            .collect();
        set.insert(&pes);
    }
    set
}

impl<'a> Ctx<'a> {
    fn new(schema: &'a TypeSchema, mgr: &'a Manager<'a>) -> Self {
        Ctx {
            schema,
            mgr,
            ignored: field_paths(mgr.reset_fields),
        }
    }

    fn updater(&self) -> Updater<'_> {
        Updater {
            schema: self.schema,
            ignored: &self.ignored,
        }
    }

    fn manager_name(&self, name: &'a str) -> &'a str {
        if name.is_empty() {
            "unknown"
        } else {
            name
        }
    }

    fn strip(managed: &mut ManagedFields, id: &str) {
        if let Some(vs) = managed.get_mut(id) {
            vs.set = vs.set.difference(&field_paths(STRIPPED));
            if vs.set.is_empty() {
                managed.remove(id);
            }
        }
    }

    /// Cap → BuildManagerInfo → ManagedFieldsUpdater → StripMeta → structured Update.
    fn update_chain(
        &self,
        old: &Value,
        new: &Value,
        mut managed: Managed,
        name: &str,
    ) -> Result<Managed, ApplyError> {
        let id = managed::identifier(
            self.manager_name(name),
            "Update",
            self.mgr.api_version,
            self.mgr.subresource,
        );
        const SELF: &str = "current-operation";
        self.updater()
            .update(old, new, self.mgr.api_version, &mut managed.fields, SELF);
        Self::strip(&mut managed.fields, SELF);
        if let Some(vs) = managed.fields.remove(SELF) {
            let set = match managed.fields.get(&id) {
                Some(previous) => vs.set.union(&previous.set),
                None => vs.set,
            };
            managed.fields.insert(
                id.clone(),
                managed::VersionedSet {
                    set,
                    api_version: vs.api_version,
                    applied: false,
                },
            );
            managed.times.insert(id, self.mgr.time.to_string());
        }
        managed::cap_update_managers(&mut managed, managed::MAX_UPDATE_MANAGERS);
        Ok(managed)
    }

    /// SkipNonApplied → BuildManagerInfo → ManagedFieldsUpdater → StripMeta → structured Apply.
    fn apply_chain(
        &self,
        live: &Value,
        config: &Value,
        mut managed: Managed,
        force: bool,
    ) -> Result<(Value, Managed), ApplyError> {
        if managed.fields.is_empty() {
            managed =
                self.update_chain(self.schema.zero_object(), live, managed, BEFORE_FIRST_APPLY)?;
        }
        let id = managed::identifier(
            self.manager_name(self.mgr.name),
            "Apply",
            self.mgr.api_version,
            self.mgr.subresource,
        );
        let result = self.updater().apply(
            live,
            config,
            self.mgr.api_version,
            &mut managed.fields,
            &id,
            force,
        );
        let object = match result {
            Ok(object) => object,
            Err(conflicts) => return Err(ApplyError::Conflicts(conflicts_of(conflicts))),
        };
        Self::strip(&mut managed.fields, &id);
        let object = match object {
            Some(object) => {
                managed.times.insert(id, self.mgr.time.to_string());
                object
            }
            None => live.clone(),
        };
        Ok((object, managed))
    }
}

/// `ConflictsFromManagers`, ordered by manager identifier then path.
fn conflicts_of(sets: ConflictSets) -> Conflicts {
    let mut out = Vec::new();
    for (id, set) in sets {
        let parsed = managed::parse_identifier(&id);
        let description = managed::print_manager(&id);
        for path in set.paths() {
            out.push(Conflict {
                manager: parsed.manager.clone(),
                description: description.clone(),
                field_path: path_string(&path),
            });
        }
    }
    Conflicts(out)
}

fn annotation<'v>(obj: &'v Value, key: &str) -> Option<&'v str> {
    obj.get("metadata")?.get("annotations")?.get(key)?.as_str()
}

/// `allowedConflictsFromLastApplied`: the fields of the last-applied annotation whose value
/// still matches the live object (as printed paths).
fn allowed_from_last_applied(schema: &TypeSchema, live: &Value) -> Option<Vec<String>> {
    let text = annotation(live, LAST_APPLIED_ANNOTATION).filter(|t| !t.is_empty())?;
    let last: Value = serde_json::from_str(text).ok().filter(Value::is_object)?;
    if !typed::validate(schema, &last, true).is_empty() {
        return None;
    }
    let cmp = typed::compare(schema, &last, live);
    let allowed = typed::to_field_set(schema, &last)
        .difference(&cmp.modified)
        .difference(&cmp.added)
        .difference(&cmp.removed);
    Some(allowed.paths().iter().map(|p| path_string(p)).collect())
}

/// `buildLastApplied` + `setLastApplied`: the configuration without the annotation, as
/// Go's JSON encoder writes it (newline-terminated); dropped when the annotations would
/// exceed their size limit.
fn set_last_applied(object: &mut Value, config: &Value) {
    let mut config = config.clone();
    if let Some(annotations) = config
        .get_mut("metadata")
        .and_then(|m| m.get_mut("annotations"))
        .and_then(Value::as_object_mut)
    {
        crate::remove_key(annotations, LAST_APPLIED_ANNOTATION);
    }
    let value = format!("{}\n", go_json(&config));
    let Some(annotations) = object
        .get_mut("metadata")
        .and_then(|m| m.get_mut("annotations"))
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    annotations.insert(LAST_APPLIED_ANNOTATION.to_string(), Value::String(value));
    let size: usize = annotations
        .iter()
        .map(|(k, v)| k.len() + v.as_str().map_or(0, str::len))
        .sum();
    if size > ANNOTATIONS_SIZE_LIMIT {
        crate::remove_key(annotations, LAST_APPLIED_ANNOTATION);
    }
}
