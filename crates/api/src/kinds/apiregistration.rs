//! APIServices (`kube-aggregator/pkg/apis/apiregistration/validation`): the name is
//! `<version>.<group>`, the priorities are in range, and only an APIService backed by
//! a Service may carry TLS settings.

use serde_json::Value;

use super::util::*;
use crate::validation;

pub fn api_service(obj: &Value) -> Errs {
    let mut errs = Vec::new();
    let spec = get(obj, "spec").cloned().unwrap_or(Value::Null);
    let (group, version) = (s(&spec, "group"), s(&spec, "version"));
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let required_name = format!("{version}.{group}");
    if validation::path_segment_name(name).is_empty() && name != required_name {
        errs.push(invalid_str(
            "metadata.name",
            name,
            &format!("must be `spec.version+\".\"+spec.group`: {required_name:?}"),
        ));
    }
    if group.is_empty() && version != "v1" {
        errs.push(required(
            "spec.group",
            "only v1 may have an empty group and it better be legacy kube",
        ));
    }
    if !group.is_empty() {
        dns_subdomain("spec.group", group, &mut errs);
    }
    for msg in validation::dns1035_label(version) {
        errs.push(invalid_str("spec.version", version, &msg));
    }
    let group_priority = int_of(&spec, "groupPriorityMinimum").unwrap_or(0);
    if group_priority <= 0 || group_priority > 20000 {
        errs.push(invalid_int(
            "spec.groupPriorityMinimum",
            group_priority,
            "must be positive and less than 20000",
        ));
    }
    let version_priority = int_of(&spec, "versionPriority").unwrap_or(0);
    if version_priority <= 0 || version_priority > 1000 {
        errs.push(invalid_int(
            "spec.versionPriority",
            version_priority,
            "must be positive and less than 1000",
        ));
    }
    let ca_len = s(&spec, "caBundle").len();
    let insecure = bool_of(&spec, "insecureSkipTLSVerify");
    match get(&spec, "service").filter(|v| !v.is_null()) {
        None => {
            if ca_len > 0 {
                errs.push(invalid_raw(
                    "spec.caBundle",
                    &format!("\"{ca_len} bytes\""),
                    "local APIServices may not have a caBundle",
                ));
            }
            if insecure {
                errs.push(invalid_raw(
                    "spec.insecureSkipTLSVerify",
                    "true",
                    "local APIServices may not have insecureSkipTLSVerify",
                ));
            }
        }
        Some(service) => {
            if s(service, "namespace").is_empty() {
                errs.push(required("spec.service.namespace", ""));
            }
            if s(service, "name").is_empty() {
                errs.push(required("spec.service.name", ""));
            }
            if let Some(port) = int_of(service, "port") {
                if !port_num_ok(port) {
                    errs.push(invalid_int("spec.service.port", port, PORT_RANGE));
                }
            }
            if insecure && ca_len > 0 {
                errs.push(invalid_raw(
                    "spec.insecureSkipTLSVerify",
                    "true",
                    "may not be true if caBundle is present",
                ));
            }
        }
    }
    for (i, c) in arr(obj.get("status").unwrap_or(&Value::Null), "conditions")
        .iter()
        .enumerate()
    {
        let st = s(c, "status");
        if !matches!(st, "True" | "False" | "Unknown") {
            errs.push(not_supported(
                &format!("status.conditions[{i}].status"),
                st,
                &["True", "False", "Unknown"],
            ));
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(errs: &Errs) -> Vec<String> {
        errs.iter().map(|c| c.field.clone()).collect()
    }

    #[test]
    fn names_priorities_and_tls() {
        let ok = json!({"metadata": {"name": "v1beta1.metrics.k8s.io"}, "spec": {
            "group": "metrics.k8s.io", "version": "v1beta1", "groupPriorityMinimum": 100,
            "versionPriority": 100, "insecureSkipTLSVerify": true,
            "service": {"namespace": "kube-system", "name": "metrics-server", "port": 443}}});
        assert!(api_service(&ok).is_empty(), "{:?}", api_service(&ok));
        let bad = json!({"metadata": {"name": "v1.metrics.k8s.io"}, "spec": {
            "group": "metrics.k8s.io", "version": "v1beta1", "groupPriorityMinimum": 0,
            "versionPriority": 2000, "insecureSkipTLSVerify": true, "caBundle": "QUJD",
            "service": {"port": 70000}}});
        let errs = api_service(&bad);
        assert_eq!(
            fields(&errs),
            [
                "metadata.name",
                "spec.groupPriorityMinimum",
                "spec.versionPriority",
                "spec.service.namespace",
                "spec.service.name",
                "spec.service.port",
                "spec.insecureSkipTLSVerify"
            ]
        );
        assert!(errs[0].message.contains("\"v1beta1.metrics.k8s.io\""));
        let local = json!({"metadata": {"name": "v2.apps"}, "spec": {
            "group": "apps", "version": "v2", "groupPriorityMinimum": 1, "versionPriority": 1,
            "caBundle": "QUJD"}});
        assert_eq!(fields(&api_service(&local)), ["spec.caBundle"]);
        let legacy = json!({"metadata": {"name": "v2."}, "spec": {"version": "v2",
            "groupPriorityMinimum": 1, "versionPriority": 1}});
        assert_eq!(fields(&api_service(&legacy)), ["spec.group"]);
    }
}
