//! The seeds' control-plane flags, shared by the tests that run components the seeds'
//! way (`seed_master`, `ha`).

use std::path::Path;

/// The seeds' kube-apiserver flags with a test's paths: certificates from
/// `ferrokube pki cluster` in `pki`, the audit log in `dir`, listening on
/// `bind`:`port` and advertised as `advertise`, Services from `service_range`
/// (etcd flags are the caller's).
pub fn apiserver_flags(
    pki: &Path,
    dir: &Path,
    bind: &str,
    advertise: &str,
    port: u16,
    service_range: &str,
) -> Vec<String> {
    let p = |f: &str| pki.join(f).display().to_string();
    vec![
        "apiserver".into(),
        format!("--advertise-address={advertise}"),
        "--default-not-ready-toleration-seconds=360".into(),
        "--default-unreachable-toleration-seconds=360".into(),
        "--max-mutating-requests-inflight=2000".into(),
        "--max-requests-inflight=4000".into(),
        "--delete-collection-workers=2".into(),
        format!(
            "--encryption-provider-config={}",
            p("encryption-config.yaml")
        ),
        format!("--bind-address={bind}"),
        format!("--secure-port={port}"),
        format!("--tls-cert-file={}", p("kubernetes.pem")),
        format!("--tls-private-key-file={}", p("kubernetes-key.pem")),
        "--audit-log-maxage=15".into(),
        "--audit-log-maxbackup=3".into(),
        "--audit-log-maxsize=100".into(),
        "--audit-log-truncate-enabled".into(),
        format!("--audit-log-path={}", dir.join("audit.log").display()),
        format!("--audit-policy-file={}", p("audit-policy.yaml")),
        "--profiling".into(),
        "--anonymous-auth=false".into(),
        format!("--client-ca-file={}", p("ca.pem")),
        "--enable-bootstrap-token-auth".into(),
        "--requestheader-allowed-names=aggregator".into(),
        format!("--requestheader-client-ca-file={}", p("ca.pem")),
        "--requestheader-extra-headers-prefix=X-Remote-Extra-".into(),
        "--requestheader-group-headers=X-Remote-Group".into(),
        "--requestheader-username-headers=X-Remote-User".into(),
        format!("--service-account-key-file={}", p("sa.pub")),
        format!("--service-account-signing-key-file={}", p("sa.key")),
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
        "--authorization-mode=Node,RBAC".into(),
        "--runtime-config=api/all=true".into(),
        "--enable-admission-plugins=NodeRestriction".into(),
        "--allow-privileged=true".into(),
        "--apiserver-count=2".into(),
        "--event-ttl=168h".into(),
        format!("--kubelet-certificate-authority={}", p("ca.pem")),
        format!("--kubelet-client-certificate={}", p("kubernetes.pem")),
        format!("--kubelet-client-key={}", p("kubernetes-key.pem")),
        format!("--proxy-client-cert-file={}", p("proxy-client.pem")),
        format!("--proxy-client-key-file={}", p("proxy-client-key.pem")),
        format!("--service-cluster-ip-range={service_range}"),
        "--service-node-port-range=30000-32767".into(),
        "--logtostderr=true".into(),
        "--v=2".into(),
    ]
}
