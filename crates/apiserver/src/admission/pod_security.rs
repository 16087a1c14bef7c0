//! PodSecurity admission (upstream `staging/src/k8s.io/pod-security-admission`): the
//! namespace's `pod-security.kubernetes.io/enforce|warn` labels name a Pod Security
//! Standards level (privileged, baseline, restricted); a new pod violating the enforced
//! level is refused (403 `violates PodSecurity "restricted:latest": …`), and pods or
//! workload templates violating the warned (or, for workloads, the enforced) level get
//! a `Warning`. The checks and their messages are upstream's, reported in its order.

use serde_json::Value;

use crate::errors::ApiResult;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Privileged,
    Baseline,
    Restricted,
}

impl Level {
    fn parse(s: &str) -> Option<Level> {
        match s {
            "privileged" => Some(Level::Privileged),
            "baseline" => Some(Level::Baseline),
            "restricted" => Some(Level::Restricted),
            _ => None,
        }
    }
    fn name(self) -> &'static str {
        match self {
            Level::Privileged => "privileged",
            Level::Baseline => "baseline",
            Level::Restricted => "restricted",
        }
    }
}

/// The level a namespace label asks for, with its version (`latest` by default).
fn label_level(ns: &Value, mode: &str) -> Option<(Level, String)> {
    let labels = ns.pointer("/metadata/labels")?;
    let level = Level::parse(
        labels
            .get(format!("pod-security.kubernetes.io/{mode}"))?
            .as_str()?,
    )?;
    let version = labels
        .get(format!("pod-security.kubernetes.io/{mode}-version"))
        .and_then(Value::as_str)
        .unwrap_or("latest")
        .to_string();
    Some((level, version))
}

const BASELINE_CAPABILITIES: &[&str] = &[
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

const SAFE_SYSCTLS: &[&str] = &[
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
];

const RESTRICTED_VOLUMES: &[&str] = &[
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
];

fn quoted(items: &[String]) -> String {
    items
        .iter()
        .map(|s| format!("{s:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// "container \"a\"" / "containers \"a\", \"b\"".
fn containers_phrase(names: &[String]) -> String {
    if names.len() == 1 {
        format!("container {}", quoted(names))
    } else {
        format!("containers {}", quoted(names))
    }
}

fn all_containers(spec: &Value) -> Vec<&Value> {
    ["initContainers", "containers", "ephemeralContainers"]
        .iter()
        .flat_map(|k| spec.get(*k).and_then(Value::as_array).into_iter().flatten())
        .collect()
}

fn name_of(c: &Value) -> String {
    c.get("name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

fn sc<'a>(c: &'a Value, path: &str) -> Option<&'a Value> {
    c.pointer(&format!("/securityContext/{path}"))
}

/// The violations of `spec` (a pod spec) against `level`, in upstream's order.
pub fn check(spec: &Value, meta: &Value, level: Level) -> Vec<String> {
    if level == Level::Privileged {
        return Vec::new();
    }
    let restricted = level == Level::Restricted;
    let containers = all_containers(spec);
    let mut out = Vec::new();
    let filter = |pred: &dyn Fn(&Value) -> bool| -> Vec<String> {
        containers
            .iter()
            .filter(|c| pred(c))
            .map(|c| name_of(c))
            .collect()
    };
    // allowPrivilegeEscalation (restricted)
    if restricted {
        let bad = filter(&|c| sc(c, "allowPrivilegeEscalation") != Some(&Value::Bool(false)));
        if !bad.is_empty() {
            out.push(format!(
                "allowPrivilegeEscalation != false ({} must set securityContext.allowPrivilegeEscalation=false)",
                containers_phrase(&bad)
            ));
        }
    }
    // appArmorProfile
    let unconfined_apparmor = |v: Option<&Value>| {
        v.and_then(|p| p.get("type")).and_then(Value::as_str) == Some("Unconfined")
    };
    let mut apparmor = Vec::new();
    if unconfined_apparmor(spec.pointer("/securityContext/appArmorProfile")) {
        apparmor.push(
            "pod must not set securityContext.appArmorProfile.type to \"Unconfined\"".to_string(),
        );
    }
    let bad = filter(&|c| unconfined_apparmor(sc(c, "appArmorProfile")));
    if !bad.is_empty() {
        apparmor.push(format!(
            "{} must not set securityContext.appArmorProfile.type to \"Unconfined\"",
            containers_phrase(&bad)
        ));
    }
    if let Some(ann) = meta.get("annotations").and_then(Value::as_object) {
        for (k, v) in ann {
            if k.starts_with("container.apparmor.security.beta.kubernetes.io/")
                && v.as_str() == Some("unconfined")
            {
                apparmor.push(format!("{k}=\"unconfined\""));
            }
        }
    }
    if !apparmor.is_empty() {
        out.push(format!(
            "forbidden AppArmor profile ({})",
            apparmor.join(", ")
        ));
    }
    // capabilities_baseline
    let mut non_default = Vec::new();
    for c in &containers {
        let added: Vec<String> = sc(c, "capabilities/add")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .filter(|cap| !BASELINE_CAPABILITIES.contains(cap))
            .map(str::to_string)
            .collect();
        if !added.is_empty() {
            non_default.push(format!(
                "container {:?} must not include {} in securityContext.capabilities.add",
                name_of(c),
                quoted(&added)
            ));
        }
    }
    if !non_default.is_empty() {
        out.push(format!(
            "non-default capabilities ({})",
            non_default.join(", ")
        ));
    }
    // capabilities_restricted
    if restricted {
        let no_drop_all = filter(&|c| {
            !sc(c, "capabilities/drop")
                .and_then(Value::as_array)
                .is_some_and(|d| d.iter().any(|x| x == "ALL"))
        });
        let bad_add: Vec<String> = containers
            .iter()
            .filter_map(|c| {
                let added: Vec<String> = sc(c, "capabilities/add")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .filter(|cap| *cap != "NET_BIND_SERVICE")
                    .map(str::to_string)
                    .collect();
                (!added.is_empty()).then(|| {
                    format!(
                        "container {:?} must not include {} in securityContext.capabilities.add",
                        name_of(c),
                        quoted(&added)
                    )
                })
            })
            .collect();
        let mut parts = Vec::new();
        if !no_drop_all.is_empty() {
            parts.push(format!(
                "{} must set securityContext.capabilities.drop=[\"ALL\"]",
                containers_phrase(&no_drop_all)
            ));
        }
        parts.extend(bad_add);
        if !parts.is_empty() {
            out.push(format!("unrestricted capabilities ({})", parts.join("; ")));
        }
    }
    // hostNamespaces
    let host: Vec<String> = ["hostNetwork", "hostPID", "hostIPC"]
        .iter()
        .filter(|k| spec.get(**k) == Some(&Value::Bool(true)))
        .map(|k| format!("{k}=true"))
        .collect();
    if !host.is_empty() {
        out.push(format!("host namespaces ({})", host.join(", ")));
    }
    // hostPathVolumes
    let volumes: Vec<&Value> = spec
        .get("volumes")
        .and_then(Value::as_array)
        .map(|v| v.iter().collect())
        .unwrap_or_default();
    let host_paths: Vec<String> = volumes
        .iter()
        .filter(|v| v.get("hostPath").is_some())
        .map(|v| name_of(v))
        .collect();
    if !host_paths.is_empty() {
        let noun = if host_paths.len() == 1 {
            "volume"
        } else {
            "volumes"
        };
        out.push(format!("hostPath volumes ({noun} {})", quoted(&host_paths)));
    }
    // hostPorts
    let mut ports = Vec::new();
    for c in &containers {
        let used: Vec<String> = c
            .get("ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|p| p.get("hostPort").and_then(Value::as_i64))
            .filter(|p| *p != 0)
            .map(|p| p.to_string())
            .collect();
        if !used.is_empty() {
            let noun = if used.len() == 1 {
                "hostPort"
            } else {
                "hostPorts"
            };
            ports.push(format!(
                "container {:?} uses {noun} {}",
                name_of(c),
                used.join(", ")
            ));
        }
    }
    if !ports.is_empty() {
        out.push(format!("hostPort ({})", ports.join(", ")));
    }
    // privileged
    let bad = filter(&|c| sc(c, "privileged") == Some(&Value::Bool(true)));
    if !bad.is_empty() {
        out.push(format!(
            "privileged ({} must not set securityContext.privileged=true)",
            containers_phrase(&bad)
        ));
    }
    // procMount
    let bad = filter(&|c| {
        sc(c, "procMount")
            .and_then(Value::as_str)
            .is_some_and(|m| m != "Default")
    });
    if !bad.is_empty() {
        out.push(format!(
            "procMount ({} must not set securityContext.procMount to \"Unmasked\")",
            containers_phrase(&bad)
        ));
    }
    // restrictedVolumes (restricted)
    if restricted {
        let bad: Vec<String> = volumes
            .iter()
            .filter_map(|v| {
                let kind = v
                    .as_object()?
                    .keys()
                    .find(|k| k.as_str() != "name")?
                    .clone();
                (!RESTRICTED_VOLUMES.contains(&kind.as_str())).then(|| {
                    format!(
                        "volume {:?} uses restricted volume type {kind:?}",
                        name_of(v)
                    )
                })
            })
            .collect();
        if !bad.is_empty() {
            out.push(format!("restricted volume types ({})", bad.join(", ")));
        }
    }
    // runAsNonRoot (restricted)
    if restricted {
        let pod_non_root = spec.pointer("/securityContext/runAsNonRoot");
        let explicit_false = |v: Option<&Value>| v == Some(&Value::Bool(false));
        let bad = filter(&|c| {
            let own = sc(c, "runAsNonRoot");
            explicit_false(own) || (own.is_none() && pod_non_root != Some(&Value::Bool(true)))
        });
        if explicit_false(pod_non_root) {
            out.push(
                "runAsNonRoot != true (pod must not set securityContext.runAsNonRoot=false)".into(),
            );
        } else if !bad.is_empty() {
            if pod_non_root.is_none() && bad.len() == containers.len() {
                out.push(format!(
                    "runAsNonRoot != true (pod or {} must set securityContext.runAsNonRoot=true)",
                    containers_phrase(&bad)
                ));
            } else {
                out.push(format!(
                    "runAsNonRoot != true ({} must not set securityContext.runAsNonRoot=false)",
                    containers_phrase(&bad)
                ));
            }
        }
    }
    // runAsUser (restricted)
    if restricted {
        let root = |v: Option<&Value>| v.and_then(Value::as_i64) == Some(0);
        let mut parts = Vec::new();
        if root(spec.pointer("/securityContext/runAsUser")) {
            parts.push("pod must not set runAsUser=0".to_string());
        }
        let bad = filter(&|c| root(sc(c, "runAsUser")));
        if !bad.is_empty() {
            parts.push(format!(
                "{} must not set runAsUser=0",
                containers_phrase(&bad)
            ));
        }
        if !parts.is_empty() {
            out.push(format!("runAsUser=0 ({})", parts.join("; ")));
        }
    }
    // seccompProfile
    let seccomp_type = |v: Option<&Value>| {
        v.and_then(|p| p.get("type"))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let pod_seccomp = seccomp_type(spec.pointer("/securityContext/seccompProfile"));
    if restricted {
        let ok = |t: &Option<String>| matches!(t.as_deref(), Some("RuntimeDefault" | "Localhost"));
        if pod_seccomp.is_some() && !ok(&pod_seccomp) {
            out.push(format!(
                "seccompProfile (pod must not set securityContext.seccompProfile.type to {:?})",
                pod_seccomp.clone().unwrap_or_default()
            ));
        } else {
            let bad = filter(&|c| {
                let own = seccomp_type(sc(c, "seccompProfile"));
                match own {
                    Some(_) => !ok(&own),
                    None => !ok(&pod_seccomp),
                }
            });
            if !bad.is_empty() {
                out.push(format!(
                    "seccompProfile (pod or {} must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")",
                    containers_phrase(&bad)
                ));
            }
        }
    } else {
        let mut parts = Vec::new();
        if pod_seccomp.as_deref() == Some("Unconfined") {
            parts.push(
                "pod must not set securityContext.seccompProfile.type to \"Unconfined\""
                    .to_string(),
            );
        }
        let bad =
            filter(&|c| seccomp_type(sc(c, "seccompProfile")).as_deref() == Some("Unconfined"));
        if !bad.is_empty() {
            parts.push(format!(
                "{} must not set securityContext.seccompProfile.type to \"Unconfined\"",
                containers_phrase(&bad)
            ));
        }
        if !parts.is_empty() {
            out.push(format!("seccompProfile ({})", parts.join("; ")));
        }
    }
    // sysctls
    let bad: Vec<String> = spec
        .pointer("/securityContext/sysctls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|s| s.get("name").and_then(Value::as_str))
        .filter(|n| !SAFE_SYSCTLS.contains(n))
        .map(str::to_string)
        .collect();
    if !bad.is_empty() {
        out.push(format!("forbidden sysctls ({})", bad.join(", ")));
    }
    out
}

/// The pod spec and metadata of a pod or a workload's template.
fn pod_parts<'a>(resource: &str, obj: &'a Value) -> Option<(&'a Value, &'a Value)> {
    let template = match resource {
        "pods" => return Some((obj.get("spec")?, obj.get("metadata")?)),
        "cronjobs" => obj.pointer("/spec/jobTemplate/spec/template")?,
        "deployments"
        | "replicasets"
        | "statefulsets"
        | "daemonsets"
        | "jobs"
        | "replicationcontrollers"
        | "podtemplates" => {
            if resource == "podtemplates" {
                obj.get("template")?
            } else {
                obj.pointer("/spec/template")?
            }
        }
        _ => return None,
    };
    Some((
        template.get("spec")?,
        template.get("metadata").unwrap_or(&Value::Null),
    ))
}

/// Checks a new pod (enforce → 403) or workload (warnings); returns the warnings.
pub fn admit(namespace: &Value, resource: &str, name: &str, obj: &Value) -> ApiResult<Vec<String>> {
    let Some((spec, meta)) = pod_parts(resource, obj) else {
        return Ok(Vec::new());
    };
    let mut warnings = Vec::new();
    let enforce = label_level(namespace, "enforce");
    let warn = label_level(namespace, "warn");
    if let Some((level, version)) = &enforce {
        let v = check(spec, meta, *level);
        if !v.is_empty() {
            let what = format!(
                "PodSecurity \"{}:{version}\": {}",
                level.name(),
                v.join(", ")
            );
            let message = format!("violates {what}");
            if resource == "pods" {
                return Err(ferrokube_api::status::Status::forbidden(
                    ferrokube_api::status::Subject {
                        group: "",
                        resource: "pods",
                        name,
                    },
                    &message,
                )
                .into());
            }
            warnings.push(format!("would violate {what}"));
        }
    }
    if let Some((level, version)) = &warn {
        let same_as_enforce =
            enforce.as_ref().is_some_and(|(l, _)| l >= level) && resource != "pods";
        let v = check(spec, meta, *level);
        if !v.is_empty() && !same_as_enforce {
            warnings.push(format!(
                "would violate PodSecurity \"{}:{version}\": {}",
                level.name(),
                v.join(", ")
            ));
        }
    }
    Ok(warnings)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn restricted_messages_match_upstream() {
        let spec = json!({"containers": [{"name": "web", "image": "nginx"}]});
        let v = check(&spec, &json!({}), Level::Restricted);
        assert_eq!(
            v.join(", "),
            "allowPrivilegeEscalation != false (container \"web\" must set securityContext.allowPrivilegeEscalation=false), \
unrestricted capabilities (container \"web\" must set securityContext.capabilities.drop=[\"ALL\"]), \
runAsNonRoot != true (pod or container \"web\" must set securityContext.runAsNonRoot=true), \
seccompProfile (pod or container \"web\" must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")"
        );
        assert!(check(&spec, &json!({}), Level::Baseline).is_empty());
        let ok = json!({"securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{"name": "web", "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}}]});
        assert!(check(&ok, &json!({}), Level::Restricted).is_empty());
    }

    #[test]
    fn baseline_violations() {
        let spec = json!({"hostNetwork": true, "volumes": [{"name": "root", "hostPath": {"path": "/"}}],
            "containers": [{"name": "c", "securityContext": {"privileged": true, "capabilities": {"add": ["NET_ADMIN"]}},
                "ports": [{"containerPort": 80, "hostPort": 80}]}]});
        assert_eq!(
            check(&spec, &json!({}), Level::Baseline),
            [
                "non-default capabilities (container \"c\" must not include \"NET_ADMIN\" in securityContext.capabilities.add)",
                "host namespaces (hostNetwork=true)",
                "hostPath volumes (volume \"root\")",
                "hostPort (container \"c\" uses hostPort 80)",
                "privileged (container \"c\" must not set securityContext.privileged=true)",
            ]
        );
    }
}
