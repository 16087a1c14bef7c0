//! How other hosts join a `server` as nodes, kubeadm's way:
//!
//! - the server keeps a bootstrap token (`<data-dir>/node-token`, `<id>.<secret>`)
//!   as the Secret `kube-system/bootstrap-token-<id>` (no expiry, group
//!   [`JOIN_GROUP`]);
//! - it publishes `kube-public/cluster-info` (a kubeconfig with the CA and the API
//!   server's address), readable by `system:anonymous`; the bootstrap signer adds a
//!   JWS of it for every signing token;
//! - its bootstrap RBAC lets `system:bootstrappers` create CSRs that are approved
//!   automatically, and lets nodes renew their own client certificates;
//! - `agent` reads cluster-info without trusting the server yet, accepts it only if
//!   its JWS verifies with the token secret ([`discover_ca`]), then bootstraps the
//!   kubelet with the token.

use std::path::Path;

use anyhow::Context;
use ferrokube_controllers::bootstrap::bootstrapsigner::{
    detached_signature, CONFIG_MAP_NAME, CONFIG_MAP_NAMESPACE, JWS_PREFIX, KUBECONFIG_KEY,
};
use ferrokube_pki::bootstrap::BootstrapToken;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::rbac::v1::{
    ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};
use kube::api::{ObjectMeta, PostParams};
use kube::Api;

/// The group the join token adds (besides `system:bootstrappers`).
pub const JOIN_GROUP: &str = "system:bootstrappers:ferrokube:default-node-token";

/// The join token in `path`, made (mode 0600) on first use.
pub fn node_token(path: &Path) -> anyhow::Result<BootstrapToken> {
    match std::fs::read_to_string(path) {
        Ok(text) => BootstrapToken::parse(text.trim())
            .with_context(|| format!("{}: not a bootstrap token", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let token = BootstrapToken::generate()?;
            ferrokube_pki::files::write_atomic(
                path,
                format!("{}\n", token.token()).as_bytes(),
                ferrokube_pki::files::Mode::Private,
                false,
            )?;
            Ok(token)
        }
        Err(e) => Err(anyhow::Error::from(e).context(format!("reading {}", path.display()))),
    }
}

/// The kubeconfig cluster-info carries: CA and server, no users (kubeadm's shape).
pub fn cluster_info_kubeconfig(server: &str, ca_pem: &[u8]) -> String {
    use base64::Engine;
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    format!(
        "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: {ca}\n    server: {server}\n  name: \"\"\ncontexts: null\ncurrent-context: \"\"\nkind: Config\npreferences: {{}}\nusers: null\n"
    )
}

fn meta(name: &str, namespace: Option<&str>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: namespace.map(Into::into),
        ..ObjectMeta::default()
    }
}

fn subject(kind: &str, name: &str) -> Subject {
    Subject {
        api_group: Some("rbac.authorization.k8s.io".into()),
        kind: kind.into(),
        name: name.into(),
        namespace: None,
    }
}

fn cluster_role(name: &str) -> RoleRef {
    RoleRef {
        api_group: "rbac.authorization.k8s.io".into(),
        kind: "ClusterRole".into(),
        name: name.into(),
    }
}

/// Creates `obj` unless it exists.
async fn ensure<K>(api: &Api<K>, obj: &K) -> anyhow::Result<()>
where
    K: kube::Resource + Clone + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.create(&PostParams::default(), obj).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(anyhow::Error::from(e).context(format!(
            "creating {}",
            obj.meta().name.as_deref().unwrap_or_default()
        ))),
    }
}

/// Publishes what joining nodes need (see the module docs). Idempotent.
pub async fn publish(
    client: &kube::Client,
    token: &BootstrapToken,
    server: &str,
    ca_pem: &[u8],
) -> anyhow::Result<()> {
    // The token Secret.
    let options = ferrokube_pki::bootstrap::TokenOptions {
        groups: vec![JOIN_GROUP.to_string()],
        ttl: None,
        description: Some("the token `ferrokube agent --token` joins nodes with".into()),
    };
    let secret: k8s_openapi::api::core::v1::Secret = serde_json::from_value(
        ferrokube_pki::bootstrap::secret(token, &options, time::OffsetDateTime::now_utc())?,
    )?;
    ensure(&Api::namespaced(client.clone(), "kube-system"), &secret).await?;

    // cluster-info, kept pointing at this server and CA.
    let kubeconfig = cluster_info_kubeconfig(server, ca_pem);
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), CONFIG_MAP_NAMESPACE);
    match maps.get_opt(CONFIG_MAP_NAME).await? {
        None => {
            let cm = ConfigMap {
                metadata: meta(CONFIG_MAP_NAME, Some(CONFIG_MAP_NAMESPACE)),
                data: Some([(KUBECONFIG_KEY.to_string(), kubeconfig)].into()),
                ..ConfigMap::default()
            };
            ensure(&maps, &cm).await?;
        }
        Some(mut cm) => {
            let data = cm.data.get_or_insert_with(Default::default);
            if data.get(KUBECONFIG_KEY) != Some(&kubeconfig) {
                data.insert(KUBECONFIG_KEY.into(), kubeconfig);
                maps.replace(CONFIG_MAP_NAME, &PostParams::default(), &cm)
                    .await
                    .context("updating cluster-info")?;
            }
        }
    }
    // Anyone may read cluster-info (kubeadm's bootstrap-signer-clusterinfo role).
    let name = "ferrokube:bootstrap-signer-clusterinfo";
    let role = Role {
        metadata: meta(name, Some(CONFIG_MAP_NAMESPACE)),
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec![String::new()]),
            resources: Some(vec!["configmaps".into()]),
            resource_names: Some(vec![CONFIG_MAP_NAME.into()]),
            verbs: vec!["get".into()],
            ..PolicyRule::default()
        }]),
    };
    ensure(
        &Api::namespaced(client.clone(), CONFIG_MAP_NAMESPACE),
        &role,
    )
    .await?;
    let binding = RoleBinding {
        metadata: meta(name, Some(CONFIG_MAP_NAMESPACE)),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "Role".into(),
            name: name.into(),
        },
        subjects: Some(vec![subject("User", "system:anonymous")]),
    };
    ensure(
        &Api::namespaced(client.clone(), CONFIG_MAP_NAMESPACE),
        &binding,
    )
    .await?;

    // The seeds' bootstrap bindings.
    bind_cluster_roles(
        client,
        &[
            (
                "ferrokube:kubelet-bootstrap",
                "system:node-bootstrapper",
                "Group",
                "system:bootstrappers",
            ),
            (
                "ferrokube:node-autoapprove-bootstrap",
                "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
                "Group",
                "system:bootstrappers",
            ),
            (
                "ferrokube:node-autoapprove-certificate-rotation",
                "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
                "Group",
                "system:nodes",
            ),
        ],
    )
    .await
}

/// Creates each ClusterRoleBinding `(name, cluster role, subject kind, subject)`
/// unless it exists.
pub(crate) async fn bind_cluster_roles(
    client: &kube::Client,
    bindings: &[(&str, &str, &str, &str)],
) -> anyhow::Result<()> {
    let api: Api<ClusterRoleBinding> = Api::all(client.clone());
    for (name, role, kind, who) in bindings {
        let b = ClusterRoleBinding {
            metadata: meta(name, None),
            role_ref: cluster_role(role),
            subjects: Some(vec![subject(kind, who)]),
        };
        ensure(&api, &b).await?;
    }
    Ok(())
}

/// Compares without an early exit.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The CA certificate (PEM) from cluster-info's `kubeconfig`, if `signature` is its
/// JWS with `token`.
pub fn verify_cluster_info(
    kubeconfig: &str,
    signature: &str,
    token: &BootstrapToken,
) -> anyhow::Result<Vec<u8>> {
    let expected = detached_signature(kubeconfig, &token.id, &token.secret);
    if !same(expected.as_bytes(), signature.as_bytes()) {
        anyhow::bail!(
            "the cluster-info signature for token {} does not verify: the token secret is wrong, or this is not the server that issued it",
            token.id
        );
    }
    let parsed: kube::config::Kubeconfig =
        serde_saphyr::from_str(kubeconfig).context("cluster-info's kubeconfig does not parse")?;
    let cluster = parsed
        .clusters
        .first()
        .and_then(|c| c.cluster.as_ref())
        .context("cluster-info's kubeconfig names no cluster")?;
    let ca = cluster
        .certificate_authority_data
        .as_deref()
        .context("cluster-info's kubeconfig carries no certificate-authority-data")?;
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(ca.trim())
        .context("cluster-info's certificate-authority-data is not base64")
}

/// Reads cluster-info from the `servers` (in turn) without trusting their certificates
/// (as anonymous) and returns the CA it carries once its JWS for `token` verifies.
/// Retries (every 2 s) while no server answers or none has signed it yet.
pub async fn discover_ca(servers: &[String], token: &BootstrapToken) -> anyhow::Result<Vec<u8>> {
    let mut apis = Vec::new();
    for server in servers {
        let url: http::Uri = server
            .parse()
            .with_context(|| format!("--server {server}: not a URL"))?;
        let mut config = kube::Config::new(url);
        config.accept_invalid_certs = true;
        let client = kube::Client::try_from(config).context("building the discovery client")?;
        let api: Api<ConfigMap> = Api::namespaced(client, CONFIG_MAP_NAMESPACE);
        apis.push((server, api));
    }
    let key = format!("{JWS_PREFIX}{}", token.id);
    let mut last = String::new();
    // The servers in turn, until one has cluster-info signed for this token.
    for (server, api) in apis.iter().cycle() {
        let why = match api.get_opt(CONFIG_MAP_NAME).await {
            Ok(Some(cm)) => {
                let data = cm.data.unwrap_or_default();
                match (data.get(KUBECONFIG_KEY), data.get(&key)) {
                    (Some(kc), Some(sig)) => return verify_cluster_info(kc, sig, token),
                    (None, _) => format!("{server}: cluster-info has no kubeconfig yet"),
                    (_, None) => format!(
                        "{server}: cluster-info is not signed for token {} yet",
                        token.id
                    ),
                }
            }
            Ok(None) => format!("{server}: the server has no cluster-info yet"),
            Err(e) => format!("reading cluster-info from {server}: {e}"),
        };
        if why != last {
            tracing::warn!("{why}; retrying");
            last = why;
        }
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    }
    anyhow::bail!("no --server given")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_info_verifies_only_with_its_token() {
        let token = BootstrapToken::parse("abcdef.0123456789abcdef").unwrap();
        let kc = cluster_info_kubeconfig("https://198.18.0.1:6443", b"-----BEGIN CERT-----\n");
        let sig = detached_signature(&kc, &token.id, &token.secret);
        assert_eq!(
            verify_cluster_info(&kc, &sig, &token).unwrap(),
            b"-----BEGIN CERT-----\n"
        );
        let other = BootstrapToken::parse("abcdef.fedcba9876543210").unwrap();
        let err = verify_cluster_info(&kc, &sig, &other)
            .unwrap_err()
            .to_string();
        assert!(err.contains("does not verify"), "{err}");
        let tampered = kc.replace("198.18.0.1", "198.18.0.9");
        assert!(verify_cluster_info(&tampered, &sig, &token).is_err());
    }

    #[test]
    fn the_node_token_is_made_once_and_kept() {
        let dir = std::env::temp_dir().join(format!("fk-join-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("node-token");
        let _ = std::fs::remove_file(&path);
        let first = node_token(&path).unwrap();
        assert_eq!(node_token(&path).unwrap().token(), first.token());
        std::fs::write(&path, "garbage").unwrap();
        let err = format!("{:#}", node_token(&path).unwrap_err());
        assert!(err.contains("node-token"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
