//! `ferrokube agent --server URL --token TOKEN`: joins this host to a `server`'s
//! cluster as a node. The first start finds the cluster's CA in the server's signed
//! `kube-public/cluster-info` ([`crate::join`]), writes a bootstrap kubeconfig with
//! the token, and the kubelet gets its client certificate through TLS bootstrap (the
//! server approves it automatically) and asks for a serving certificate (pending until
//! an administrator approves it: `kubectl certificate approve`). Then the node runs as
//! `server`'s does: containerd, the pod network and the kubelet, with state under
//! `<data-dir>/agent/`. Later starts reuse the node's credentials.
//!
//! Given several API servers (`--server` repeated, the seeds' two masters), the agent
//! runs the kube-nginx role in-process: a `ferrokube lb` on `--lb-address`
//! (127.0.0.1:6444) that spreads the node's connections over the servers that answer
//! `/readyz`, and the kubelet, pod network and kube-proxy talk to it.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use ferrokube_pki::bootstrap::BootstrapToken;

#[derive(Args, Debug)]
pub struct AgentArgs {
    /// The API server to join (`https://host:6443`); repeat it (or separate URLs with
    /// commas) for several API servers, which the node then reaches through an
    /// in-process load balancer on --lb-address.
    #[arg(long, value_name = "URL", required = true, value_delimiter = ',')]
    server: Vec<String>,
    /// Where the in-process load balancer listens when several --server are given.
    #[arg(long, value_name = "IP:PORT", default_value = "127.0.0.1:6444")]
    lb_address: std::net::SocketAddr,
    /// The join token, `<id>.<secret>` (`<server data-dir>/node-token`, or one made
    /// with `ferrokube pki bootstrap-token`).
    #[arg(
        long,
        value_name = "TOKEN",
        required_unless_present_any = ["token_file", "bootstrap_kubeconfig"]
    )]
    token: Option<String>,
    /// A file holding the join token.
    #[arg(long, value_name = "FILE", conflicts_with = "token")]
    token_file: Option<PathBuf>,
    /// Join with a kubelet bootstrap kubeconfig instead of a token, e.g.
    /// `kubelet-bootstrap-<node>.kubeconfig` from `ferrokube pki cluster`: its CA is
    /// trusted as given (no cluster-info discovery) and its token does TLS bootstrap.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["token", "token_file"])]
    bootstrap_kubeconfig: Option<PathBuf>,
    /// Where this node's state lives (agent/ below it).
    #[arg(long, value_name = "DIR", default_value = "/var/lib/ferrokube")]
    data_dir: PathBuf,
    /// How this machine runs as a node.
    #[command(flatten)]
    node: crate::node_agent::NodeFlags,
}

impl AgentArgs {
    fn token(&self) -> anyhow::Result<BootstrapToken> {
        let (flag, text) = match (&self.token, &self.token_file) {
            (Some(t), _) => ("--token".to_string(), t.clone()),
            (None, Some(f)) => (
                format!("--token-file {}", f.display()),
                std::fs::read_to_string(f)
                    .with_context(|| format!("--token-file {}", f.display()))?,
            ),
            (None, None) => anyhow::bail!("--token or --token-file is required"),
        };
        BootstrapToken::parse(text.trim()).with_context(|| format!("{flag}: not a join token"))
    }

    /// The CA and token of --bootstrap-kubeconfig.
    fn from_bootstrap_kubeconfig(
        path: &std::path::Path,
    ) -> anyhow::Result<(Vec<u8>, BootstrapToken)> {
        let flag = || format!("--bootstrap-kubeconfig {}", path.display());
        let kc = ferrokube_pki::kubeconfig::Kubeconfig::load(path).with_context(flag)?;
        let resolved = kc.resolve(path).with_context(flag)?;
        let ca = resolved
            .ca_pem
            .with_context(|| format!("{}: the cluster has no certificate-authority", flag()))?;
        let token = resolved
            .token
            .with_context(|| format!("{}: the user has no token", flag()))?;
        let token = BootstrapToken::parse(token.trim())
            .with_context(|| format!("{}: the token is not a bootstrap token", flag()))?;
        Ok((ca, token))
    }
}

/// The bootstrap kubeconfig: the server, the CA found in cluster-info, the token.
fn bootstrap_kubeconfig(
    server: &str,
    ca_pem: &[u8],
    token: &BootstrapToken,
) -> anyhow::Result<ferrokube_pki::kubeconfig::Kubeconfig> {
    use ferrokube_pki::kubeconfig::{Credentials, Kubeconfig, KubeconfigSpec, Material};
    Ok(Kubeconfig::build(&KubeconfigSpec {
        cluster: "default".into(),
        server: server.into(),
        ca: Material::Embedded(ca_pem.to_vec()),
        user: "kubelet-bootstrap".into(),
        credentials: Credentials::Token(token.token()),
        context: "default".into(),
    })?)
}

/// The API server URLs of `--server`, checked and without a trailing `/`, duplicates
/// dropped.
fn servers(args: &AgentArgs) -> anyhow::Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for s in &args.server {
        ferrokube_pki::kubeconfig::validate_server_url(s.trim(), "--server")?;
        let s = s.trim().trim_end_matches('/').to_string();
        if !out.contains(&s) {
            out.push(s);
        }
    }
    Ok(out)
}

/// Points every cluster of the kubeconfig at `server` (a node that joined one server
/// and is now given several moves to the load balancer, and back).
fn repoint_kubeconfig(path: &std::path::Path, server: &str) -> anyhow::Result<()> {
    let mut kc = ferrokube_pki::kubeconfig::Kubeconfig::load(path)?;
    if kc.clusters.iter().all(|c| c.cluster.server == server) {
        return Ok(());
    }
    for c in &mut kc.clusters {
        c.cluster.server = server.to_string();
    }
    kc.write(path, true)?;
    tracing::info!(kubeconfig = %path.display(), server, "kubeconfig now points at the API server address");
    Ok(())
}

/// Starts the in-process load balancer in front of `servers` on `listen`. Servers are
/// checked with `GET /readyz` when `anonymous_readyz` (a cluster that serves
/// cluster-info to anonymous clients lets them read /readyz too), else by TCP connect
/// (the seeds' API servers run with --anonymous-auth=false).
async fn start_lb(
    listen: std::net::SocketAddr,
    servers: &[String],
    ca_file: &std::path::Path,
    anonymous_readyz: bool,
) -> anyhow::Result<ferrokube_lb::Handle> {
    let config = ferrokube_lb::Config::for_api_servers(listen, servers).context("--server")?;
    let config = if anonymous_readyz {
        config.with_readyz_check(ca_file)
    } else {
        config.with_tcp_check()
    };
    let lb = ferrokube_lb::Lb::start(config).await.with_context(|| {
        format!("starting the API server load balancer on --lb-address {listen}")
    })?;
    tracing::info!(
        "ferrokube agent: load balancer on {listen} -> {}",
        servers.join(", ")
    );
    Ok(lb)
}

pub async fn run(args: AgentArgs) -> anyhow::Result<()> {
    let (given_ca, token) = match &args.bootstrap_kubeconfig {
        Some(path) => {
            let (ca, token) = AgentArgs::from_bootstrap_kubeconfig(path)?;
            (Some(ca), token)
        }
        None => (None, args.token()?),
    };
    let servers = servers(&args)?;
    let dir = args.data_dir.join("agent");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let kubeconfig = dir.join("kubelet.kubeconfig");
    let ca_file = dir.join("ca.pem");
    let bootstrap = dir.join("bootstrap.kubeconfig");
    // The CA: given, found in cluster-info (first start), or kept from before.
    let discover = given_ca.is_none() && (!kubeconfig.exists() || !ca_file.exists());
    let anonymous_readyz = given_ca.is_none();
    let ca = match given_ca {
        Some(ca) => Some(ca),
        None if discover => {
            println!(
                "ferrokube agent: reading the cluster's CA from {} (kube-public/cluster-info)",
                servers.join(", ")
            );
            tokio::select! {
                ca = crate::join::discover_ca(&servers, &token) => Some(ca?),
                r = crate::server::wait_for_signal() => return r,
            }
        }
        None => None,
    };
    let ca = match ca {
        Some(ca) => {
            ferrokube_pki::files::write_atomic(
                &ca_file,
                &ca,
                ferrokube_pki::files::Mode::Public,
                true,
            )?;
            ca
        }
        None => {
            std::fs::read(&ca_file).with_context(|| format!("reading {}", ca_file.display()))?
        }
    };
    // One server is reached directly; several through the load balancer.
    let (server, lb) = match servers.as_slice() {
        [one] => (one.clone(), None),
        many => {
            let listen = args.lb_address;
            let lb = start_lb(listen, many, &ca_file, anonymous_readyz).await?;
            (format!("https://{listen}"), Some(lb))
        }
    };
    bootstrap_kubeconfig(&server, &ca, &token)?.write(&bootstrap, true)?;
    if kubeconfig.exists() {
        repoint_kubeconfig(&kubeconfig, &server)?;
    }
    let node_name = args.node.node_name();
    let opts = args.node.options(
        dir.clone(),
        node_name.clone(),
        kubeconfig,
        Some(bootstrap),
        ca_file,
        // k3s's default: `.10` of the default Service range.
        Some(
            args.node
                .cluster_dns
                .unwrap_or(std::net::IpAddr::from([10, 43, 0, 10])),
        ),
    )?;
    println!(
        "ferrokube agent: starting node {node_name} (TLS bootstrap with token {})",
        token.id
    );
    let agent = tokio::select! {
        a = crate::node_agent::NodeAgent::start(opts) => a.context("starting the node")?,
        r = crate::server::wait_for_signal() => return r,
    };
    println!(
        "ferrokube agent: node {node_name} joined {server} (containerd at {})",
        agent.socket.display()
    );
    crate::server::wait_for_signal().await?;
    tracing::info!("ferrokube agent: shutting down");
    agent.stop().await;
    if let Some(lb) = lb {
        lb.shutdown(std::time::Duration::from_secs(1)).await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        agent: AgentArgs,
    }

    #[test]
    fn the_token_is_checked_and_named() {
        let parse = |extra: &[&str]| {
            let mut argv = vec!["agent", "--server", "https://198.18.0.1:6443/"];
            argv.extend(extra);
            Cli::try_parse_from(argv).map(|c| c.agent)
        };
        assert!(parse(&[]).is_err(), "a token is required");
        let bad = parse(&["--token", "nope"]).unwrap().token().unwrap_err();
        assert!(format!("{bad:#}").contains("--token"), "{bad:#}");
        let good = parse(&["--token", "abcdef.0123456789abcdef"]).unwrap();
        assert_eq!(good.token().unwrap().id, "abcdef");
        let kc = bootstrap_kubeconfig("https://198.18.0.1:6443", b"CA", &good.token().unwrap())
            .unwrap()
            .to_yaml()
            .unwrap();
        let parsed: kube::config::Kubeconfig = serde_saphyr::from_str(&kc).unwrap();
        assert!(parsed.auth_infos[0]
            .auth_info
            .as_ref()
            .is_some_and(|a| a.token.is_some()));
        assert!(kc.contains("token: abcdef.0123456789abcdef\n"), "{kc}");
    }

    #[test]
    fn several_servers_are_checked_and_deduplicated() {
        let parse = |argv: &[&str]| {
            let mut full = vec!["agent", "--token", "abcdef.0123456789abcdef"];
            full.extend(argv);
            Cli::try_parse_from(full).map(|c| c.agent)
        };
        assert!(parse(&[]).is_err(), "--server is required");
        let a = parse(&[
            "--server",
            "https://198.18.0.1:6443/",
            "--server",
            "https://198.18.0.2:6443,https://198.18.0.1:6443",
        ])
        .unwrap();
        assert_eq!(
            servers(&a).unwrap(),
            ["https://198.18.0.1:6443", "https://198.18.0.2:6443"]
        );
        assert_eq!(a.lb_address.to_string(), "127.0.0.1:6444");
        let bad = parse(&["--server", "https://198.18.0.1:6443", "--server", "ftp://x"]).unwrap();
        let err = format!("{:#}", servers(&bad).unwrap_err());
        assert!(err.contains("--server"), "{err}");
        assert!(parse(&["--server", "https://198.18.0.1", "--lb-address", "nope"]).is_err());
    }

    #[test]
    fn a_bootstrap_kubeconfig_replaces_the_token() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bootstrap.kubeconfig");
        let token = BootstrapToken::parse("abcdef.0123456789abcdef").unwrap();
        bootstrap_kubeconfig("https://198.18.0.1:6443", b"CA PEM", &token)
            .unwrap()
            .write(&path, false)
            .unwrap();
        let p = path.to_str().unwrap();
        let args = Cli::try_parse_from([
            "agent",
            "--server",
            "https://198.18.0.1:6443",
            "--bootstrap-kubeconfig",
            p,
        ])
        .unwrap()
        .agent;
        let (ca, t) =
            AgentArgs::from_bootstrap_kubeconfig(args.bootstrap_kubeconfig.as_deref().unwrap())
                .unwrap();
        assert_eq!((ca.as_slice(), t.id.as_str()), (&b"CA PEM"[..], "abcdef"));
        assert!(
            Cli::try_parse_from([
                "agent",
                "--server",
                "https://198.18.0.1:6443",
                "--bootstrap-kubeconfig",
                p,
                "--token",
                "abcdef.0123456789abcdef",
            ])
            .is_err(),
            "a token and a bootstrap kubeconfig conflict"
        );
        let missing = AgentArgs::from_bootstrap_kubeconfig(&dir.path().join("nope")).unwrap_err();
        assert!(
            format!("{missing:#}").contains("--bootstrap-kubeconfig"),
            "{missing:#}"
        );
    }

    #[test]
    fn an_existing_kubeconfig_is_repointed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kubelet.kubeconfig");
        let token = BootstrapToken::parse("abcdef.0123456789abcdef").unwrap();
        bootstrap_kubeconfig("https://198.18.0.1:6443", b"CA", &token)
            .unwrap()
            .write(&path, false)
            .unwrap();
        repoint_kubeconfig(&path, "https://127.0.0.1:6444").unwrap();
        let kc = ferrokube_pki::kubeconfig::Kubeconfig::load(&path).unwrap();
        assert_eq!(kc.clusters[0].cluster.server, "https://127.0.0.1:6444");
        assert_eq!(
            kc.users[0].user.token.as_deref(),
            Some("abcdef.0123456789abcdef")
        );
    }
}
