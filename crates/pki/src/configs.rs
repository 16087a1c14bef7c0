//! The API server's configuration files the seeds write with heredocs: the
//! `EncryptionConfiguration` for `--encryption-provider-config` (secrets encrypted with
//! `aescbc`, `identity` last so data written before encryption stays readable) and the
//! audit `Policy` for `--audit-policy-file`.
//!
//! The seeds write the long-removed `kind: EncryptionConfig` / `apiVersion: v1`; v1.33
//! reads only `apiserver.config.k8s.io/v1` `EncryptionConfiguration`, so that is written,
//! with the seeds' resources, providers and key name.

use base64::Engine;
use rsa::rand_core::RngCore;

use crate::{Error, Result};

/// A fresh AES-256 key, base64: the seeds' `head -c 32 /dev/urandom | base64`.
pub fn random_aescbc_key() -> Result<String> {
    let mut key = [0u8; 32];
    rsa::rand_core::OsRng
        .try_fill_bytes(&mut key)
        .map_err(Error::Random)?;
    Ok(base64::engine::general_purpose::STANDARD.encode(key))
}

/// The encryption configuration with `key` (base64 of 32 bytes) as `key1`.
pub fn encryption_config(key: &str) -> String {
    format!(
        "apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
  - resources:
      - secrets
    providers:
      - aescbc:
          keys:
            - name: key1
              secret: {key}
      - identity: {{}}
"
    )
}

/// The seeds' audit policy: every request logged at `Metadata` level (who, what, when;
/// no bodies, so no secret data in the log).
pub fn audit_policy() -> &'static str {
    "apiVersion: audit.k8s.io/v1
kind: Policy
rules:
  - level: Metadata
"
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn encryption_config_has_a_fresh_32_byte_key() {
        let a = random_aescbc_key().unwrap();
        let b = random_aescbc_key().unwrap();
        assert_ne!(a, b);
        let raw = base64::engine::general_purpose::STANDARD
            .decode(&a)
            .unwrap();
        assert_eq!(raw.len(), 32);
        let text = encryption_config(&a);
        let doc: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
        assert_eq!(doc["kind"], "EncryptionConfiguration");
        let providers = &doc["resources"][0]["providers"];
        assert_eq!(providers[0]["aescbc"]["keys"][0]["name"], "key1");
        assert_eq!(providers[0]["aescbc"]["keys"][0]["secret"], a.as_str());
        assert_eq!(providers[1]["identity"], serde_json::json!({}));
        let policy: serde_json::Value = serde_saphyr::from_str(audit_policy()).unwrap();
        assert_eq!(policy["rules"][0]["level"], "Metadata");
    }
}
