//! API Priority and Fairness, configuration side (upstream's `apf_controller` and the
//! `priority-and-fairness-config-producer` hook):
//!
//! - the bootstrap FlowSchemas and PriorityLevelConfigurations are created on start and
//!   kept as upstream keeps them (mandatory ones always, suggested ones while their
//!   `apf.kubernetes.io/autoupdate-spec` annotation says so), every minute;
//! - every FlowSchema carries the `Dangling` condition saying whether its priority level
//!   exists;
//! - requests are classified: the first matching FlowSchema (by matchingPrecedence, then
//!   name) whose priority level exists names the `X-Kubernetes-PF-FlowSchema-UID` and
//!   `X-Kubernetes-PF-PriorityLevel-UID` response headers;
//! - `apiserver_flowcontrol_nominal_limit_seats` shows each level's share of the server's
//!   concurrency limit (`--max-requests-inflight` + `--max-mutating-requests-inflight`).
//!
//! Requests are not queued by priority level: the server's limit stays the max-in-flight
//! filter's two budgets.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use ferrokube_api::flowcontrol::{self as fc, spec_equal, AUTO_UPDATE_ANNOTATION};
use ferrokube_api::{meta, resources};
use ferrokube_authz::UserInfo;
use serde_json::{json, Value};
use tokio::sync::{watch, Notify};

use crate::registry::{Registry, Target};
use crate::request_info::RequestInfo;

pub const FLOW_SCHEMA_UID_HEADER: &str = "x-kubernetes-pf-flowschema-uid";
pub const PRIORITY_LEVEL_UID_HEADER: &str = "x-kubernetes-pf-prioritylevel-uid";
const PRODUCER_MANAGER: &str = "api-priority-and-fairness-config-producer-v1";
const CONSUMER_MANAGER: &str = "api-priority-and-fairness-config-consumer-v1";

#[derive(Default)]
struct Config {
    schemas: BTreeMap<String, Value>,
    levels: BTreeMap<String, Value>,
    /// Schemas whose level exists, in matching order.
    ordered: Vec<Value>,
}

impl Config {
    fn rebuild(&mut self) {
        let mut ordered: Vec<Value> = self
            .schemas
            .values()
            .filter(|fs| self.levels.contains_key(level_of(fs)))
            .cloned()
            .collect();
        ordered.sort_by(|a, b| {
            let p = |o: &Value| {
                o.pointer("/spec/matchingPrecedence")
                    .and_then(Value::as_i64)
                    .unwrap_or(0)
            };
            p(a).cmp(&p(b))
                .then_with(|| meta::name(a).cmp(&meta::name(b)))
        });
        self.ordered = ordered;
    }
}

fn level_of(fs: &Value) -> &str {
    fs.pointer("/spec/priorityLevelConfiguration/name")
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn uid(o: &Value) -> String {
    o.pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

/// The configuration the API server classifies requests with.
#[derive(Default)]
pub struct Apf {
    config: RwLock<Config>,
    changed: Notify,
}

impl std::fmt::Debug for Apf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Apf").finish_non_exhaustive()
    }
}

/// Feeds FlowSchemas (`false`) or PriorityLevelConfigurations (`true`).
pub struct ApfSink(pub Arc<Apf>, pub bool);

impl crate::auth::feeds::Sink for ApfSink {
    fn upsert(&self, obj: &Value) {
        let name = meta::name(obj).unwrap_or("").to_string();
        if let Ok(mut c) = self.0.config.write() {
            if self.1 {
                c.levels.insert(name, obj.clone());
            } else {
                c.schemas.insert(name, obj.clone());
            }
            c.rebuild();
        }
        self.0.changed.notify_one();
    }
    fn remove(&self, obj: &Value) {
        let name = meta::name(obj).unwrap_or("");
        if let Ok(mut c) = self.0.config.write() {
            if self.1 {
                c.levels.remove(name);
            } else {
                c.schemas.remove(name);
            }
            c.rebuild();
        }
        self.0.changed.notify_one();
    }
}

fn strings<'a>(v: &'a Value, key: &str) -> impl Iterator<Item = &'a str> {
    v.get(key)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
}

fn has(v: &Value, key: &str, want: &str) -> bool {
    strings(v, key).any(|x| x == want || x == "*")
}

fn subject_matches(s: &Value, user: &UserInfo) -> bool {
    match s.get("kind").and_then(Value::as_str) {
        Some("User") => {
            let n = s
                .pointer("/user/name")
                .and_then(Value::as_str)
                .unwrap_or("");
            n == "*" || n == user.name
        }
        Some("Group") => {
            let n = s
                .pointer("/group/name")
                .and_then(Value::as_str)
                .unwrap_or("");
            n == "*" || user.groups.iter().any(|g| g == n)
        }
        Some("ServiceAccount") => {
            let ns = s
                .pointer("/serviceAccount/namespace")
                .and_then(Value::as_str)
                .unwrap_or("");
            let n = s
                .pointer("/serviceAccount/name")
                .and_then(Value::as_str)
                .unwrap_or("");
            let prefix = format!("system:serviceaccount:{ns}:");
            match user.name.strip_prefix(&prefix) {
                Some(rest) => n == "*" || rest == n,
                None => false,
            }
        }
        _ => false,
    }
}

fn url_matches(pattern: &str, path: &str) -> bool {
    if pattern == "*" || pattern == path {
        return true;
    }
    let Some(stem) = pattern.strip_suffix('*') else {
        return false;
    };
    let prefix = if stem.ends_with('/') {
        stem.to_string()
    } else {
        format!("{stem}/")
    };
    path.starts_with(&prefix)
}

fn rule_matches(rule: &Value, user: &UserInfo, info: &RequestInfo) -> bool {
    let subjects = rule.get("subjects").and_then(Value::as_array);
    if !subjects
        .into_iter()
        .flatten()
        .any(|s| subject_matches(s, user))
    {
        return false;
    }
    if info.is_resource_request {
        let resource = if info.subresource.is_empty() {
            info.resource.clone()
        } else {
            format!("{}/{}", info.resource, info.subresource)
        };
        rule.get("resourceRules")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .any(|r| {
                has(r, "verbs", &info.verb)
                    && has(r, "apiGroups", &info.group)
                    && has(r, "resources", &resource)
                    && if info.namespace.is_empty() {
                        r.get("clusterScope").and_then(Value::as_bool) == Some(true)
                    } else {
                        has(r, "namespaces", &info.namespace)
                    }
            })
    } else {
        rule.get("nonResourceRules")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .any(|r| {
                has(r, "verbs", &info.verb)
                    && strings(r, "nonResourceURLs").any(|u| url_matches(u, &info.path))
            })
    }
}

/// Requests APF leaves alone (upstream's long-running check, watches aside).
fn bypasses(info: &RequestInfo) -> bool {
    info.verb == "proxy"
        || matches!(
            info.subresource.as_str(),
            "proxy" | "log" | "exec" | "attach" | "portforward"
        )
}

impl Apf {
    pub fn new() -> Arc<Apf> {
        Arc::new(Apf::default())
    }

    /// The UIDs of the FlowSchema and PriorityLevelConfiguration a request falls in.
    pub fn classify(&self, user: &UserInfo, info: &RequestInfo) -> Option<(String, String)> {
        if bypasses(info) {
            return None;
        }
        let c = self.config.read().ok()?;
        let fs = c.ordered.iter().find(|fs| {
            fs.pointer("/spec/rules")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .any(|r| rule_matches(r, user, info))
        })?;
        let pl = c.levels.get(level_of(fs))?;
        Some((uid(fs), uid(pl)))
    }

    /// `apiserver_flowcontrol_nominal_limit_seats` for a server limit of `server_limit`.
    pub fn render_metrics(&self, server_limit: usize, out: &mut String) {
        let Ok(c) = self.config.read() else { return };
        let shares = |pl: &Value| {
            let t = pl.pointer("/spec/type").and_then(Value::as_str);
            let path = if t == Some("Exempt") {
                "/spec/exempt/nominalConcurrencyShares"
            } else {
                "/spec/limited/nominalConcurrencyShares"
            };
            pl.pointer(path).and_then(Value::as_u64).unwrap_or(0)
        };
        let total: u64 = c.levels.values().map(shares).sum();
        out.push_str("# HELP apiserver_flowcontrol_nominal_limit_seats [BETA] Nominal number of execution seats configured for each priority level\n# TYPE apiserver_flowcontrol_nominal_limit_seats gauge\n");
        for (name, pl) in &c.levels {
            let seats = if total == 0 {
                0
            } else {
                (server_limit as u64 * shares(pl)).div_ceil(total)
            };
            out.push_str(&format!(
                "apiserver_flowcontrol_nominal_limit_seats{{priority_level=\"{name}\"}} {seats}\n"
            ));
        }
    }
}

fn target(resource: &str) -> Option<Target<'static>> {
    resources::lookup(fc::GROUP, "v1", resource).map(|i| Target::builtin(i, None))
}

fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Brings one bootstrap object in line (upstream's `EnsureConfiguration`).
async fn ensure_one(reg: &Registry, t: &Target<'_>, mandatory: bool, want: &Value) {
    let name = meta::name(want).unwrap_or("").to_string();
    let current = match reg.get(t, &name).await {
        Ok(c) => c,
        Err(_) => {
            if let Err(e) = reg.create(t, want.clone(), false).await {
                tracing::debug!(%name, error = ?e, "apf: creating a bootstrap object");
            }
            return;
        }
    };
    let annotation = current
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(AUTO_UPDATE_ANNOTATION))
        .and_then(Value::as_str)
        .and_then(parse_bool);
    let auto_update = mandatory
        || annotation.unwrap_or_else(|| {
            current
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                == Some(1)
        });
    let mut expected = want["spec"].clone();
    if name == fc::EXEMPT && t.info.resource == "prioritylevelconfigurations" {
        // Operators may tune the exempt level's shares.
        if let Some(e) = current.pointer("/spec/exempt") {
            expected["exempt"] = e.clone();
        }
    }
    let spec_changed = auto_update && !spec_equal(&expected, &current["spec"]);
    let annotation_changed = annotation != Some(auto_update);
    if !spec_changed && !annotation_changed {
        return;
    }
    let result = reg
        .update_with(t, &name, None, false, |cur| {
            let mut obj = cur.cloned().unwrap_or_else(|| want.clone());
            if spec_changed {
                obj["spec"] = expected.clone();
            }
            let annotations = obj["metadata"]
                .as_object_mut()
                .map(|m| m.entry("annotations").or_insert_with(|| json!({})));
            if let Some(a) = annotations.and_then(Value::as_object_mut) {
                a.insert(
                    AUTO_UPDATE_ANNOTATION.into(),
                    json!(auto_update.to_string()),
                );
            }
            Ok(obj)
        })
        .await;
    if let Err(e) = result {
        tracing::debug!(%name, error = ?e, "apf: updating a bootstrap object");
    }
}

/// One round of the config producer: suggested, then mandatory objects; then objects that
/// were auto-updated bootstrap objects but are no longer in the set go.
pub async fn ensure(reg: &Registry) {
    let (Some(levels), Some(schemas)) =
        (target("prioritylevelconfigurations"), target("flowschemas"))
    else {
        return;
    };
    let pls = fc::priority_levels();
    let fss = fc::flow_schemas();
    for mandatory in [false, true] {
        for (m, pl) in pls.iter().filter(|(m, _)| *m == mandatory) {
            ensure_one(reg, &levels, *m, pl).await;
        }
        for (m, fs) in fss.iter().filter(|(m, _)| *m == mandatory) {
            ensure_one(reg, &schemas, *m, fs).await;
        }
    }
    for (t, wanted) in [(&schemas, &fss), (&levels, &pls)] {
        let Ok((items, ..)) = reg.list(t, &Default::default()).await else {
            continue;
        };
        for obj in items {
            let name = meta::name(&obj).unwrap_or("");
            let ours = obj
                .pointer("/metadata/annotations")
                .and_then(|a| a.get(AUTO_UPDATE_ANNOTATION))
                .and_then(Value::as_str)
                .and_then(parse_bool)
                == Some(true);
            if ours && !wanted.iter().any(|(_, w)| meta::name(w) == Some(name)) {
                let _ = reg.delete(t, name, &Default::default(), false).await;
            }
        }
    }
}

/// The `Dangling` condition a FlowSchema should carry.
fn dangling(fs: &Value, exists: bool) -> Value {
    let pl = level_of(fs);
    let quoted = serde_json::to_string(pl).unwrap_or_default();
    let (status, reason, message) = if exists {
        (
            "False",
            "Found",
            format!("This FlowSchema references the PriorityLevelConfiguration object named {quoted} and it exists"),
        )
    } else {
        (
            "True",
            "NotFound",
            format!("This FlowSchema references the PriorityLevelConfiguration object named {quoted} but there is no such object"),
        )
    };
    json!({"type": "Dangling", "status": status, "reason": reason, "message": message})
}

/// Writes the `Dangling` condition wherever it is missing or out of date.
async fn update_conditions(apf: &Apf, reg: &Registry) {
    let Some(schemas) = target("flowschemas") else {
        return;
    };
    let stale: Vec<(String, Value)> = match apf.config.read() {
        Ok(c) => c
            .schemas
            .values()
            .filter_map(|fs| {
                let want = dangling(fs, c.levels.contains_key(level_of(fs)));
                let have = fs
                    .pointer("/status/conditions")
                    .and_then(Value::as_array)
                    .and_then(|cs| cs.iter().find(|c| c["type"] == "Dangling"));
                let same = have.is_some_and(|h| {
                    ["status", "reason", "message"]
                        .iter()
                        .all(|k| h.get(*k) == want.get(*k))
                });
                (!same).then(|| (meta::name(fs).unwrap_or("").to_string(), want))
            })
            .collect(),
        Err(_) => return,
    };
    for (name, mut want) in stale {
        want["lastTransitionTime"] = json!(ferrokube_api::time::now_rfc3339());
        let result = reg
            .update_with(&schemas, &name, Some("status"), false, |cur| {
                let mut obj = cur.cloned().unwrap_or(Value::Null);
                let status = obj
                    .as_object_mut()
                    .map(|m| m.entry("status").or_insert_with(|| json!({})));
                if let Some(s) = status.and_then(Value::as_object_mut) {
                    let conditions = s.entry("conditions").or_insert_with(|| json!([]));
                    if !conditions.is_array() {
                        *conditions = json!([]);
                    }
                    if let Some(list) = conditions.as_array_mut() {
                        list.retain(|c| c["type"] != "Dangling");
                        list.push(want.clone());
                    }
                }
                Ok(obj)
            })
            .await;
        if let Err(e) = result {
            tracing::debug!(%name, manager = CONSUMER_MANAGER, error = ?e, "apf: writing the Dangling condition");
        }
    }
}

/// Runs the producer (now and every minute) and the condition writer (on every change)
/// until `shutdown`.
pub async fn run(apf: Arc<Apf>, reg: Registry, mut shutdown: watch::Receiver<bool>) {
    tracing::debug!(
        manager = PRODUCER_MANAGER,
        "apf: configuration producer starting"
    );
    ensure(&reg).await;
    let mut produce = tokio::time::interval(Duration::from_secs(60));
    produce.tick().await;
    loop {
        update_conditions(&apf, &reg).await;
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = produce.tick() => ensure(&reg).await,
            _ = apf.changed.notified() => {
                // Let a burst of changes settle into one round.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(path: &str) -> RequestInfo {
        crate::request_info::parse(
            &http::Method::GET,
            path,
            &crate::request_info::Query::default(),
        )
    }

    fn loaded() -> Arc<Apf> {
        let apf = Apf::new();
        for (i, (_, pl)) in fc::priority_levels().into_iter().enumerate() {
            let mut pl = pl;
            pl["metadata"]["uid"] = json!(format!("pl-{i}"));
            crate::auth::feeds::Sink::upsert(&ApfSink(apf.clone(), true), &pl);
        }
        for (_, fs) in fc::flow_schemas() {
            let mut fs = fs;
            fs["metadata"]["uid"] = json!(format!("fs-{}", meta::name(&fs).unwrap_or("")));
            crate::auth::feeds::Sink::upsert(&ApfSink(apf.clone(), false), &fs);
        }
        apf
    }

    #[test]
    fn requests_fall_in_upstreams_schemas() {
        let apf = loaded();
        let user = |name: &str, groups: &[&str]| UserInfo {
            name: name.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            ..Default::default()
        };
        let fs = |u: &UserInfo, path: &str| apf.classify(u, &info(path)).map(|(f, _)| f);
        let admin = user("admin", &["system:masters", "system:authenticated"]);
        assert_eq!(
            fs(&admin, "/api/v1/namespaces/a/pods").as_deref(),
            Some("fs-exempt")
        );
        let anyone = user("bob", &["system:authenticated"]);
        assert_eq!(fs(&anyone, "/healthz").as_deref(), Some("fs-probes"));
        assert_eq!(
            fs(&anyone, "/version").as_deref(),
            Some("fs-global-default")
        );
        let node = user("system:node:n1", &["system:nodes", "system:authenticated"]);
        assert_eq!(
            fs(&node, "/api/v1/nodes/n1").as_deref(),
            Some("fs-system-node-high")
        );
        assert_eq!(
            fs(&node, "/api/v1/namespaces/a/pods").as_deref(),
            Some("fs-system-nodes")
        );
        let sa = user(
            "system:serviceaccount:kube-system:x",
            &["system:serviceaccounts", "system:authenticated"],
        );
        assert_eq!(
            fs(&sa, "/apis/apps/v1/namespaces/a/deployments").as_deref(),
            Some("fs-kube-system-service-accounts")
        );
        // Streams are not classified.
        assert_eq!(fs(&anyone, "/api/v1/namespaces/a/pods/p/exec"), None);
        let mut out = String::new();
        apf.render_metrics(600, &mut out);
        assert!(
            out.contains(
                "apiserver_flowcontrol_nominal_limit_seats{priority_level=\"global-default\"} 49"
            ),
            "{out}"
        );
        assert!(out.contains("{priority_level=\"exempt\"} 0"), "{out}");
    }

    #[test]
    fn non_resource_patterns() {
        assert!(url_matches("*", "/anything"));
        assert!(url_matches("/healthz", "/healthz"));
        assert!(url_matches("/healthz/*", "/healthz/etcd"));
        assert!(!url_matches("/healthz", "/healthz/etcd"));
        assert!(!url_matches("/apis/*", "/api/v1"));
    }
}
