//! The load balancer's configuration: one internal type that both file formats parse
//! into — nginx's `stream` configuration as the seeds' `kube-nginx.conf` writes it
//! ([`nginx`]) and our own YAML ([`yaml`]) — plus the helper that builds one from a list
//! of API servers.
//!
//! Defaults are nginx's: `proxy_connect_timeout 60s`, `proxy_timeout 10m`,
//! `max_fails=1`, `fail_timeout=10s`, `weight=1`, `proxy_next_upstream on`,
//! `proxy_buffer_size 16k`.

pub mod nginx;
pub mod yaml;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// nginx's `proxy_connect_timeout` default.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(60);
/// nginx's `proxy_timeout` default.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(600);
/// nginx's `max_fails` default.
pub const DEFAULT_MAX_FAILS: u32 = 1;
/// nginx's `fail_timeout` default.
pub const DEFAULT_FAIL_TIMEOUT: Duration = Duration::from_secs(10);
/// nginx's `proxy_buffer_size` default.
pub const DEFAULT_BUFFER_SIZE: usize = 16 * 1024;

/// Where a configuration error is: the file and, when known, the line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pos {
    /// The file as given (or `<flags>` / `<api-servers>` for configurations from flags).
    pub file: String,
    /// 1-based line.
    pub line: Option<usize>,
}

impl Pos {
    pub(crate) fn new(file: &str, line: usize) -> Pos {
        Pos {
            file: file.to_string(),
            line: Some(line),
        }
    }
    pub(crate) fn file(file: &str) -> Pos {
        Pos {
            file: file.to_string(),
            line: None,
        }
    }
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}", self.file),
            None => f.write_str(&self.file),
        }
    }
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("reading {file}: {source}")]
    Read {
        /// The file.
        file: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// nginx syntax or directive error, worded as nginx words it
    /// (`unknown directive "foo" in /etc/kube-nginx.conf:12`).
    #[error("{message} in {at}")]
    Nginx {
        /// Where.
        at: Pos,
        /// What, naming the directive.
        message: String,
    },
    /// A YAML document that does not parse or does not fit the schema.
    #[error("{at}: {message}")]
    Yaml {
        /// Where.
        at: Pos,
        /// What, naming the field.
        message: String,
    },
    /// A value that parses but is not valid (YAML configurations and flags).
    #[error("{at}: {field}: {message}")]
    Invalid {
        /// Where.
        at: Pos,
        /// The field (`upstreams[0].servers[1].address`, `--upstream`).
        field: String,
        /// What is wrong.
        message: String,
    },
}

/// How a server is chosen for a new connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Balance {
    /// nginx's default: smooth weighted round robin.
    RoundRobin,
    /// nginx's `least_conn`: fewest active connections relative to weight, round robin
    /// among equals.
    LeastConn,
    /// nginx's `hash $remote_addr [consistent]` on the client address: `consistent`
    /// is the ketama ring (160 points per unit of weight); without it, nginx's
    /// Cache::Memcached-compatible modulo hash.
    HashRemoteAddr {
        /// `consistent`.
        consistent: bool,
    },
}

impl Balance {
    /// The YAML spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Balance::RoundRobin => "round-robin",
            Balance::LeastConn => "least-conn",
            Balance::HashRemoteAddr { consistent: true } => "hash-remote-addr",
            Balance::HashRemoteAddr { consistent: false } => "hash-remote-addr-modulo",
        }
    }

    /// Parses the YAML / flag spelling.
    pub fn parse(s: &str) -> Option<Balance> {
        Some(match s {
            "round-robin" => Balance::RoundRobin,
            "least-conn" => Balance::LeastConn,
            "hash-remote-addr" => Balance::HashRemoteAddr { consistent: true },
            "hash-remote-addr-modulo" => Balance::HashRemoteAddr { consistent: false },
            _ => return None,
        })
    }
}

/// One upstream server (one resolved address of an nginx `server` line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// The server as written (`host:port`): the consistent-hash ring is built from it,
    /// as nginx builds it, so every address a name resolves to shares its points.
    pub name: String,
    /// The address connections go to.
    pub address: SocketAddr,
    /// `weight=N` (≥ 1).
    pub weight: u32,
    /// `max_fails=N`: failed connects within `fail_timeout` that disable the server for
    /// `fail_timeout`; 0 disables the accounting.
    pub max_fails: u32,
    /// `fail_timeout=T`.
    pub fail_timeout: Duration,
    /// `backup`: used only when no primary server can be.
    pub backup: bool,
    /// `down`: never used.
    pub down: bool,
}

/// TLS of an HTTPS health check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthTls {
    /// CA bundle to verify servers with; `None` with `insecure`.
    pub ca_file: Option<PathBuf>,
    /// Skip verification of the server's certificate.
    pub insecure: bool,
    /// Client certificate and key (PEM), for servers that want one.
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// Name to verify the certificate for (default: the server's host as written).
    pub server_name: Option<String>,
}

/// What an active health check does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthCheckKind {
    /// A TCP connect succeeds.
    Tcp,
    /// `GET path` over TLS answers 200.
    Https {
        /// The request path (`/readyz`).
        path: String,
        /// TLS settings.
        tls: HealthTls,
    },
}

/// Active health checks of an upstream's servers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheckConfig {
    /// The check.
    pub kind: HealthCheckKind,
    /// Time between checks of one server.
    pub interval: Duration,
    /// Time one check may take.
    pub timeout: Duration,
    /// Consecutive failures that mark a server down.
    pub fails: u32,
    /// Consecutive successes that mark it up again.
    pub passes: u32,
}

impl HealthCheckConfig {
    /// A check of `kind` every 5 s, 2 s timeout, one failure down, one success up.
    pub fn new(kind: HealthCheckKind) -> HealthCheckConfig {
        HealthCheckConfig {
            kind,
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(2),
            fails: 1,
            passes: 1,
        }
    }
}

/// A pool of servers (nginx's `upstream` block).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamConfig {
    /// Its name, as listeners refer to it.
    pub name: String,
    /// How servers are chosen.
    pub balance: Balance,
    /// The servers, in order.
    pub servers: Vec<ServerConfig>,
    /// Optional active health checks.
    pub health_check: Option<HealthCheckConfig>,
}

/// A listening address proxied to an upstream (nginx's `server` block in `stream`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerConfig {
    /// `listen`.
    pub address: SocketAddr,
    /// `proxy_pass`: the upstream's name.
    pub upstream: String,
    /// `proxy_connect_timeout`.
    pub connect_timeout: Duration,
    /// `proxy_timeout`: a connection with no data either way for this long is closed.
    pub idle_timeout: Duration,
    /// `proxy_next_upstream`: on a failed connect, try another server.
    pub next_upstream: bool,
    /// `proxy_next_upstream_tries` (0: every server once).
    pub next_upstream_tries: u32,
    /// `proxy_next_upstream_timeout` (zero: no limit).
    pub next_upstream_timeout: Duration,
    /// `proxy_buffer_size`: the copy buffer of each direction.
    pub buffer_size: usize,
    /// `proxy_half_close`: when one side stops sending, pass that on (shut down the
    /// other side's write half) and keep the other direction open. On by default here
    /// (nginx's default is off: it closes both directions).
    pub half_close: bool,
}

impl ListenerConfig {
    /// A listener with nginx's defaults.
    pub fn new(address: SocketAddr, upstream: &str) -> ListenerConfig {
        ListenerConfig {
            address,
            upstream: upstream.to_string(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            next_upstream: true,
            next_upstream_tries: 0,
            next_upstream_timeout: Duration::ZERO,
            buffer_size: DEFAULT_BUFFER_SIZE,
            half_close: true,
        }
    }
}

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Config {
    /// The file it came from (what SIGHUP re-reads).
    pub source: Option<PathBuf>,
    /// At most this many client connections at once (nginx: `worker_processes` ×
    /// `worker_connections`); `None`: no limit.
    pub max_connections: Option<usize>,
    /// Where `/metrics` and `/healthz` are served over plain HTTP.
    pub metrics_address: Option<SocketAddr>,
    /// The listeners.
    pub listeners: Vec<ListenerConfig>,
    /// The upstreams.
    pub upstreams: Vec<UpstreamConfig>,
}

impl Config {
    /// The upstream named `name`.
    pub fn upstream(&self, name: &str) -> Option<&UpstreamConfig> {
        self.upstreams.iter().find(|u| u.name == name)
    }

    /// A load balancer for a list of API servers, as `ferrokube agent` runs one for
    /// several servers: `listen` → every server, the seed's kube-nginx settings
    /// (`hash $remote_addr consistent`, `max_fails=3 fail_timeout=30s`,
    /// `proxy_connect_timeout 1s`, `proxy_timeout 10m`). Servers are `host:port`,
    /// `host` (port 6443) or `https://host[:port][/]`.
    pub fn for_api_servers<S: AsRef<str>>(
        listen: SocketAddr,
        servers: &[S],
    ) -> Result<Config, ConfigError> {
        const FIELD: &str = "api servers";
        let at = Pos::file("<api-servers>");
        if servers.is_empty() {
            return Err(ConfigError::Invalid {
                at,
                field: FIELD.into(),
                message: "no servers given".into(),
            });
        }
        let mut out = Vec::new();
        for s in servers {
            let s = s.as_ref().trim();
            let bare = s
                .strip_prefix("https://")
                .unwrap_or(s)
                .trim_end_matches('/');
            let with_port = if split_host_port(bare).is_some() {
                bare.to_string()
            } else {
                format!("{bare}:6443")
            };
            let addrs = resolve(&with_port).map_err(|message| ConfigError::Invalid {
                at: at.clone(),
                field: FIELD.into(),
                message: format!("{s:?}: {message}"),
            })?;
            for address in addrs {
                out.push(ServerConfig {
                    name: with_port.clone(),
                    address,
                    weight: 1,
                    max_fails: 3,
                    fail_timeout: Duration::from_secs(30),
                    backup: false,
                    down: false,
                });
            }
        }
        let mut listener = ListenerConfig::new(listen, "apiservers");
        listener.connect_timeout = Duration::from_secs(1);
        Ok(Config {
            source: None,
            max_connections: None,
            metrics_address: None,
            listeners: vec![listener],
            upstreams: vec![UpstreamConfig {
                name: "apiservers".into(),
                balance: Balance::HashRemoteAddr { consistent: true },
                servers: out,
                health_check: None,
            }],
        })
    }

    /// Adds an HTTPS `GET /readyz` health check, verified with `ca_file`, to every
    /// upstream (for [`Config::for_api_servers`]). The API servers must let anonymous
    /// clients read `/readyz` (upstream's default); otherwise use [`Config::with_tcp_check`].
    pub fn with_readyz_check(self, ca_file: &Path) -> Config {
        self.with_health_check(HealthCheckKind::Https {
            path: "/readyz".into(),
            tls: HealthTls {
                ca_file: Some(ca_file.to_path_buf()),
                insecure: false,
                client_cert: None,
                server_name: None,
            },
        })
    }

    /// Adds a TCP connect health check to every upstream.
    pub fn with_tcp_check(self) -> Config {
        self.with_health_check(HealthCheckKind::Tcp)
    }

    fn with_health_check(mut self, kind: HealthCheckKind) -> Config {
        for u in &mut self.upstreams {
            u.health_check = Some(HealthCheckConfig::new(kind.clone()));
        }
        self
    }
}

/// Which format a file is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// nginx's configuration language.
    Nginx,
    /// Our YAML.
    Yaml,
}

/// The format of `path` with contents `text`: by extension (`.yaml`, `.yml`, `.json`
/// are YAML, `.conf` nginx), else by content (a first statement ending in `;` or `{`
/// is nginx).
pub fn detect_format(path: &Path, text: &str) -> Format {
    match path.extension().and_then(|e| e.to_str()) {
        Some("yaml" | "yml" | "json") => return Format::Yaml,
        Some("conf") => return Format::Nginx,
        _ => {}
    }
    let first = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#') && l != &"---");
    match first {
        Some(l) if l.ends_with(';') || l.ends_with('{') => Format::Nginx,
        Some(l) if l.starts_with('{') || l.contains(':') => Format::Yaml,
        _ => Format::Nginx,
    }
}

/// Reads and parses a configuration file of either format.
pub fn load_file(path: &Path) -> Result<Config, ConfigError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        file: file.clone(),
        source,
    })?;
    let mut config = match detect_format(path, &text) {
        Format::Nginx => nginx::parse(&file, &text)?,
        Format::Yaml => yaml::parse(&file, &text)?,
    };
    config.source = Some(path.to_path_buf());
    Ok(config)
}

/// `host:port` split at the last colon (`[v6]:port` too); `None` without a port.
pub(crate) fn split_host_port(s: &str) -> Option<(&str, u16)> {
    let (host, port) = s.rsplit_once(':')?;
    let port = port.parse().ok()?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.contains(':') && !s.starts_with('[') {
        return None; // a bare IPv6 address, no port
    }
    Some((host, port))
}

/// `host:port` to addresses: literal IPs directly, names through the system resolver
/// (as nginx resolves upstream names when it loads its configuration).
pub(crate) fn resolve(s: &str) -> Result<Vec<SocketAddr>, String> {
    let (host, port) = split_host_port(s).ok_or_else(|| format!("no port in {s:?}"))?;
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    if host.is_empty() {
        return Err(format!("no host in {s:?}"));
    }
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("host not found: {e}"))?
        .collect();
    if addrs.is_empty() {
        return Err(format!("host {host:?} not found"));
    }
    let mut unique = Vec::new();
    for a in addrs {
        if !unique.contains(&a) {
            unique.push(a);
        }
    }
    Ok(unique)
}

/// A listen address: `ADDR:PORT`, `[V6]:PORT`, `*:PORT` or `PORT` (all IPv4
/// addresses, as nginx).
pub(crate) fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    if let Ok(port) = s.parse::<u16>() {
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port));
    }
    if let Some(port) = s.strip_prefix("*:") {
        let port = port.parse().map_err(|_| format!("invalid port in {s:?}"))?;
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port));
    }
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return Ok(addr);
    }
    match resolve(s) {
        Ok(addrs) => addrs
            .into_iter()
            .next()
            .ok_or_else(|| format!("host not found in {s:?}")),
        Err(e) => Err(e),
    }
}

/// nginx's time values (`ngx_parse_time`): a number with a unit (`ms`, `s`, `m`,
/// `h`, `d`, `w`; none means seconds), parts may be combined (`1m30s`, `1h 30m`).
/// Go's `us`/`ns` are taken too, so YAML may use Go durations.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        rest = rest.trim_start();
        let digits = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(rest.len());
        if digits == 0 {
            return None;
        }
        let value: f64 = rest.get(..digits)?.parse().ok()?;
        rest = rest.get(digits..)?;
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c.is_whitespace())
            .unwrap_or(rest.len());
        let unit = rest.get(..unit_len)?;
        rest = rest.get(unit_len..)?;
        let secs = match unit {
            "" | "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86400.0,
            "w" => 604800.0,
            _ => return None,
        };
        let part = value * secs;
        if !part.is_finite() || part > 1e12 {
            return None;
        }
        total += Duration::from_secs_f64(part);
    }
    Some(total)
}

/// nginx's sizes: bytes, or `k`/`K`, `m`/`M` (`16k`).
pub fn parse_size(s: &str) -> Option<usize> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last()? {
        (i, 'k' | 'K') => (s.get(..i)?, 1024),
        (i, 'm' | 'M') => (s.get(..i)?, 1024 * 1024),
        _ => (s, 1),
    };
    num.parse::<usize>().ok()?.checked_mul(mult)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn durations_as_nginx_writes_them() {
        assert_eq!(parse_duration("1s"), Some(Duration::from_secs(1)));
        assert_eq!(parse_duration("10m"), Some(Duration::from_secs(600)));
        assert_eq!(parse_duration("30"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h 30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration(""), None);
        assert_eq!(parse_duration("s"), None);
        assert_eq!(parse_duration("10x"), None);
        assert_eq!(parse_duration("-1s"), None);
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("16k"), Some(16384));
        assert_eq!(parse_size("1M"), Some(1 << 20));
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("k"), None);
        assert_eq!(parse_size("12q"), None);
    }

    #[test]
    fn listen_addresses() {
        assert_eq!(
            parse_listen("127.0.0.1:8443").unwrap(),
            "127.0.0.1:8443".parse().unwrap()
        );
        assert_eq!(
            parse_listen("8443").unwrap(),
            "0.0.0.0:8443".parse().unwrap()
        );
        assert_eq!(
            parse_listen("*:8443").unwrap(),
            "0.0.0.0:8443".parse().unwrap()
        );
        assert_eq!(
            parse_listen("[::1]:8443").unwrap(),
            "[::1]:8443".parse().unwrap()
        );
        assert!(parse_listen("127.0.0.1").is_err());
    }

    #[test]
    fn host_port_splitting() {
        assert_eq!(split_host_port("a:1"), Some(("a", 1)));
        assert_eq!(split_host_port("[::1]:6443"), Some(("::1", 6443)));
        assert_eq!(split_host_port("::1"), None);
        assert_eq!(split_host_port("a"), None);
        assert_eq!(split_host_port("a:x"), None);
    }

    #[test]
    fn api_server_helper_takes_urls_and_bare_hosts() {
        let c = Config::for_api_servers(
            "127.0.0.1:8443".parse().unwrap(),
            &["https://127.0.0.1:6443/", "127.0.0.2:7443", "127.0.0.3"],
        )
        .unwrap();
        let u = &c.upstreams[0];
        assert_eq!(u.balance, Balance::HashRemoteAddr { consistent: true });
        let addrs: Vec<String> = u.servers.iter().map(|s| s.address.to_string()).collect();
        assert_eq!(
            addrs,
            ["127.0.0.1:6443", "127.0.0.2:7443", "127.0.0.3:6443"]
        );
        assert_eq!(u.servers[0].max_fails, 3);
        assert_eq!(c.listeners[0].connect_timeout, Duration::from_secs(1));
        assert_eq!(c.listeners[0].upstream, "apiservers");
        let none: [&str; 0] = [];
        let err = Config::for_api_servers("127.0.0.1:8443".parse().unwrap(), &none);
        assert!(err.unwrap_err().to_string().contains("no servers"));
        let c = c.with_readyz_check(Path::new("/ca.crt"));
        assert!(c.upstreams[0].health_check.is_some());
    }

    #[test]
    fn format_detection() {
        assert_eq!(detect_format(Path::new("a.yaml"), ""), Format::Yaml);
        assert_eq!(detect_format(Path::new("a.conf"), ""), Format::Nginx);
        assert_eq!(
            detect_format(Path::new("a"), "# x\nworker_processes 1;\n"),
            Format::Nginx
        );
        assert_eq!(detect_format(Path::new("a"), "stream {\n}"), Format::Nginx);
        assert_eq!(
            detect_format(Path::new("a"), "---\nlisteners:\n- address: x\n"),
            Format::Yaml
        );
    }
}
