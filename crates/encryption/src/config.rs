//! The `--encryption-provider-config` file: upstream's `EncryptionConfiguration`
//! (`apiserver.config.k8s.io/v1`, and `v1` `EncryptionConfig`, which upstream still
//! registers "due to a docs bug" and the seeds write), its validation
//! (`apis/apiserver/validation/validation_encryption.go`) and the group-resource →
//! transformer map of `encryptionconfig.getTransformerOverridesAndKMSPluginProbes`.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use serde::Deserialize;

use crate::transformer::{KeyCipher, NamedKey, Provider, Transformer};

/// Go's `base64.StdEncoding`: padding required, trailing bits tolerated, and line breaks
/// ignored (Go's decoder skips `\r` and `\n`).
const GO_STD_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::RequireCanonical),
);

const AES_KEY_SIZES: &[usize] = &[16, 24, 32];
const SECRETBOX_KEY_SIZES: &[usize] = &[32];

/// Why the encryption configuration could not be loaded. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("error reading encryption provider configuration file {path:?}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is empty.
    #[error("encryption provider configuration file {path:?} is empty")]
    Empty { path: PathBuf },
    /// The file is not YAML/JSON of the expected shape (unknown fields included: upstream
    /// decodes strictly).
    #[error("error decoding encryption provider configuration file {path:?}: {message}")]
    Decode { path: PathBuf, message: String },
    /// `apiVersion`/`kind` name something other than an `EncryptionConfiguration`.
    #[error(
        "error decoding encryption provider configuration file {path:?}: no kind {kind:?} is registered for version {api_version:?}; expected apiVersion apiserver.config.k8s.io/v1, kind EncryptionConfiguration"
    )]
    Kind {
        path: PathBuf,
        api_version: String,
        kind: String,
    },
    /// Validation failed; one entry per offending field, as upstream's field errors.
    #[error("invalid encryption provider configuration file {path:?}: {}", join_field_errors(.errors))]
    Invalid {
        path: PathBuf,
        errors: Vec<FieldError>,
    },
    /// A resource is masked by a wildcard rule of an earlier entry (upstream's build error).
    #[error(
        "invalid encryption provider configuration file {path:?}: resource {resource:?} is masked by earlier rule {rule:?}"
    )]
    Masked {
        path: PathBuf,
        resource: String,
        rule: String,
    },
}

/// One validation failure: the field path (`resources[0].providers[1].aescbc.keys[0].secret`)
/// and upstream's message for it (`Invalid value: "REDACTED": secrets must be base64 encoded`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    fn required(field: impl Into<String>, detail: impl fmt::Display) -> Self {
        FieldError {
            field: field.into(),
            message: format!("Required value: {detail}"),
        }
    }

    fn invalid(
        field: impl Into<String>,
        value: impl fmt::Display,
        detail: impl fmt::Display,
    ) -> Self {
        FieldError {
            field: field.into(),
            message: format!("Invalid value: {value}: {detail}"),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

fn join_field_errors(errors: &[FieldError]) -> String {
    match errors {
        [one] => one.to_string(),
        many => {
            let parts: Vec<String> = many.iter().map(ToString::to_string).collect();
            format!("[{}]", parts.join(", "))
        }
    }
}

/// A loaded, validated encryption configuration: the transformer of every configured
/// group-resource (wildcards kept as written, resolved at lookup as upstream does).
pub struct EncryptionConfig {
    transformers: HashMap<GroupResource, Arc<Transformer>>,
}

impl fmt::Debug for EncryptionConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut entries: Vec<_> = self.transformers.iter().collect();
        entries.sort_by(|a, b| a.0.cmp(b.0));
        f.debug_map()
            .entries(entries.into_iter().map(|(gr, t)| (gr.yaml_string(), t)))
            .finish()
    }
}

impl EncryptionConfig {
    /// Reads, decodes, validates and builds the configuration at `path`
    /// (kube-apiserver's `--encryption-provider-config`).
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let data = std::fs::read(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        if data.is_empty() {
            return Err(ConfigError::Empty {
                path: path.to_path_buf(),
            });
        }
        let text = String::from_utf8(data).map_err(|e| ConfigError::Decode {
            path: path.to_path_buf(),
            message: format!("the file is not UTF-8: {e}"),
        })?;
        Self::from_yaml(&text, path)
    }

    /// Decodes, validates and builds a configuration from its text; `path` only names the
    /// source in errors.
    pub fn from_yaml(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let file: EncryptionConfigurationFile =
            serde_saphyr::from_str(text).map_err(|e| ConfigError::Decode {
                path: path.to_path_buf(),
                message: decode_message(&e),
            })?;
        let api_version = file.api_version.clone().unwrap_or_default();
        let kind = file.kind.clone().unwrap_or_default();
        let known = matches!(
            (api_version.as_str(), kind.as_str()),
            ("apiserver.config.k8s.io/v1", "EncryptionConfiguration") | ("v1", "EncryptionConfig")
        );
        if !known {
            return Err(ConfigError::Kind {
                path: path.to_path_buf(),
                api_version,
                kind,
            });
        }
        let errors = validate(&file);
        if !errors.is_empty() {
            return Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                errors,
            });
        }
        build(&file, path)
    }

    /// The transformer for a group-resource (`""`/`"secrets"`, `"apps"`/`"deployments"`):
    /// the exact rule, else `*.<group>`, else `*.*`; `None` when no rule covers it (the
    /// caller then stores values as they are: [`Transformer::identity`] is upstream's
    /// behaviour for that case).
    pub fn transformer_for(&self, group: &str, resource: &str) -> Option<Arc<Transformer>> {
        let lookups = [
            GroupResource::new(group, resource),
            GroupResource::new(group, "*"),
            GroupResource::new("*", "*"),
        ];
        lookups
            .iter()
            .find_map(|gr| self.transformers.get(gr))
            .cloned()
    }

    /// The configured rules, as written in the file (`secrets`, `*.apps`, `*.`, `*.*`).
    pub fn resources(&self) -> Vec<String> {
        let mut rules: Vec<String> = self
            .transformers
            .keys()
            .map(GroupResource::yaml_string)
            .collect();
        rules.sort();
        rules
    }
}

/// Keeps decode errors to their first line: serde-saphyr may render a snippet of the
/// input, which would put key material into logs.
fn decode_message(error: &serde_saphyr::Error) -> String {
    let text = error.to_string();
    text.lines().next().unwrap_or_default().trim().to_string()
}

/// `schema.GroupResource`, parsed as `schema.ParseGroupResource`: the resource is before
/// the first dot, the group after it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct GroupResource {
    group: String,
    resource: String,
}

impl GroupResource {
    fn new(group: &str, resource: &str) -> Self {
        GroupResource {
            group: group.to_string(),
            resource: resource.to_string(),
        }
    }

    fn parse(text: &str) -> Self {
        match text.split_once('.') {
            Some((resource, group)) => GroupResource::new(group, resource),
            None => GroupResource::new("", text),
        }
    }

    /// Upstream's `grYAMLString`.
    fn yaml_string(&self) -> String {
        if self.group.is_empty() {
            if self.resource == "*" {
                "*.".to_string()
            } else {
                self.resource.clone()
            }
        } else {
            format!("{}.{}", self.resource, self.group)
        }
    }
}

// The file, field for field as upstream's v1 types, decoded strictly.

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct EncryptionConfigurationFile {
    api_version: Option<String>,
    kind: Option<String>,
    #[serde(default)]
    resources: Option<Vec<ResourceConfiguration>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResourceConfiguration {
    #[serde(default)]
    resources: Option<Vec<String>>,
    #[serde(default)]
    providers: Option<Vec<ProviderConfiguration>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProviderConfiguration {
    #[serde(default)]
    aesgcm: Option<KeysConfiguration>,
    #[serde(default)]
    aescbc: Option<KeysConfiguration>,
    #[serde(default)]
    secretbox: Option<KeysConfiguration>,
    #[serde(default)]
    identity: Option<IdentityConfiguration>,
    #[serde(default)]
    kms: Option<KmsConfiguration>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeysConfiguration {
    #[serde(default)]
    keys: Option<Vec<Key>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Key {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    secret: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct IdentityConfiguration {}

/// Accepted so that a KMS provider is refused by name rather than as an unknown field.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct KmsConfiguration {
    #[serde(default)]
    api_version: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    endpoint: Option<String>,
    #[serde(default, rename = "cachesize")]
    _cachesize: Option<serde::de::IgnoredAny>,
    #[serde(default, rename = "timeout")]
    _timeout: Option<serde::de::IgnoredAny>,
}

/// Which one provider an element holds; `Err(count)` when it holds none or several.
enum ProviderKind<'a> {
    Aesgcm(&'a KeysConfiguration),
    Aescbc(&'a KeysConfiguration),
    Secretbox(&'a KeysConfiguration),
    Identity,
    Kms(&'a KmsConfiguration),
}

impl ProviderConfiguration {
    fn kind(&self) -> Result<ProviderKind<'_>, usize> {
        let mut found = Vec::new();
        if let Some(kms) = &self.kms {
            found.push(ProviderKind::Kms(kms));
        }
        if let Some(keys) = &self.aesgcm {
            found.push(ProviderKind::Aesgcm(keys));
        }
        if let Some(keys) = &self.aescbc {
            found.push(ProviderKind::Aescbc(keys));
        }
        if let Some(keys) = &self.secretbox {
            found.push(ProviderKind::Secretbox(keys));
        }
        if self.identity.is_some() {
            found.push(ProviderKind::Identity);
        }
        if found.len() == 1 {
            found.pop().ok_or(0)
        } else {
            Err(found.len())
        }
    }

    fn names(&self) -> String {
        let mut names = Vec::new();
        for (present, name) in [
            (self.kms.is_some(), "kms"),
            (self.aesgcm.is_some(), "aesgcm"),
            (self.aescbc.is_some(), "aescbc"),
            (self.secretbox.is_some(), "secretbox"),
            (self.identity.is_some(), "identity"),
        ] {
            if present {
                names.push(name);
            }
        }
        format!("{{{}}}", names.join(", "))
    }
}

/// `ValidateEncryptionConfiguration`, message for message, plus the refusal of KMS.
fn validate(file: &EncryptionConfigurationFile) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let entries = file.resources.as_deref().unwrap_or_default();
    if entries.is_empty() {
        errors.push(FieldError::required(
            "resources",
            "at least one resources is required",
        ));
        return errors;
    }
    for (i, entry) in entries.iter().enumerate() {
        let r = format!("resources[{i}].resources");
        let p = format!("resources[{i}].providers");
        let resources = entry.resources.as_deref().unwrap_or_default();
        if resources.is_empty() {
            errors.push(FieldError::required(
                &r,
                format!("at least one {r} is required"),
            ));
        }
        validate_resource_overlap(resources, &r, &mut errors);
        validate_resource_names(resources, &r, &mut errors);

        let providers = entry.providers.as_deref().unwrap_or_default();
        if providers.is_empty() {
            errors.push(FieldError::required(
                &p,
                format!("at least one {p} is required"),
            ));
        }
        for (j, provider) in providers.iter().enumerate() {
            let path = format!("{p}[{j}]");
            match provider.kind() {
                Err(0) => errors.push(FieldError::invalid(
                    &path,
                    provider.names(),
                    "provider does not contain any of the expected providers: KMS, AESGCM, AESCBC, Secretbox, Identity",
                )),
                Err(_) => errors.push(FieldError::invalid(
                    &path,
                    provider.names(),
                    "more than one provider specified in a single element, should split into different list elements",
                )),
                Ok(ProviderKind::Aesgcm(keys)) => {
                    validate_keys(keys, &format!("{path}.aesgcm.keys"), AES_KEY_SIZES, &mut errors)
                }
                Ok(ProviderKind::Aescbc(keys)) => {
                    validate_keys(keys, &format!("{path}.aescbc.keys"), AES_KEY_SIZES, &mut errors)
                }
                Ok(ProviderKind::Secretbox(keys)) => validate_keys(
                    keys,
                    &format!("{path}.secretbox.keys"),
                    SECRETBOX_KEY_SIZES,
                    &mut errors,
                ),
                Ok(ProviderKind::Identity) => {}
                Ok(ProviderKind::Kms(kms)) => errors.push(FieldError {
                    field: format!("{path}.kms"),
                    message: format!(
                        "Unsupported value: KMS provider {:?} (apiVersion {}, endpoint {:?}): kms providers are not supported by ferrokube; use aescbc, aesgcm or secretbox",
                        kms.name.as_deref().unwrap_or_default(),
                        kms.api_version.as_deref().unwrap_or("v1"),
                        kms.endpoint.as_deref().unwrap_or_default(),
                    ),
                }),
            }
        }
    }
    errors
}

fn go_string_list(values: &[String]) -> String {
    let quoted: Vec<String> = values.iter().map(|v| format!("{v:?}")).collect();
    format!("[]string{{{}}}", quoted.join(", "))
}

fn validate_resource_overlap(resources: &[String], field: &str, errors: &mut Vec<FieldError>) {
    if resources.len() < 2 {
        return;
    }
    let parsed: Vec<GroupResource> = resources.iter().map(|r| GroupResource::parse(r)).collect();
    let any = GroupResource::new("*", "*");
    let (mut has_overlap, mut has_duplicate) = (false, false);
    for (i, r1) in parsed.iter().enumerate() {
        for (j, r2) in parsed.iter().enumerate() {
            if i == j {
                continue;
            }
            if r1 == r2 && !has_duplicate {
                has_duplicate = true;
                continue;
            }
            if has_overlap {
                continue;
            }
            if *r1 == any {
                has_overlap = true;
                continue;
            }
            if r1.group != r2.group {
                continue;
            }
            if r1.resource == "*" || r2.resource == "*" {
                has_overlap = true;
            }
        }
    }
    if has_duplicate {
        errors.push(FieldError::invalid(
            field,
            go_string_list(resources),
            "the same resource cannot be specified multiple times",
        ));
    }
    if has_overlap {
        errors.push(FieldError::invalid(
            field,
            go_string_list(resources),
            "using overlapping resources such as 'secrets' and '*.' in the same resource list is not allowed as they will be masked",
        ));
    }
}

fn validate_resource_names(resources: &[String], field: &str, errors: &mut Vec<FieldError>) {
    for (j, res) in resources.iter().enumerate() {
        let path = format!("{field}[{j}]");
        let gr = GroupResource::parse(res);
        let detail = if res.to_lowercase() != *res {
            "resource name should not contain capital letters"
        } else if res == "*" {
            "use '*.' to encrypt all the resources from core API group or *.* to encrypt all resources"
        } else if matches!(
            res.as_str(),
            "apiserveripinfo" | "serviceipallocations" | "servicenodeportallocations"
        ) {
            "resources which do not have REST API/s cannot be encrypted"
        } else if gr.group == "events.k8s.io" {
            "'*.events.k8s.io' objects are stored using the 'events' API group in etcd. Use 'events' instead in the config file"
        } else if gr.group == "extensions" {
            "'extensions' group has been removed and cannot be used for encryption"
        } else if gr.group == "*" && gr.resource != "*" {
            "encrypting the same resource across groups is not supported"
        } else {
            continue;
        };
        errors.push(FieldError::invalid(path, format!("{res:?}"), detail));
    }
}

fn validate_keys(
    config: &KeysConfiguration,
    field: &str,
    sizes: &[usize],
    errors: &mut Vec<FieldError>,
) {
    let keys = config.keys.as_deref().unwrap_or_default();
    if keys.is_empty() {
        errors.push(FieldError::required(field, "at least one keys is required"));
        return;
    }
    for (i, key) in keys.iter().enumerate() {
        let path = format!("{field}[{i}]");
        if key.name.as_deref().unwrap_or_default().is_empty() {
            errors.push(FieldError::required(
                format!("{path}.name"),
                "name is a mandatory field for a key",
            ));
        }
        let secret = key.secret.as_deref().unwrap_or_default();
        if secret.is_empty() {
            errors.push(FieldError::required(
                format!("{path}.secret"),
                "secret is a mandatory field for a key",
            ));
            continue;
        }
        match decode_secret(secret) {
            Err(()) => errors.push(FieldError::invalid(
                format!("{path}.secret"),
                "\"REDACTED\"",
                "secrets must be base64 encoded",
            )),
            Ok(bytes) if !sizes.contains(&bytes.len()) => {
                let expected: Vec<String> = sizes.iter().map(ToString::to_string).collect();
                errors.push(FieldError::invalid(
                    format!("{path}.secret"),
                    "\"REDACTED\"",
                    format!(
                        "secret is not of the expected length, got {}, expected one of [{}]",
                        bytes.len(),
                        expected.join(" ")
                    ),
                ));
            }
            Ok(_) => {}
        }
    }
}

fn decode_secret(secret: &str) -> Result<Vec<u8>, ()> {
    let cleaned: String = secret
        .chars()
        .filter(|c| *c != '\r' && *c != '\n')
        .collect();
    GO_STD_BASE64.decode(cleaned).map_err(|_| ())
}

/// Builds the transformers of a validated configuration
/// (`getTransformerOverridesAndKMSPluginProbes`): a resource named in several entries
/// gets their providers appended in order; a rule masked by an earlier wildcard is an error.
fn build(file: &EncryptionConfigurationFile, path: &Path) -> Result<EncryptionConfig, ConfigError> {
    let any = GroupResource::new("*", "*");
    let mut providers_of: HashMap<GroupResource, Vec<Arc<Provider>>> = HashMap::new();
    for (i, entry) in file
        .resources
        .as_deref()
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let providers = build_providers(entry, i, path)?;
        for resource in entry.resources.as_deref().unwrap_or_default() {
            let gr = GroupResource::parse(resource);
            for rule in [GroupResource::new(&gr.group, "*"), any.clone()] {
                if providers_of.contains_key(&rule) {
                    return Err(ConfigError::Masked {
                        path: path.to_path_buf(),
                        resource: gr.yaml_string(),
                        rule: rule.yaml_string(),
                    });
                }
            }
            providers_of
                .entry(gr)
                .or_default()
                .extend(providers.iter().cloned());
        }
    }
    let transformers = providers_of
        .into_iter()
        .map(|(gr, providers)| (gr, Arc::new(Transformer::new(providers))))
        .collect();
    Ok(EncryptionConfig { transformers })
}

fn build_providers(
    entry: &ResourceConfiguration,
    index: usize,
    path: &Path,
) -> Result<Vec<Arc<Provider>>, ConfigError> {
    let mut providers = Vec::new();
    for (j, provider) in entry
        .providers
        .as_deref()
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let field = format!("resources[{index}].providers[{j}]");
        let built = match provider.kind() {
            Ok(ProviderKind::Identity) => Provider::Identity,
            Ok(ProviderKind::Aescbc(keys)) => Provider::aescbc(build_keys(
                keys,
                &format!("{field}.aescbc.keys"),
                path,
                KeyCipher::cbc,
            )?),
            Ok(ProviderKind::Aesgcm(keys)) => Provider::aesgcm(build_keys(
                keys,
                &format!("{field}.aesgcm.keys"),
                path,
                KeyCipher::gcm,
            )?),
            Ok(ProviderKind::Secretbox(keys)) => Provider::secretbox(build_keys(
                keys,
                &format!("{field}.secretbox.keys"),
                path,
                KeyCipher::secretbox,
            )?),
            // Validation refuses these before building.
            Ok(ProviderKind::Kms(_)) | Err(_) => {
                return Err(invalid(path, &field, "provider cannot be built"));
            }
        };
        providers.push(Arc::new(built));
    }
    Ok(providers)
}

fn build_keys<E>(
    config: &KeysConfiguration,
    field: &str,
    path: &Path,
    make: impl Fn(&[u8]) -> Result<KeyCipher, E>,
) -> Result<Vec<NamedKey>, ConfigError> {
    let mut keys = Vec::new();
    for (i, key) in config
        .keys
        .as_deref()
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let secret_field = format!("{field}[{i}].secret");
        let secret = decode_secret(key.secret.as_deref().unwrap_or_default())
            .map_err(|()| invalid(path, &secret_field, "secrets must be base64 encoded"))?;
        let cipher = make(&secret)
            .map_err(|_| invalid(path, &secret_field, "secret is not of the expected length"))?;
        keys.push(NamedKey::new(
            key.name.as_deref().unwrap_or_default(),
            cipher,
        ));
    }
    Ok(keys)
}

fn invalid(path: &Path, field: &str, detail: &str) -> ConfigError {
    ConfigError::Invalid {
        path: path.to_path_buf(),
        errors: vec![FieldError::invalid(field, "\"REDACTED\"", detail)],
    }
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
