//! Containers and volumes of a pod spec, as upstream's
//! `pkg/apis/core/validation/validation.go` (`validateContainerCommon`,
//! `validateContainerPorts`, `ValidateEnv`, `ValidateEnvFrom`, `ValidateVolumes`,
//! `validateVolumeSource`, `ValidateVolumeMounts`, `ValidateContainerResourceRequirements`,
//! `validateProbe`, `validateHandler`, `checkHostPortConflicts`).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::util::*;

/// The volume sources in upstream's order, with the path segment its "more than 1 volume
/// type" error uses (upstream's own spellings, `downwarAPI` included).
const VOLUME_SOURCES: &[(&str, &str)] = &[
    ("emptyDir", "emptyDir"),
    ("hostPath", "hostPath"),
    ("gitRepo", "gitRepo"),
    ("gcePersistentDisk", "gcePersistentDisk"),
    ("awsElasticBlockStore", "awsElasticBlockStore"),
    ("secret", "secret"),
    ("nfs", "nfs"),
    ("iscsi", "iscsi"),
    ("glusterfs", "glusterfs"),
    ("flocker", "flocker"),
    ("persistentVolumeClaim", "persistentVolumeClaim"),
    ("rbd", "rbd"),
    ("cinder", "cinder"),
    ("cephfs", "cephFS"),
    ("quobyte", "quobyte"),
    ("downwardAPI", "downwarAPI"),
    ("fc", "fc"),
    ("flexVolume", "flexVolume"),
    ("configMap", "configMap"),
    ("azureFile", "azureFile"),
    ("vsphereVolume", "vsphereVolume"),
    ("photonPersistentDisk", "photonPersistentDisk"),
    ("portworxVolume", "portworxVolume"),
    ("azureDisk", "azureDisk"),
    ("storageos", "storageos"),
    ("projected", "projected"),
    ("scaleIO", "scaleIO"),
    ("csi", "csi"),
    ("ephemeral", "ephemeral"),
    ("image", "image"),
];

const FILE_MODE: &str = "must be a number between 0 and 0777 (octal), both inclusive";

fn file_mode(path: &str, v: &Value, k: &str, errs: &mut Errs) {
    if let Some(mode) = int_of(v, k) {
        if !(0..=0o777).contains(&mode) {
            errs.push(invalid_int(&join(path, k), mode, FILE_MODE));
        }
    }
}

fn path_no_backsteps(path: &str, target: &str, errs: &mut Errs) {
    if target.split('/').any(|p| p == "..") {
        errs.push(invalid_str(path, target, "must not contain '..'"));
    }
}

fn local_descending_path(path: &str, target: &str, errs: &mut Errs) {
    if target.starts_with('/') {
        errs.push(invalid_str(path, target, "must be a relative path"));
    }
    path_no_backsteps(path, target, errs);
}

fn local_non_reserved_path(path: &str, target: &str, errs: &mut Errs) {
    local_descending_path(path, target, errs);
    if target.starts_with("..") && !target.starts_with("../") {
        errs.push(invalid_str(path, target, "must not start with '..'"));
    }
}

fn key_to_paths(path: &str, src: &Value, errs: &mut Errs) {
    for (i, kp) in arr(src, "items").iter().enumerate() {
        let p = idx(&join(path, "items"), i);
        if s(kp, "key").is_empty() {
            errs.push(required(&join(&p, "key"), ""));
        }
        if s(kp, "path").is_empty() {
            errs.push(required(&join(&p, "path"), ""));
        }
        local_non_reserved_path(&join(&p, "path"), s(kp, "path"), errs);
        file_mode(&p, kp, "mode", errs);
    }
}

fn volume_source(path: &str, vol: &Value, errs: &mut Errs) {
    let mut count = 0;
    for (key_name, forbidden_seg) in VOLUME_SOURCES {
        let Some(src) = get(vol, key_name) else {
            continue;
        };
        if count > 0 {
            errs.push(forbidden(
                &join(path, forbidden_seg),
                "may not specify more than 1 volume type",
            ));
            continue;
        }
        count += 1;
        let p = join(path, key_name);
        match *key_name {
            "emptyDir" => {
                if get(src, "sizeLimit")
                    .and_then(Quantity::parse)
                    .is_some_and(Quantity::is_negative)
                {
                    errs.push(forbidden(
                        &join(&p, "sizeLimit"),
                        "SizeLimit field must be a valid resource quantity",
                    ));
                }
            }
            "hostPath" => {
                let hp = s(src, "path");
                if hp.is_empty() {
                    errs.push(required(&join(&p, "path"), ""));
                } else {
                    path_no_backsteps(&join(&p, "path"), hp, errs);
                    const TYPES: &[&str] = &[
                        "",
                        "BlockDevice",
                        "CharDevice",
                        "Directory",
                        "DirectoryOrCreate",
                        "File",
                        "FileOrCreate",
                        "Socket",
                    ];
                    if let Some(t) = str_of(src, "type") {
                        if !TYPES.contains(&t) {
                            errs.push(not_supported(&join(&p, "type"), t, TYPES));
                        }
                    }
                }
            }
            "secret" => {
                if s(src, "secretName").is_empty() {
                    errs.push(required(&join(&p, "secretName"), ""));
                }
                file_mode(&p, src, "defaultMode", errs);
                key_to_paths(&p, src, errs);
            }
            "configMap" => {
                if s(src, "name").is_empty() {
                    errs.push(required(&join(&p, "name"), ""));
                }
                file_mode(&p, src, "defaultMode", errs);
                key_to_paths(&p, src, errs);
            }
            "persistentVolumeClaim" => {
                if s(src, "claimName").is_empty() {
                    errs.push(required(&join(&p, "claimName"), ""));
                }
            }
            "nfs" => {
                if s(src, "server").is_empty() {
                    errs.push(required(&join(&p, "server"), ""));
                }
                let np = s(src, "path");
                if np.is_empty() {
                    errs.push(required(&join(&p, "path"), ""));
                }
                if !np.starts_with('/') {
                    errs.push(invalid_str(
                        &join(&p, "path"),
                        np,
                        "must be an absolute path",
                    ));
                }
            }
            "downwardAPI" => file_mode(&p, src, "defaultMode", errs),
            "projected" => file_mode(&p, src, "defaultMode", errs),
            "csi" => {
                let driver = s(src, "driver");
                if driver.is_empty() {
                    errs.push(required(&join(&p, "driver"), ""));
                }
            }
            "ephemeral" => {
                if get(src, "volumeClaimTemplate").is_none() {
                    errs.push(required(&join(&p, "volumeClaimTemplate"), ""));
                }
            }
            "gitRepo" => {
                if s(src, "repository").is_empty() {
                    errs.push(required(&join(&p, "repository"), ""));
                }
                local_descending_path(&join(&p, "directory"), s(src, "directory"), errs);
            }
            _ => {}
        }
    }
    if count == 0 {
        errs.push(required(path, "must specify a volume type"));
    }
}

/// `ValidateVolumes`: the valid volumes by name (with whether each is a PVC).
pub(super) fn volumes(path: &str, spec: &Value, errs: &mut Errs) -> BTreeMap<String, bool> {
    let mut names = BTreeMap::new();
    for (i, vol) in arr(spec, "volumes").iter().enumerate() {
        let p = idx(path, i);
        let mut el = Vec::new();
        volume_source(&p, vol, &mut el);
        let name = s(vol, "name");
        let name_path = join(&p, "name");
        if name.is_empty() {
            el.push(required(&name_path, ""));
        } else {
            dns_label(&name_path, name, &mut el);
        }
        if names.contains_key(name) {
            el.push(duplicate_str(&name_path, name));
        }
        if el.is_empty() {
            let is_pvc =
                get(vol, "persistentVolumeClaim").is_some() || get(vol, "ephemeral").is_some();
            names.insert(name.to_string(), is_pvc);
        } else {
            errs.extend(el);
        }
    }
    names
}

fn container_ports(path: &str, c: &Value, errs: &mut Errs) {
    let mut names = BTreeSet::new();
    for (i, port) in arr(c, "ports").iter().enumerate() {
        let p = idx(path, i);
        let name = s(port, "name");
        if !name.is_empty() {
            let msgs = port_name_msgs(name);
            if !msgs.is_empty() {
                for m in msgs {
                    errs.push(invalid_str(&join(&p, "name"), name, &m));
                }
            } else if !names.insert(name) {
                errs.push(duplicate_str(&join(&p, "name"), name));
            }
        }
        match int_of(port, "containerPort").unwrap_or(0) {
            0 => errs.push(required(&join(&p, "containerPort"), "")),
            n if !port_num_ok(n) => {
                errs.push(invalid_int(&join(&p, "containerPort"), n, PORT_RANGE))
            }
            _ => {}
        }
        let host = int_of(port, "hostPort").unwrap_or(0);
        if host != 0 && !port_num_ok(host) {
            errs.push(invalid_int(&join(&p, "hostPort"), host, PORT_RANGE));
        }
        match s(port, "protocol") {
            "" => errs.push(required(&join(&p, "protocol"), "")),
            "TCP" | "UDP" | "SCTP" => {}
            other => errs.push(not_supported(
                &join(&p, "protocol"),
                other,
                &["SCTP", "TCP", "UDP"],
            )),
        }
    }
}

const ENV_FIELD_PATHS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
];

fn key_selector(path: &str, sel: &Value, errs: &mut Errs) {
    let name = s(sel, "name");
    for msg in crate::validation::dns1123_subdomain(name) {
        errs.push(invalid_str(&join(path, "name"), name, &msg));
    }
    let k = s(sel, "key");
    if k.is_empty() {
        errs.push(required(&join(path, "key"), ""));
    } else {
        for msg in config_key_msgs(k) {
            errs.push(invalid_str(&join(path, "key"), k, &msg));
        }
    }
}

fn env(path: &str, c: &Value, errs: &mut Errs) {
    for (i, ev) in arr(c, "env").iter().enumerate() {
        let p = idx(path, i);
        let name = s(ev, "name");
        if name.is_empty() {
            errs.push(required(&join(&p, "name"), ""));
        } else {
            for msg in env_var_name_msgs(name) {
                errs.push(invalid_str(&join(&p, "name"), name, &msg));
            }
        }
        let Some(from) = get(ev, "valueFrom") else {
            continue;
        };
        let vp = join(&p, "valueFrom");
        let mut sources = 0;
        if let Some(fr) = get(from, "fieldRef") {
            sources += 1;
            let fp = join(&vp, "fieldRef");
            if s(fr, "apiVersion").is_empty() {
                errs.push(required(&join(&fp, "apiVersion"), ""));
            } else if s(fr, "fieldPath").is_empty() {
                errs.push(required(&join(&fp, "fieldPath"), ""));
            } else {
                let field_path = s(fr, "fieldPath");
                let subscripted = field_path.starts_with("metadata.labels[")
                    || field_path.starts_with("metadata.annotations[")
                    || field_path == "metadata.labels"
                    || field_path == "metadata.annotations";
                if !subscripted && !ENV_FIELD_PATHS.contains(&field_path) {
                    errs.push(not_supported(
                        &join(&fp, "fieldPath"),
                        field_path,
                        ENV_FIELD_PATHS,
                    ));
                }
            }
        }
        if get(from, "resourceFieldRef").is_some() {
            sources += 1;
        }
        if let Some(sel) = get(from, "configMapKeyRef") {
            sources += 1;
            key_selector(&join(&vp, "configMapKeyRef"), sel, errs);
        }
        if let Some(sel) = get(from, "secretKeyRef") {
            sources += 1;
            key_selector(&join(&vp, "secretKeyRef"), sel, errs);
        }
        if sources == 0 {
            errs.push(invalid_str(&vp, "", "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`"));
        } else if !s(ev, "value").is_empty() {
            errs.push(invalid_str(
                &vp,
                "",
                "may not be specified when `value` is not empty",
            ));
        } else if sources > 1 {
            errs.push(invalid_str(
                &vp,
                "",
                "may not have more than one field specified at a time",
            ));
        }
    }
    for (i, ef) in arr(c, "envFrom").iter().enumerate() {
        let p = idx(&path.replace(".env", ".envFrom"), i);
        let prefix = s(ef, "prefix");
        if !prefix.is_empty() {
            for msg in env_var_name_msgs(prefix) {
                errs.push(invalid_str(&join(&p, "prefix"), prefix, &msg));
            }
        }
        let mut sources = 0;
        for k in ["configMapRef", "secretRef"] {
            if let Some(r) = get(ef, k) {
                sources += 1;
                if s(r, "name").is_empty() {
                    errs.push(required(&join(&join(&p, k), "name"), ""));
                }
            }
        }
        let list = path.replace(".env", ".envFrom");
        if sources == 0 {
            errs.push(invalid_str(
                &list,
                "",
                "must specify one of: `configMapRef` or `secretRef`",
            ));
        } else if sources > 1 {
            errs.push(invalid_str(
                &list,
                "",
                "may not have more than one field specified at a time",
            ));
        }
    }
}

fn volume_mounts(path: &str, c: &Value, vols: &BTreeMap<String, bool>, errs: &mut Errs) {
    let privileged = c
        .pointer("/securityContext/privileged")
        .and_then(Value::as_bool)
        == Some(true);
    let mut mount_points = BTreeSet::new();
    for (i, m) in arr(c, "volumeMounts").iter().enumerate() {
        let p = idx(path, i);
        let name = s(m, "name");
        if name.is_empty() {
            errs.push(required(&join(&p, "name"), ""));
        }
        if !vols.contains_key(name) {
            errs.push(not_found(&join(&p, "name"), name));
        }
        let mount_path = s(m, "mountPath");
        if mount_path.is_empty() {
            errs.push(required(&join(&p, "mountPath"), ""));
        }
        if !mount_points.insert(mount_path) {
            errs.push(invalid_str(
                &join(&p, "mountPath"),
                mount_path,
                "must be unique",
            ));
        }
        // Upstream names these paths after the list, not the item.
        let sub = s(m, "subPath");
        if !sub.is_empty() {
            local_descending_path(&join(path, "subPath"), sub, errs);
        }
        let expr = s(m, "subPathExpr");
        if !expr.is_empty() {
            if !sub.is_empty() {
                errs.push(invalid_str(
                    &join(&p, "subPathExpr"),
                    expr,
                    "subPathExpr and subPath are mutually exclusive",
                ));
            }
            local_descending_path(&join(path, "subPathExpr"), expr, errs);
        }
        if let Some(mp) = str_of(m, "mountPropagation") {
            let pp = join(path, "mountPropagation");
            const MODES: &[&str] = &["Bidirectional", "HostToContainer", "None"];
            if !MODES.contains(&mp) {
                errs.push(not_supported(&pp, mp, MODES));
            }
            if mp == "Bidirectional" && !privileged {
                errs.push(forbidden(
                    &pp,
                    "Bidirectional mount propagation is available only to privileged containers",
                ));
            }
        }
    }
    for (i, d) in arr(c, "volumeDevices").iter().enumerate() {
        let p = idx(&path.replace(".volumeMounts", ".volumeDevices"), i);
        let name = s(d, "name");
        if name.is_empty() {
            errs.push(required(&join(&p, "name"), ""));
        }
        match vols.get(name) {
            None => errs.push(not_found(&join(&p, "name"), name)),
            Some(false) => errs.push(invalid_str(&join(&p, "name"), name, "can only use volume source type of PersistentVolumeClaim or Ephemeral for block mode")),
            Some(true) => {}
        }
        if s(d, "devicePath").is_empty() {
            errs.push(required(&join(&p, "devicePath"), ""));
        }
    }
}

fn is_native_resource(name: &str) -> bool {
    !name.contains('/') || name.contains("kubernetes.io/")
}

/// `validateContainerResourceName`.
fn container_resource_name(path: &str, name: &str, errs: &mut Errs) {
    let before = errs.len();
    qualified_name(path, name, errs);
    if errs.len() != before {
        return;
    }
    if !name.contains('/') {
        if !is_standard_resource(name) {
            errs.push(invalid_str(
                path,
                name,
                "must be a standard resource type or fully qualified",
            ));
        }
        let standard = matches!(name, "cpu" | "memory" | "ephemeral-storage")
            || name.starts_with("hugepages-");
        if !standard {
            errs.push(invalid_str(
                path,
                name,
                "must be a standard resource for containers",
            ));
        }
    } else if !is_native_resource(name) && name.starts_with("requests.") {
        errs.push(invalid_str(
            path,
            name,
            "doesn't follow extended resource name standard",
        ));
    }
}

/// `helper.IsStandardResourceName`.
pub fn is_standard_resource(name: &str) -> bool {
    const STANDARD: &[&str] = &[
        "cpu",
        "memory",
        "ephemeral-storage",
        "requests.cpu",
        "requests.memory",
        "requests.ephemeral-storage",
        "limits.cpu",
        "limits.memory",
        "limits.ephemeral-storage",
        "pods",
        "quota",
        "services",
        "replicationcontrollers",
        "resourcequotas",
        "secrets",
        "persistentvolumeclaims",
        "configmaps",
        "services.nodeports",
        "services.loadbalancers",
        "storage",
        "requests.storage",
    ];
    STANDARD.contains(&name)
        || name.starts_with("hugepages-")
        || name.starts_with("requests.hugepages-")
}

fn overcommit_allowed(name: &str) -> bool {
    is_native_resource(name) && !name.starts_with("hugepages-")
}

/// `ValidateContainerResourceRequirements`.
pub fn resources(path: &str, res: Option<&Value>, errs: &mut Errs) {
    let Some(res) = res else { return };
    let lim_path = join(path, "limits");
    let req_path = join(path, "requests");
    let limits = obj(res, "limits");
    let quantity = |p: &str, name: &str, v: &Value, errs: &mut Errs| -> Option<Quantity> {
        let Some(q) = Quantity::parse(v) else {
            errs.push(invalid_str(p, &quantity_text(v), QUANTITY_FORMAT));
            return None;
        };
        if q.is_negative() {
            errs.push(invalid_str(p, &quantity_text(v), NONNEGATIVE));
        }
        if !is_native_resource(name) && !q.is_integer() {
            errs.push(invalid_str(p, &quantity_text(v), "must be an integer"));
        }
        Some(q)
    };
    if let Some(limits) = limits {
        for (name, v) in limits {
            let p = key(&lim_path, name);
            container_resource_name(&p, name, errs);
            quantity(&p, name, v, errs);
        }
    }
    if let Some(requests) = obj(res, "requests") {
        for (name, v) in requests {
            let p = key(&req_path, name);
            container_resource_name(&p, name, errs);
            let Some(q) = quantity(&p, name, v, errs) else {
                continue;
            };
            match limits.and_then(|l| l.get(name)) {
                Some(lv) => {
                    let Some(lq) = Quantity::parse(lv) else {
                        continue;
                    };
                    if q != lq && !overcommit_allowed(name) {
                        errs.push(invalid_str(
                            &req_path,
                            &quantity_text(v),
                            &format!("must be equal to {name} limit of {}", quantity_text(lv)),
                        ));
                    } else if q > lq {
                        errs.push(invalid_str(
                            &req_path,
                            &quantity_text(v),
                            &format!(
                                "must be less than or equal to {name} limit of {}",
                                quantity_text(lv)
                            ),
                        ));
                    }
                }
                None if !overcommit_allowed(name) => {
                    errs.push(required(
                        &lim_path,
                        "Limit must be set for non overcommitable resources",
                    ));
                }
                None => {}
            }
        }
    }
}

fn handler(path: &str, h: &Value, probe: bool, errs: &mut Errs) {
    let kinds: &[&str] = if probe {
        &["exec", "httpGet", "tcpSocket", "grpc"]
    } else {
        &["exec", "httpGet", "tcpSocket", "sleep"]
    };
    let mut count = 0;
    for k in kinds {
        let Some(a) = get(h, k) else { continue };
        let p = join(path, k);
        if count > 0 {
            errs.push(forbidden(&p, "may not specify more than 1 handler type"));
            continue;
        }
        count += 1;
        match *k {
            "exec" => {
                if arr(a, "command").is_empty() {
                    errs.push(required(&join(&p, "command"), ""));
                }
            }
            "httpGet" => {
                if s(a, "path").is_empty() {
                    errs.push(required(&join(&p, "path"), ""));
                }
                port_num_or_name(&join(&p, "port"), get(a, "port"), errs);
                let scheme = s(a, "scheme");
                if scheme != "HTTP" && scheme != "HTTPS" {
                    errs.push(not_supported(
                        &join(&p, "scheme"),
                        scheme,
                        &["HTTP", "HTTPS"],
                    ));
                }
            }
            "tcpSocket" => port_num_or_name(&join(&p, "port"), get(a, "port"), errs),
            "grpc" => {
                let port = int_of(a, "port").unwrap_or(0);
                if !port_num_ok(port) {
                    errs.push(invalid_int(&join(&p, "port"), port, PORT_RANGE));
                }
            }
            _ => {}
        }
    }
    if count == 0 {
        errs.push(required(path, "must specify a handler type"));
    }
}

pub(super) fn probe(path: &str, c: &Value, which: &str, errs: &mut Errs) {
    let Some(pr) = get(c, which) else { return };
    let p = join(path, which);
    handler(&p, pr, true, errs);
    for f in [
        "initialDelaySeconds",
        "timeoutSeconds",
        "periodSeconds",
        "successThreshold",
        "failureThreshold",
    ] {
        nonnegative(&p, pr, f, errs);
    }
    if let Some(t) = int_of(pr, "terminationGracePeriodSeconds") {
        if which == "readinessProbe" {
            errs.push(invalid_int(
                &join(&p, "terminationGracePeriodSeconds"),
                t,
                "must not be set for readinessProbes",
            ));
        } else if t <= 0 {
            errs.push(invalid_int(
                &join(&p, "terminationGracePeriodSeconds"),
                t,
                "must be greater than 0",
            ));
        }
    }
    if which != "readinessProbe" {
        if let Some(st) = int_of(pr, "successThreshold") {
            if st != 1 {
                errs.push(invalid_int(&join(&p, "successThreshold"), st, "must be 1"));
            }
        }
    }
}

pub(super) fn lifecycle(path: &str, c: &Value, errs: &mut Errs) {
    let Some(lc) = get(c, "lifecycle") else {
        return;
    };
    let p = join(path, "lifecycle");
    for k in ["postStart", "preStop"] {
        if let Some(h) = get(lc, k) {
            handler(&join(&p, k), h, false, errs);
        }
    }
}

/// `validateContainerCommon`.
pub(super) fn container_common(
    path: &str,
    c: &Value,
    vols: &BTreeMap<String, bool>,
    is_pod: bool,
    errs: &mut Errs,
) {
    let name = s(c, "name");
    if name.is_empty() {
        errs.push(required(&join(path, "name"), ""));
    } else {
        dns_label(&join(path, "name"), name, errs);
    }
    let image = s(c, "image");
    if image.is_empty() {
        errs.push(required(&join(path, "image"), ""));
    }
    match str_of(c, "terminationMessagePolicy") {
        None | Some("File" | "FallbackToLogsOnError") => {}
        Some("") => errs.push(required(&join(path, "terminationMessagePolicy"), "")),
        Some(other) => errs.push(not_supported(
            &join(path, "terminationMessagePolicy"),
            other,
            &["File", "FallbackToLogsOnError"],
        )),
    }
    container_ports(&join(path, "ports"), c, errs);
    env(&join(path, "env"), c, errs);
    volume_mounts(&join(path, "volumeMounts"), c, vols, errs);
    match str_of(c, "imagePullPolicy") {
        None | Some("Always" | "IfNotPresent" | "Never") => {}
        Some("") => errs.push(required(&join(path, "imagePullPolicy"), "")),
        Some(other) => errs.push(not_supported(
            &join(path, "imagePullPolicy"),
            other,
            &["Always", "IfNotPresent", "Never"],
        )),
    }
    resources(&join(path, "resources"), get(c, "resources"), errs);
    if let Some(sc) = get(c, "securityContext") {
        let sp = join(path, "securityContext");
        for (k, max) in [("runAsUser", 0xffff_ffffi64), ("runAsGroup", 0xffff_ffff)] {
            if let Some(id) = int_of(sc, k) {
                if !(0..=max).contains(&id) {
                    errs.push(invalid_int(
                        &join(&sp, k),
                        id,
                        "must be between 0 and 4294967295, inclusive",
                    ));
                }
            }
        }
        if let Some(pm) = str_of(sc, "procMount") {
            if pm != "Default" && pm != "Unmasked" {
                errs.push(not_supported(
                    &join(&sp, "procMount"),
                    pm,
                    &["Default", "Unmasked"],
                ));
            }
        }
    }
    if is_pod && image.len() != image.trim().len() {
        errs.push(invalid_str(
            &join(path, "image"),
            image,
            "must not have leading or trailing whitespace",
        ));
    }
}

pub(super) fn host_port_conflicts(path: &str, containers: &[Value], errs: &mut Errs) {
    let mut seen = BTreeSet::new();
    for (ci, c) in containers.iter().enumerate() {
        for (pi, port) in arr(c, "ports").iter().enumerate() {
            let hp = int_of(port, "hostPort").unwrap_or(0);
            if hp == 0 {
                continue;
            }
            let k = format!("{}/{}/{hp}", s(port, "protocol"), s(port, "hostIP"));
            if !seen.insert(k.clone()) {
                errs.push(duplicate_str(
                    &join(&idx(&join(&idx(path, ci), "ports"), pi), "hostPort"),
                    &k,
                ));
            }
        }
    }
}
