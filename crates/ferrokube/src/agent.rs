//! `ferrokube agent --server URL --token TOKEN`: joins this host to a `server`'s
//! cluster as a node. The first start finds the cluster's CA in the server's signed
//! `kube-public/cluster-info` ([`crate::join`]), writes a bootstrap kubeconfig with
//! the token, and the kubelet gets its client certificate through TLS bootstrap (the
//! server approves it automatically) and asks for a serving certificate (pending until
//! an administrator approves it: `kubectl certificate approve`). Then the node runs as
//! `server`'s does: containerd, the pod network and the kubelet, with state under
//! `<data-dir>/agent/`. Later starts reuse the node's credentials.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use ferrokube_pki::bootstrap::BootstrapToken;

#[derive(Args, Debug)]
pub struct AgentArgs {
    /// The API server to join (`https://host:6443`).
    #[arg(long, value_name = "URL")]
    server: String,
    /// The join token, `<id>.<secret>` (`<server data-dir>/node-token`, or one made
    /// with `ferrokube pki bootstrap-token`).
    #[arg(long, value_name = "TOKEN", required_unless_present = "token_file")]
    token: Option<String>,
    /// A file holding the join token.
    #[arg(long, value_name = "FILE", conflicts_with = "token")]
    token_file: Option<PathBuf>,
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

pub async fn run(args: AgentArgs) -> anyhow::Result<()> {
    let token = args.token()?;
    ferrokube_pki::kubeconfig::validate_server_url(&args.server, "--server")?;
    let server = args.server.trim_end_matches('/').to_string();
    let dir = args.data_dir.join("agent");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let kubeconfig = dir.join("kubelet.kubeconfig");
    let ca_file = dir.join("ca.pem");
    let bootstrap = dir.join("bootstrap.kubeconfig");
    if !kubeconfig.exists() || !ca_file.exists() {
        println!(
            "ferrokube agent: reading the cluster's CA from {server} (kube-public/cluster-info)"
        );
        let ca = tokio::select! {
            ca = crate::join::discover_ca(&server, &token) => ca?,
            r = crate::server::wait_for_signal() => return r,
        };
        ferrokube_pki::files::write_atomic(
            &ca_file,
            &ca,
            ferrokube_pki::files::Mode::Public,
            true,
        )?;
        bootstrap_kubeconfig(&server, &ca, &token)?.write(&bootstrap, true)?;
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
            let mut argv = vec!["agent", "--server", "https://198.18.0.1:6443"];
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
}
