//! kube-apiserver's security flags (authentication, authorization, service-account
//! tokens) and the other flags the seeds' unit files pass, with upstream's names and
//! defaults. Flags for features not built yet are accepted and reported at start.

use std::path::PathBuf;

use clap::{ArgAction, Args};
use ferrokube_apiserver::SecurityConfig;

/// A Go-style boolean flag: `--x`, `--x=true`, `--x=false`.
fn go_bool(s: &str) -> Result<bool, String> {
    match s {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        other => Err(format!("invalid boolean value {other:?}")),
    }
}

fn comma_list(v: &[String]) -> Vec<String> {
    v.iter()
        .flat_map(|s| s.split(','))
        .map(|s| s.trim().trim_matches('"').to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

#[derive(Args, Debug, Clone)]
pub struct SecurityFlags {
    /// Serve unauthenticated requests as system:anonymous.
    #[arg(long, value_parser = go_bool, default_value = "true", num_args = 0..=1, default_missing_value = "true", action = ArgAction::Set)]
    pub anonymous_auth: bool,
    /// CA bundle authenticating client certificates (CN = user, O = groups).
    #[arg(long, value_name = "FILE")]
    pub client_ca_file: Option<PathBuf>,
    /// Static bearer tokens: CSV `token,user,uid,"group1,group2"`.
    #[arg(long, value_name = "FILE")]
    pub token_auth_file: Option<PathBuf>,
    /// Authenticate bootstrap tokens (Secrets `bootstrap-token-<id>` in kube-system).
    #[arg(long, alias = "experimental-bootstrap-token-auth", value_parser = go_bool, default_value = "false", num_args = 0..=1, default_missing_value = "true", action = ArgAction::Set)]
    pub enable_bootstrap_token_auth: bool,
    /// Public keys (PEM) verifying service-account tokens (repeatable).
    #[arg(long, value_name = "FILE")]
    pub service_account_key_file: Vec<PathBuf>,
    /// Private key signing service-account tokens (TokenRequest).
    #[arg(long, value_name = "FILE", alias = "service-account-private-key-file")]
    pub service_account_signing_key_file: Option<PathBuf>,
    /// Issuer of service-account tokens (repeatable; the first issues).
    #[arg(long)]
    pub service_account_issuer: Vec<String>,
    /// Audiences of the API (default: the first issuer).
    #[arg(long)]
    pub api_audiences: Vec<String>,
    /// Check that service-account tokens' Secrets and accounts still exist.
    #[arg(long, value_parser = go_bool, default_value = "true", num_args = 0..=1, default_missing_value = "true", action = ArgAction::Set)]
    pub service_account_lookup: bool,
    /// The longest expiration a TokenRequest may get (Go duration).
    #[arg(long, value_parser = crate::duration::parse_go_duration)]
    pub service_account_max_token_expiration: Option<std::time::Duration>,
    /// Overrides the JWKS URI in the OpenID discovery document.
    #[arg(long)]
    pub service_account_jwks_uri: Option<String>,
    /// CA bundle of the authenticating front proxy.
    #[arg(long, value_name = "FILE")]
    pub requestheader_client_ca_file: Option<PathBuf>,
    /// Front-proxy certificate common names accepted (empty: any).
    #[arg(long)]
    pub requestheader_allowed_names: Vec<String>,
    /// Headers carrying the user name (e.g. X-Remote-User).
    #[arg(long)]
    pub requestheader_username_headers: Vec<String>,
    /// Headers carrying the user's uid.
    #[arg(long)]
    pub requestheader_uid_headers: Vec<String>,
    /// Headers carrying the groups (e.g. X-Remote-Group).
    #[arg(long)]
    pub requestheader_group_headers: Vec<String>,
    /// Header prefixes carrying extra attributes (e.g. X-Remote-Extra-).
    #[arg(long)]
    pub requestheader_extra_headers_prefix: Vec<String>,
    /// Ordered authorizers: AlwaysAllow, AlwaysDeny, RBAC, Node (comma-separated).
    #[arg(long, default_value = "AlwaysAllow")]
    pub authorization_mode: String,
}

impl Default for SecurityFlags {
    /// The flags' defaults, as clap applies them.
    fn default() -> Self {
        SecurityFlags {
            anonymous_auth: true,
            client_ca_file: None,
            token_auth_file: None,
            enable_bootstrap_token_auth: false,
            service_account_key_file: Vec::new(),
            service_account_signing_key_file: None,
            service_account_issuer: Vec::new(),
            api_audiences: Vec::new(),
            service_account_lookup: true,
            service_account_max_token_expiration: None,
            service_account_jwks_uri: None,
            requestheader_client_ca_file: None,
            requestheader_allowed_names: Vec::new(),
            requestheader_username_headers: Vec::new(),
            requestheader_uid_headers: Vec::new(),
            requestheader_group_headers: Vec::new(),
            requestheader_extra_headers_prefix: Vec::new(),
            authorization_mode: "AlwaysAllow".into(),
        }
    }
}

impl SecurityFlags {
    pub fn to_config(&self) -> SecurityConfig {
        let mut cfg = SecurityConfig::default();
        let a = &mut cfg.authn;
        a.anonymous_auth = self.anonymous_auth;
        a.client_ca_file = self.client_ca_file.clone();
        a.token_auth_file = self.token_auth_file.clone();
        a.enable_bootstrap_token_auth = self.enable_bootstrap_token_auth;
        a.service_account_key_files = self.service_account_key_file.clone();
        a.service_account_issuers = comma_list(&self.service_account_issuer);
        a.api_audiences = comma_list(&self.api_audiences);
        a.service_account_lookup = self.service_account_lookup;
        a.requestheader_client_ca_file = self.requestheader_client_ca_file.clone();
        a.requestheader_allowed_names = comma_list(&self.requestheader_allowed_names);
        a.requestheader_username_headers = comma_list(&self.requestheader_username_headers);
        a.requestheader_uid_headers = comma_list(&self.requestheader_uid_headers);
        a.requestheader_group_headers = comma_list(&self.requestheader_group_headers);
        a.requestheader_extra_headers_prefix = comma_list(&self.requestheader_extra_headers_prefix);
        cfg.authorization_mode = self.authorization_mode.clone();
        cfg.service_account_signing_key_file = self.service_account_signing_key_file.clone();
        cfg.service_account_max_token_expiration = self
            .service_account_max_token_expiration
            .map(|d| d.as_secs() as i64);
        cfg.service_account_jwks_uri = self.service_account_jwks_uri.clone();
        cfg
    }
}

/// The admission plugins built (NamespaceLifecycle is always on).
const SUPPORTED_ADMISSION: &[&str] = &[
    "NamespaceLifecycle",
    "NodeRestriction",
    "Priority",
    "DefaultTolerationSeconds",
    "LimitRanger",
    "DefaultStorageClass",
    "ResourceQuota",
    "PodSecurity",
    "RuntimeClass",
    "MutatingAdmissionWebhook",
    "ValidatingAdmissionWebhook",
    "ValidatingAdmissionPolicy",
    "ServiceAccount",
];

/// Flags the seeds pass that ferrokube accepts for compatibility.
#[derive(Args, Debug, Clone, Default)]
pub struct CompatFlags {
    /// EncryptionConfiguration: which resources are encrypted at rest, and how.
    #[arg(long, value_name = "FILE")]
    pub encryption_provider_config: Option<PathBuf>,
    /// audit.k8s.io/v1 Policy deciding what is logged (with --audit-log-path).
    #[arg(long, value_name = "FILE")]
    pub audit_policy_file: Option<PathBuf>,
    /// Where audit events go, one JSON line each ("-" = standard output).
    #[arg(long, value_name = "FILE")]
    pub audit_log_path: Option<PathBuf>,
    /// Days to keep rotated audit logs (0: forever).
    #[arg(long, default_value_t = 0)]
    pub audit_log_maxage: u64,
    /// Rotated audit logs to keep (0: all).
    #[arg(long, default_value_t = 0)]
    pub audit_log_maxbackup: usize,
    /// Megabytes before the audit log rotates (0: never).
    #[arg(long, default_value_t = 0)]
    pub audit_log_maxsize: u64,
    /// Drop request/response bodies of events over --audit-log-truncate-max-event-size.
    #[arg(long, value_parser = go_bool, default_value = "false", num_args = 0..=1, default_missing_value = "true", action = ArgAction::Set)]
    pub audit_log_truncate_enabled: bool,
    /// Largest audit event in bytes when truncation is enabled.
    #[arg(long, default_value_t = 102_400)]
    pub audit_log_truncate_max_event_size: usize,
    /// Admission plugins to turn on besides the default-on ones: NodeRestriction
    /// (others not built, such as AlwaysPullImages, are only logged).
    #[arg(long, alias = "admission-control")]
    pub enable_admission_plugins: Vec<String>,
    /// Admission plugins to turn off (of the default-on ServiceAccount, Priority,
    /// DefaultTolerationSeconds, LimitRanger, DefaultStorageClass, ResourceQuota,
    /// PodSecurity, RuntimeClass, MutatingAdmissionWebhook, ValidatingAdmissionPolicy,
    /// ValidatingAdmissionWebhook).
    #[arg(long)]
    pub disable_admission_plugins: Vec<String>,
    #[arg(long, hide = true)]
    pub default_not_ready_toleration_seconds: Option<i64>,
    #[arg(long, hide = true)]
    pub default_unreachable_toleration_seconds: Option<i64>,
    #[arg(long, hide = true)]
    pub delete_collection_workers: Option<u32>,
    #[arg(long, hide = true, value_parser = go_bool, num_args = 0..=1, default_missing_value = "true", action = ArgAction::Set)]
    pub profiling: Option<bool>,
    #[arg(long, hide = true)]
    pub runtime_config: Vec<String>,
    #[arg(long, hide = true, value_parser = go_bool, num_args = 0..=1, default_missing_value = "true", action = ArgAction::Set)]
    pub allow_privileged: Option<bool>,
    #[arg(long, hide = true)]
    pub apiserver_count: Option<u32>,
    /// The CA that signs kubelets' serving certificates (unset: not checked).
    #[arg(long, value_name = "FILE")]
    pub kubelet_certificate_authority: Option<PathBuf>,
    /// The client certificate the API server presents to kubelets (logs, exec,
    /// port-forward, nodes/proxy).
    #[arg(long, value_name = "FILE")]
    pub kubelet_client_certificate: Option<PathBuf>,
    /// The key of --kubelet-client-certificate.
    #[arg(long, value_name = "FILE")]
    pub kubelet_client_key: Option<PathBuf>,
    /// Node address types to reach kubelets at, in order of preference
    /// (default Hostname,InternalDNS,InternalIP,ExternalDNS,ExternalIP).
    #[arg(long, value_name = "TYPES")]
    pub kubelet_preferred_address_types: Option<String>,
    #[arg(long, hide = true, value_parser = go_bool, num_args = 0..=1, default_missing_value = "true", action = ArgAction::Set)]
    pub kubelet_https: Option<bool>,
    /// Client certificate used to prove the identity of the aggregator or kube-apiserver
    /// when it must call out during a request (aggregated API servers such as
    /// metrics-server).
    #[arg(long, value_name = "FILE")]
    pub proxy_client_cert_file: Option<PathBuf>,
    /// Private key for --proxy-client-cert-file.
    #[arg(long, value_name = "FILE")]
    pub proxy_client_key_file: Option<PathBuf>,
    /// Turns on aggregator routing requests to endpoint IPs rather than cluster IP.
    #[arg(long, value_parser = go_bool, num_args = 0..=1, default_missing_value = "true", action = ArgAction::Set)]
    pub enable_aggregator_routing: Option<bool>,
    #[arg(long, hide = true, value_parser = go_bool, num_args = 0..=1, default_missing_value = "true", action = ArgAction::Set)]
    pub enable_swagger_ui: Option<bool>,
    #[arg(long, hide = true, value_parser = go_bool, num_args = 0..=1, default_missing_value = "true", action = ArgAction::Set)]
    pub logtostderr: Option<bool>,
    /// Log verbosity (upstream's klog level; RUST_LOG decides here).
    #[arg(long = "v", hide = true)]
    pub verbosity: Option<u32>,
}

impl CompatFlags {
    pub fn kubelet_config(&self) -> ferrokube_apiserver::KubeletClientConfig {
        let mut c = ferrokube_apiserver::KubeletClientConfig {
            client_certificate: self.kubelet_client_certificate.clone(),
            client_key: self.kubelet_client_key.clone(),
            certificate_authority: self.kubelet_certificate_authority.clone(),
            ..Default::default()
        };
        if let Some(types) = &self.kubelet_preferred_address_types {
            c.preferred_address_types = types
                .split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_string)
                .collect();
        }
        c
    }

    pub fn aggregator_config(&self) -> ferrokube_apiserver::AggregatorConfig {
        ferrokube_apiserver::AggregatorConfig {
            proxy_client_cert_file: self.proxy_client_cert_file.clone(),
            proxy_client_key_file: self.proxy_client_key_file.clone(),
            enable_aggregator_routing: self.enable_aggregator_routing.unwrap_or(false),
        }
    }

    pub fn audit_config(&self) -> ferrokube_apiserver::AuditConfig {
        ferrokube_apiserver::AuditConfig {
            policy_file: self.audit_policy_file.clone(),
            log_path: self.audit_log_path.clone(),
            max_age_days: self.audit_log_maxage,
            max_backups: self.audit_log_maxbackup,
            max_size_mb: self.audit_log_maxsize,
            truncate_enabled: self.audit_log_truncate_enabled,
            truncate_max_event_size: self.audit_log_truncate_max_event_size,
        }
    }

    /// Says what is accepted but not acted on.
    pub fn warn_unsupported(&self) {
        if self.audit_policy_file.is_some() != self.audit_log_path.is_some() {
            tracing::warn!("auditing needs both --audit-policy-file and --audit-log-path: no audit log is written");
        }
        let admission: Vec<&str> = self
            .enable_admission_plugins
            .iter()
            .flat_map(|s| s.split(','))
            .filter(|p| !p.is_empty() && !SUPPORTED_ADMISSION.contains(p))
            .collect();
        if !admission.is_empty() {
            tracing::warn!(plugins = ?admission, supported = ?SUPPORTED_ADMISSION, "these admission plugins are not supported yet");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_and_booleans() {
        assert_eq!(
            comma_list(&["\"aggregator\",front".into(), "x".into()]),
            ["aggregator", "front", "x"]
        );
        assert_eq!(go_bool("false"), Ok(false));
        assert!(go_bool("nope").is_err());
    }
}
