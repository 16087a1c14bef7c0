//! Upstream's authentication lookup (`--authentication-skip-lookup=false`, the default
//! of an aggregated API server): the client CA and the front-proxy request-header
//! settings the API server publishes in `kube-system/extension-apiserver-authentication`
//! fill in the flags not given, so requests proxied by the API server's aggregator
//! (its proxy-client certificate, `X-Remote-User`/`X-Remote-Group`/`X-Remote-Extra-*`)
//! authenticate without copying CA files around.
//!
//! Read once at start (upstream watches the ConfigMap); the CA bundles are written to
//! files in `dir` because the delegated-auth flags take paths.

use std::collections::BTreeMap;
use std::path::Path;

use ferrokube_component_base::DelegatedAuthFlags;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;

/// The ConfigMap's namespace and name.
pub const CONFIGMAP: (&str, &str) = ("kube-system", "extension-apiserver-authentication");

fn json_list(data: &BTreeMap<String, String>, key: &str) -> Result<Option<Vec<String>>, String> {
    match data.get(key) {
        None => Ok(None),
        Some(text) if text.trim().is_empty() => Ok(Some(Vec::new())),
        Some(text) => serde_json::from_str::<Vec<String>>(text)
            .map(Some)
            .map_err(|e| format!("{key}: not a JSON list of strings: {e}")),
    }
}

/// Fills `flags` from the ConfigMap's `data` where the flags are unset, writing CA
/// bundles under `dir`. Returns what was taken from it (for the log).
pub fn apply(
    flags: &mut DelegatedAuthFlags,
    data: &BTreeMap<String, String>,
    dir: &Path,
) -> Result<Vec<&'static str>, String> {
    let mut taken = Vec::new();
    let write = |name: &str, pem: &str| -> Result<std::path::PathBuf, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let path = dir.join(name);
        std::fs::write(&path, pem).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(path)
    };
    if flags.client_ca_file.is_none() {
        if let Some(pem) = data.get("client-ca-file").filter(|p| !p.trim().is_empty()) {
            flags.client_ca_file = Some(write("client-ca.crt", pem)?);
            taken.push("client-ca-file");
        }
    }
    if flags.requestheader_client_ca_file.is_none() {
        if let Some(pem) = data
            .get("requestheader-client-ca-file")
            .filter(|p| !p.trim().is_empty())
        {
            // The request-header settings go together, as upstream takes them.
            let allowed = json_list(data, "requestheader-allowed-names")?;
            let users = json_list(data, "requestheader-username-headers")?;
            let uids = json_list(data, "requestheader-uid-headers")?;
            let groups = json_list(data, "requestheader-group-headers")?;
            let extras = json_list(data, "requestheader-extra-headers-prefix")?;
            flags.requestheader_client_ca_file = Some(write("requestheader-client-ca.crt", pem)?);
            if let Some(v) = allowed {
                flags.requestheader_allowed_names = v;
            }
            if let Some(v) = users {
                flags.requestheader_username_headers = v;
            }
            if let Some(v) = uids {
                flags.requestheader_uid_headers = v;
            }
            if let Some(v) = groups {
                flags.requestheader_group_headers = v;
            }
            if let Some(v) = extras {
                flags.requestheader_extra_headers_prefix = v;
            }
            taken.push("requestheader-*");
        }
    }
    Ok(taken)
}

/// Reads the ConfigMap through `client` and [`apply`]s it.
pub async fn lookup(
    flags: &mut DelegatedAuthFlags,
    client: &kube::Client,
    dir: &Path,
) -> Result<Vec<&'static str>, String> {
    let (namespace, name) = CONFIGMAP;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let cm = api
        .get(name)
        .await
        .map_err(|e| format!("reading configmap {namespace}/{name}: {e}"))?;
    apply(flags, &cm.data.unwrap_or_default(), dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_only_unset_flags() {
        let dir = tempfile::tempdir().unwrap();
        let data: BTreeMap<String, String> = [
            ("client-ca-file", "CLIENT CA"),
            ("requestheader-client-ca-file", "PROXY CA"),
            ("requestheader-allowed-names", "[\"front-proxy-client\"]"),
            ("requestheader-username-headers", "[\"X-Remote-User\"]"),
            ("requestheader-group-headers", "[\"X-Remote-Group\"]"),
            (
                "requestheader-extra-headers-prefix",
                "[\"X-Remote-Extra-\"]",
            ),
            ("requestheader-uid-headers", "[]"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let mut flags = DelegatedAuthFlags::default();
        let taken = apply(&mut flags, &data, dir.path()).unwrap();
        assert_eq!(taken, ["client-ca-file", "requestheader-*"]);
        let ca = flags.requestheader_client_ca_file.clone().unwrap();
        assert_eq!(std::fs::read_to_string(ca).unwrap(), "PROXY CA");
        assert_eq!(flags.requestheader_allowed_names, ["front-proxy-client"]);
        assert_eq!(flags.requestheader_username_headers, ["X-Remote-User"]);
        assert!(flags.requestheader_uid_headers.is_empty());

        let mut given = DelegatedAuthFlags {
            client_ca_file: Some("/mine.crt".into()),
            ..DelegatedAuthFlags::default()
        };
        let taken = apply(&mut given, &data, dir.path()).unwrap();
        assert_eq!(taken, ["requestheader-*"]);
        assert_eq!(given.client_ca_file, Some("/mine.crt".into()));

        let mut bad = DelegatedAuthFlags::default();
        let mut broken = data.clone();
        broken.insert("requestheader-allowed-names".into(), "nope".into());
        let err = apply(&mut bad, &broken, dir.path()).unwrap_err();
        assert!(err.starts_with("requestheader-allowed-names"), "{err}");
        assert_eq!(
            apply(&mut bad, &BTreeMap::new(), dir.path()).unwrap(),
            Vec::<&str>::new()
        );
    }
}
