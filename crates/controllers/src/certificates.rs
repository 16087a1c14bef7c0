//! The CertificateSigningRequest controllers (upstream `pkg/controller/certificates`):
//! [`approver`] (csrapproving: SubjectAccessReview-gated auto-approval of kubelet client
//! certificates), [`signer`] (csrsigning: the `kubernetes.io/*` signers backed by
//! `--cluster-signing-cert-file`/`--cluster-signing-key-file`, with [`authority`] as the
//! local CA), and [`cleaner`] (csrcleaner: garbage collection of old requests).
//!
//! This module holds what they share, as upstream's `certificates` package and
//! `pkg/apis/certificates/helpers.go` do: the `CertificateController` loop (CSR
//! informer → queue → a handler per request that has no certificate yet), the
//! condition helpers, CSR parsing, and the kubelet client/serving request checks.

pub mod approver;
pub mod authority;
pub mod cleaner;
pub mod signer;

use std::collections::BTreeSet;
use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;

use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestCondition,
};
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer;

use crate::context::ControllerContext;
use crate::error::Error;
use crate::informer::{key_of, Notification};
use crate::workqueue::WorkQueue;

/// `kubernetes.io/kube-apiserver-client`.
pub const KUBE_APISERVER_CLIENT: &str = "kubernetes.io/kube-apiserver-client";
/// `kubernetes.io/kube-apiserver-client-kubelet`.
pub const KUBE_APISERVER_CLIENT_KUBELET: &str = "kubernetes.io/kube-apiserver-client-kubelet";
/// `kubernetes.io/kubelet-serving`.
pub const KUBELET_SERVING: &str = "kubernetes.io/kubelet-serving";
/// `kubernetes.io/legacy-unknown` (certificates.k8s.io/v1beta1 only).
pub const LEGACY_UNKNOWN: &str = "kubernetes.io/legacy-unknown";

/// What a handler decided about one request.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing more to do until the request changes.
    Done,
    /// Try again later with backoff, without alarm (upstream's `IgnorableError`, e.g. a
    /// SubjectAccessReview that did not allow approval yet).
    Retry(String),
}

/// Runs upstream's `CertificateController`: every added or updated CSR is queued by
/// name; a worker hands the request to `handle` unless it already carries a
/// certificate; errors (and [`Outcome::Retry`]) are retried with the queue's backoff.
pub(crate) fn run_certificate_controller<H, Fut>(ctx: ControllerContext, workers: usize, handle: H)
where
    H: Fn(CertificateSigningRequest) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Outcome, Error>> + Send + 'static,
{
    let informer = ctx.informers.get::<CertificateSigningRequest>();
    let store = informer.store();
    let queue = WorkQueue::new(ctx.name);
    {
        let queue = queue.clone();
        informer.add_handler(move |n| match n {
            Notification::Add(c) | Notification::Update { new: c, .. } => queue.add(key_of(&**c)),
            Notification::Delete(c) => queue.add(key_of(&**c)),
        });
    }
    let mut stop = ctx.stop.clone();
    let handle = Arc::new(handle);
    let name = ctx.name;
    tokio::spawn(async move {
        tokio::select! {
            _ = informer.wait_synced() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        tracing::info!(controller = name, "starting certificate controller");
        let mut tasks = Vec::new();
        for _ in 0..workers.max(1) {
            let queue = queue.clone();
            let store = store.clone();
            let handle = handle.clone();
            tasks.push(tokio::spawn(async move {
                while let Some(key) = queue.get().await {
                    let result = match store.get_key(&key) {
                        // Deleted, or already issued: nothing to do.
                        None => Ok(Outcome::Done),
                        Some(csr) if has_certificate(&csr) => Ok(Outcome::Done),
                        Some(csr) => handle((*csr).clone()).await,
                    };
                    match result {
                        Ok(Outcome::Done) => queue.forget(&key),
                        Ok(Outcome::Retry(why)) => {
                            tracing::debug!(controller = name, csr = %key, reason = %why, "will retry");
                            queue.add_rate_limited(key.clone());
                        }
                        Err(e) => {
                            tracing::warn!(controller = name, csr = %key, error = %e, "sync failed; will retry");
                            queue.add_rate_limited(key.clone());
                        }
                    }
                    queue.done(&key);
                }
            }));
        }
        let _ = stop.wait_for(|s| *s).await;
        queue.shut_down();
        for t in tasks {
            let _ = t.await;
        }
        tracing::info!(controller = name, "shutting down certificate controller");
    });
}

/// Whether `status.certificate` is set (kubectl's "Issued").
pub fn has_certificate(csr: &CertificateSigningRequest) -> bool {
    csr.status
        .as_ref()
        .and_then(|s| s.certificate.as_ref())
        .is_some_and(|c| !c.0.is_empty())
}

/// The request's conditions.
pub fn conditions(csr: &CertificateSigningRequest) -> &[CertificateSigningRequestCondition] {
    csr.status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default()
}

/// Upstream's `GetCertApprovalCondition`: (approved, denied).
pub fn approval_state(csr: &CertificateSigningRequest) -> (bool, bool) {
    let mut approved = false;
    let mut denied = false;
    for c in conditions(csr) {
        match c.type_.as_str() {
            "Approved" => approved = true,
            "Denied" => denied = true,
            _ => {}
        }
    }
    (approved, denied)
}

/// Upstream's `IsCertificateRequestApproved`: approved and not denied.
pub fn is_approved(csr: &CertificateSigningRequest) -> bool {
    let (approved, denied) = approval_state(csr);
    approved && !denied
}

/// Upstream's `HasTrueCondition`.
pub fn has_true_condition(csr: &CertificateSigningRequest, type_: &str) -> bool {
    conditions(csr)
        .iter()
        .any(|c| c.type_ == type_ && (c.status.is_empty() || c.status == "True"))
}

/// The request's `spec.usages` as a set.
pub fn usages(csr: &CertificateSigningRequest) -> BTreeSet<String> {
    csr.spec.usages.iter().flatten().cloned().collect()
}

/// What the controllers need of a PKCS#10 request (Go's `x509.CertificateRequest`).
#[derive(Debug, Clone)]
pub struct ParsedCsr {
    /// The whole request, DER.
    pub der: Vec<u8>,
    /// The subject Name, DER, copied into the certificate unchanged.
    pub subject_der: Vec<u8>,
    /// The SubjectPublicKeyInfo, DER.
    pub spki_der: Vec<u8>,
    /// The subject's (last) common name, "" if none.
    pub common_name: String,
    /// The subject's organizations, in order.
    pub organizations: Vec<String>,
    pub dns_names: Vec<String>,
    pub emails: Vec<String>,
    pub ip_addresses: Vec<IpAddr>,
    pub uris: Vec<String>,
}

impl ParsedCsr {
    /// Upstream's `ParseCSR`: the first PEM block must be a `CERTIFICATE REQUEST`.
    pub fn parse(pem: &[u8]) -> Result<ParsedCsr, String> {
        let wrong = || "PEM block type must be CERTIFICATE REQUEST".to_string();
        let (_, block) = x509_parser::pem::parse_x509_pem(pem).map_err(|_| wrong())?;
        if block.label != "CERTIFICATE REQUEST" {
            return Err(wrong());
        }
        let der = block.contents;
        let (_, req) = x509_parser::certification_request::X509CertificationRequest::from_der(&der)
            .map_err(|e| format!("x509: malformed certificate request: {e}"))?;
        let info = &req.certification_request_info;
        let subject = &info.subject;
        let common_name = subject
            .iter_common_name()
            .filter_map(|a| a.as_str().ok())
            .last()
            .unwrap_or_default()
            .to_string();
        let organizations = subject
            .iter_organization()
            .filter_map(|a| a.as_str().ok())
            .map(str::to_string)
            .collect();
        let mut parsed = ParsedCsr {
            der: der.clone(),
            subject_der: subject.as_raw().to_vec(),
            spki_der: info.subject_pki.raw.to_vec(),
            common_name,
            organizations,
            dns_names: Vec::new(),
            emails: Vec::new(),
            ip_addresses: Vec::new(),
            uris: Vec::new(),
        };
        for ext in req.requested_extensions().into_iter().flatten() {
            let ParsedExtension::SubjectAlternativeName(san) = ext else {
                continue;
            };
            for name in &san.general_names {
                match name {
                    GeneralName::DNSName(d) => parsed.dns_names.push((*d).to_string()),
                    GeneralName::RFC822Name(e) => parsed.emails.push((*e).to_string()),
                    GeneralName::URI(u) => parsed.uris.push((*u).to_string()),
                    GeneralName::IPAddress(b) => {
                        if let Ok(v4) = <[u8; 4]>::try_from(*b) {
                            parsed.ip_addresses.push(IpAddr::from(v4));
                        } else if let Ok(v6) = <[u8; 16]>::try_from(*b) {
                            parsed.ip_addresses.push(IpAddr::from(v6));
                        } else {
                            return Err(format!(
                                "x509: certificate request contained IP address of length {}",
                                b.len()
                            ));
                        }
                    }
                    _ => {}
                }
            }
        }
        Ok(parsed)
    }

    /// Go's `CheckSignature`: the request is signed by the key it carries.
    pub fn check_signature(&self) -> Result<(), String> {
        let (_, req) =
            x509_parser::certification_request::X509CertificationRequest::from_der(&self.der)
                .map_err(|e| e.to_string())?;
        req.verify_signature().map_err(|e| match e {
            x509_parser::error::X509Error::SignatureUnsupportedAlgorithm => {
                "x509: cannot verify signature: algorithm unimplemented".to_string()
            }
            _ => "x509: ECDSA verification failure or invalid signature".to_string(),
        })
    }
}

/// Go's `sets.String.List()` formatting of a usage set: `[a b c]`.
fn go_list(items: &[&str]) -> String {
    let mut v = items.to_vec();
    v.sort_unstable();
    format!("[{}]", v.join(" "))
}

fn set_of(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

const KUBELET_CLIENT_USAGES: &[&str] = &["digital signature", "key encipherment", "client auth"];
const KUBELET_CLIENT_USAGES_NO_RSA: &[&str] = &["digital signature", "client auth"];
const KUBELET_SERVING_USAGES: &[&str] = &["digital signature", "key encipherment", "server auth"];
const KUBELET_SERVING_USAGES_NO_RSA: &[&str] = &["digital signature", "server auth"];

/// Upstream's `ValidateKubeletClientCSR`: O exactly `[system:nodes]`, no SANs, CN
/// `system:node:*`, usages {digital signature, (key encipherment,) client auth}.
pub fn validate_kubelet_client(req: &ParsedCsr, usages: &BTreeSet<String>) -> Result<(), String> {
    if req.organizations != ["system:nodes"] {
        return Err("subject organization is not system:nodes".into());
    }
    if !req.dns_names.is_empty() {
        return Err("DNS subjectAltNames are not allowed".into());
    }
    if !req.emails.is_empty() {
        return Err("Email subjectAltNames are not allowed".into());
    }
    if !req.ip_addresses.is_empty() {
        return Err("IP subjectAltNames are not allowed".into());
    }
    if !req.uris.is_empty() {
        return Err("URI subjectAltNames are not allowed".into());
    }
    if !req.common_name.starts_with("system:node:") {
        return Err("subject common name does not begin with system:node:".into());
    }
    if *usages != set_of(KUBELET_CLIENT_USAGES) && *usages != set_of(KUBELET_CLIENT_USAGES_NO_RSA) {
        return Err(format!(
            "usages did not match {}",
            go_list(KUBELET_CLIENT_USAGES)
        ));
    }
    Ok(())
}

/// Upstream's `ValidateKubeletServingCSR`: O exactly `[system:nodes]`, at least one DNS
/// or IP SAN and no email/URI SANs, usages {digital signature, (key encipherment,)
/// server auth}, CN `system:node:*`.
pub fn validate_kubelet_serving(req: &ParsedCsr, usages: &BTreeSet<String>) -> Result<(), String> {
    if req.organizations != ["system:nodes"] {
        return Err("subject organization is not system:nodes".into());
    }
    if req.dns_names.is_empty() && req.ip_addresses.is_empty() {
        return Err("DNS or IP subjectAltName is required".into());
    }
    if !req.emails.is_empty() {
        return Err("Email subjectAltNames are not allowed".into());
    }
    if !req.uris.is_empty() {
        return Err("URI subjectAltNames are not allowed".into());
    }
    if *usages != set_of(KUBELET_SERVING_USAGES) && *usages != set_of(KUBELET_SERVING_USAGES_NO_RSA)
    {
        return Err(format!(
            "usages did not match {}",
            go_list(KUBELET_SERVING_USAGES)
        ));
    }
    if !req.common_name.starts_with("system:node:") {
        return Err("subject common name does not begin with system:node:".into());
    }
    Ok(())
}

/// The signer's `validAPIServerClientUsages`: only digital signature, key encipherment
/// and (required) client auth. Usages are checked in the request's order, as upstream.
pub fn validate_apiserver_client(usages: &[String]) -> Result<(), String> {
    let mut client_auth = false;
    for u in usages {
        match u.as_str() {
            "digital signature" | "key encipherment" => {}
            "client auth" => client_auth = true,
            other => return Err(format!("invalid usage for client certificate: {other}")),
        }
    }
    if !client_auth {
        return Err("missing required usage for client certificate: client auth".into());
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
pub(crate) mod tests {
    use super::*;

    /// A PEM CSR for `cn`/`orgs` with `sans` (DNS names or IPs), made with rcgen.
    pub(crate) fn csr_pem(cn: &str, orgs: &[&str], sans: &[&str]) -> (String, rcgen::KeyPair) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params =
            rcgen::CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        for (i, o) in orgs.iter().enumerate() {
            let ty = if i == 0 {
                rcgen::DnType::OrganizationName
            } else {
                rcgen::DnType::CustomDnType(vec![2, 5, 4, 10])
            };
            params.distinguished_name.push(ty, *o);
        }
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        let csr = params.serialize_request(&key).unwrap();
        (csr.pem().unwrap(), key)
    }

    fn set(items: &[&str]) -> BTreeSet<String> {
        set_of(items)
    }

    #[test]
    fn parses_subject_and_sans() {
        let (pem, _) = csr_pem(
            "system:node:n1",
            &["system:nodes"],
            &["n1.example", "10.0.0.1"],
        );
        let p = ParsedCsr::parse(pem.as_bytes()).unwrap();
        assert_eq!(p.common_name, "system:node:n1");
        assert_eq!(p.organizations, vec!["system:nodes"]);
        assert_eq!(p.dns_names, vec!["n1.example"]);
        assert_eq!(p.ip_addresses, vec!["10.0.0.1".parse::<IpAddr>().unwrap()]);
        p.check_signature().unwrap();
        let err =
            ParsedCsr::parse(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
                .unwrap_err();
        assert_eq!(err, "PEM block type must be CERTIFICATE REQUEST");
        assert!(ParsedCsr::parse(b"garbage").is_err());
    }

    #[test]
    fn kubelet_client_rules() {
        let (pem, _) = csr_pem("system:node:n1", &["system:nodes"], &[]);
        let p = ParsedCsr::parse(pem.as_bytes()).unwrap();
        let ok = set(&["digital signature", "key encipherment", "client auth"]);
        assert_eq!(validate_kubelet_client(&p, &ok), Ok(()));
        assert_eq!(
            validate_kubelet_client(&p, &set(&["digital signature", "client auth"])),
            Ok(())
        );
        assert_eq!(
            validate_kubelet_client(&p, &set(&["client auth"])).unwrap_err(),
            "usages did not match [client auth digital signature key encipherment]"
        );
        let (pem, _) = csr_pem("system:node:n1", &["system:nodes", "x"], &[]);
        let p = ParsedCsr::parse(pem.as_bytes()).unwrap();
        assert_eq!(
            validate_kubelet_client(&p, &ok).unwrap_err(),
            "subject organization is not system:nodes"
        );
        let (pem, _) = csr_pem("system:node:n1", &["system:nodes"], &["n1"]);
        let p = ParsedCsr::parse(pem.as_bytes()).unwrap();
        assert_eq!(
            validate_kubelet_client(&p, &ok).unwrap_err(),
            "DNS subjectAltNames are not allowed"
        );
        let (pem, _) = csr_pem("bob", &["system:nodes"], &[]);
        let p = ParsedCsr::parse(pem.as_bytes()).unwrap();
        assert_eq!(
            validate_kubelet_client(&p, &ok).unwrap_err(),
            "subject common name does not begin with system:node:"
        );
    }

    #[test]
    fn kubelet_serving_rules() {
        let ok = set(&["digital signature", "key encipherment", "server auth"]);
        let (pem, _) = csr_pem("system:node:n1", &["system:nodes"], &["n1", "10.0.0.1"]);
        let p = ParsedCsr::parse(pem.as_bytes()).unwrap();
        assert_eq!(validate_kubelet_serving(&p, &ok), Ok(()));
        let (pem, _) = csr_pem("system:node:n1", &["system:nodes"], &[]);
        let p = ParsedCsr::parse(pem.as_bytes()).unwrap();
        assert_eq!(
            validate_kubelet_serving(&p, &ok).unwrap_err(),
            "DNS or IP subjectAltName is required"
        );
        let (pem, _) = csr_pem("system:node:n1", &["system:nodes"], &["n1"]);
        let p = ParsedCsr::parse(pem.as_bytes()).unwrap();
        assert_eq!(
            validate_kubelet_serving(&p, &set(&["client auth"])).unwrap_err(),
            "usages did not match [digital signature key encipherment server auth]"
        );
    }

    #[test]
    fn apiserver_client_usages() {
        let u = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(validate_apiserver_client(&u(&["client auth"])), Ok(()));
        assert_eq!(
            validate_apiserver_client(&u(&["server auth", "client auth"])).unwrap_err(),
            "invalid usage for client certificate: server auth"
        );
        assert_eq!(
            validate_apiserver_client(&u(&["digital signature"])).unwrap_err(),
            "missing required usage for client certificate: client auth"
        );
    }

    #[test]
    fn approval_conditions() {
        let mut csr = CertificateSigningRequest::default();
        assert_eq!(approval_state(&csr), (false, false));
        csr.status = Some(
            k8s_openapi::api::certificates::v1::CertificateSigningRequestStatus {
                conditions: Some(vec![CertificateSigningRequestCondition {
                    type_: "Approved".into(),
                    status: "True".into(),
                    ..Default::default()
                }]),
                certificate: None,
            },
        );
        assert!(is_approved(&csr));
        assert!(!has_true_condition(&csr, "Failed"));
        assert!(!has_certificate(&csr));
    }
}
