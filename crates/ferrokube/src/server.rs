//! `ferrokube server`: everything on one machine: the storage layer (the embedded store
//! under `<data-dir>/db`, or etcd), the API server on `--bind-address` with the cluster
//! PKI generated under `<data-dir>/pki`, an admin kubeconfig at
//! `<data-dir>/admin.kubeconfig`, and the scheduler and controller-manager as tasks of
//! this process talking to the API server with their own credentials
//! (`--disable-scheduler`, `--disable-controller-manager` leave them out).

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;

use crate::apiserver_cmd::ApiServerArgs;
use crate::storage_flags::StorageFlags;

#[derive(Args, Debug)]
pub struct ServerArgs {
    /// Where all state lives: the store (db/), certificates (tls/), admin.kubeconfig.
    #[arg(long, value_name = "DIR", default_value = "/var/lib/ferrokube")]
    data_dir: PathBuf,
    /// The address the API server listens on.
    #[arg(long, default_value = "127.0.0.1")]
    bind_address: IpAddr,
    /// The API server's HTTPS port.
    #[arg(long, default_value_t = 6443)]
    secure_port: u16,
    /// The IPv4 range ClusterIPs are allocated from.
    #[arg(long, default_value = "10.43.0.0/16")]
    service_cluster_ip_range: String,
    /// Use an etcd cluster instead of the embedded store (comma-separated URLs).
    #[arg(long, value_name = "URLS")]
    etcd_servers: Option<String>,
    /// Do not run the scheduler in this process.
    #[arg(long)]
    disable_scheduler: bool,
    /// Do not run the controller-manager in this process (the API server then also
    /// leaves out the ServiceAccount admission plugin: no controller would create the
    /// `default` service accounts it requires).
    #[arg(long)]
    disable_controller_manager: bool,
    /// Do not run this machine as a node (no containerd, pod network or kubelet).
    #[arg(long)]
    disable_agent: bool,
    /// Do not run the cluster DNS (the kube-dns Service on <node IP>:53).
    #[arg(long)]
    disable_cluster_dns: bool,
    /// Do not run metrics-server (metrics.k8s.io for kubectl top and the HPA).
    #[arg(long)]
    disable_metrics_server: bool,
    /// metrics-server's port on the node IP (0, or a port in use: one the system picks).
    #[arg(long, default_value_t = crate::metrics_server_cmd::DEFAULT_SECURE_PORT)]
    metrics_server_port: u16,
    /// How this machine runs as a node.
    #[command(flatten)]
    node: crate::node_agent::NodeFlags,
}

/// Parses a component's flags as if given on its command line.
pub(crate) fn component_args<T: clap::Args>(name: &str, argv: &[String]) -> anyhow::Result<T> {
    #[derive(clap::Parser)]
    struct Wrap<A: clap::Args> {
        #[command(flatten)]
        args: A,
    }
    let wrap = <Wrap<T> as clap::Parser>::try_parse_from(
        std::iter::once(name.to_string()).chain(argv.iter().cloned()),
    )
    .with_context(|| format!("{name} flags"))?;
    Ok(wrap.args)
}

/// Starts the scheduler and controller-manager as tasks of this process, each an API
/// client with its own kubeconfig from the cluster PKI (as the seeds run them), with
/// leader election and secure ports on loopback (10259, 10257).
fn start_components(args: &ServerArgs, pki: &Path) -> anyhow::Result<()> {
    let p = |f: &str| pki.join(f).display().to_string();
    let delegated = |kc: &str| {
        vec![
            format!("--kubeconfig={}", p(kc)),
            format!("--authentication-kubeconfig={}", p(kc)),
            format!("--authorization-kubeconfig={}", p(kc)),
            format!("--client-ca-file={}", p("ca.pem")),
            "--bind-address=127.0.0.1".to_string(),
            "--leader-elect".to_string(),
        ]
    };
    if !args.disable_scheduler {
        let a: crate::scheduler_cmd::SchedulerArgs =
            component_args("kube-scheduler", &delegated("kube-scheduler.kubeconfig"))?;
        tokio::spawn(async move {
            if let Err(e) = crate::scheduler_cmd::run(a).await {
                tracing::error!(error = %format!("{e:#}"), "scheduler stopped");
            }
        });
    }
    if !args.disable_controller_manager {
        let mut argv = delegated("kube-controller-manager.kubeconfig");
        argv.extend([
            "--controllers=*,bootstrapsigner,tokencleaner".to_string(),
            "--use-service-account-credentials".to_string(),
            // As the seeds run it: at 20 QPS, the accounts and tokens of its
            // controllers alone take seconds at start.
            "--kube-api-qps=1000".to_string(),
            "--kube-api-burst=2000".to_string(),
            format!("--cluster-signing-cert-file={}", p("ca.pem")),
            format!("--cluster-signing-key-file={}", p("ca-key.pem")),
            format!("--root-ca-file={}", p("ca.pem")),
            format!("--service-account-private-key-file={}", p("sa.key")),
            format!("--cluster-cidr={}", args.node.cluster_cidr),
            "--allocate-node-cidrs".to_string(),
            format!(
                "--service-cluster-ip-range={}",
                args.service_cluster_ip_range
            ),
        ]);
        let a: crate::controller_manager_cmd::ControllerManagerArgs =
            component_args("kube-controller-manager", &argv)?;
        tokio::spawn(async move {
            if let Err(e) = crate::controller_manager_cmd::run(a).await {
                tracing::error!(error = %format!("{e:#}"), "controller-manager stopped");
            }
        });
    }
    Ok(())
}

/// The ClusterRoleBindings a `server` cluster adds to upstream's bootstrap policy:
/// - the seeds' `kube-apiserver-to-kubelet` step: user `kubernetes` (the API server's
///   client certificate towards kubelets) gets `system:kubelet-api-admin`, so kubelets
///   allow logs, exec and port-forward through the API server;
/// - `ferrokube:node-network`: `system:node-proxier` (read Nodes, Services, Endpoints,
///   EndpointSlices) for group `system:nodes`, so the pod network daemon beside each
///   kubelet works with the node's own credentials (upstream's Node authorizer lets a
///   node read only its own Node; flannel and cilium get the same through ClusterRoles
///   of their own).
async fn bind_server_roles(client: &kube::Client) -> anyhow::Result<()> {
    crate::join::bind_cluster_roles(
        client,
        &[
            (
                "ferrokube:kube-apiserver-to-kubelet",
                "system:kubelet-api-admin",
                "User",
                "kubernetes",
            ),
            (
                "ferrokube:node-network",
                "system:node-proxier",
                "Group",
                "system:nodes",
            ),
        ],
    )
    .await
}

/// The cluster DNS on `<node IP>:53`, published as `kube-system/kube-dns` at
/// `dns_ip`. A failure leaves the cluster without DNS, not without a control plane.
async fn start_cluster_dns(
    args: &ServerArgs,
    dns_ip: std::net::IpAddr,
    client: kube::Client,
) -> Option<ferrokube_dns::Handle> {
    let node_ip = args.node.node_ip_or_default();
    if node_ip.is_loopback() {
        tracing::warn!(%node_ip, "the node IP is a loopback address: pods cannot reach the cluster DNS there");
    }
    let handle =
        match crate::cluster_dns::start(node_ip, &args.node.cluster_domain, client.clone()).await {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "no cluster DNS");
                return None;
            }
        };
    if let Err(e) = crate::cluster_dns::publish(&client, dns_ip, node_ip).await {
        tracing::warn!(error = %format!("{e:#}"), "publishing the cluster DNS");
    }
    println!(
        "ferrokube server: cluster DNS on {node_ip}:53, Service kube-system/kube-dns at {dns_ip}"
    );
    Some(handle)
}

/// metrics-server on `<node IP>:<--metrics-server-port>`, published behind the
/// `v1beta1.metrics.k8s.io` APIService. A failure leaves the cluster without
/// `kubectl top`, not without a control plane.
async fn start_metrics_server(
    args: &ServerArgs,
    pki: &Path,
    client: &kube::Client,
    ca: &[u8],
    stopped: tokio::sync::watch::Receiver<bool>,
) {
    let node_ip = args.node.node_ip_or_default();
    let started = async {
        let port = crate::metrics_addon::free_port(node_ip, args.metrics_server_port)?;
        let a: crate::metrics_server_cmd::MetricsServerArgs = component_args(
            "metrics-server",
            &crate::metrics_addon::argv(pki, node_ip, port),
        )?;
        tokio::spawn(async move {
            if let Err(e) = crate::metrics_server_cmd::run_until(a, stopped).await {
                tracing::error!(error = %format!("{e:#}"), "metrics-server stopped");
            }
        });
        crate::metrics_addon::publish(client, node_ip, port, ca).await?;
        anyhow::Ok(port)
    };
    match started.await {
        Ok(port) => println!(
            "ferrokube server: metrics-server on {node_ip}:{port} (APIService v1beta1.metrics.k8s.io)"
        ),
        Err(e) => tracing::warn!(error = %format!("{e:#}"), "no metrics-server"),
    }
}

/// A client with the PKI's admin (system:masters) credentials.
async fn admin_client(pki: &Path) -> anyhow::Result<kube::Client> {
    Ok(ferrokube_client::ClientConfig::new(
        pki.join("admin.kubeconfig"),
        "ferrokube-server",
        crate::kubelet_cmd::VERSION,
    )
    .build()
    .await?)
}

/// The address other hosts reach the API server at: the bind address, or with an
/// unspecified one, `--node-ip` or this host's default address.
fn advertised(args: &ServerArgs, bound: &str) -> String {
    if !args.bind_address.is_unspecified() {
        return bound.to_string();
    }
    std::net::SocketAddr::new(args.node.node_ip_or_default(), args.secure_port).to_string()
}

/// The admin's bearer token, generated once and kept in `<data-dir>/tls/admin.token`; it
/// authenticates user `admin` in group `system:masters` through the token file
/// `<data-dir>/tls/tokens.csv` (upstream's `--token-auth-file` format).
fn admin_token(dir: &Path) -> anyhow::Result<String> {
    let path = dir.join("admin.token");
    if let Ok(t) = std::fs::read_to_string(&path) {
        if !t.trim().is_empty() {
            return Ok(t.trim().to_string());
        }
    }
    let token = format!("{}{}", uuid_hex(), uuid_hex());
    write_private(&path, &token)?;
    Ok(token)
}

/// Writes a file only its owner can read (credentials), atomically.
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    ferrokube_pki::files::write_atomic(
        path,
        text.as_bytes(),
        ferrokube_pki::files::Mode::Private,
        true,
    )
    .with_context(|| format!("writing {}", path.display()))
}

fn uuid_hex() -> String {
    // 122 random bits per call from the OS generator, via the apiserver's uid source.
    ferrokube_apiserver::random_hex()
}

/// The admin kubeconfig: this server, its CA, the admin token.
fn write_kubeconfig(path: &Path, server: &str, ca_pem: &[u8], token: &str) -> anyhow::Result<()> {
    use ferrokube_pki::kubeconfig::{Credentials, Kubeconfig, KubeconfigSpec, Material};
    Kubeconfig::build(&KubeconfigSpec {
        cluster: "ferrokube".into(),
        server: format!("https://{server}"),
        ca: Material::Embedded(ca_pem.to_vec()),
        user: "admin".into(),
        credentials: Credentials::Token(token.into()),
        context: "ferrokube".into(),
    })?
    .write(path, true)?;
    Ok(())
}

/// Generates (or keeps) the PKI under `dir` for this single-node cluster.
async fn cluster_pki(args: &ServerArgs, dir: &Path, host: &str) -> anyhow::Result<PathBuf> {
    let host = host.to_string();
    let ip = if args.bind_address.is_unspecified() {
        std::net::IpAddr::from([127, 0, 0, 1])
    } else {
        args.bind_address
    };
    let url = format!(
        "https://{}",
        std::net::SocketAddr::new(ip, args.secure_port)
    );
    let mut spec = ferrokube_pki::cluster::ClusterSpec::new(
        dir,
        vec![ferrokube_pki::cluster::Node { name: host, ip }],
    );
    spec.service_cidr = args.service_cluster_ip_range.clone();
    spec.apiserver_url = Some(url.clone());
    spec.local_apiserver_url = url;
    spec.extra_sans = vec!["127.0.0.1".into(), "localhost".into()];
    if args.bind_address.is_unspecified() {
        // Listening everywhere: other hosts use this host's address.
        spec.extra_sans
            .push(args.node.node_ip_or_default().to_string());
    }
    // ECDSA: fast to generate on first start.
    spec.algorithm = ferrokube_pki::keys::KeyAlgorithm::EcdsaP256;
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || ferrokube_pki::cluster::generate(&spec))
        .await
        .context("generating the cluster PKI")?
        .with_context(|| format!("generating the cluster PKI in {}", dir.display()))?;
    Ok(dir)
}

pub async fn run(args: ServerArgs) -> anyhow::Result<()> {
    let tls_dir = args.data_dir.join("tls");
    std::fs::create_dir_all(&tls_dir).with_context(|| format!("creating {}", tls_dir.display()))?;
    let token = admin_token(&tls_dir)?;
    let tokens = tls_dir.join("tokens.csv");
    // The cluster's PKI, as `ferrokube pki cluster` makes it for the seeds (once; kept
    // across restarts): CA, API server certificate, component certificates and
    // kubeconfigs, this node's kubelet credentials, the service-account signing pair.
    let pki_dir = args.data_dir.join("pki");
    let node_name = args.node.node_name();
    let pki = cluster_pki(&args, &pki_dir, &node_name).await?;
    let (sa_key, sa_pub) = (pki_dir.join("sa.key"), pki_dir.join("sa.pub"));
    write_private(
        &tokens,
        &format!("{token},admin,admin,\"system:masters\"\n"),
    )?;
    let storage = StorageFlags {
        data_dir: args.data_dir.join("db"),
        etcd_servers: args.etcd_servers.clone(),
        etcd_prefix: "/registry".into(),
        etcd_cafile: None,
        etcd_certfile: None,
        etcd_keyfile: None,
        etcd_compaction_interval: std::time::Duration::from_secs(300),
    };
    let api = ApiServerArgs {
        bind_address: args.bind_address,
        secure_port: args.secure_port,
        advertise_address: None,
        tls_cert_file: Some(pki_dir.join("kubernetes.pem")),
        tls_private_key_file: Some(pki_dir.join("kubernetes-key.pem")),
        cert_dir: args.data_dir.join("tls"),
        service_cluster_ip_range: args.service_cluster_ip_range.clone(),
        service_node_port_range: "30000-32767".into(),
        event_ttl: std::time::Duration::from_secs(3600),
        max_requests_inflight: 400,
        max_mutating_requests_inflight: 200,
        security: crate::apiserver_flags::SecurityFlags {
            client_ca_file: Some(pki_dir.join("ca.pem")),
            enable_bootstrap_token_auth: true,
            token_auth_file: Some(tokens.clone()),
            authorization_mode: "Node,RBAC".into(),
            service_account_signing_key_file: Some(sa_key.clone()),
            service_account_key_file: vec![sa_pub.clone()],
            service_account_issuer: vec!["https://kubernetes.default.svc.cluster.local".into()],
            // As the seeds: aggregated API servers (metrics-server) trust requests the
            // API server forwards with its proxy-client certificate (CN aggregator).
            requestheader_client_ca_file: Some(pki_dir.join("ca.pem")),
            requestheader_allowed_names: vec!["aggregator".into()],
            requestheader_username_headers: vec!["X-Remote-User".into()],
            requestheader_group_headers: vec!["X-Remote-Group".into()],
            requestheader_extra_headers_prefix: vec!["X-Remote-Extra-".into()],
            ..Default::default()
        },
        compat: crate::apiserver_flags::CompatFlags {
            // As the seeds: the API server's certificate (client auth too) towards
            // kubelets, which authorize user `kubernetes` through
            // system:kubelet-api-admin (bound below).
            kubelet_client_certificate: Some(pki_dir.join("kubernetes.pem")),
            kubelet_client_key: Some(pki_dir.join("kubernetes-key.pem")),
            kubelet_preferred_address_types: Some("InternalIP,ExternalIP,Hostname".into()),
            proxy_client_cert_file: Some(pki_dir.join("proxy-client.pem")),
            proxy_client_key_file: Some(pki_dir.join("proxy-client-key.pem")),
            // The seeds' advice when no kube-proxy runs beside the API server: reach
            // aggregated API servers at their endpoints, not their cluster IPs.
            enable_aggregator_routing: Some(true),
            // Without the controller-manager nothing creates the `default` service
            // accounts the ServiceAccount admission plugin requires of every pod.
            disable_admission_plugins: if args.disable_controller_manager {
                vec!["ServiceAccount".into()]
            } else {
                Vec::new()
            },
            ..Default::default()
        },
        storage,
    };
    // The join token exists before the admin kubeconfig does: whoever waits for
    // the kubeconfig (a script, a test) may read the token next.
    let join_token = crate::join::node_token(&args.data_dir.join("node-token"))?;
    let backend = api.storage.open(true).await?;
    let server = api.start(backend.store()).await?;
    let ca_file = pki.join("ca.pem");
    let ca = std::fs::read(&ca_file).with_context(|| format!("reading {}", ca_file.display()))?;
    let kubeconfig = args.data_dir.join("admin.kubeconfig");
    let addr = server
        .local_addr()
        .map_or_else(|| api.advertise(), |a| a.to_string());
    write_kubeconfig(&kubeconfig, &addr, &ca, &token)?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let serving = tokio::spawn(server.run(stopped.clone()));
    start_components(&args, &pki)?;
    let url = format!("https://{}", advertised(&args, &addr));
    let cluster_dns = if args.disable_cluster_dns {
        None
    } else {
        Some(match args.node.cluster_dns {
            Some(ip) => ip,
            None => crate::cluster_dns::default_address(&args.service_cluster_ip_range)?,
        })
    };
    let mut dns = None;
    match admin_client(&pki).await {
        Ok(client) => {
            if let Err(e) = bind_server_roles(&client).await {
                tracing::warn!(error = %format!("{e:#}"), "creating the server's ClusterRoleBindings");
            }
            if let Err(e) = crate::join::publish(&client, &join_token, &url, &ca).await {
                tracing::warn!(error = %format!("{e:#}"), "publishing what joining nodes need");
            }
            if !args.disable_metrics_server {
                start_metrics_server(&args, &pki, &client, &ca, stopped.clone()).await;
            }
            if let Some(dns_ip) = cluster_dns {
                dns = start_cluster_dns(&args, dns_ip, client).await;
            }
        }
        Err(e) => tracing::warn!(error = %format!("{e:#}"), "building the server's admin client"),
    }
    println!(
        "ferrokube server: API server on https://{addr} ({} storage)",
        backend.store().backend()
    );
    let agent = if args.disable_agent {
        None
    } else {
        let opts = args.node.options(
            args.data_dir.join("agent"),
            node_name.clone(),
            pki.join(format!("kubelet-{node_name}.kubeconfig")),
            None,
            pki.join("ca.pem"),
            cluster_dns,
        )?;
        // The control plane stays up without a node (no runtime here, not root, …).
        match crate::node_agent::NodeAgent::start(opts).await {
            Ok(a) => {
                println!(
                    "ferrokube server: node {node_name} (containerd at {})",
                    a.socket.display()
                );
                Some(a)
            }
            Err(e) => {
                println!("ferrokube server: this machine is not a node: {e:#}");
                tracing::error!(error = %format!("{e:#}"), "node agent not started");
                None
            }
        }
    };
    println!(
        "ferrokube server: export KUBECONFIG={}",
        kubeconfig.display()
    );
    println!("ferrokube server: then try: kubectl get namespaces");
    println!(
        "ferrokube server: join other hosts with: ferrokube agent --server {url} --token $(cat {})",
        args.data_dir.join("node-token").display()
    );
    wait_for_signal().await?;
    tracing::info!("ferrokube server: shutting down");
    if let Some(a) = agent {
        a.stop().await;
    }
    if let Some(d) = dns {
        d.stop();
    }
    let _ = stop.send(true);
    let _ = serving.await;
    backend.shutdown().await;
    Ok(())
}

pub async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}
