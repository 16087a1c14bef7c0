//! Webhook configurations as the dispatcher uses them: each webhook of a
//! MutatingWebhookConfiguration or ValidatingWebhookConfiguration parsed once, when the
//! configuration is stored, with v1's defaults (failurePolicy Fail, matchPolicy
//! Equivalent, timeoutSeconds 10, reinvocationPolicy Never, empty selectors) and its TLS
//! client built from `clientConfig.caBundle` (the host's trust store when there is none).

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use ferrokube_component_base::net::join_host_port;
use serde_json::Value;
use tokio_rustls::TlsConnector;

/// Where a webhook is called.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `clientConfig.url`: `https://host[:port]/path?query`.
    Url {
        host: String,
        port: u16,
        path_and_query: String,
    },
    /// `clientConfig.service`: reached at the Service's cluster IP, checked as
    /// `<name>.<namespace>.svc`.
    Service {
        namespace: String,
        name: String,
        path: String,
        port: u16,
    },
}

impl Endpoint {
    /// The name the webhook's certificate must carry.
    pub fn server_name(&self) -> String {
        match self {
            Endpoint::Url { host, .. } => host.clone(),
            Endpoint::Service {
                namespace, name, ..
            } => format!("{name}.{namespace}.svc"),
        }
    }

    /// The path and query posted to, with the `timeout` parameter client-go adds.
    pub fn request_path(&self, timeout: Duration) -> String {
        let path = match self {
            Endpoint::Url { path_and_query, .. } => path_and_query,
            Endpoint::Service { path, .. } => path,
        };
        let sep = if path.contains('?') { '&' } else { '?' };
        format!("{path}{sep}timeout={}s", timeout.as_secs())
    }

    /// The URL as upstream's messages show it.
    pub fn display(&self, timeout: Duration) -> String {
        let authority = match self {
            Endpoint::Url { host, port, .. } => join_host_port(host, port),
            Endpoint::Service { port, .. } => format!("{}:{port}", self.server_name()),
        };
        format!("https://{authority}{}", self.request_path(timeout))
    }
}

/// One rule of `rules[]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rule {
    pub operations: Vec<String>,
    pub groups: Vec<String>,
    pub versions: Vec<String>,
    pub resources: Vec<String>,
    /// `*` (the default), `Cluster` or `Namespaced`.
    pub scope: String,
}

/// One webhook of a configuration.
pub struct Hook {
    /// The configuration it belongs to.
    pub configuration: String,
    pub name: String,
    pub mutating: bool,
    pub rules: Vec<Rule>,
    /// failurePolicy Ignore: a webhook that cannot be called is skipped.
    pub ignore_failures: bool,
    /// matchPolicy Exact: rules match only the version asked for.
    pub exact: bool,
    /// `None` when empty (matches everything).
    pub namespace_selector: Option<Value>,
    pub object_selector: Option<Value>,
    pub side_effects: String,
    pub timeout: Duration,
    /// reinvocationPolicy IfNeeded (mutating only).
    pub reinvoke: bool,
    /// `admission.k8s.io/v1` or `/v1beta1`, the first of admissionReviewVersions we speak.
    pub review_version: Option<&'static str>,
    pub endpoint: Result<Endpoint, String>,
    pub tls: Result<TlsConnector, String>,
    /// matchConditions: the webhook is called only when none is false.
    pub match_conditions: Vec<crate::admission::policy::compiled::Named>,
}

impl std::fmt::Debug for Hook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hook")
            .field("configuration", &self.configuration)
            .field("name", &self.name)
            .field("mutating", &self.mutating)
            .field("rules", &self.rules)
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

fn strings(v: &Value, key: &str) -> Vec<String> {
    ferrokube_api::meta::string_list(v.get(key))
}

fn str_or<'a>(v: &'a Value, key: &str, default: &'a str) -> &'a str {
    v.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .unwrap_or(default)
}

/// A label selector, or None when it is empty (matches everything).
pub(crate) fn selector(v: &Value, key: &str) -> Option<Value> {
    let s = v.get(key)?;
    let empty = |k: &str| {
        s.get(k).is_none_or(|x| {
            x.is_null()
                || x.as_object().is_some_and(|m| m.is_empty())
                || x.as_array().is_some_and(|a| a.is_empty())
        })
    };
    (!(empty("matchLabels") && empty("matchExpressions"))).then(|| s.clone())
}

/// Parses `clientConfig.url` (validation already required https and no fragment).
fn parse_url(url: &str) -> Result<Endpoint, String> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e| format!("invalid webhook URL {url:?}: {e}"))?;
    if uri.scheme_str() != Some("https") {
        return Err(format!("webhook URL {url:?} must use https"));
    }
    let host = uri
        .host()
        .ok_or_else(|| format!("webhook URL {url:?} has no host"))?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let path_and_query = uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "/".into());
    Ok(Endpoint::Url {
        host,
        port: uri.port_u16().unwrap_or(443),
        path_and_query,
    })
}

fn endpoint(client: &Value) -> Result<Endpoint, String> {
    if let Some(url) = client.get("url").and_then(Value::as_str) {
        return parse_url(url);
    }
    let svc = client
        .get("service")
        .filter(|s| s.is_object())
        .ok_or("webhook clientConfig has neither url nor service")?;
    let mut path = str_or(svc, "path", "/").to_string();
    if !path.starts_with('/') {
        path.insert(0, '/');
    }
    Ok(Endpoint::Service {
        namespace: str_or(svc, "namespace", "").into(),
        name: str_or(svc, "name", "").into(),
        path,
        port: svc
            .get("port")
            .and_then(Value::as_u64)
            .and_then(|p| u16::try_from(p).ok())
            .unwrap_or(443),
    })
}

/// The host's trust store, for webhooks without a caBundle.
pub(crate) fn system_roots() -> Result<rustls::RootCertStore, String> {
    const BUNDLES: &[&str] = &[
        "/etc/ssl/certs/ca-certificates.crt",
        "/etc/pki/tls/certs/ca-bundle.crt",
        "/etc/ssl/cert.pem",
    ];
    for path in BUNDLES {
        if let Ok(pem) = std::fs::read(path) {
            return ferrokube_component_base::tls::root_store(&pem)
                .map_err(|e| format!("{path}: {e}"));
        }
    }
    Err("no caBundle given and no system certificate bundle found".into())
}

fn tls(client: &Value) -> Result<TlsConnector, String> {
    let roots = match client
        .get("caBundle")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    {
        Some(b64) => {
            let pem = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|e| format!("caBundle is not base64: {e}"))?;
            ferrokube_component_base::tls::root_store(&pem).map_err(|e| format!("caBundle: {e}"))?
        }
        None => system_roots()?,
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsConnector::from(Arc::new(config)))
}

/// The rules under `key` (webhooks' `rules`, policies' `resourceRules`).
pub(crate) fn parse_rules(v: &Value, key: &str) -> Vec<Rule> {
    v.get(key)
        .and_then(Value::as_array)
        .map(|rs| {
            rs.iter()
                .map(|r| Rule {
                    operations: strings(r, "operations"),
                    groups: strings(r, "apiGroups"),
                    versions: strings(r, "apiVersions"),
                    resources: strings(r, "resources"),
                    scope: str_or(r, "scope", "*").into(),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The webhooks of a stored configuration, in order.
pub fn parse(config: &Value, mutating: bool) -> Vec<Hook> {
    let configuration = ferrokube_api::meta::name(config).unwrap_or("").to_string();
    let Some(hooks) = config.get("webhooks").and_then(Value::as_array) else {
        return Vec::new();
    };
    hooks
        .iter()
        .map(|h| {
            let client = h.get("clientConfig").cloned().unwrap_or(Value::Null);
            let versions = strings(h, "admissionReviewVersions");
            let review_version = versions.iter().find_map(|v| match v.as_str() {
                "v1" => Some("admission.k8s.io/v1"),
                "v1beta1" => Some("admission.k8s.io/v1beta1"),
                _ => None,
            });
            Hook {
                configuration: configuration.clone(),
                name: str_or(h, "name", "").into(),
                mutating,
                rules: parse_rules(h, "rules"),
                ignore_failures: str_or(h, "failurePolicy", "Fail") == "Ignore",
                exact: str_or(h, "matchPolicy", "Equivalent") == "Exact",
                namespace_selector: selector(h, "namespaceSelector"),
                object_selector: selector(h, "objectSelector"),
                side_effects: str_or(h, "sideEffects", "").into(),
                timeout: Duration::from_secs(
                    h.get("timeoutSeconds")
                        .and_then(Value::as_u64)
                        .unwrap_or(10)
                        .clamp(1, 30),
                ),
                reinvoke: mutating && str_or(h, "reinvocationPolicy", "Never") == "IfNeeded",
                review_version,
                endpoint: endpoint(&client),
                tls: tls(&client),
                match_conditions: crate::admission::policy::compiled::named(
                    h,
                    "matchConditions",
                    "name",
                    "expression",
                    &ferrokube_api::kinds::match_condition_env(),
                ),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn urls_and_services_resolve_to_endpoints() {
        assert_eq!(
            parse_url("https://127.0.0.1:8443/validate?x=1"),
            Ok(Endpoint::Url {
                host: "127.0.0.1".into(),
                port: 8443,
                path_and_query: "/validate?x=1".into()
            })
        );
        assert_eq!(
            parse_url("https://[::1]/"),
            Ok(Endpoint::Url {
                host: "::1".into(),
                port: 443,
                path_and_query: "/".into()
            })
        );
        assert!(parse_url("http://x/").is_err());
        let svc = endpoint(&json!({"service": {"namespace": "ns", "name": "hook", "path": "/m"}}));
        assert_eq!(
            svc,
            Ok(Endpoint::Service {
                namespace: "ns".into(),
                name: "hook".into(),
                path: "/m".into(),
                port: 443
            })
        );
        let svc = svc.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(svc.server_name(), "hook.ns.svc");
        assert_eq!(
            svc.display(Duration::from_secs(10)),
            "https://hook.ns.svc:443/m?timeout=10s"
        );
    }

    #[test]
    fn defaults_are_v1s() {
        let cfg = json!({"metadata": {"name": "c"}, "webhooks": [{
            "name": "a.example.com",
            "clientConfig": {"url": "https://127.0.0.1:1/", "caBundle": "bm90IGEgY2VydA=="},
            "admissionReviewVersions": ["v2", "v1"],
            "sideEffects": "None",
            "namespaceSelector": {},
            "objectSelector": {"matchLabels": {"a": "b"}},
            "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}]
        }]});
        let hooks = parse(&cfg, true);
        assert_eq!(hooks.len(), 1);
        let h = &hooks[0];
        assert_eq!(h.configuration, "c");
        assert!(!h.ignore_failures && !h.exact && !h.reinvoke);
        assert_eq!(h.timeout, Duration::from_secs(10));
        assert_eq!(h.review_version, Some("admission.k8s.io/v1"));
        assert!(h.namespace_selector.is_none());
        assert!(h.object_selector.is_some());
        assert_eq!(h.rules[0].scope, "*");
        assert!(h.tls.as_ref().is_err_and(|e| e.contains("caBundle")));
    }
}
