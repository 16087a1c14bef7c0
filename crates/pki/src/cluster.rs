//! A whole cluster's PKI in one call: every certificate, key, kubeconfig and config file
//! the seeds make by hand, named as the seeds name them (see docs/pki.md for the map).
//!
//! Re-running keeps what is already there: an existing CA (`ca.pem` + `ca-key.pem`) is
//! loaded and reused, and every other file that exists is kept. If the CA is new (or
//! `force` is set) everything is made afresh, so no kept file can be signed by another CA.
//! That makes [`generate`] safe to call on every start of `ferrokube server`.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use crate::bootstrap::{self, BootstrapToken};
use crate::cert::{self, CertSpec, CertificateAuthority, Profile};
use crate::configs;
use crate::files::{self, Mode};
use crate::keys::{KeyAlgorithm, PrivateKey};
use crate::kubeconfig::{Credentials, Kubeconfig, KubeconfigSpec, Material};
use crate::{Error, Result};

/// A node: `--node k8s-01=198.18.0.11`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub name: String,
    pub ip: IpAddr,
}

impl FromStr for Node {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let bad = |reason: &str| Error::InvalidArgument {
            flag: "--node",
            value: s.to_string(),
            reason: reason.to_string(),
        };
        let (name, ip) = s
            .split_once('=')
            .ok_or_else(|| bad("expected NAME=IP, e.g. k8s-01=198.18.0.11"))?;
        let valid_name = !name.is_empty()
            && name.len() <= 253
            && name.split('.').all(|l| {
                !l.is_empty()
                    && l.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                    && !l.starts_with('-')
                    && !l.ends_with('-')
            });
        if !valid_name {
            return Err(bad(
                "the node name must be a lowercase DNS name ([a-z0-9-.], as Node names are)",
            ));
        }
        let ip = ip
            .trim()
            .parse()
            .map_err(|_| bad("the part after '=' is not an IP address"))?;
        Ok(Node {
            name: name.to_string(),
            ip,
        })
    }
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct ClusterSpec {
    /// Where the files go.
    pub dir: PathBuf,
    /// The nodes; the first one's IP is the default API server address.
    pub nodes: Vec<Node>,
    /// `--service-cluster-ip-range`; its first address is the `kubernetes` Service's.
    pub service_cidr: String,
    /// The cluster entry's name in every kubeconfig; the CA is `<cluster_name>-ca`.
    pub cluster_name: String,
    /// The cluster DNS domain (`CLUSTER_DNS_DOMAIN`).
    pub cluster_domain: String,
    /// How clients outside the control-plane nodes reach the API server (admin,
    /// kube-proxy, kubelets): a load balancer, or the seeds' per-node kube-nginx at
    /// `https://127.0.0.1:8443`. Default: `https://<first node IP>:6443`.
    pub apiserver_url: Option<String>,
    /// How the controller-manager and scheduler, which run beside an API server, reach
    /// it; the same file then works on every control-plane node.
    pub local_apiserver_url: String,
    /// More SANs for the API server certificate.
    pub extra_sans: Vec<String>,
    pub algorithm: KeyAlgorithm,
    pub validity_days: u32,
    /// The kubelet bootstrap tokens' lifetime (`None`: no expiry).
    pub bootstrap_token_ttl: Option<Duration>,
    /// Also issue per-node kubelet certificates and kubeconfigs (`system:node:<name>`),
    /// for kubelets that do not use TLS bootstrap.
    pub kubelet_certs: bool,
    /// Make everything afresh, overwriting what exists.
    pub force: bool,
}

impl ClusterSpec {
    /// A spec with the seeds' defaults.
    pub fn new(dir: impl Into<PathBuf>, nodes: Vec<Node>) -> Self {
        ClusterSpec {
            dir: dir.into(),
            nodes,
            service_cidr: "10.96.0.0/12".into(),
            cluster_name: "kubernetes".into(),
            cluster_domain: "cluster.local".into(),
            apiserver_url: None,
            local_apiserver_url: "https://127.0.0.1:6443".into(),
            extra_sans: Vec::new(),
            algorithm: KeyAlgorithm::Rsa2048,
            validity_days: cert::DEFAULT_VALIDITY_DAYS,
            bootstrap_token_ttl: Some(Duration::from_secs(24 * 3600)),
            kubelet_certs: true,
            force: false,
        }
    }
}

/// What [`generate`] did.
#[derive(Debug, Default)]
pub struct ClusterFiles {
    pub dir: PathBuf,
    /// Files written by this call.
    pub written: Vec<PathBuf>,
    /// Files that existed and were kept.
    pub kept: Vec<PathBuf>,
    /// Each node's kubelet bootstrap token (also in `token.csv` and
    /// `bootstrap-token-secrets.yaml`), to create its Secret once the API server runs.
    pub bootstrap_tokens: Vec<(String, BootstrapToken)>,
    /// The API server URL written into the admin, kube-proxy and kubelet kubeconfigs.
    pub apiserver_url: String,
    /// The `kubernetes` Service's ClusterIP (first address of the service range).
    pub service_ip: Option<IpAddr>,
}

/// The first address of a CIDR: `10.96.0.0/12` → `10.96.0.1`.
pub fn first_service_ip(cidr: &str) -> Result<IpAddr> {
    let bad = |reason: &str| Error::InvalidArgument {
        flag: "--service-cidr",
        value: cidr.to_string(),
        reason: reason.to_string(),
    };
    let (addr, prefix) = cidr
        .split_once('/')
        .ok_or_else(|| bad("expected ADDRESS/PREFIX, e.g. 10.96.0.0/12"))?;
    let addr: IpAddr = addr.parse().map_err(|_| bad("not an IP address"))?;
    let prefix: u32 = prefix.parse().map_err(|_| bad("bad prefix length"))?;
    match addr {
        IpAddr::V4(v4) => {
            if !(1..=30).contains(&prefix) {
                return Err(bad("an IPv4 prefix must be 1..=30"));
            }
            let mask = u32::MAX << (32 - prefix);
            Ok(IpAddr::V4(std::net::Ipv4Addr::from(
                (u32::from(v4) & mask) + 1,
            )))
        }
        IpAddr::V6(v6) => {
            if !(1..=126).contains(&prefix) {
                return Err(bad("an IPv6 prefix must be 1..=126"));
            }
            let mask = u128::MAX << (128 - prefix);
            Ok(IpAddr::V6(std::net::Ipv6Addr::from(
                (u128::from(v6) & mask) + 1,
            )))
        }
    }
}

/// Generates (or completes) the cluster's files in `spec.dir`.
pub fn generate(spec: &ClusterSpec) -> Result<ClusterFiles> {
    Generator::new(spec)?.run()
}

struct Generator<'a> {
    spec: &'a ClusterSpec,
    out: ClusterFiles,
    /// Everything is rewritten (new CA or force).
    fresh: bool,
}

impl<'a> Generator<'a> {
    fn new(spec: &'a ClusterSpec) -> Result<Self> {
        if spec.nodes.is_empty() {
            return Err(Error::InvalidArgument {
                flag: "--node",
                value: String::new(),
                reason: "give at least one node (NAME=IP)".into(),
            });
        }
        let mut names = BTreeSet::new();
        for n in &spec.nodes {
            if !names.insert(&n.name) {
                return Err(Error::InvalidArgument {
                    flag: "--node",
                    value: n.name.clone(),
                    reason: "node names must be unique".into(),
                });
            }
        }
        let apiserver_url = spec
            .apiserver_url
            .clone()
            .unwrap_or_else(|| format!("https://{}", host_port(spec.nodes[0].ip, 6443)));
        crate::kubeconfig::validate_server_url(&apiserver_url, "--apiserver-url")?;
        crate::kubeconfig::validate_server_url(&spec.local_apiserver_url, "--local-apiserver-url")?;
        for san in &spec.extra_sans {
            cert::parse_host(san)?;
        }
        Ok(Generator {
            spec,
            out: ClusterFiles {
                dir: spec.dir.clone(),
                apiserver_url,
                service_ip: Some(first_service_ip(&spec.service_cidr)?),
                ..ClusterFiles::default()
            },
            fresh: spec.force,
        })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.spec.dir.join(name)
    }

    /// Whether every one of `names` exists and may be kept.
    fn keep(&mut self, names: &[String]) -> bool {
        let paths: Vec<PathBuf> = names.iter().map(|n| self.path(n)).collect();
        if self.fresh || !paths.iter().all(|p| p.exists()) {
            return false;
        }
        self.out.kept.extend(paths);
        true
    }

    fn write(&mut self, name: &str, contents: &[u8], mode: Mode) -> Result<()> {
        let path = self.path(name);
        files::write_atomic(&path, contents, mode, true)?;
        self.out.written.push(path);
        Ok(())
    }

    fn run(mut self) -> Result<ClusterFiles> {
        let ca = self.ca()?;
        let spec = self.spec;
        let service_ip = self.out.service_ip;
        let node_ips: Vec<String> = spec.nodes.iter().map(|n| n.ip.to_string()).collect();
        let node_names: Vec<String> = spec.nodes.iter().map(|n| n.name.clone()).collect();
        let local: Vec<String> = ["127.0.0.1", "localhost"].map(String::from).to_vec();

        // The API server: serving, and (as in the seeds) its kubelet and etcd client cert.
        let domain = spec.cluster_domain.trim_end_matches('.');
        let mut sans: Vec<String> = local.clone();
        sans.extend(node_ips.iter().cloned());
        sans.extend(service_ip.map(|ip| ip.to_string()));
        sans.extend([
            "kubernetes".to_string(),
            "kubernetes.default".into(),
            "kubernetes.default.svc".into(),
            format!(
                "kubernetes.default.svc.{}",
                domain.split('.').next().unwrap_or("cluster")
            ),
            format!("kubernetes.default.svc.{domain}"),
        ]);
        sans.extend(node_names.iter().cloned());
        if let Some(host) = url_host(&self.out.apiserver_url) {
            sans.push(host);
        }
        sans.extend(spec.extra_sans.iter().cloned());
        self.leaf(&ca, "kubernetes", "kubernetes", &[], Profile::Peer, sans)?;

        self.leaf(
            &ca,
            "admin",
            "admin",
            &["system:masters"],
            Profile::Client,
            vec![],
        )?;
        let control_plane_hosts: Vec<String> = local
            .iter()
            .chain(&node_ips)
            .chain(&node_names)
            .cloned()
            .collect();
        for component in ["kube-controller-manager", "kube-scheduler"] {
            let id = format!("system:{component}");
            self.leaf(
                &ca,
                component,
                &id,
                &[&id],
                Profile::Peer,
                control_plane_hosts.clone(),
            )?;
        }
        self.leaf(
            &ca,
            "kube-proxy",
            "system:kube-proxy",
            &["system:node-proxier"],
            Profile::Client,
            vec![],
        )?;
        self.leaf(
            &ca,
            "proxy-client",
            "aggregator",
            &[],
            Profile::Client,
            vec![],
        )?;
        // metrics-server: an API client (nodes, pods, kubelets' /metrics/resource) and,
        // behind the `v1beta1.metrics.k8s.io` APIService, a server the aggregator checks
        // as `metrics-server.kube-system.svc`.
        let metrics_hosts: Vec<String> = control_plane_hosts
            .iter()
            .cloned()
            .chain(
                [
                    "metrics-server.kube-system.svc",
                    "metrics-server.kube-system",
                ]
                .map(String::from),
            )
            .collect();
        self.leaf(
            &ca,
            "metrics-server",
            "system:metrics-server",
            &[],
            Profile::Peer,
            metrics_hosts,
        )?;
        self.leaf(&ca, "etcd", "etcd", &[], Profile::Peer, control_plane_hosts)?;
        if spec.kubelet_certs {
            for node in &spec.nodes {
                let cn = format!("system:node:{}", node.name);
                let hosts = vec![node.name.clone(), node.ip.to_string()];
                self.leaf(
                    &ca,
                    &format!("kubelet-{}", node.name),
                    &cn,
                    &["system:nodes"],
                    Profile::Peer,
                    hosts,
                )?;
            }
        }

        self.service_account_keys()?;
        if !self.keep(&["encryption-config.yaml".into()]) {
            let text = configs::encryption_config(&configs::random_aescbc_key()?);
            self.write("encryption-config.yaml", text.as_bytes(), Mode::Private)?;
        }
        if !self.keep(&["audit-policy.yaml".into()]) {
            self.write(
                "audit-policy.yaml",
                configs::audit_policy().as_bytes(),
                Mode::Public,
            )?;
        }

        let external = self.out.apiserver_url.clone();
        self.cert_kubeconfig(&ca, "admin", &external, "admin", "kubernetes")?;
        for component in ["kube-controller-manager", "kube-scheduler"] {
            let id = format!("system:{component}");
            self.cert_kubeconfig(&ca, component, &spec.local_apiserver_url, &id, &id)?;
        }
        self.cert_kubeconfig(&ca, "kube-proxy", &external, "kube-proxy", "default")?;
        let metrics = "system:metrics-server";
        self.cert_kubeconfig(
            &ca,
            "metrics-server",
            &spec.local_apiserver_url,
            metrics,
            metrics,
        )?;
        if spec.kubelet_certs {
            for node in &spec.nodes {
                let name = format!("kubelet-{}", node.name);
                let user = format!("system:node:{}", node.name);
                self.cert_kubeconfig(&ca, &name, &external, &user, "default")?;
            }
        }
        self.bootstrap(&ca)?;
        Ok(self.out)
    }

    fn ca(&mut self) -> Result<CertificateAuthority> {
        let (cert, key) = cert::pair_paths(&self.spec.dir, "ca");
        if !self.fresh && cert.exists() && key.exists() {
            self.out.kept.extend([cert.clone(), key.clone()]);
            return CertificateAuthority::load(&cert, &key);
        }
        self.fresh = true;
        let ca = CertificateAuthority::generate(
            &format!("{}-ca", self.spec.cluster_name),
            &[],
            self.spec.algorithm,
            self.spec.validity_days,
        )?;
        ca.pair().write(&self.spec.dir, "ca", true)?;
        self.out.written.extend([key, cert]);
        Ok(ca)
    }

    fn leaf(
        &mut self,
        ca: &CertificateAuthority,
        name: &str,
        cn: &str,
        orgs: &[&str],
        profile: Profile,
        hosts: Vec<String>,
    ) -> Result<()> {
        if self.keep(&[format!("{name}.pem"), format!("{name}-key.pem")]) {
            return Ok(());
        }
        let mut seen = BTreeSet::new();
        let mut spec = CertSpec::new(cn, orgs, profile);
        spec.hosts = hosts
            .into_iter()
            .filter(|h| seen.insert(h.clone()))
            .collect();
        spec.algorithm = self.spec.algorithm;
        spec.validity_days = self.spec.validity_days;
        let pair = ca.issue(&spec)?;
        pair.write(&self.spec.dir, name, true)?;
        let (cert, key) = cert::pair_paths(&self.spec.dir, name);
        self.out.written.extend([key, cert]);
        Ok(())
    }

    fn service_account_keys(&mut self) -> Result<()> {
        if self.keep(&["sa.key".into(), "sa.pub".into()]) {
            return Ok(());
        }
        let key = PrivateKey::generate(KeyAlgorithm::Rsa2048)?;
        self.write("sa.key", key.pem().as_bytes(), Mode::Private)?;
        self.write("sa.pub", key.public_key_pem().as_bytes(), Mode::Public)
    }

    /// `NAME.kubeconfig` for the `NAME.pem` client certificate, everything embedded.
    fn cert_kubeconfig(
        &mut self,
        ca: &CertificateAuthority,
        name: &str,
        server: &str,
        user: &str,
        context: &str,
    ) -> Result<()> {
        let file = format!("{name}.kubeconfig");
        // A kubeconfig is kept only with the very certificate it embeds.
        let (cert, key) = cert::pair_paths(&self.spec.dir, name);
        let cert_kept = self.out.kept.contains(&cert);
        if cert_kept && self.keep(std::slice::from_ref(&file)) {
            return Ok(());
        }
        let spec = KubeconfigSpec {
            cluster: self.spec.cluster_name.clone(),
            server: server.to_string(),
            ca: Material::Embedded(ca.cert_pem().as_bytes().to_vec()),
            user: user.to_string(),
            credentials: Credentials::ClientCertificate {
                cert: Material::from_path(&cert, true)?,
                key: Material::from_path(&key, true)?,
            },
            context: context.to_string(),
        };
        let text = Kubeconfig::build(&spec)?.to_yaml()?;
        self.write(&file, text.as_bytes(), Mode::Private)
    }

    /// Per node: a bootstrap token and `kubelet-bootstrap-<node>.kubeconfig`; for all
    /// nodes: `token.csv` and `bootstrap-token-secrets.yaml`.
    fn bootstrap(&mut self, ca: &CertificateAuthority) -> Result<()> {
        let mut csv = String::new();
        let mut secrets = String::new();
        let mut changed = false;
        let now = time::OffsetDateTime::now_utc();
        for node in &self.spec.nodes {
            let file = format!("kubelet-bootstrap-{}.kubeconfig", node.name);
            let options =
                bootstrap::kubelet_token_options(&node.name, self.spec.bootstrap_token_ttl);
            let kept = if self.keep(std::slice::from_ref(&file)) {
                existing_token(&self.path(&file))
            } else {
                None
            };
            let token = match kept {
                Some(t) => t,
                None => {
                    changed = true;
                    let token = BootstrapToken::generate()?;
                    let spec = KubeconfigSpec {
                        cluster: self.spec.cluster_name.clone(),
                        server: self.out.apiserver_url.clone(),
                        ca: Material::Embedded(ca.cert_pem().as_bytes().to_vec()),
                        user: "kubelet-bootstrap".into(),
                        credentials: Credentials::Token(token.token()),
                        context: "default".into(),
                    };
                    let text = Kubeconfig::build(&spec)?.to_yaml()?;
                    self.write(&file, text.as_bytes(), Mode::Private)?;
                    token
                }
            };
            csv.push_str(&bootstrap::token_csv_line(&token, &options));
            let secret = bootstrap::secret(&token, &options, now)?;
            secrets.push_str("---\n");
            secrets.push_str(&serde_saphyr::to_string(&secret).map_err(Error::SerializeYaml)?);
            self.out.bootstrap_tokens.push((node.name.clone(), token));
        }
        let group = [
            "token.csv".to_string(),
            "bootstrap-token-secrets.yaml".into(),
        ];
        if !changed && self.keep(&group) {
            return Ok(());
        }
        self.write("token.csv", csv.as_bytes(), Mode::Private)?;
        self.write(
            "bootstrap-token-secrets.yaml",
            secrets.as_bytes(),
            Mode::Private,
        )
    }
}

/// The token of an existing bootstrap kubeconfig, if it has a well-formed one.
fn existing_token(path: &Path) -> Option<BootstrapToken> {
    let kc = Kubeconfig::load(path).ok()?;
    let token = kc.users.first()?.user.token.clone()?;
    BootstrapToken::parse(&token).ok()
}

fn host_port(ip: IpAddr, port: u16) -> String {
    match ip {
        IpAddr::V4(v4) => format!("{v4}:{port}"),
        IpAddr::V6(v6) => format!("[{v6}]:{port}"),
    }
}

fn url_host(url: &str) -> Option<String> {
    let uri: http::Uri = url.parse().ok()?;
    let host = uri.host()?.trim_start_matches('[').trim_end_matches(']');
    Some(host.to_string())
}

#[cfg(test)]
#[path = "cluster_tests.rs"]
mod tests;
