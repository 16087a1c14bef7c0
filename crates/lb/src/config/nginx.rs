//! nginx's configuration language, as far as a TCP `stream` proxy uses it: the seeds'
//! `kube-nginx.conf` (`worker_processes`, `events { worker_connections }`, `stream {
//! upstream … { hash $remote_addr consistent; server …; } server { listen …;
//! proxy_pass …; } }`) and the rest of ngx_stream_proxy / ngx_stream_upstream that an
//! L4 proxy needs.
//!
//! Errors are worded as nginx words them (`unknown directive "foo" in FILE:LINE`,
//! `invalid number of arguments in "listen" directive in FILE:LINE`). Directives nginx
//! knows that do not change what a TCP proxy does here (`pid`, `error_log`, `user`,
//! `multi_accept`, `zone`, …) are accepted with a warning when ignored; anything else
//! is an error, as it is for nginx.

use std::net::SocketAddr;
use std::time::Duration;

use super::{
    parse_duration, parse_listen, parse_size, resolve, Balance, Config, ConfigError,
    ListenerConfig, Pos, ServerConfig, UpstreamConfig, DEFAULT_FAIL_TIMEOUT, DEFAULT_MAX_FAILS,
};

mod syntax;

use syntax::{parse_tree, tokenize, Directive};

/// Where a directive may appear.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Context {
    Main,
    Events,
    Stream,
    Upstream,
    Server,
}

/// Directives nginx has that a TCP proxy here does without: accepted, ignored
/// (with a warning when it could matter to someone), per context.
fn ignored(ctx: Context, name: &str) -> Option<bool> {
    // Some(true): warn that it is ignored; Some(false): silently accepted.
    let quiet: &[&str] = match ctx {
        Context::Main => &[
            "pid",
            "error_log",
            "daemon",
            "master_process",
            "worker_rlimit_nofile",
            "pcre_jit",
            "lock_file",
            "timer_resolution",
            "working_directory",
            "worker_shutdown_timeout",
        ],
        Context::Events => &["use", "multi_accept", "accept_mutex", "accept_mutex_delay"],
        Context::Stream | Context::Server => &[
            "error_log",
            "tcp_nodelay",
            "resolver",
            "resolver_timeout",
            "variables_hash_max_size",
            "variables_hash_bucket_size",
            "proxy_socket_keepalive",
        ],
        Context::Upstream => &["zone"],
    };
    let loud: &[&str] = match ctx {
        Context::Main => &[
            "user",
            "load_module",
            "env",
            "worker_priority",
            "worker_cpu_affinity",
            "thread_pool",
        ],
        Context::Events => &["worker_aio_requests", "debug_connection"],
        Context::Stream | Context::Server => &["access_log", "log_format", "preread_timeout"],
        Context::Upstream => &[],
    };
    if quiet.contains(&name) {
        Some(false)
    } else if loud.contains(&name) {
        Some(true)
    } else {
        None
    }
}

/// Known to nginx but refused here (a message better than "unknown directive").
fn unsupported(name: &str) -> bool {
    matches!(
        name,
        "http"
            | "mail"
            | "include"
            | "ssl_preread"
            | "proxy_ssl"
            | "proxy_protocol"
            | "proxy_bind"
            | "proxy_download_rate"
            | "proxy_upload_rate"
            | "proxy_responses"
            | "proxy_requests"
            | "map"
            | "geo"
            | "split_clients"
            | "limit_conn"
            | "limit_conn_zone"
            | "allow"
            | "deny"
            | "return"
            | "set"
            | "random"
            | "keepalive"
    ) || name.starts_with("ssl_")
        || name.starts_with("proxy_ssl_")
}

/// Proxy settings that stream {} sets for its servers and a server overrides.
#[derive(Debug, Clone)]
struct ProxySettings {
    connect_timeout: Option<Duration>,
    idle_timeout: Option<Duration>,
    next_upstream: Option<bool>,
    next_upstream_tries: Option<u32>,
    next_upstream_timeout: Option<Duration>,
    buffer_size: Option<usize>,
    half_close: Option<bool>,
}

struct Parser<'a> {
    file: &'a str,
}

impl Parser<'_> {
    fn err(&self, line: usize, message: String) -> ConfigError {
        ConfigError::Nginx {
            at: Pos::new(self.file, line),
            message,
        }
    }

    fn check_args(&self, d: &Directive, min: usize, max: usize) -> Result<(), ConfigError> {
        if d.args.len() < min || d.args.len() > max {
            return Err(self.err(
                d.line,
                format!("invalid number of arguments in \"{}\" directive", d.name),
            ));
        }
        Ok(())
    }

    fn block<'d>(&self, d: &'d Directive) -> Result<&'d [Directive], ConfigError> {
        d.block.as_deref().ok_or_else(|| {
            self.err(
                d.line,
                format!("directive \"{}\" has no opening \"{{\"", d.name),
            )
        })
    }

    fn no_block(&self, d: &Directive) -> Result<(), ConfigError> {
        if d.block.is_some() {
            return Err(self.err(
                d.line,
                format!("directive \"{}\" is not terminated by \";\"", d.name),
            ));
        }
        Ok(())
    }

    fn unknown(&self, d: &Directive, ctx: Context) -> Result<(), ConfigError> {
        if let Some(warn) = ignored(ctx, &d.name) {
            if d.block.is_some() {
                return self.no_block(d);
            }
            if warn {
                tracing::warn!(
                    file = self.file,
                    line = d.line,
                    directive = %d.name,
                    "directive is ignored by ferrokube lb"
                );
            }
            return Ok(());
        }
        if unsupported(&d.name) {
            return Err(self.err(
                d.line,
                format!(
                    "\"{}\" directive is not supported by ferrokube lb (a TCP stream proxy)",
                    d.name
                ),
            ));
        }
        let known_elsewhere = [
            "worker_processes",
            "events",
            "stream",
            "worker_connections",
            "upstream",
            "server",
            "listen",
            "proxy_pass",
            "hash",
            "least_conn",
            "proxy_connect_timeout",
            "proxy_timeout",
        ];
        if known_elsewhere.contains(&d.name.as_str()) {
            return Err(self.err(
                d.line,
                format!("\"{}\" directive is not allowed here", d.name),
            ));
        }
        Err(self.err(d.line, format!("unknown directive \"{}\"", d.name)))
    }

    fn number(&self, d: &Directive, v: &str) -> Result<u64, ConfigError> {
        v.parse::<u64>().map_err(|_| {
            self.err(
                d.line,
                format!("invalid value \"{v}\" in \"{}\" directive", d.name),
            )
        })
    }

    fn time(&self, d: &Directive, v: &str) -> Result<Duration, ConfigError> {
        parse_duration(v).ok_or_else(|| {
            self.err(
                d.line,
                format!("\"{}\" directive invalid value \"{v}\"", d.name),
            )
        })
    }

    fn flag(&self, d: &Directive) -> Result<bool, ConfigError> {
        self.check_args(d, 1, 1)?;
        match d.args[0].as_str() {
            "on" => Ok(true),
            "off" => Ok(false),
            v => Err(self.err(
                d.line,
                format!(
                    "invalid value \"{v}\" in \"{}\" directive, it must be \"on\" or \"off\"",
                    d.name
                ),
            )),
        }
    }

    /// A proxy_* directive allowed in stream {} and server {}; false if `d` is not one.
    fn proxy_setting(&self, d: &Directive, s: &mut ProxySettings) -> Result<bool, ConfigError> {
        fn set<T>(
            p: &Parser<'_>,
            d: &Directive,
            slot: &mut Option<T>,
            v: T,
        ) -> Result<(), ConfigError> {
            if slot.is_some() {
                return Err(p.err(d.line, format!("\"{}\" directive is duplicate", d.name)));
            }
            *slot = Some(v);
            Ok(())
        }
        match d.name.as_str() {
            "proxy_connect_timeout" | "proxy_timeout" | "proxy_next_upstream_timeout" => {
                self.no_block(d)?;
                self.check_args(d, 1, 1)?;
                let t = self.time(d, &d.args[0])?;
                let slot = match d.name.as_str() {
                    "proxy_connect_timeout" => &mut s.connect_timeout,
                    "proxy_timeout" => &mut s.idle_timeout,
                    _ => &mut s.next_upstream_timeout,
                };
                set(self, d, slot, t)?;
            }
            "proxy_next_upstream" | "proxy_half_close" => {
                self.no_block(d)?;
                let v = self.flag(d)?;
                let slot = if d.name == "proxy_half_close" {
                    &mut s.half_close
                } else {
                    &mut s.next_upstream
                };
                set(self, d, slot, v)?;
            }
            "proxy_next_upstream_tries" => {
                self.no_block(d)?;
                self.check_args(d, 1, 1)?;
                let n = self.number(d, &d.args[0])?;
                let n = u32::try_from(n).map_err(|_| {
                    self.err(
                        d.line,
                        format!(
                            "invalid value \"{}\" in \"{}\" directive",
                            d.args[0], d.name
                        ),
                    )
                })?;
                set(self, d, &mut s.next_upstream_tries, n)?;
            }
            "proxy_buffer_size" => {
                self.no_block(d)?;
                self.check_args(d, 1, 1)?;
                let n = parse_size(&d.args[0])
                    .filter(|n| *n > 0 && *n <= 16 << 20)
                    .ok_or_else(|| {
                        self.err(
                            d.line,
                            format!("\"{}\" directive invalid value \"{}\"", d.name, d.args[0]),
                        )
                    })?;
                set(self, d, &mut s.buffer_size, n)?;
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn upstream(&self, d: &Directive) -> Result<UpstreamConfig, ConfigError> {
        self.check_args(d, 1, 1)?;
        let name = d.args[0].clone();
        let mut balance: Option<(Balance, usize)> = None;
        let mut servers = Vec::new();
        let mut any_backup = None;
        for c in self.block(d)? {
            match c.name.as_str() {
                "server" => {
                    self.no_block(c)?;
                    self.check_args(c, 1, 16)?;
                    let (mut list, backup) = self.upstream_server(c)?;
                    if backup && any_backup.is_none() {
                        any_backup = Some(c.line);
                    }
                    servers.append(&mut list);
                }
                "hash" | "least_conn" => {
                    self.no_block(c)?;
                    if balance.is_some() {
                        return Err(self.err(c.line, "load balancing method redefined".into()));
                    }
                    let b = if c.name == "least_conn" {
                        self.check_args(c, 0, 0)?;
                        Balance::LeastConn
                    } else {
                        self.check_args(c, 1, 2)?;
                        if c.args[0] != "$remote_addr" {
                            return Err(self.err(
                                c.line,
                                format!(
                                    "hash key \"{}\" is not supported by ferrokube lb (only $remote_addr)",
                                    c.args[0]
                                ),
                            ));
                        }
                        let consistent = match c.args.get(1).map(String::as_str) {
                            None => false,
                            Some("consistent") => true,
                            Some(v) => {
                                return Err(self.err(c.line, format!("invalid parameter \"{v}\"")))
                            }
                        };
                        Balance::HashRemoteAddr { consistent }
                    };
                    balance = Some((b, c.line));
                }
                _ => self.unknown(c, Context::Upstream)?,
            }
        }
        if servers.is_empty() {
            return Err(self.err(d.line, "no servers are inside upstream".into()));
        }
        let balance = balance.map_or(Balance::RoundRobin, |(b, _)| b);
        if let (Balance::HashRemoteAddr { .. }, Some(line)) = (balance, any_backup) {
            return Err(self.err(line, "invalid parameter \"backup\"".into()));
        }
        if servers.iter().all(|s| s.backup) {
            return Err(self.err(d.line, "no servers are inside upstream".into()));
        }
        Ok(UpstreamConfig {
            name,
            balance,
            servers,
            health_check: None,
        })
    }

    /// `server ADDRESS [weight=N] [max_fails=N] [fail_timeout=T] [backup] [down]`:
    /// one entry per resolved address.
    fn upstream_server(&self, d: &Directive) -> Result<(Vec<ServerConfig>, bool), ConfigError> {
        let name = d.args[0].clone();
        let (mut weight, mut max_fails, mut fail_timeout) =
            (1, DEFAULT_MAX_FAILS, DEFAULT_FAIL_TIMEOUT);
        let (mut backup, mut down) = (false, false);
        let invalid = |v: &str| self.err(d.line, format!("invalid parameter \"{v}\""));
        for a in &d.args[1..] {
            if let Some(v) = a.strip_prefix("weight=") {
                weight = v
                    .parse::<u32>()
                    .ok()
                    .filter(|w| *w > 0)
                    .ok_or_else(|| invalid(a))?;
            } else if let Some(v) = a.strip_prefix("max_fails=") {
                max_fails = v.parse::<u32>().map_err(|_| invalid(a))?;
            } else if let Some(v) = a.strip_prefix("fail_timeout=") {
                fail_timeout = parse_duration(v).ok_or_else(|| invalid(a))?;
            } else if a == "backup" {
                backup = true;
            } else if a == "down" {
                down = true;
            } else if a.starts_with("max_conns=")
                || a.starts_with("resolve")
                || a.starts_with("service=")
            {
                return Err(self.err(
                    d.line,
                    format!("parameter \"{a}\" is not supported by ferrokube lb"),
                ));
            } else {
                return Err(invalid(a));
            }
        }
        if name.starts_with("unix:") {
            return Err(self.err(
                d.line,
                format!("unix socket upstream \"{name}\" is not supported by ferrokube lb"),
            ));
        }
        let addrs = resolve(&name).map_err(|e| {
            if e.starts_with("no port") {
                self.err(d.line, format!("no port in upstream \"{name}\""))
            } else {
                self.err(
                    d.line,
                    format!("host not found in upstream \"{name}\" ({e})"),
                )
            }
        })?;
        let list = addrs
            .into_iter()
            .map(|address| ServerConfig {
                name: name.clone(),
                address,
                weight,
                max_fails,
                fail_timeout,
                backup,
                down,
            })
            .collect();
        Ok((list, backup))
    }

    fn server(
        &self,
        d: &Directive,
        inherited: &ProxySettings,
    ) -> Result<(SocketAddr, String, ProxySettings, usize), ConfigError> {
        self.check_args(d, 0, 0)?;
        let mut listen: Option<SocketAddr> = None;
        let mut pass: Option<(String, usize)> = None;
        let mut own = ProxySettings {
            connect_timeout: None,
            idle_timeout: None,
            next_upstream: None,
            next_upstream_tries: None,
            next_upstream_timeout: None,
            buffer_size: None,
            half_close: None,
        };
        for c in self.block(d)? {
            match c.name.as_str() {
                "listen" => {
                    self.no_block(c)?;
                    self.check_args(c, 1, 16)?;
                    if listen.is_some() {
                        return Err(self.err(
                            c.line,
                            "more than one \"listen\" in a server is not supported by ferrokube lb"
                                .into(),
                        ));
                    }
                    for opt in &c.args[1..] {
                        let name = opt.split('=').next().unwrap_or(opt);
                        match name {
                            "reuseport" | "backlog" | "so_keepalive" | "bind" | "ipv6only"
                            | "fastopen" => {
                                tracing::warn!(file = self.file, line = c.line, parameter = %opt, "listen parameter is ignored by ferrokube lb");
                            }
                            "udp" | "ssl" | "proxy_protocol" => {
                                return Err(self.err(
                                    c.line,
                                    format!(
                                    "listen parameter \"{opt}\" is not supported by ferrokube lb"
                                ),
                                ))
                            }
                            _ => {
                                return Err(self.err(c.line, format!("invalid parameter \"{opt}\"")))
                            }
                        }
                    }
                    let addr = parse_listen(&c.args[0]).map_err(|e| {
                        self.err(c.line, format!("{e} of the \"listen\" directive"))
                    })?;
                    listen = Some(addr);
                }
                "proxy_pass" => {
                    self.no_block(c)?;
                    self.check_args(c, 1, 1)?;
                    if pass.is_some() {
                        return Err(
                            self.err(c.line, "\"proxy_pass\" directive is duplicate".into())
                        );
                    }
                    pass = Some((c.args[0].clone(), c.line));
                }
                _ => {
                    if !self.proxy_setting(c, &mut own)? {
                        self.unknown(c, Context::Server)?;
                    }
                }
            }
        }
        let listen =
            listen.ok_or_else(|| self.err(d.line, "no \"listen\" is defined for server".into()))?;
        let (pass, line) = pass.ok_or_else(|| self.err(d.line, "no handler for server".into()))?;
        let merged = ProxySettings {
            connect_timeout: own.connect_timeout.or(inherited.connect_timeout),
            idle_timeout: own.idle_timeout.or(inherited.idle_timeout),
            next_upstream: own.next_upstream.or(inherited.next_upstream),
            next_upstream_tries: own.next_upstream_tries.or(inherited.next_upstream_tries),
            next_upstream_timeout: own
                .next_upstream_timeout
                .or(inherited.next_upstream_timeout),
            buffer_size: own.buffer_size.or(inherited.buffer_size),
            half_close: own.half_close.or(inherited.half_close),
        };
        Ok((listen, pass, merged, line))
    }

    fn config(&self, tree: &[Directive]) -> Result<Config, ConfigError> {
        let mut workers: Option<usize> = None;
        let mut worker_connections: Option<usize> = None;
        let mut streams = 0;
        let mut config = Config::default();
        for d in tree {
            match d.name.as_str() {
                "worker_processes" => {
                    self.no_block(d)?;
                    self.check_args(d, 1, 1)?;
                    if workers.is_some() {
                        return Err(
                            self.err(d.line, "\"worker_processes\" directive is duplicate".into())
                        );
                    }
                    workers = Some(if d.args[0] == "auto" {
                        std::thread::available_parallelism().map_or(1, |n| n.get())
                    } else {
                        usize::try_from(self.number(d, &d.args[0])?)
                            .unwrap_or(usize::MAX)
                            .max(1)
                    });
                }
                "events" => {
                    self.check_args(d, 0, 0)?;
                    for c in self.block(d)? {
                        if c.name == "worker_connections" {
                            self.no_block(c)?;
                            self.check_args(c, 1, 1)?;
                            if worker_connections.is_some() {
                                return Err(self.err(
                                    c.line,
                                    "\"worker_connections\" directive is duplicate".into(),
                                ));
                            }
                            let n = self.number(c, &c.args[0])?;
                            worker_connections = Some(usize::try_from(n).unwrap_or(usize::MAX));
                        } else {
                            self.unknown(c, Context::Events)?;
                        }
                    }
                }
                "stream" => {
                    self.check_args(d, 0, 0)?;
                    streams += 1;
                    if streams > 1 {
                        return Err(self.err(d.line, "\"stream\" directive is duplicate".into()));
                    }
                    self.stream(d, &mut config)?;
                }
                _ => self.unknown(d, Context::Main)?,
            }
        }
        // nginx defaults: 1 worker, 512 connections.
        config.max_connections = Some(
            workers
                .unwrap_or(1)
                .saturating_mul(worker_connections.unwrap_or(512)),
        );
        Ok(config)
    }

    fn stream(&self, d: &Directive, config: &mut Config) -> Result<(), ConfigError> {
        let children = self.block(d)?;
        let mut inherited = ProxySettings {
            connect_timeout: None,
            idle_timeout: None,
            next_upstream: None,
            next_upstream_tries: None,
            next_upstream_timeout: None,
            buffer_size: None,
            half_close: None,
        };
        // Stream-level proxy_* first: nginx merges them into every server wherever
        // they appear in the block.
        for c in children {
            if !matches!(c.name.as_str(), "upstream" | "server")
                && !self.proxy_setting(c, &mut inherited)?
            {
                self.unknown(c, Context::Stream)?;
            }
        }
        for c in children.iter().filter(|c| c.name == "upstream") {
            let u = self.upstream(c)?;
            if config.upstream(&u.name).is_some() {
                return Err(self.err(c.line, format!("duplicate upstream \"{}\"", u.name)));
            }
            config.upstreams.push(u);
        }
        for c in children.iter().filter(|c| c.name == "server") {
            let (address, pass, s, line) = self.server(c, &inherited)?;
            if config.listeners.iter().any(|l| l.address == address) {
                return Err(self.err(
                    c.line,
                    format!("duplicate \"{address}\" address and port pair"),
                ));
            }
            let upstream = if config.upstream(&pass).is_some() {
                pass
            } else if let Ok(addrs) = resolve(&pass) {
                // proxy_pass ADDRESS: an implicit upstream of that one server.
                let name = pass.clone();
                if config.upstream(&name).is_none() {
                    config.upstreams.push(UpstreamConfig {
                        name: name.clone(),
                        balance: Balance::RoundRobin,
                        servers: addrs
                            .into_iter()
                            .map(|address| ServerConfig {
                                name: name.clone(),
                                address,
                                weight: 1,
                                max_fails: DEFAULT_MAX_FAILS,
                                fail_timeout: DEFAULT_FAIL_TIMEOUT,
                                backup: false,
                                down: false,
                            })
                            .collect(),
                        health_check: None,
                    });
                }
                name
            } else {
                return Err(self.err(line, format!("host not found in upstream \"{pass}\" (no such upstream block, and not an address)")));
            };
            let mut l = ListenerConfig::new(address, &upstream);
            if let Some(v) = s.connect_timeout {
                l.connect_timeout = v;
            }
            if let Some(v) = s.idle_timeout {
                l.idle_timeout = v;
            }
            if let Some(v) = s.next_upstream {
                l.next_upstream = v;
            }
            if let Some(v) = s.next_upstream_tries {
                l.next_upstream_tries = v;
            }
            if let Some(v) = s.next_upstream_timeout {
                l.next_upstream_timeout = v;
            }
            if let Some(v) = s.buffer_size {
                l.buffer_size = v;
            }
            if let Some(v) = s.half_close {
                l.half_close = v;
            }
            config.listeners.push(l);
        }
        Ok(())
    }
}

/// Parses an nginx configuration; `file` names it in errors.
pub fn parse(file: &str, text: &str) -> Result<Config, ConfigError> {
    let tokens = tokenize(file, text)?;
    let tree = parse_tree(file, &tokens)?;
    let config = Parser { file }.config(&tree)?;
    if config.listeners.is_empty() {
        return Err(ConfigError::Nginx {
            at: Pos::file(file),
            message: "no \"stream { server { listen …; proxy_pass …; } }\" is defined".into(),
        });
    }
    Ok(config)
}

#[cfg(test)]
#[path = "nginx_tests.rs"]
mod tests;
