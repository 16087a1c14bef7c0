//! A container's environment as upstream's `kubelet_pods.go` `makeEnvironmentVariables`
//! builds it: service links (`FOO_SERVICE_HOST`, …) for the namespace's services and
//! the master service, `envFrom` (configMapRef/secretRef with prefix), then `env`
//! (values with `$(VAR)` expansion, fieldRef downward API, resourceFieldRef,
//! configMapKeyRef, secretKeyRef).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret, Service};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::Api;

use crate::Kubelet;

/// The value of a downward-API field path (`metadata.name`, `metadata.labels['x']`,
/// `status.podIP`, …).
pub fn field_value(pod: &Pod, path: &str) -> Option<String> {
    let m = &pod.metadata;
    let spec = pod.spec.as_ref();
    let status = pod.status.as_ref();
    let sub = |prefix: &str, map: Option<&BTreeMap<String, String>>| -> Option<Option<String>> {
        let key = path.strip_prefix(prefix)?.strip_suffix("']")?;
        Some(
            map.and_then(|l| l.get(key))
                .cloned()
                .or(Some(String::new())),
        )
    };
    if let Some(v) = sub("metadata.labels['", m.labels.as_ref()) {
        return v;
    }
    if let Some(v) = sub("metadata.annotations['", m.annotations.as_ref()) {
        return v;
    }
    let render = |map: Option<&BTreeMap<String, String>>| {
        map.map(|l| {
            l.iter()
                .map(|(k, v)| format!("{k}={v:?}"))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
    };
    Some(match path {
        "metadata.name" => m.name.clone().unwrap_or_default(),
        "metadata.namespace" => m.namespace.clone().unwrap_or_default(),
        "metadata.uid" => m.uid.clone().unwrap_or_default(),
        "metadata.labels" => render(m.labels.as_ref()),
        "metadata.annotations" => render(m.annotations.as_ref()),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
        "spec.serviceAccountName" => spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        "status.hostIP" => status.and_then(|s| s.host_ip.clone()).unwrap_or_default(),
        "status.hostIPs" => comma_list(
            status
                .and_then(|s| s.host_ips.as_deref())
                .unwrap_or_default()
                .iter()
                .map(|i| i.ip.as_str()),
        ),
        "status.podIP" => status.and_then(|s| s.pod_ip.clone()).unwrap_or_default(),
        "status.podIPs" => comma_list(
            status
                .and_then(|s| s.pod_ips.as_deref())
                .unwrap_or_default()
                .iter()
                .map(|i| i.ip.as_str()),
        ),
        _ => return None,
    })
}

fn comma_list<'a>(ips: impl Iterator<Item = &'a str>) -> String {
    ips.collect::<Vec<_>>().join(",")
}

/// `resourceFieldRef`: a container's request or limit divided by `divisor` (rounded
/// up, as upstream's `ExtractContainerResourceValue`); an unset limit is the node's
/// allocatable, reported here as the machine's capacity.
pub fn resource_value(
    pod: &Pod,
    container: &str,
    resource: &str,
    divisor: Option<&Quantity>,
) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    let c = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .find(|c| container.is_empty() || c.name == container)?;
    let res = c.resources.as_ref();
    let (map, name) = resource.split_once('.')?;
    let list = match map {
        "limits" => res.and_then(|r| r.limits.as_ref()),
        "requests" => res.and_then(|r| r.requests.as_ref()),
        _ => return None,
    };
    let cpu = name == "cpu";
    let value = list.and_then(|l| l.get(name)).map(|q| q.0.clone());
    let milli = match value {
        Some(v) => {
            if cpu {
                ferrokube_api::quantity::milli_value(&v)?
            } else {
                ferrokube_api::quantity::value(&v)?.saturating_mul(1000)
            }
        }
        None => {
            let info = crate::host::HostInfo::read();
            match name {
                "cpu" => info.cpus * 1000,
                "memory" => info.memory_bytes.saturating_mul(1000),
                "ephemeral-storage" => crate::host::fs_stats(std::path::Path::new("/"))
                    .capacity
                    .saturating_mul(1000),
                _ => 0,
            }
        }
    };
    let div = match divisor.map(|d| d.0.as_str()) {
        None | Some("") | Some("0") => 1000,
        Some(d) => ferrokube_api::quantity::milli_value(d)?.max(1),
    };
    Some(((milli + div - 1) / div).to_string())
}

/// Expands `$(VAR)` references as upstream's `expansion.Expand` (`$$` escapes).
pub fn expand(input: &str, vars: &BTreeMap<String, String>) -> String {
    let b = input.as_bytes();
    let mut out = String::with_capacity(input.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'$' && i + 1 < b.len() {
            if b[i + 1] == b'$' {
                out.push('$');
                i += 2;
                continue;
            }
            if b[i + 1] == b'(' {
                if let Some(end) = input[i + 2..].find(')') {
                    let name = &input[i + 2..i + 2 + end];
                    match vars.get(name) {
                        Some(v) => out.push_str(v),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    i += end + 3;
                    continue;
                }
            }
        }
        let ch = input[i..].chars().next().unwrap_or('\u{fffd}');
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

/// Docker-link style variables of a service (`getServiceEnvVarMap`).
fn service_vars(svc: &Service, out: &mut BTreeMap<String, String>) {
    let Some(spec) = &svc.spec else { return };
    let ip = spec.cluster_ip.clone().unwrap_or_default();
    if ip.is_empty() || ip == "None" {
        return;
    }
    let name = svc
        .metadata
        .name
        .clone()
        .unwrap_or_default()
        .to_ascii_uppercase()
        .replace('-', "_");
    let ports = spec.ports.as_deref().unwrap_or_default();
    let Some(first) = ports.first() else { return };
    out.insert(format!("{name}_SERVICE_HOST"), ip.clone());
    out.insert(format!("{name}_SERVICE_PORT"), first.port.to_string());
    for p in ports {
        if let Some(pn) = &p.name {
            out.insert(
                format!(
                    "{name}_SERVICE_PORT_{}",
                    pn.to_ascii_uppercase().replace('-', "_")
                ),
                p.port.to_string(),
            );
        }
    }
    let proto = |p: &k8s_openapi::api::core::v1::ServicePort| {
        p.protocol.clone().unwrap_or_else(|| "TCP".into())
    };
    out.insert(
        format!("{name}_PORT"),
        format!(
            "{}://{ip}:{}",
            proto(first).to_ascii_lowercase(),
            first.port
        ),
    );
    for p in ports {
        let pr = proto(p);
        let prefix = format!("{name}_PORT_{}_{}", p.port, pr.to_ascii_uppercase());
        out.insert(
            prefix.clone(),
            format!("{}://{ip}:{}", pr.to_ascii_lowercase(), p.port),
        );
        out.insert(format!("{prefix}_PROTO"), pr.to_ascii_lowercase());
        out.insert(format!("{prefix}_PORT"), p.port.to_string());
        out.insert(format!("{prefix}_ADDR"), ip.clone());
    }
}

/// Builds the container's environment (ordered: service links, envFrom, env).
pub async fn container_env(
    k: &Kubelet,
    pod: &Pod,
    c: &Container,
) -> Result<Vec<(String, String)>, String> {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let spec = pod.spec.as_ref();
    let mut vars: BTreeMap<String, String> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    let mut set = |vars: &mut BTreeMap<String, String>, k: String, v: String| {
        if !vars.contains_key(&k) {
            order.push(k.clone());
        }
        vars.insert(k, v);
    };
    // Service links: the master service always, the namespace's when enabled.
    let mut svc_vars = BTreeMap::new();
    let services: Api<Service> = Api::namespaced(k.client.clone(), &ns);
    if spec.and_then(|s| s.enable_service_links).unwrap_or(true) {
        match services.list(&Default::default()).await {
            Ok(list) => {
                for s in &list.items {
                    service_vars(s, &mut svc_vars);
                }
            }
            Err(e) => return Err(format!("listing services of namespace {ns}: {e}")),
        }
    }
    if ns != "default" || svc_vars.is_empty() {
        if let Ok(Some(master)) = Api::<Service>::namespaced(k.client.clone(), "default")
            .get_opt("kubernetes")
            .await
        {
            service_vars(&master, &mut svc_vars);
        }
    }
    for (key, v) in svc_vars {
        set(&mut vars, key, v);
    }
    let cms: Api<ConfigMap> = Api::namespaced(k.client.clone(), &ns);
    let secrets: Api<Secret> = Api::namespaced(k.client.clone(), &ns);
    for from in c.env_from.as_deref().unwrap_or_default() {
        let prefix = from.prefix.clone().unwrap_or_default();
        if let Some(r) = &from.config_map_ref {
            match cms.get_opt(&r.name).await.map_err(|e| e.to_string())? {
                Some(cm) => {
                    for (key, v) in cm.data.unwrap_or_default() {
                        set(&mut vars, format!("{prefix}{key}"), v);
                    }
                }
                None if r.optional.unwrap_or(false) => {}
                None => return Err(format!("configmap \"{}\" not found", r.name)),
            }
        }
        if let Some(r) = &from.secret_ref {
            match secrets.get_opt(&r.name).await.map_err(|e| e.to_string())? {
                Some(s) => {
                    for (key, v) in s.data.unwrap_or_default() {
                        set(
                            &mut vars,
                            format!("{prefix}{key}"),
                            String::from_utf8_lossy(&v.0).into_owned(),
                        );
                    }
                }
                None if r.optional.unwrap_or(false) => {}
                None => return Err(format!("secret \"{}\" not found", r.name)),
            }
        }
    }
    for e in c.env.as_deref().unwrap_or_default() {
        let value = if let Some(v) = &e.value {
            expand(v, &vars)
        } else if let Some(src) = &e.value_from {
            if let Some(f) = &src.field_ref {
                field_value(pod, &f.field_path)
                    .ok_or_else(|| format!("unsupported fieldPath {:?}", f.field_path))?
            } else if let Some(r) = &src.resource_field_ref {
                let cname = r.container_name.clone().unwrap_or_else(|| c.name.clone());
                resource_value(pod, &cname, &r.resource, r.divisor.as_ref())
                    .ok_or_else(|| format!("unsupported resource {:?}", r.resource))?
            } else if let Some(r) = &src.config_map_key_ref {
                let optional = r.optional.unwrap_or(false);
                match cms.get_opt(&r.name).await.map_err(|e| e.to_string())? {
                    Some(cm) => match cm.data.and_then(|d| d.get(&r.key).cloned()) {
                        Some(v) => v,
                        None if optional => continue,
                        None => {
                            return Err(format!(
                                "couldn't find key {} in ConfigMap {ns}/{}",
                                r.key, r.name
                            ))
                        }
                    },
                    None if optional => continue,
                    None => return Err(format!("configmap \"{}\" not found", r.name)),
                }
            } else if let Some(r) = &src.secret_key_ref {
                let optional = r.optional.unwrap_or(false);
                match secrets.get_opt(&r.name).await.map_err(|e| e.to_string())? {
                    Some(s) => match s.data.and_then(|d| d.get(&r.key).cloned()) {
                        Some(v) => String::from_utf8_lossy(&v.0).into_owned(),
                        None if optional => continue,
                        None => {
                            return Err(format!(
                                "couldn't find key {} in Secret {ns}/{}",
                                r.key, r.name
                            ))
                        }
                    },
                    None if optional => continue,
                    None => return Err(format!("secret \"{}\" not found", r.name)),
                }
            } else {
                String::new()
            }
        } else {
            String::new()
        };
        set(&mut vars, e.name.clone(), value);
    }
    Ok(order
        .into_iter()
        .filter_map(|k| vars.get(&k).map(|v| (k.clone(), v.clone())))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expansion_as_upstream() {
        let vars: BTreeMap<String, String> =
            [("A".to_string(), "x".to_string())].into_iter().collect();
        assert_eq!(expand("$(A)-$(B)-$$(A)-$", &vars), "x-$(B)-$(A)-$");
        assert_eq!(expand("plain é", &vars), "plain é");
        assert_eq!(expand("$(A", &vars), "$(A");
    }

    #[test]
    fn field_paths() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "n", "uid": "u", "labels": {"app": "web"}},
            "spec": {"nodeName": "k8s-01", "containers": [{"name": "c", "resources": {"limits": {"memory": "64Mi", "cpu": "250m"}}}]},
            "status": {"podIP": "10.42.0.5", "hostIP": "198.18.0.1"}
        }))
        .unwrap();
        assert_eq!(
            field_value(&pod, "metadata.labels['app']").as_deref(),
            Some("web")
        );
        assert_eq!(
            field_value(&pod, "metadata.labels").as_deref(),
            Some("app=\"web\"")
        );
        assert_eq!(
            field_value(&pod, "spec.nodeName").as_deref(),
            Some("k8s-01")
        );
        assert_eq!(
            field_value(&pod, "status.podIP").as_deref(),
            Some("10.42.0.5")
        );
        assert_eq!(field_value(&pod, "spec.bogus"), None);
        assert_eq!(
            resource_value(&pod, "c", "limits.memory", None).as_deref(),
            Some("67108864")
        );
        assert_eq!(
            resource_value(&pod, "c", "limits.cpu", None).as_deref(),
            Some("1")
        );
        assert_eq!(
            resource_value(&pod, "c", "limits.cpu", Some(&Quantity("1m".into()))).as_deref(),
            Some("250")
        );
    }
}
