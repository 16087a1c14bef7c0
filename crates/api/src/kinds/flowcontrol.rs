//! FlowSchemas and PriorityLevelConfigurations (`pkg/apis/flowcontrol/validation`), on
//! the defaulted object, with the 1.33 messages.

use serde_json::Value;

use super::util::*;
use crate::flowcontrol::{
    mandatory_flow_schema_spec, mandatory_priority_level_spec, spec_equal, CATCH_ALL, EXEMPT,
    PRESERVE_ZERO_SHARES_ANNOTATION,
};

const VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "proxy",
    "update",
    "watch",
];

fn name_of(obj: &Value) -> &str {
    obj.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn strings(v: &Value, key: &str) -> Vec<String> {
    arr(v, key)
        .iter()
        .map(|x| x.as_str().unwrap_or("").to_string())
        .collect()
}

/// `required` when empty; `*` only alone.
fn wildcard_list(path: &str, v: &Value, key: &str, what: &str, empty: &str, errs: &mut Errs) {
    let items = arr(v, key);
    let path = join(path, key);
    if items.is_empty() {
        errs.push(required(&path, empty));
    } else if items.len() > 1 && items.iter().any(|x| x.as_str() == Some("*")) {
        errs.push(invalid_raw(
            &path,
            &go_string_slice(items),
            &format!("if '*' is present, must not specify other {what}"),
        ));
    }
}

fn verbs(path: &str, rule: &Value, errs: &mut Errs) {
    let items = arr(rule, "verbs");
    let vpath = join(path, "verbs");
    if items.is_empty() {
        errs.push(required(&vpath, "verbs must contain at least one value"));
        return;
    }
    let has_all = items.iter().any(|x| x.as_str() == Some("*"));
    if has_all && items.len() > 1 {
        errs.push(invalid_raw(
            &vpath,
            &go_string_slice(items),
            "if '*' is present, must not specify other verbs",
        ));
        return;
    }
    if !has_all
        && items
            .iter()
            .any(|x| !VERBS.contains(&x.as_str().unwrap_or("")))
    {
        errs.push(not_supported_raw(&vpath, &go_string_slice(items), VERBS));
    }
}

fn non_resource_url_error(url: &str) -> Option<&'static str> {
    if url.is_empty() {
        return Some("must not be empty");
    }
    if url == "/" {
        return None;
    }
    if !url.starts_with('/') {
        return Some("must start with slash");
    }
    if url.contains(' ') {
        return Some("must not contain white-space");
    }
    if url.contains("//") {
        return Some("must not contain double slash");
    }
    let stars = url.matches('*').count();
    if stars > 1 || (stars == 1 && !url.ends_with("/*")) {
        return Some("wildcard can only do suffix matching");
    }
    None
}

fn subject(path: &str, s: &Value, errs: &mut Errs) {
    let kind = str_of(s, "kind").unwrap_or("");
    let forbid = |member: &str, errs: &mut Errs| {
        if get(s, member).is_some_and(|v| !v.is_null()) {
            let msg = match member {
                "user" => "user is forbidden when subject kind is not 'User'",
                "group" => "group is forbidden when subject kind is not 'Group'",
                _ => "serviceAccount is forbidden when subject kind is not 'ServiceAccount'",
            };
            errs.push(forbidden(&join(path, member), msg));
        }
    };
    match kind {
        "ServiceAccount" => {
            let sp = join(path, "serviceAccount");
            match get(s, "serviceAccount").filter(|v| v.is_object()) {
                None => errs.push(required(
                    &sp,
                    "serviceAccount is required when subject kind is 'ServiceAccount'",
                )),
                Some(sa) => {
                    let name = str_of(sa, "name").unwrap_or("");
                    if name.is_empty() {
                        errs.push(required(&join(&sp, "name"), ""));
                    } else if name != "*" {
                        dns_subdomain(&join(&sp, "name"), name, errs);
                    }
                    let ns = str_of(sa, "namespace").unwrap_or("");
                    if ns.is_empty() {
                        errs.push(required(
                            &join(&sp, "namespace"),
                            "must specify namespace for service account",
                        ));
                    } else {
                        dns_label(&join(&sp, "namespace"), ns, errs);
                    }
                }
            }
            forbid("user", errs);
            forbid("group", errs);
        }
        "User" | "Group" => {
            let member = if kind == "User" { "user" } else { "group" };
            let mp = join(path, member);
            match get(s, member).filter(|v| v.is_object()) {
                None => errs.push(required(
                    &mp,
                    &format!("{member} is required when subject kind is '{kind}'"),
                )),
                Some(m) => {
                    if str_of(m, "name").unwrap_or("").is_empty() {
                        errs.push(required(&join(&mp, "name"), ""));
                    }
                }
            }
            forbid("serviceAccount", errs);
            forbid(if kind == "User" { "group" } else { "user" }, errs);
        }
        other => errs.push(not_supported(
            &join(path, "kind"),
            other,
            &["Group", "ServiceAccount", "User"],
        )),
    }
}

fn resource_rule(path: &str, r: &Value, errs: &mut Errs) {
    verbs(path, r, errs);
    wildcard_list(
        path,
        r,
        "apiGroups",
        "api groups",
        "resource rules must supply at least one api group",
        errs,
    );
    wildcard_list(
        path,
        r,
        "resources",
        "resources",
        "resource rules must supply at least one resource",
        errs,
    );
    let namespaces = strings(r, "namespaces");
    let npath = join(path, "namespaces");
    if namespaces.is_empty() {
        if !bool_of(r, "clusterScope") {
            errs.push(required(
                &npath,
                "resource rules that are not cluster scoped must supply at least one namespace",
            ));
        }
    } else if namespaces.iter().any(|n| n == "*") {
        if namespaces.len() > 1 {
            errs.push(invalid_raw(
                &npath,
                &go_string_slice(arr(r, "namespaces")),
                "if '*' is present, must not specify other namespaces",
            ));
        }
    } else {
        for (i, n) in namespaces.iter().enumerate() {
            for msg in dns1123_label_msgs(n) {
                errs.push(invalid_str(
                    &idx(&npath, i),
                    n,
                    &format!("each member of this list must be '*' or a DNS-1123 label; {msg}"),
                ));
            }
        }
    }
}

fn non_resource_rule(path: &str, r: &Value, errs: &mut Errs) {
    verbs(path, r, errs);
    let urls = strings(r, "nonResourceURLs");
    let upath = join(path, "nonResourceURLs");
    if urls.is_empty() {
        errs.push(required(
            &upath,
            "nonResourceURLs must contain at least one value",
        ));
    } else if urls.iter().any(|u| u == "*") {
        if urls.len() > 1 {
            errs.push(invalid_raw(
                &upath,
                &go_string_slice(arr(r, "nonResourceURLs")),
                "if '*' is present, must not specify other non-resource URLs",
            ));
        }
    } else if let Some((i, url, why)) = urls
        .iter()
        .enumerate()
        .find_map(|(i, u)| non_resource_url_error(u).map(|w| (i, u, w)))
    {
        errs.push(invalid_str(&idx(&upath, i), url, why));
    }
}

/// The status rule both kinds share: condition types unique and not empty.
pub fn status_conditions(obj: &Value) -> Errs {
    let mut errs = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let conditions = obj
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    for (i, c) in conditions.iter().enumerate() {
        let path = format!("status.conditions[{i}].type");
        let t = s(c, "type");
        if t.is_empty() {
            errs.push(required(&path, "must not be empty"));
        } else if !seen.insert(t.to_string()) {
            errs.push(duplicate_str(&path, t));
        }
    }
    errs
}

pub fn flow_schema(obj: &Value) -> Errs {
    let mut errs = Vec::new();
    let empty = Value::Null;
    let spec = get(obj, "spec").unwrap_or(&empty);
    let name = name_of(obj);
    let precedence = int_of(spec, "matchingPrecedence").unwrap_or(0);
    let ppath = "spec.matchingPrecedence";
    if precedence <= 0 {
        errs.push(invalid_int(ppath, precedence, "must be a positive value"));
    } else if precedence > 10000 {
        errs.push(invalid_int(
            ppath,
            precedence,
            "must not be greater than 10000",
        ));
    } else if precedence == 1 && name != EXEMPT {
        errs.push(invalid_int(
            ppath,
            precedence,
            "only the schema named 'exempt' may have matchingPrecedence 1",
        ));
    }
    if let Some(d) = get(spec, "distinguisherMethod").filter(|d| !d.is_null()) {
        let t = s(d, "type");
        if t != "ByNamespace" && t != "ByUser" {
            errs.push(not_supported_raw(
                "spec.distinguisherMethod.type",
                &format!("v1.FlowDistinguisherMethod{{Type:{}}}", go_quote(t)),
                &["ByNamespace", "ByUser"],
            ));
        }
    }
    let pl = spec
        .pointer("/priorityLevelConfiguration/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    if pl.is_empty() {
        errs.push(required(
            "spec.priorityLevelConfiguration.name",
            "must reference a priority level",
        ));
    } else {
        dns_subdomain("spec.priorityLevelConfiguration.name", pl, &mut errs);
    }
    for (i, rule) in arr(spec, "rules").iter().enumerate() {
        let rpath = format!("spec.rules[{i}]");
        let subjects = arr(rule, "subjects");
        if subjects.is_empty() {
            errs.push(required(
                &join(&rpath, "subjects"),
                "subjects must contain at least one value",
            ));
        }
        for (j, sub) in subjects.iter().enumerate() {
            subject(&format!("{rpath}.subjects[{j}]"), sub, &mut errs);
        }
        let resource_rules = arr(rule, "resourceRules");
        let non_resource_rules = arr(rule, "nonResourceRules");
        if resource_rules.is_empty() && non_resource_rules.is_empty() {
            errs.push(required(
                &rpath,
                "at least one of resourceRules and nonResourceRules has to be non-empty",
            ));
        }
        for (k, r) in resource_rules.iter().enumerate() {
            resource_rule(&format!("{rpath}.resourceRules[{k}]"), r, &mut errs);
        }
        for (k, r) in non_resource_rules.iter().enumerate() {
            non_resource_rule(&format!("{rpath}.nonResourceRules[{k}]"), r, &mut errs);
        }
    }
    if (name == EXEMPT || name == CATCH_ALL) && !spec_equal(spec, &mandatory_flow_schema_spec(name))
    {
        errs.push(invalid_raw(
            "spec",
            &spec.to_string(),
            &format!("spec of '{name}' must equal the fixed value"),
        ));
    }
    errs.extend(status_conditions(obj));
    errs
}

fn percent(path: &str, v: Option<i64>, errs: &mut Errs) {
    if let Some(p) = v.filter(|p| !(0..=100).contains(p)) {
        errs.push(invalid_int(path, p, "must be between 0 and 100, inclusive"));
    }
}

fn queuing(path: &str, q: &Value, errs: &mut Errs) {
    let limit = int_of(q, "queueLengthLimit").unwrap_or(0);
    if limit <= 0 {
        errs.push(invalid_int(
            &join(path, "queueLengthLimit"),
            limit,
            "must be positive",
        ));
    }
    let queues = int_of(q, "queues").unwrap_or(0);
    if queues <= 0 {
        errs.push(invalid_int(
            &join(path, "queues"),
            queues,
            "must be positive",
        ));
    } else if queues > 10_000_000 {
        errs.push(invalid_int(
            &join(path, "queues"),
            queues,
            "must not be greater than 10000000",
        ));
    }
    let hand = int_of(q, "handSize").unwrap_or(0);
    let hpath = join(path, "handSize");
    if hand <= 0 {
        errs.push(invalid_int(&hpath, hand, "must be positive"));
    } else if hand > queues {
        errs.push(invalid_int(
            &hpath,
            hand,
            &format!("should not be greater than queues ({queues})"),
        ));
    } else if ((queues as f64).log2() * hand as f64).ceil() > 60.0 {
        errs.push(invalid_int(
            &hpath,
            hand,
            &format!(
                "required entropy bits of deckSize {queues} and handSize {hand} should not be greater than 60"
            ),
        ));
    }
}

fn limited(l: &Value, errs: &mut Errs) {
    let base = "spec.limited";
    if let Some(n) = int_of(l, "nominalConcurrencyShares").filter(|n| *n < 0) {
        errs.push(invalid_int(
            &join(base, "nominalConcurrencyShares"),
            n,
            "must be a non-negative integer",
        ));
    }
    let rpath = join(base, "limitResponse");
    let empty = Value::Null;
    let response = get(l, "limitResponse").unwrap_or(&empty);
    let q = get(response, "queuing").filter(|q| !q.is_null());
    match s(response, "type") {
        "Reject" => {
            if q.is_some() {
                errs.push(forbidden(
                    &join(&rpath, "queuing"),
                    "must be nil if limited.limitResponse.type is not Limited",
                ));
            }
        }
        "Queue" => match q {
            None => errs.push(required(
                &join(&rpath, "queuing"),
                "must not be empty if limited.limitResponse.type is Limited",
            )),
            Some(q) => queuing(&join(&rpath, "queuing"), q, errs),
        },
        other => errs.push(not_supported(
            &join(&rpath, "type"),
            other,
            &["Queue", "Reject"],
        )),
    }
    percent(
        &join(base, "lendablePercent"),
        int_of(l, "lendablePercent"),
        errs,
    );
    if let Some(b) = int_of(l, "borrowingLimitPercent").filter(|b| *b < 0) {
        errs.push(invalid_int(
            &join(base, "borrowingLimitPercent"),
            b,
            "if specified, must be a non-negative integer",
        ));
    }
}

pub fn priority_level(obj: &Value) -> Errs {
    let mut errs = Vec::new();
    let name = name_of(obj);
    if obj
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
        .is_some_and(|a| a.contains_key(PRESERVE_ZERO_SHARES_ANNOTATION))
    {
        errs.push(forbidden(
            "metadata.annotations",
            &format!("annotation '{PRESERVE_ZERO_SHARES_ANNOTATION}' is forbidden"),
        ));
    }
    let empty = Value::Null;
    let spec = get(obj, "spec").unwrap_or(&empty);
    let t = s(spec, "type");
    if (name == EXEMPT) != (t == "Exempt") {
        errs.push(invalid_str(
            "spec.type",
            t,
            "type must be 'Exempt' if and only if name is 'exempt'",
        ));
    }
    let member = |k: &str| get(spec, k).filter(|v| !v.is_null());
    match t {
        "Exempt" => {
            if member("limited").is_some() {
                errs.push(forbidden(
                    "spec.limited",
                    "must be nil if the type is not Limited",
                ));
            }
            if let Some(e) = member("exempt") {
                if let Some(n) = int_of(e, "nominalConcurrencyShares").filter(|n| *n < 0) {
                    errs.push(invalid_int(
                        "spec.exempt.nominalConcurrencyShares",
                        n,
                        "must be a non-negative integer",
                    ));
                }
                percent(
                    "spec.exempt.lendablePercent",
                    int_of(e, "lendablePercent"),
                    &mut errs,
                );
            }
        }
        "Limited" => {
            if member("exempt").is_some() {
                errs.push(forbidden(
                    "spec.exempt",
                    "must be nil if the type is Limited",
                ));
            }
            match member("limited") {
                None => errs.push(required(
                    "spec.limited",
                    "must not be empty when type is Limited",
                )),
                Some(l) => limited(l, &mut errs),
            }
        }
        other => errs.push(not_supported("spec.type", other, &["Exempt", "Limited"])),
    }
    if name == EXEMPT {
        // Only spec.exempt may differ from the fixed value.
        let mut expected = mandatory_priority_level_spec(EXEMPT);
        let mut given = spec.clone();
        if let Some(g) = given.as_object_mut() {
            g.remove("exempt");
        }
        if let Some(e) = expected.as_object_mut() {
            e.remove("exempt");
        }
        if !spec_equal(&given, &expected) {
            errs.push(invalid_raw(
                "spec",
                &spec.to_string(),
                "spec of 'exempt' except the 'spec.exempt' field must equal the fixed value",
            ));
        }
    } else if name == CATCH_ALL && !spec_equal(spec, &mandatory_priority_level_spec(CATCH_ALL)) {
        errs.push(invalid_raw(
            "spec",
            &spec.to_string(),
            "spec of 'catch-all' must equal the fixed value",
        ));
    }
    errs.extend(status_conditions(obj));
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(errs: &Errs) -> Vec<String> {
        errs.iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect()
    }

    #[test]
    fn flow_schema_rules() {
        let ok = json!({"metadata": {"name": "fs"}, "spec": {"matchingPrecedence": 500,
            "priorityLevelConfiguration": {"name": "global-default"},
            "distinguisherMethod": {"type": "ByUser"},
            "rules": [{"subjects": [{"kind": "User", "user": {"name": "u"}},
                {"kind": "ServiceAccount", "serviceAccount": {"namespace": "ns", "name": "*"}}],
                "resourceRules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"], "namespaces": ["*"]}],
                "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["/healthz/*"]}]}]}});
        assert!(
            flow_schema(&ok).is_empty(),
            "{:?}",
            fields(&flow_schema(&ok))
        );
        let bad = json!({"metadata": {"name": "fs"}, "spec": {"matchingPrecedence": 1,
            "priorityLevelConfiguration": {"name": ""},
            "distinguisherMethod": {"type": "ByPod"},
            "rules": [{"subjects": [{"kind": "Robot"}, {"kind": "User", "group": {"name": "g"}}],
                "resourceRules": [{"verbs": ["get", "*"], "apiGroups": [], "resources": ["pods"]}],
                "nonResourceRules": [{"verbs": ["fetch"], "nonResourceURLs": ["/a*"]}]}]},
            "status": {"conditions": [{"type": "X"}, {"type": "X"}]}});
        let got = fields(&flow_schema(&bad));
        for want in [
            "spec.matchingPrecedence: Invalid value: 1: only the schema named 'exempt' may have matchingPrecedence 1",
            "spec.distinguisherMethod.type: Unsupported value: v1.FlowDistinguisherMethod{Type:\"ByPod\"}: supported values: \"ByNamespace\", \"ByUser\"",
            "spec.priorityLevelConfiguration.name: Required value: must reference a priority level",
            "spec.rules[0].subjects[0].kind: Unsupported value: \"Robot\": supported values: \"Group\", \"ServiceAccount\", \"User\"",
            "spec.rules[0].subjects[1].user: Required value: user is required when subject kind is 'User'",
            "spec.rules[0].subjects[1].group: Forbidden: group is forbidden when subject kind is not 'Group'",
            "spec.rules[0].resourceRules[0].verbs: Invalid value: []string{\"get\", \"*\"}: if '*' is present, must not specify other verbs",
            "spec.rules[0].resourceRules[0].apiGroups: Required value: resource rules must supply at least one api group",
            "spec.rules[0].resourceRules[0].namespaces: Required value: resource rules that are not cluster scoped must supply at least one namespace",
            "spec.rules[0].nonResourceRules[0].verbs: Unsupported value: []string{\"fetch\"}: supported values: \"create\", \"delete\", \"deletecollection\", \"get\", \"list\", \"patch\", \"proxy\", \"update\", \"watch\"",
            "spec.rules[0].nonResourceRules[0].nonResourceURLs[0]: Invalid value: \"/a*\": wildcard can only do suffix matching",
            "status.conditions[1].type: Duplicate value: \"X\"",
        ] {
            assert!(got.iter().any(|g| g == want), "missing {want}\n in {got:#?}");
        }
    }

    #[test]
    fn mandatory_objects_are_pinned() {
        for (_, fs) in crate::flowcontrol::flow_schemas() {
            assert!(
                flow_schema(&fs).is_empty(),
                "{fs}: {:?}",
                fields(&flow_schema(&fs))
            );
        }
        for (_, pl) in crate::flowcontrol::priority_levels() {
            assert!(
                priority_level(&pl).is_empty(),
                "{pl}: {:?}",
                fields(&priority_level(&pl))
            );
        }
        let mut fs = json!({"metadata": {"name": "catch-all"},
            "spec": mandatory_flow_schema_spec(CATCH_ALL)});
        fs["spec"]["matchingPrecedence"] = json!(9999);
        assert!(fields(&flow_schema(&fs))
            .iter()
            .any(|e| e.ends_with("spec of 'catch-all' must equal the fixed value")));
        // exempt's shares may be tuned, nothing else.
        let tuned = json!({"metadata": {"name": "exempt"}, "spec": {"type": "Exempt",
            "exempt": {"nominalConcurrencyShares": 10, "lendablePercent": 20}}});
        assert!(priority_level(&tuned).is_empty());
        let typed = json!({"metadata": {"name": "exempt"}, "spec": {"type": "Limited",
            "limited": {"nominalConcurrencyShares": 1, "limitResponse": {"type": "Reject"}}}});
        let got = fields(&priority_level(&typed));
        assert!(
            got.iter()
                .any(|e| e.starts_with("spec.type: Invalid value: \"Limited\"")),
            "{got:?}"
        );
    }

    #[test]
    fn priority_level_rules() {
        let pl = |spec: Value| json!({"metadata": {"name": "p"}, "spec": spec});
        assert!(priority_level(&pl(json!({"type": "Limited", "limited": {
            "nominalConcurrencyShares": 0, "lendablePercent": 0, "limitResponse": {"type": "Reject"}}})))
        .is_empty());
        let got = fields(&priority_level(&pl(json!({"type": "Limited", "limited": {
            "nominalConcurrencyShares": -1, "lendablePercent": 101, "borrowingLimitPercent": -2,
            "limitResponse": {"type": "Queue", "queuing": {"queues": 512, "handSize": 8, "queueLengthLimit": 0}}}}))));
        for want in [
            "spec.limited.nominalConcurrencyShares: Invalid value: -1: must be a non-negative integer",
            "spec.limited.limitResponse.queuing.queueLengthLimit: Invalid value: 0: must be positive",
            "spec.limited.limitResponse.queuing.handSize: Invalid value: 8: required entropy bits of deckSize 512 and handSize 8 should not be greater than 60",
            "spec.limited.lendablePercent: Invalid value: 101: must be between 0 and 100, inclusive",
            "spec.limited.borrowingLimitPercent: Invalid value: -2: if specified, must be a non-negative integer",
        ] {
            assert!(got.iter().any(|g| g == want), "missing {want}\n in {got:#?}");
        }
        let got = fields(&priority_level(&pl(json!({"type": "Limited"}))));
        assert_eq!(
            got,
            ["spec.limited: Required value: must not be empty when type is Limited"]
        );
        let got = fields(&priority_level(&pl(json!({"type": "Limited", "limited": {
            "limitResponse": {"type": "Reject", "queuing": {"queues": 1}}}}))));
        assert_eq!(got, ["spec.limited.limitResponse.queuing: Forbidden: must be nil if limited.limitResponse.type is not Limited"]);
    }
}
