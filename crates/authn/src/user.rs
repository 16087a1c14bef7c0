//! The authenticated identity (`user.Info`) and the well-known names upstream gives users
//! and groups (`k8s.io/apiserver/pkg/authentication/user`, `.../serviceaccount`).

use std::collections::BTreeMap;

/// `system:anonymous`.
pub const ANONYMOUS: &str = "system:anonymous";
/// `system:authenticated`, added to every authenticated non-anonymous user.
pub const ALL_AUTHENTICATED: &str = "system:authenticated";
/// `system:unauthenticated`, the anonymous user's group.
pub const ALL_UNAUTHENTICATED: &str = "system:unauthenticated";
/// `system:serviceaccounts`.
pub const SERVICE_ACCOUNTS_GROUP: &str = "system:serviceaccounts";
/// Extra key: the pod a bound token names.
pub const EXTRA_POD_NAME: &str = "authentication.kubernetes.io/pod-name";
/// Extra key: that pod's UID.
pub const EXTRA_POD_UID: &str = "authentication.kubernetes.io/pod-uid";
/// Extra key: the node a bound token names.
pub const EXTRA_NODE_NAME: &str = "authentication.kubernetes.io/node-name";
/// Extra key: that node's UID.
pub const EXTRA_NODE_UID: &str = "authentication.kubernetes.io/node-uid";
/// Extra key: the credential's ID (`JTI=<jti>` for service-account tokens).
pub const EXTRA_CREDENTIAL_ID: &str = "authentication.kubernetes.io/credential-id";

/// Who a request is from (`user.DefaultInfo`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserInfo {
    /// User name.
    pub name: String,
    /// Unique ID, if the method has one (service accounts, token file).
    pub uid: String,
    /// Groups, in the order the method produced them.
    pub groups: Vec<String>,
    /// Extra attributes (authorizers and audit see them; impersonation may set them).
    pub extra: BTreeMap<String, Vec<String>>,
}

impl UserInfo {
    /// The anonymous user: `system:anonymous` in `system:unauthenticated`.
    pub fn anonymous() -> Self {
        UserInfo {
            name: ANONYMOUS.into(),
            groups: vec![ALL_UNAUTHENTICATED.into()],
            ..Default::default()
        }
    }

    /// `authenticationv1.UserInfo` JSON (`username`, `uid`, `groups`, `extra`; empty
    /// fields left out as Go's `omitempty` does).
    pub fn to_json(&self) -> serde_json::Value {
        let mut out = serde_json::Map::new();
        if !self.name.is_empty() {
            out.insert("username".into(), self.name.clone().into());
        }
        if !self.uid.is_empty() {
            out.insert("uid".into(), self.uid.clone().into());
        }
        if !self.groups.is_empty() {
            out.insert("groups".into(), self.groups.clone().into());
        }
        if !self.extra.is_empty() {
            let extra = self
                .extra
                .iter()
                .map(|(k, v)| (k.clone(), serde_json::Value::from(v.clone())))
                .collect();
            out.insert("extra".into(), serde_json::Value::Object(extra));
        }
        serde_json::Value::Object(out)
    }

    /// Upstream's `AuthenticatedGroupAdder`: append `system:authenticated` unless the user
    /// is anonymous or already in `system:authenticated`/`system:unauthenticated`.
    pub(crate) fn add_authenticated_group(&mut self) {
        if self.name == ANONYMOUS
            || self
                .groups
                .iter()
                .any(|g| g == ALL_AUTHENTICATED || g == ALL_UNAUTHENTICATED)
        {
            return;
        }
        self.groups.push(ALL_AUTHENTICATED.into());
    }
}

/// `system:serviceaccount:<namespace>:<name>` (`serviceaccount.MakeUsername`).
pub fn service_account_username(namespace: &str, name: &str) -> String {
    format!("system:serviceaccount:{namespace}:{name}")
}

/// Splits `system:serviceaccount:<ns>:<name>` (`serviceaccount.SplitUsername`).
pub fn split_service_account_username(username: &str) -> Option<(&str, &str)> {
    let rest = username.strip_prefix("system:serviceaccount:")?;
    let (namespace, name) = rest.split_once(':')?;
    if namespace.is_empty() || name.is_empty() || name.contains(':') {
        return None;
    }
    Some((namespace, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authenticated_group_added_once() {
        let mut u = UserInfo {
            name: "alice".into(),
            groups: vec!["dev".into()],
            ..Default::default()
        };
        u.add_authenticated_group();
        u.add_authenticated_group();
        assert_eq!(u.groups, vec!["dev", ALL_AUTHENTICATED]);
        let mut anon = UserInfo::anonymous();
        anon.add_authenticated_group();
        assert_eq!(anon.groups, vec![ALL_UNAUTHENTICATED]);
    }

    #[test]
    fn usernames() {
        assert_eq!(
            service_account_username("ns", "sa"),
            "system:serviceaccount:ns:sa"
        );
        assert_eq!(
            split_service_account_username("system:serviceaccount:ns:sa"),
            Some(("ns", "sa"))
        );
        assert_eq!(
            split_service_account_username("system:serviceaccount:ns"),
            None
        );
        assert_eq!(split_service_account_username("alice"), None);
    }
}
