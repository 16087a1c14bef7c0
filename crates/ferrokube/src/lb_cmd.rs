//! `ferrokube lb` (and `kube-nginx` through a symlink): the L4 TCP proxy in front of
//! the API servers, from the seeds' nginx configuration, our YAML, or flags.
//!
//! nginx's own flags the seeds' unit uses work: `-c FILE`, `-p PREFIX`, `-t`, and
//! `-s reload|stop|quit` (signals the process whose pid is in the pid file). SIGHUP
//! reloads the file, SIGTERM/SIGINT stop at once, SIGQUIT stops once open
//! connections are done (as nginx).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use ferrokube_lb::{Balance, Config, Handle, Lb};
use tokio::signal::unix::{signal, SignalKind};

#[derive(Args, Debug, Clone)]
pub struct LbArgs {
    /// The configuration: an nginx configuration (the seeds' kube-nginx.conf) or our
    /// YAML (`.yaml`/`.yml`; otherwise told apart by content). Relative to --prefix.
    #[arg(short = 'c', long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// nginx's prefix: relative --config paths and the default pid file
    /// (`<prefix>/logs/nginx.pid`) are under it.
    #[arg(short = 'p', long, value_name = "DIR")]
    pub prefix: Option<PathBuf>,
    /// Without --config: the address to listen on.
    #[arg(
        long,
        value_name = "ADDR:PORT",
        conflicts_with = "config",
        requires = "upstream"
    )]
    pub listen: Option<std::net::SocketAddr>,
    /// Without --config: an upstream server (`host:port`, `host` for port 6443, or
    /// `https://host:port`); repeat for each.
    #[arg(
        long,
        value_name = "HOST:PORT",
        conflicts_with = "config",
        requires = "listen"
    )]
    pub upstream: Vec<String>,
    /// Without --config: how servers are chosen: hash-remote-addr (the seed's `hash
    /// $remote_addr consistent`), round-robin or least-conn.
    #[arg(long, value_name = "METHOD", default_value = "hash-remote-addr", value_parser = parse_balance)]
    pub balance: Balance,
    /// Serve /metrics and /healthz over HTTP here (overrides the file's
    /// metricsAddress).
    #[arg(long, value_name = "ADDR:PORT")]
    pub metrics_bind_address: Option<std::net::SocketAddr>,
    /// Check the configuration and exit (nginx -t).
    #[arg(short = 't', long)]
    pub check_config: bool,
    /// Send a signal to the running instance (nginx -s): reload, stop or quit.
    #[arg(short = 's', long, value_name = "SIGNAL", value_parser = ["reload", "stop", "quit"])]
    pub signal: Option<String>,
    /// Where the pid is written (and read by -s); default `<prefix>/logs/nginx.pid`
    /// with --prefix, else none.
    #[arg(long, value_name = "FILE")]
    pub pid_file: Option<PathBuf>,
}

fn parse_balance(s: &str) -> Result<Balance, String> {
    Balance::parse(s)
        .ok_or_else(|| format!("unknown {s:?} (hash-remote-addr, round-robin or least-conn)"))
}

impl LbArgs {
    fn config_path(&self) -> Option<PathBuf> {
        let c = self.config.as_ref()?;
        Some(match &self.prefix {
            Some(prefix) if c.is_relative() => prefix.join(c),
            _ => c.clone(),
        })
    }

    fn pid_path(&self) -> Option<PathBuf> {
        self.pid_file
            .clone()
            .or_else(|| self.prefix.as_ref().map(|p| p.join("logs/nginx.pid")))
    }

    fn load(&self) -> anyhow::Result<Config> {
        let mut config = match (self.config_path(), &self.listen) {
            (Some(path), _) => ferrokube_lb::load_file(&path)?,
            (None, Some(listen)) => {
                let mut c = Config::for_api_servers(*listen, &self.upstream)?;
                for u in &mut c.upstreams {
                    u.balance = self.balance;
                }
                c
            }
            (None, None) => {
                anyhow::bail!("--config FILE, or --listen with --upstream, is required")
            }
        };
        if let Some(m) = self.metrics_bind_address {
            config.metrics_address = Some(m);
        }
        Ok(config)
    }
}

/// `-s SIGNAL`: signals the pid in the pid file.
fn send_signal(args: &LbArgs, which: &str) -> anyhow::Result<()> {
    let path = args
        .pid_path()
        .context("-s needs --pid-file or --prefix to find the running instance")?;
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("reading the pid file {}", path.display()))?;
    let pid: u32 = text
        .trim()
        .parse()
        .with_context(|| format!("{}: not a pid: {:?}", path.display(), text.trim()))?;
    let sig = match which {
        "reload" => "-HUP",
        "quit" => "-QUIT",
        _ => "-TERM",
    };
    let status = std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .context("running kill")?;
    anyhow::ensure!(status.success(), "kill {sig} {pid} failed: {status}");
    Ok(())
}

/// Removes the pid file when the process ends.
struct PidFile(PathBuf);

impl PidFile {
    fn write(path: &Path) -> anyhow::Result<PidFile> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        std::fs::write(path, format!("{}\n", std::process::id()))
            .with_context(|| format!("writing the pid file {}", path.display()))?;
        Ok(PidFile(path.to_path_buf()))
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

pub async fn run(args: LbArgs) -> anyhow::Result<()> {
    if let Some(which) = &args.signal {
        return send_signal(&args, which);
    }
    let source = args
        .config_path()
        .map_or_else(|| "flags".to_string(), |p| p.display().to_string());
    let config = args.load()?;
    if args.check_config {
        println!("ferrokube lb: the configuration file {source} syntax is ok");
        println!("ferrokube lb: configuration file {source} test is successful");
        return Ok(());
    }
    let nofile = ferrokube_lb::raise_open_files_limit();
    tracing::debug!(?nofile, "open files limit");
    let lb = Lb::start(config)
        .await
        .context("starting the load balancer")?;
    let _pid = args.pid_path().map(|p| PidFile::write(&p)).transpose()?;
    tracing::info!(listen = ?lb.local_addrs(), metrics = ?lb.metrics_addr(), config = %source, "ferrokube lb started");
    serve_signals(&lb, args.config_path().as_deref()).await
}

async fn serve_signals(lb: &Handle, config: Option<&Path>) -> anyhow::Result<()> {
    let mut hup = signal(SignalKind::hangup()).context("SIGHUP handler")?;
    let mut term = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("SIGINT handler")?;
    let mut quit = signal(SignalKind::quit()).context("SIGQUIT handler")?;
    loop {
        tokio::select! {
            _ = hup.recv() => match config {
                Some(path) => match lb.reload_file(path).await {
                    Ok(()) => tracing::info!(config = %path.display(), listen = ?lb.local_addrs(), "configuration reloaded"),
                    Err(err) => tracing::error!(config = %path.display(), %err, "reload failed; the running configuration stays"),
                },
                None => tracing::warn!("SIGHUP: the configuration comes from flags, nothing to reload"),
            },
            _ = term.recv() => break lb.shutdown(Duration::ZERO).await,
            _ = int.recv() => break lb.shutdown(Duration::ZERO).await,
            _ = quit.recv() => {
                tracing::info!(open = lb.active_connections(), "SIGQUIT: waiting for open connections to end");
                break lb.shutdown(Duration::from_secs(3600)).await;
            }
        }
    }
    tracing::info!("ferrokube lb stopped");
    Ok(())
}
