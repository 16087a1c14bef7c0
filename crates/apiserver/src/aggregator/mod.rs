//! The API aggregation layer (upstream's kube-aggregator, built into kube-apiserver):
//! APIServices backed by a Service (`spec.service`) are served by another API server —
//! metrics-server's `metrics.k8s.io` is the seeds' example. Requests under
//! `/apis/<group>/<version>` of such an APIService are proxied there
//! ([`proxy`]) with the caller's identity in request headers and this server's
//! `--proxy-client-cert-file` as the TLS client certificate; the availability
//! controller ([`availability`]) keeps each APIService's `Available` condition and its
//! discovery document, which `/apis` and aggregated discovery merge in; and
//! [`local`] registers an APIService for every built-in group-version, as upstream.

pub mod availability;
pub mod local;
pub mod proxy;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use base64::Engine;
use ferrokube_component_base::tls::CertKey;
use parking_lot::RwLock;
use serde_json::Value;
use tokio::sync::Notify;
use tokio_rustls::TlsConnector;

/// `--proxy-client-*` and `--enable-aggregator-routing`.
#[derive(Debug, Clone, Default)]
pub struct AggregatorConfig {
    pub proxy_client_cert_file: Option<PathBuf>,
    pub proxy_client_key_file: Option<PathBuf>,
    /// Dial a ready endpoint of the Service instead of its cluster IP.
    pub enable_aggregator_routing: bool,
}

/// An APIService served by another API server.
pub struct Remote {
    pub name: String,
    pub group: String,
    pub version: String,
    pub namespace: String,
    pub service: String,
    pub port: u16,
    pub group_priority: i64,
    pub version_priority: i64,
    /// The stored `Available` condition is True.
    pub available: bool,
    /// The TLS client (caBundle or insecureSkipTLSVerify, the proxy identity), or why
    /// it could not be built.
    pub tls: Result<TlsConnector, String>,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote")
            .field("name", &self.name)
            .field(
                "service",
                &format!("{}/{}:{}", self.namespace, self.service, self.port),
            )
            .field("available", &self.available)
            .finish_non_exhaustive()
    }
}

impl Remote {
    /// The name the backend's certificate must carry.
    pub fn server_name(&self) -> String {
        format!("{}.{}.svc", self.service, self.namespace)
    }

    /// The discovery path the availability check reads.
    pub fn discovery_path(&self) -> String {
        if self.group.is_empty() {
            format!("/api/{}", self.version)
        } else {
            format!("/apis/{}/{}", self.group, self.version)
        }
    }
}

/// A remote group-version's discovery document as last fetched.
#[derive(Debug, Clone)]
pub struct Discovered {
    /// The `APIResourceList`.
    pub resources: Value,
    /// Whether the last check could read it.
    pub fresh: bool,
}

/// One remote group's versions for discovery, highest priority first.
#[derive(Debug, Clone)]
pub struct RemoteGroup {
    pub name: String,
    pub versions: Vec<(String, Option<Discovered>)>,
}

/// The aggregator's state: the remote APIServices and their discovery documents.
pub struct Aggregator {
    remotes: RwLock<BTreeMap<String, Arc<Remote>>>,
    discovered: RwLock<BTreeMap<String, Discovered>>,
    identity: Option<Arc<CertKey>>,
    /// The availability check's client (no certificate check, the proxy identity),
    /// built once.
    check_tls: Result<TlsConnector, String>,
    pub routing: bool,
    /// Wakes the availability controller when an APIService changes.
    pub changed: Notify,
}

impl std::fmt::Debug for Aggregator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Aggregator")
            .field("remotes", &self.remotes.read().keys().collect::<Vec<_>>())
            .field("routing", &self.routing)
            .finish_non_exhaustive()
    }
}

impl Aggregator {
    /// Loads the proxy client identity; errors name the flags.
    pub fn new(config: &AggregatorConfig) -> Result<Aggregator, String> {
        let identity = match (
            &config.proxy_client_cert_file,
            &config.proxy_client_key_file,
        ) {
            (Some(cert), Some(key)) => Some(Arc::new(
                ferrokube_component_base::tls::load_named_pair(
                    "--proxy-client-cert-file",
                    cert,
                    "--proxy-client-key-file",
                    key,
                )
                .map_err(|e| e.to_string())?,
            )),
            (None, None) => None,
            _ => {
                return Err(
                    "--proxy-client-cert-file and --proxy-client-key-file go together".into(),
                )
            }
        };
        let mut agg = Aggregator {
            remotes: RwLock::new(BTreeMap::new()),
            discovered: RwLock::new(BTreeMap::new()),
            identity,
            check_tls: Err(String::new()),
            routing: config.enable_aggregator_routing,
            changed: Notify::new(),
        };
        agg.check_tls = agg.tls(&serde_json::json!({"insecureSkipTLSVerify": true}));
        Ok(agg)
    }

    /// The remote APIService serving `path` (`/apis/<group>/<version>[/…]`), if any.
    pub fn route(&self, path: &str) -> Option<Arc<Remote>> {
        let mut parts = path.trim_start_matches('/').split('/');
        if parts.next() != Some("apis") {
            return None;
        }
        let (group, version) = (parts.next()?, parts.next()?);
        let key = format!("{version}.{group}");
        self.remotes.read().get(&key).cloned()
    }

    /// Every remote APIService.
    pub fn remotes(&self) -> Vec<Arc<Remote>> {
        self.remotes.read().values().cloned().collect()
    }

    /// Keeps what the availability check read from `name`.
    pub fn set_discovered(&self, name: &str, resources: Option<Value>) {
        let mut d = self.discovered.write();
        match resources {
            Some(resources) => {
                d.insert(
                    name.to_string(),
                    Discovered {
                        resources,
                        fresh: true,
                    },
                );
            }
            None => {
                if let Some(old) = d.get_mut(name) {
                    old.fresh = false;
                }
            }
        }
    }

    /// The remote groups for discovery, ordered as upstream's `SortedByGroupAndVersion`:
    /// groups by `groupPriorityMinimum` (highest first) then name, versions by
    /// `versionPriority` then Kubernetes version order.
    pub fn groups(&self) -> Vec<RemoteGroup> {
        let remotes = self.remotes();
        let discovered = self.discovered.read();
        let mut by_group: BTreeMap<&str, Vec<&Arc<Remote>>> = BTreeMap::new();
        for r in &remotes {
            by_group.entry(r.group.as_str()).or_default().push(r);
        }
        let mut groups: Vec<(i64, RemoteGroup)> = by_group
            .into_iter()
            .filter(|(g, _)| !g.is_empty())
            .map(|(g, mut rs)| {
                rs.sort_by(|a, b| {
                    b.version_priority.cmp(&a.version_priority).then_with(|| {
                        crate::crd::version_priority(&b.version)
                            .cmp(&crate::crd::version_priority(&a.version))
                    })
                });
                let priority = rs.iter().map(|r| r.group_priority).max().unwrap_or(0);
                let versions = rs
                    .iter()
                    .map(|r| (r.version.clone(), discovered.get(&r.name).cloned()))
                    .collect();
                (
                    priority,
                    RemoteGroup {
                        name: g.to_string(),
                        versions,
                    },
                )
            })
            .collect();
        groups.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.name.cmp(&b.1.name)));
        groups.into_iter().map(|(_, g)| g).collect()
    }

    /// Records an APIService (a local one forgets any remote of that name).
    pub fn upsert(&self, obj: &Value) {
        let name = ferrokube_api::meta::name(obj).unwrap_or("").to_string();
        match self.parse(obj) {
            Some(remote) => {
                self.remotes.write().insert(name, Arc::new(remote));
            }
            None => {
                self.remotes.write().remove(&name);
                self.discovered.write().remove(&name);
            }
        }
        self.changed.notify_one();
    }

    pub fn remove(&self, name: &str) {
        self.remotes.write().remove(name);
        self.discovered.write().remove(name);
        self.changed.notify_one();
    }

    fn parse(&self, obj: &Value) -> Option<Remote> {
        let spec = obj.get("spec")?;
        let service = spec.get("service").filter(|s| !s.is_null())?;
        let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let int = |v: &Value, k: &str| v.get(k).and_then(Value::as_i64).unwrap_or(0);
        let available = obj
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .is_some_and(|cs| {
                cs.iter()
                    .any(|c| c["type"] == "Available" && c["status"] == "True")
            });
        Some(Remote {
            name: ferrokube_api::meta::name(obj).unwrap_or("").to_string(),
            group: s(spec, "group"),
            version: s(spec, "version"),
            namespace: s(service, "namespace"),
            service: s(service, "name"),
            port: u16::try_from(service.get("port").and_then(Value::as_u64).unwrap_or(443))
                .unwrap_or(443),
            group_priority: int(spec, "groupPriorityMinimum"),
            version_priority: int(spec, "versionPriority"),
            available,
            tls: self.tls(spec),
        })
    }

    /// The TLS client for an APIService: its caBundle (else the host's trust store), or
    /// no verification with `insecureSkipTLSVerify`; the proxy identity as client
    /// certificate.
    fn tls(&self, spec: &Value) -> Result<TlsConnector, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?;
        let insecure = spec.get("insecureSkipTLSVerify") == Some(&Value::Bool(true));
        let ca = spec.get("caBundle").and_then(Value::as_str).unwrap_or("");
        let builder = if insecure {
            builder.dangerous().with_custom_certificate_verifier(
                ferrokube_component_base::tls::AnyServerCert::new(provider),
            )
        } else if ca.is_empty() {
            builder.with_root_certificates(crate::admission::webhook::config::system_roots()?)
        } else {
            let pem = base64::engine::general_purpose::STANDARD
                .decode(ca)
                .map_err(|e| format!("caBundle: {e}"))?;
            builder.with_root_certificates(
                ferrokube_component_base::tls::root_store(&pem)
                    .map_err(|e| format!("caBundle: {e}"))?,
            )
        };
        let mut config = match &self.identity {
            Some(id) => builder
                .with_client_auth_cert(id.chain.clone(), id.key.clone_key())
                .map_err(|e| format!("--proxy-client-cert-file: {e}"))?,
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TlsConnector::from(Arc::new(config)))
    }

    /// A TLS client that checks nothing, with the proxy identity: what upstream's
    /// availability check uses ("a best effort GET").
    pub fn insecure_tls(&self) -> Result<&TlsConnector, String> {
        self.check_tls.as_ref().map_err(Clone::clone)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn service(name: &str, group: &str, version: &str, gp: i64, vp: i64) -> Value {
        json!({"metadata": {"name": name}, "spec": {"group": group, "version": version,
            "groupPriorityMinimum": gp, "versionPriority": vp, "insecureSkipTLSVerify": true,
            "service": {"namespace": "kube-system", "name": "metrics-server", "port": 443}},
            "status": {"conditions": [{"type": "Available", "status": "True"}]}})
    }

    #[test]
    fn routes_and_orders_remote_groups() {
        let agg = Aggregator::new(&AggregatorConfig::default()).unwrap();
        agg.upsert(&service(
            "v1beta1.metrics.k8s.io",
            "metrics.k8s.io",
            "v1beta1",
            100,
            100,
        ));
        agg.upsert(&service("v1alpha1.a.io", "a.io", "v1alpha1", 1000, 10));
        agg.upsert(&service("v1.a.io", "a.io", "v1", 1000, 20));
        agg.upsert(
            &json!({"metadata": {"name": "v1.apps"}, "spec": {"group": "apps",
            "version": "v1", "groupPriorityMinimum": 17800, "versionPriority": 15}}),
        );
        let r = agg.route("/apis/metrics.k8s.io/v1beta1/nodes/n1").unwrap();
        assert!(r.available && r.tls.is_ok());
        assert_eq!(r.server_name(), "metrics-server.kube-system.svc");
        assert!(agg.route("/apis/metrics.k8s.io/v1").is_none());
        assert!(agg.route("/apis/apps/v1/deployments").is_none());
        assert!(agg.route("/api/v1/pods").is_none());
        let groups = agg.groups();
        let names: Vec<&str> = groups.iter().map(|g| g.name.as_str()).collect();
        assert_eq!(names, ["a.io", "metrics.k8s.io"]);
        let versions: Vec<&str> = groups[0].versions.iter().map(|v| v.0.as_str()).collect();
        assert_eq!(versions, ["v1", "v1alpha1"]);
        agg.set_discovered("v1.a.io", Some(json!({"resources": []})));
        agg.set_discovered("v1.a.io", None);
        let groups = agg.groups();
        assert!(groups[0].versions[0].1.as_ref().is_some_and(|d| !d.fresh));
        agg.remove("v1beta1.metrics.k8s.io");
        assert!(agg.route("/apis/metrics.k8s.io/v1beta1").is_none());
    }

    #[test]
    fn half_a_proxy_identity_is_refused() {
        let config = AggregatorConfig {
            proxy_client_cert_file: Some("/x.pem".into()),
            ..Default::default()
        };
        let err = Aggregator::new(&config).unwrap_err();
        assert!(err.contains("--proxy-client-key-file"), "{err}");
    }
}
