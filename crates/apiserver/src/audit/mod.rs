//! Auditing (upstream's `WithAudit` filter and log backend): each request is checked
//! against the policy ([`policy`]); unless its level is None, audit.k8s.io/v1 Events are
//! written for its stages (RequestReceived, then ResponseComplete, or ResponseStarted for
//! watches) with who, what, the response code, and at the Request/RequestResponse levels
//! the request and response bodies ([`log`]).

pub mod annotations;
pub mod log;
pub mod policy;

use std::net::SocketAddr;

use ferrokube_authz::UserInfo;
use serde_json::{json, Value};

use crate::request_info::RequestInfo;
use policy::{Level, Policy, RequestAttributes};

/// `--audit-*` flags.
#[derive(Debug, Clone, Default)]
pub struct AuditConfig {
    pub policy_file: Option<std::path::PathBuf>,
    pub log_path: Option<std::path::PathBuf>,
    pub max_age_days: u64,
    pub max_backups: usize,
    pub max_size_mb: u64,
    pub truncate_enabled: bool,
    /// `--audit-log-truncate-max-event-size` (upstream's default 100 KiB).
    pub truncate_max_event_size: usize,
}

/// Why auditing cannot start.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error(transparent)]
    Policy(#[from] policy::PolicyError),
    #[error("--audit-log-path {path}: {source}")]
    Log {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

#[derive(Debug)]
pub struct Auditor {
    policy: Policy,
    log: log::AuditLog,
    truncate_max: Option<usize>,
}

/// One request being audited.
#[derive(Debug)]
pub struct Record {
    event: Value,
    level: Level,
    omit: Vec<String>,
    omit_managed_fields: bool,
}

fn strip_managed_fields(v: &mut Value) {
    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("managedFields");
    }
    if let Some(items) = v.get_mut("items").and_then(Value::as_array_mut) {
        for i in items {
            strip_managed_fields(i);
        }
    }
}

fn now_micro() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let base = ferrokube_api::time::format_rfc3339(now.as_secs() as i64);
    format!("{}.{:06}Z", base.trim_end_matches('Z'), now.subsec_micros())
}

fn user_json(u: &UserInfo) -> Value {
    let mut v = json!({"username": u.name});
    if !u.uid.is_empty() {
        v["uid"] = json!(u.uid);
    }
    if !u.groups.is_empty() {
        v["groups"] = json!(u.groups);
    }
    if !u.extra.is_empty() {
        v["extra"] = json!(u.extra);
    }
    v
}

impl Auditor {
    /// Loads the policy and opens the log (both named in errors); None when either flag
    /// is missing (upstream audits only with both).
    pub fn new(cfg: &AuditConfig) -> Result<Option<Auditor>, AuditError> {
        let (Some(policy_file), Some(path)) = (&cfg.policy_file, &cfg.log_path) else {
            return Ok(None);
        };
        let policy = Policy::load(policy_file)?;
        let log = log::AuditLog::start(log::LogConfig {
            path: path.clone(),
            max_size_mb: cfg.max_size_mb,
            max_backups: cfg.max_backups,
            max_age_days: cfg.max_age_days,
        })
        .map_err(|source| AuditError::Log {
            path: path.display().to_string(),
            source,
        })?;
        Ok(Some(Auditor {
            policy,
            log,
            truncate_max: cfg
                .truncate_enabled
                .then_some(if cfg.truncate_max_event_size == 0 {
                    102_400
                } else {
                    cfg.truncate_max_event_size
                }),
        }))
    }

    /// Starts auditing a request (None: its level is None). Writes RequestReceived.
    #[allow(clippy::too_many_arguments)]
    pub fn begin(
        &self,
        info: &RequestInfo,
        request_uri: &str,
        user: &UserInfo,
        impersonated: Option<&UserInfo>,
        user_agent: Option<&str>,
        peer: Option<SocketAddr>,
        audit_id: &str,
    ) -> Option<Record> {
        let effective = impersonated.unwrap_or(user);
        let resource_request = info.is_resource_request && !info.resource.is_empty();
        let attrs = RequestAttributes {
            user: &effective.name,
            groups: &effective.groups,
            verb: &info.verb,
            resource_request,
            group: &info.group,
            resource: &info.resource,
            subresource: &info.subresource,
            namespace: &info.namespace,
            name: &info.name,
            path: &info.path,
        };
        let (level, omit, omit_managed_fields) = self.policy.decide(&attrs);
        if level == Level::None {
            return None;
        }
        let now = now_micro();
        let mut event = json!({
            "kind": "Event",
            "apiVersion": "audit.k8s.io/v1",
            "level": level.as_str(),
            "auditID": audit_id,
            "stage": "RequestReceived",
            "requestURI": request_uri,
            "verb": info.verb,
            "user": user_json(user),
            "sourceIPs": peer.map(|p| vec![p.ip().to_string()]).unwrap_or_default(),
            "requestReceivedTimestamp": now,
            "stageTimestamp": now,
        });
        if let Some(i) = impersonated {
            event["impersonatedUser"] = user_json(i);
        }
        if let Some(ua) = user_agent {
            event["userAgent"] = json!(ua);
        }
        if resource_request {
            let mut obj = json!({"resource": info.resource, "apiVersion": info.version});
            for (k, v) in [
                ("namespace", &info.namespace),
                ("name", &info.name),
                ("apiGroup", &info.group),
                ("subresource", &info.subresource),
            ] {
                if !v.is_empty() {
                    obj[k] = json!(v);
                }
            }
            event["objectRef"] = obj;
        }
        let record = Record {
            event,
            level,
            omit,
            omit_managed_fields,
        };
        self.emit(&record, "RequestReceived");
        Some(record)
    }

    fn emit(&self, record: &Record, stage: &str) {
        if record.omit.iter().any(|s| s == stage) {
            return;
        }
        let mut event = record.event.clone();
        event["stage"] = json!(stage);
        event["stageTimestamp"] = json!(now_micro());
        let mut line = serde_json::to_vec(&event).unwrap_or_default();
        if let Some(max) = self.truncate_max {
            if line.len() > max {
                if let Some(m) = event.as_object_mut() {
                    m.remove("requestObject");
                    m.remove("responseObject");
                    let ann = m.entry("annotations").or_insert_with(|| json!({}));
                    ann["audit.k8s.io/truncated"] = json!("true");
                }
                line = serde_json::to_vec(&event).unwrap_or_default();
                if line.len() > max {
                    return;
                }
            }
        }
        self.log.write(line);
    }

    /// Finishes a request: ResponseStarted for watches (long-running), ResponseComplete
    /// otherwise, with the response status and, by level, the bodies.
    pub fn finish(
        &self,
        mut record: Record,
        code: u16,
        request_body: Option<&[u8]>,
        response_body: Option<&[u8]>,
        long_running: bool,
        annotations: &[(String, String)],
    ) {
        let mut status = json!({"metadata": {}, "code": code});
        if code >= 400 {
            if let Some(body) = response_body.and_then(|b| serde_json::from_slice::<Value>(b).ok())
            {
                for k in ["status", "message", "reason"] {
                    if let Some(v) = body.get(k) {
                        status[k] = v.clone();
                    }
                }
            }
        }
        record.event["responseStatus"] = status;
        if !annotations.is_empty() {
            let all = record
                .event
                .as_object_mut()
                .map(|m| m.entry("annotations").or_insert_with(|| json!({})));
            if let Some(Value::Object(all)) = all {
                for (k, v) in annotations {
                    all.entry(k.clone()).or_insert_with(|| json!(v));
                }
            }
        }
        if record.level >= Level::Request {
            if let Some(mut v) = request_body.and_then(|b| serde_json::from_slice::<Value>(b).ok())
            {
                if record.omit_managed_fields {
                    strip_managed_fields(&mut v);
                }
                record.event["requestObject"] = v;
            }
        }
        if record.level >= Level::RequestResponse && !long_running {
            if let Some(mut v) = response_body.and_then(|b| serde_json::from_slice::<Value>(b).ok())
            {
                if record.omit_managed_fields {
                    strip_managed_fields(&mut v);
                }
                record.event["responseObject"] = v;
            }
        }
        let stage = if long_running {
            "ResponseStarted"
        } else {
            "ResponseComplete"
        };
        self.emit(&record, stage);
    }
}
