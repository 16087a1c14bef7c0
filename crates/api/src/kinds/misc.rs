//! EndpointSlices (`pkg/apis/discovery/validation`), CertificateSigningRequests
//! (`pkg/apis/certificates/validation`: the request's PEM block, usages, signerName) and
//! admission webhook configurations (`pkg/apis/admissionregistration/validation`: names,
//! clientConfig, sideEffects, admissionReviewVersions, policies, timeouts).

use std::collections::BTreeSet;

use base64::Engine;
use serde_json::Value;

use super::util::*;

pub fn endpoint_slice(obj: &Value, old: Option<&Value>) -> Errs {
    let mut errs = Vec::new();
    let at = s(obj, "addressType");
    match at {
        "" => errs.push(required("addressType", "")),
        "IPv4" | "IPv6" | "FQDN" => {}
        other => errs.push(not_supported(
            "addressType",
            other,
            &["FQDN", "IPv4", "IPv6"],
        )),
    }
    for (i, ep) in arr(obj, "endpoints").iter().enumerate() {
        let p = idx("endpoints", i);
        let ap = join(&p, "addresses");
        let addrs = arr(ep, "addresses");
        if addrs.is_empty() {
            errs.push(required(&ap, "must contain at least 1 address"));
        } else if addrs.len() > 100 {
            errs.push(crate::status::field::too_many(&ap, addrs.len(), 100));
        }
        for (j, a) in addrs.iter().enumerate() {
            let a = a.as_str().unwrap_or_default();
            let aj = idx(&ap, j);
            match at {
                "IPv4" if parse_ip(a).is_none_or(|ip| !ip.is_ipv4()) => {
                    errs.push(invalid_str(&aj, a, "must be a valid IPv4 address"))
                }
                "IPv6" if parse_ip(a).is_none_or(|ip| !ip.is_ipv6()) => {
                    errs.push(invalid_str(&aj, a, "must be a valid IPv6 address"))
                }
                "FQDN" => {
                    let name = a.strip_suffix('.').unwrap_or(a);
                    let msgs = crate::validation::dns1123_subdomain(name);
                    if a.is_empty() {
                        errs.push(required(&aj, ""));
                    } else if !msgs.is_empty() {
                        errs.push(invalid_str(&aj, name, &msgs.join(",")));
                    } else if !name.contains('.') {
                        errs.push(invalid_str(
                            &aj,
                            name,
                            "should be a domain with at least two segments separated by dots",
                        ));
                    }
                }
                _ => {}
            }
        }
        if let Some(h) = str_of(ep, "hostname") {
            dns_label(&join(&p, "hostname"), h, &mut errs);
        }
        if let Some(n) = str_of(ep, "nodeName") {
            dns_subdomain(&join(&p, "nodeName"), n, &mut errs);
        }
    }
    let mut names = BTreeSet::new();
    for (i, port) in arr(obj, "ports").iter().enumerate() {
        let p = idx("ports", i);
        let name = s(port, "name");
        if !name.is_empty() {
            dns_label(&join(&p, "name"), name, &mut errs);
        }
        if !names.insert(name) {
            errs.push(duplicate_str(&join(&p, "name"), name));
        }
        if let Some(proto) = str_of(port, "protocol") {
            if !matches!(proto, "TCP" | "UDP" | "SCTP") {
                errs.push(not_supported(
                    &join(&p, "protocol"),
                    proto,
                    &["SCTP", "TCP", "UDP"],
                ));
            }
        }
        if let Some(ap) = str_of(port, "appProtocol") {
            qualified_name(&join(&p, "appProtocol"), ap, &mut errs);
        }
    }
    if let Some(old) = old {
        if s(old, "addressType") != at {
            errs.push(invalid_str("addressType", at, IMMUTABLE));
        }
    }
    errs
}

const USAGES: &[&str] = &[
    "any",
    "client auth",
    "code signing",
    "content commitment",
    "crl sign",
    "data encipherment",
    "decipher only",
    "digital signature",
    "email protection",
    "encipher only",
    "ipsec end system",
    "ipsec tunnel",
    "ipsec user",
    "key agreement",
    "key encipherment",
    "microsoft sgc",
    "netscape sgc",
    "ocsp signing",
    "s/mime",
    "server auth",
    "signing",
    "timestamping",
    "cert sign",
];

/// `ValidateSignerName`.
pub fn signer_name(path: &str, name: &str, errs: &mut Errs) {
    if name.is_empty() {
        errs.push(required(path, ""));
        return;
    }
    let Some((domain, rest)) = name.split_once('/').filter(|(_, r)| !r.contains('/')) else {
        errs.push(invalid_str(
            path,
            name,
            "must be a fully qualified domain and path of the form 'example.com/signer-name'",
        ));
        return;
    };
    if domain.len() > 253 {
        errs.push(crate::status::field::too_long(path, 253));
    }
    let labels: Vec<&str> = domain.split('.').collect();
    for l in &labels {
        let msgs = crate::validation::dns1123_label(l);
        if !msgs.is_empty() {
            for m in msgs {
                errs.push(invalid_str(
                    path,
                    domain,
                    &format!("validating label {}: {m}", go_quote(l)),
                ));
            }
            break;
        }
    }
    if labels.len() < 2 {
        errs.push(invalid_str(
            path,
            domain,
            "should be a domain with at least two segments separated by dots",
        ));
    }
    if rest.len() > 253 + 63 + 1 {
        errs.push(crate::status::field::too_long(path, 253 + 63 + 1));
    }
    for m in crate::validation::dns1123_subdomain(rest) {
        errs.push(invalid_str(path, rest, &m));
    }
}

pub fn certificate_signing_request(obj: &Value) -> Errs {
    let mut errs = Vec::new();
    let null = Value::Null;
    let spec = get(obj, "spec").unwrap_or(&null);
    let request = str_of(spec, "request")
        .and_then(|r| base64::engine::general_purpose::STANDARD.decode(r).ok())
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&request);
    if !text
        .trim_start()
        .starts_with("-----BEGIN CERTIFICATE REQUEST-----")
    {
        errs.push(invalid_raw(
            "spec.request",
            "[]uint8{...}",
            "PEM block type must be CERTIFICATE REQUEST",
        ));
    }
    let usages = arr(spec, "usages");
    if usages.is_empty() {
        errs.push(required("spec.usages", ""));
    }
    let mut seen = BTreeSet::new();
    for (i, u) in usages.iter().enumerate() {
        let u = u.as_str().unwrap_or_default();
        let p = idx("spec.usages", i);
        if !USAGES.contains(&u) {
            let mut sorted = USAGES.to_vec();
            sorted.sort_unstable();
            errs.push(not_supported(&p, u, &sorted));
        }
        if !seen.insert(u) {
            errs.push(duplicate_str(&p, u));
        }
    }
    signer_name("spec.signerName", s(spec, "signerName"), &mut errs);
    if let Some(secs) = int_of(spec, "expirationSeconds") {
        if secs < 600 {
            errs.push(invalid_int(
                "spec.expirationSeconds",
                secs,
                "may not specify a duration less than 600 seconds (10 minutes)",
            ));
        }
    }
    errs
}

fn webhook(
    path: &str,
    hook: &Value,
    mutating: bool,
    names: &mut BTreeSet<String>,
    errs: &mut Errs,
) {
    let name = s(hook, "name");
    let np = join(path, "name");
    if name.is_empty() {
        errs.push(required(&np, ""));
    } else {
        let msgs = crate::validation::dns1123_subdomain(name);
        if !msgs.is_empty() {
            errs.push(invalid_str(&np, name, &msgs.join(",")));
        } else if name.split('.').count() < 3 {
            errs.push(invalid_str(
                &np,
                name,
                "should be a domain with at least three segments separated by dots",
            ));
        }
    }
    if !name.is_empty() && !names.insert(name.to_string()) {
        errs.push(duplicate_str(&np, name));
    }
    match str_of(hook, "sideEffects") {
        None => errs.push(required(
            &join(path, "sideEffects"),
            "must specify one of None, NoneOnDryRun",
        )),
        Some("None" | "NoneOnDryRun") => {}
        Some(other) => errs.push(not_supported(
            &join(path, "sideEffects"),
            other,
            &["None", "NoneOnDryRun"],
        )),
    }
    let versions = arr(hook, "admissionReviewVersions");
    if versions.is_empty() {
        errs.push(required(
            &join(path, "admissionReviewVersions"),
            "must specify one of v1, v1beta1",
        ));
    } else if !versions
        .iter()
        .any(|v| matches!(v.as_str(), Some("v1" | "v1beta1")))
    {
        errs.push(invalid_raw(
            &join(path, "admissionReviewVersions"),
            &go_string_slice(versions),
            "must include at least one of v1, v1beta1",
        ));
    }
    if let Some(fp) = str_of(hook, "failurePolicy") {
        if fp != "Ignore" && fp != "Fail" {
            errs.push(not_supported(
                &join(path, "failurePolicy"),
                fp,
                &["Fail", "Ignore"],
            ));
        }
    }
    if let Some(mp) = str_of(hook, "matchPolicy") {
        if mp != "Exact" && mp != "Equivalent" {
            errs.push(not_supported(
                &join(path, "matchPolicy"),
                mp,
                &["Equivalent", "Exact"],
            ));
        }
    }
    if mutating {
        if let Some(rp) = str_of(hook, "reinvocationPolicy") {
            if rp != "Never" && rp != "IfNeeded" {
                errs.push(not_supported(
                    &join(path, "reinvocationPolicy"),
                    rp,
                    &["IfNeeded", "Never"],
                ));
            }
        }
    }
    if let Some(t) = int_of(hook, "timeoutSeconds") {
        if !(1..=30).contains(&t) {
            errs.push(invalid_int(
                &join(path, "timeoutSeconds"),
                t,
                "the timeout value must be between 1 and 30 seconds",
            ));
        }
    }
    for (i, rule) in arr(hook, "rules").iter().enumerate() {
        super::admission_policy::rule_with_operations(&idx(&join(path, "rules"), i), rule, errs);
    }
    super::admission_policy::match_conditions(
        &join(path, "matchConditions"),
        arr(hook, "matchConditions"),
        &super::admission_policy::match_condition_env(),
        errs,
    );
    label_selector(
        &join(path, "namespaceSelector"),
        get(hook, "namespaceSelector"),
        errs,
    );
    label_selector(
        &join(path, "objectSelector"),
        get(hook, "objectSelector"),
        errs,
    );
    let null = Value::Null;
    let cc = get(hook, "clientConfig").unwrap_or(&null);
    let cp = join(path, "clientConfig");
    match (get(cc, "url"), get(cc, "service")) {
        (Some(_), Some(_)) | (None, None) => {
            errs.push(required(&cp, "exactly one of url or service is required"))
        }
        (Some(url), None) => {
            let url = url.as_str().unwrap_or_default();
            let up = join(&cp, "url");
            if !url.starts_with("https://") {
                errs.push(invalid_str(
                    &up,
                    url,
                    "'https' is the only allowed URL scheme",
                ));
            }
        }
        (None, Some(svc)) => {
            let sp = join(&cp, "service");
            if s(svc, "name").is_empty() {
                errs.push(required(&join(&sp, "name"), "service name is required"));
            }
            if s(svc, "namespace").is_empty() {
                errs.push(required(
                    &join(&sp, "namespace"),
                    "service namespace is required",
                ));
            }
            if let Some(port) = int_of(svc, "port") {
                if !port_num_ok(port) {
                    errs.push(invalid_int(
                        &join(&sp, "port"),
                        port,
                        "port is not valid: must be between 1 and 65535, inclusive",
                    ));
                }
            }
            if let Some(p) = str_of(svc, "path") {
                if !p.starts_with('/') {
                    errs.push(invalid_str(&join(&sp, "path"), p, "must start with a '/'"));
                }
            }
        }
    }
}

pub fn webhook_configuration(obj: &Value, mutating: bool) -> Errs {
    let mut errs = Vec::new();
    let mut names = BTreeSet::new();
    for (i, hook) in arr(obj, "webhooks").iter().enumerate() {
        webhook(&idx("webhooks", i), hook, mutating, &mut names, &mut errs);
    }
    errs
}
