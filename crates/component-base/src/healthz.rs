//! `/healthz`, `/livez`, `/readyz`: upstream's `k8s.io/apiserver/pkg/server/healthz`.
//!
//! Each endpoint runs its named checks (`ping` always); `GET /healthz` answers `ok`, or
//! 500 with `[-]<name> failed: reason withheld` lines; `?verbose` lists every check;
//! `?exclude=<name>` skips one; `/healthz/<name>` runs one check. Components add
//! their own checks (kube-controller-manager's `leaderElection`, for instance).

use std::sync::{Arc, RwLock};

/// A named check: `Ok(())` healthy, `Err(reason)` not (the reason is logged, and
/// withheld from the response as upstream does).
pub type Check = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

/// Which endpoint(s) a check belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `/healthz`.
    Healthz,
    /// `/livez`.
    Livez,
    /// `/readyz`.
    Readyz,
}

impl Endpoint {
    /// The endpoint for a request path (`/readyz`, `/readyz/ping`, …).
    pub fn from_path(path: &str) -> Option<(Endpoint, Option<&str>)> {
        for (prefix, e) in [
            ("/healthz", Endpoint::Healthz),
            ("/livez", Endpoint::Livez),
            ("/readyz", Endpoint::Readyz),
        ] {
            if let Some(rest) = path.strip_prefix(prefix) {
                if rest.is_empty() || rest == "/" {
                    return Some((e, None));
                }
                if let Some(name) = rest.strip_prefix('/') {
                    return Some((e, Some(name)));
                }
            }
        }
        None
    }

    fn name(self) -> &'static str {
        match self {
            Endpoint::Healthz => "healthz",
            Endpoint::Livez => "livez",
            Endpoint::Readyz => "readyz",
        }
    }
}

/// The checks of the three endpoints.
#[derive(Clone)]
pub struct HealthChecks {
    checks: Arc<RwLock<Vec<(Endpoint, String, Check)>>>,
}

impl std::fmt::Debug for HealthChecks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<String> = self
            .read()
            .iter()
            .map(|(e, n, _)| format!("{}/{n}", e.name()))
            .collect();
        f.debug_struct("HealthChecks")
            .field("checks", &names)
            .finish()
    }
}

impl Default for HealthChecks {
    fn default() -> Self {
        let checks = HealthChecks {
            checks: Arc::new(RwLock::new(Vec::new())),
        };
        for e in [Endpoint::Healthz, Endpoint::Livez, Endpoint::Readyz] {
            checks.add(e, "ping", Arc::new(|| Ok(())));
        }
        checks
    }
}

/// A health response: status code and plain-text body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthResponse {
    /// 200, 404 (unknown check) or 500.
    pub status: u16,
    /// `ok`, or the verbose listing.
    pub body: String,
}

impl HealthChecks {
    /// `ping` on every endpoint.
    pub fn new() -> HealthChecks {
        HealthChecks::default()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<(Endpoint, String, Check)>> {
        self.checks
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Adds (or replaces) check `name` on `endpoint`.
    pub fn add(&self, endpoint: Endpoint, name: &str, check: Check) {
        let mut checks = self
            .checks
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        checks.retain(|(e, n, _)| !(*e == endpoint && n == name));
        checks.push((endpoint, name.to_string(), check));
    }

    /// Answers `GET /<endpoint>[/<check>]?<query>`.
    pub fn respond(
        &self,
        endpoint: Endpoint,
        single: Option<&str>,
        query: Option<&str>,
    ) -> HealthResponse {
        let params: Vec<(String, String)> = query
            .map(|q| {
                q.split('&')
                    .filter(|p| !p.is_empty())
                    .map(|p| match p.split_once('=') {
                        Some((k, v)) => (k.to_string(), v.to_string()),
                        None => (p.to_string(), String::new()),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let verbose = params.iter().any(|(k, _)| k == "verbose");
        let excluded: Vec<&str> = params
            .iter()
            .filter(|(k, _)| k == "exclude")
            .map(|(_, v)| v.as_str())
            .collect();
        let checks = self.read();
        let selected: Vec<&(Endpoint, String, Check)> = checks
            .iter()
            .filter(|(e, n, _)| *e == endpoint && single.is_none_or(|s| s == n))
            .collect();
        if single.is_some() && selected.is_empty() {
            return HealthResponse {
                status: 404,
                body: "404 page not found\n".into(),
            };
        }
        let mut lines = String::new();
        let mut failed = false;
        for (_, name, check) in selected {
            if excluded.contains(&name.as_str()) {
                lines.push_str(&format!("[+]{name} excluded: ok\n"));
                continue;
            }
            match check() {
                Ok(()) => lines.push_str(&format!("[+]{name} ok\n")),
                Err(reason) => {
                    tracing::info!(check = %name, endpoint = endpoint.name(), %reason, "health check failed");
                    failed = true;
                    lines.push_str(&format!("[-]{name} failed: reason withheld\n"));
                }
            }
        }
        let what = endpoint.name();
        if failed {
            return HealthResponse {
                status: 500,
                body: format!("{lines}{what} check failed\n"),
            };
        }
        HealthResponse {
            status: 200,
            body: if verbose {
                format!("{lines}{what} check passed\n")
            } else {
                "ok".into()
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ok_verbose_failing_and_single() {
        let h = HealthChecks::new();
        assert_eq!(h.respond(Endpoint::Healthz, None, None).body, "ok");
        assert_eq!(
            h.respond(Endpoint::Readyz, None, Some("verbose")).body,
            "[+]ping ok\nreadyz check passed\n"
        );
        h.add(
            Endpoint::Healthz,
            "leaderElection",
            Arc::new(|| Err("stale".into())),
        );
        let r = h.respond(Endpoint::Healthz, None, None);
        assert_eq!(r.status, 500);
        assert!(
            r.body
                .contains("[-]leaderElection failed: reason withheld\n"),
            "{}",
            r.body
        );
        let r = h.respond(Endpoint::Healthz, None, Some("exclude=leaderElection"));
        assert_eq!(r.status, 200);
        assert_eq!(h.respond(Endpoint::Healthz, Some("ping"), None).status, 200);
        assert_eq!(h.respond(Endpoint::Healthz, Some("nope"), None).status, 404);
        assert_eq!(h.respond(Endpoint::Livez, None, None).status, 200);
        assert_eq!(
            Endpoint::from_path("/readyz/ping"),
            Some((Endpoint::Readyz, Some("ping")))
        );
        assert_eq!(Endpoint::from_path("/healthzz"), None);
    }
}
