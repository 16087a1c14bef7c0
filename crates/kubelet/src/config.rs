//! `KubeletConfiguration` (kubelet.config.k8s.io/v1beta1) as the seeds write it: the
//! file given by `--config`, decoded as upstream's `kubeletconfig/codec` does (unknown
//! fields are warned about, wrong types and invalid values are errors naming the
//! field), with upstream's defaults (`SetDefaults_KubeletConfiguration`) and
//! validation (`ValidateKubeletConfiguration`) for the fields ferrokube acts on.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use ferrokube_component_base::config_file;
pub use ferrokube_component_base::config_file::ConfigError;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Anonymous {
    pub enabled: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Webhook {
    pub enabled: Option<bool>,
    pub cache_ttl: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct X509 {
    #[serde(rename = "clientCAFile")]
    pub client_ca_file: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Authentication {
    #[serde(default)]
    pub anonymous: Anonymous,
    #[serde(default)]
    pub webhook: Webhook,
    #[serde(default)]
    pub x509: X509,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Authorization {
    pub mode: Option<String>,
}

/// The decoded file: every field optional, as in the versioned type.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Raw {
    address: Option<String>,
    port: Option<i32>,
    read_only_port: Option<i32>,
    tls_cert_file: Option<String>,
    tls_private_key_file: Option<String>,
    rotate_certificates: Option<bool>,
    #[serde(rename = "serverTLSBootstrap")]
    server_tls_bootstrap: Option<bool>,
    #[serde(default)]
    authentication: Authentication,
    #[serde(default)]
    authorization: Authorization,
    healthz_port: Option<i32>,
    healthz_bind_address: Option<String>,
    cluster_domain: Option<String>,
    #[serde(rename = "clusterDNS")]
    cluster_dns: Option<Vec<String>>,
    node_status_update_frequency: Option<String>,
    node_status_report_frequency: Option<String>,
    node_lease_duration_seconds: Option<i32>,
    sync_frequency: Option<String>,
    file_check_frequency: Option<String>,
    max_pods: Option<i32>,
    pod_pids_limit: Option<i64>,
    eviction_hard: Option<BTreeMap<String, String>>,
    eviction_soft: Option<BTreeMap<String, String>>,
    eviction_soft_grace_period: Option<BTreeMap<String, String>>,
    eviction_max_pod_grace_period: Option<i32>,
    cgroup_driver: Option<String>,
    cgroups_per_qos: Option<bool>,
    // Type-checked for compatibility, not acted on.
    #[allow(dead_code)]
    cgroup_root: Option<String>,
    static_pod_path: Option<String>,
    container_log_max_size: Option<String>,
    container_log_max_files: Option<i32>,
    container_log_monitor_interval: Option<String>,
    fail_swap_on: Option<bool>,
    serialize_image_pulls: Option<bool>,
    #[serde(rename = "kubeAPIQPS")]
    kube_api_qps: Option<f32>,
    #[serde(rename = "kubeAPIBurst")]
    kube_api_burst: Option<i32>,
    resolv_conf: Option<String>,
    // Type-checked for compatibility, not acted on (the node's podCIDR comes from the
    // API, as upstream's kubelet uses it in a cluster).
    #[allow(dead_code)]
    #[serde(rename = "podCIDR")]
    pod_cidr: Option<String>,
    runtime_request_timeout: Option<String>,
    // Type-checked for compatibility, not acted on.
    #[allow(dead_code)]
    hairpin_mode: Option<String>,
    register_node: Option<bool>,
    register_with_taints: Option<Vec<k8s_openapi::api::core::v1::Taint>>,
    container_runtime_endpoint: Option<String>,
    #[serde(rename = "imageGCHighThresholdPercent")]
    image_gc_high_threshold_percent: Option<i32>,
    #[serde(rename = "imageGCLowThresholdPercent")]
    image_gc_low_threshold_percent: Option<i32>,
    #[serde(rename = "imageMinimumGCAge")]
    image_minimum_gc_age: Option<String>,
    #[serde(rename = "imageMaximumGCAge")]
    image_maximum_gc_age: Option<String>,
    // Type-checked for compatibility, not acted on.
    #[allow(dead_code)]
    enforce_node_allocatable: Option<Vec<String>>,
    system_reserved: Option<BTreeMap<String, String>>,
    kube_reserved: Option<BTreeMap<String, String>>,
    provider_id: Option<String>,
}

/// The fields the decoder knows (the rest of upstream's type is accepted and ignored
/// without a warning; anything else is warned about, as upstream's lenient decode).
const OTHER_UPSTREAM_FIELDS: &[&str] = &[
    "apiVersion",
    "kind",
    "staticPodURL",
    "staticPodURLHeader",
    "httpCheckFrequency",
    "registryPullQPS",
    "registryBurst",
    "eventRecordQPS",
    "eventBurst",
    "enableDebuggingHandlers",
    "enableContentionProfiling",
    "enableProfilingHandler",
    "enableDebugFlagsHandler",
    "volumeStatsAggPeriod",
    "kubeletCgroups",
    "systemCgroups",
    "maxOpenFiles",
    "evictionPressureTransitionPeriod",
    "evictionMinimumReclaim",
    "enableControllerAttachDetach",
    "systemReservedCgroup",
    "kubeReservedCgroup",
    "featureGates",
    "tlsCipherSuites",
    "tlsMinVersion",
    "logging",
    "shutdownGracePeriod",
    "shutdownGracePeriodCriticalPods",
    "cpuManagerPolicy",
    "memoryManagerPolicy",
    "topologyManagerPolicy",
    "containerLogMaxWorkers",
    "kubeAPIContentType",
    "makeIPTablesUtilChains",
    "iptablesMasqueradeBit",
    "iptablesDropBit",
    "allowedUnsafeSysctls",
    "volumePluginDir",
    "maxParallelImagePulls",
    "seccompDefault",
    "memorySwap",
    "protectKernelDefaults",
    "localStorageCapacityIsolation",
    "podsPerCore",
    "cpuCFSQuota",
    "cpuCFSQuotaPeriod",
    "reservedSystemCPUs",
    "runOnce",
];

/// The effective configuration, defaults applied and validated.
#[derive(Debug, Clone)]
pub struct KubeletConfig {
    pub address: String,
    pub port: u16,
    pub read_only_port: u16,
    pub tls_cert_file: Option<PathBuf>,
    pub tls_private_key_file: Option<PathBuf>,
    pub rotate_certificates: bool,
    pub server_tls_bootstrap: bool,
    pub anonymous_auth: bool,
    pub webhook_authn: bool,
    pub client_ca_file: Option<PathBuf>,
    /// `Webhook` or `AlwaysAllow`.
    pub authorization_mode: String,
    pub healthz_port: u16,
    pub healthz_bind_address: String,
    pub cluster_domain: String,
    pub cluster_dns: Vec<String>,
    pub node_status_update_frequency: Duration,
    pub node_status_report_frequency: Duration,
    pub node_lease_duration_seconds: i32,
    pub sync_frequency: Duration,
    pub file_check_frequency: Duration,
    pub max_pods: i64,
    /// -1 = unlimited.
    pub pod_pids_limit: i64,
    /// Signal (`memory.available`, `nodefs.available`, …) → threshold (`100Mi`, `10%`).
    pub eviction_hard: BTreeMap<String, String>,
    /// Signal → threshold, acted on once met for the signal's grace period.
    pub eviction_soft: BTreeMap<String, String>,
    pub eviction_soft_grace_period: BTreeMap<String, Duration>,
    /// The most grace a pod evicted for a soft threshold gets (seconds; 0 = none).
    pub eviction_max_pod_grace_period: i64,
    /// `cgroupfs` or `systemd`.
    pub cgroup_driver: String,
    pub cgroups_per_qos: bool,
    pub static_pod_path: Option<PathBuf>,
    pub container_log_max_size: i64,
    pub container_log_max_files: i32,
    /// How often container logs are checked for rotation (≥ 3 s).
    pub container_log_monitor_interval: Duration,
    pub fail_swap_on: bool,
    pub serialize_image_pulls: bool,
    pub kube_api_qps: f32,
    pub kube_api_burst: i32,
    pub resolv_conf: String,
    pub runtime_request_timeout: Duration,
    pub register_node: bool,
    pub register_with_taints: Vec<k8s_openapi::api::core::v1::Taint>,
    pub container_runtime_endpoint: Option<String>,
    pub system_reserved: BTreeMap<String, String>,
    pub kube_reserved: BTreeMap<String, String>,
    pub provider_id: Option<String>,
    /// Image GC starts when the image filesystem is this full (%); 100 turns it off.
    pub image_gc_high_threshold_percent: i32,
    /// … and frees unused images until it is down to this.
    pub image_gc_low_threshold_percent: i32,
    /// Images are not collected before they have been known this long.
    pub image_minimum_gc_age: Duration,
    /// Images unused this long are removed whatever the disk usage (0: never).
    pub image_maximum_gc_age: Duration,
}

/// Upstream's default `evictionHard` (Linux).
fn default_eviction_hard() -> BTreeMap<String, String> {
    [
        ("memory.available", "100Mi"),
        ("nodefs.available", "10%"),
        ("nodefs.inodesFree", "5%"),
        ("imagefs.available", "15%"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn duration(
    field: &str,
    v: Option<String>,
    default: Duration,
) -> Result<Duration, (String, String)> {
    match v {
        None => Ok(default),
        Some(s) => ferrokube_client::leaderelection::parse_duration(s.trim())
            .map_err(|e| (field.to_string(), format!("invalid duration {s:?}: {e}"))),
    }
}

fn port(field: &str, v: Option<i32>, default: u16) -> Result<u16, (String, String)> {
    let v = v.unwrap_or(i32::from(default));
    u16::try_from(v).map_err(|_| {
        (
            field.to_string(),
            format!("{v} must be between 0 and 65535, inclusive"),
        )
    })
}

/// Parses `containerLogMaxSize` (`10Mi`).
fn log_size(v: Option<String>) -> Result<i64, (String, String)> {
    let s = v.unwrap_or_else(|| "10Mi".into());
    match ferrokube_api::quantity::value(&s) {
        Some(n) if n > 0 => Ok(n),
        _ => Err((
            "containerLogMaxSize".into(),
            format!("{s:?} is not a positive quantity"),
        )),
    }
}

fn build(r: Raw) -> Result<KubeletConfig, (String, String)> {
    let cgroup_driver = r.cgroup_driver.unwrap_or_else(|| "cgroupfs".into());
    if !matches!(cgroup_driver.as_str(), "cgroupfs" | "systemd") {
        return Err((
            "cgroupDriver".into(),
            format!("{cgroup_driver:?}: must be \"cgroupfs\" or \"systemd\""),
        ));
    }
    let authorization_mode = r.authorization.mode.unwrap_or_else(|| "Webhook".into());
    if !matches!(authorization_mode.as_str(), "Webhook" | "AlwaysAllow") {
        return Err((
            "authorization.mode".into(),
            format!("{authorization_mode:?}: must be \"Webhook\" or \"AlwaysAllow\""),
        ));
    }
    let max_pods = i64::from(r.max_pods.unwrap_or(110));
    if max_pods < 0 {
        return Err(("maxPods".into(), format!("{max_pods} must not be negative")));
    }
    let eviction_hard = r.eviction_hard.unwrap_or_else(default_eviction_hard);
    let eviction_soft = r.eviction_soft.unwrap_or_default();
    let thresholds = eviction_hard
        .iter()
        .map(|t| ("evictionHard", t))
        .chain(eviction_soft.iter().map(|t| ("evictionSoft", t)));
    for (field, (signal, threshold)) in thresholds {
        if !matches!(
            signal.as_str(),
            "memory.available"
                | "nodefs.available"
                | "nodefs.inodesFree"
                | "imagefs.available"
                | "imagefs.inodesFree"
                | "pid.available"
                | "containerfs.available"
                | "containerfs.inodesFree"
        ) {
            return Err((
                format!("{field}[{signal}]"),
                "unsupported eviction signal".into(),
            ));
        }
        let ok = match threshold.strip_suffix('%') {
            Some(p) => p.parse::<f64>().is_ok_and(|p| (0.0..=100.0).contains(&p)),
            None => ferrokube_api::quantity::value(threshold).is_some_and(|v| v >= 0),
        };
        if !ok {
            return Err((
                format!("{field}[{signal}]"),
                format!("invalid threshold {threshold:?}"),
            ));
        }
    }
    let mut eviction_soft_grace_period = BTreeMap::new();
    for (signal, period) in r.eviction_soft_grace_period.clone().unwrap_or_default() {
        let field = format!("evictionSoftGracePeriod[{signal}]");
        let d = duration(&field, Some(period), Duration::ZERO)?;
        eviction_soft_grace_period.insert(signal, d);
    }
    // Upstream's parseThresholdConfig: every soft threshold needs its grace period.
    if let Some(signal) = eviction_soft
        .keys()
        .find(|s| !eviction_soft_grace_period.contains_key(*s))
    {
        return Err((
            "evictionSoftGracePeriod".into(),
            format!("grace period must be specified for the soft eviction threshold {signal}"),
        ));
    }
    let eviction_max_pod_grace_period = i64::from(r.eviction_max_pod_grace_period.unwrap_or(0));
    if eviction_max_pod_grace_period < 0 {
        return Err((
            "evictionMaxPodGracePeriod".into(),
            format!("{eviction_max_pod_grace_period} must not be negative"),
        ));
    }
    let image_gc_high_threshold_percent = r.image_gc_high_threshold_percent.unwrap_or(85);
    let image_gc_low_threshold_percent = r.image_gc_low_threshold_percent.unwrap_or(80);
    for (field, v) in [
        (
            "imageGCHighThresholdPercent",
            image_gc_high_threshold_percent,
        ),
        ("imageGCLowThresholdPercent", image_gc_low_threshold_percent),
    ] {
        if !(0..=100).contains(&v) {
            return Err((
                field.into(),
                format!("{v} must be between 0 and 100, inclusive"),
            ));
        }
    }
    if image_gc_low_threshold_percent > image_gc_high_threshold_percent {
        return Err((
            "imageGCLowThresholdPercent".into(),
            format!(
                "({image_gc_low_threshold_percent}) must be less than imageGCHighThresholdPercent ({image_gc_high_threshold_percent})"
            ),
        ));
    }
    let image_minimum_gc_age = duration(
        "imageMinimumGCAge",
        r.image_minimum_gc_age.clone(),
        Duration::from_secs(120),
    )?;
    let image_maximum_gc_age = duration(
        "imageMaximumGCAge",
        r.image_maximum_gc_age.clone(),
        Duration::ZERO,
    )?;
    if !image_maximum_gc_age.is_zero() && image_maximum_gc_age <= image_minimum_gc_age {
        return Err((
            "imageMaximumGCAge".into(),
            format!(
                "{} must be greater than imageMinimumGCAge {}",
                go_duration(image_maximum_gc_age),
                go_duration(image_minimum_gc_age)
            ),
        ));
    }
    let pod_pids_limit = r.pod_pids_limit.unwrap_or(-1);
    let container_log_max_files = r.container_log_max_files.unwrap_or(5);
    if container_log_max_files < 2 {
        return Err((
            "containerLogMaxFiles".into(),
            format!("{container_log_max_files} must be greater than 1"),
        ));
    }
    let container_log_monitor_interval = duration(
        "containerLogMonitorInterval",
        r.container_log_monitor_interval,
        Duration::from_secs(10),
    )?;
    if container_log_monitor_interval < Duration::from_secs(3) {
        return Err((
            "containerLogMonitorInterval".into(),
            "must be a positive time duration greater than or equal to 3s".into(),
        ));
    }
    let node_lease_duration_seconds = r.node_lease_duration_seconds.unwrap_or(40);
    if node_lease_duration_seconds <= 0 {
        return Err((
            "nodeLeaseDurationSeconds".into(),
            "must be greater than 0".into(),
        ));
    }
    Ok(KubeletConfig {
        address: r.address.unwrap_or_else(|| "0.0.0.0".into()),
        port: port("port", r.port, 10250)?,
        read_only_port: port("readOnlyPort", r.read_only_port, 0)?,
        tls_cert_file: r.tls_cert_file.filter(|s| !s.is_empty()).map(PathBuf::from),
        tls_private_key_file: r
            .tls_private_key_file
            .filter(|s| !s.is_empty())
            .map(PathBuf::from),
        rotate_certificates: r.rotate_certificates.unwrap_or(false),
        server_tls_bootstrap: r.server_tls_bootstrap.unwrap_or(false),
        anonymous_auth: r.authentication.anonymous.enabled.unwrap_or(false),
        webhook_authn: r.authentication.webhook.enabled.unwrap_or(true),
        client_ca_file: r
            .authentication
            .x509
            .client_ca_file
            .filter(|s| !s.is_empty())
            .map(PathBuf::from),
        authorization_mode,
        healthz_port: port("healthzPort", r.healthz_port, 10248)?,
        healthz_bind_address: r.healthz_bind_address.unwrap_or_else(|| "127.0.0.1".into()),
        cluster_domain: r.cluster_domain.unwrap_or_default(),
        cluster_dns: r.cluster_dns.unwrap_or_default(),
        node_status_update_frequency: duration(
            "nodeStatusUpdateFrequency",
            r.node_status_update_frequency,
            Duration::from_secs(10),
        )?,
        node_status_report_frequency: duration(
            "nodeStatusReportFrequency",
            r.node_status_report_frequency,
            Duration::from_secs(300),
        )?,
        node_lease_duration_seconds,
        sync_frequency: duration("syncFrequency", r.sync_frequency, Duration::from_secs(60))?,
        file_check_frequency: duration(
            "fileCheckFrequency",
            r.file_check_frequency,
            Duration::from_secs(20),
        )?,
        max_pods,
        pod_pids_limit,
        eviction_hard,
        eviction_soft,
        eviction_soft_grace_period,
        eviction_max_pod_grace_period,
        cgroup_driver,
        cgroups_per_qos: r.cgroups_per_qos.unwrap_or(true),
        static_pod_path: r
            .static_pod_path
            .filter(|s| !s.is_empty())
            .map(PathBuf::from),
        container_log_max_size: log_size(r.container_log_max_size)?,
        container_log_max_files,
        container_log_monitor_interval,
        fail_swap_on: r.fail_swap_on.unwrap_or(true),
        serialize_image_pulls: r.serialize_image_pulls.unwrap_or(true),
        kube_api_qps: r.kube_api_qps.unwrap_or(50.0),
        kube_api_burst: r.kube_api_burst.unwrap_or(100),
        resolv_conf: r.resolv_conf.unwrap_or_else(|| "/etc/resolv.conf".into()),
        runtime_request_timeout: duration(
            "runtimeRequestTimeout",
            r.runtime_request_timeout,
            Duration::from_secs(120),
        )?,
        register_node: r.register_node.unwrap_or(true),
        register_with_taints: r.register_with_taints.unwrap_or_default(),
        container_runtime_endpoint: r.container_runtime_endpoint,
        image_gc_high_threshold_percent,
        image_gc_low_threshold_percent,
        image_minimum_gc_age,
        image_maximum_gc_age,
        system_reserved: r.system_reserved.unwrap_or_default(),
        kube_reserved: r.kube_reserved.unwrap_or_default(),
        provider_id: r.provider_id,
    })
}

impl KubeletConfig {
    /// The configuration without a `--config` file: upstream's defaults.
    pub fn defaults() -> Result<KubeletConfig, ConfigError> {
        build(Raw::default())
            .map_err(|(field, message)| ConfigError::field("--config (defaults)", field, message))
    }

    /// Reads and validates the `--config` file.
    pub fn load(path: &Path) -> Result<KubeletConfig, ConfigError> {
        let text = config_file::read(path, &file_label(path))?;
        Self::parse(path, &text)
    }

    /// Decodes a configuration document (`path` only names it in errors).
    pub fn parse(path: &Path, text: &str) -> Result<KubeletConfig, ConfigError> {
        let file = file_label(path);
        let raw: Raw = config_file::decode(
            &file,
            text,
            config_file::DocumentType {
                kind: "KubeletConfiguration",
                api_version: "kubelet.config.k8s.io/v1beta1",
                known,
            },
        )?;
        build(raw).map_err(|(field, message)| ConfigError::field(&file, field, message))
    }

    /// `evictionHard[memory.available]` in bytes, if set as a quantity.
    pub fn memory_eviction_bytes(&self) -> i64 {
        self.eviction_hard
            .get("memory.available")
            .and_then(|v| ferrokube_api::quantity::value(v))
            .unwrap_or(0)
    }

    /// The effective configuration as `/configz` shows it (upstream's field names, Go
    /// durations, the defaults filled in).
    pub fn configz(&self) -> serde_json::Value {
        let d = |v: Duration| serde_json::Value::String(go_duration(v));
        let path = |p: &Option<PathBuf>| {
            p.as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        };
        let mut z = serde_json::json!({
            "enableServer": self.port != 0,
            "staticPodPath": path(&self.static_pod_path),
            "syncFrequency": d(self.sync_frequency),
            "fileCheckFrequency": d(self.file_check_frequency),
            "address": self.address,
            "port": self.port,
            "readOnlyPort": self.read_only_port,
            "tlsCertFile": path(&self.tls_cert_file),
            "tlsPrivateKeyFile": path(&self.tls_private_key_file),
            "rotateCertificates": self.rotate_certificates,
            "serverTLSBootstrap": self.server_tls_bootstrap,
            "authentication": {
                "x509": {"clientCAFile": path(&self.client_ca_file)},
                "webhook": {"enabled": self.webhook_authn, "cacheTTL": "2m0s"},
                "anonymous": {"enabled": self.anonymous_auth},
            },
            "authorization": {
                "mode": self.authorization_mode,
                "webhook": {"cacheAuthorizedTTL": "5m0s", "cacheUnauthorizedTTL": "30s"},
            },
        });
        let more = serde_json::json!({
            "registryPullQPS": 5,
            "registryBurst": 10,
            "healthzPort": self.healthz_port,
            "healthzBindAddress": self.healthz_bind_address,
            "clusterDomain": self.cluster_domain,
            "clusterDNS": self.cluster_dns,
            "nodeStatusUpdateFrequency": d(self.node_status_update_frequency),
            "nodeStatusReportFrequency": d(self.node_status_report_frequency),
            "nodeLeaseDurationSeconds": self.node_lease_duration_seconds,
            "imageMinimumGCAge": d(self.image_minimum_gc_age),
            "imageMaximumGCAge": d(self.image_maximum_gc_age),
            "imageGCHighThresholdPercent": self.image_gc_high_threshold_percent,
            "imageGCLowThresholdPercent": self.image_gc_low_threshold_percent,
            "cgroupsPerQOS": self.cgroups_per_qos,
            "cgroupDriver": self.cgroup_driver,
            "runtimeRequestTimeout": d(self.runtime_request_timeout),
            "maxPods": self.max_pods,
            "podPidsLimit": self.pod_pids_limit,
            "resolvConf": self.resolv_conf,
            "kubeAPIQPS": self.kube_api_qps,
            "kubeAPIBurst": self.kube_api_burst,
            "serializeImagePulls": self.serialize_image_pulls,
            "evictionHard": self.eviction_hard,
            "evictionSoft": self.eviction_soft,
            "evictionSoftGracePeriod": self
                .eviction_soft_grace_period
                .iter()
                .map(|(k, v)| (k.clone(), go_duration(*v)))
                .collect::<BTreeMap<_, _>>(),
            "evictionMaxPodGracePeriod": self.eviction_max_pod_grace_period,
            "failSwapOn": self.fail_swap_on,
            "containerLogMaxSize": quantity_text(self.container_log_max_size),
            "containerLogMaxFiles": self.container_log_max_files,
            "containerLogMonitorInterval": d(self.container_log_monitor_interval),
            "systemReserved": self.system_reserved,
            "kubeReserved": self.kube_reserved,
            "providerID": self.provider_id.clone().unwrap_or_default(),
            "registerNode": self.register_node,
            "registerWithTaints": self.register_with_taints,
            "containerRuntimeEndpoint": self.container_runtime_endpoint.clone().unwrap_or_default(),
            "enableSystemLogHandler": true,
        });
        if let (Some(z), serde_json::Value::Object(more)) = (z.as_object_mut(), more) {
            z.extend(more);
        }
        z
    }
}

/// Go's `time.Duration.String()` for whole milliseconds: `500ms`, `10s`, `1m0s`, `4h0m0s`.
fn go_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let secs = ms / 1000;
    let frac = ms % 1000;
    let s = if frac == 0 {
        format!("{}s", secs % 60)
    } else {
        let text = format!("{}.{frac:03}", secs % 60);
        format!("{}s", text.trim_end_matches('0'))
    };
    match (secs / 3600, (secs / 60) % 60) {
        (0, 0) => s,
        (0, m) => format!("{m}m{s}"),
        (h, m) => format!("{h}h{m}m{s}"),
    }
}

/// A byte count as the quantity upstream prints (`10Mi`).
fn quantity_text(bytes: i64) -> String {
    for (suffix, unit) in [("Gi", 1i64 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)] {
        if bytes >= unit && bytes % unit == 0 {
            return format!("{}{suffix}", bytes / unit);
        }
    }
    bytes.to_string()
}

/// How errors name the file.
fn file_label(path: &Path) -> String {
    format!("--config {}", path.display())
}

fn known(key: &str) -> bool {
    const TYPED: &[&str] = &[
        "address",
        "port",
        "readOnlyPort",
        "tlsCertFile",
        "tlsPrivateKeyFile",
        "rotateCertificates",
        "serverTLSBootstrap",
        "authentication",
        "authorization",
        "healthzPort",
        "healthzBindAddress",
        "clusterDomain",
        "clusterDNS",
        "nodeStatusUpdateFrequency",
        "nodeStatusReportFrequency",
        "fileCheckFrequency",
        "maxPods",
        "podPidsLimit",
        "evictionHard",
        "evictionSoft",
        "evictionSoftGracePeriod",
        "evictionMaxPodGracePeriod",
        "cgroupDriver",
        "cgroupsPerQOS",
        "cgroupRoot",
        "staticPodPath",
        "containerLogMaxSize",
        "containerLogMaxFiles",
        "containerLogMonitorInterval",
        "failSwapOn",
        "serializeImagePulls",
        "nodeLeaseDurationSeconds",
        "syncFrequency",
        "hairpinMode",
        "kubeAPIQPS",
        "kubeAPIBurst",
        "resolvConf",
        "podCIDR",
        "runtimeRequestTimeout",
        "registerNode",
        "registerWithTaints",
        "containerRuntimeEndpoint",
        "imageGCHighThresholdPercent",
        "imageGCLowThresholdPercent",
        "imageMinimumGCAge",
        "imageMaximumGCAge",
        "enforceNodeAllocatable",
        "systemReserved",
        "kubeReserved",
        "providerID",
    ];
    TYPED.contains(&key) || OTHER_UPSTREAM_FIELDS.contains(&key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configz_shows_the_effective_configuration() {
        assert_eq!(go_duration(Duration::from_secs(10)), "10s");
        assert_eq!(go_duration(Duration::from_secs(60)), "1m0s");
        assert_eq!(go_duration(Duration::from_secs(4 * 3600)), "4h0m0s");
        assert_eq!(go_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(go_duration(Duration::from_millis(500)), "500ms");
        assert_eq!(quantity_text(10 << 20), "10Mi");
        let c = KubeletConfig::parse(Path::new("k.yaml"), SEED).unwrap_or_else(|e| panic!("{e}"));
        let z = c.configz();
        assert_eq!(z["syncFrequency"], "1m0s");
        assert_eq!(z["nodeStatusUpdateFrequency"], "10s");
        assert_eq!(z["cgroupDriver"], "systemd");
        assert_eq!(z["authentication"]["anonymous"]["enabled"], false);
        assert_eq!(z["evictionHard"]["imagefs.available"], "15%");
        assert_eq!(z["maxPods"], 220);
    }

    const SEED: &str = r#"kind: KubeletConfiguration
apiVersion: kubelet.config.k8s.io/v1beta1
address: "172.27.138.251"
staticPodPath: ""
syncFrequency: 1m
fileCheckFrequency: 20s
httpCheckFrequency: 20s
staticPodURL: ""
port: 10250
readOnlyPort: 0
rotateCertificates: true
serverTLSBootstrap: true
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
  x509:
    clientCAFile: "/etc/kubernetes/cert/ca.pem"
authorization:
  mode: Webhook
registryPullQPS: 0
registryBurst: 20
eventRecordQPS: 0
eventBurst: 20
enableDebuggingHandlers: true
enableContentionProfiling: true
healthzPort: 10248
healthzBindAddress: "172.27.138.251"
clusterDomain: "cluster.local"
clusterDNS:
  - "10.254.0.2"
nodeStatusUpdateFrequency: 10s
nodeStatusReportFrequency: 1m
imageMinimumGCAge: 2m
imageGCHighThresholdPercent: 85
imageGCLowThresholdPercent: 80
volumeStatsAggPeriod: 1m
kubeletCgroups: ""
systemCgroups: ""
cgroupRoot: ""
cgroupsPerQOS: true
cgroupDriver: systemd
runtimeRequestTimeout: 10m
hairpinMode: promiscuous-bridge
maxPods: 220
podCIDR: "172.30.0.0/16"
podPidsLimit: -1
resolvConf: /etc/resolv.conf
maxOpenFiles: 1000000
kubeAPIQPS: 1000
kubeAPIBurst: 2000
serializeImagePulls: false
evictionHard:
  memory.available:  "100Mi"
  nodefs.available:  "10%"
  nodefs.inodesFree: "5%"
  imagefs.available: "15%"
evictionSoft: {}
enableControllerAttachDetach: true
failSwapOn: true
containerLogMaxSize: 20Mi
containerLogMaxFiles: 10
systemReserved: {}
kubeReserved: {}
systemReservedCgroup: ""
kubeReservedCgroup: ""
enforceNodeAllocatable: ["pods"]
"#;

    #[test]
    fn the_seeds_file_parses_with_its_values() {
        let c = KubeletConfig::parse(Path::new("seed.yaml"), SEED).unwrap();
        assert_eq!(c.address, "172.27.138.251");
        assert_eq!(c.port, 10250);
        assert_eq!(c.read_only_port, 0);
        assert!(c.rotate_certificates && c.server_tls_bootstrap);
        assert!(!c.anonymous_auth && c.webhook_authn);
        assert_eq!(
            c.client_ca_file.as_deref(),
            Some(Path::new("/etc/kubernetes/cert/ca.pem"))
        );
        assert_eq!(c.cluster_dns, vec!["10.254.0.2"]);
        assert_eq!(c.node_status_report_frequency, Duration::from_secs(60));
        assert_eq!(c.max_pods, 220);
        assert_eq!(c.cgroup_driver, "systemd");
        assert_eq!(c.container_log_max_size, 20 * 1024 * 1024);
        assert_eq!(c.container_log_max_files, 10);
        assert_eq!(c.kube_api_qps, 1000.0);
        assert!(!c.serialize_image_pulls);
        assert_eq!(c.memory_eviction_bytes(), 100 * 1024 * 1024);
        assert_eq!(c.static_pod_path, None);
        assert_eq!(
            (
                c.image_gc_high_threshold_percent,
                c.image_gc_low_threshold_percent
            ),
            (85, 80)
        );
        assert_eq!(c.image_minimum_gc_age, Duration::from_secs(120));
        assert_eq!(c.eviction_hard["imagefs.available"], "15%");
    }

    #[test]
    fn defaults_are_upstreams() {
        let c = KubeletConfig::parse(
            Path::new("x"),
            "kind: KubeletConfiguration\napiVersion: kubelet.config.k8s.io/v1beta1\n",
        )
        .unwrap();
        assert_eq!(c.max_pods, 110);
        assert_eq!(c.healthz_port, 10248);
        assert_eq!(c.node_status_update_frequency, Duration::from_secs(10));
        assert_eq!(c.node_status_report_frequency, Duration::from_secs(300));
        assert_eq!(c.container_log_max_files, 5);
        assert_eq!(c.authorization_mode, "Webhook");
        assert_eq!(c.eviction_hard.len(), 4);
        assert_eq!(KubeletConfig::defaults().unwrap().max_pods, 110);
    }

    #[test]
    fn errors_name_the_field() {
        let head = "kind: KubeletConfiguration\napiVersion: kubelet.config.k8s.io/v1beta1\n";
        for (body, field) in [
            ("maxPods: lots\n", "maxPods"),
            ("port: 70000\n", "port"),
            ("cgroupDriver: lxc\n", "cgroupDriver"),
            (
                "nodeStatusUpdateFrequency: soon\n",
                "nodeStatusUpdateFrequency",
            ),
            (
                "evictionHard: {memory.available: lots}\n",
                "evictionHard[memory.available]",
            ),
            (
                "authentication: {anonymous: {enabled: maybe}}\n",
                "authentication",
            ),
            ("containerLogMaxFiles: 1\n", "containerLogMaxFiles"),
            (
                "containerLogMonitorInterval: 1s\n",
                "containerLogMonitorInterval",
            ),
            (
                "imageGCHighThresholdPercent: 101\n",
                "imageGCHighThresholdPercent",
            ),
            (
                "imageGCHighThresholdPercent: 50\nimageGCLowThresholdPercent: 60\n",
                "imageGCLowThresholdPercent",
            ),
            ("imageMinimumGCAge: old\n", "imageMinimumGCAge"),
            (
                "evictionSoft: {memory.available: 200Mi}\n",
                "evictionSoftGracePeriod",
            ),
            (
                "evictionSoft: {memory.avail: 200Mi}\nevictionSoftGracePeriod: {memory.avail: 1m}\n",
                "evictionSoft[memory.avail]",
            ),
            ("evictionSoftGracePeriod: {memory.available: soon}\n", "evictionSoftGracePeriod[memory.available]"),
            (
                "imageMinimumGCAge: 2m\nimageMaximumGCAge: 1m\n",
                "imageMaximumGCAge",
            ),
        ] {
            let e =
                KubeletConfig::parse(Path::new("k.yaml"), &format!("{head}{body}")).unwrap_err();
            let text = e.to_string();
            assert!(
                text.contains(&format!("field {field}")) && text.contains("k.yaml"),
                "{body}: {text}"
            );
        }
        assert!(KubeletConfig::parse(Path::new("k"), "kind: Pod\n").is_err());
        assert!(KubeletConfig::parse(Path::new("k"), ": : :\n- [").is_err());
        // Unknown fields are tolerated (warned about).
        assert!(
            KubeletConfig::parse(Path::new("k"), &format!("{head}someFutureField: 1\n")).is_ok()
        );
    }
}
