//! `ferrokube`: one binary, one subcommand per component. This file parses flags and
//! dispatches; the components live in their crates.
//!
//! Components land one by one (see the README for what exists today). Invoked through a
//! symlink named `ferrokube-<subcommand>`, or by an upstream component name
//! (`kube-apiserver`), it behaves as that subcommand.

mod agent;
mod apiserver_cmd;
mod apiserver_flags;
mod cluster_dns;
mod controller_manager_cmd;
mod dns_cmd;
mod duration;
mod images_cmd;
mod join;
mod kubelet_cmd;
mod lb_cmd;
mod leader;
mod metrics_addon;
mod metrics_server_cmd;
mod network_cmd;
mod node_agent;
mod pki_cmd;
mod proxy_cmd;
mod scheduler_cmd;
mod server;
mod storage_flags;
mod store_cmd;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "ferrokube",
    version,
    about = "Kubernetes, rebuilt in Rust",
    propagate_version = true
)]
struct Cli {
    /// Log filter (tracing's env-filter syntax), e.g. `info` or `ferrokube=debug`.
    #[arg(long, global = true, env = "FERROKUBE_LOG", default_value = "info")]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run everything on this machine: store, control plane, and this host as a node.
    Server(server::ServerArgs),
    /// Join this host to a `server` as a node (TLS bootstrap with a join token).
    Agent(Box<agent::AgentArgs>),
    /// The Kubernetes API server (kube-apiserver).
    Apiserver(Box<apiserver_cmd::ApiServerArgs>),
    /// Inspect or change a store directly: the embedded data directory or etcd.
    #[command(subcommand)]
    Store(store_cmd::StoreCommand),
    /// Certificates, keys, kubeconfigs and tokens (cfssl, openssl, kubectl config).
    #[command(subcommand)]
    Pki(pki_cmd::PkiCommand),
    /// kube-scheduler: binds pending pods to nodes (leader-elected, secure port 10259).
    Scheduler(Box<scheduler_cmd::SchedulerArgs>),
    /// kube-controller-manager: the control loops (leader-elected, secure port 10257).
    ControllerManager(Box<controller_manager_cmd::ControllerManagerArgs>),
    /// The pod network on this node, host-gw style (flannel's role): CNI conflist, routes
    /// to other nodes' podCIDRs, masquerade.
    Network(Box<network_cmd::NetworkArgs>),
    /// The node agent (kubelet): registers the node and runs its pods through CRI.
    Kubelet(Box<kubelet_cmd::KubeletArgs>),
    /// L4 TCP proxy to a pool of API servers (the seeds' kube-nginx)
    Lb(Box<lb_cmd::LbArgs>),
    /// kube-proxy: Services and EndpointSlices as kernel load-balancing rules
    /// (nftables, iptables; ipvs where the kernel has it).
    Proxy(Box<proxy_cmd::ProxyArgs>),
    /// Cluster DNS: Service and Pod names for pods (the seeds' kube-dns/CoreDNS).
    Dns(Box<dns_cmd::DnsArgs>),
    /// metrics-server: resource metrics of nodes and pods (metrics.k8s.io) for kubectl top and the HPA
    MetricsServer(Box<metrics_server_cmd::MetricsServerArgs>),
    /// Container images without a registry: build, the pause image, import into containerd.
    #[command(subcommand)]
    Images(images_cmd::ImagesCommand),
}

/// Maps a multi-call name (`ferrokube-server`, …) to the subcommand it stands for.
fn argv_with_multicall() -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let called_as = args
        .first()
        .and_then(|a| {
            std::path::Path::new(a)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
        })
        .unwrap_or_default();
    let sub = match called_as.as_str() {
        "kube-apiserver" => Some("apiserver"),
        "kube-scheduler" => Some("scheduler"),
        "kube-controller-manager" => Some("controller-manager"),
        "kubelet" => Some("kubelet"),
        "kube-nginx" => Some("lb"),
        "kube-proxy" => Some("proxy"),
        "metrics-server" => Some("metrics-server"),
        other => other.strip_prefix("ferrokube-").filter(|s| {
            [
                "server",
                "agent",
                "store",
                "apiserver",
                "scheduler",
                "controller-manager",
                "metrics-server",
            ]
            .contains(s)
        }),
    };
    if let Some(sub) = sub {
        args.insert(1, sub.into());
        args[0] = "ferrokube".into();
    }
    args
}

fn main() -> ExitCode {
    let cli = Cli::parse_from(argv_with_multicall());
    let filter = match tracing_subscriber::EnvFilter::try_new(&cli.log) {
        Ok(f) => f,
        Err(err) => {
            eprintln!("error: --log {:?}: {err}", cli.log);
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour only on a terminal: logs in files and the journal stay plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("error: starting the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Server(args) => server::run(args).await,
            Command::Apiserver(args) => apiserver_cmd::run(*args).await,
            Command::Store(cmd) => store_cmd::run(cmd).await,
            Command::Pki(cmd) => pki_cmd::run(cmd).await,
            Command::Scheduler(args) => scheduler_cmd::run(*args).await,
            Command::ControllerManager(args) => controller_manager_cmd::run(*args).await,
            Command::Network(args) => network_cmd::run(*args).await,
            Command::Kubelet(args) => kubelet_cmd::run(*args).await,
            Command::Lb(args) => lb_cmd::run(*args).await,
            Command::Proxy(args) => proxy_cmd::run(*args).await,
            Command::Dns(args) => dns_cmd::run(*args).await,
            Command::MetricsServer(args) => metrics_server_cmd::run(*args).await,
            Command::Agent(args) => agent::run(*args).await,
            Command::Images(cmd) => images_cmd::run(cmd).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", error_chain(&err));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes joined by ": ", leaving out a cause whose text the
/// message before it already includes (many library errors print their source too).
fn error_chain(err: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if !out.contains(&text) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&text);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn error_chains_say_each_cause_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let err = anyhow::Error::new(io)
            .context("reading x: no such file")
            .context("loading config");
        assert_eq!(
            super::error_chain(&err),
            "loading config: reading x: no such file"
        );
        let plain = anyhow::anyhow!("inner").context("outer");
        assert_eq!(super::error_chain(&plain), "outer: inner");
    }
}
