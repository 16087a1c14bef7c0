//! Encryption at rest: upstream's `--encryption-provider-config`.
//!
//! Mirrors `k8s.io/apiserver/pkg/server/options/encryptionconfig` (loading and validating
//! an `apiserver.config.k8s.io/v1` `EncryptionConfiguration`, mapping group-resources to
//! transformers, wildcards included) and `k8s.io/apiserver/pkg/storage/value` with its
//! `encrypt/{aes,secretbox,identity}` transformers, byte for byte: a value written by
//! upstream's kube-apiserver into etcd is read here, and the other way round.
//!
//! The stored layout of one value, for the providers this crate has:
//!
//! | provider    | bytes in storage                                                          |
//! |-------------|---------------------------------------------------------------------------|
//! | `identity`  | the plaintext, unchanged                                                  |
//! | `aescbc`    | `k8s:enc:aescbc:v1:<key name>:` IV(16) AES-CBC(PKCS#7 padded plaintext)    |
//! | `aesgcm`    | `k8s:enc:aesgcm:v1:<key name>:` nonce(12) AES-GCM ciphertext, tag(16)      |
//! | `secretbox` | `k8s:enc:secretbox:v1:<key name>:` nonce(24) tag(16) XSalsa20 ciphertext   |
//!
//! `aesgcm` authenticates the storage key (the full etcd key, e.g.
//! `/registry/secrets/default/s1`) as additional data, as upstream's etcd3 store passes
//! `value.DefaultContext(key)`; `aescbc` and `secretbox` ignore it.
//!
//! KMS providers (`kms:` v1 and v2) are not supported: a configuration naming one is
//! rejected with an error naming its field.

mod config;
mod transformer;

pub use config::{ConfigError, EncryptionConfig, FieldError};
pub use transformer::{Error, Transformer};
