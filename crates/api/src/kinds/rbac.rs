//! Roles, ClusterRoles and their bindings as upstream's
//! `pkg/apis/rbac/validation/validation.go` (`ValidatePolicyRule`, `ValidateRoleBinding`,
//! `ValidateClusterRoleBinding`, `ValidateRoleBindingSubject`, the `cannot change roleRef`
//! update rule), on objects as v1 defaulting leaves them (`roleRef.apiGroup` and the
//! User/Group subjects' `apiGroup` default to rbac.authorization.k8s.io).

use serde_json::Value;

use super::util::*;

const GROUP: &str = "rbac.authorization.k8s.io";

fn policy_rule(path: &str, rule: &Value, namespaced: bool, errs: &mut Errs) {
    if arr(rule, "verbs").is_empty() {
        errs.push(required(
            &join(path, "verbs"),
            "verbs must contain at least one value",
        ));
    }
    let urls = arr(rule, "nonResourceURLs");
    if !urls.is_empty() {
        let p = join(path, "nonResourceURLs");
        if namespaced {
            errs.push(invalid_raw(
                &p,
                &go_string_slice(urls),
                "namespaced rules cannot apply to non-resource URLs",
            ));
        }
        if !arr(rule, "apiGroups").is_empty()
            || !arr(rule, "resources").is_empty()
            || !arr(rule, "resourceNames").is_empty()
        {
            errs.push(invalid_raw(
                &p,
                &go_string_slice(urls),
                "rules cannot apply to both regular resources and non-resource URLs",
            ));
        }
        return;
    }
    if arr(rule, "apiGroups").is_empty() {
        errs.push(required(
            &join(path, "apiGroups"),
            "resource rules must supply at least one api group",
        ));
    }
    if arr(rule, "resources").is_empty() {
        errs.push(required(
            &join(path, "resources"),
            "resource rules must supply at least one resource",
        ));
    }
}

pub fn role(obj: &Value, namespaced: bool) -> Errs {
    let mut errs = Vec::new();
    for (i, rule) in arr(obj, "rules").iter().enumerate() {
        policy_rule(&idx("rules", i), rule, namespaced, &mut errs);
    }
    if !namespaced {
        if let Some(agg) = get(obj, "aggregationRule") {
            let sels = arr(agg, "clusterRoleSelectors");
            let p = "aggregationRule.clusterRoleSelectors";
            if sels.is_empty() {
                errs.push(required(
                    p,
                    "at least one clusterRoleSelector required if aggregationRule is non-nil",
                ));
            }
            for (i, sel) in sels.iter().enumerate() {
                label_selector(&idx(p, i), Some(sel), &mut errs);
            }
        }
    }
    errs
}

fn role_ref_repr(r: &Value) -> String {
    let group = match s(r, "apiGroup") {
        "" => GROUP,
        g => g,
    };
    format!(
        "rbac.RoleRef{{APIGroup:{}, Kind:{}, Name:{}}}",
        go_quote(group),
        go_quote(s(r, "kind")),
        go_quote(s(r, "name"))
    )
}

fn subject(path: &str, sub: &Value, namespaced: bool, errs: &mut Errs) {
    let name = s(sub, "name");
    if name.is_empty() {
        errs.push(required(&join(path, "name"), ""));
    }
    let group = str_of(sub, "apiGroup");
    match s(sub, "kind") {
        "ServiceAccount" => {
            if !name.is_empty() {
                dns_subdomain(&join(path, "name"), name, errs);
            }
            if let Some(g) = group.filter(|g| !g.is_empty()) {
                errs.push(not_supported(&join(path, "apiGroup"), g, &[""]));
            }
            if !namespaced && s(sub, "namespace").is_empty() {
                errs.push(required(&join(path, "namespace"), ""));
            }
        }
        "User" | "Group" => {
            let g = group.filter(|g| !g.is_empty()).unwrap_or(GROUP);
            if g != GROUP {
                errs.push(not_supported(&join(path, "apiGroup"), g, &[GROUP]));
            }
        }
        other => errs.push(not_supported(
            &join(path, "kind"),
            other,
            &["ServiceAccount", "User", "Group"],
        )),
    }
}

pub fn binding(obj: &Value, old: Option<&Value>, namespaced: bool) -> Errs {
    let mut errs = Vec::new();
    let null = Value::Null;
    let role_ref = get(obj, "roleRef").unwrap_or(&null);
    let group = match s(role_ref, "apiGroup") {
        "" => GROUP,
        g => g,
    };
    if group != GROUP {
        errs.push(not_supported("roleRef.apiGroup", group, &[GROUP]));
    }
    let kind = s(role_ref, "kind");
    if namespaced {
        if kind != "Role" && kind != "ClusterRole" {
            errs.push(not_supported(
                "roleRef.kind",
                kind,
                &["Role", "ClusterRole"],
            ));
        }
    } else if kind != "ClusterRole" {
        errs.push(not_supported("roleRef.kind", kind, &["ClusterRole"]));
    }
    let name = s(role_ref, "name");
    if name.is_empty() {
        errs.push(required("roleRef.name", ""));
    } else {
        for msg in crate::validation::path_segment_name(name) {
            errs.push(invalid_str("roleRef.name", name, &msg));
        }
    }
    for (i, sub) in arr(obj, "subjects").iter().enumerate() {
        subject(&idx("subjects", i), sub, namespaced, &mut errs);
    }
    if let Some(old) = old {
        let old_ref = get(old, "roleRef").unwrap_or(&null);
        if role_ref_repr(role_ref) != role_ref_repr(old_ref) {
            errs.push(invalid_raw(
                "roleRef",
                &role_ref_repr(role_ref),
                "cannot change roleRef",
            ));
        }
    }
    errs
}
