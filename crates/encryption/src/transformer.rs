//! The value transformers: upstream's `storage/value` prefix transformers and the
//! `encrypt/{aes,secretbox,identity}` providers under them.
//!
//! One [`Transformer`] is the ordered provider list of one `resources[]` entry. Writing
//! uses the first provider (and its first key); reading tries every provider whose prefix
//! matches, in order, exactly as upstream's `prefixTransformers`: a failure under a
//! matching prefix does not stop later providers from being tried (two `aescbc` providers
//! share `k8s:enc:aescbc:v1:` during a rotation), identity skips data that is encrypted,
//! and any read not served by the first provider and its first key is *stale*.

use std::fmt;
use std::sync::Arc;

use aes::{Aes128, Aes192, Aes256};
use aes_gcm::aead::consts::U12;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes128Gcm, Aes256Gcm, AesGcm};
use cbc::cipher::block_padding::{NoPadding, Pkcs7};
use cbc::cipher::{BlockDecryptMut, BlockEncryptMut, InnerIvInit};
use crypto_secretbox::XSalsa20Poly1305;

/// AES-192 in GCM mode with upstream's 12-byte nonce (aes-gcm names only 128 and 256).
type Aes192Gcm = AesGcm<Aes192, U12>;

/// The prefix every encrypted value starts with; identity refuses to read such data.
pub(crate) const ENCRYPTED_PREFIX: &[u8] = b"k8s:enc:";
pub(crate) const AESCBC_PREFIX: &[u8] = b"k8s:enc:aescbc:v1:";
pub(crate) const AESGCM_PREFIX: &[u8] = b"k8s:enc:aesgcm:v1:";
pub(crate) const SECRETBOX_PREFIX: &[u8] = b"k8s:enc:secretbox:v1:";

const AES_BLOCK_SIZE: usize = 16;
const GCM_NONCE_SIZE: usize = 12;
const SECRETBOX_NONCE_SIZE: usize = 24;
const SECRETBOX_OVERHEAD: usize = 16;

/// Why a value could not be transformed to or from storage. The messages are upstream's,
/// so that logs and `metav1.Status` messages read as kube-apiserver's do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// No provider's prefix matched the stored value (identity not configured and the
    /// data not encrypted by any configured provider).
    #[error("no matching prefix found")]
    NoMatchingPrefix,
    /// The value is `aescbc`/`aesgcm` encrypted under a key name no longer configured.
    #[error("no matching key was found for the provided AES transformer")]
    NoMatchingAesKey,
    /// The value is `secretbox` encrypted under a key name no longer configured.
    #[error("no matching key was found for the provided Secretbox transformer")]
    NoMatchingSecretboxKey,
    /// The identity provider was asked to read a value that is encrypted.
    #[error("identity transformer tried to read encrypted data")]
    IdentityReadEncrypted,
    /// The ciphertext is shorter than its IV/nonce (and tag).
    #[error("the stored data was shorter than the required size")]
    TooShort,
    /// An `aescbc` ciphertext is not a whole number of AES blocks.
    #[error("the stored data is not a multiple of the block size")]
    NotBlockMultiple,
    /// An `aescbc` plaintext ends in no padding at all (a wrong key, or corruption).
    #[error("invalid PKCS7 data (empty or not padded)")]
    InvalidPkcs7Data,
    /// An `aescbc` plaintext ends in malformed padding (a wrong key, or corruption).
    #[error("invalid padding on input")]
    InvalidPkcs7Padding,
    /// An `aesgcm` value failed authentication: a wrong key, corruption, or a value
    /// copied from another storage key.
    #[error("cipher: message authentication failed")]
    GcmOpen,
    /// A `secretbox` value failed authentication (upstream's message, odd as it reads).
    #[error("output array was not large enough for encryption")]
    SecretboxOpen,
    /// Sealing failed (the cipher refused the input size).
    #[error("failed to encrypt the value")]
    Seal,
    /// The operating system's random number generator failed.
    #[error("unable to read sufficient random bytes: {0}")]
    Random(getrandom::Error),
    /// Every provider whose prefix matched failed; upstream's aggregate error.
    #[error("{}", aggregate_message(.0))]
    Aggregate(Vec<Error>),
}

/// Upstream's `utilerrors.Aggregate` text: messages flattened and de-duplicated, one
/// message alone, several as `[a, b]`.
fn aggregate_message(errors: &[Error]) -> String {
    fn visit(errors: &[Error], out: &mut Vec<String>) {
        for error in errors {
            match error {
                Error::Aggregate(inner) => visit(inner, out),
                other => {
                    let message = other.to_string();
                    if !out.contains(&message) {
                        out.push(message);
                    }
                }
            }
        }
    }
    let mut messages = Vec::new();
    visit(errors, &mut messages);
    match messages.as_slice() {
        [one] => one.clone(),
        many => format!("[{}]", many.join(", ")),
    }
}

/// Upstream's `errors.Reduce(errors.NewAggregate(errs))`.
fn reduce(mut errors: Vec<Error>) -> Option<Error> {
    match errors.len() {
        0 => None,
        1 => errors.pop(),
        _ => Some(Error::Aggregate(errors)),
    }
}

/// The transformer of one `resources[]` entry: its providers, in configuration order.
pub struct Transformer {
    providers: Vec<Arc<Provider>>,
    /// What a read no provider serves fails with.
    no_match: Error,
}

impl Transformer {
    pub(crate) fn new(providers: Vec<Arc<Provider>>) -> Self {
        Transformer {
            providers,
            no_match: Error::NoMatchingPrefix,
        }
    }

    /// Upstream's fallback for resources no rule names (`identity.NewEncryptCheckTransformer`):
    /// writes plaintext, reads plaintext, and refuses encrypted data rather than hand
    /// ciphertext to the decoder.
    pub fn identity() -> Self {
        Transformer {
            providers: vec![Arc::new(Provider::Identity)],
            no_match: Error::IdentityReadEncrypted,
        }
    }

    /// True when writes store plaintext (the first provider is `identity`).
    pub fn writes_plaintext(&self) -> bool {
        matches!(
            self.providers.first().map(|p| &**p),
            None | Some(Provider::Identity)
        )
    }

    /// Transforms `plaintext` (the whole serialized object) for storage under
    /// `storage_key` (the full etcd key, authenticated by `aesgcm`), with the first
    /// provider and its first key.
    pub fn encrypt(&self, storage_key: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, Error> {
        match self.providers.first().map(|p| &**p) {
            None | Some(Provider::Identity) => Ok(plaintext.to_vec()),
            Some(Provider::Keyed { prefix, keys, .. }) => {
                let Some(first) = keys.first() else {
                    // Configuration validation guarantees at least one key.
                    return Err(Error::Seal);
                };
                let mut out =
                    Vec::with_capacity(prefix.len() + first.prefix.len() + plaintext.len() + 64);
                out.extend_from_slice(prefix);
                out.extend_from_slice(&first.prefix);
                first.cipher.seal(storage_key, plaintext, &mut out)?;
                Ok(out)
            }
        }
    }

    /// Transforms a stored value back to plaintext with whichever provider's prefix
    /// matches. The flag is `true` when the value is stale: not written by the first
    /// provider with its first key, so the server should rewrite it (upstream's `stale`).
    pub fn decrypt(&self, storage_key: &[u8], stored: &[u8]) -> Result<(Vec<u8>, bool), Error> {
        let mut errors = Vec::new();
        for (index, provider) in self.providers.iter().enumerate() {
            match &**provider {
                Provider::Identity => {
                    // Identity's prefix is empty: it matches all data, and a failure
                    // (encrypted data) only lets the next provider try.
                    if !stored.starts_with(ENCRYPTED_PREFIX) {
                        return Ok((stored.to_vec(), index != 0));
                    }
                }
                Provider::Keyed {
                    prefix,
                    keys,
                    no_key_error,
                } => {
                    let Some(rest) = stored.strip_prefix(*prefix) else {
                        continue;
                    };
                    match open_with_keys(keys, no_key_error, storage_key, rest) {
                        Ok((plaintext, stale)) => return Ok((plaintext, stale || index != 0)),
                        Err(error) => errors.push(error),
                    }
                }
            }
        }
        Err(reduce(errors).unwrap_or_else(|| self.no_match.clone()))
    }
}

/// The inner prefix transformer of one keyed provider: one entry per key, by name.
fn open_with_keys(
    keys: &[NamedKey],
    no_key_error: &Error,
    storage_key: &[u8],
    data: &[u8],
) -> Result<(Vec<u8>, bool), Error> {
    let mut errors = Vec::new();
    for (index, key) in keys.iter().enumerate() {
        let Some(body) = data.strip_prefix(key.prefix.as_slice()) else {
            continue;
        };
        match key.cipher.open(storage_key, body) {
            Ok(plaintext) => return Ok((plaintext, index != 0)),
            Err(error) => errors.push(error),
        }
    }
    Err(reduce(errors).unwrap_or_else(|| no_key_error.clone()))
}

impl fmt::Debug for Transformer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.providers).finish()
    }
}

/// One provider of a `providers[]` list.
pub(crate) enum Provider {
    /// `identity: {}`: plaintext, prefix-less.
    Identity,
    /// `aescbc`, `aesgcm` or `secretbox`: a prefix and named keys, first key writes.
    Keyed {
        prefix: &'static [u8],
        keys: Vec<NamedKey>,
        no_key_error: Error,
    },
}

impl Provider {
    pub(crate) fn aescbc(keys: Vec<NamedKey>) -> Self {
        Provider::Keyed {
            prefix: AESCBC_PREFIX,
            keys,
            no_key_error: Error::NoMatchingAesKey,
        }
    }

    pub(crate) fn aesgcm(keys: Vec<NamedKey>) -> Self {
        Provider::Keyed {
            prefix: AESGCM_PREFIX,
            keys,
            no_key_error: Error::NoMatchingAesKey,
        }
    }

    pub(crate) fn secretbox(keys: Vec<NamedKey>) -> Self {
        Provider::Keyed {
            prefix: SECRETBOX_PREFIX,
            keys,
            no_key_error: Error::NoMatchingSecretboxKey,
        }
    }
}

impl fmt::Debug for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Provider::Identity => f.write_str("identity"),
            Provider::Keyed { prefix, keys, .. } => {
                let names: Vec<_> = keys.iter().map(|k| k.name()).collect();
                write!(f, "{}{:?}", String::from_utf8_lossy(prefix), names)
            }
        }
    }
}

/// One `keys[]` entry: its `<name>:` prefix and its cipher.
pub(crate) struct NamedKey {
    prefix: Vec<u8>,
    cipher: KeyCipher,
}

impl NamedKey {
    pub(crate) fn new(name: &str, cipher: KeyCipher) -> Self {
        let mut prefix = Vec::with_capacity(name.len() + 1);
        prefix.extend_from_slice(name.as_bytes());
        prefix.push(b':');
        NamedKey { prefix, cipher }
    }

    fn name(&self) -> String {
        let name = self.prefix.strip_suffix(b":").unwrap_or(&self.prefix);
        String::from_utf8_lossy(name).into_owned()
    }
}

/// A key's cipher, built once when the configuration loads.
pub(crate) enum KeyCipher {
    Cbc(AesKey),
    Gcm(GcmKey),
    Secretbox(Box<XSalsa20Poly1305>),
}

pub(crate) enum AesKey {
    A128(Box<Aes128>),
    A192(Box<Aes192>),
    A256(Box<Aes256>),
}

pub(crate) enum GcmKey {
    A128(Box<Aes128Gcm>),
    A192(Box<Aes192Gcm>),
    A256(Box<Aes256Gcm>),
}

/// The key had a length its cipher does not take (validation rules this out first).
#[derive(Debug)]
pub(crate) struct BadKeyLength;

impl KeyCipher {
    pub(crate) fn cbc(key: &[u8]) -> Result<Self, BadKeyLength> {
        let key = match key.len() {
            16 => AesKey::A128(Box::new(
                Aes128::new_from_slice(key).map_err(|_| BadKeyLength)?,
            )),
            24 => AesKey::A192(Box::new(
                Aes192::new_from_slice(key).map_err(|_| BadKeyLength)?,
            )),
            32 => AesKey::A256(Box::new(
                Aes256::new_from_slice(key).map_err(|_| BadKeyLength)?,
            )),
            _ => return Err(BadKeyLength),
        };
        Ok(KeyCipher::Cbc(key))
    }

    pub(crate) fn gcm(key: &[u8]) -> Result<Self, BadKeyLength> {
        let key = match key.len() {
            16 => GcmKey::A128(Box::new(
                Aes128Gcm::new_from_slice(key).map_err(|_| BadKeyLength)?,
            )),
            24 => GcmKey::A192(Box::new(
                Aes192Gcm::new_from_slice(key).map_err(|_| BadKeyLength)?,
            )),
            32 => GcmKey::A256(Box::new(
                Aes256Gcm::new_from_slice(key).map_err(|_| BadKeyLength)?,
            )),
            _ => return Err(BadKeyLength),
        };
        Ok(KeyCipher::Gcm(key))
    }

    pub(crate) fn secretbox(key: &[u8]) -> Result<Self, BadKeyLength> {
        XSalsa20Poly1305::new_from_slice(key)
            .map(|cipher| KeyCipher::Secretbox(Box::new(cipher)))
            .map_err(|_| BadKeyLength)
    }

    /// Appends IV/nonce and ciphertext for `plaintext` to `out`.
    fn seal(&self, storage_key: &[u8], plaintext: &[u8], out: &mut Vec<u8>) -> Result<(), Error> {
        match self {
            KeyCipher::Cbc(key) => {
                let mut iv = [0u8; AES_BLOCK_SIZE];
                getrandom::getrandom(&mut iv).map_err(Error::Random)?;
                out.extend_from_slice(&iv);
                let ciphertext = match key {
                    AesKey::A128(c) => cbc_encrypt((**c).clone(), &iv, plaintext)?,
                    AesKey::A192(c) => cbc_encrypt((**c).clone(), &iv, plaintext)?,
                    AesKey::A256(c) => cbc_encrypt((**c).clone(), &iv, plaintext)?,
                };
                out.extend_from_slice(&ciphertext);
            }
            KeyCipher::Gcm(key) => {
                let mut nonce = [0u8; GCM_NONCE_SIZE];
                getrandom::getrandom(&mut nonce).map_err(Error::Random)?;
                let nonce_array = nonce.into();
                let payload = Payload {
                    msg: plaintext,
                    aad: storage_key,
                };
                let sealed = match key {
                    GcmKey::A128(c) => c.encrypt(&nonce_array, payload),
                    GcmKey::A192(c) => c.encrypt(&nonce_array, payload),
                    GcmKey::A256(c) => c.encrypt(&nonce_array, payload),
                }
                .map_err(|_| Error::Seal)?;
                out.extend_from_slice(&nonce);
                out.extend_from_slice(&sealed);
            }
            KeyCipher::Secretbox(cipher) => {
                let mut nonce = [0u8; SECRETBOX_NONCE_SIZE];
                getrandom::getrandom(&mut nonce).map_err(Error::Random)?;
                // NaCl's layout, as Go's secretbox.Seal: tag, then ciphertext.
                let sealed = cipher
                    .encrypt(&nonce.into(), plaintext)
                    .map_err(|_| Error::Seal)?;
                out.extend_from_slice(&nonce);
                out.extend_from_slice(&sealed);
            }
        }
        Ok(())
    }

    /// Opens the IV/nonce and ciphertext that follow a key's prefix.
    fn open(&self, storage_key: &[u8], data: &[u8]) -> Result<Vec<u8>, Error> {
        match self {
            KeyCipher::Cbc(key) => {
                if data.len() < AES_BLOCK_SIZE {
                    return Err(Error::TooShort);
                }
                let (iv, body) = data.split_at(AES_BLOCK_SIZE);
                if body.len() % AES_BLOCK_SIZE != 0 {
                    return Err(Error::NotBlockMultiple);
                }
                let padded = match key {
                    AesKey::A128(c) => cbc_decrypt((**c).clone(), iv, body)?,
                    AesKey::A192(c) => cbc_decrypt((**c).clone(), iv, body)?,
                    AesKey::A256(c) => cbc_decrypt((**c).clone(), iv, body)?,
                };
                strip_pkcs7(padded)
            }
            KeyCipher::Gcm(key) => {
                if data.len() < GCM_NONCE_SIZE {
                    return Err(Error::TooShort);
                }
                let (nonce, body) = data.split_at(GCM_NONCE_SIZE);
                let nonce: [u8; GCM_NONCE_SIZE] = nonce.try_into().map_err(|_| Error::TooShort)?;
                let nonce = nonce.into();
                let payload = Payload {
                    msg: body,
                    aad: storage_key,
                };
                match key {
                    GcmKey::A128(c) => c.decrypt(&nonce, payload),
                    GcmKey::A192(c) => c.decrypt(&nonce, payload),
                    GcmKey::A256(c) => c.decrypt(&nonce, payload),
                }
                .map_err(|_| Error::GcmOpen)
            }
            KeyCipher::Secretbox(cipher) => {
                if data.len() < SECRETBOX_NONCE_SIZE + SECRETBOX_OVERHEAD {
                    return Err(Error::TooShort);
                }
                let (nonce, body) = data.split_at(SECRETBOX_NONCE_SIZE);
                let nonce: [u8; SECRETBOX_NONCE_SIZE] =
                    nonce.try_into().map_err(|_| Error::TooShort)?;
                cipher
                    .decrypt(&nonce.into(), body)
                    .map_err(|_| Error::SecretboxOpen)
            }
        }
    }
}

fn cbc_encrypt<C>(cipher: C, iv: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, Error>
where
    C: cbc::cipher::BlockEncrypt + cbc::cipher::BlockCipher,
{
    let encryptor =
        cbc::Encryptor::<C>::inner_iv_slice_init(cipher, iv).map_err(|_| Error::Seal)?;
    Ok(encryptor.encrypt_padded_vec_mut::<Pkcs7>(plaintext))
}

fn cbc_decrypt<C>(cipher: C, iv: &[u8], body: &[u8]) -> Result<Vec<u8>, Error>
where
    C: cbc::cipher::BlockDecrypt + cbc::cipher::BlockCipher,
{
    let decryptor =
        cbc::Decryptor::<C>::inner_iv_slice_init(cipher, iv).map_err(|_| Error::TooShort)?;
    decryptor
        .decrypt_padded_vec_mut::<NoPadding>(body)
        .map_err(|_| Error::NotBlockMultiple)
}

/// Upstream's PKCS#7 check, with its two messages (an empty body has no padding byte).
fn strip_pkcs7(mut padded: Vec<u8>) -> Result<Vec<u8>, Error> {
    let Some(&last) = padded.last() else {
        return Err(Error::InvalidPkcs7Data);
    };
    let padding = usize::from(last);
    if padding == 0 || padding > padded.len() {
        return Err(Error::InvalidPkcs7Data);
    }
    let size = padded.len() - padding;
    if padded[size..].iter().any(|&b| b != last) {
        return Err(Error::InvalidPkcs7Padding);
    }
    padded.truncate(size);
    Ok(padded)
}

#[cfg(test)]
#[path = "transformer_tests.rs"]
mod tests;
