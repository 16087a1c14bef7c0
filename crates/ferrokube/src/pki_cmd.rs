//! `ferrokube pki …`: the seeds' cfssl, openssl, `kubectl config` and `kubeadm token`
//! steps as subcommands over the `ferrokube-pki` crate (see docs/pki.md).

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};
use ferrokube_pki::bootstrap::{self, BootstrapToken, TokenOptions};
use ferrokube_pki::cert::{self, CertSpec, CertificateAuthority, Profile};
use ferrokube_pki::cluster::{self, ClusterSpec, Node};
use ferrokube_pki::configs;
use ferrokube_pki::files::{self, Mode};
use ferrokube_pki::keys::{KeyAlgorithm, PrivateKey};
use ferrokube_pki::kubeconfig::{Credentials, Kubeconfig, KubeconfigSpec, Material};

#[derive(Subcommand, Debug)]
pub enum PkiCommand {
    /// Create a CA: ca.pem and ca-key.pem (`cfssl gencert -initca | cfssljson -bare ca`).
    Ca(CaArgs),
    /// Issue a certificate signed by the CA: NAME.pem and NAME-key.pem (`cfssl gencert`).
    Cert(CertArgs),
    /// Write a kubeconfig (`kubectl config set-cluster/-credentials/-context/use-context`).
    Kubeconfig(KubeconfigArgs),
    /// Create the service-account signing key pair: sa.key and sa.pub (`openssl genrsa`).
    SaKeypair(SaKeypairArgs),
    /// Write an EncryptionConfiguration encrypting secrets with a fresh aescbc key.
    EncryptionConfig(OutArgs),
    /// Write the seeds' audit policy (every request at Metadata level).
    AuditPolicy(OutArgs),
    /// Bootstrap tokens for kubelet TLS bootstrap (`kubeadm token`).
    #[command(subcommand)]
    BootstrapToken(BootstrapTokenCommand),
    /// Everything a cluster needs in one go: CA, component certificates, kubeconfigs,
    /// service-account keys, encryption config, audit policy, kubelet bootstrap tokens.
    Cluster(ClusterArgs),
}

#[derive(Args, Debug)]
pub struct CaArgs {
    /// Directory to write into.
    #[arg(long, default_value = ".")]
    dir: PathBuf,
    /// The CA's common name (leaf certificates may not share it: their issuer and
    /// subject would be equal).
    #[arg(long, default_value = cert::DEFAULT_CA_NAME)]
    cn: String,
    /// The CA's organization (repeatable, at most two).
    #[arg(long = "org")]
    orgs: Vec<String>,
    /// ECDSA P-256 instead of RSA 2048.
    #[arg(long)]
    ecdsa: bool,
    /// Validity in days (default: the seeds' 87600h).
    #[arg(long, default_value_t = cert::DEFAULT_VALIDITY_DAYS)]
    days: u32,
    /// Overwrite existing files.
    #[arg(long)]
    force: bool,
}

#[derive(Args, Debug)]
pub struct CertArgs {
    /// Common name: the Kubernetes user name (e.g. system:kube-scheduler).
    #[arg(long)]
    cn: String,
    /// Organization: a Kubernetes group (repeatable, at most two).
    #[arg(long = "org")]
    orgs: Vec<String>,
    /// Subject alternative names: IP addresses and DNS names, comma-separated.
    #[arg(long, value_delimiter = ',')]
    hosts: Vec<String>,
    /// client (clientAuth), server (serverAuth) or peer (both).
    #[arg(long)]
    profile: String,
    /// The CA certificate.
    #[arg(long, default_value = "ca.pem")]
    ca: PathBuf,
    /// The CA's private key.
    #[arg(long, default_value = "ca-key.pem")]
    ca_key: PathBuf,
    /// Base name of the output: NAME.pem and NAME-key.pem.
    #[arg(long, value_name = "NAME")]
    out: String,
    /// Directory to write into.
    #[arg(long, default_value = ".")]
    dir: PathBuf,
    /// ECDSA P-256 instead of RSA 2048.
    #[arg(long)]
    ecdsa: bool,
    /// Validity in days (default: the seeds' 87600h).
    #[arg(long, default_value_t = cert::DEFAULT_VALIDITY_DAYS)]
    days: u32,
    /// Overwrite existing files.
    #[arg(long)]
    force: bool,
}

#[derive(Args, Debug)]
pub struct KubeconfigArgs {
    /// The API server URL, e.g. https://198.18.0.11:6443.
    #[arg(long)]
    server: String,
    /// The CA certificate the API server's certificate is checked against.
    #[arg(long)]
    ca: PathBuf,
    /// Client certificate (with --key).
    #[arg(long, requires = "key", conflicts_with = "token")]
    cert: Option<PathBuf>,
    /// Client private key (with --cert).
    #[arg(long, requires = "cert")]
    key: Option<PathBuf>,
    /// Bearer token instead of a client certificate (bootstrap kubeconfigs).
    #[arg(long)]
    token: Option<String>,
    /// The user entry's name.
    #[arg(long)]
    user: String,
    /// The cluster entry's name.
    #[arg(long, default_value = "kubernetes")]
    cluster: String,
    /// The context's name (made current).
    #[arg(long, default_value = "default")]
    context: String,
    /// Embed the CA, certificate and key (the *-data fields) instead of referring to
    /// the files by absolute path.
    #[arg(long)]
    embed: bool,
    /// The kubeconfig file to write.
    #[arg(long)]
    out: PathBuf,
    /// Overwrite an existing file.
    #[arg(long)]
    force: bool,
}

#[derive(Args, Debug)]
pub struct SaKeypairArgs {
    /// Directory to write sa.key and sa.pub into.
    #[arg(long, default_value = ".")]
    dir: PathBuf,
    /// Overwrite existing files.
    #[arg(long)]
    force: bool,
}

#[derive(Args, Debug)]
pub struct OutArgs {
    /// The file to write (default: encryption-config.yaml / audit-policy.yaml).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Overwrite an existing file.
    #[arg(long)]
    force: bool,
}

#[derive(Subcommand, Debug)]
pub enum BootstrapTokenCommand {
    /// Create a token and its Secret in kube-system; prints the token.
    Create(BootstrapTokenCreateArgs),
}

#[derive(Args, Debug)]
pub struct BootstrapTokenCreateArgs {
    /// Extra groups the token authenticates as (system:bootstrappers:…), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = bootstrap::DEFAULT_GROUP)]
    groups: Vec<String>,
    /// Lifetime (Go duration, e.g. 24h); 0 for a token that never expires.
    #[arg(long, default_value = "24h")]
    ttl: String,
    /// A human-readable description stored with the token.
    #[arg(long)]
    description: Option<String>,
    /// The kubeconfig of the API server to create the Secret through.
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// Use this token ([a-z0-9]{6}.[a-z0-9]{16}) instead of a random one.
    #[arg(long)]
    token: Option<String>,
    /// Only generate and print the token; create nothing.
    #[arg(long)]
    print_only: bool,
}

#[derive(Args, Debug)]
pub struct ClusterArgs {
    /// Directory to write into.
    #[arg(long, default_value = ".")]
    dir: PathBuf,
    /// A node as NAME=IP (repeatable), e.g. --node k8s-01=198.18.0.11.
    #[arg(long = "node", value_name = "NAME=IP", required = true)]
    nodes: Vec<String>,
    /// The Service IP range; its first address goes into the API server certificate.
    #[arg(long, default_value = "10.96.0.0/12")]
    service_cidr: String,
    /// The cluster entry's name in the kubeconfigs; the CA is named NAME-ca.
    #[arg(long, default_value = "kubernetes")]
    cluster_name: String,
    /// The cluster DNS domain.
    #[arg(long, default_value = "cluster.local")]
    cluster_domain: String,
    /// The API server URL for admin, kube-proxy and kubelets (default: the first
    /// node's IP, port 6443; the seeds' kube-nginx is https://127.0.0.1:8443).
    #[arg(long)]
    apiserver_url: Option<String>,
    /// The API server URL for the controller-manager and scheduler, which run beside it.
    #[arg(long, default_value = "https://127.0.0.1:6443")]
    local_apiserver_url: String,
    /// More SANs for the API server certificate, comma-separated.
    #[arg(long, value_delimiter = ',')]
    extra_sans: Vec<String>,
    /// ECDSA P-256 keys instead of RSA 2048 (sa.key stays RSA).
    #[arg(long)]
    ecdsa: bool,
    /// Certificate validity in days.
    #[arg(long, default_value_t = cert::DEFAULT_VALIDITY_DAYS)]
    days: u32,
    /// Lifetime of the kubelet bootstrap tokens (Go duration); 0 for no expiry.
    #[arg(long, default_value = "24h")]
    bootstrap_token_ttl: String,
    /// Skip the per-node kubelet certificates (kubelets use TLS bootstrap only).
    #[arg(long)]
    no_kubelet_certs: bool,
    /// Regenerate everything, overwriting existing files.
    #[arg(long)]
    force: bool,
}

fn algorithm(ecdsa: bool) -> KeyAlgorithm {
    if ecdsa {
        KeyAlgorithm::EcdsaP256
    } else {
        KeyAlgorithm::Rsa2048
    }
}

/// `0` → never; otherwise a Go duration.
fn parse_ttl(flag: &str, text: &str) -> anyhow::Result<Option<std::time::Duration>> {
    let d = crate::duration::parse_go_duration(text).map_err(|e| anyhow::anyhow!("{flag}: {e}"))?;
    Ok((!d.is_zero()).then_some(d))
}

pub async fn run(cmd: PkiCommand) -> anyhow::Result<()> {
    match cmd {
        PkiCommand::BootstrapToken(BootstrapTokenCommand::Create(args)) => {
            bootstrap_token_create(args).await
        }
        // Key generation is CPU work: off the runtime.
        other => tokio::task::spawn_blocking(move || run_blocking(other))
            .await
            .context("pki task")?,
    }
}

fn run_blocking(cmd: PkiCommand) -> anyhow::Result<()> {
    match cmd {
        PkiCommand::Ca(a) => {
            let ca = CertificateAuthority::generate(&a.cn, &a.orgs, algorithm(a.ecdsa), a.days)?;
            ca.pair().write(&a.dir, "ca", a.force)?;
            report_pair(&a.dir, "ca");
        }
        PkiCommand::Cert(a) => {
            let ca = CertificateAuthority::load(&a.ca, &a.ca_key)?;
            let profile: Profile = a.profile.parse()?;
            let spec = CertSpec {
                common_name: a.cn,
                organizations: a.orgs,
                hosts: a.hosts,
                profile,
                validity_days: a.days,
                algorithm: algorithm(a.ecdsa),
            };
            ca.issue(&spec)?.write(&a.dir, &a.out, a.force)?;
            report_pair(&a.dir, &a.out);
        }
        PkiCommand::Kubeconfig(a) => kubeconfig(a)?,
        PkiCommand::SaKeypair(a) => {
            let (key_path, pub_path) = (a.dir.join("sa.key"), a.dir.join("sa.pub"));
            if !a.force {
                for p in [&key_path, &pub_path] {
                    anyhow::ensure!(
                        !p.exists(),
                        "{} already exists (use --force to overwrite)",
                        p.display()
                    );
                }
            }
            let key = PrivateKey::generate(KeyAlgorithm::Rsa2048)?;
            files::write_atomic(&key_path, key.pem().as_bytes(), Mode::Private, true)?;
            files::write_atomic(
                &pub_path,
                key.public_key_pem().as_bytes(),
                Mode::Public,
                true,
            )?;
            println!("wrote {}", key_path.display());
            println!("wrote {}", pub_path.display());
        }
        PkiCommand::EncryptionConfig(a) => {
            let out = a.out.unwrap_or_else(|| "encryption-config.yaml".into());
            let text = configs::encryption_config(&configs::random_aescbc_key()?);
            files::write_atomic(&out, text.as_bytes(), Mode::Private, a.force)?;
            println!("wrote {}", out.display());
        }
        PkiCommand::AuditPolicy(a) => {
            let out = a.out.unwrap_or_else(|| "audit-policy.yaml".into());
            files::write_atomic(
                &out,
                configs::audit_policy().as_bytes(),
                Mode::Public,
                a.force,
            )?;
            println!("wrote {}", out.display());
        }
        PkiCommand::Cluster(a) => cluster(a)?,
        PkiCommand::BootstrapToken(_) => anyhow::bail!("bootstrap-token runs on the runtime"),
    }
    Ok(())
}

fn report_pair(dir: &Path, name: &str) {
    let (cert, key) = cert::pair_paths(dir, name);
    println!("wrote {}", cert.display());
    println!("wrote {}", key.display());
}

fn kubeconfig(a: KubeconfigArgs) -> anyhow::Result<()> {
    // Fail early on unusable inputs, as kubectl would only at connect time.
    let ca_pem = files::read(&a.ca)?;
    cert::CertInfo::from_pem(&ca_pem, &format!("--ca {}", a.ca.display()))?;
    let credentials = match (&a.cert, &a.key, &a.token) {
        (Some(cert), Some(key), None) => {
            cert::check_pair(
                &files::read(cert)?,
                &format!("--cert {}", cert.display()),
                &files::read(key)?,
                &format!("--key {}", key.display()),
            )?;
            Credentials::ClientCertificate {
                cert: Material::from_path(cert, a.embed)?,
                key: Material::from_path(key, a.embed)?,
            }
        }
        (None, None, Some(token)) => {
            anyhow::ensure!(!token.trim().is_empty(), "--token: must not be empty");
            Credentials::Token(token.clone())
        }
        _ => anyhow::bail!("give either --cert and --key, or --token"),
    };
    let spec = KubeconfigSpec {
        cluster: a.cluster,
        server: a.server,
        ca: Material::from_path(&a.ca, a.embed)?,
        user: a.user,
        credentials,
        context: a.context,
    };
    Kubeconfig::build(&spec)?.write(&a.out, a.force)?;
    println!("wrote {}", a.out.display());
    Ok(())
}

async fn bootstrap_token_create(a: BootstrapTokenCreateArgs) -> anyhow::Result<()> {
    let options = TokenOptions {
        groups: a.groups,
        ttl: parse_ttl("--ttl", &a.ttl)?,
        description: a.description,
    };
    let token = match &a.token {
        Some(t) => BootstrapToken::parse(t)?,
        None => BootstrapToken::generate()?,
    };
    // Validate the groups even when only printing.
    for group in &options.groups {
        bootstrap::validate_group(group)?;
    }
    if !a.print_only {
        let kubeconfig = a.kubeconfig.ok_or_else(|| {
            anyhow::anyhow!("--kubeconfig (or KUBECONFIG) is required unless --print-only")
        })?;
        bootstrap::create(&kubeconfig, &token, &options)
            .await
            .with_context(|| format!("creating Secret kube-system/{}", token.secret_name()))?;
    }
    println!("{}", token.token());
    Ok(())
}

fn cluster(a: ClusterArgs) -> anyhow::Result<()> {
    let nodes = a
        .nodes
        .iter()
        .map(|n| n.parse::<Node>())
        .collect::<Result<Vec<_>, _>>()?;
    let mut spec = ClusterSpec::new(&a.dir, nodes);
    spec.service_cidr = a.service_cidr;
    spec.cluster_name = a.cluster_name;
    spec.cluster_domain = a.cluster_domain;
    spec.apiserver_url = a.apiserver_url;
    spec.local_apiserver_url = a.local_apiserver_url;
    spec.extra_sans = a.extra_sans;
    spec.algorithm = algorithm(a.ecdsa);
    spec.validity_days = a.days;
    spec.bootstrap_token_ttl = parse_ttl("--bootstrap-token-ttl", &a.bootstrap_token_ttl)?;
    spec.kubelet_certs = !a.no_kubelet_certs;
    spec.force = a.force;
    let out = cluster::generate(&spec)?;
    for p in &out.written {
        println!("wrote {}", p.display());
    }
    for p in &out.kept {
        println!("kept  {}", p.display());
    }
    println!("API server URL in kubeconfigs: {}", out.apiserver_url);
    for (node, token) in &out.bootstrap_tokens {
        println!(
            "bootstrap token for {node}: id {} (Secret kube-system/{})",
            token.id,
            token.secret_name()
        );
    }
    println!(
        "next: kubectl apply -f {} (or start the API server with --token-auth-file={})",
        a.dir.join("bootstrap-token-secrets.yaml").display(),
        a.dir.join("token.csv").display()
    );
    Ok(())
}
