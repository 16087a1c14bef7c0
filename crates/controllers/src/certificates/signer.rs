//! The csrsigning controller (upstream `pkg/controller/certificates/signer`): issues
//! certificates for approved, not failed CSRs of the `kubernetes.io/kube-apiserver-client`,
//! `kube-apiserver-client-kubelet`, `kubelet-serving` and `legacy-unknown` signers with
//! the `--cluster-signing-cert-file`/`--cluster-signing-key-file` CA. Upstream runs one
//! controller per signer name over the same CA; one controller handles all four here.
//!
//! Requests that break their signer's rules get a `Failed` condition
//! (`SignerValidationFailure`, upstream's message). The lifetime is
//! `spec.expirationSeconds` clamped to [10 min, `--cluster-signing-duration`], and never
//! past the CA's own expiry. The CA files are re-read when they change on disk
//! (upstream's dynamic CA provider).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestCondition, CertificateSigningRequestStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use k8s_openapi::ByteString;
use kube::api::PostParams;
use kube::{Api, ResourceExt};
use parking_lot::Mutex;

use super::authority::{Authority, Policy};
use super::{
    has_true_condition, is_approved, run_certificate_controller, usages, validate_apiserver_client,
    validate_kubelet_client, validate_kubelet_serving, Outcome, ParsedCsr, KUBELET_SERVING,
    KUBE_APISERVER_CLIENT, KUBE_APISERVER_CLIENT_KUBELET, LEGACY_UNKNOWN,
};
use crate::context::ControllerContext;
use crate::error::{Error, ResultExt};

/// Upstream signs with five workers per signer.
const WORKERS: usize = 5;
/// Upstream's lower bound on a requested lifetime (twice the backdate).
const MIN_DURATION: Duration = Duration::from_secs(600);
const BACKDATE: Duration = Duration::from_secs(300);
const SHORT: Duration = Duration::from_secs(8 * 3600);

/// The CA files and what was last loaded from them.
struct CaProvider {
    cert: PathBuf,
    key: PathBuf,
    current: Mutex<(Option<SystemTime>, Option<SystemTime>, Arc<Authority>)>,
}

fn modified(p: &PathBuf) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

impl CaProvider {
    fn load(cert: PathBuf, key: PathBuf) -> Result<CaProvider, Error> {
        let stamps = (modified(&cert), modified(&key));
        let ca = Authority::load(&cert, &key).map_err(|reason| Error::Invalid {
            what: format!(
                "--cluster-signing-cert-file {} / --cluster-signing-key-file {}",
                cert.display(),
                key.display()
            ),
            reason,
        })?;
        Ok(CaProvider {
            cert,
            key,
            current: Mutex::new((stamps.0, stamps.1, Arc::new(ca))),
        })
    }

    /// The CA, re-read first if either file changed; a pair that fails to load keeps
    /// the previous one in service (as upstream's dynamic provider does).
    fn current(&self) -> Arc<Authority> {
        let stamps = (modified(&self.cert), modified(&self.key));
        let mut cur = self.current.lock();
        if (cur.0, cur.1) != stamps {
            match Authority::load(&self.cert, &self.key) {
                Ok(ca) => {
                    tracing::info!(cert = %self.cert.display(), "reloaded the cluster signing CA");
                    *cur = (stamps.0, stamps.1, Arc::new(ca));
                }
                Err(e) => {
                    tracing::warn!(cert = %self.cert.display(), error = %e, "cluster signing CA changed but does not load; keeping the previous one");
                    cur.0 = stamps.0;
                    cur.1 = stamps.1;
                }
            }
        }
        cur.2.clone()
    }
}

/// Starts the signer, or logs and stays off when no CA pair is configured (upstream's
/// "Skipping CSR signer controller because no csr cert/key was specified").
pub fn start(ctx: ControllerContext) -> Result<(), Error> {
    let (Some(cert), Some(key)) = (
        ctx.config.cluster_signing_cert_file.clone(),
        ctx.config.cluster_signing_key_file.clone(),
    ) else {
        tracing::info!(
            controller = ctx.name,
            "Skipping CSR signer controller because no csr cert/key was specified \
             (--cluster-signing-cert-file and --cluster-signing-key-file): CSRs will not be signed"
        );
        return Ok(());
    };
    let ca = Arc::new(CaProvider::load(cert, key)?);
    let ttl = ctx.config.cluster_signing_duration;
    let client = ctx.client.clone();
    run_certificate_controller(ctx, WORKERS, move |csr| {
        let ca = ca.clone();
        let client = client.clone();
        async move { handle(&client, &ca, ttl, csr).await }
    });
    Ok(())
}

/// Upstream's `signer.duration`: the requested lifetime within [10 min, max].
pub fn duration(max: Duration, expiration_seconds: Option<i32>) -> Duration {
    match expiration_seconds {
        None => max,
        Some(s) => {
            let requested = Duration::from_secs(u64::try_from(s).unwrap_or(0));
            if requested > max {
                max
            } else if requested < MIN_DURATION {
                MIN_DURATION
            } else {
                requested
            }
        }
    }
}

/// Checks `req` against its signer's rules: `Ok(false)` for signer names this
/// controller does not serve, `Err(message)` for a request the signer must fail.
pub fn check_signer_rules(
    csr: &CertificateSigningRequest,
    req: &ParsedCsr,
) -> Result<bool, String> {
    match csr.spec.signer_name.as_str() {
        KUBELET_SERVING => validate_kubelet_serving(req, &usages(csr)).map(|()| true),
        KUBE_APISERVER_CLIENT_KUBELET => validate_kubelet_client(req, &usages(csr)).map(|()| true),
        KUBE_APISERVER_CLIENT => {
            validate_apiserver_client(csr.spec.usages.as_deref().unwrap_or_default()).map(|()| true)
        }
        // No restrictions, for backward compatibility (as upstream).
        LEGACY_UNKNOWN => Ok(true),
        _ => Ok(false),
    }
}

async fn handle(
    client: &kube::Client,
    ca: &CaProvider,
    max_ttl: Duration,
    mut csr: CertificateSigningRequest,
) -> Result<Outcome, Error> {
    if !is_approved(&csr) || has_true_condition(&csr, "Failed") {
        return Ok(Outcome::Done);
    }
    if ![
        KUBELET_SERVING,
        KUBE_APISERVER_CLIENT_KUBELET,
        KUBE_APISERVER_CLIENT,
        LEGACY_UNKNOWN,
    ]
    .contains(&csr.spec.signer_name.as_str())
    {
        return Ok(Outcome::Done);
    }
    let name = csr.name_any();
    let api: Api<CertificateSigningRequest> = Api::all(client.clone());
    let req = ParsedCsr::parse(&csr.spec.request.0).map_err(|e| Error::Invalid {
        what: format!("csr {name:?}"),
        reason: format!("unable to parse csr {name:?}: {e}"),
    })?;
    match check_signer_rules(&csr, &req) {
        Ok(true) => {}
        Ok(false) => return Ok(Outcome::Done),
        Err(message) => {
            tracing::info!(csr = %name, signer = %csr.spec.signer_name, %message, "request fails its signer's rules; marking it Failed");
            let status = csr
                .status
                .get_or_insert_with(CertificateSigningRequestStatus::default);
            status.conditions.get_or_insert_with(Vec::new).push(
                CertificateSigningRequestCondition {
                    type_: "Failed".into(),
                    status: "True".into(),
                    reason: Some("SignerValidationFailure".into()),
                    message: Some(message),
                    last_update_time: Some(Time(Timestamp::now())),
                    last_transition_time: None,
                },
            );
            api.replace_status(&name, &PostParams::default(), &csr)
                .await
                .action("error adding failure condition for csr")?;
            return Ok(Outcome::Done);
        }
    }
    let authority = ca.current();
    let policy = Policy {
        ttl: duration(max_ttl, csr.spec.expiration_seconds),
        usages: csr.spec.usages.clone().unwrap_or_default(),
        backdate: BACKDATE,
        short: SHORT,
        now: Timestamp::now().as_second(),
    };
    // Signing (RSA especially) is CPU work: off the runtime's threads.
    let pem = tokio::task::spawn_blocking(move || authority.sign(&req, &policy))
        .await
        .map_err(|e| Error::Invalid {
            what: format!("csr {name:?}"),
            reason: format!("signing task failed: {e}"),
        })?
        .map_err(|reason| Error::Invalid {
            what: format!("csr {name:?}"),
            reason: format!("error auto signing csr: {reason}"),
        })?;
    csr.status
        .get_or_insert_with(CertificateSigningRequestStatus::default)
        .certificate = Some(ByteString(pem.into_bytes()));
    api.replace_status(&name, &PostParams::default(), &csr)
        .await
        .action("error updating signature for csr")?;
    tracing::info!(csr = %name, signer = %csr.spec.signer_name, "issued certificate");
    Ok(Outcome::Done)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::certificates::tests::csr_pem;
    use k8s_openapi::api::certificates::v1::CertificateSigningRequestSpec;

    #[test]
    fn duration_is_clamped_as_upstream() {
        let max = Duration::from_secs(8760 * 3600);
        assert_eq!(duration(max, None), max);
        assert_eq!(duration(max, Some(60)), MIN_DURATION);
        assert_eq!(duration(max, Some(3600)), Duration::from_secs(3600));
        assert_eq!(duration(max, Some(i32::MAX)), max);
        assert_eq!(duration(max, Some(-5)), MIN_DURATION);
    }

    fn csr(signer: &str, pem: &str, usages: &[&str]) -> CertificateSigningRequest {
        CertificateSigningRequest {
            spec: CertificateSigningRequestSpec {
                signer_name: signer.into(),
                request: ByteString(pem.as_bytes().to_vec()),
                usages: Some(usages.iter().map(|s| s.to_string()).collect()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn signer_rules_per_signer_name() {
        let (pem, _) = csr_pem("system:node:n1", &["system:nodes"], &["n1"]);
        let req = ParsedCsr::parse(pem.as_bytes()).unwrap();
        let serving = ["digital signature", "key encipherment", "server auth"];
        assert_eq!(
            check_signer_rules(&csr(KUBELET_SERVING, &pem, &serving), &req),
            Ok(true)
        );
        assert_eq!(
            check_signer_rules(&csr(KUBE_APISERVER_CLIENT_KUBELET, &pem, &serving), &req)
                .unwrap_err(),
            "DNS subjectAltNames are not allowed"
        );
        assert_eq!(
            check_signer_rules(&csr(KUBE_APISERVER_CLIENT, &pem, &serving), &req).unwrap_err(),
            "invalid usage for client certificate: server auth"
        );
        assert_eq!(
            check_signer_rules(&csr(LEGACY_UNKNOWN, &pem, &[]), &req),
            Ok(true)
        );
        assert_eq!(
            check_signer_rules(&csr("example.com/x", &pem, &[]), &req),
            Ok(false)
        );
    }
}
