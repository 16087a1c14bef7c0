//! `--use-service-account-credentials` (upstream `controller-manager`'s
//! `SAControllerClientBuilder` / `DynamicControllerClientBuilder`): each controller
//! talks to the API server as `system:serviceaccount:kube-system:<its account>`, so
//! RBAC's `system:controller:*` roles — not the controller-manager's own identity —
//! decide what it may do. The account is created if missing, its token comes from the
//! TokenRequest API and is renewed in the background at 80% of its lifetime.

use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{ObjectMeta, PostParams};
use kube::Api;
use parking_lot::RwLock;
use tokio::sync::watch;

use crate::error::{is_conflict, is_not_found, Error, ResultExt};

const NAMESPACE: &str = "kube-system";
const TOKEN_SECONDS: i64 = 3600;

/// Builds controller clients.
#[derive(Clone)]
pub struct ClientBuilder {
    root: kube::Client,
    /// The root configuration (API server address, CA, user agent), used without its
    /// credentials for service-account clients; `None` = every controller uses `root`.
    service_account_base: Option<kube::Config>,
    rate_limit: Option<(f64, u32)>,
}

impl std::fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("service_accounts", &self.service_account_base.is_some())
            .finish_non_exhaustive()
    }
}

impl ClientBuilder {
    /// Every controller uses `root`.
    pub fn root(root: kube::Client) -> ClientBuilder {
        ClientBuilder {
            root,
            service_account_base: None,
            rate_limit: None,
        }
    }

    /// Controllers use their own service accounts; `base` is the root kubeconfig's
    /// configuration (its credentials are dropped), `rate_limit` each client's
    /// QPS/burst.
    pub fn service_accounts(
        root: kube::Client,
        mut base: kube::Config,
        rate_limit: Option<(f64, u32)>,
    ) -> ClientBuilder {
        base.auth_info = kube::config::AuthInfo::default();
        ClientBuilder {
            root,
            service_account_base: Some(base),
            rate_limit,
        }
    }

    /// The controller-manager's own client.
    pub fn root_client(&self) -> kube::Client {
        self.root.clone()
    }

    /// The client for the controller whose account is `service_account`.
    pub async fn client_for(
        &self,
        service_account: &str,
        stop: watch::Receiver<bool>,
    ) -> Result<kube::Client, Error> {
        let Some(base) = self.service_account_base.clone() else {
            return Ok(self.root.clone());
        };
        self.ensure_account(service_account).await?;
        let (token, lifetime) = self.request_token(service_account).await?;
        let header = Arc::new(RwLock::new(bearer(&token, service_account)?));
        self.spawn_refresh(service_account.to_string(), header.clone(), lifetime, stop);
        let set = header.clone();
        let layer = tower::util::MapRequestLayer::new(move |mut req: http::Request<_>| {
            req.headers_mut()
                .insert(http::header::AUTHORIZATION, set.read().clone());
            req
        });
        let builder = kube::client::ClientBuilder::try_from(base)
            .action("building a service-account client")?
            .with_layer(&layer);
        Ok(match self.rate_limit {
            Some((qps, burst)) => builder
                .with_layer(&ferrokube_client::TokenBucketLayer::new(qps, burst))
                .build(),
            None => builder.build(),
        })
    }

    async fn ensure_account(&self, name: &str) -> Result<(), Error> {
        let api: Api<ServiceAccount> = Api::namespaced(self.root.clone(), NAMESPACE);
        match api.get(name).await {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => {
                let sa = ServiceAccount {
                    metadata: ObjectMeta {
                        name: Some(name.into()),
                        namespace: Some(NAMESPACE.into()),
                        ..ObjectMeta::default()
                    },
                    ..ServiceAccount::default()
                };
                match api.create(&PostParams::default(), &sa).await {
                    Ok(_) => Ok(()),
                    Err(e) if is_conflict(&e) => Ok(()),
                    Err(e) => Err(e).action(format!("creating service account {NAMESPACE}/{name}")),
                }
            }
            Err(e) => Err(e).action(format!("reading service account {NAMESPACE}/{name}")),
        }
    }

    async fn request_token(&self, name: &str) -> Result<(String, Duration), Error> {
        let api: Api<ServiceAccount> = Api::namespaced(self.root.clone(), NAMESPACE);
        let req = TokenRequest {
            spec: TokenRequestSpec {
                expiration_seconds: Some(TOKEN_SECONDS),
                ..TokenRequestSpec::default()
            },
            ..TokenRequest::default()
        };
        let resp: TokenRequest = api
            .create_subresource("token", name, &PostParams::default(), &req)
            .await
            .action(format!("requesting a token for {NAMESPACE}/{name}"))?;
        let status = resp.status.ok_or_else(|| Error::Credentials {
            service_account: name.into(),
            reason: "TokenRequest returned no status".into(),
        })?;
        let lifetime = status
            .expiration_timestamp
            .0
            .duration_since(k8s_openapi::jiff::Timestamp::now())
            .try_into()
            .unwrap_or(Duration::from_secs(TOKEN_SECONDS as u64));
        Ok((status.token, lifetime))
    }

    fn spawn_refresh(
        &self,
        name: String,
        header: Arc<RwLock<HeaderValue>>,
        lifetime: Duration,
        mut stop: watch::Receiver<bool>,
    ) {
        let me = self.clone();
        tokio::spawn(async move {
            let mut wait = lifetime.mul_f64(0.8);
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
                match me.request_token(&name).await {
                    Ok((token, lifetime)) => {
                        if let Ok(h) = bearer(&token, &name) {
                            *header.write() = h;
                        }
                        wait = lifetime.mul_f64(0.8);
                    }
                    Err(e) => {
                        tracing::warn!(service_account = %name, error = %e, "token renewal failed");
                        wait = Duration::from_secs(10);
                    }
                }
            }
        });
    }
}

fn bearer(token: &str, service_account: &str) -> Result<HeaderValue, Error> {
    let mut v =
        HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| Error::Credentials {
            service_account: service_account.into(),
            reason: "the token is not a valid header value".into(),
        })?;
    v.set_sensitive(true);
    Ok(v)
}
