//! Our own YAML configuration (schema in `docs/lb.md`): listeners, upstreams with
//! servers, balancing, passive and active health. Field names are camelCase as in
//! Kubernetes' configuration files; unknown fields are errors; every error names the
//! file, the line and the field.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::{
    parse_duration, parse_listen, resolve, Balance, Config, ConfigError, HealthCheckConfig,
    HealthCheckKind, HealthTls, ListenerConfig, Pos, ServerConfig, UpstreamConfig,
    DEFAULT_FAIL_TIMEOUT, DEFAULT_MAX_FAILS,
};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct File {
    #[serde(default)]
    metrics_address: Option<Spanned<String>>,
    #[serde(default)]
    max_connections: Option<usize>,
    #[serde(default)]
    listeners: Vec<Spanned<Listener>>,
    #[serde(default)]
    upstreams: Vec<Spanned<Upstream>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Listener {
    address: Spanned<String>,
    upstream: Spanned<String>,
    #[serde(default)]
    connect_timeout: Option<Spanned<String>>,
    #[serde(default)]
    idle_timeout: Option<Spanned<String>>,
    #[serde(default)]
    next_upstream: Option<bool>,
    #[serde(default)]
    next_upstream_tries: Option<u32>,
    #[serde(default)]
    next_upstream_timeout: Option<Spanned<String>>,
    #[serde(default)]
    buffer_size: Option<Spanned<usize>>,
    #[serde(default)]
    half_close: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Upstream {
    name: Spanned<String>,
    #[serde(default)]
    balance: Option<Spanned<String>>,
    #[serde(default)]
    max_fails: Option<u32>,
    #[serde(default)]
    fail_timeout: Option<Spanned<String>>,
    #[serde(default)]
    servers: Vec<Spanned<ServerEntry>>,
    #[serde(default)]
    health_check: Option<Spanned<HealthCheck>>,
}

/// `- host:port`, or the long form.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum ServerEntry {
    Short(String),
    Long(Server),
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Server {
    address: String,
    #[serde(default)]
    weight: Option<u32>,
    #[serde(default)]
    max_fails: Option<u32>,
    #[serde(default)]
    fail_timeout: Option<String>,
    #[serde(default)]
    backup: bool,
    #[serde(default)]
    down: bool,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct HealthCheck {
    #[serde(rename = "type")]
    kind: Spanned<String>,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    interval: Option<Spanned<String>>,
    #[serde(default)]
    timeout: Option<Spanned<String>>,
    #[serde(default)]
    fails: Option<u32>,
    #[serde(default)]
    passes: Option<u32>,
    #[serde(default)]
    ca_file: Option<PathBuf>,
    #[serde(default)]
    insecure: bool,
    #[serde(default)]
    cert_file: Option<PathBuf>,
    #[serde(default)]
    key_file: Option<PathBuf>,
    #[serde(default)]
    server_name: Option<String>,
}

struct Ctx<'a> {
    file: &'a str,
}

impl Ctx<'_> {
    fn at<T>(&self, s: &Spanned<T>) -> Pos {
        let line = s.referenced.line();
        Pos {
            file: self.file.to_string(),
            line: (line > 0).then(|| usize::try_from(line).unwrap_or(usize::MAX)),
        }
    }

    fn invalid<T>(&self, s: &Spanned<T>, field: String, message: String) -> ConfigError {
        ConfigError::Invalid {
            at: self.at(s),
            field,
            message,
        }
    }

    fn duration(&self, s: &Spanned<String>, field: String) -> Result<Duration, ConfigError> {
        parse_duration(&s.value).ok_or_else(|| {
            self.invalid(
                s,
                field,
                format!("invalid duration {:?} (use 500ms, 1s, 10m, 1h)", s.value),
            )
        })
    }

    fn listener(&self, i: usize, l: &Spanned<Listener>) -> Result<ListenerConfig, ConfigError> {
        let f = |name: &str| format!("listeners[{i}].{name}");
        let v = &l.value;
        let address = parse_listen(&v.address.value)
            .map_err(|e| self.invalid(&v.address, f("address"), e))?;
        let mut out = ListenerConfig::new(address, &v.upstream.value);
        if let Some(t) = &v.connect_timeout {
            out.connect_timeout = self.duration(t, f("connectTimeout"))?;
        }
        if let Some(t) = &v.idle_timeout {
            out.idle_timeout = self.duration(t, f("idleTimeout"))?;
        }
        if let Some(t) = &v.next_upstream_timeout {
            out.next_upstream_timeout = self.duration(t, f("nextUpstreamTimeout"))?;
        }
        if let Some(b) = v.next_upstream {
            out.next_upstream = b;
        }
        if let Some(n) = v.next_upstream_tries {
            out.next_upstream_tries = n;
        }
        if let Some(b) = v.half_close {
            out.half_close = b;
        }
        if let Some(b) = &v.buffer_size {
            if b.value == 0 || b.value > 16 << 20 {
                return Err(self.invalid(
                    b,
                    f("bufferSize"),
                    format!("{} is not between 1 and 16777216 bytes", b.value),
                ));
            }
            out.buffer_size = b.value;
        }
        Ok(out)
    }

    fn upstream(&self, i: usize, u: &Spanned<Upstream>) -> Result<UpstreamConfig, ConfigError> {
        let f = |name: &str| format!("upstreams[{i}].{name}");
        let v = &u.value;
        let balance = match &v.balance {
            None => Balance::RoundRobin,
            Some(b) => Balance::parse(&b.value).ok_or_else(|| {
                self.invalid(
                    b,
                    f("balance"),
                    format!(
                        "unknown {:?} (hash-remote-addr, round-robin or least-conn)",
                        b.value
                    ),
                )
            })?,
        };
        let max_fails = v.max_fails.unwrap_or(DEFAULT_MAX_FAILS);
        let fail_timeout = match &v.fail_timeout {
            Some(t) => self.duration(t, f("failTimeout"))?,
            None => DEFAULT_FAIL_TIMEOUT,
        };
        if v.servers.is_empty() {
            return Err(self.invalid(u, f("servers"), "no servers".into()));
        }
        let mut servers = Vec::new();
        for (j, s) in v.servers.iter().enumerate() {
            let field = format!("upstreams[{i}].servers[{j}]");
            let (name, weight, mf, ft, backup, down) = match &s.value {
                ServerEntry::Short(a) => (a.clone(), 1, max_fails, fail_timeout, false, false),
                ServerEntry::Long(l) => {
                    let ft = match &l.fail_timeout {
                        Some(t) => parse_duration(t).ok_or_else(|| {
                            self.invalid(
                                s,
                                format!("{field}.failTimeout"),
                                format!("invalid duration {t:?}"),
                            )
                        })?,
                        None => fail_timeout,
                    };
                    let weight = l.weight.unwrap_or(1);
                    if weight == 0 {
                        return Err(self.invalid(
                            s,
                            format!("{field}.weight"),
                            "must be at least 1".into(),
                        ));
                    }
                    (
                        l.address.clone(),
                        weight,
                        l.max_fails.unwrap_or(max_fails),
                        ft,
                        l.backup,
                        l.down,
                    )
                }
            };
            if backup && matches!(balance, Balance::HashRemoteAddr { .. }) {
                return Err(self.invalid(
                    s,
                    format!("{field}.backup"),
                    "backup servers cannot be used with hash balancing (as in nginx)".into(),
                ));
            }
            let addrs =
                resolve(&name).map_err(|e| self.invalid(s, format!("{field}.address"), e))?;
            for address in addrs {
                servers.push(ServerConfig {
                    name: name.clone(),
                    address,
                    weight,
                    max_fails: mf,
                    fail_timeout: ft,
                    backup,
                    down,
                });
            }
        }
        if servers.iter().all(|s| s.backup) {
            return Err(self.invalid(u, f("servers"), "only backup servers".into()));
        }
        let health_check = match &v.health_check {
            None => None,
            Some(h) => Some(self.health_check(&f("healthCheck"), h)?),
        };
        Ok(UpstreamConfig {
            name: v.name.value.clone(),
            balance,
            servers,
            health_check,
        })
    }

    fn health_check(
        &self,
        field: &str,
        h: &Spanned<HealthCheck>,
    ) -> Result<HealthCheckConfig, ConfigError> {
        let v = &h.value;
        let kind = match v.kind.value.as_str() {
            "tcp" => HealthCheckKind::Tcp,
            "https" => {
                if v.ca_file.is_none() && !v.insecure {
                    return Err(self.invalid(
                        h,
                        format!("{field}.caFile"),
                        "an https check needs caFile, or insecure: true".into(),
                    ));
                }
                let client_cert = match (&v.cert_file, &v.key_file) {
                    (Some(c), Some(k)) => Some((c.clone(), k.clone())),
                    (None, None) => None,
                    _ => {
                        return Err(self.invalid(
                            h,
                            format!("{field}.certFile"),
                            "certFile and keyFile go together".into(),
                        ))
                    }
                };
                let path = v.path.clone().unwrap_or_else(|| "/readyz".into());
                if !path.starts_with('/') || path.contains(char::is_whitespace) {
                    return Err(self.invalid(
                        h,
                        format!("{field}.path"),
                        format!("{path:?} is not an absolute path"),
                    ));
                }
                HealthCheckKind::Https {
                    path,
                    tls: HealthTls {
                        ca_file: v.ca_file.clone(),
                        insecure: v.insecure,
                        client_cert,
                        server_name: v.server_name.clone(),
                    },
                }
            }
            other => {
                return Err(self.invalid(
                    &v.kind,
                    format!("{field}.type"),
                    format!("unknown {other:?} (tcp or https)"),
                ))
            }
        };
        let mut out = HealthCheckConfig::new(kind);
        if let Some(t) = &v.interval {
            out.interval = self.duration(t, format!("{field}.interval"))?;
        }
        if let Some(t) = &v.timeout {
            out.timeout = self.duration(t, format!("{field}.timeout"))?;
        }
        if out.interval.is_zero() || out.timeout.is_zero() {
            return Err(self.invalid(
                h,
                format!("{field}.interval"),
                "interval and timeout must be above zero".into(),
            ));
        }
        out.fails = v.fails.unwrap_or(1).max(1);
        out.passes = v.passes.unwrap_or(1).max(1);
        Ok(out)
    }
}

/// The first line of a YAML library error (its rendering may add a source snippet).
fn yaml_message(e: &serde_saphyr::Error) -> String {
    let text = e.to_string();
    let first = text.lines().next().unwrap_or("invalid YAML").trim();
    first.strip_prefix("error: ").unwrap_or(first).to_string()
}

/// Parses our YAML; `file` names it in errors.
pub fn parse(file: &str, text: &str) -> Result<Config, ConfigError> {
    let doc: File = serde_saphyr::from_str(text).map_err(|e| ConfigError::Yaml {
        at: Pos {
            file: file.to_string(),
            line: e
                .location()
                .map(|l| l.line())
                .filter(|l| *l > 0)
                .map(|l| usize::try_from(l).unwrap_or(usize::MAX)),
        },
        message: yaml_message(&e),
    })?;
    let ctx = Ctx { file };
    let mut config = Config {
        max_connections: doc.max_connections,
        ..Config::default()
    };
    if let Some(m) = &doc.metrics_address {
        config.metrics_address =
            Some(parse_listen(&m.value).map_err(|e| ctx.invalid(m, "metricsAddress".into(), e))?);
    }
    for (i, u) in doc.upstreams.iter().enumerate() {
        let up = ctx.upstream(i, u)?;
        if config.upstream(&up.name).is_some() {
            return Err(ctx.invalid(
                &u.value.name,
                format!("upstreams[{i}].name"),
                format!("duplicate upstream {:?}", up.name),
            ));
        }
        config.upstreams.push(up);
    }
    if doc.listeners.is_empty() {
        return Err(ConfigError::Invalid {
            at: Pos::file(file),
            field: "listeners".into(),
            message: "no listeners".into(),
        });
    }
    for (i, l) in doc.listeners.iter().enumerate() {
        let listener = ctx.listener(i, l)?;
        if config.upstream(&listener.upstream).is_none() {
            return Err(ctx.invalid(
                &l.value.upstream,
                format!("listeners[{i}].upstream"),
                format!("no upstream named {:?}", listener.upstream),
            ));
        }
        if config
            .listeners
            .iter()
            .any(|o| o.address == listener.address)
        {
            return Err(ctx.invalid(
                &l.value.address,
                format!("listeners[{i}].address"),
                format!("{} is used by an earlier listener", listener.address),
            ));
        }
        config.listeners.push(listener);
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    const FULL: &str = r#"
metricsAddress: 127.0.0.1:10260
maxConnections: 2048
listeners:
  - address: 127.0.0.1:8443
    upstream: apiservers
    connectTimeout: 1s
    idleTimeout: 10m
    bufferSize: 65536
upstreams:
  - name: apiservers
    balance: hash-remote-addr
    maxFails: 3
    failTimeout: 30s
    servers:
      - 127.0.0.1:6443
      - address: 127.0.0.2:6443
        weight: 2
        maxFails: 0
    healthCheck:
      type: https
      path: /readyz
      interval: 2s
      timeout: 1s
      caFile: /etc/kubernetes/pki/ca.pem
"#;

    fn err(text: &str) -> String {
        parse("/etc/lb.yaml", text).unwrap_err().to_string()
    }

    #[test]
    fn full_document() {
        let c = parse("lb.yaml", FULL).unwrap();
        assert_eq!(c.metrics_address, Some("127.0.0.1:10260".parse().unwrap()));
        assert_eq!(c.max_connections, Some(2048));
        let l = &c.listeners[0];
        assert_eq!(l.connect_timeout, Duration::from_secs(1));
        assert_eq!(l.idle_timeout, Duration::from_secs(600));
        assert_eq!(l.buffer_size, 65536);
        let u = &c.upstreams[0];
        assert_eq!(u.balance, Balance::HashRemoteAddr { consistent: true });
        assert_eq!(u.servers[0].max_fails, 3);
        assert_eq!(u.servers[0].fail_timeout, Duration::from_secs(30));
        assert_eq!(u.servers[1].weight, 2);
        assert_eq!(u.servers[1].max_fails, 0);
        let h = u.health_check.as_ref().unwrap();
        assert_eq!(h.interval, Duration::from_secs(2));
        assert!(
            matches!(&h.kind, HealthCheckKind::Https { path, tls } if path == "/readyz" && tls.ca_file.is_some())
        );
    }

    #[test]
    fn defaults_are_nginx_defaults() {
        let c = parse(
            "x",
            "listeners: [{address: '127.0.0.1:1', upstream: u}]\nupstreams: [{name: u, servers: ['127.0.0.1:2']}]\n",
        )
        .unwrap();
        assert_eq!(c.listeners[0].connect_timeout, Duration::from_secs(60));
        assert_eq!(c.upstreams[0].balance, Balance::RoundRobin);
        assert_eq!(c.upstreams[0].servers[0].max_fails, 1);
        assert_eq!(
            c.upstreams[0].servers[0].fail_timeout,
            Duration::from_secs(10)
        );
        assert_eq!(c.max_connections, None);
    }

    #[test]
    fn errors_name_file_line_and_field() {
        let bad = FULL.replace("idleTimeout: 10m", "idleTimeout: ten");
        assert_eq!(
            err(&bad),
            "/etc/lb.yaml:8: listeners[0].idleTimeout: invalid duration \"ten\" (use 500ms, 1s, 10m, 1h)"
        );
        let bad = FULL.replace("balance: hash-remote-addr", "balance: random");
        assert!(err(&bad).starts_with("/etc/lb.yaml:12: upstreams[0].balance: unknown \"random\""));
        let bad = FULL.replace("upstream: apiservers", "upstream: nope");
        assert!(err(&bad)
            .starts_with("/etc/lb.yaml:6: listeners[0].upstream: no upstream named \"nope\""));
        let bad = FULL.replace("      - 127.0.0.1:6443", "      - 127.0.0.1");
        let e = err(&bad);
        assert!(
            e.starts_with("/etc/lb.yaml:")
                && e.contains("upstreams[0].servers[0].address: no port"),
            "{e}"
        );
        let bad = FULL.replace("connectTimeout: 1s", "connectTimeout: 1s\n    colour: blue");
        let e = err(&bad);
        assert!(
            e.starts_with("/etc/lb.yaml:") && e.contains("colour"),
            "{e}"
        );
        let bad = FULL.replace("type: https", "type: udp");
        assert!(err(&bad).contains("upstreams[0].healthCheck.type: unknown \"udp\""));
        let bad = FULL.replace("      caFile: /etc/kubernetes/pki/ca.pem\n", "");
        assert!(err(&bad).contains("healthCheck.caFile: an https check needs caFile"));
        assert!(err("listeners: [").starts_with("/etc/lb.yaml"));
        assert!(err("upstreams: []\n").contains("listeners: no listeners"));
        let bad = FULL
            .replace("balance: hash-remote-addr", "balance: round-robin")
            .replace(
                "        maxFails: 0",
                "        maxFails: 0\n        backup: true\n      - 127.0.0.3:1",
            );
        assert!(parse("x", &bad).is_ok());
        let bad = FULL.replace("        maxFails: 0", "        backup: true");
        assert!(err(&bad).contains("backup servers cannot be used with hash balancing"));
    }
}
