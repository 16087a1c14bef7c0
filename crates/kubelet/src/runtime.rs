//! From a Pod to CRI requests, as upstream's `kuberuntime` package: the sandbox config
//! (`kuberuntime_sandbox.go` `generatePodSandboxConfig`: metadata, hostname, log
//! directory, DNS, port mappings, cgroup parent, namespaces), the container config
//! (`kuberuntime_container.go` `generateContainerConfig`: image, command, args, env,
//! mounts, log path, labels/annotations, resources → `LinuxContainerResources`,
//! securityContext), and the labels/annotations upstream puts on both so a restarted
//! kubelet recognises its containers.

pub mod env;

use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};

use ferrokube_cri::v1 as cri;
use k8s_openapi::api::core::v1::{Container, Pod};

use crate::volumes::Mounted;
use crate::Kubelet;

pub const POD_NAME: &str = "io.kubernetes.pod.name";
pub const POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
pub const POD_UID: &str = "io.kubernetes.pod.uid";
pub const CONTAINER_NAME: &str = "io.kubernetes.container.name";
pub const CONTAINER_HASH: &str = "io.kubernetes.container.hash";
pub const RESTART_COUNT: &str = "io.kubernetes.container.restartCount";
pub const TERMINATION_MESSAGE_PATH: &str = "io.kubernetes.container.terminationMessagePath";
pub const GRACE_PERIOD: &str = "io.kubernetes.pod.terminationGracePeriod";
/// The label upstream marks sandboxes and containers managed by a kubelet with.
pub const MANAGED: &str = "io.cri-containerd.kind";

/// Upstream's default masked and read-only /proc paths (`securitycontext` package).
const MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];
const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

fn meta(pod: &Pod) -> (String, String, String) {
    (
        pod.metadata.name.clone().unwrap_or_default(),
        pod.metadata.namespace.clone().unwrap_or_default(),
        pod.metadata.uid.clone().unwrap_or_default(),
    )
}

/// The pod's QoS class (`qos.GetPodQOS`).
pub fn qos_class(pod: &Pod) -> &'static str {
    let Some(spec) = &pod.spec else {
        return "BestEffort";
    };
    let mut any = false;
    let mut guaranteed = true;
    for c in spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
    {
        let r = c.resources.as_ref();
        let req = r.and_then(|r| r.requests.clone()).unwrap_or_default();
        let lim = r.and_then(|r| r.limits.clone()).unwrap_or_default();
        for res in ["cpu", "memory"] {
            let (rq, lm) = (req.get(res), lim.get(res));
            if rq.is_some() || lm.is_some() {
                any = true;
            }
            match lm {
                None => guaranteed = false,
                Some(l) => {
                    if let Some(q) = rq {
                        if ferrokube_api::quantity::milli_value(&q.0)
                            != ferrokube_api::quantity::milli_value(&l.0)
                        {
                            guaranteed = false;
                        }
                    }
                }
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

/// The pod's cgroup parent under the `kubepods` hierarchy (cgroups-per-QoS), in the
/// form of the configured driver.
pub(crate) fn cgroup_parent(k: &Kubelet, pod: &Pod, uid: &str) -> String {
    let qos = qos_class(pod);
    if k.config.cgroup_driver == "systemd" {
        let id = uid.replace('-', "_");
        match qos {
            "Guaranteed" => format!("kubepods-pod{id}.slice"),
            q => format!("kubepods-{}-pod{id}.slice", q.to_ascii_lowercase()),
        }
    } else if !k.config.cgroups_per_qos {
        String::new()
    } else {
        match qos {
            "Guaranteed" => format!("/kubepods/pod{uid}"),
            q => format!("/kubepods/{}/pod{uid}", q.to_ascii_lowercase()),
        }
    }
}

/// The DNS config (`dns.go` `GetPodDNS`): ClusterFirst → the cluster DNS servers and
/// the namespace search path; Default → the node's resolv.conf; None → dnsConfig.
fn dns_config(k: &Kubelet, pod: &Pod, ns: &str) -> Option<cri::DnsConfig> {
    let spec = pod.spec.as_ref()?;
    let host_network = spec.host_network.unwrap_or(false);
    let policy = spec.dns_policy.as_deref().unwrap_or("ClusterFirst");
    let (host_servers, host_search) = host_resolv(&k.config.resolv_conf);
    let mut dns = match policy {
        "None" => cri::DnsConfig::default(),
        "ClusterFirst" | "ClusterFirstWithHostNet"
            if !k.config.cluster_dns.is_empty()
                && (policy == "ClusterFirstWithHostNet" || !host_network) =>
        {
            let d = &k.config.cluster_domain;
            let mut searches = vec![format!("{ns}.svc.{d}"), format!("svc.{d}"), d.clone()];
            searches.extend(host_search);
            cri::DnsConfig {
                servers: k.config.cluster_dns.clone(),
                searches,
                options: vec!["ndots:5".into()],
            }
        }
        _ => cri::DnsConfig {
            servers: host_servers,
            searches: host_search,
            options: Vec::new(),
        },
    };
    if let Some(extra) = &spec.dns_config {
        dns.servers
            .extend(extra.nameservers.clone().unwrap_or_default());
        dns.searches
            .extend(extra.searches.clone().unwrap_or_default());
        for o in extra.options.as_deref().unwrap_or_default() {
            let name = o.name.clone().unwrap_or_default();
            dns.options
                .retain(|x| x.split(':').next() != Some(name.as_str()));
            dns.options.push(match &o.value {
                Some(v) => format!("{name}:{v}"),
                None => name,
            });
        }
    }
    dns.searches.truncate(32);
    Some(dns)
}

fn host_resolv(path: &str) -> (Vec<String>, Vec<String>) {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut servers = Vec::new();
    let mut search = Vec::new();
    for line in text.lines() {
        let mut f = line.split_whitespace();
        match f.next() {
            Some("nameserver") => servers.extend(f.next().map(str::to_string)),
            Some("search") => search = f.map(str::to_string).collect(),
            _ => {}
        }
    }
    (servers, search)
}

fn namespace_mode(host: bool) -> i32 {
    if host {
        cri::NamespaceMode::Node as i32
    } else {
        cri::NamespaceMode::Pod as i32
    }
}

fn namespaces(pod: &Pod) -> cri::NamespaceOption {
    let spec = pod.spec.as_ref();
    let f = |v: Option<bool>| v.unwrap_or(false);
    cri::NamespaceOption {
        network: namespace_mode(f(spec.and_then(|s| s.host_network))),
        pid: if f(spec.and_then(|s| s.host_pid)) {
            cri::NamespaceMode::Node as i32
        } else if f(spec.and_then(|s| s.share_process_namespace)) {
            cri::NamespaceMode::Pod as i32
        } else {
            cri::NamespaceMode::Container as i32
        },
        ipc: namespace_mode(f(spec.and_then(|s| s.host_ipc))),
        ..cri::NamespaceOption::default()
    }
}

/// `generatePodSandboxConfig`.
pub fn sandbox_config(k: &Kubelet, pod: &Pod, attempt: u32) -> cri::PodSandboxConfig {
    let (name, ns, uid) = meta(pod);
    let spec = pod.spec.clone().unwrap_or_default();
    let mut labels: HashMap<String, String> = pod
        .metadata
        .labels
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    labels.insert(POD_NAME.into(), name.clone());
    labels.insert(POD_NAMESPACE.into(), ns.clone());
    labels.insert(POD_UID.into(), uid.clone());
    let annotations: HashMap<String, String> = pod
        .metadata
        .annotations
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    let hostname = if spec.host_network.unwrap_or(false) {
        String::new()
    } else {
        spec.hostname
            .clone()
            .unwrap_or_else(|| name.chars().take(63).collect())
    };
    let mut port_mappings = Vec::new();
    for c in &spec.containers {
        for p in c.ports.as_deref().unwrap_or_default() {
            let host_port = p.host_port.unwrap_or(0);
            if host_port <= 0 {
                continue;
            }
            port_mappings.push(cri::PortMapping {
                protocol: match p.protocol.as_deref() {
                    Some("UDP") => cri::Protocol::Udp as i32,
                    Some("SCTP") => cri::Protocol::Sctp as i32,
                    _ => cri::Protocol::Tcp as i32,
                },
                container_port: p.container_port,
                host_port,
                host_ip: p.host_ip.clone().unwrap_or_default(),
            });
        }
    }
    let psc = spec.security_context.clone().unwrap_or_default();
    let sysctls = psc
        .sysctls
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|s| (s.name, s.value))
        .collect();
    cri::PodSandboxConfig {
        metadata: Some(cri::PodSandboxMetadata {
            name: name.clone(),
            uid: uid.clone(),
            namespace: ns.clone(),
            attempt,
        }),
        hostname,
        log_directory: k
            .opts
            .pod_logs_dir
            .join(format!("{ns}_{name}_{uid}"))
            .display()
            .to_string(),
        dns_config: dns_config(k, pod, &ns),
        port_mappings,
        labels,
        annotations,
        linux: Some(cri::LinuxPodSandboxConfig {
            cgroup_parent: cgroup_parent(k, pod, &uid),
            security_context: Some(cri::LinuxSandboxSecurityContext {
                namespace_options: Some(namespaces(pod)),
                run_as_user: psc.run_as_user.map(|value| cri::Int64Value { value }),
                run_as_group: psc.run_as_group.map(|value| cri::Int64Value { value }),
                supplemental_groups: psc.supplemental_groups.clone().unwrap_or_default(),
                privileged: spec.containers.iter().any(|c| {
                    c.security_context
                        .as_ref()
                        .and_then(|s| s.privileged)
                        .unwrap_or(false)
                }),
                ..cri::LinuxSandboxSecurityContext::default()
            }),
            sysctls,
            ..cri::LinuxPodSandboxConfig::default()
        }),
        ..cri::PodSandboxConfig::default()
    }
}

/// The hash of a container's spec that tells the kubelet to restart it when the spec
/// changes in place (`kubecontainer.HashContainer`). Resources and resize policies are
/// left out: they change in place (`pods/resize`).
pub fn container_hash(c: &Container) -> String {
    let mut c = c.clone();
    c.resources = None;
    c.resize_policy = None;
    legacy_container_hash(&c)
}

/// The hash of the whole spec, as containers created before in-place resize carry it.
pub fn legacy_container_hash(c: &Container) -> String {
    let text = serde_json::to_string(c).unwrap_or_default();
    let mut h = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut h);
    format!("{:x}", h.finish() & 0xffff_ffff)
}

/// The container's resources as the kubelet applied them when it created it.
pub const APPLIED_RESOURCES: &str = "io.ferrokube.container.resources";

/// What of a container's resources the runtime is told: equal values need no resize.
pub fn resources_key(pod: &Pod, c: &Container) -> (i64, i64, i64, i64) {
    let r = linux_resources(pod, c);
    (
        r.cpu_shares,
        r.cpu_quota,
        r.cpu_period,
        r.memory_limit_in_bytes,
    )
}

/// cpu shares / quota / memory limit from requests and limits
/// (`kuberuntime_container_linux.go` `calculateLinuxResources`).
pub fn linux_resources(pod: &Pod, c: &Container) -> cri::LinuxContainerResources {
    let r = c.resources.clone().unwrap_or_default();
    let get =
        |m: &Option<BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>,
         res: &str,
         milli: bool| {
            m.as_ref().and_then(|m| m.get(res)).and_then(|q| {
                if milli {
                    ferrokube_api::quantity::milli_value(&q.0)
                } else {
                    ferrokube_api::quantity::value(&q.0)
                }
            })
        };
    let cpu_request = get(&r.requests, "cpu", true);
    let cpu_limit = get(&r.limits, "cpu", true);
    let memory_limit = get(&r.limits, "memory", false).unwrap_or(0);
    // Requests default to limits (as the API server defaults them).
    let shares_milli = cpu_request.or(cpu_limit);
    let cpu_shares = match shares_milli {
        None => 2,
        Some(m) => (m * 1024 / 1000).max(2),
    };
    let period = 100_000;
    let cpu_quota = cpu_limit.map_or(0, |m| (m * period / 1000).max(1000));
    let oom_score_adj = match qos_class(pod) {
        "Guaranteed" => -997,
        "BestEffort" => 1000,
        _ => {
            let mem_request = get(&r.requests, "memory", false).unwrap_or(0);
            let total = crate::host::mem_total().max(1);
            (1000 - 1000 * mem_request / total).clamp(3, 999)
        }
    };
    cri::LinuxContainerResources {
        cpu_period: if cpu_quota > 0 { period } else { 0 },
        cpu_quota,
        cpu_shares,
        memory_limit_in_bytes: memory_limit,
        oom_score_adj,
        ..cri::LinuxContainerResources::default()
    }
}

/// The container's security context (`determineEffectiveSecurityContext`): the
/// container's settings over the pod's.
fn security_context(pod: &Pod, c: &Container) -> cri::LinuxContainerSecurityContext {
    let psc = pod
        .spec
        .as_ref()
        .and_then(|s| s.security_context.clone())
        .unwrap_or_default();
    let csc = c.security_context.clone().unwrap_or_default();
    let privileged = csc.privileged.unwrap_or(false);
    let caps = csc.capabilities.clone().unwrap_or_default();
    cri::LinuxContainerSecurityContext {
        capabilities: Some(cri::Capability {
            add_capabilities: caps.add.unwrap_or_default(),
            drop_capabilities: caps.drop.unwrap_or_default(),
            ..cri::Capability::default()
        }),
        privileged,
        namespace_options: Some(namespaces(pod)),
        run_as_user: csc
            .run_as_user
            .or(psc.run_as_user)
            .map(|value| cri::Int64Value { value }),
        run_as_group: csc
            .run_as_group
            .or(psc.run_as_group)
            .map(|value| cri::Int64Value { value }),
        readonly_rootfs: csc.read_only_root_filesystem.unwrap_or(false),
        supplemental_groups: psc.supplemental_groups.unwrap_or_default(),
        no_new_privs: csc.allow_privilege_escalation == Some(false),
        masked_paths: if privileged {
            Vec::new()
        } else {
            MASKED_PATHS.iter().map(|s| s.to_string()).collect()
        },
        readonly_paths: if privileged {
            Vec::new()
        } else {
            READONLY_PATHS.iter().map(|s| s.to_string()).collect()
        },
        ..cri::LinuxContainerSecurityContext::default()
    }
}

/// What a container config is built from.
#[derive(Debug)]
pub struct ContainerInputs<'a> {
    pub pod: &'a Pod,
    pub container: &'a Container,
    pub restart_count: u32,
    pub image_ref: String,
    pub env: Vec<(String, String)>,
    pub volumes: &'a BTreeMap<String, Mounted>,
    /// The pod's /etc/hosts file (absent with hostNetwork).
    pub etc_hosts: Option<std::path::PathBuf>,
    /// The container's termination-message file on the host.
    pub termination_log: Option<std::path::PathBuf>,
    /// An ephemeral container's target: the running container whose process namespace
    /// it joins (`targetContainerName`).
    pub pid_target: Option<String>,
}

/// An ephemeral container as the container it runs as (the fields they share).
pub fn ephemeral_container(ec: &k8s_openapi::api::core::v1::EphemeralContainer) -> Container {
    serde_json::to_value(ec)
        .and_then(serde_json::from_value)
        .unwrap_or_else(|_| Container {
            name: ec.name.clone(),
            image: ec.image.clone(),
            ..Container::default()
        })
}

/// `generateContainerConfig`.
pub fn container_config(i: &ContainerInputs<'_>) -> Result<cri::ContainerConfig, String> {
    let (name, ns, uid) = meta(i.pod);
    let c = i.container;
    let vars: BTreeMap<String, String> = i.env.iter().cloned().collect();
    let expand = |v: &Option<Vec<String>>| -> Vec<String> {
        v.as_deref()
            .unwrap_or_default()
            .iter()
            .map(|s| env::expand(s, &vars))
            .collect()
    };
    let mut mounts = Vec::new();
    for m in c.volume_mounts.as_deref().unwrap_or_default() {
        let v = i.volumes.get(&m.name).ok_or_else(|| {
            format!(
                "cannot find volume {:?} to mount into container {:?}",
                m.name, c.name
            )
        })?;
        let mut host = v.host_path.clone();
        let sub = m
            .sub_path_expr
            .as_ref()
            .map(|e| env::expand(e, &vars))
            .or_else(|| m.sub_path.clone())
            .unwrap_or_default();
        if !sub.is_empty() {
            if sub.starts_with('/') || sub.split('/').any(|p| p == "..") {
                return Err(format!("invalid subPath {sub:?}"));
            }
            host = host.join(&sub);
            if std::fs::symlink_metadata(&host).is_err() {
                std::fs::create_dir_all(&host)
                    .map_err(|e| format!("creating subPath {}: {e}", host.display()))?;
            }
        }
        mounts.push(cri::Mount {
            container_path: m.mount_path.clone(),
            host_path: host.display().to_string(),
            readonly: m.read_only.unwrap_or(false) || v.read_only,
            propagation: match m.mount_propagation.as_deref() {
                Some("HostToContainer") => cri::MountPropagation::PropagationHostToContainer as i32,
                Some("Bidirectional") => cri::MountPropagation::PropagationBidirectional as i32,
                _ => cri::MountPropagation::PropagationPrivate as i32,
            },
            ..cri::Mount::default()
        });
    }
    let mounted = |mounts: &[cri::Mount], p: &str| mounts.iter().any(|m| m.container_path == p);
    if let Some(hosts) = &i.etc_hosts {
        if !mounted(&mounts, "/etc/hosts") {
            mounts.push(cri::Mount {
                container_path: "/etc/hosts".into(),
                host_path: hosts.display().to_string(),
                ..cri::Mount::default()
            });
        }
    }
    let tm_path = c
        .termination_message_path
        .clone()
        .unwrap_or_else(|| "/dev/termination-log".into());
    if let Some(log) = &i.termination_log {
        if !mounted(&mounts, &tm_path) {
            mounts.push(cri::Mount {
                container_path: tm_path.clone(),
                host_path: log.display().to_string(),
                ..cri::Mount::default()
            });
        }
    }
    let labels: HashMap<String, String> = [
        (POD_NAME, name.clone()),
        (POD_NAMESPACE, ns.clone()),
        (POD_UID, uid.clone()),
        (CONTAINER_NAME, c.name.clone()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let grace = i
        .pod
        .spec
        .as_ref()
        .and_then(|s| s.termination_grace_period_seconds)
        .unwrap_or(30);
    let annotations: HashMap<String, String> = [
        (CONTAINER_HASH, container_hash(c)),
        (RESTART_COUNT, i.restart_count.to_string()),
        (TERMINATION_MESSAGE_PATH, tm_path),
        (GRACE_PERIOD, grace.to_string()),
        (
            APPLIED_RESOURCES,
            serde_json::to_string(&c.resources).unwrap_or_default(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    Ok(cri::ContainerConfig {
        metadata: Some(cri::ContainerMetadata {
            name: c.name.clone(),
            attempt: i.restart_count,
        }),
        image: Some(cri::ImageSpec {
            image: i.image_ref.clone(),
            user_specified_image: c.image.clone().unwrap_or_default(),
            ..cri::ImageSpec::default()
        }),
        command: expand(&c.command),
        args: expand(&c.args),
        working_dir: c.working_dir.clone().unwrap_or_default(),
        envs: i
            .env
            .iter()
            .map(|(key, value)| cri::KeyValue {
                key: key.clone(),
                value: value.clone(),
            })
            .collect(),
        mounts,
        labels,
        annotations,
        log_path: format!("{}/{}.log", c.name, i.restart_count),
        stdin: c.stdin.unwrap_or(false),
        stdin_once: c.stdin_once.unwrap_or(false),
        tty: c.tty.unwrap_or(false),
        linux: Some(cri::LinuxContainerConfig {
            resources: Some(linux_resources(i.pod, c)),
            security_context: Some({
                let mut sc = security_context(i.pod, c);
                if let (Some(target), Some(ns)) = (&i.pid_target, sc.namespace_options.as_mut()) {
                    ns.pid = cri::NamespaceMode::Target as i32;
                    ns.target_id.clone_from(target);
                }
                sc
            }),
        }),
        ..cri::ContainerConfig::default()
    })
}

/// The pod's /etc/hosts (`kubelet_pods.go` `managedHostsFileContent`).
pub fn etc_hosts(pod: &Pod, pod_ips: &[String]) -> String {
    let spec = pod.spec.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let hostname = spec.hostname.clone().unwrap_or(name);
    let mut out = String::from(
        "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n",
    );
    let fqdn = spec.subdomain.as_ref().map(|sub| {
        format!(
            "{hostname}.{sub}.{}.svc",
            pod.metadata.namespace.clone().unwrap_or_default()
        )
    });
    for ip in pod_ips {
        match &fqdn {
            Some(f) => out.push_str(&format!("{ip}\t{f}\t{hostname}\n")),
            None => out.push_str(&format!("{ip}\t{hostname}\n")),
        }
    }
    for alias in spec.host_aliases.unwrap_or_default() {
        out.push_str(&format!(
            "\n# Entries added by HostAliases.\n{}\t{}\n",
            alias.ip,
            alias.hostnames.unwrap_or_default().join("\t")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn qos_classes() {
        let be = pod(serde_json::json!({"metadata": {}, "spec": {"containers": [{"name": "c"}]}}));
        assert_eq!(qos_class(&be), "BestEffort");
        let g = pod(
            serde_json::json!({"metadata": {}, "spec": {"containers": [{"name": "c", "resources": {
            "limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "1000m", "memory": "1Gi"}}}]}}),
        );
        assert_eq!(qos_class(&g), "Guaranteed");
        let b = pod(
            serde_json::json!({"metadata": {}, "spec": {"containers": [{"name": "c", "resources": {
            "requests": {"cpu": "100m"}}}]}}),
        );
        assert_eq!(qos_class(&b), "Burstable");
    }

    #[test]
    fn hosts_file() {
        let p = pod(
            serde_json::json!({"metadata": {"name": "web-0", "namespace": "n"}, "spec": {"containers": [], "subdomain": "web"}}),
        );
        let text = etc_hosts(&p, &["10.42.0.7".into()]);
        assert!(
            text.contains("10.42.0.7\tweb-0.web.n.svc\tweb-0\n"),
            "{text}"
        );
        assert!(text.starts_with("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n"));
    }
}
