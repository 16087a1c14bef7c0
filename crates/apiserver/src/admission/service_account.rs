//! The ServiceAccount admission plugin (upstream's
//! `plugin/pkg/admission/serviceaccount`, default-on), on pod creation:
//!
//! - a pod without `serviceAccountName` gets `default`;
//! - the service account must exist, else 403 `error looking up service account …`
//!   (the controller-manager creates `default` in every namespace shortly after the
//!   namespace appears: as upstream, `default` is looked for ten times over 1–2 s);
//! - unless the pod or, failing that, the account sets `automountServiceAccountToken:
//!   false`, a projected volume `kube-api-access-<5 random>` (a bound token that
//!   expires after 3607 s, the `kube-root-ca.crt` ConfigMap's `ca.crt`, the namespace)
//!   is added and mounted read-only at `/var/run/secrets/kubernetes.io/serviceaccount`
//!   in every container and init container that has nothing mounted there;
//! - a pod without `imagePullSecrets` gets the account's;
//! - an account annotated `kubernetes.io/enforce-mountable-secrets: "true"` limits the
//!   pod's secret volumes, `secretKeyRef` env and imagePullSecrets to the secrets it
//!   lists;
//! - mirror pods (static pods' copies) are left alone, and refused if they reference a
//!   service account or its tokens.

use ferrokube_api::resources;
use ferrokube_api::status::{Status, Subject};
use serde_json::{json, Value};

use crate::errors::ApiResult;
use crate::registry::{Registry, Target};

/// Where the token, CA and namespace are mounted.
pub const MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// The volume name prefix.
const VOLUME_PREFIX: &str = "kube-api-access-";
/// The bound token's lifetime (upstream's 1 h + 7 s, which the kubelet refreshes).
const TOKEN_EXPIRATION_SECONDS: i64 = 3607;

fn forbidden(name: &str, why: String) -> crate::errors::ApiError {
    Status::forbidden(
        Subject {
            group: "",
            resource: "pods",
            name,
        },
        &why,
    )
    .into()
}

/// `n` characters of upstream's `utilrand.String` alphabet (no vowels, no look-alikes).
fn random_suffix(n: usize) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    uuid::Uuid::new_v4()
        .as_bytes()
        .iter()
        .take(n)
        .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
        .collect()
}

fn volume(name: &str) -> Value {
    json!({
        "name": name,
        "projected": {
            "defaultMode": 420,
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": TOKEN_EXPIRATION_SECONDS, "path": "token"}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
            ],
        },
    })
}

/// Mounts the token volume in every container of `list` with nothing at [`MOUNT_PATH`];
/// returns whether any got it.
fn mount_in(list: Option<&mut Value>, volume: &str) -> bool {
    let mut mounted = false;
    for c in list.and_then(Value::as_array_mut).into_iter().flatten() {
        let taken = c
            .get("volumeMounts")
            .and_then(Value::as_array)
            .is_some_and(|ms| {
                ms.iter()
                    .any(|m| m.get("mountPath").and_then(Value::as_str) == Some(MOUNT_PATH))
            });
        if taken {
            continue;
        }
        let Some(obj) = c.as_object_mut() else {
            continue;
        };
        let mounts = obj.entry("volumeMounts").or_insert_with(|| json!([]));
        if let Some(ms) = mounts.as_array_mut() {
            ms.push(json!({"name": volume, "readOnly": true, "mountPath": MOUNT_PATH}));
            mounted = true;
        }
    }
    mounted
}

/// Whether a mirror pod references service accounts or their tokens.
fn mirror_references_accounts(spec: &Value) -> Option<String> {
    if spec
        .get("serviceAccountName")
        .and_then(Value::as_str)
        .is_some_and(|n| !n.is_empty())
    {
        return Some("a mirror pod may not reference service accounts".into());
    }
    for v in spec
        .get("volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let projects_token = v
            .pointer("/projected/sources")
            .and_then(Value::as_array)
            .is_some_and(|s| s.iter().any(|src| src.get("serviceAccountToken").is_some()));
        if projects_token {
            return Some(format!(
                "a mirror pod may not use ServiceAccountToken volume projections (volume {})",
                v.get("name").and_then(Value::as_str).unwrap_or_default()
            ));
        }
    }
    None
}

/// The plugin on a pod being created in `namespace` (`name` for messages).
pub async fn admit(
    registry: &Registry,
    namespace: &str,
    pod: &mut Value,
    name: &str,
) -> ApiResult<()> {
    let mirror = pod
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
        .is_some_and(|a| a.contains_key(super::MIRROR_ANNOTATION));
    let Some(spec) = pod.get_mut("spec").filter(|s| s.is_object()) else {
        return Ok(());
    };
    if mirror {
        return match mirror_references_accounts(spec) {
            Some(why) => Err(forbidden(name, why)),
            None => Ok(()),
        };
    }
    // The deprecated `serviceAccount` field stands in for an empty serviceAccountName.
    let account = [spec.get("serviceAccountName"), spec.get("serviceAccount")]
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .find(|n| !n.is_empty())
        .unwrap_or("default")
        .to_string();
    spec["serviceAccountName"] = json!(account);
    spec["serviceAccount"] = json!(account);

    let Some(info) = resources::lookup("", "v1", "serviceaccounts") else {
        return Ok(());
    };
    // As upstream: the `default` account is looked for a little longer (the
    // controller-manager makes it right after the namespace appears).
    let target = Target::builtin(info, Some(namespace));
    let attempts = if account == "default" { 10 } else { 1 };
    let mut found = None;
    for attempt in 0..attempts {
        if attempt > 0 {
            let jitter = u64::from(uuid::Uuid::new_v4().as_bytes()[0]) % 100;
            tokio::time::sleep(std::time::Duration::from_millis(100 + jitter)).await;
        }
        match registry.get(&target, &account).await {
            Ok(sa) => {
                found = Some(sa);
                break;
            }
            Err(crate::errors::ApiError::Storage(ferrokube_storage::StorageError::NotFound {
                ..
            })) => {}
            Err(e) => {
                let why = e.into_status("", "serviceaccounts", &account).message;
                return Err(forbidden(
                    name,
                    format!("error looking up service account {namespace}/{account}: {why}"),
                ));
            }
        }
    }
    let Some(sa) = found else {
        return Err(forbidden(
            name,
            format!(
                "error looking up service account {namespace}/{account}: serviceaccount \"{account}\" not found"
            ),
        ));
    };

    let automount = spec
        .get("automountServiceAccountToken")
        .and_then(Value::as_bool)
        .or_else(|| {
            sa.get("automountServiceAccountToken")
                .and_then(Value::as_bool)
        })
        .unwrap_or(true);
    if automount {
        let existing = spec
            .get("volumes")
            .and_then(Value::as_array)
            .and_then(|vs| {
                vs.iter()
                    .filter_map(|v| v.get("name").and_then(Value::as_str))
                    .find(|n| n.starts_with(VOLUME_PREFIX))
                    .map(str::to_string)
            });
        let volume_name = existing
            .clone()
            .unwrap_or_else(|| format!("{VOLUME_PREFIX}{}", random_suffix(5)));
        let in_init = mount_in(spec.get_mut("initContainers"), &volume_name);
        let in_containers = mount_in(spec.get_mut("containers"), &volume_name);
        if existing.is_none() && (in_init || in_containers) {
            if let Some(obj) = spec.as_object_mut() {
                let volumes = obj.entry("volumes").or_insert_with(|| json!([]));
                if let Some(vs) = volumes.as_array_mut() {
                    vs.push(volume(&volume_name));
                }
            }
        }
    }

    let has_pull_secrets = spec
        .get("imagePullSecrets")
        .and_then(Value::as_array)
        .is_some_and(|s| !s.is_empty());
    if !has_pull_secrets {
        if let Some(secrets) = sa
            .get("imagePullSecrets")
            .and_then(Value::as_array)
            .filter(|s| !s.is_empty())
        {
            spec["imagePullSecrets"] = Value::Array(secrets.clone());
        }
    }
    let enforce = sa
        .pointer("/metadata/annotations/kubernetes.io~1enforce-mountable-secrets")
        .and_then(Value::as_str)
        == Some("true");
    if enforce {
        if let Some(why) = unmountable_secret(spec, &sa, &account) {
            return Err(forbidden(name, why));
        }
    }
    Ok(())
}

/// With `kubernetes.io/enforce-mountable-secrets: "true"` on the account, the first
/// secret the pod uses that the account does not list (upstream's
/// `limitSecretReferences`): secret volumes, `secretKeyRef` env of (init) containers,
/// imagePullSecrets.
fn unmountable_secret(spec: &Value, sa: &Value, account: &str) -> Option<String> {
    let listed = |key: &str| -> Vec<&str> {
        sa.get(key)
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|r| r.get("name")?.as_str()).collect())
            .unwrap_or_default()
    };
    let (secrets, pull) = (listed("secrets"), listed("imagePullSecrets"));
    let list = |v: &Value, key: &str| {
        v.get(key)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    for vol in list(spec, "volumes") {
        if let Some(n) = vol.pointer("/secret/secretName").and_then(Value::as_str) {
            if !secrets.contains(&n) {
                return Some(format!("volume with secret.secretName=\"{n}\" is not allowed because service account {account} does not reference that secret"));
            }
        }
    }
    for (key, what) in [
        ("initContainers", "init container"),
        ("containers", "container"),
    ] {
        for c in list(spec, key) {
            for env in list(&c, "env") {
                let Some(n) = env
                    .pointer("/valueFrom/secretKeyRef/name")
                    .and_then(Value::as_str)
                else {
                    continue;
                };
                if !secrets.contains(&n) {
                    let (cn, en) = (
                        c.get("name").and_then(Value::as_str).unwrap_or(""),
                        env.get("name").and_then(Value::as_str).unwrap_or(""),
                    );
                    return Some(format!("{what} {cn} with envVar {en} referencing secret.secretName=\"{n}\" is not allowed because service account {account} does not reference that secret"));
                }
            }
        }
    }
    for (i, r) in list(spec, "imagePullSecrets").iter().enumerate() {
        let n = r.get("name").and_then(Value::as_str).unwrap_or("");
        if !pull.contains(&n) {
            return Some(format!("imagePullSecrets[{i}].name=\"{n}\" is not allowed because service account {account} does not reference that imagePullSecret"));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn containers_get_the_mount_unless_something_is_there() {
        let mut list = json!([
            {"name": "a"},
            {"name": "b", "volumeMounts": [{"name": "mine", "mountPath": MOUNT_PATH}]},
            {"name": "c", "volumeMounts": [{"name": "data", "mountPath": "/data"}]},
        ]);
        assert!(mount_in(Some(&mut list), "kube-api-access-x"));
        assert_eq!(
            list[0]["volumeMounts"],
            json!([{"name": "kube-api-access-x", "readOnly": true, "mountPath": MOUNT_PATH}])
        );
        assert_eq!(list[1]["volumeMounts"].as_array().unwrap().len(), 1);
        assert_eq!(list[2]["volumeMounts"].as_array().unwrap().len(), 2);
        assert!(!mount_in(None, "kube-api-access-x"));
    }

    #[test]
    fn enforced_accounts_limit_secret_references() {
        let sa = json!({"secrets": [{"name": "ok"}], "imagePullSecrets": [{"name": "pull"}]});
        let pod = |vol: &str, env: &str, pull: &str| {
            json!({
                "volumes": [{"name": "v", "secret": {"secretName": vol}}],
                "containers": [{"name": "c", "env": [{"name": "E", "valueFrom": {"secretKeyRef": {"name": env, "key": "k"}}}]}],
                "imagePullSecrets": [{"name": pull}],
            })
        };
        assert_eq!(
            unmountable_secret(&pod("ok", "ok", "pull"), &sa, "sa"),
            None
        );
        assert_eq!(
            unmountable_secret(&pod("no", "ok", "pull"), &sa, "sa").as_deref(),
            Some("volume with secret.secretName=\"no\" is not allowed because service account sa does not reference that secret")
        );
        assert_eq!(
            unmountable_secret(&pod("ok", "no", "pull"), &sa, "sa").as_deref(),
            Some("container c with envVar E referencing secret.secretName=\"no\" is not allowed because service account sa does not reference that secret")
        );
        assert_eq!(
            unmountable_secret(&pod("ok", "ok", "no"), &sa, "sa").as_deref(),
            Some("imagePullSecrets[0].name=\"no\" is not allowed because service account sa does not reference that imagePullSecret")
        );
    }

    #[test]
    fn volume_names_and_mirror_pods() {
        let s = random_suffix(5);
        assert_eq!(s.len(), 5);
        assert!(
            s.bytes()
                .all(|b| b"bcdfghjklmnpqrstvwxz2456789".contains(&b)),
            "{s}"
        );
        let v = volume("kube-api-access-abcde");
        assert_eq!(
            v["projected"]["sources"][0]["serviceAccountToken"]["expirationSeconds"],
            3607
        );
        assert!(mirror_references_accounts(&json!({"serviceAccountName": "default"})).is_some());
        assert!(mirror_references_accounts(&json!({"volumes": [v]})).is_some());
        assert!(mirror_references_accounts(&json!({"containers": []})).is_none());
    }
}
