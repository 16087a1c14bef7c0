//! Ingresses, IngressClasses and NetworkPolicies as upstream's
//! `pkg/apis/networking/validation/validation.go` (`ValidateIngressSpec`,
//! `validateHTTPIngressPath`, `validateIngressBackend`, `ValidateIngressClass`,
//! `ValidateNetworkPolicySpec`).

use serde_json::Value;

use super::util::*;

const PATH_TYPES: &[&str] = &["Exact", "ImplementationSpecific", "Prefix"];

fn backend(path: &str, b: &Value, errs: &mut Errs) {
    let (res, svc) = (get(b, "resource"), get(b, "service"));
    match (res, svc) {
        (Some(_), Some(_)) => errs.push(invalid_str(
            path,
            "",
            "cannot set both resource and service backends",
        )),
        (Some(r), None) => {
            let p = join(path, "resource");
            if s(r, "kind").is_empty() {
                errs.push(required(&join(&p, "kind"), ""));
            }
            if s(r, "name").is_empty() {
                errs.push(required(&join(&p, "name"), ""));
            }
        }
        (None, Some(svc)) => {
            let name = s(svc, "name");
            if name.is_empty() {
                errs.push(required(&join(path, "service.name"), ""));
            } else {
                for msg in crate::validation::dns1035_label(name) {
                    errs.push(invalid_str(&join(path, "service.name"), name, &msg));
                }
            }
            let null = Value::Null;
            let port = get(svc, "port").unwrap_or(&null);
            let pname = s(port, "name");
            let pnum = int_of(port, "number").unwrap_or(0);
            if !pname.is_empty() && pnum != 0 {
                errs.push(invalid_str(
                    path,
                    "",
                    "cannot set both port name & port number",
                ));
            } else if !pname.is_empty() {
                for msg in port_name_msgs(pname) {
                    errs.push(invalid_str(&join(path, "service.port.name"), pname, &msg));
                }
            } else if pnum != 0 {
                if !port_num_ok(pnum) {
                    errs.push(invalid_int(
                        &join(path, "service.port.number"),
                        pnum,
                        PORT_RANGE,
                    ));
                }
            } else {
                errs.push(required(path, "port name or number is required"));
            }
        }
        (None, None) => errs.push(invalid_str(
            path,
            "",
            "resource or service backend is required",
        )),
    }
}

fn http_path(path: &str, hp: &Value, errs: &mut Errs) {
    let p = s(hp, "path");
    match str_of(hp, "pathType") {
        None => errs.push(required(
            &join(path, "pathType"),
            "pathType must be specified",
        )),
        Some("Exact" | "Prefix") => {
            if !p.starts_with('/') {
                errs.push(invalid_str(
                    &join(path, "path"),
                    p,
                    "must be an absolute path",
                ));
            }
            if !p.is_empty() {
                for seq in ["//", "/./", "/../", "%2f", "%2F"] {
                    if p.contains(seq) {
                        errs.push(invalid_str(
                            &join(path, "path"),
                            p,
                            &format!("must not contain '{seq}'"),
                        ));
                    }
                }
                for suffix in ["/..", "/."] {
                    if p.ends_with(suffix) {
                        errs.push(invalid_str(
                            &join(path, "path"),
                            p,
                            &format!("cannot end with '{suffix}'"),
                        ));
                    }
                }
            }
        }
        Some("ImplementationSpecific") => {
            if !p.is_empty() && !p.starts_with('/') {
                errs.push(invalid_str(
                    &join(path, "path"),
                    p,
                    "must be an absolute path",
                ));
            }
        }
        Some(other) => errs.push(not_supported(&join(path, "pathType"), other, PATH_TYPES)),
    }
    match get(hp, "backend") {
        Some(b) => backend(&join(path, "backend"), b, errs),
        None => backend(&join(path, "backend"), &Value::Null, errs),
    }
}

pub fn ingress(obj: &Value) -> Errs {
    let mut errs = Vec::new();
    let null = Value::Null;
    let spec = get(obj, "spec").unwrap_or(&null);
    let rules = arr(spec, "rules");
    let default_backend = get(spec, "defaultBackend");
    if rules.is_empty() && default_backend.is_none() {
        errs.push(invalid_raw(
            "spec",
            "[]networking.IngressRule(nil)",
            "either `defaultBackend` or `rules` must be specified",
        ));
    }
    if let Some(b) = default_backend {
        backend("spec.defaultBackend", b, &mut errs);
    }
    for (i, rule) in rules.iter().enumerate() {
        let p = idx("spec.rules", i);
        let host = s(rule, "host");
        if !host.is_empty() {
            if parse_ip(host).is_some() {
                errs.push(invalid_str(
                    &join(&p, "host"),
                    host,
                    "must be a DNS name, not an IP address",
                ));
            }
            if host.contains('*') {
                let ok = host.strip_prefix("*.").is_some_and(|rest| {
                    crate::validation::dns1123_subdomain(rest).is_empty() && host.len() <= 253
                });
                if !ok {
                    errs.push(invalid_str(&join(&p, "host"), host, "a wildcard DNS-1123 subdomain must start with '*.', followed by a valid DNS subdomain, which must consist of lower case alphanumeric characters, '-' or '.' and end with an alphanumeric character (e.g. '*.example.com', regex used for validation is '\\*\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"));
                }
            } else {
                dns_subdomain(&join(&p, "host"), host, &mut errs);
            }
        }
        if let Some(http) = get(rule, "http") {
            let hp = join(&p, "http.paths");
            let paths = arr(http, "paths");
            if paths.is_empty() {
                errs.push(required(&hp, ""));
            }
            for (j, path) in paths.iter().enumerate() {
                http_path(&idx(&hp, j), path, &mut errs);
            }
        }
    }
    for (i, tls) in arr(spec, "tls").iter().enumerate() {
        for (j, h) in arr(tls, "hosts").iter().enumerate() {
            let h = h.as_str().unwrap_or_default();
            let hp = idx(&join(&idx("spec.tls", i), "hosts"), j);
            if h.contains('*') {
                if !h
                    .strip_prefix("*.")
                    .is_some_and(|r| crate::validation::dns1123_subdomain(r).is_empty())
                {
                    errs.push(invalid_str(&hp, h, "a wildcard DNS-1123 subdomain must start with '*.', followed by a valid DNS subdomain, which must consist of lower case alphanumeric characters, '-' or '.' and end with an alphanumeric character (e.g. '*.example.com', regex used for validation is '\\*\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"));
                }
            } else {
                dns_subdomain(&hp, h, &mut errs);
            }
        }
    }
    if let Some(class) = str_of(spec, "ingressClassName") {
        dns_subdomain("spec.ingressClassName", class, &mut errs);
    }
    errs
}

pub fn ingress_class(obj: &Value, old: Option<&Value>) -> Errs {
    let mut errs = Vec::new();
    let controller = obj
        .pointer("/spec/controller")
        .and_then(Value::as_str)
        .unwrap_or("");
    let p = "spec.controller";
    if controller.len() > 250 {
        errs.push(crate::status::field::too_long(p, 250));
    }
    if controller.is_empty() {
        errs.push(required(p, ""));
    } else {
        match controller.split_once('/') {
            Some((host, rest)) if !host.is_empty() && !rest.is_empty() => {
                dns_subdomain(p, host, &mut errs);
            }
            _ => errs.push(invalid_str(
                p,
                controller,
                "must be a domain-prefixed path (such as \"acme.io/foo\")",
            )),
        }
    }
    if let Some(old) = old {
        let was = old
            .pointer("/spec/controller")
            .and_then(Value::as_str)
            .unwrap_or("");
        if was != controller {
            errs.push(invalid_str(p, controller, IMMUTABLE));
        }
    }
    errs
}

fn np_port(path: &str, port: &Value, errs: &mut Errs) {
    if let Some(proto) = str_of(port, "protocol") {
        if !matches!(proto, "TCP" | "UDP" | "SCTP") {
            errs.push(not_supported(
                &join(path, "protocol"),
                proto,
                &["TCP", "UDP", "SCTP"],
            ));
        }
    }
    match get(port, "port") {
        Some(Value::String(name)) => {
            for msg in port_name_msgs(name) {
                errs.push(invalid_str(&join(path, "port"), name, &msg));
            }
            if get(port, "endPort").is_some() {
                errs.push(forbidden(
                    &join(path, "endPort"),
                    "may not be specified when `port` is non-numeric",
                ));
            }
        }
        Some(n) => {
            let n = n.as_i64().unwrap_or(0);
            if !port_num_ok(n) {
                errs.push(invalid_int(&join(path, "port"), n, PORT_RANGE));
            }
            if let Some(end) = int_of(port, "endPort") {
                if end < n {
                    errs.push(invalid_int(
                        &join(path, "endPort"),
                        end,
                        "must be greater than or equal to `port`",
                    ));
                }
                if !port_num_ok(end) {
                    errs.push(invalid_int(&join(path, "endPort"), end, PORT_RANGE));
                }
            }
        }
        None => {
            if get(port, "endPort").is_some() {
                errs.push(required(
                    &join(path, "port"),
                    "must be specified when `endPort` is specified",
                ));
            }
        }
    }
}

fn np_peer(path: &str, peer: &Value, errs: &mut Errs) {
    let mut n = 0;
    if let Some(sel) = get(peer, "podSelector") {
        n += 1;
        label_selector(&join(path, "podSelector"), Some(sel), errs);
    }
    if let Some(sel) = get(peer, "namespaceSelector") {
        n += 1;
        label_selector(&join(path, "namespaceSelector"), Some(sel), errs);
    }
    if let Some(block) = get(peer, "ipBlock") {
        n += 1;
        let p = join(path, "ipBlock");
        let cidr = s(block, "cidr");
        if cidr.is_empty() {
            errs.push(required(&join(&p, "cidr"), ""));
        } else if is_valid_cidr(&join(&p, "cidr"), cidr, errs) {
            let parent = parse_cidr(cidr);
            for (i, ex) in arr(block, "except").iter().enumerate() {
                let ex = ex.as_str().unwrap_or_default();
                let ep = idx(&join(&p, "except"), i);
                if !is_valid_cidr(&ep, ex, errs) {
                    continue;
                }
                let strict = match (parent, parse_cidr(ex)) {
                    (Some((pip, pbits)), Some((eip, ebits))) => {
                        ebits > pbits && same_prefix(pip, eip, pbits)
                    }
                    _ => false,
                };
                if !strict {
                    errs.push(invalid_str(&ep, ex, "must be a strict subset of `cidr`"));
                }
            }
        }
    }
    if n == 0 {
        errs.push(required(path, "must specify a peer"));
    } else if n > 1 && get(peer, "ipBlock").is_some() {
        errs.push(forbidden(
            path,
            "may not specify both ipBlock and another peer",
        ));
    }
}

fn same_prefix(a: std::net::IpAddr, b: std::net::IpAddr, bits: u8) -> bool {
    let to_u128 = |ip: std::net::IpAddr| match ip {
        std::net::IpAddr::V4(v) => (u128::from(u32::from(v)) << 96, true),
        std::net::IpAddr::V6(v) => (u128::from(v), false),
    };
    let ((x, x4), (y, y4)) = (to_u128(a), to_u128(b));
    if x4 != y4 {
        return false;
    }
    if bits == 0 {
        return true;
    }
    let shift = 128 - u32::from(bits);
    (x >> shift) == (y >> shift)
}

pub fn network_policy(obj: &Value) -> Errs {
    let mut errs = Vec::new();
    let null = Value::Null;
    let spec = get(obj, "spec").unwrap_or(&null);
    label_selector("spec.podSelector", get(spec, "podSelector"), &mut errs);
    for (dir, peers_key) in [("ingress", "from"), ("egress", "to")] {
        for (i, rule) in arr(spec, dir).iter().enumerate() {
            let p = idx(&join("spec", dir), i);
            for (j, port) in arr(rule, "ports").iter().enumerate() {
                np_port(&idx(&join(&p, "ports"), j), port, &mut errs);
            }
            for (j, peer) in arr(rule, peers_key).iter().enumerate() {
                np_peer(&idx(&join(&p, peers_key), j), peer, &mut errs);
            }
        }
    }
    let types = arr(spec, "policyTypes");
    if types.len() > 2 {
        let shown: Vec<String> = types
            .iter()
            .map(|t| go_quote(t.as_str().unwrap_or_default()))
            .collect();
        errs.push(invalid_raw(
            "spec.policyTypes",
            &format!("[]networking.PolicyType{{{}}}", shown.join(", ")),
            "may not specify more than two policyTypes",
        ));
        return errs;
    }
    for (i, t) in types.iter().enumerate() {
        let t = t.as_str().unwrap_or_default();
        if t != "Ingress" && t != "Egress" {
            errs.push(not_supported(
                &idx("spec.policyTypes", i),
                t,
                &["Ingress", "Egress"],
            ));
        }
    }
    errs
}
