//! Services and Endpoints as upstream's `pkg/apis/core/validation/validation.go`
//! (`ValidateService`, `validateServicePort`, `validateServiceExternalTrafficPolicy`,
//! `ValidateEndpoints`). `spec.clusterIP(s)` immutability and allocation are the
//! registry's (not repeated here). Endpoint addresses are checked as IPs but not refused
//! for being loopback (`ValidateNonSpecialIP`): this server's own `kubernetes` Endpoints
//! point at 127.0.0.1.

use std::collections::BTreeSet;

use serde_json::Value;

use super::util::*;

fn is_headless(spec: &Value) -> bool {
    s(spec, "clusterIP") == "None"
        || arr(spec, "clusterIPs").first().and_then(Value::as_str) == Some("None")
}

fn service_port_repr(port: &Value) -> String {
    format!(
        "core.ServicePort{{Name:\"\", Protocol:{}, AppProtocol:(*string)(nil), Port:{}, TargetPort:intstr.IntOrString{{Type:0, IntVal:0, StrVal:\"\"}}, NodePort:0}}",
        go_quote(s(port, "protocol")),
        int_of(port, "port").unwrap_or(0)
    )
}

pub fn service(obj: &Value) -> Errs {
    let mut errs = Vec::new();
    let null = Value::Null;
    let spec = get(obj, "spec").unwrap_or(&null);
    let typ = s(spec, "type");
    let headless = is_headless(spec);
    let ports = arr(spec, "ports");
    if ports.is_empty() && !headless && typ != "ExternalName" {
        errs.push(required("spec.ports", ""));
    }
    match typ {
        "LoadBalancer" | "NodePort" if headless => errs.push(invalid_str(
            "spec.clusterIPs[0]",
            "None",
            &format!("may not be set to 'None' for {typ} services"),
        )),
        "ExternalName" => {
            let has_ips = !arr(spec, "clusterIPs").is_empty() || !s(spec, "clusterIP").is_empty();
            if has_ips {
                errs.push(forbidden(
                    "spec.clusterIPs",
                    "may not be set for ExternalName services",
                ));
            }
            if !arr(spec, "ipFamilies").is_empty() {
                errs.push(forbidden(
                    "spec.ipFamilies",
                    "may not be set for ExternalName services",
                ));
            }
            if get(spec, "ipFamilyPolicy").is_some() {
                errs.push(forbidden(
                    "spec.ipFamilyPolicy",
                    "may not be set for ExternalName services",
                ));
            }
            let cname = s(spec, "externalName");
            let cname = cname.strip_suffix('.').unwrap_or(cname);
            if cname.is_empty() {
                errs.push(required("spec.externalName", ""));
            } else {
                dns_subdomain("spec.externalName", cname, &mut errs);
            }
        }
        _ => {}
    }
    let mut names = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        let p = idx("spec.ports", i);
        let name = s(port, "name");
        if ports.len() > 1 && name.is_empty() {
            errs.push(required(&join(&p, "name"), ""));
        } else if !name.is_empty() {
            dns_label(&join(&p, "name"), name, &mut errs);
            if !names.insert(name) {
                errs.push(duplicate_str(&join(&p, "name"), name));
            }
        }
        let num = int_of(port, "port").unwrap_or(0);
        if !port_num_ok(num) {
            errs.push(invalid_int(&join(&p, "port"), num, PORT_RANGE));
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
        // An int 0 is upstream's unset targetPort, defaulted to the port.
        let target = get(port, "targetPort").filter(|t| t.as_i64() != Some(0));
        if target.is_some() || num != 0 {
            port_num_or_name(
                &join(&p, "targetPort"),
                target.or(get(port, "port")),
                &mut errs,
            );
        }
        if let Some(ap) = str_of(port, "appProtocol") {
            qualified_name(&join(&p, "appProtocol"), ap, &mut errs);
        }
    }
    labels("spec.selector", obj_of(spec, "selector"), &mut errs);
    match str_of(spec, "sessionAffinity") {
        None => {}
        Some("") => errs.push(required("spec.sessionAffinity", "")),
        Some("ClientIP") => {
            if let Some(t) = spec
                .pointer("/sessionAffinityConfig/clientIP/timeoutSeconds")
                .and_then(Value::as_i64)
            {
                if t <= 0 || t > 86400 {
                    errs.push(invalid_int(
                        "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
                        t,
                        "must be greater than 0 and less than 86400",
                    ));
                }
            }
        }
        Some("None") => {
            if get(spec, "sessionAffinityConfig").is_some() {
                errs.push(forbidden(
                    "spec.sessionAffinityConfig",
                    "must not be set when session affinity is None",
                ));
            }
        }
        Some(other) => errs.push(not_supported(
            "spec.sessionAffinity",
            other,
            &["ClientIP", "None"],
        )),
    }
    for (i, ip) in arr(spec, "clusterIPs").iter().enumerate() {
        let ip = ip.as_str().unwrap_or_default();
        if ip != "None" && !ip.is_empty() {
            is_valid_ip(&idx("spec.clusterIPs", i), ip, &mut errs);
        }
    }
    if arr(spec, "clusterIPs").is_empty() {
        let ip = s(spec, "clusterIP");
        if ip != "None" && !ip.is_empty() {
            is_valid_ip("spec.clusterIPs[0]", ip, &mut errs);
        }
    }
    for (i, fam) in arr(spec, "ipFamilies").iter().enumerate() {
        let fam = fam.as_str().unwrap_or_default();
        if fam != "IPv4" && fam != "IPv6" {
            errs.push(not_supported(
                &idx("spec.ipFamilies", i),
                fam,
                &["IPv4", "IPv6"],
            ));
        }
    }
    if let Some(pol) = str_of(spec, "ipFamilyPolicy") {
        const POLICIES: &[&str] = &["PreferDualStack", "RequireDualStack", "SingleStack"];
        if !POLICIES.contains(&pol) {
            errs.push(not_supported("spec.ipFamilyPolicy", pol, POLICIES));
        }
    }
    for (i, ip) in arr(spec, "externalIPs").iter().enumerate() {
        let ip = ip.as_str().unwrap_or_default();
        let p = idx("spec.externalIPs", i);
        if is_valid_ip(&p, ip, &mut errs) {
            non_special_ip(&p, ip, &mut errs);
        }
    }
    const TYPES: &[&str] = &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];
    if typ.is_empty() {
        errs.push(required("spec.type", ""));
    } else if !TYPES.contains(&typ) {
        errs.push(not_supported("spec.type", typ, TYPES));
    }
    if typ == "ClusterIP" {
        for (i, port) in ports.iter().enumerate() {
            if int_of(port, "nodePort").unwrap_or(0) != 0 {
                errs.push(forbidden(
                    &join(&idx("spec.ports", i), "nodePort"),
                    "may not be used when `type` is 'ClusterIP'",
                ));
            }
        }
    }
    let mut node_ports = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        let np = int_of(port, "nodePort").unwrap_or(0);
        if np != 0 && !node_ports.insert((s(port, "protocol"), np)) {
            errs.push(crate::status::field::duplicate(
                &join(&idx("spec.ports", i), "nodePort"),
                &Value::from(np),
            ));
        }
    }
    let mut seen = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        if !seen.insert((s(port, "protocol"), int_of(port, "port").unwrap_or(0))) {
            errs.push(duplicate_raw(
                &idx("spec.ports", i),
                &service_port_repr(port),
            ));
        }
    }
    let ranges = arr(spec, "loadBalancerSourceRanges");
    if !ranges.is_empty() {
        let p = "spec.LoadBalancerSourceRanges";
        if typ != "LoadBalancer" {
            errs.push(forbidden(
                p,
                "may only be used when `type` is 'LoadBalancer'",
            ));
        }
        for (i, r) in ranges.iter().enumerate() {
            is_valid_cidr(&idx(p, i), r.as_str().unwrap_or_default().trim(), &mut errs);
        }
    }
    if get(spec, "allocateLoadBalancerNodePorts").is_some() && typ != "LoadBalancer" {
        errs.push(forbidden(
            "spec.allocateLoadBalancerNodePorts",
            "may only be used when `type` is 'LoadBalancer'",
        ));
    }
    let externally =
        matches!(typ, "LoadBalancer" | "NodePort") || !arr(spec, "externalIPs").is_empty();
    match str_of(spec, "externalTrafficPolicy").filter(|p| !p.is_empty()) {
        Some(p) if !externally => errs.push(invalid_str(
            "spec.externalTrafficPolicy",
            p,
            "may only be set for externally-accessible services",
        )),
        Some(p) if p != "Cluster" && p != "Local" => errs.push(not_supported(
            "spec.externalTrafficPolicy",
            p,
            &["Cluster", "Local"],
        )),
        _ => {}
    }
    let needs_health = typ == "LoadBalancer" && s(spec, "externalTrafficPolicy") == "Local";
    let hc = int_of(spec, "healthCheckNodePort").unwrap_or(0);
    if !needs_health && hc != 0 {
        errs.push(invalid_int(
            "spec.healthCheckNodePort",
            hc,
            "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'",
        ));
    } else if needs_health && hc != 0 && !port_num_ok(hc) {
        errs.push(invalid_int("spec.healthCheckNodePort", hc, PORT_RANGE));
    }
    if let Some(itp) = str_of(spec, "internalTrafficPolicy") {
        if itp != "Cluster" && itp != "Local" {
            errs.push(not_supported(
                "spec.internalTrafficPolicy",
                itp,
                &["Cluster", "Local"],
            ));
        }
    }
    if let Some(td) = str_of(spec, "trafficDistribution") {
        if td != "PreferClose" {
            errs.push(not_supported(
                "spec.trafficDistribution",
                td,
                &["PreferClose"],
            ));
        }
    }
    errs
}

fn obj_of<'a>(v: &'a Value, k: &str) -> Option<&'a serde_json::Map<String, Value>> {
    obj(v, k)
}

fn duplicate_raw(path: &str, shown: &str) -> crate::status::StatusCause {
    crate::status::StatusCause {
        cause_type: "FieldValueDuplicate".into(),
        message: format!("Duplicate value: {shown}"),
        field: path.into(),
    }
}

/// `ValidateNonSpecialIP`.
pub fn non_special_ip(path: &str, ip: &str, errs: &mut Errs) {
    let Some(addr) = parse_ip(ip) else { return };
    let (unspecified, loopback, link_local, link_local_mc) = match addr {
        std::net::IpAddr::V4(a) => (
            a.is_unspecified(),
            a.is_loopback(),
            a.is_link_local(),
            a.octets()[..3] == [224, 0, 0],
        ),
        std::net::IpAddr::V6(a) => (
            a.is_unspecified(),
            a.is_loopback(),
            (a.segments()[0] & 0xffc0) == 0xfe80,
            (a.segments()[0] & 0xff0f) == 0xff02,
        ),
    };
    if unspecified {
        errs.push(invalid_str(
            path,
            ip,
            &format!("may not be unspecified ({ip})"),
        ));
    }
    if loopback {
        errs.push(invalid_str(
            path,
            ip,
            "may not be in the loopback range (127.0.0.0/8, ::1/128)",
        ));
    }
    if link_local {
        errs.push(invalid_str(
            path,
            ip,
            "may not be in the link-local range (169.254.0.0/16, fe80::/10)",
        ));
    }
    if link_local_mc {
        errs.push(invalid_str(
            path,
            ip,
            "may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)",
        ));
    }
}

/// `ValidateEndpoints`.
pub fn endpoints(obj: &Value) -> Errs {
    let mut errs = Vec::new();
    for (i, ss) in arr(obj, "subsets").iter().enumerate() {
        let p = idx("subsets", i);
        let (ready, not_ready) = (arr(ss, "addresses"), arr(ss, "notReadyAddresses"));
        if ready.is_empty() && not_ready.is_empty() {
            errs.push(required(
                &p,
                "must specify `addresses` or `notReadyAddresses`",
            ));
        }
        for (list, items) in [("addresses", ready), ("notReadyAddresses", not_ready)] {
            for (j, a) in items.iter().enumerate() {
                let ap = idx(&join(&p, list), j);
                is_valid_ip(&join(&ap, "ip"), s(a, "ip"), &mut errs);
                let host = s(a, "hostname");
                if !host.is_empty() {
                    dns_label(&join(&ap, "hostname"), host, &mut errs);
                }
                if let Some(node) = str_of(a, "nodeName") {
                    dns_subdomain(&join(&ap, "nodeName"), node, &mut errs);
                }
            }
        }
        let ports = arr(ss, "ports");
        for (j, port) in ports.iter().enumerate() {
            let pp = idx(&join(&p, "ports"), j);
            endpoint_port(&pp, port, ports.len() > 1, &mut errs);
        }
    }
    errs
}

pub fn endpoint_port(pp: &str, port: &Value, require_name: bool, errs: &mut Errs) {
    let name = s(port, "name");
    if require_name && name.is_empty() {
        errs.push(required(&join(pp, "name"), ""));
    } else if !name.is_empty() {
        dns_label(&join(pp, "name"), name, errs);
    }
    let num = int_of(port, "port").unwrap_or(0);
    if !port_num_ok(num) {
        errs.push(invalid_int(&join(pp, "port"), num, PORT_RANGE));
    }
    match s(port, "protocol") {
        "" => errs.push(required(&join(pp, "protocol"), "")),
        "TCP" | "UDP" | "SCTP" => {}
        other => errs.push(not_supported(
            &join(pp, "protocol"),
            other,
            &["SCTP", "TCP", "UDP"],
        )),
    }
    if let Some(ap) = str_of(port, "appProtocol") {
        qualified_name(&join(pp, "appProtocol"), ap, errs);
    }
}
