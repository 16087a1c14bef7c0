//! The csrapproving controller (upstream
//! `pkg/controller/certificates/approver/sarapprove.go`): approves pending
//! `kubernetes.io/kube-apiserver-client-kubelet` requests that are node client
//! certificates once a SubjectAccessReview says the requestor may `create`
//! `certificatesigningrequests/selfnodeclient` (renewing its own identity) or
//! `certificatesigningrequests/nodeclient` (any node's, e.g. a bootstrap token). Every
//! other request is left for a human (`kubectl certificate approve`) or another
//! approver.

use std::collections::BTreeMap;

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestCondition, CertificateSigningRequestStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::PostParams;
use kube::{Api, ResourceExt};

use super::{
    approval_state, run_certificate_controller, usages, validate_kubelet_client, Outcome,
    ParsedCsr, KUBE_APISERVER_CLIENT_KUBELET,
};
use crate::context::ControllerContext;
use crate::error::{Error, ResultExt};

/// Upstream runs the approver with five workers.
const WORKERS: usize = 5;

/// One kind of request the approver recognises, and the permission that approves it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recognizer {
    /// The `certificatesigningrequests` subresource checked with the SAR.
    pub subresource: &'static str,
    pub success_message: &'static str,
    /// Whether the request must be for the requestor's own identity.
    self_only: bool,
}

/// Upstream's recognizers, in order: self node client first, then node client.
pub const RECOGNIZERS: [Recognizer; 2] = [
    Recognizer {
        subresource: "selfnodeclient",
        success_message:
            "Auto approving self kubelet client certificate after SubjectAccessReview.",
        self_only: true,
    },
    Recognizer {
        subresource: "nodeclient",
        success_message: "Auto approving kubelet client certificate after SubjectAccessReview.",
        self_only: false,
    },
];

/// Upstream's `isNodeClientCert`.
pub fn is_node_client_cert(csr: &CertificateSigningRequest, req: &ParsedCsr) -> bool {
    csr.spec.signer_name == KUBE_APISERVER_CLIENT_KUBELET
        && validate_kubelet_client(req, &usages(csr)).is_ok()
}

/// The recognizers that match `csr`, in the order they are tried.
pub fn matching(csr: &CertificateSigningRequest, req: &ParsedCsr) -> Vec<Recognizer> {
    RECOGNIZERS
        .iter()
        .filter(|r| {
            (!r.self_only || csr.spec.username.as_deref().unwrap_or_default() == req.common_name)
                && is_node_client_cert(csr, req)
        })
        .copied()
        .collect()
}

/// The SubjectAccessReview asking whether the requestor may `create` the
/// recognizer's subresource.
pub fn review(csr: &CertificateSigningRequest, subresource: &str) -> SubjectAccessReview {
    let extra: Option<BTreeMap<String, Vec<String>>> = csr.spec.extra.clone();
    SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: csr.spec.username.clone(),
            uid: csr.spec.uid.clone(),
            groups: csr.spec.groups.clone(),
            extra,
            resource_attributes: Some(ResourceAttributes {
                group: Some("certificates.k8s.io".into()),
                resource: Some("certificatesigningrequests".into()),
                verb: Some("create".into()),
                subresource: Some(subresource.into()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// Starts the approver.
pub fn start(ctx: ControllerContext) -> Result<(), Error> {
    let client = ctx.client.clone();
    run_certificate_controller(ctx, WORKERS, move |csr| {
        let client = client.clone();
        async move { handle(&client, csr).await }
    });
    Ok(())
}

async fn handle(
    client: &kube::Client,
    mut csr: CertificateSigningRequest,
) -> Result<Outcome, Error> {
    let (approved, denied) = approval_state(&csr);
    if approved || denied {
        return Ok(Outcome::Done);
    }
    let name = csr.name_any();
    let req = ParsedCsr::parse(&csr.spec.request.0).map_err(|e| Error::Invalid {
        what: format!("csr {name:?}"),
        reason: format!("unable to parse csr {name:?}: {e}"),
    })?;
    let mut tried = Vec::new();
    for r in matching(&csr, &req) {
        tried.push(r.subresource);
        let sars: Api<SubjectAccessReview> = Api::all(client.clone());
        let answer = sars
            .create(&PostParams::default(), &review(&csr, r.subresource))
            .await
            .action("creating a SubjectAccessReview")?;
        if !answer.status.is_some_and(|s| s.allowed) {
            continue;
        }
        csr.status
            .get_or_insert_with(CertificateSigningRequestStatus::default)
            .conditions
            .get_or_insert_with(Vec::new)
            .push(CertificateSigningRequestCondition {
                type_: "Approved".into(),
                status: "True".into(),
                reason: Some("AutoApproved".into()),
                message: Some(r.success_message.into()),
                // Upstream's API server stamps this when it is unset; set it here so
                // the cleaner's deadlines work whichever server stores it.
                last_update_time: Some(Time(Timestamp::now())),
                last_transition_time: None,
            });
        let api: Api<CertificateSigningRequest> = Api::all(client.clone());
        api.replace_subresource("approval", &name, &PostParams::default(), &csr)
            .await
            .action("error updating approval for csr")?;
        tracing::info!(csr = %name, subresource = r.subresource, "auto-approved kubelet client certificate");
        return Ok(Outcome::Done);
    }
    if tried.is_empty() {
        return Ok(Outcome::Done);
    }
    Ok(Outcome::Retry(format!(
        "recognized csr {name:?} as [{}] but subject access review was not approved",
        tried.join(" ")
    )))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::certificates::tests::csr_pem;
    use k8s_openapi::api::certificates::v1::CertificateSigningRequestSpec;
    use k8s_openapi::ByteString;

    fn csr(signer: &str, user: &str, pem: &str, usages: &[&str]) -> CertificateSigningRequest {
        CertificateSigningRequest {
            spec: CertificateSigningRequestSpec {
                signer_name: signer.into(),
                username: Some(user.into()),
                groups: Some(vec!["system:bootstrappers".into()]),
                uid: Some("u1".into()),
                request: ByteString(pem.as_bytes().to_vec()),
                usages: Some(usages.iter().map(|s| s.to_string()).collect()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    const CLIENT: [&str; 3] = ["digital signature", "key encipherment", "client auth"];

    #[test]
    fn recognizes_node_client_requests() {
        let (pem, _) = csr_pem("system:node:n1", &["system:nodes"], &[]);
        let req = ParsedCsr::parse(pem.as_bytes()).unwrap();
        let boot = csr(
            KUBE_APISERVER_CLIENT_KUBELET,
            "system:bootstrap:abcdef",
            &pem,
            &CLIENT,
        );
        let subs: Vec<_> = matching(&boot, &req)
            .iter()
            .map(|r| r.subresource)
            .collect();
        assert_eq!(subs, vec!["nodeclient"]);
        let renew = csr(
            KUBE_APISERVER_CLIENT_KUBELET,
            "system:node:n1",
            &pem,
            &CLIENT,
        );
        let subs: Vec<_> = matching(&renew, &req)
            .iter()
            .map(|r| r.subresource)
            .collect();
        assert_eq!(subs, vec!["selfnodeclient", "nodeclient"]);
        // Serving requests and other signers are not the approver's.
        let serving = csr(
            "kubernetes.io/kubelet-serving",
            "system:node:n1",
            &pem,
            &["digital signature", "key encipherment", "server auth"],
        );
        assert!(matching(&serving, &req).is_empty());
        let wrong_usage = csr(KUBE_APISERVER_CLIENT_KUBELET, "x", &pem, &["client auth"]);
        assert!(matching(&wrong_usage, &req).is_empty());
    }

    #[test]
    fn review_carries_the_requestor() {
        let (pem, _) = csr_pem("system:node:n1", &["system:nodes"], &[]);
        let mut c = csr(
            KUBE_APISERVER_CLIENT_KUBELET,
            "system:bootstrap:abcdef",
            &pem,
            &CLIENT,
        );
        c.spec.extra = Some(BTreeMap::from([("k".to_string(), vec!["v".to_string()])]));
        let sar = review(&c, "nodeclient");
        assert_eq!(sar.spec.user.as_deref(), Some("system:bootstrap:abcdef"));
        assert_eq!(sar.spec.uid.as_deref(), Some("u1"));
        assert_eq!(
            sar.spec.groups,
            Some(vec!["system:bootstrappers".to_string()])
        );
        assert_eq!(sar.spec.extra.unwrap()["k"], vec!["v".to_string()]);
        let ra = sar.spec.resource_attributes.unwrap();
        assert_eq!(ra.group.as_deref(), Some("certificates.k8s.io"));
        assert_eq!(ra.verb.as_deref(), Some("create"));
        assert_eq!(ra.subresource.as_deref(), Some("nodeclient"));
    }
}
