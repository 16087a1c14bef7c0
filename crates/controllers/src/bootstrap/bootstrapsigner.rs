//! The bootstrap signer (upstream `pkg/controller/bootstrap/bootstrapsigner.go`):
//! keeps `kube-public/cluster-info` signed so a joining node holding a bootstrap token
//! can trust the `kubeconfig` it reads there. For every valid token (a kube-system
//! Secret of type `bootstrap.kubernetes.io/token`, named after its `token-id`, with
//! `usage-bootstrap-signing: true`, not expired) the ConfigMap carries
//! `jws-kubeconfig-<token-id>`: a detached JWS (HS256, keyed with the token secret,
//! `kid` = token id) over `kubeconfig`. Signatures of tokens that are gone are removed.

use std::collections::BTreeMap;

use base64::Engine;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::jiff::Timestamp;
use kube::api::PostParams;
use kube::Api;

use super::{data, expiration, is_token_secret, parse_name, Expiration};
use super::{TOKEN_ID_KEY, TOKEN_SECRET_KEY, USAGE_SIGNING_KEY};
use crate::context::ControllerContext;
use crate::error::{Error, ResultExt};
use crate::informer::{Notification, Store};
use crate::workqueue::{run_workers, WorkQueue};

/// `kube-public`.
pub const CONFIG_MAP_NAMESPACE: &str = "kube-public";
/// `cluster-info`.
pub const CONFIG_MAP_NAME: &str = "cluster-info";
/// The signed data key.
pub const KUBECONFIG_KEY: &str = "kubeconfig";
/// Signature keys are this prefix plus the token id.
pub const JWS_PREFIX: &str = "jws-kubeconfig-";

/// The single work item: "re-sign cluster-info".
const KEY: &str = "kube-public/cluster-info";

/// Upstream's `jws.ComputeDetachedSignature`: the compact JWS of `content` with
/// protected header `{"alg":"HS256","kid":<token id>}` and the payload left out
/// (`header..signature`).
pub fn detached_signature(content: &str, token_id: &str, token_secret: &str) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = serde_json::json!({"alg": "HS256", "kid": token_id}).to_string();
    let signing_input = format!("{}.{}", b64.encode(header), b64.encode(content));
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, token_secret.as_bytes());
    let tag = ring::hmac::sign(&key, signing_input.as_bytes());
    let (protected, _) = signing_input.split_once('.').unwrap_or_default();
    format!("{protected}..{}", b64.encode(tag.as_ref()))
}

/// Upstream's `validateSecretForSigning`: (token id, token secret) of a token that may
/// sign.
pub fn signing_token(secret: &Secret, now: Timestamp) -> Option<(String, String)> {
    if !is_token_secret(secret) {
        return None;
    }
    let name_id = parse_name(secret.metadata.name.as_deref().unwrap_or_default())?;
    let id = data(secret, TOKEN_ID_KEY);
    if id.is_empty() || id != name_id {
        return None;
    }
    let token_secret = data(secret, TOKEN_SECRET_KEY);
    if token_secret.is_empty() {
        return None;
    }
    // The token cleaner removes expired tokens, but may be slow or off.
    if expiration(secret, now) == Expiration::Expired {
        return None;
    }
    (data(secret, USAGE_SIGNING_KEY) == "true").then_some((id, token_secret))
}

/// The ConfigMap data `cm` should have, or `None` if it is already right (or has no
/// `kubeconfig` to sign).
pub fn signed_data(
    cm: &ConfigMap,
    tokens: &BTreeMap<String, String>,
) -> Option<BTreeMap<String, String>> {
    let current = cm.data.clone().unwrap_or_default();
    let content = current.get(KUBECONFIG_KEY)?.clone();
    let mut old_sigs = BTreeMap::new();
    let mut new: BTreeMap<String, String> = current
        .into_iter()
        .filter_map(|(k, v)| match k.strip_prefix(JWS_PREFIX) {
            Some(id) => {
                old_sigs.insert(id.to_string(), v);
                None
            }
            None => Some((k, v)),
        })
        .collect();
    let mut changed = false;
    for (id, secret) in tokens {
        let sig = detached_signature(&content, id, secret);
        if old_sigs.remove(id).as_deref() != Some(sig.as_str()) {
            changed = true;
        }
        new.insert(format!("{JWS_PREFIX}{id}"), sig);
    }
    // Signatures left over belong to tokens that are gone.
    (changed || !old_sigs.is_empty()).then_some(new)
}

/// Starts the bootstrap signer.
pub fn start(ctx: ControllerContext) -> Result<(), Error> {
    let cms = ctx.informers.get::<ConfigMap>();
    let secrets = ctx.informers.get::<Secret>();
    let queue = WorkQueue::new(ctx.name);
    {
        let queue = queue.clone();
        cms.add_handler(move |n| {
            let (Notification::Add(cm) | Notification::Update { new: cm, .. }) = n else {
                return;
            };
            if cm.metadata.namespace.as_deref() == Some(CONFIG_MAP_NAMESPACE)
                && cm.metadata.name.as_deref() == Some(CONFIG_MAP_NAME)
            {
                queue.add(KEY);
            }
        });
    }
    {
        let queue = queue.clone();
        secrets.add_handler(move |n| {
            let s = match n {
                Notification::Add(s) | Notification::Delete(s) => s,
                Notification::Update { new, .. } => new,
            };
            if is_token_secret(s) {
                queue.add(KEY);
            }
        });
    }
    let cm_store = cms.store();
    let secret_store = secrets.store();
    let mut stop = ctx.stop.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = async { cms.wait_synced().await; secrets.wait_synced().await } => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        tracing::info!(controller = ctx.name, "starting bootstrap signer");
        let client = ctx.client.clone();
        run_workers(queue, 1, stop, move |_key| {
            let client = client.clone();
            let cm_store = cm_store.clone();
            let secret_store = secret_store.clone();
            async move { sign_config_map(&client, &cm_store, &secret_store).await }
        })
        .await;
    });
    Ok(())
}

async fn sign_config_map(
    client: &kube::Client,
    cms: &Store<ConfigMap>,
    secrets: &Store<Secret>,
) -> Result<(), Error> {
    let Some(cm) = cms.get(CONFIG_MAP_NAMESPACE, CONFIG_MAP_NAME) else {
        return Ok(());
    };
    let now = Timestamp::now();
    let tokens: BTreeMap<String, String> = secrets
        .list_namespace(super::TOKEN_NAMESPACE)
        .iter()
        .filter_map(|s| signing_token(s, now))
        .collect();
    let Some(data) = signed_data(&cm, &tokens) else {
        return Ok(());
    };
    let mut updated = (*cm).clone();
    updated.data = Some(data);
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), CONFIG_MAP_NAMESPACE);
    api.replace(CONFIG_MAP_NAME, &PostParams::default(), &updated)
        .await
        .action("updating the signatures of kube-public/cluster-info")?;
    tracing::info!(tokens = tokens.len(), "signed kube-public/cluster-info");
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::bootstrap::tests::token_secret;
    use crate::bootstrap::EXPIRATION_KEY;

    #[test]
    fn detached_jws_as_go_jose_writes_it() {
        // HS256 over "{"alg":"HS256","kid":"abcdef"}" . "hello", keyed "0123456789abcdef".
        let sig = detached_signature("hello", "abcdef", "0123456789abcdef");
        let (header, rest) = sig.split_once("..").unwrap();
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        assert_eq!(
            b64.decode(header).unwrap(),
            br#"{"alg":"HS256","kid":"abcdef"}"#.to_vec()
        );
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"0123456789abcdef");
        let input = format!("{header}.{}", b64.encode("hello"));
        ring::hmac::verify(&key, input.as_bytes(), &b64.decode(rest).unwrap()).unwrap();
    }

    fn token(id: &str, extra: &[(&str, &str)]) -> Secret {
        let mut d = vec![
            (TOKEN_ID_KEY, id),
            (TOKEN_SECRET_KEY, "0123456789abcdef"),
            (USAGE_SIGNING_KEY, "true"),
        ];
        d.extend_from_slice(extra);
        token_secret(&format!("bootstrap-token-{id}"), &d)
    }

    #[test]
    fn which_tokens_sign() {
        let now: Timestamp = "2030-01-01T00:00:00Z".parse().unwrap();
        assert!(signing_token(&token("abcdef", &[]), now).is_some());
        let mut wrong_name = token("abcdef", &[]);
        wrong_name.metadata.name = Some("bootstrap-token-zzzzzz".into());
        assert!(signing_token(&wrong_name, now).is_none());
        let expired = token("abcdef", &[(EXPIRATION_KEY, "2029-01-01T00:00:00Z")]);
        assert!(signing_token(&expired, now).is_none());
        let no_sign = token_secret(
            "bootstrap-token-abcdef",
            &[
                (TOKEN_ID_KEY, "abcdef"),
                (TOKEN_SECRET_KEY, "0123456789abcdef"),
            ],
        );
        assert!(signing_token(&no_sign, now).is_none());
    }

    #[test]
    fn signs_adds_and_removes() {
        let mut cm = ConfigMap {
            data: Some(BTreeMap::from([
                (KUBECONFIG_KEY.to_string(), "apiVersion: v1".to_string()),
                ("jws-kubeconfig-gone00".to_string(), "stale".to_string()),
            ])),
            ..Default::default()
        };
        let tokens = BTreeMap::from([("abcdef".to_string(), "0123456789abcdef".to_string())]);
        let data = signed_data(&cm, &tokens).unwrap();
        assert_eq!(data.len(), 2);
        assert_eq!(
            data["jws-kubeconfig-abcdef"],
            detached_signature("apiVersion: v1", "abcdef", "0123456789abcdef")
        );
        cm.data = Some(data);
        assert_eq!(signed_data(&cm, &tokens), None);
        assert_eq!(signed_data(&cm, &BTreeMap::new()).unwrap().len(), 1);
        assert_eq!(signed_data(&ConfigMap::default(), &tokens), None);
    }
}
