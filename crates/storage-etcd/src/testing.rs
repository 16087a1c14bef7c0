//! Real etcd processes for tests and benchmarks: what upstream's integration tests get
//! from `etcd/tests/v3/framework` (a cluster of members on loopback ports, with or
//! without TLS client-certificate authentication), here by running the etcd binary.
//!
//! Members listen on free 127.0.0.1 ports with data in a temporary directory, keep
//! etcd's defaults (fsync on, so a one-member cluster is a fair durable baseline for
//! benchmarks), and are killed when the [`EtcdCluster`] is dropped.
// Test-support code: a cluster that cannot start aborts the test or benchmark with a
// message saying why (and the member's log), which is what panicking is for here.
#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use etcd_client::{Certificate, Client, ConnectOptions, Identity, TlsOptions};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use tokio::time::Instant;

use crate::EtcdConfig;

/// The etcd binary; `FERROKUBE_ETCD` overrides it.
pub fn etcd_binary() -> PathBuf {
    std::env::var_os("FERROKUBE_ETCD").map_or_else(|| PathBuf::from("/usr/bin/etcd"), PathBuf::from)
}

/// How long a member may take to become healthy.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Attempts at starting a cluster, in case another process took a port we picked.
const START_ATTEMPTS: usize = 3;

/// A CA with a serving certificate for 127.0.0.1/localhost and a client certificate,
/// as PEM files in one directory.
#[derive(Clone, Debug)]
pub struct TestPki {
    pub ca_file: PathBuf,
    pub server_cert_file: PathBuf,
    pub server_key_file: PathBuf,
    pub client_cert_file: PathBuf,
    pub client_key_file: PathBuf,
}

impl TestPki {
    /// Generates a fresh CA and certificates into `dir`; file names start with `name`.
    pub fn generate(dir: &Path, name: &str) -> TestPki {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} test CA"));
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();

        // etcd also dials itself with its serving certificate (grpc-gateway), so it is
        // good for client authentication too.
        let server_key = KeyPair::generate().unwrap();
        let mut server =
            CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
        server.distinguished_name.push(DnType::CommonName, "etcd");
        server.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let server = server.signed_by(&server_key, &ca).unwrap();

        let client_key = KeyPair::generate().unwrap();
        let mut client = CertificateParams::new(Vec::<String>::new()).unwrap();
        client
            .distinguished_name
            .push(DnType::CommonName, "kube-apiserver-etcd-client");
        client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let client = client.signed_by(&client_key, &ca).unwrap();

        let write = |file: &str, pem: String| {
            let path = dir.join(format!("{name}-{file}"));
            std::fs::write(&path, pem)
                .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
            path
        };
        TestPki {
            ca_file: write("ca.pem", ca.pem()),
            server_cert_file: write("server.pem", server.pem()),
            server_key_file: write("server-key.pem", server_key.serialize_pem()),
            client_cert_file: write("client.pem", client.pem()),
            client_key_file: write("client-key.pem", client_key.serialize_pem()),
        }
    }

    /// Client TLS options trusting this CA and presenting the client certificate.
    pub fn client_tls(&self) -> TlsOptions {
        let read =
            |p: &Path| std::fs::read(p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()));
        TlsOptions::new()
            .ca_certificate(Certificate::from_pem(read(&self.ca_file)))
            .identity(Identity::from_pem(
                read(&self.client_cert_file),
                read(&self.client_key_file),
            ))
    }
}

#[derive(Debug)]
struct Member {
    name: String,
    client_port: u16,
    peer_port: u16,
    data_dir: PathBuf,
    log_file: PathBuf,
    process: Option<Child>,
}

/// A running etcd cluster of real processes.
#[derive(Debug)]
pub struct EtcdCluster {
    members: Vec<Member>,
    pki: Option<TestPki>,
    token: String,
    // Last, so that the processes are killed before their directory goes.
    dir: tempfile::TempDir,
}

impl EtcdCluster {
    /// Starts `members` etcd processes forming one cluster and waits until every member
    /// serves linearizable reads. With `tls`, clients must present a certificate signed
    /// by the cluster's CA ([`EtcdCluster::config`] has them).
    pub async fn start(members: usize, tls: bool) -> EtcdCluster {
        assert!(members > 0, "an etcd cluster needs at least one member");
        let dir = tempfile::Builder::new()
            .prefix("ferrokube-etcd-")
            .tempdir()
            .expect("creating a temporary directory for etcd");
        let pki = tls.then(|| TestPki::generate(dir.path(), "etcd"));
        let mut cluster = EtcdCluster {
            members: Vec::new(),
            pki,
            token: String::new(),
            dir,
        };
        let mut last_failure = String::new();
        for attempt in 0..START_ATTEMPTS {
            let ports = free_ports(members * 2);
            let dir = cluster.dir.path().to_path_buf();
            cluster.token = format!("ferrokube-{}-{attempt}-{}", std::process::id(), ports[0]);
            cluster.members = (0..members)
                .map(|i| Member {
                    name: format!("m{i}"),
                    client_port: ports[2 * i],
                    peer_port: ports[2 * i + 1],
                    data_dir: dir.join(format!("m{i}-attempt{attempt}.etcd")),
                    log_file: dir.join(format!("m{i}-attempt{attempt}.log")),
                    process: None,
                })
                .collect();
            for i in 0..members {
                cluster.spawn(i, true);
            }
            match cluster.wait_all_healthy().await {
                Ok(()) => return cluster,
                Err(failure) => {
                    cluster.kill_all();
                    last_failure = failure;
                }
            }
        }
        panic!("etcd cluster of {members} did not start after {START_ATTEMPTS} attempts: {last_failure}");
    }

    /// Client URLs of every member, in member order.
    pub fn endpoints(&self) -> Vec<String> {
        (0..self.members.len()).map(|i| self.endpoint(i)).collect()
    }

    /// Client URL of member `i`.
    pub fn endpoint(&self, i: usize) -> String {
        let scheme = if self.pki.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.members[i].client_port)
    }

    /// A backend configuration for this cluster (TLS files set when it uses TLS).
    pub fn config(&self) -> EtcdConfig {
        let config = EtcdConfig::new(self.endpoints());
        match &self.pki {
            Some(pki) => config.with_tls(&pki.ca_file, &pki.client_cert_file, &pki.client_key_file),
            None => config,
        }
    }

    /// The certificates, when the cluster uses TLS.
    pub fn pki(&self) -> Option<&TestPki> {
        self.pki.as_ref()
    }

    /// A directory that lives as long as the cluster (for extra test files).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn member_count(&self) -> usize {
        self.members.len()
    }

    /// Data directory of member `i`.
    pub fn data_dir(&self, i: usize) -> &Path {
        &self.members[i].data_dir
    }

    /// Whether member `i`'s process is running.
    pub fn is_running(&mut self, i: usize) -> bool {
        let member = &mut self.members[i];
        match member.process.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Kills member `i` with SIGKILL (no clean shutdown) and reaps it.
    pub fn kill_member(&mut self, i: usize) {
        let member = &mut self.members[i];
        if let Some(mut child) = member.process.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts member `i` again on its data and ports, and waits until it is healthy.
    pub async fn restart_member(&mut self, i: usize) {
        self.kill_member(i);
        self.spawn(i, false);
        if let Err(failure) = self.wait_healthy(i, Instant::now() + START_TIMEOUT).await {
            panic!("restarted etcd member {i} did not become healthy: {failure}");
        }
    }

    fn spawn(&mut self, i: usize, new_cluster: bool) {
        let initial_cluster = self
            .members
            .iter()
            .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer_port))
            .collect::<Vec<_>>()
            .join(",");
        let client_url = self.endpoint(i);
        let member = &self.members[i];
        let peer_url = format!("http://127.0.0.1:{}", member.peer_port);
        let log = File::options()
            .create(true)
            .append(true)
            .open(&member.log_file)
            .unwrap_or_else(|e| panic!("opening {}: {e}", member.log_file.display()));
        let mut cmd = Command::new(etcd_binary());
        cmd.arg("--name")
            .arg(&member.name)
            .arg("--data-dir")
            .arg(&member.data_dir)
            .arg("--listen-client-urls")
            .arg(&client_url)
            .arg("--advertise-client-urls")
            .arg(&client_url)
            .arg("--listen-peer-urls")
            .arg(&peer_url)
            .arg("--initial-advertise-peer-urls")
            .arg(&peer_url)
            .arg("--initial-cluster")
            .arg(&initial_cluster)
            .arg("--initial-cluster-token")
            .arg(&self.token)
            .arg("--initial-cluster-state")
            .arg(if new_cluster { "new" } else { "existing" })
            .arg("--logger")
            .arg("zap")
            .arg("--log-outputs")
            .arg("stderr")
            .arg("--log-level")
            .arg("warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("duplicating the log file handle"))
            .stderr(log);
        if let Some(pki) = &self.pki {
            cmd.arg("--cert-file")
                .arg(&pki.server_cert_file)
                .arg("--key-file")
                .arg(&pki.server_key_file)
                .arg("--client-cert-auth")
                .arg("--trusted-ca-file")
                .arg(&pki.ca_file);
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", etcd_binary().display()));
        self.members[i].process = Some(child);
    }

    async fn wait_all_healthy(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        for i in 0..self.members.len() {
            self.wait_healthy(i, deadline).await?;
        }
        Ok(())
    }

    /// Waits until member `i` answers a linearizable read (so the cluster has a leader
    /// and this member is part of it).
    async fn wait_healthy(&mut self, i: usize, deadline: Instant) -> Result<(), String> {
        let mut options = ConnectOptions::new().with_connect_timeout(Duration::from_secs(1));
        if let Some(pki) = &self.pki {
            options = options.with_tls(pki.client_tls());
        }
        let endpoint = self.endpoint(i);
        let peer_url = format!("http://127.0.0.1:{}", self.members[i].peer_port);
        let mut last = String::from("not tried");
        loop {
            if !self.is_running(i) {
                return Err(format!("member {i} exited; log:\n{}", self.log_tail(i)));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "member {i} ({endpoint}) not healthy after {START_TIMEOUT:?} ({last}); log:\n{}",
                    self.log_tail(i)
                ));
            }
            let probe = async {
                let mut client =
                    Client::connect([endpoint.as_str()], Some(options.clone())).await?;
                client.get("/ferrokube-health", None).await?;
                // The port could have been taken by another test's etcd in the moment
                // between picking it and this member binding it: check who answered.
                client.member_list().await
            };
            match tokio::time::timeout(Duration::from_secs(2), probe).await {
                Ok(Ok(list))
                    if list
                        .members()
                        .iter()
                        .any(|m| m.peer_urls().contains(&peer_url)) =>
                {
                    return Ok(());
                }
                Ok(Ok(_)) => {
                    return Err(format!("{endpoint} is answered by another cluster's etcd"));
                }
                Ok(Err(e)) => last = e.to_string(),
                Err(_) => last = "health read timed out".into(),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn log_tail(&self, i: usize) -> String {
        let text = std::fs::read_to_string(&self.members[i].log_file).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    fn kill_all(&mut self) {
        for i in 0..self.members.len() {
            self.kill_member(i);
        }
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        self.kill_all();
    }
}

/// `n` distinct free loopback ports (held together while picking, then released).
fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("binding a free loopback port"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("reading a bound port").port())
        .collect()
}
