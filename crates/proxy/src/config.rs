//! `KubeProxyConfiguration` (kubeproxy.config.k8s.io/v1alpha1), the seeds'
//! `kube-proxy-config.yaml`: decoded field by field so an error names its field,
//! validated, defaulted as upstream. Fields we do not act on are accepted (upstream
//! documents them) and ignored; fields nobody knows are logged and ignored, as
//! upstream's lenient fallback does.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use ferrokube_component_base::config_file;
use std::time::Duration;

use ferrokube_cni::Cidr;
use serde::Deserialize;
use serde_json::Value;

pub use ferrokube_component_base::config_file::ConfigError;

/// How Services become kernel rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// IPVS virtual servers (the seeds' choice).
    Ipvs,
    /// One nftables table (`table ip kube-proxy`).
    Nftables,
    /// iptables chains in the nat and filter tables (upstream's default on Linux).
    Iptables,
}

impl Mode {
    /// Parses upstream's spelling (`""` is iptables, as upstream on Linux).
    pub fn parse(s: &str) -> Result<Mode, String> {
        match s {
            "ipvs" => Ok(Mode::Ipvs),
            "nftables" => Ok(Mode::Nftables),
            "iptables" | "" => Ok(Mode::Iptables),
            other => Err(format!(
                "{other:?}: must be \"iptables\", \"ipvs\" or \"nftables\""
            )),
        }
    }

    /// The name upstream prints.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Ipvs => "ipvs",
            Mode::Nftables => "nftables",
            Mode::Iptables => "iptables",
        }
    }
}

/// The validated configuration the proxier runs with.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    pub mode: Mode,
    pub kubeconfig: Option<PathBuf>,
    pub qps: f32,
    pub burst: i32,
    pub hostname_override: Option<String>,
    /// Traffic to Services from outside these is masqueraded (none: `masqueradeAll`
    /// decides alone).
    pub cluster_cidrs: Vec<Cidr>,
    pub masquerade_all: bool,
    /// The fwmark bit that asks for masquerade (14: `0x4000`).
    pub masquerade_bit: u8,
    pub bind_address: IpAddr,
    /// `None`: disabled (empty string in the file).
    pub healthz_bind_address: Option<SocketAddr>,
    pub metrics_bind_address: Option<SocketAddr>,
    pub sync_period: Duration,
    pub min_sync_period: Duration,
    /// IPVS scheduler (`rr` when empty).
    pub ipvs_scheduler: String,
    pub ipvs_strict_arp: bool,
    pub ipvs_exclude_cidrs: Vec<Cidr>,
    /// `nodePortAddresses`: CIDRs whose local addresses accept NodePorts (empty: all
    /// local addresses but loopback).
    pub node_port_addresses: Vec<Cidr>,
    pub config_sync_period: Duration,
}

impl Default for ProxyConfig {
    fn default() -> ProxyConfig {
        ProxyConfig {
            mode: Mode::Iptables,
            kubeconfig: None,
            qps: 5.0,
            burst: 10,
            hostname_override: None,
            cluster_cidrs: Vec::new(),
            masquerade_all: false,
            masquerade_bit: 14,
            bind_address: IpAddr::from([0, 0, 0, 0]),
            healthz_bind_address: Some(SocketAddr::from(([0, 0, 0, 0], 10256))),
            metrics_bind_address: Some(SocketAddr::from(([127, 0, 0, 1], 10249))),
            sync_period: Duration::from_secs(30),
            min_sync_period: Duration::from_secs(1),
            ipvs_scheduler: "rr".into(),
            ipvs_strict_arp: false,
            ipvs_exclude_cidrs: Vec::new(),
            node_port_addresses: Vec::new(),
            config_sync_period: Duration::from_secs(15 * 60),
        }
    }
}

impl ProxyConfig {
    /// The masquerade mark, `1 << masqueradeBit`.
    pub fn masquerade_mark(&self) -> u32 {
        1u32 << self.masquerade_bit
    }

    /// The cluster CIDR of the IPv4 family, if configured.
    pub fn cluster_cidr_v4(&self) -> Option<Cidr> {
        self.cluster_cidrs.iter().copied().find(Cidr::is_ipv4)
    }

    /// Reads and validates a `--config` file.
    pub fn load(path: &Path) -> Result<ProxyConfig, ConfigError> {
        let text = config_file::read(path, &path.display().to_string())?;
        Self::parse(path, &text)
    }

    /// Decodes a configuration document (`path` only names it in errors).
    pub fn parse(path: &Path, text: &str) -> Result<ProxyConfig, ConfigError> {
        let file = path.display().to_string();
        let raw: Raw = config_file::decode(
            &file,
            text,
            config_file::DocumentType {
                kind: "KubeProxyConfiguration",
                api_version: "kubeproxy.config.k8s.io/v1alpha1",
                known: |k| KNOWN.contains(&k),
            },
        )?;
        build(raw).map_err(|(field, message)| ConfigError::field(&file, field, message))
    }
}

/// Every top-level field of v1alpha1.
const KNOWN: &[&str] = &[
    "apiVersion",
    "kind",
    "bindAddress",
    "bindAddressHardFail",
    "clientConnection",
    "clusterCIDR",
    "configSyncPeriod",
    "conntrack",
    "detectLocal",
    "detectLocalMode",
    "enableProfiling",
    "featureGates",
    "healthzBindAddress",
    "hostnameOverride",
    "iptables",
    "ipvs",
    "logging",
    "metricsBindAddress",
    "mode",
    "nftables",
    "nodePortAddresses",
    "oomScoreAdj",
    "portRange",
    "showHiddenMetricsForVersion",
    "windowsRunAsService",
    "winkernel",
];

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Raw {
    bind_address: Option<String>,
    #[serde(default)]
    client_connection: RawClient,
    #[serde(rename = "clusterCIDR")]
    cluster_cidr: Option<String>,
    config_sync_period: Option<String>,
    healthz_bind_address: Option<String>,
    hostname_override: Option<String>,
    #[serde(default)]
    iptables: RawRules,
    #[serde(default)]
    nftables: RawRules,
    #[serde(default)]
    ipvs: RawIpvs,
    metrics_bind_address: Option<String>,
    mode: Option<String>,
    node_port_addresses: Option<Vec<String>>,
    #[serde(default)]
    feature_gates: BTreeMap<String, bool>,
    // Accepted with their types checked, not acted on.
    #[allow(dead_code)]
    bind_address_hard_fail: Option<bool>,
    #[allow(dead_code)]
    enable_profiling: Option<bool>,
    #[allow(dead_code)]
    oom_score_adj: Option<i32>,
    #[allow(dead_code)]
    port_range: Option<String>,
    #[allow(dead_code)]
    detect_local_mode: Option<String>,
    #[allow(dead_code)]
    show_hidden_metrics_for_version: Option<String>,
    #[allow(dead_code)]
    conntrack: Option<Value>,
    #[allow(dead_code)]
    detect_local: Option<Value>,
    #[allow(dead_code)]
    logging: Option<Value>,
    #[allow(dead_code)]
    winkernel: Option<Value>,
    #[allow(dead_code)]
    windows_run_as_service: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawClient {
    kubeconfig: Option<String>,
    qps: Option<f32>,
    burst: Option<i32>,
    #[allow(dead_code)]
    content_type: Option<String>,
    #[allow(dead_code)]
    accept_content_types: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawRules {
    masquerade_all: Option<bool>,
    masquerade_bit: Option<i32>,
    sync_period: Option<String>,
    min_sync_period: Option<String>,
    #[allow(dead_code)]
    localhost_node_ports: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawIpvs {
    scheduler: Option<String>,
    sync_period: Option<String>,
    min_sync_period: Option<String>,
    #[serde(rename = "excludeCIDRs")]
    exclude_cidrs: Option<Vec<String>>,
    strict_arp: Option<bool>,
    #[allow(dead_code)]
    tcp_timeout: Option<String>,
    #[allow(dead_code)]
    tcp_fin_timeout: Option<String>,
    #[allow(dead_code)]
    udp_timeout: Option<String>,
}

type FieldError = (String, String);

fn duration(field: &str, v: Option<&str>, default: Duration) -> Result<Duration, FieldError> {
    match v {
        None | Some("") => Ok(default),
        Some(s) => parse_duration(s.trim())
            .map_err(|e| (field.to_string(), format!("invalid duration {s:?}: {e}"))),
    }
}

/// Go's `time.ParseDuration` (`30s`, `1m30s`, `500ms`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    ferrokube_client::leaderelection::parse_duration(s)
}

/// `host:port` with a host that must be an IP (upstream accepts only IPs here).
fn socket(
    field: &str,
    v: Option<&str>,
    default: Option<SocketAddr>,
) -> Result<Option<SocketAddr>, FieldError> {
    match v {
        None => Ok(default),
        Some("") => Ok(None),
        Some(s) => s
            .parse::<SocketAddr>()
            .map(Some)
            .map_err(|_| (field.to_string(), format!("{s:?} is not a valid IP:port"))),
    }
}

fn cidrs(field: &str, list: &[String]) -> Result<Vec<Cidr>, FieldError> {
    list.iter()
        .flat_map(|s| s.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<Cidr>()
                .map_err(|e| (field.to_string(), format!("{s:?}: {e}")))
        })
        .collect()
}

fn masquerade_bit(field: &str, v: Option<i32>) -> Result<u8, FieldError> {
    let bit = v.unwrap_or(14);
    u8::try_from(bit).ok().filter(|b| *b <= 31).ok_or_else(|| {
        (
            field.to_string(),
            format!("{bit} must be in the range [0, 31]"),
        )
    })
}

fn build(r: Raw) -> Result<ProxyConfig, FieldError> {
    let d = ProxyConfig::default();
    let mode = Mode::parse(r.mode.as_deref().unwrap_or("")).map_err(|e| ("mode".to_string(), e))?;
    let rules = match mode {
        Mode::Nftables => &r.nftables,
        _ => &r.iptables,
    };
    let rules_name = if mode == Mode::Nftables {
        "nftables"
    } else {
        "iptables"
    };
    let bind_address = match r.bind_address.as_deref() {
        None | Some("") => d.bind_address,
        Some(s) => s.parse().map_err(|_| {
            (
                "bindAddress".to_string(),
                format!("{s:?} is not a valid IP address"),
            )
        })?,
    };
    let qps = r.client_connection.qps.unwrap_or(d.qps);
    let burst = r.client_connection.burst.unwrap_or(d.burst);
    if burst < 0 {
        return Err((
            "clientConnection.burst".into(),
            format!("{burst} must be greater than or equal to 0"),
        ));
    }
    let (sync_field, min_field, sync, min_sync) = if mode == Mode::Ipvs {
        (
            "ipvs.syncPeriod",
            "ipvs.minSyncPeriod",
            r.ipvs.sync_period.as_deref(),
            r.ipvs.min_sync_period.as_deref(),
        )
    } else {
        (
            if mode == Mode::Nftables {
                "nftables.syncPeriod"
            } else {
                "iptables.syncPeriod"
            },
            if mode == Mode::Nftables {
                "nftables.minSyncPeriod"
            } else {
                "iptables.minSyncPeriod"
            },
            rules.sync_period.as_deref(),
            rules.min_sync_period.as_deref(),
        )
    };
    let sync_period = duration(sync_field, sync, d.sync_period)?;
    let min_sync_period = duration(min_field, min_sync, d.min_sync_period)?;
    if sync_period.is_zero() {
        return Err((sync_field.into(), "must be greater than 0".into()));
    }
    if min_sync_period > sync_period {
        return Err((
            min_field.into(),
            format!(
                "{min_sync_period:?} must be less than or equal to {sync_field} {sync_period:?}"
            ),
        ));
    }
    let scheduler = r
        .ipvs
        .scheduler
        .clone()
        .filter(|s| !s.is_empty())
        .unwrap_or(d.ipvs_scheduler);
    if !matches!(
        scheduler.as_str(),
        "rr" | "wrr" | "lc" | "wlc" | "lblc" | "lblcr" | "sh" | "dh" | "sed" | "nq" | "mh"
    ) {
        return Err((
            "ipvs.scheduler".into(),
            format!("{scheduler:?} is not a known IPVS scheduler"),
        ));
    }
    if !r.feature_gates.is_empty() {
        tracing::debug!(gates = ?r.feature_gates, "featureGates accepted, not acted on");
    }
    Ok(ProxyConfig {
        mode,
        kubeconfig: r
            .client_connection
            .kubeconfig
            .filter(|s| !s.is_empty())
            .map(PathBuf::from),
        qps,
        burst,
        hostname_override: r.hostname_override.filter(|s| !s.trim().is_empty()),
        cluster_cidrs: cidrs("clusterCIDR", r.cluster_cidr.as_slice())?,
        masquerade_all: rules.masquerade_all.unwrap_or(false),
        masquerade_bit: masquerade_bit(
            &format!("{rules_name}.masqueradeBit"),
            rules.masquerade_bit,
        )?,
        bind_address,
        healthz_bind_address: socket(
            "healthzBindAddress",
            r.healthz_bind_address.as_deref(),
            d.healthz_bind_address,
        )?,
        metrics_bind_address: socket(
            "metricsBindAddress",
            r.metrics_bind_address.as_deref(),
            d.metrics_bind_address,
        )?,
        sync_period,
        min_sync_period,
        ipvs_scheduler: scheduler,
        ipvs_strict_arp: r.ipvs.strict_arp.unwrap_or(false),
        ipvs_exclude_cidrs: cidrs(
            "ipvs.excludeCIDRs",
            &r.ipvs.exclude_cidrs.unwrap_or_default(),
        )?,
        node_port_addresses: cidrs(
            "nodePortAddresses",
            &r.node_port_addresses.unwrap_or_default(),
        )?,
        config_sync_period: duration(
            "configSyncPeriod",
            r.config_sync_period.as_deref(),
            d.config_sync_period,
        )?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The seeds' kube-proxy-config.yaml.template, filled in.
    const SEED: &str = r#"kind: KubeProxyConfiguration
apiVersion: kubeproxy.config.k8s.io/v1alpha1
bindAddress: 172.27.138.251
clientConnection:
  burst: 200
  kubeconfig: "/etc/kubernetes/kube-proxy.kubeconfig"
  qps: 100
clusterCIDR: 172.30.0.0/16
healthzBindAddress: 172.27.138.251:10256
hostnameOverride: k8s-node-1
metricsBindAddress: 172.27.138.251:10249
mode: "ipvs"
"#;

    fn parse(text: &str) -> Result<ProxyConfig, ConfigError> {
        ProxyConfig::parse(Path::new("kube-proxy-config.yaml"), text)
    }

    #[test]
    fn the_seed_configuration_decodes() {
        let c = parse(SEED).unwrap();
        assert_eq!(c.mode, Mode::Ipvs);
        assert_eq!(c.burst, 200);
        assert!((c.qps - 100.0).abs() < f32::EPSILON);
        assert_eq!(
            c.kubeconfig.as_deref().unwrap(),
            Path::new("/etc/kubernetes/kube-proxy.kubeconfig")
        );
        assert_eq!(c.cluster_cidrs[0].to_string(), "172.30.0.0/16");
        assert_eq!(
            c.healthz_bind_address.unwrap().to_string(),
            "172.27.138.251:10256"
        );
        assert_eq!(c.metrics_bind_address.unwrap().port(), 10249);
        assert_eq!(c.hostname_override.as_deref(), Some("k8s-node-1"));
        assert_eq!(c.ipvs_scheduler, "rr");
        assert_eq!(c.masquerade_mark(), 0x4000);
    }

    #[test]
    fn defaults_are_upstreams() {
        let c =
            parse("kind: KubeProxyConfiguration\napiVersion: kubeproxy.config.k8s.io/v1alpha1\n")
                .unwrap();
        assert_eq!(c.mode, Mode::Iptables);
        assert_eq!(c.healthz_bind_address.unwrap().to_string(), "0.0.0.0:10256");
        assert_eq!(
            c.metrics_bind_address.unwrap().to_string(),
            "127.0.0.1:10249"
        );
        assert_eq!(c.sync_period, Duration::from_secs(30));
        assert_eq!(c.min_sync_period, Duration::from_secs(1));
    }

    #[test]
    fn errors_name_the_file_and_the_field() {
        let head = "kind: KubeProxyConfiguration\napiVersion: kubeproxy.config.k8s.io/v1alpha1\n";
        for (body, field) in [
            ("mode: userspace\n", "mode"),
            ("clusterCIDR: 10.0.0.0/33\n", "clusterCIDR"),
            ("healthzBindAddress: localhost:x\n", "healthzBindAddress"),
            ("clientConnection:\n  qps: fast\n", "clientConnection"),
            ("ipvs:\n  scheduler: best\n", "ipvs.scheduler"),
            ("iptables:\n  masqueradeBit: 40\n", "iptables.masqueradeBit"),
            (
                "iptables:\n  syncPeriod: 10s\n  minSyncPeriod: 1m\n",
                "iptables.minSyncPeriod",
            ),
            (
                "mode: nftables\nnftables:\n  syncPeriod: soon\n",
                "nftables.syncPeriod",
            ),
        ] {
            let doc = format!("{head}{body}");
            let err = parse(&doc).unwrap_err().to_string();
            assert!(err.contains("kube-proxy-config.yaml"), "{err}");
            assert!(err.contains(field), "{body}: {err}");
        }
        let err = parse("kind: Pod\n").unwrap_err().to_string();
        assert!(err.contains("KubeProxyConfiguration"), "{err}");
        assert!(parse("{{{").is_err());
    }

    #[test]
    fn nftables_mode_reads_its_own_section() {
        let c = parse(
            "kind: KubeProxyConfiguration\napiVersion: kubeproxy.config.k8s.io/v1alpha1\nmode: nftables\nnftables:\n  masqueradeAll: true\n  minSyncPeriod: 0s\n",
        )
        .unwrap();
        assert_eq!(c.mode, Mode::Nftables);
        assert!(c.masquerade_all);
        assert!(c.min_sync_period.is_zero());
    }
}
