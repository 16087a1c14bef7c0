//! The csrcleaner controller (upstream `pkg/controller/certificates/cleaner`): once an
//! hour, deletes CSRs that are done with — issued and approved over an hour ago,
//! denied or failed over an hour ago, pending (no conditions) for over a day, or whose
//! issued certificate has expired — so automated requests do not pile up.

use std::time::Duration;

use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::DeleteParams;
use kube::{Api, ResourceExt};

use super::{conditions, has_certificate};
use crate::context::ControllerContext;
use crate::error::{is_not_found, Error, ResultExt};

/// How often every CSR is checked.
const POLLING_INTERVAL: Duration = Duration::from_secs(3600);
const APPROVED_EXPIRATION: i64 = 3600;
const DENIED_EXPIRATION: i64 = 3600;
const PENDING_EXPIRATION: i64 = 24 * 3600;

/// Why a CSR is garbage, or `None` to keep it. `now` is unix seconds.
pub fn cleanup_reason(csr: &CertificateSigningRequest, now: i64) -> Option<&'static str> {
    let older = |t: Option<&Time>, secs: i64| t.is_some_and(|t| now - t.0.as_second() > secs);
    let issued = has_certificate(csr);
    let conds = conditions(csr);
    if conds.iter().any(|c| {
        c.type_ == "Approved" && issued && older(c.last_update_time.as_ref(), APPROVED_EXPIRATION)
    }) {
        return Some("it is more than 1h0m0s old and approved");
    }
    if conds
        .iter()
        .any(|c| c.type_ == "Denied" && older(c.last_update_time.as_ref(), DENIED_EXPIRATION))
    {
        return Some("it is more than 1h0m0s old and denied");
    }
    if conds
        .iter()
        .any(|c| c.type_ == "Failed" && older(c.last_update_time.as_ref(), DENIED_EXPIRATION))
    {
        return Some("it is more than 1h0m0s old and failed");
    }
    if conds.is_empty() && older(csr.metadata.creation_timestamp.as_ref(), PENDING_EXPIRATION) {
        return Some("it is more than 24h0m0s old and unhandled");
    }
    if issued && conds.iter().any(|c| c.type_ == "Approved") && certificate_expired(csr, now) {
        return Some("the associated certificate is expired");
    }
    None
}

/// Whether the issued certificate's notAfter has passed (an unparseable one is kept,
/// as upstream returns an error and leaves it).
fn certificate_expired(csr: &CertificateSigningRequest, now: i64) -> bool {
    let Some(cert) = csr.status.as_ref().and_then(|s| s.certificate.as_ref()) else {
        return false;
    };
    match ferrokube_pki::cert::CertInfo::from_pem(&cert.0, "the issued certificate") {
        Ok(info) => now > info.not_after,
        Err(e) => {
            tracing::debug!(csr = %csr.name_any(), error = %e, "unable to parse the issued certificate");
            false
        }
    }
}

/// Starts the cleaner: a first pass once the CSR informer has synced, then hourly.
pub fn start(ctx: ControllerContext) -> Result<(), Error> {
    let informer = ctx.informers.get::<CertificateSigningRequest>();
    let store = informer.store();
    let mut stop = ctx.stop.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = informer.wait_synced() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        tracing::info!(controller = ctx.name, "starting CSR cleaner controller");
        let api: Api<CertificateSigningRequest> = Api::all(ctx.client.clone());
        loop {
            let now = Timestamp::now().as_second();
            for csr in store.list() {
                if let Err(e) = clean(&api, &csr, now).await {
                    tracing::warn!(csr = %csr.name_any(), error = %e, "error while attempting to clean CSR");
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(POLLING_INTERVAL) => {}
                _ = stop.wait_for(|s| *s) => break,
            }
        }
        tracing::info!(
            controller = ctx.name,
            "shutting down CSR cleaner controller"
        );
    });
    Ok(())
}

async fn clean(
    api: &Api<CertificateSigningRequest>,
    csr: &CertificateSigningRequest,
    now: i64,
) -> Result<(), Error> {
    let Some(reason) = cleanup_reason(csr, now) else {
        return Ok(());
    };
    let name = csr.name_any();
    tracing::info!(csr = %name, "Cleaning CSR as {reason}.");
    match api.delete(&name, &DeleteParams::default()).await {
        Err(e) if is_not_found(&e) => Ok(()),
        r => r
            .map(|_| ())
            .action(format!("unable to delete CSR {name:?}")),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use k8s_openapi::api::certificates::v1::{
        CertificateSigningRequestCondition, CertificateSigningRequestStatus,
    };
    use k8s_openapi::ByteString;

    fn at(secs: i64) -> Time {
        Time(Timestamp::from_second(secs).unwrap())
    }

    fn csr(created: i64, conds: &[(&str, i64)], cert: Option<String>) -> CertificateSigningRequest {
        let mut c = CertificateSigningRequest::default();
        c.metadata.creation_timestamp = Some(at(created));
        c.status = Some(CertificateSigningRequestStatus {
            conditions: Some(
                conds
                    .iter()
                    .map(|(t, when)| CertificateSigningRequestCondition {
                        type_: t.to_string(),
                        status: "True".into(),
                        last_update_time: Some(at(*when)),
                        ..Default::default()
                    })
                    .collect(),
            ),
            certificate: cert.map(|p| ByteString(p.into_bytes())),
        });
        c
    }

    #[test]
    fn deadlines_as_upstream() {
        let now = 10_000_000;
        let hour = 3600;
        // Pending: kept for a day.
        assert_eq!(cleanup_reason(&csr(now - 23 * hour, &[], None), now), None);
        assert!(cleanup_reason(&csr(now - 25 * hour, &[], None), now)
            .unwrap()
            .contains("unhandled"));
        // Denied / failed: an hour after the condition.
        assert_eq!(
            cleanup_reason(&csr(0, &[("Denied", now - 10)], None), now),
            None
        );
        assert!(
            cleanup_reason(&csr(0, &[("Denied", now - 2 * hour)], None), now)
                .unwrap()
                .contains("denied")
        );
        assert!(
            cleanup_reason(&csr(0, &[("Failed", now - 2 * hour)], None), now)
                .unwrap()
                .contains("failed")
        );
        // Approved but not issued: kept.
        assert_eq!(
            cleanup_reason(&csr(0, &[("Approved", now - 2 * hour)], None), now),
            None
        );
    }

    #[test]
    fn issued_requests_go_after_an_hour_or_at_expiry() {
        let ca = ferrokube_pki::cert::CertificateAuthority::generate(
            "ca",
            &[],
            ferrokube_pki::keys::KeyAlgorithm::EcdsaP256,
            1,
        )
        .unwrap();
        let pem = ca.cert_pem().to_string();
        let info = ferrokube_pki::cert::CertInfo::from_pem(pem.as_bytes(), "x").unwrap();
        let now = info.not_before + 600;
        let fresh = csr(now - 60, &[("Approved", now - 60)], Some(pem.clone()));
        assert_eq!(cleanup_reason(&fresh, now), None);
        let old = csr(now - 7200, &[("Approved", now - 7200)], Some(pem.clone()));
        assert!(cleanup_reason(&old, now).unwrap().contains("approved"));
        let expired = csr(now - 60, &[("Approved", now - 60)], Some(pem));
        assert_eq!(
            cleanup_reason(&expired, info.not_after + 1),
            Some("it is more than 1h0m0s old and approved")
        );
        // Without a usable lastUpdateTime, only expiry applies.
        let mut no_time = expired.clone();
        if let Some(s) = no_time.status.as_mut() {
            for c in s.conditions.iter_mut().flatten() {
                c.last_update_time = None;
            }
        }
        assert_eq!(
            cleanup_reason(&no_time, info.not_after + 1),
            Some("the associated certificate is expired")
        );
        assert_eq!(cleanup_reason(&no_time, now), None);
    }
}
