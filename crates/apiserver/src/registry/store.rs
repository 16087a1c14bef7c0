//! Create, get and update of any resource: objects are JSON, stored without their
//! resourceVersion (it is the storage mod revision, set on every read), with upstream's
//! metadata rules (`rest.BeforeCreate`, `rest.BeforeUpdate`) and per-kind strategies.

use std::sync::Arc;

use bytes::Bytes;
use ferrokube_api::meta;
use ferrokube_api::resources::ResourceInfo;
use ferrokube_api::status::{field, Status, Subject};
use ferrokube_storage::{KeyValue, Storage, StorageError};
use serde_json::{json, Value};

use crate::errors::ApiResult;
use crate::registry::strategy::{spec_changed, Strategy};

#[derive(Debug, Clone)]
pub struct Registry {
    pub storage: Arc<dyn Storage>,
    /// ClusterIP and NodePort allocation for Services (None: Services get none).
    pub services: Option<Arc<crate::registry::services::ServiceAllocator>>,
    /// How long Events are kept (`--event-ttl`; upstream's default is one hour).
    pub event_ttl: std::time::Duration,
    /// The custom resources served (CRDs).
    pub crds: Arc<crate::crd::CrdRegistry>,
}

/// The resource (and namespace) a request addresses.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub info: &'static ResourceInfo,
    pub namespace: Option<&'a str>,
    /// Set for custom resources: their CRD's schema, subresources and columns.
    pub custom: Option<&'a crate::crd::CustomResource>,
    /// The version the client asked for, when it is stored as `info` (see `conversion`).
    pub served: Option<&'static ResourceInfo>,
}

impl<'a> Target<'a> {
    /// A built-in resource.
    pub fn builtin(info: &'static ResourceInfo, namespace: Option<&'a str>) -> Self {
        Target {
            info,
            namespace,
            custom: None,
            served: None,
        }
    }
    pub fn key(&self, name: &str) -> String {
        self.info.storage_key(self.namespace, name)
    }
    pub fn strategy(&self) -> Strategy<'a> {
        Strategy {
            info: self.info,
            custom: self.custom,
        }
    }
    pub fn kind_subject<'n>(&self, name: &'n str) -> Subject<'n> {
        Subject {
            group: self.info.group,
            resource: self.info.kind,
            name,
        }
    }
}

/// An admission step run inside a write.
pub type AdmissionFuture<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = ApiResult<()>> + Send + 'a>>;

/// Admission inside a write, where upstream runs it: mutating on the computed object
/// before the strategy prepares it (`old` is None for a create), validating on exactly
/// what is about to be stored; both again when a conflicting writer forces a retry.
pub trait WriteAdmission: Send + Sync {
    fn mutate<'a>(&'a self, obj: &'a mut Value, old: Option<&'a Value>) -> AdmissionFuture<'a>;
    fn validate<'a>(&'a self, obj: &'a Value, old: Option<&'a Value>) -> AdmissionFuture<'a>;
}

/// What an update should do with the stored object.
pub enum Outcome {
    Write(Value),
    /// The object has a deletionTimestamp and no finalizers left: remove it.
    Delete(Value),
}

pub fn decode(kv: &KeyValue) -> ApiResult<Value> {
    let mut obj: Value = serde_json::from_slice(&kv.value)
        .map_err(|e| Status::internal(format!("decoding stored object {}: {e}", kv.key)))?;
    meta::set(
        &mut obj,
        "resourceVersion",
        Value::String(kv.mod_revision.to_string()),
    );
    Ok(obj)
}

/// Stored layout: `{"metadata":{…},…}` with metadata first and without resourceVersion
/// (the storage revision is the resourceVersion), so reads can splice the
/// resourceVersion into the bytes without parsing them ([`raw_with_rv`]).
pub fn encode(obj: &Value) -> ApiResult<Bytes> {
    let map = obj
        .as_object()
        .ok_or_else(|| Status::internal("object to store is not a JSON object"))?;
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(b"{\"metadata\":");
    let mut metadata = map
        .get("metadata")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    metadata.remove("resourceVersion");
    serde_json::to_writer(&mut out, &metadata).map_err(Status::internal)?;
    for (k, v) in map.iter().filter(|(k, _)| k.as_str() != "metadata") {
        out.push(b',');
        serde_json::to_writer(&mut out, k).map_err(Status::internal)?;
        out.push(b':');
        serde_json::to_writer(&mut out, v).map_err(Status::internal)?;
    }
    out.push(b'}');
    Ok(Bytes::from(out))
}

/// The stored object with its resourceVersion, as JSON bytes, without parsing it (for
/// objects in the layout [`encode`] writes; others are parsed and re-encoded).
pub fn raw_with_rv(kv: &KeyValue) -> ApiResult<Bytes> {
    const PREFIX: &[u8] = b"{\"metadata\":{";
    let Some(rest) = kv.value.strip_prefix(PREFIX) else {
        let obj = decode(kv)?;
        return serde_json::to_vec(&obj)
            .map(Bytes::from)
            .map_err(|e| Status::internal(e).into());
    };
    let rv = kv.mod_revision.to_string();
    let mut out = Vec::with_capacity(kv.value.len() + rv.len() + 24);
    out.extend_from_slice(PREFIX);
    out.extend_from_slice(b"\"resourceVersion\":\"");
    out.extend_from_slice(rv.as_bytes());
    out.push(b'"');
    if rest.first() != Some(&b'}') {
        out.push(b',');
    }
    out.extend_from_slice(rest);
    Ok(Bytes::from(out))
}

fn random_u64() -> u64 {
    let id = uuid::Uuid::new_v4();
    let b = id.as_bytes();
    u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
}

/// Sets kind/apiVersion, or refuses a body of another kind.
fn check_type(info: &ResourceInfo, obj: &mut Value) -> ApiResult<()> {
    let Some(map) = obj.as_object_mut() else {
        return Err(Status::bad_request("the body of the request must be a JSON object").into());
    };
    let expected_version = info.api_version();
    match map.get("apiVersion").and_then(Value::as_str) {
        Some(v) if v != expected_version => {
            return Err(Status::bad_request(format!(
                "the API version in the data ({v}) does not match the expected API version ({expected_version})"
            ))
            .into())
        }
        _ => {}
    }
    match map.get("kind").and_then(Value::as_str) {
        Some(k) if k != info.kind => {
            return Err(Status::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind ({})",
                info.kind
            ))
            .into())
        }
        _ => {}
    }
    map.insert("apiVersion".into(), Value::String(expected_version));
    map.insert("kind".into(), Value::String(info.kind.into()));
    Ok(())
}

/// The namespace rules of `rest.BeforeCreate`/`BeforeUpdate`.
fn check_namespace(target: &Target<'_>, obj: &mut Value) -> ApiResult<()> {
    if !target.info.namespaced {
        meta::remove(obj, "namespace");
        return Ok(());
    }
    let url_ns = target.namespace.unwrap_or_default();
    match meta::namespace(obj) {
        None => meta::set(obj, "namespace", Value::String(url_ns.into())),
        Some(ns) if ns != url_ns => return Err(Status::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        )
        .into()),
        Some(_) => {}
    }
    Ok(())
}

fn validate_meta(target: &Target<'_>, obj: &Value) -> ApiResult<()> {
    let strategy = target.strategy();
    let causes = meta::validate(obj, strategy.name_rule(), target.info.namespaced);
    if causes.is_empty() {
        Ok(())
    } else {
        let name = meta::name(obj).unwrap_or_default();
        Err(Status::invalid(target.kind_subject(name), causes).into())
    }
}

/// Prepares a new object for storage (everything of `rest.BeforeCreate` but the
/// namespace-exists check, which needs I/O).
pub fn prepare_create(target: &Target<'_>, obj: &mut Value) -> ApiResult<()> {
    check_type(target.info, obj)?;
    if meta::metadata_mut(obj).is_none() {
        return Err(Status::bad_request("the body of the request must be a JSON object").into());
    }
    check_namespace(target, obj)?;
    if meta::str_field(obj, "resourceVersion").is_some_and(|rv| !rv.is_empty()) {
        return Err(
            Status::internal("resourceVersion should not be set on objects to be created").into(),
        );
    }
    if meta::name(obj).is_none() {
        if let Some(base) = meta::str_field(obj, "generateName")
            .filter(|g| !g.is_empty())
            .map(str::to_string)
        {
            meta::set(
                obj,
                "name",
                Value::String(meta::generate_name(&base, random_u64())),
            );
        }
    }
    meta::set(obj, "uid", Value::String(uuid::Uuid::new_v4().to_string()));
    meta::set(
        obj,
        "creationTimestamp",
        Value::String(ferrokube_api::time::now_rfc3339()),
    );
    for k in [
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "resourceVersion",
        "selfLink",
    ] {
        meta::remove(obj, k);
    }
    let strategy = target.strategy();
    strategy.normalize(obj);
    if strategy.tracks_generation() {
        meta::set(obj, "generation", json!(1));
    } else {
        meta::remove(obj, "generation");
    }
    strategy.prepare_for_create(obj);
    validate_meta(target, obj)?;
    validate_kind(target, obj, None)
}

/// The strategy's `Validate`/`ValidateUpdate`: per-kind rules (422 with field causes).
fn validate_kind(target: &Target<'_>, obj: &Value, old: Option<&Value>) -> ApiResult<()> {
    let causes = target.strategy().validate(obj, old);
    if causes.is_empty() {
        return Ok(());
    }
    let name = meta::name(obj).unwrap_or_default();
    Err(Status::invalid(target.kind_subject(name), causes).into())
}

/// Whether an update removes the object (upstream's `ShouldDeleteDuringUpdate`):
/// deletionTimestamp set, no finalizers left (for namespaces also no
/// `spec.finalizers`), and no grace period still running — a pod being deleted
/// gracefully stays until its kubelet deletes it with grace 0.
pub fn ready_to_delete(info: &ResourceInfo, obj: &Value) -> bool {
    let grace_running = obj
        .pointer("/metadata/deletionGracePeriodSeconds")
        .and_then(Value::as_i64)
        .is_some_and(|g| g > 0);
    let deleting = meta::str_field(obj, "deletionTimestamp").is_some() && !grace_running;
    let spec_finalizers = info.resource == "namespaces"
        && info.group.is_empty()
        && obj
            .pointer("/spec/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty());
    deleting && meta::finalizers(obj).is_empty() && !spec_finalizers
}

/// `rest.BeforeUpdate` plus the strategy: the object `desired` may replace `current`.
pub fn prepare_update(
    target: &Target<'_>,
    name: &str,
    current: &Value,
    mut desired: Value,
    subresource: Option<&str>,
) -> ApiResult<Outcome> {
    check_type(target.info, &mut desired)?;
    if meta::metadata_mut(&mut desired).is_none() {
        return Err(Status::bad_request("the body of the request must be a JSON object").into());
    }
    match meta::name(&desired) {
        Some(n) if n != name => {
            return Err(Status::bad_request(format!(
                "the name of the object ({n}) does not match the name on the URL ({name})"
            ))
            .into())
        }
        None => meta::set(&mut desired, "name", Value::String(name.into())),
        _ => {}
    }
    check_namespace(target, &mut desired)?;
    // The client's resourceVersion, if any, is a precondition.
    let current_rv = meta::str_field(current, "resourceVersion")
        .unwrap_or_default()
        .to_string();
    if let Some(rv) = meta::str_field(&desired, "resourceVersion").filter(|rv| !rv.is_empty()) {
        if rv != current_rv {
            return Err(Status::conflict(
                Subject {
                    group: target.info.group,
                    resource: target.info.resource,
                    name,
                },
                Status::MODIFIED,
            )
            .into());
        }
    }
    if let (Some(want), Some(have)) = (
        meta::str_field(&desired, "uid").filter(|u| !u.is_empty()),
        meta::str_field(current, "uid"),
    ) {
        if want != have {
            return Err(Status::invalid(
                target.kind_subject(name),
                vec![field::invalid(
                    "metadata.uid",
                    &Value::String(want.into()),
                    "field is immutable",
                )],
            )
            .into());
        }
    }
    let strategy = target.strategy();
    strategy.normalize(&mut desired);
    if target.info.group.is_empty() && target.info.resource == "services" {
        keep_service_allocations(name, &mut desired, current)?;
    }
    let is_csr = target.info.group == "certificates.k8s.io"
        && target.info.resource == "certificatesigningrequests";
    if is_csr && matches!(subresource, Some("status" | "approval")) {
        populate_condition_timestamps(&mut desired, current);
    }
    // What the kind's update rules compare the result with.
    let mut compared_with = None;
    match subresource {
        Some("status") => strategy.prepare_for_status_update(&mut desired, current),
        Some("ephemeralcontainers") => {
            // Only spec.ephemeralContainers changes (upstream's
            // podEphemeralContainersStrategy); those already there stay as they are.
            let list = desired
                .pointer("/spec/ephemeralContainers")
                .cloned()
                .unwrap_or(Value::Null);
            let mut merged = current.clone();
            if let Some(spec) = merged.get_mut("spec").and_then(Value::as_object_mut) {
                if list.is_null() {
                    spec.remove("ephemeralContainers");
                } else {
                    spec.insert("ephemeralContainers".into(), list);
                }
            }
            if let Some(rv) = desired.pointer("/metadata/resourceVersion").cloned() {
                meta::set(&mut merged, "resourceVersion", rv);
            }
            let causes = ferrokube_api::kinds::ephemeral_containers_update(&merged, current);
            if !causes.is_empty() {
                return Err(Status::invalid(target.kind_subject(name), causes).into());
            }
            let mut old = current.clone();
            if let Some(spec) = old.get_mut("spec").and_then(Value::as_object_mut) {
                match merged.pointer("/spec/ephemeralContainers") {
                    Some(l) => spec.insert("ephemeralContainers".into(), l.clone()),
                    None => spec.remove("ephemeralContainers"),
                };
            }
            compared_with = Some(old);
            desired = merged;
        }
        Some("resize") => {
            // Only containers' resources and resize policies change (upstream's
            // podResizeStrategy), matched by name.
            let mut merged = current.clone();
            for list in ["containers", "initContainers"] {
                let wanted = desired
                    .pointer(&format!("/spec/{list}"))
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                let Some(items) = merged
                    .pointer_mut(&format!("/spec/{list}"))
                    .and_then(Value::as_array_mut)
                else {
                    continue;
                };
                for c in items.iter_mut() {
                    let name = c.get("name").cloned();
                    let Some(w) = wanted.iter().find(|w| w.get("name") == name.as_ref()) else {
                        continue;
                    };
                    let Some(c) = c.as_object_mut() else { continue };
                    for k in ["resources", "resizePolicy"] {
                        match w.get(k) {
                            Some(v) => c.insert(k.into(), v.clone()),
                            None => c.remove(k),
                        };
                    }
                }
            }
            if let Some(rv) = desired.pointer("/metadata/resourceVersion").cloned() {
                meta::set(&mut merged, "resourceVersion", rv);
            }
            let causes = ferrokube_api::kinds::pod_resize_update(&merged, current);
            if !causes.is_empty() {
                return Err(Status::invalid(target.kind_subject(name), causes).into());
            }
            let mut old = current.clone();
            for list in ["containers", "initContainers"] {
                if let (Some(o), Some(m)) = (
                    old.pointer_mut(&format!("/spec/{list}")),
                    merged.pointer(&format!("/spec/{list}")),
                ) {
                    *o = m.clone();
                }
            }
            compared_with = Some(old);
            desired = merged;
        }
        Some("approval") => {
            // Only status.conditions change through /approval.
            let conditions = desired
                .pointer("/status/conditions")
                .cloned()
                .unwrap_or(json!([]));
            let mut merged = current.clone();
            match merged.get_mut("status").and_then(Value::as_object_mut) {
                Some(status) => {
                    status.insert("conditions".into(), conditions);
                }
                None => {
                    if let Some(m) = merged.as_object_mut() {
                        m.insert("status".into(), json!({ "conditions": conditions }));
                    }
                }
            }
            if let Some(rv) = desired.pointer("/metadata/resourceVersion").cloned() {
                meta::set(&mut merged, "resourceVersion", rv);
            }
            desired = merged;
        }
        Some("finalize") => {
            // Only spec.finalizers changes through /finalize.
            let finalizers = desired
                .pointer("/spec/finalizers")
                .cloned()
                .unwrap_or(json!([]));
            let mut merged = current.clone();
            if let Some(spec) = merged.get_mut("spec").and_then(Value::as_object_mut) {
                spec.insert("finalizers".into(), finalizers);
            } else if let Some(m) = merged.as_object_mut() {
                m.insert("spec".into(), json!({ "finalizers": finalizers }));
            }
            desired = merged;
        }
        _ => strategy.prepare_for_update(&mut desired, current),
    }
    for k in [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
    ] {
        match current.pointer(&format!("/metadata/{k}")) {
            Some(v) => meta::set(&mut desired, k, v.clone()),
            None => meta::remove(&mut desired, k),
        }
    }
    // Finalizers may only be removed, not added, once deletion has started.
    let generation = current
        .pointer("/metadata/generation")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    if strategy.tracks_generation() {
        // EndpointSlices also count their labels (upstream's endpointslice strategy).
        let labels_count = target.info.group == "discovery.k8s.io";
        let labels_changed = labels_count
            && desired.pointer("/metadata/labels") != current.pointer("/metadata/labels");
        let next = if spec_changed(&desired, current) || labels_changed {
            generation + 1
        } else {
            generation.max(1)
        };
        meta::set(&mut desired, "generation", json!(next));
    } else {
        meta::remove(&mut desired, "generation");
    }
    meta::set(&mut desired, "resourceVersion", Value::String(current_rv));
    validate_meta(target, &desired)?;
    validate_kind(
        target,
        &desired,
        Some(compared_with.as_ref().unwrap_or(current)),
    )?;
    if ready_to_delete(target.info, &desired) {
        return Ok(Outcome::Delete(desired));
    }
    Ok(Outcome::Write(desired))
}

/// What [`Registry::update_admitted`] writes.
#[derive(Debug, Clone, Copy)]
pub struct Write<'a> {
    pub name: &'a str,
    pub subresource: Option<&'a str>,
    pub dry_run: bool,
    /// Whether a missing object is created.
    pub allow_create: bool,
}

impl<'a> Write<'a> {
    /// An update (PUT or PATCH): it creates only where the kind's strategy allows
    /// create-on-update, and never through a subresource.
    pub fn update(
        target: &Target<'_>,
        name: &'a str,
        subresource: Option<&'a str>,
        dry_run: bool,
    ) -> Self {
        Write {
            name,
            subresource,
            dry_run,
            allow_create: target.strategy().allow_create_on_update() && subresource.is_none(),
        }
    }
}

impl Registry {
    pub fn new(
        storage: Arc<dyn Storage>,
        services: Option<crate::registry::services::ServiceAllocator>,
    ) -> Self {
        Registry {
            storage,
            services: services.map(Arc::new),
            event_ttl: std::time::Duration::from_secs(3600),
            crds: Arc::default(),
        }
    }

    /// Events expire from storage after `--event-ttl`, as upstream stores them with a lease.
    fn ttl_for(&self, target: &Target<'_>) -> Option<std::time::Duration> {
        let is_event =
            target.info.resource == "events" && matches!(target.info.group, "" | "events.k8s.io");
        is_event.then_some(self.event_ttl)
    }

    fn allocator_for(
        &self,
        target: &Target<'_>,
    ) -> Option<&crate::registry::services::ServiceAllocator> {
        let is_service = target.info.group.is_empty() && target.info.resource == "services";
        self.services.as_deref().filter(|_| is_service)
    }

    /// Refuses creation in a namespace that is missing (404) or terminating (403), as the
    /// NamespaceLifecycle admission plugin.
    pub async fn check_namespace_open(&self, target: &Target<'_>, name: &str) -> ApiResult<()> {
        let Some(ns) = target.namespace.filter(|_| target.info.namespaced) else {
            return Ok(());
        };
        let ns_info = ferrokube_api::resources::lookup("", "v1", "namespaces")
            .ok_or_else(|| Status::internal("namespaces are not registered"))?;
        match self
            .storage
            .get(&ns_info.storage_key(None, ns), None)
            .await?
        {
            None => Err(Status::not_found(Subject {
                group: "",
                resource: "namespaces",
                name: ns,
            })
            .into()),
            Some(kv) => {
                let obj = decode(&kv)?;
                if meta::str_field(&obj, "deletionTimestamp").is_some() {
                    let subject = Subject {
                        group: target.info.group,
                        resource: target.info.resource,
                        name,
                    };
                    return Err(Status::forbidden(subject, &format!("unable to create new content in namespace {ns} because it is being terminated")).into());
                }
                Ok(())
            }
        }
    }

    pub async fn create(&self, target: &Target<'_>, obj: Value, dry_run: bool) -> ApiResult<Value> {
        self.create_admitted(target, obj, dry_run, None).await
    }

    /// [`Registry::create`] with `admission` validating the prepared object.
    pub async fn create_admitted(
        &self,
        target: &Target<'_>,
        mut obj: Value,
        dry_run: bool,
        admission: Option<&dyn WriteAdmission>,
    ) -> ApiResult<Value> {
        prepare_create(target, &mut obj)?;
        let name = meta::name(&obj).unwrap_or_default().to_string();
        self.check_namespace_open(target, &name).await?;
        if let Some(a) = admission {
            a.validate(&obj, None).await?;
        }
        if dry_run {
            return Ok(obj);
        }
        let allocated = match self.allocator_for(target) {
            Some(a) => Some(a.allocate_for(self, &mut obj).await?),
            None => None,
        };
        let result = match self
            .storage
            .create(&target.key(&name), encode(&obj)?, self.ttl_for(target))
            .await
        {
            // What was stored is `obj`; only the resourceVersion is new.
            Ok(kv) => {
                meta::set(
                    &mut obj,
                    "resourceVersion",
                    Value::String(kv.mod_revision.to_string()),
                );
                Ok(obj)
            }
            // The name came from the body (or generateName), not the URL: say which.
            Err(StorageError::AlreadyExists { .. }) => Err(Status::already_exists(Subject {
                group: target.info.group,
                resource: target.info.resource,
                name: &name,
            })
            .into()),
            Err(e) => Err(e.into()),
        };
        if let (Err(_), Some(a), Some(done)) = (&result, self.allocator_for(target), &allocated) {
            a.release(self, done).await;
        }
        result
    }

    pub async fn get(&self, target: &Target<'_>, name: &str) -> ApiResult<Value> {
        match self.storage.get(&target.key(name), None).await? {
            Some(kv) => decode(&kv),
            None => Err(StorageError::NotFound { key: name.into() }.into()),
        }
    }

    /// Read-modify-write: `compute` turns the current object (None if absent) into the
    /// desired one; the result goes through `prepare_update` and is written with
    /// compare-and-swap, recomputed when another writer got there first. Returns the
    /// stored object and whether it was created.
    pub async fn update_with<F>(
        &self,
        target: &Target<'_>,
        name: &str,
        subresource: Option<&str>,
        dry_run: bool,
        compute: F,
    ) -> ApiResult<(Value, bool)>
    where
        F: FnMut(Option<&Value>) -> ApiResult<Value>,
    {
        let write = Write::update(target, name, subresource, dry_run);
        self.update_admitted(target, write, None, compute).await
    }

    /// [`Registry::update_with`] that creates a missing object when `allow_create`
    /// (server-side apply creates whatever the kind's strategy says about PUT).
    pub async fn update_or_create_with<F>(
        &self,
        target: &Target<'_>,
        name: &str,
        subresource: Option<&str>,
        dry_run: bool,
        allow_create: bool,
        compute: F,
    ) -> ApiResult<(Value, bool)>
    where
        F: FnMut(Option<&Value>) -> ApiResult<Value>,
    {
        let write = Write {
            name,
            subresource,
            dry_run,
            allow_create,
        };
        self.update_admitted(target, write, None, compute).await
    }

    /// [`Registry::update_or_create_with`] with `admission` run on every attempt.
    pub async fn update_admitted<F>(
        &self,
        target: &Target<'_>,
        write: Write<'_>,
        admission: Option<&dyn WriteAdmission>,
        mut compute: F,
    ) -> ApiResult<(Value, bool)>
    where
        F: FnMut(Option<&Value>) -> ApiResult<Value>,
    {
        let Write {
            name,
            subresource,
            dry_run,
            allow_create,
        } = write;
        let key = target.key(name);
        loop {
            let current_kv = self.storage.get(&key, None).await?;
            let current = current_kv.as_ref().map(decode).transpose()?;
            if current.is_none() && !allow_create {
                return Err(StorageError::NotFound { key: name.into() }.into());
            }
            let mut desired = compute(current.as_ref())?;
            if let Some(a) = admission {
                a.mutate(&mut desired, current.as_ref()).await?;
            }
            let (Some(kv), Some(current)) = (current_kv, current) else {
                let mut obj = desired;
                if meta::name(&obj).is_none() {
                    meta::set(&mut obj, "name", Value::String(name.into()));
                }
                meta::remove(&mut obj, "resourceVersion");
                prepare_create(target, &mut obj)?;
                self.check_namespace_open(target, name).await?;
                if let Some(a) = admission {
                    a.validate(&obj, None).await?;
                }
                if dry_run {
                    return Ok((obj, true));
                }
                match self
                    .storage
                    .create(&key, encode(&obj)?, self.ttl_for(target))
                    .await
                {
                    Ok(kv) => return Ok((decode(&kv)?, true)),
                    Err(StorageError::AlreadyExists { .. }) => continue,
                    Err(e) => return Err(e.into()),
                }
            };
            let outcome = prepare_update(target, name, &current, desired, subresource)?;
            if let Some(a) = admission {
                let (Outcome::Write(obj) | Outcome::Delete(obj)) = &outcome;
                a.validate(obj, Some(&current)).await?;
            }
            let result = match outcome {
                Outcome::Write(obj) => {
                    let bytes = encode(&obj)?;
                    if bytes == kv.value {
                        return Ok((current, false)); // nothing changed: no new revision
                    }
                    if dry_run {
                        return Ok((obj, false));
                    }
                    self.storage
                        .update(&key, bytes, kv.mod_revision, self.ttl_for(target))
                        .await
                        .map(|kv| decode(&kv))
                }
                Outcome::Delete(obj) => {
                    if dry_run {
                        return Ok((obj, false));
                    }
                    self.storage
                        .delete(&key, Some(kv.mod_revision))
                        .await
                        .map(|_| Ok(obj))
                }
            };
            match result {
                Ok(obj) => return Ok((obj?, false)),
                Err(StorageError::Conflict { .. } | StorageError::NotFound { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// A Service's clusterIP and node ports cannot change once set (an update that omits them
/// keeps them), as upstream's service REST update.
fn keep_service_allocations(name: &str, desired: &mut Value, current: &Value) -> ApiResult<()> {
    let old_ip = current.pointer("/spec/clusterIP").cloned();
    let new_ip = desired
        .pointer("/spec/clusterIP")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    match (new_ip, old_ip.as_ref().and_then(Value::as_str)) {
        (Some(new), Some(old)) if new != old => {
            return Err(Status::invalid(
                Subject {
                    group: "",
                    resource: "Service",
                    name,
                },
                vec![field::invalid(
                    "spec.clusterIPs[0]",
                    &Value::String(new),
                    "may not change once set",
                )],
            )
            .into());
        }
        (None, Some(_)) => {
            if let Some(spec) = desired.get_mut("spec").and_then(Value::as_object_mut) {
                spec.insert("clusterIP".into(), old_ip.clone().unwrap_or(Value::Null));
                if let Some(ips) = current.pointer("/spec/clusterIPs") {
                    spec.insert("clusterIPs".into(), ips.clone());
                }
            }
        }
        _ => {}
    }
    let old_ports: Vec<(i64, i64)> = current
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .map_or(Vec::new(), |ps| {
            ps.iter()
                .filter_map(|p| Some((p["port"].as_i64()?, p["nodePort"].as_i64()?)))
                .collect()
        });
    if let Some(ports) = desired
        .pointer_mut("/spec/ports")
        .and_then(Value::as_array_mut)
    {
        for p in ports.iter_mut().filter_map(Value::as_object_mut) {
            let port = p.get("port").and_then(Value::as_i64);
            if p.get("nodePort").and_then(Value::as_i64).is_none() {
                if let Some((_, np)) = old_ports.iter().find(|(pt, _)| Some(*pt) == port) {
                    p.insert("nodePort".into(), json!(np));
                }
            }
        }
    }
    Ok(())
}

/// The CSR strategy's `populateConditionTimestamps`: a condition without
/// `lastUpdateTime` gets now; without `lastTransitionTime` it keeps the old condition's
/// when type and status are unchanged, else now.
fn populate_condition_timestamps(desired: &mut Value, current: &Value) {
    let now = ferrokube_api::time::now_rfc3339();
    let old: Vec<Value> = current
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let Some(conds) = desired
        .pointer_mut("/status/conditions")
        .and_then(Value::as_array_mut)
    else {
        return;
    };
    for c in conds.iter_mut().filter_map(Value::as_object_mut) {
        let missing = |c: &serde_json::Map<String, Value>, k: &str| {
            c.get(k)
                .is_none_or(|v| v.is_null() || v.as_str() == Some(""))
        };
        if missing(c, "lastUpdateTime") {
            c.insert("lastUpdateTime".into(), json!(now));
        }
        if missing(c, "lastTransitionTime") {
            let kept = old
                .iter()
                .find(|o| o.get("type") == c.get("type") && o.get("status") == c.get("status"))
                .and_then(|o| o.get("lastTransitionTime"))
                .filter(|t| t.as_str().is_some_and(|s| !s.is_empty()))
                .cloned();
            c.insert(
                "lastTransitionTime".into(),
                kept.unwrap_or_else(|| json!(now)),
            );
        }
    }
}

#[cfg(test)]
mod layout_tests {
    use super::*;

    #[test]
    fn spliced_bytes_equal_the_decoded_object() {
        for obj in [
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "resourceVersion": "9"}, "data": {"k": "\"metadata\":{"}}),
            json!({"kind": "X", "metadata": {}}),
            json!({"kind": "X"}),
        ] {
            let bytes = encode(&obj).unwrap();
            assert!(bytes.starts_with(b"{\"metadata\":{"));
            let kv = KeyValue {
                key: "/k".into(),
                value: bytes,
                create_revision: 5,
                mod_revision: 7,
                version: 1,
            };
            let spliced: Value = serde_json::from_slice(&raw_with_rv(&kv).unwrap()).unwrap();
            assert_eq!(spliced, decode(&kv).unwrap());
            assert_eq!(spliced["metadata"]["resourceVersion"], "7");
        }
        // Objects stored in another layout still read correctly.
        let legacy = KeyValue {
            key: "/k".into(),
            value: Bytes::from_static(br#"{"kind":"X","metadata":{"name":"n"}}"#),
            create_revision: 1,
            mod_revision: 3,
            version: 1,
        };
        let v: Value = serde_json::from_slice(&raw_with_rv(&legacy).unwrap()).unwrap();
        assert_eq!(v["metadata"], json!({"name": "n", "resourceVersion": "3"}));
    }
}
