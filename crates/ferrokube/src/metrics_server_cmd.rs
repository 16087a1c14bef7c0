//! `ferrokube metrics-server` (or `metrics-server`): kubernetes-sigs/metrics-server with
//! its flags — scrapes every kubelet's `/metrics/resource` and serves
//! `metrics.k8s.io/v1beta1` on the secure port (4443 by default: upstream's 10250 is
//! the kubelet's own port on the hosts ferrokube runs it on) behind delegated
//! authentication and authorization. See docs/metrics-server.md.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context};
use clap::Args;
use ferrokube_component_base::{DelegatedAuthFlags, SecureServingFlags};
use ferrokube_metrics_server::cluster::KubeCluster;
use ferrokube_metrics_server::kubelet::{KubeletClient, KubeletTls, DEFAULT_ADDRESS_TYPES};
use ferrokube_metrics_server::server::SecurePort;
use ferrokube_metrics_server::{LabelSelector, MetricsServer, Options};
use tokio::sync::watch;

const VERSION: &str = concat!("v0.8.0-ferrokube.", env!("CARGO_PKG_VERSION"));
const COMPONENT: &str = "metrics-server";

/// The default secure port (upstream: 10250, which the kubelet holds on our hosts).
pub const DEFAULT_SECURE_PORT: u16 = 4443;

#[derive(Args, Debug, Clone)]
pub struct MetricsServerArgs {
    /// The path to the kubeconfig used to connect to the Kubernetes API server and the
    /// Kubelets (required: in-cluster configuration is not supported). Also the
    /// default of --authentication-kubeconfig and --authorization-kubeconfig.
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// The resolution at which metrics-server will retain metrics, must be set to a
    /// value at least 10s. The first interval after start is at most 5s.
    #[arg(long, default_value = "15s", value_parser = crate::duration::parse_go_duration)]
    pub metric_resolution: Duration,
    /// The priority of node address types to use when determining which address to
    /// use to connect to a particular node.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "Hostname,InternalDNS,InternalIP,ExternalDNS,ExternalIP"
    )]
    pub kubelet_preferred_address_types: Vec<String>,
    /// The port to use to connect to Kubelets.
    #[arg(long, default_value_t = 10250)]
    pub kubelet_port: u16,
    /// Use the port in the node status. Takes precedence over --kubelet-port flag.
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    pub kubelet_use_node_status_port: bool,
    /// Do not verify CA of serving certificates presented by Kubelets. For testing
    /// purposes only.
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    pub kubelet_insecure_tls: bool,
    /// Path to the CA to use to validate the Kubelet's serving certificates (default:
    /// the kubeconfig's certificate authority).
    #[arg(long, value_name = "FILE")]
    pub kubelet_certificate_authority: Option<PathBuf>,
    /// Path to a client cert file for TLS (default: the kubeconfig's client
    /// certificate).
    #[arg(long, value_name = "FILE")]
    pub kubelet_client_certificate: Option<PathBuf>,
    /// Path to a client key file for TLS (default: the kubeconfig's client key).
    #[arg(long, value_name = "FILE")]
    pub kubelet_client_key: Option<PathBuf>,
    /// The length of time to wait before giving up on a single request to Kubelet.
    #[arg(long, default_value = "10s", value_parser = crate::duration::parse_go_duration)]
    pub kubelet_request_timeout: Duration,
    /// Selector (label query) to filter on, not including uninitialized ones, supports
    /// '=', '==', and '!='.(e.g. -l key1=value1,key2=value2).
    #[arg(long, default_value = "")]
    pub node_selector: String,
    #[command(flatten)]
    pub serving: SecureServingFlags,
    #[command(flatten)]
    pub auth: DelegatedAuthFlags,
    /// Log verbosity (upstream's klog level; --log / FERROKUBE_LOG decide here).
    #[arg(long = "v", hide = true)]
    pub verbosity: Option<u32>,
    #[arg(long, hide = true, num_args = 0..=1, default_missing_value = "true")]
    pub logtostderr: Option<String>,
}

/// Upstream's `Options.validate`, with the flag named in every message.
fn validate(args: &MetricsServerArgs) -> anyhow::Result<LabelSelector> {
    anyhow::ensure!(
        args.metric_resolution >= Duration::from_secs(10),
        "--metric-resolution should be a time duration at least 10s, but value {:?} provided",
        args.metric_resolution
    );
    anyhow::ensure!(
        !(args.kubelet_insecure_tls && args.kubelet_certificate_authority.is_some()),
        "cannot use both --kubelet-certificate-authority and --kubelet-insecure-tls"
    );
    anyhow::ensure!(
        args.kubelet_client_key.is_some() == args.kubelet_client_certificate.is_some(),
        "need both --kubelet-client-key and --kubelet-client-certificate"
    );
    anyhow::ensure!(
        args.kubelet_port != 0,
        "--kubelet-port must be between 1 and 65535"
    );
    anyhow::ensure!(
        !args.kubelet_request_timeout.is_zero(),
        "--kubelet-request-timeout must be positive"
    );
    anyhow::ensure!(
        !args.kubelet_preferred_address_types.is_empty(),
        "--kubelet-preferred-address-types must not be empty"
    );
    for t in &args.kubelet_preferred_address_types {
        anyhow::ensure!(
            DEFAULT_ADDRESS_TYPES.contains(&t.as_str()),
            "--kubelet-preferred-address-types: unknown address type {t:?} (valid: {})",
            DEFAULT_ADDRESS_TYPES.join(", ")
        );
    }
    LabelSelector::parse(&args.node_selector)
        .map_err(|e| anyhow!("--node-selector {:?}: {e}", args.node_selector))
}

fn read_flag_file(flag: &str, path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("{flag} {}", path.display()))
}

/// The kubelet client: `--kubelet-*` files where given, else the kubeconfig's CA,
/// client certificate/key and token (upstream copies the API client's config).
fn kubelet_client(args: &MetricsServerArgs, kubeconfig: &Path) -> anyhow::Result<KubeletClient> {
    let resolved = ferrokube_pki::kubeconfig::Kubeconfig::load(kubeconfig)
        .and_then(|k| k.resolve(kubeconfig))
        .map_err(|e| anyhow!("--kubeconfig {}: {e}", kubeconfig.display()))?;
    let mut tls = KubeletTls {
        insecure: args.kubelet_insecure_tls,
        ..KubeletTls::default()
    };
    match &args.kubelet_certificate_authority {
        Some(path) => {
            let pem = read_flag_file("--kubelet-certificate-authority", path)?;
            ferrokube_component_base::tls::root_store(&pem)
                .map_err(|e| anyhow!("--kubelet-certificate-authority {}: {e}", path.display()))?;
            tls.ca_pem = Some(pem);
        }
        None if !tls.insecure => {
            tls.ca_pem = resolved.ca_pem.clone();
            tls.insecure = resolved.ca_pem.is_none() && resolved.insecure_skip_tls_verify;
        }
        None => {}
    }
    let identity_from_flags = args.kubelet_client_certificate.is_some();
    match (&args.kubelet_client_certificate, &args.kubelet_client_key) {
        (Some(cert), Some(key)) => {
            tls.client_cert_pem = Some(read_flag_file("--kubelet-client-certificate", cert)?);
            tls.client_key_pem = Some(read_flag_file("--kubelet-client-key", key)?);
        }
        _ => {
            tls.client_cert_pem = resolved.client_cert_pem.clone();
            tls.client_key_pem = resolved.client_key_pem.clone();
        }
    }
    let config = tls.client_config().map_err(|e| {
        if identity_from_flags && (e.starts_with("client") || e.contains("key")) {
            anyhow!("--kubelet-client-certificate/--kubelet-client-key: {e}")
        } else if e.contains("--kubelet-certificate-authority") {
            anyhow!("{e}")
        } else {
            anyhow!(
                "kubelet client TLS from --kubeconfig {}: {e}",
                kubeconfig.display()
            )
        }
    })?;
    Ok(
        KubeletClient::new(config, resolved.token.clone(), args.kubelet_port)
            .use_node_status_port(args.kubelet_use_node_status_port)
            .preferred_address_types(args.kubelet_preferred_address_types.clone())
            .timeout(args.kubelet_request_timeout)
            .user_agent(&ferrokube_client::user_agent(COMPONENT, VERSION)),
    )
}

/// Runs until SIGTERM or SIGINT.
pub async fn run(args: MetricsServerArgs) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("SIGINT handler")?;
    let (stop, shutdown) = watch::channel(false);
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::info!("metrics-server shutting down");
        let _ = stop.send(true);
    });
    run_until(args, shutdown).await
}

/// Runs until `shutdown` turns true (or its sender is dropped): for starting the
/// metrics-server inside another process.
pub async fn run_until(
    mut args: MetricsServerArgs,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let node_selector = validate(&args)?;
    let kubeconfig = args.kubeconfig.clone().ok_or_else(|| {
        anyhow!("--kubeconfig is required (in-cluster configuration is not supported)")
    })?;
    // Upstream (in-cluster) uses one identity for all three; so do we by default.
    if args.auth.authentication_kubeconfig.is_none() {
        args.auth.authentication_kubeconfig = Some(kubeconfig.clone());
    }
    if args.auth.authorization_kubeconfig.is_none() {
        args.auth.authorization_kubeconfig = Some(kubeconfig.clone());
    }
    let client = ferrokube_client::ClientConfig::new(&kubeconfig, COMPONENT, VERSION)
        .build()
        .await?;
    let kubelet = kubelet_client(&args, &kubeconfig)?;

    if !args.auth.authentication_skip_lookup
        && (args.auth.client_ca_file.is_none() || args.auth.requestheader_client_ca_file.is_none())
    {
        let lookup_client = match &args.auth.authentication_kubeconfig {
            Some(p) if *p != kubeconfig => {
                ferrokube_client::ClientConfig::new(p, COMPONENT, VERSION)
                    .build()
                    .await
                    .map_err(|e| anyhow!("--authentication-kubeconfig: {e}"))?
            }
            _ => client.clone(),
        };
        let dir = args.serving.cert_dir.clone().unwrap_or_else(|| {
            std::env::temp_dir().join(format!("ferrokube-metrics-server-{}", std::process::id()))
        });
        match ferrokube_metrics_server::authentication::lookup(&mut args.auth, &lookup_client, &dir).await {
            Ok(taken) if !taken.is_empty() => tracing::info!(
                from = "kube-system/extension-apiserver-authentication",
                settings = ?taken,
                "authentication settings looked up"
            ),
            Ok(_) => {}
            Err(e) if args.auth.authentication_tolerate_lookup_failure => tracing::warn!(
                error = %e,
                "unable to get the authentication configuration from the cluster: requests proxied by the API server may be unauthenticated"
            ),
            Err(e) => {
                return Err(anyhow!(
                    "{e} (use --authentication-skip-lookup or --authentication-tolerate-lookup-failure)"
                ))
            }
        }
    }
    let auth = args
        .auth
        .build(COMPONENT, VERSION)
        .await
        .context("delegated authentication")?;
    let options = Options {
        resolution: args.metric_resolution,
        node_selector,
    };
    let ms = MetricsServer::new(Arc::new(KubeCluster::new(client)), kubelet, auth, options);
    let port = match args.serving.bind_addr(DEFAULT_SECURE_PORT) {
        Some(addr) => {
            let cert = args.serving.serving_cert(COMPONENT)?;
            Some(SecurePort::bind(addr, cert, ms.server().auth()).await?)
        }
        None => {
            tracing::warn!("--secure-port=0: the metrics API is not served");
            None
        }
    };
    tracing::info!(
        resolution = ?args.metric_resolution,
        addr = ?port.as_ref().and_then(SecurePort::local_addr),
        "metrics-server started"
    );
    ms.run(port, shutdown).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrap {
        #[command(flatten)]
        args: MetricsServerArgs,
    }

    fn parse(argv: &[&str]) -> Result<MetricsServerArgs, clap::Error> {
        Wrap::try_parse_from(std::iter::once("metrics-server").chain(argv.iter().copied()))
            .map(|w| w.args)
    }

    #[test]
    fn defaults_are_upstreams() {
        let a = parse(&[]).unwrap();
        assert_eq!(a.metric_resolution, Duration::from_secs(15));
        assert_eq!(a.kubelet_port, 10250);
        assert_eq!(a.kubelet_request_timeout, Duration::from_secs(10));
        assert_eq!(a.kubelet_preferred_address_types, DEFAULT_ADDRESS_TYPES);
        assert!(!a.kubelet_insecure_tls && !a.kubelet_use_node_status_port);
        assert_eq!(
            a.serving.bind_addr(DEFAULT_SECURE_PORT).unwrap().port(),
            4443
        );
        assert!(validate(&a).unwrap().is_empty());
    }

    #[test]
    fn flags_as_deployments_pass_them() {
        let a = parse(&[
            "--kubeconfig=/k",
            "--metric-resolution=30s",
            "--kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname",
            "--kubelet-use-node-status-port",
            "--kubelet-insecure-tls",
            "--secure-port=10250",
            "--cert-dir=/tmp",
            "--node-selector=kubernetes.io/os=linux",
            "--kubelet-request-timeout=2s",
            "--v=2",
        ])
        .unwrap();
        assert_eq!(a.metric_resolution, Duration::from_secs(30));
        assert_eq!(
            a.kubelet_preferred_address_types,
            ["InternalIP", "ExternalIP", "Hostname"]
        );
        assert!(a.kubelet_use_node_status_port && a.kubelet_insecure_tls);
        assert_eq!(a.serving.secure_port, Some(10250));
        assert_eq!(validate(&a).unwrap().requirements.len(), 1);
        assert!(parse(&["--kubelet-insecure-tls=false"]).is_ok());
        assert!(parse(&["--metric-resolution=fast"]).is_err());
    }

    #[test]
    fn bad_flags_are_named() {
        let err = |argv: &[&str]| validate(&parse(argv).unwrap()).unwrap_err().to_string();
        assert!(err(&["--metric-resolution=5s"]).starts_with("--metric-resolution"));
        assert_eq!(
            err(&[
                "--kubelet-insecure-tls",
                "--kubelet-certificate-authority=/ca"
            ]),
            "cannot use both --kubelet-certificate-authority and --kubelet-insecure-tls"
        );
        assert_eq!(
            err(&["--kubelet-client-key=/k"]),
            "need both --kubelet-client-key and --kubelet-client-certificate"
        );
        assert!(err(&["--kubelet-preferred-address-types=InternalIP,Nope"])
            .contains("unknown address type \"Nope\""));
        assert!(err(&["--node-selector=a in b"]).starts_with("--node-selector"));
        assert!(err(&["--kubelet-port=0"]).starts_with("--kubelet-port"));
    }

    #[tokio::test]
    async fn missing_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let (ca, _) = ferrokube_component_base::tls::generate_self_signed(&["x".into()]).unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::write(
            &kubeconfig,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:6443\n    certificate-authority-data: {}\ncontexts:\n- name: c\n  context: {{cluster: c, user: u}}\ncurrent-context: c\nusers:\n- name: u\n  user: {{token: abc}}\n",
                base64::Engine::encode(&base64::engine::general_purpose::STANDARD, ca.as_bytes())
            ),
        )
        .unwrap();
        let args = parse(&["--kubelet-certificate-authority=/nope/ca.crt"]).unwrap();
        let e = kubelet_client(&args, &kubeconfig).unwrap_err();
        assert!(
            format!("{e:#}").starts_with("--kubelet-certificate-authority /nope/ca.crt"),
            "{e:#}"
        );
        let garbage = dir.path().join("garbage.crt");
        std::fs::write(&garbage, "nope").unwrap();
        let args = parse(&[&format!(
            "--kubelet-certificate-authority={}",
            garbage.display()
        )])
        .unwrap();
        let e = kubelet_client(&args, &kubeconfig).unwrap_err().to_string();
        assert!(e.starts_with("--kubelet-certificate-authority"), "{e}");
        // The kubeconfig's CA and token are enough.
        assert!(kubelet_client(&parse(&[]).unwrap(), &kubeconfig).is_ok());
        let e = kubelet_client(&parse(&[]).unwrap(), &dir.path().join("none"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("--kubeconfig"), "{e}");
        let args = parse(&["--kubeconfig=/nope"]).unwrap();
        let (_stop, shutdown) = watch::channel(false);
        let e = run_until(args, shutdown).await.unwrap_err();
        assert!(format!("{e:#}").contains("--kubeconfig /nope"), "{e:#}");
        let (_stop, shutdown) = watch::channel(false);
        let e = run_until(parse(&[]).unwrap(), shutdown).await.unwrap_err();
        assert!(e.to_string().starts_with("--kubeconfig is required"), "{e}");
    }
}
