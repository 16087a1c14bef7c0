//! The MutatingAdmissionWebhook and ValidatingAdmissionWebhook plugins (upstream's
//! `admission/plugin/webhook`): the stored webhook configurations, kept current by a
//! watch ([`crate::auth::feeds`]), decide which HTTPS webhooks a write is sent to as an
//! `admission.k8s.io/v1` AdmissionReview. Mutating webhooks run one after another in
//! configuration-name order, their JSONPatches applied in turn (and those with
//! reinvocationPolicy IfNeeded called once more when a later one changed the object);
//! validating webhooks run in parallel and the first rejection wins. A webhook that
//! cannot be called (refused, timed out, a bad answer) fails the request with a 500
//! unless its failurePolicy is Ignore; a denial is returned with the webhook's code and
//! message. Writes to the webhook and policy configurations themselves are never sent.
//!
//! A webhook's matchConditions (CEL, with `object`, `oldObject` and `request`) are
//! evaluated before it is called (`authorizer` asks the server's authorizers): one false skips it; an error fails the request
//! unless the failurePolicy is Ignore.
//!
//! Partial: under matchPolicy Equivalent the object is sent in its stored version.

pub mod client;
pub mod config;
pub mod review;
pub mod rules;

#[cfg(test)]
mod dispatch_tests;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use ferrokube_api::resources::{self, ResourceInfo};
use ferrokube_api::status::Status;
use ferrokube_authz::UserInfo;
use parking_lot::{Mutex, RwLock};
use serde_json::Value;

use self::config::{Endpoint, Hook};
use self::review::Verdict;
use super::Operation;
use crate::errors::{ApiError, ApiResult};
use crate::metrics::WebhookRejection;
use crate::registry::{Registry, Target};

/// The `type` label of webhook calls in upstream's metrics.
const MUTATING: &str = "admit";
const VALIDATING: &str = "validating";

/// Webhooks by configuration name (the order they run in).
type Configs = BTreeMap<String, Vec<Arc<Hook>>>;

#[derive(Debug, Default)]
struct Snapshot {
    mutating: Vec<Arc<Hook>>,
    validating: Vec<Arc<Hook>>,
}

/// The webhooks of every stored configuration.
#[derive(Debug, Default)]
pub struct Webhooks {
    /// (mutating, validating) configurations by name.
    configs: Mutex<(Configs, Configs)>,
    snapshot: RwLock<Arc<Snapshot>>,
}

/// A write as the webhooks see it.
#[derive(Debug)]
pub struct Call<'a> {
    pub registry: &'a Registry,
    pub user: &'a UserInfo,
    pub operation: Operation,
    /// The resource as stored (its kind and version are what the webhook is told).
    pub info: &'static ResourceInfo,
    pub subresource: &'a str,
    pub namespace: &'a str,
    pub name: &'a str,
    pub dry_run: bool,
    /// CreateOptions, UpdateOptions, PatchOptions or DeleteOptions.
    pub options: Value,
    /// The server's authorizer, for the `authorizer` CEL variable.
    pub authorizer: Option<Arc<dyn ferrokube_authz::Authorizer>>,
}

impl Call<'_> {
    pub(crate) fn operation(&self) -> &'static str {
        match self.operation {
            Operation::Create => "CREATE",
            Operation::Update => "UPDATE",
            Operation::Delete => "DELETE",
        }
    }

    pub(crate) fn subject(&self) -> review::Subject<'_> {
        review::Subject {
            group: self.info.group,
            version: self.info.version,
            kind: self.info.kind,
            resource: self.info.resource,
            subresource: self.subresource,
            namespace: self.namespace,
            name: self.name,
            operation: self.operation(),
            user: self.user,
            dry_run: self.dry_run,
            options: &self.options,
        }
    }

    /// Upstream's `IsExemptAdmissionConfigurationResource`.
    pub(crate) fn exempt(&self) -> bool {
        self.info.group == "admissionregistration.k8s.io"
            && matches!(
                self.info.resource,
                "validatingwebhookconfigurations"
                    | "mutatingwebhookconfigurations"
                    | "validatingadmissionpolicies"
                    | "validatingadmissionpolicybindings"
                    | "mutatingadmissionpolicies"
                    | "mutatingadmissionpolicybindings"
            )
    }
}

/// The options object of a write, as the review carries it.
pub fn options(kind: &str, dry_run: bool, field_manager: Option<&str>) -> Value {
    let mut o = serde_json::json!({"kind": kind, "apiVersion": "meta.k8s.io/v1"});
    if dry_run {
        o["dryRun"] = serde_json::json!(["All"]);
    }
    if let Some(m) = field_manager.filter(|m| !m.is_empty()) {
        o["fieldManager"] = serde_json::json!(m);
    }
    o
}

impl Webhooks {
    /// Adds or replaces a stored configuration.
    pub fn upsert(&self, config: &Value, mutating: bool) {
        let name = ferrokube_api::meta::name(config).unwrap_or("").to_string();
        let hooks = config::parse(config, mutating)
            .into_iter()
            .map(Arc::new)
            .collect();
        let mut configs = self.configs.lock();
        let map = if mutating {
            &mut configs.0
        } else {
            &mut configs.1
        };
        map.insert(name, hooks);
        self.publish(&configs);
    }

    /// Forgets a deleted configuration.
    pub fn remove(&self, name: &str, mutating: bool) {
        let mut configs = self.configs.lock();
        let map = if mutating {
            &mut configs.0
        } else {
            &mut configs.1
        };
        map.remove(name);
        self.publish(&configs);
    }

    fn publish(&self, configs: &(Configs, Configs)) {
        let flat = |m: &Configs| m.values().flatten().cloned().collect();
        *self.snapshot.write() = Arc::new(Snapshot {
            mutating: flat(&configs.0),
            validating: flat(&configs.1),
        });
    }

    /// Whether any webhook is configured (writes skip the plugin entirely otherwise).
    pub fn is_empty(&self) -> bool {
        let s = self.snapshot.read();
        s.mutating.is_empty() && s.validating.is_empty()
    }

    /// The mutating webhooks on `obj` (changed in place; `normalize` re-applies the
    /// kind's defaults after each patch). Returns their warnings.
    pub async fn mutate(
        &self,
        call: &Call<'_>,
        obj: &mut Value,
        old: Option<&Value>,
        normalize: &(dyn Fn(&mut Value) + Sync),
    ) -> ApiResult<Vec<String>> {
        let hooks = self.snapshot.read().mutating.clone();
        if hooks.is_empty() || call.exempt() {
            return Ok(Vec::new());
        }
        let relevant = relevant(&hooks, call, Some(obj), old).await?;
        let mut warnings = Vec::new();
        // (hook, the object as it left that hook) for reinvocation.
        let mut reinvocable: Vec<(Arc<Hook>, Value)> = Vec::new();
        for hook in relevant {
            mutate_once(&hook, call, obj, old, normalize, &mut warnings).await?;
            if hook.reinvoke {
                reinvocable.push((hook, obj.clone()));
            }
        }
        for (hook, seen) in reinvocable {
            if *obj != seen {
                mutate_once(&hook, call, obj, old, normalize, &mut warnings).await?;
            }
        }
        Ok(warnings)
    }

    /// The validating webhooks (and, for deletes, the mutating ones, whose patches have
    /// nothing to apply to), called in parallel. Returns their warnings.
    pub async fn validate(
        &self,
        call: &Call<'_>,
        obj: Option<&Value>,
        old: Option<&Value>,
    ) -> ApiResult<Vec<String>> {
        if call.exempt() {
            return Ok(Vec::new());
        }
        let snapshot = self.snapshot.read().clone();
        let mut hooks = snapshot.validating.clone();
        if call.operation == Operation::Delete {
            hooks.splice(0..0, snapshot.mutating.iter().cloned());
        }
        if hooks.is_empty() {
            return Ok(Vec::new());
        }
        let relevant = relevant(&hooks, call, obj, old).await?;
        let mut running = Vec::new();
        for hook in relevant {
            dry_run_allowed(&hook, call)?;
            let review = prepare(&hook, call, obj, old);
            let registry = call.registry.clone();
            let task_hook = hook.clone();
            let task = tokio::spawn(async move { consult(&registry, &task_hook, review).await });
            running.push((hook, task));
        }
        let mut warnings = Vec::new();
        let mut first_error: Option<ApiError> = None;
        for (hook, task) in running {
            let (result, took) = task.await.unwrap_or_else(|e| {
                (
                    Err(format!("the call did not complete: {e}")),
                    std::time::Duration::ZERO,
                )
            });
            match settle(&hook, result) {
                Ok(verdict) => {
                    observe(&hook, call, took, None);
                    warnings.extend(verdict.map(|v| v.warnings).unwrap_or_default());
                }
                Err((e, why)) => {
                    observe(&hook, call, took, Some(why));
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(warnings),
        }
    }
}

/// The webhooks whose rules, selectors and matchConditions select the request, in
/// order; a matchCondition that fails to evaluate fails the request unless the
/// webhook's failurePolicy is Ignore.
async fn relevant(
    hooks: &[Arc<Hook>],
    call: &Call<'_>,
    obj: Option<&Value>,
    old: Option<&Value>,
) -> ApiResult<Vec<Arc<Hook>>> {
    let req = call.rules_request();
    let mut namespace: Option<Option<Value>> = None;
    let mut activation: Option<ferrokube_cel::Activation> = None;
    let mut out = Vec::new();
    for hook in hooks {
        if !hook.selects(&req) || !hook.object_matches(obj, old) {
            continue;
        }
        if hook.namespace_selector.is_some() {
            if namespace.is_none() {
                namespace = Some(namespace_of(call, obj, old).await);
            }
            if !hook.namespace_matches(namespace.as_ref().and_then(Option::as_ref)) {
                continue;
            }
        }
        if !hook.match_conditions.is_empty() {
            let activation = activation
                .get_or_insert_with(|| crate::admission::policy::match_activation(call, obj, old));
            match crate::admission::policy::conditions_hold(&hook.match_conditions, activation) {
                Ok(true) => {}
                Ok(false) => continue,
                Err(_) if hook.ignore_failures => continue,
                Err(e) => {
                    tracing::warn!(webhook = %hook.name, error = %e, "failed evaluating match conditions, failing closed");
                    let subject = ferrokube_api::status::Subject {
                        group: call.info.group,
                        resource: call.info.resource,
                        name: call.name,
                    };
                    let why = format!("failed calling webhook {:?}: {e}", hook.name);
                    return Err(Status::forbidden(subject, &why).into());
                }
            }
        }
        out.push(hook.clone());
    }
    Ok(out)
}

/// The Namespace whose labels the namespace selectors look at: the object itself when a
/// Namespace is created or updated, else the stored namespace (none for other
/// cluster-scoped resources).
pub(crate) async fn namespace_of(
    call: &Call<'_>,
    obj: Option<&Value>,
    old: Option<&Value>,
) -> Option<Value> {
    let is_namespace = call.info.group.is_empty() && call.info.resource == "namespaces";
    if is_namespace && call.subresource.is_empty() && call.operation != Operation::Delete {
        return obj.cloned();
    }
    let name = if is_namespace {
        call.name
    } else if call.info.namespaced {
        call.namespace
    } else {
        return None;
    };
    if is_namespace {
        if let Some(o) = old {
            return Some(o.clone());
        }
    }
    let info = resources::lookup("", "v1", "namespaces")?;
    call.registry
        .get(&Target::builtin(info, None), name)
        .await
        .ok()
}

fn dry_run_allowed(hook: &Hook, call: &Call<'_>) -> ApiResult<()> {
    if call.dry_run && !matches!(hook.side_effects.as_str(), "None" | "NoneOnDryRun") {
        return Err(Status::bad_request(format!(
            "admission webhook {:?} does not support dry run",
            hook.name
        ))
        .into());
    }
    Ok(())
}

fn unsupported_review(hook: &Hook) -> String {
    format!(
        "webhook {:?} does not accept the v1 or v1beta1 AdmissionReview",
        hook.name
    )
}

/// A call that failed: the request's error, or None when the failure policy ignores it.
fn failed_call(hook: &Hook, reason: &str) -> Option<ApiError> {
    if hook.ignore_failures {
        tracing::warn!(webhook = %hook.name, error = %reason, "failed calling webhook, failing open");
        return None;
    }
    tracing::warn!(webhook = %hook.name, error = %reason, "failed calling webhook, failing closed");
    Some(review::call_failure(&hook.name, reason).into())
}

/// One mutating webhook on `obj`.
async fn mutate_once(
    hook: &Arc<Hook>,
    call: &Call<'_>,
    obj: &mut Value,
    old: Option<&Value>,
    normalize: &(dyn Fn(&mut Value) + Sync),
    warnings: &mut Vec<String>,
) -> ApiResult<()> {
    dry_run_allowed(hook, call)?;
    let review = prepare(hook, call, Some(obj), old);
    let (result, took) = consult(call.registry, hook, review).await;
    let verdict = match settle(hook, result) {
        Ok(Some(v)) => v,
        Ok(None) => {
            observe(hook, call, took, None);
            return Ok(());
        }
        Err((e, why)) => {
            observe(hook, call, took, Some(why));
            return Err(e);
        }
    };
    warnings.extend(verdict.warnings);
    let Some(patch) = verdict.patch else {
        observe(hook, call, took, None);
        return Ok(());
    };
    let patched = apply_patch(hook, obj, &patch);
    observe(
        hook,
        call,
        took,
        patched.is_err().then_some(WebhookRejection::Internal),
    );
    let mut patched = patched?;
    normalize(&mut patched);
    *obj = patched;
    Ok(())
}

/// A review ready to send to a webhook.
#[derive(Debug)]
struct Prepared {
    version: &'static str,
    uid: String,
    body: Value,
}

/// The review of `obj`/`old` in the AdmissionReview version the webhook takes.
fn prepare(
    hook: &Hook,
    call: &Call<'_>,
    obj: Option<&Value>,
    old: Option<&Value>,
) -> Result<Prepared, String> {
    let version = hook
        .review_version
        .ok_or_else(|| unsupported_review(hook))?;
    let uid = uuid::Uuid::new_v4().to_string();
    let body = review::request(version, &uid, &call.subject(), obj, old);
    Ok(Prepared { version, uid, body })
}

/// Sends a review and checks the answer, timing the call; errors are why the webhook
/// could not be called.
async fn consult(
    registry: &Registry,
    hook: &Hook,
    review: Result<Prepared, String>,
) -> (Result<Verdict, String>, std::time::Duration) {
    let start = std::time::Instant::now();
    let result = match review {
        Ok(r) => match invoke(registry, hook, r.body).await {
            Ok(answer) => review::verify(&answer, r.version, &r.uid, hook.mutating),
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    };
    (result, start.elapsed())
}

/// What a call decides: the allowing verdict, nothing (a failed call its failure policy
/// ignores), or the request's error with the reason the metrics give.
fn settle(
    hook: &Hook,
    result: Result<Verdict, String>,
) -> Result<Option<Verdict>, (ApiError, WebhookRejection)> {
    if let Ok(v) = &result {
        for (k, value) in &v.audit_annotations {
            crate::audit::annotations::add(format!("{}/{k}", hook.name), value.clone());
        }
    }
    match result {
        Err(reason) => match failed_call(hook, &reason) {
            Some(e) => Err((e, WebhookRejection::CallingWebhook)),
            None => Ok(None),
        },
        Ok(v) if !v.allowed => {
            tracing::info!(webhook = %hook.name, "rejected by webhook");
            let st = review::rejection(&hook.name, v.status.as_ref());
            let code = st.code;
            Err((st.into(), WebhookRejection::Denied(code)))
        }
        Ok(v) => Ok(Some(v)),
    }
}

/// Records one call in upstream's webhook metrics.
fn observe(
    hook: &Hook,
    call: &Call<'_>,
    took: std::time::Duration,
    rejection: Option<WebhookRejection>,
) {
    let kind = if hook.mutating { MUTATING } else { VALIDATING };
    crate::metrics::metrics().observe_webhook(&hook.name, call.operation(), kind, rejection, took);
}

/// A mutating webhook's JSONPatch on `obj`, which must keep its apiVersion and kind.
fn apply_patch(hook: &Hook, obj: &Value, patch: &Value) -> ApiResult<Value> {
    let patched = ferrokube_patch::apply_json_patch(obj, patch).map_err(|e| {
        Status::internal(format!(
            "JSON patch from webhook {:?} could not be applied: {e}",
            hook.name
        ))
    })?;
    for field in ["apiVersion", "kind"] {
        if patched.get(field) != obj.get(field) {
            return Err(Status::internal(format!(
                "webhook {:?} may not change the object's {field}",
                hook.name
            ))
            .into());
        }
    }
    Ok(patched)
}

/// Sends a review to the webhook; errors are why it could not be called.
async fn invoke(registry: &Registry, hook: &Hook, body: Value) -> Result<Bytes, String> {
    let endpoint = hook.endpoint.as_ref().map_err(Clone::clone)?;
    let tls = hook.tls.as_ref().map_err(Clone::clone)?;
    let addr = resolve(registry, endpoint).await?;
    let body = serde_json::to_vec(&body).map_err(|e| e.to_string())?;
    client::post(
        tls,
        addr,
        &endpoint.server_name(),
        &endpoint.request_path(hook.timeout),
        &endpoint.display(hook.timeout),
        body,
        hook.timeout,
    )
    .await
}

/// Where to connect: the URL's host, or the Service's cluster IP (an ExternalName
/// Service's name), as upstream's default service resolver.
async fn resolve(registry: &Registry, endpoint: &Endpoint) -> Result<SocketAddr, String> {
    match endpoint {
        Endpoint::Url { host, port, .. } => crate::service_resolver::host(host, *port).await,
        Endpoint::Service {
            namespace,
            name,
            port,
            ..
        } => crate::service_resolver::cluster_ip(registry, namespace, name, *port).await,
    }
}
