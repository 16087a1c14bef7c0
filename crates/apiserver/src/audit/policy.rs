//! The audit policy (`--audit-policy-file`, audit.k8s.io/v1 `Policy`), evaluated as
//! upstream's `policy.Checker`: the first rule matching the request decides its level
//! (None when no rule matches) and which stages are omitted (the rule's `omitStages`
//! added to the policy's).

use std::path::Path;

use serde::Deserialize;

/// How much of a request is logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
pub enum Level {
    None,
    Metadata,
    Request,
    RequestResponse,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::None => "None",
            Level::Metadata => "Metadata",
            Level::Request => "Request",
            Level::RequestResponse => "RequestResponse",
        }
    }
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GroupResources {
    #[serde(default)]
    pub group: String,
    #[serde(default)]
    pub resources: Vec<String>,
    #[serde(default)]
    pub resource_names: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rule {
    pub level: Level,
    #[serde(default)]
    pub users: Vec<String>,
    #[serde(default)]
    pub user_groups: Vec<String>,
    #[serde(default)]
    pub verbs: Vec<String>,
    #[serde(default)]
    pub resources: Vec<GroupResources>,
    #[serde(default)]
    pub namespaces: Vec<String>,
    #[serde(default, rename = "nonResourceURLs")]
    pub non_resource_urls: Vec<String>,
    #[serde(default)]
    pub omit_stages: Vec<String>,
    #[serde(default)]
    pub omit_managed_fields: Option<bool>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Policy {
    #[serde(default)]
    pub api_version: String,
    #[serde(default)]
    pub kind: String,
    /// Accepted (a Policy is an object), not used.
    #[serde(default, rename = "metadata")]
    pub _metadata: Option<serde_json::Value>,
    pub rules: Vec<Rule>,
    #[serde(default)]
    pub omit_stages: Vec<String>,
    #[serde(default)]
    pub omit_managed_fields: bool,
}

/// Why a policy file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("--audit-policy-file {path}: {message}")]
    Invalid { path: String, message: String },
}

const STAGES: &[&str] = &[
    "RequestReceived",
    "ResponseStarted",
    "ResponseComplete",
    "Panic",
];

impl Policy {
    pub fn load(path: &Path) -> Result<Policy, PolicyError> {
        let err = |message: String| PolicyError::Invalid {
            path: path.display().to_string(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(format!("cannot read: {e}")))?;
        let policy: Policy =
            serde_saphyr::from_str(&text).map_err(|e| err(format!("invalid policy: {e}")))?;
        if policy.kind != "Policy" {
            return Err(err(format!("kind {:?} is not Policy", policy.kind)));
        }
        if !matches!(policy.api_version.as_str(), "audit.k8s.io/v1") {
            return Err(err(format!(
                "apiVersion {:?} is not audit.k8s.io/v1",
                policy.api_version
            )));
        }
        if policy.rules.is_empty() {
            return Err(err("the policy has no rules".into()));
        }
        for s in policy
            .omit_stages
            .iter()
            .chain(policy.rules.iter().flat_map(|r| r.omit_stages.iter()))
        {
            if !STAGES.contains(&s.as_str()) {
                return Err(err(format!("unknown stage {s:?} in omitStages")));
            }
        }
        for (i, r) in policy.rules.iter().enumerate() {
            if !r.non_resource_urls.is_empty()
                && (!r.resources.is_empty() || !r.namespaces.is_empty())
            {
                return Err(err(format!(
                    "rules[{i}]: rules cannot apply to both regular resources and non-resource URLs"
                )));
            }
        }
        Ok(policy)
    }
}

/// What the checker needs to know about a request.
#[derive(Debug, Clone, Default)]
pub struct RequestAttributes<'a> {
    pub user: &'a str,
    pub groups: &'a [String],
    pub verb: &'a str,
    pub resource_request: bool,
    pub group: &'a str,
    pub resource: &'a str,
    pub subresource: &'a str,
    pub namespace: &'a str,
    pub name: &'a str,
    pub path: &'a str,
}

fn rule_matches(r: &Rule, a: &RequestAttributes<'_>) -> bool {
    if !r.users.is_empty() && !r.users.iter().any(|u| u == a.user) {
        return false;
    }
    if !r.user_groups.is_empty() && !r.user_groups.iter().any(|g| a.groups.contains(g)) {
        return false;
    }
    if !r.verbs.is_empty() && !r.verbs.iter().any(|v| v == a.verb) {
        return false;
    }
    if r.namespaces.is_empty() && r.resources.is_empty() && r.non_resource_urls.is_empty() {
        return true;
    }
    if a.resource_request {
        if !r.non_resource_urls.is_empty() && r.resources.is_empty() && r.namespaces.is_empty() {
            return false;
        }
        if !r.namespaces.is_empty() && !r.namespaces.iter().any(|n| n == a.namespace) {
            return false;
        }
        if r.resources.is_empty() {
            return true;
        }
        let full = if a.subresource.is_empty() {
            a.resource.to_string()
        } else {
            format!("{}/{}", a.resource, a.subresource)
        };
        r.resources.iter().any(|gr| {
            if gr.group != a.group {
                return false;
            }
            let resource_ok = gr.resources.is_empty()
                || gr.resources.iter().any(|res| {
                    res == &full
                        || res == "*"
                        || res == &format!("{}/*", a.resource)
                        || (a.subresource.is_empty() && res == a.resource)
                        || (res.starts_with("*/") && res[2..] == *a.subresource)
                });
            let name_ok =
                gr.resource_names.is_empty() || gr.resource_names.iter().any(|n| n == a.name);
            resource_ok && name_ok
        })
    } else {
        if r.non_resource_urls.is_empty() {
            return false;
        }
        r.non_resource_urls
            .iter()
            .any(|u| match u.strip_suffix('*') {
                Some(prefix) => a.path.starts_with(prefix),
                None => u == a.path,
            })
    }
}

impl Policy {
    /// The level of a request and the stages not to log.
    #[cfg(test)]
    pub fn evaluate(&self, a: &RequestAttributes<'_>) -> (Level, Vec<String>) {
        let (level, omit, _) = self.decide(a);
        (level, omit)
    }

    /// [`Policy::evaluate`] plus whether managed fields are left out of logged objects
    /// (the rule's `omitManagedFields`, else the policy's).
    pub fn decide(&self, a: &RequestAttributes<'_>) -> (Level, Vec<String>, bool) {
        for r in &self.rules {
            if rule_matches(r, a) {
                let mut omit = self.omit_stages.clone();
                omit.extend(r.omit_stages.iter().cloned());
                let omit_mf = r.omit_managed_fields.unwrap_or(self.omit_managed_fields);
                return (r.level, omit, omit_mf);
            }
        }
        (Level::None, Vec::new(), false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(text: &str) -> Policy {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("p.yaml");
        std::fs::write(&p, text).unwrap();
        Policy::load(&p).unwrap()
    }

    #[test]
    fn first_matching_rule_wins() {
        let p = policy(
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\nrules:\n- level: None\n  users: [system:kube-proxy]\n  verbs: [watch]\n- level: RequestResponse\n  resources: [{group: \"\", resources: [pods/log, secrets]}]\n- level: None\n  nonResourceURLs: [/healthz*, /version]\n- level: Metadata\n  omitStages: [ResponseStarted]\n",
        );
        let groups = vec!["system:authenticated".to_string()];
        let mut a = RequestAttributes {
            user: "system:kube-proxy",
            groups: &groups,
            verb: "watch",
            resource_request: true,
            resource: "services",
            ..Default::default()
        };
        assert_eq!(p.evaluate(&a).0, Level::None);
        a.verb = "list";
        assert_eq!(
            p.evaluate(&a),
            (
                Level::Metadata,
                vec!["RequestReceived".into(), "ResponseStarted".into()]
            )
        );
        a.resource = "pods";
        a.subresource = "log";
        assert_eq!(p.evaluate(&a).0, Level::RequestResponse);
        let h = RequestAttributes {
            user: "x",
            groups: &groups,
            verb: "get",
            path: "/healthz/etcd",
            ..Default::default()
        };
        assert_eq!(p.evaluate(&h).0, Level::None);
    }

    #[test]
    fn bad_policies_are_refused_with_the_file_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("p.yaml");
        std::fs::write(
            &p,
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Loud\n",
        )
        .unwrap();
        let e = Policy::load(&p).unwrap_err().to_string();
        assert!(
            e.contains("--audit-policy-file") && e.contains("p.yaml"),
            "{e}"
        );
        std::fs::write(&p, "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: []\n").unwrap();
        assert!(Policy::load(&p)
            .unwrap_err()
            .to_string()
            .contains("no rules"));
        std::fs::write(&p, "apiVersion: v1\nkind: Policy\nrules:\n- level: None\n").unwrap();
        assert!(Policy::load(&p).is_err());
    }
}
