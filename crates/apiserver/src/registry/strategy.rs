//! Per-kind behaviour plugged into the generic store, as upstream's `rest.RESTCreateStrategy`
//! and `rest.RESTUpdateStrategy` implementations: what create resets, what an update of
//! the main resource or of `status` may change, whether `metadata.generation` tracks the
//! spec, and the name rule.

use ferrokube_api::resources::ResourceInfo;
use ferrokube_api::status::StatusCause;

use crate::crd::CustomResource;
use ferrokube_api::validation::NameRule;
use serde_json::{json, Value};

#[derive(Debug, Clone, Copy)]
pub struct Strategy<'a> {
    pub info: &'static ResourceInfo,
    /// Set for custom resources.
    pub custom: Option<&'a CustomResource>,
}

impl Strategy<'_> {
    #[cfg(test)]
    pub fn new(info: &'static ResourceInfo) -> Self {
        Strategy { info, custom: None }
    }

    fn is_crd(&self) -> bool {
        self.key() == ("apiextensions.k8s.io", "customresourcedefinitions")
    }

    /// Per-kind validation (`Validate` / `ValidateUpdate`): CRDs and custom resources
    /// against their schema; the built-in kinds by upstream's per-kind rules
    /// (`ferrokube_api::kinds`), on the defaulted object and, on update, with `old`.
    pub fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<StatusCause> {
        if let Some(cr) = self.custom {
            let Some(schema) = cr.schema.as_ref() else {
                return Vec::new();
            };
            let mut causes = crate::crd::structural::validate(schema, obj);
            // Rules run on values of the right shape only, as upstream (schema errors
            // first).
            if causes.is_empty() {
                causes = crate::crd::rules::validate(schema, obj, old);
            }
            return causes;
        }
        if self.is_crd() {
            return crate::crd::validate::validate(obj, old);
        }
        ferrokube_api::kinds::validate(self.info.group, self.info.resource, obj, old)
    }

    fn key(&self) -> (&'static str, &'static str) {
        (self.info.group, self.info.resource)
    }

    pub fn has_status(&self) -> bool {
        self.info.subresource("status").is_some()
    }

    pub fn name_rule(&self) -> NameRule {
        NameRule::for_resource(self.info.group, self.info.resource)
    }

    /// Kinds whose `metadata.generation` counts spec changes.
    pub fn tracks_generation(&self) -> bool {
        self.custom.is_some()
            || matches!(
                self.key(),
                ("apps", _)
                    | ("batch", _)
                    | ("", "replicationcontrollers")
                    | ("autoscaling", "horizontalpodautoscalers")
                    | ("policy", "poddisruptionbudgets")
                    | ("networking.k8s.io", "networkpolicies" | "ingresses")
                    | ("apiextensions.k8s.io", "customresourcedefinitions")
                    | ("admissionregistration.k8s.io", _)
                    | ("scheduling.k8s.io", "priorityclasses")
                    | ("discovery.k8s.io", "endpointslices")
                    | ("flowcontrol.apiserver.k8s.io", _)
            )
    }

    /// PUT of a missing object creates it (upstream's `AllowCreateOnUpdate`).
    pub fn allow_create_on_update(&self) -> bool {
        matches!(
            self.key(),
            ("", "endpoints")
                | ("", "events")
                | ("coordination.k8s.io", "leases")
                | ("rbac.authorization.k8s.io", _)
        )
    }

    /// What upstream does while decoding a request, on every write: defaulting, and a
    /// Secret's write-only `stringData` merged into `data` (base64).
    pub fn normalize(&self, obj: &mut Value) {
        if self.is_crd() {
            crate::crd::defaults::apply(obj);
            return;
        }
        ferrokube_api::defaults::apply(self.info.group, self.info.resource, obj);
        if self.key() != ("", "secrets") {
            return;
        }
        let Some(map) = obj.as_object_mut() else {
            return;
        };
        // Upstream's SetDefaults_Secret.
        if map
            .get("type")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            map.insert("type".into(), json!("Opaque"));
        }
        let Some(Value::Object(string_data)) = map.remove("stringData") else {
            return;
        };
        let data = map.entry("data").or_insert_with(|| json!({}));
        if !data.is_object() {
            *data = json!({});
        }
        if let Some(data) = data.as_object_mut() {
            for (k, v) in string_data {
                let text = v
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| v.to_string());
                data.insert(
                    k,
                    Value::String(base64::Engine::encode(
                        &base64::engine::general_purpose::STANDARD,
                        text,
                    )),
                );
            }
        }
    }

    /// `PrepareForCreate`: what a client may not set at creation.
    pub fn prepare_for_create(&self, obj: &mut Value) {
        let Some(map) = obj.as_object_mut() else {
            return;
        };
        match self.key() {
            ("", "namespaces") => {
                let spec = map.entry("spec").or_insert_with(|| json!({}));
                if let Some(spec) = spec.as_object_mut() {
                    spec.entry("finalizers")
                        .or_insert_with(|| json!(["kubernetes"]));
                }
                map.insert("status".into(), json!({"phase": "Active"}));
            }
            ("", "pods") => {
                let qos = ferrokube_api::qos::class(obj);
                if let Some(map) = obj.as_object_mut() {
                    map.insert(
                        "status".into(),
                        json!({"phase": "Pending", "qosClass": qos}),
                    );
                }
            }
            ("", "persistentvolumes") | ("", "persistentvolumeclaims") => {
                map.insert("status".into(), json!({"phase": "Pending"}));
            }
            // Kubelets register nodes with their status.
            ("", "nodes") => {}
            ("batch", "jobs") => {
                map.remove("status");
                generate_job_selector(obj);
            }
            ("apiextensions.k8s.io", "customresourcedefinitions") => {
                crate::crd::defaults::prepare_for_create(obj);
                add_finalizer(obj, crate::crd::controller::CLEANUP_FINALIZER);
            }
            _ if self.has_status() => {
                map.remove("status");
            }
            _ => {}
        }
    }

    /// `PrepareForUpdate` of the main resource: status is owned by the status subresource.
    pub fn prepare_for_update(&self, new: &mut Value, old: &Value) {
        if self.has_status() && self.key() != ("", "nodes") {
            copy_field(new, old, "status");
        }
        if self.is_crd() {
            crate::crd::defaults::prepare_for_update(new);
        }
    }

    /// `PrepareForUpdate` of the status subresource: only status changes.
    pub fn prepare_for_status_update(&self, new: &mut Value, old: &Value) {
        let status = new.get("status").cloned();
        let mut merged = old.clone();
        if let Some(map) = merged.as_object_mut() {
            match status {
                Some(s) => map.insert("status".into(), s),
                None => map.remove("status"),
            };
        }
        // The client's resourceVersion is the precondition; keep it for the check.
        if let Some(rv) = new.pointer("/metadata/resourceVersion").cloned() {
            ferrokube_api::meta::set(&mut merged, "resourceVersion", rv);
        }
        *new = merged;
    }
}

fn add_finalizer(obj: &mut Value, finalizer: &str) {
    let Some(meta) = ferrokube_api::meta::metadata_mut(obj) else {
        return;
    };
    let list = meta.entry("finalizers").or_insert_with(|| json!([]));
    if let Some(list) = list.as_array_mut() {
        if !list.iter().any(|f| f == finalizer) {
            list.push(json!(finalizer));
        }
    }
}

fn copy_field(new: &mut Value, old: &Value, key: &str) {
    if let Some(map) = new.as_object_mut() {
        match old.get(key) {
            Some(v) => map.insert(key.into(), v.clone()),
            None => map.remove(key),
        };
    }
}

/// Everything but metadata and status: a change here bumps the generation.
pub fn spec_changed(new: &Value, old: &Value) -> bool {
    let strip = |v: &Value| -> Value {
        let mut v = v.clone();
        if let Some(m) = v.as_object_mut() {
            m.remove("metadata");
            m.remove("status");
        }
        v
    };
    strip(new) != strip(old)
}

/// Upstream's Job `generateSelector`: unless `spec.manualSelector`, the Job selects its
/// pods by its own uid, and its template carries the labels the selector and users
/// look for (`batch.kubernetes.io/controller-uid`, `batch.kubernetes.io/job-name` and
/// their legacy unprefixed forms).
fn generate_job_selector(obj: &mut Value) {
    let uid = obj.pointer("/metadata/uid").cloned().unwrap_or(Value::Null);
    let name = obj
        .pointer("/metadata/name")
        .cloned()
        .unwrap_or(Value::Null);
    let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    if spec.get("manualSelector").and_then(Value::as_bool) == Some(true) {
        return;
    }
    let template = spec.entry("template").or_insert_with(|| json!({}));
    if let Some(t) = template.as_object_mut() {
        let meta = t.entry("metadata").or_insert_with(|| json!({}));
        if let Some(m) = meta.as_object_mut() {
            let labels = m.entry("labels").or_insert_with(|| json!({}));
            if let Some(l) = labels.as_object_mut() {
                for (k, v) in [
                    ("batch.kubernetes.io/controller-uid", &uid),
                    ("batch.kubernetes.io/job-name", &name),
                    ("controller-uid", &uid),
                    ("job-name", &name),
                ] {
                    l.entry(k).or_insert_with(|| v.clone());
                }
            }
        }
    }
    if spec.get("selector").is_none_or(Value::is_null) {
        spec.insert(
            "selector".into(),
            json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_string_data_is_merged_into_data() {
        let info = ferrokube_api::resources::lookup("", "v1", "secrets").unwrap();
        let mut obj = json!({"data": {"a": "eA=="}, "stringData": {"b": "hello", "a": "y"}});
        Strategy::new(info).normalize(&mut obj);
        assert_eq!(
            obj,
            json!({"data": {"a": "eQ==", "b": "aGVsbG8="}, "type": "Opaque"})
        );
    }
}
