use super::*;

const KEY: &[u8] = b"/registry/secrets/default/s1";
const PLAIN: &[u8] = br#"{"kind":"Secret","apiVersion":"v1","data":{"k":"dg=="}}"#;

fn key16(seed: u8) -> Vec<u8> {
    (0..16).map(|i| seed.wrapping_add(i)).collect()
}

fn key32(seed: u8) -> Vec<u8> {
    (0..32).map(|i| seed.wrapping_add(i)).collect()
}

fn cbc(keys: &[(&str, Vec<u8>)]) -> Arc<Provider> {
    Arc::new(Provider::aescbc(
        keys.iter()
            .map(|(n, k)| NamedKey::new(n, KeyCipher::cbc(k).unwrap()))
            .collect(),
    ))
}

fn gcm(keys: &[(&str, Vec<u8>)]) -> Arc<Provider> {
    Arc::new(Provider::aesgcm(
        keys.iter()
            .map(|(n, k)| NamedKey::new(n, KeyCipher::gcm(k).unwrap()))
            .collect(),
    ))
}

fn secretbox(keys: &[(&str, Vec<u8>)]) -> Arc<Provider> {
    Arc::new(Provider::secretbox(
        keys.iter()
            .map(|(n, k)| NamedKey::new(n, KeyCipher::secretbox(k).unwrap()))
            .collect(),
    ))
}

fn identity() -> Arc<Provider> {
    Arc::new(Provider::Identity)
}

fn t(providers: Vec<Arc<Provider>>) -> Transformer {
    Transformer::new(providers)
}

#[test]
fn aescbc_layout_and_round_trip() {
    for key in [key16(1), (0..24).collect(), key32(3)] {
        let tr = t(vec![cbc(&[("key1", key)])]);
        let stored = tr.encrypt(KEY, PLAIN).unwrap();
        let prefix = b"k8s:enc:aescbc:v1:key1:";
        assert!(stored.starts_with(prefix));
        // IV, then the plaintext padded to whole blocks (55 bytes -> 64).
        assert_eq!(stored.len(), prefix.len() + 16 + 64);
        assert_eq!(tr.decrypt(KEY, &stored).unwrap(), (PLAIN.to_vec(), false));
        // No authenticated data: another storage key reads it too.
        assert_eq!(tr.decrypt(b"/other", &stored).unwrap().0, PLAIN);
    }
}

#[test]
fn aescbc_full_block_plaintext_gets_a_full_padding_block() {
    let tr = t(vec![cbc(&[("k", key32(0))])]);
    let stored = tr.encrypt(KEY, &[7u8; 32]).unwrap();
    assert_eq!(stored.len(), b"k8s:enc:aescbc:v1:k:".len() + 16 + 48);
    assert_eq!(tr.decrypt(KEY, &stored).unwrap().0, vec![7u8; 32]);
}

#[test]
fn aesgcm_layout_round_trip_and_authenticated_storage_key() {
    for key in [key16(1), (0..24).collect(), key32(3)] {
        let tr = t(vec![gcm(&[("key1", key)])]);
        let stored = tr.encrypt(KEY, PLAIN).unwrap();
        let prefix = b"k8s:enc:aesgcm:v1:key1:";
        assert!(stored.starts_with(prefix));
        assert_eq!(stored.len(), prefix.len() + 12 + PLAIN.len() + 16);
        assert_eq!(tr.decrypt(KEY, &stored).unwrap(), (PLAIN.to_vec(), false));
        // A value copied under another key does not authenticate.
        assert_eq!(
            tr.decrypt(b"/registry/secrets/default/s2", &stored),
            Err(Error::GcmOpen)
        );
    }
}

#[test]
fn secretbox_layout_and_round_trip() {
    let tr = t(vec![secretbox(&[("key1", key32(9))])]);
    let stored = tr.encrypt(KEY, PLAIN).unwrap();
    let prefix = b"k8s:enc:secretbox:v1:key1:";
    assert!(stored.starts_with(prefix));
    assert_eq!(stored.len(), prefix.len() + 24 + 16 + PLAIN.len());
    assert_eq!(tr.decrypt(KEY, &stored).unwrap(), (PLAIN.to_vec(), false));
    assert_eq!(tr.decrypt(b"/other", &stored).unwrap().0, PLAIN);
}

#[test]
fn empty_plaintext_round_trips_with_every_provider() {
    for tr in [
        t(vec![cbc(&[("a", key16(0))])]),
        t(vec![gcm(&[("a", key16(0))])]),
        t(vec![secretbox(&[("a", key32(0))])]),
        t(vec![identity()]),
    ] {
        let stored = tr.encrypt(KEY, b"").unwrap();
        assert_eq!(tr.decrypt(KEY, &stored).unwrap(), (Vec::new(), false));
    }
}

#[test]
fn ivs_and_nonces_are_fresh_per_write() {
    for tr in [
        t(vec![cbc(&[("a", key16(0))])]),
        t(vec![gcm(&[("a", key16(0))])]),
        t(vec![secretbox(&[("a", key32(0))])]),
    ] {
        assert_ne!(
            tr.encrypt(KEY, PLAIN).unwrap(),
            tr.encrypt(KEY, PLAIN).unwrap()
        );
    }
}

#[test]
fn identity_first_writes_plaintext_and_still_reads_encrypted_data() {
    let old = t(vec![cbc(&[("key1", key32(1))])]);
    let encrypted = old.encrypt(KEY, PLAIN).unwrap();

    let tr = t(vec![identity(), cbc(&[("key1", key32(1))])]);
    assert!(tr.writes_plaintext());
    assert_eq!(tr.encrypt(KEY, PLAIN).unwrap(), PLAIN);
    // Encrypted data: identity steps aside, aescbc reads it, and it is stale.
    assert_eq!(tr.decrypt(KEY, &encrypted).unwrap(), (PLAIN.to_vec(), true));
    // Plaintext: identity is the first provider, so it is current.
    assert_eq!(tr.decrypt(KEY, PLAIN).unwrap(), (PLAIN.to_vec(), false));
}

#[test]
fn plaintext_from_before_encryption_is_read_only_when_identity_is_listed() {
    let with_identity = t(vec![cbc(&[("key1", key32(1))]), identity()]);
    assert!(!with_identity.writes_plaintext());
    assert_eq!(
        with_identity.decrypt(KEY, PLAIN).unwrap(),
        (PLAIN.to_vec(), true)
    );
    // Protobuf-encoded objects ("k8s\0...") are plaintext too.
    let proto = b"k8s\x00\x0a\x0c\x0a\x02v1\x12\x06Secret";
    assert_eq!(with_identity.decrypt(KEY, proto).unwrap().0, proto);

    let without = t(vec![cbc(&[("key1", key32(1))])]);
    let err = without.decrypt(KEY, PLAIN).unwrap_err();
    assert_eq!(err, Error::NoMatchingPrefix);
    assert_eq!(err.to_string(), "no matching prefix found");
}

#[test]
fn identity_never_hands_out_ciphertext() {
    let encrypted = t(vec![secretbox(&[("k", key32(1))])])
        .encrypt(KEY, PLAIN)
        .unwrap();
    // A config whose rule lists only identity: upstream's prefix transformer error.
    let configured = t(vec![identity()]);
    assert_eq!(
        configured.decrypt(KEY, &encrypted),
        Err(Error::NoMatchingPrefix)
    );
    // No rule at all: upstream's bare encrypt-check identity.
    let fallback = Transformer::identity();
    let err = fallback.decrypt(KEY, &encrypted).unwrap_err();
    assert_eq!(
        err.to_string(),
        "identity transformer tried to read encrypted data"
    );
    assert_eq!(fallback.encrypt(KEY, PLAIN).unwrap(), PLAIN);
    assert_eq!(
        fallback.decrypt(KEY, PLAIN).unwrap(),
        (PLAIN.to_vec(), false)
    );
}

/// The documented rotation: add key2 second, move it first, rewrite, drop key1.
#[test]
fn key_rotation_in_upstream_order() {
    let (k1, k2) = (key32(1), key32(100));
    let step0 = t(vec![cbc(&[("key1", k1.clone())]), identity()]);
    let v1 = step0.encrypt(KEY, PLAIN).unwrap();

    // 1. key2 added second: every server can read key2 data, writes still use key1.
    let step1 = t(vec![
        cbc(&[("key1", k1.clone()), ("key2", k2.clone())]),
        identity(),
    ]);
    assert_eq!(step1.decrypt(KEY, &v1).unwrap(), (PLAIN.to_vec(), false));
    assert!(step1
        .encrypt(KEY, PLAIN)
        .unwrap()
        .starts_with(b"k8s:enc:aescbc:v1:key1:"));

    // 2. key2 moved first: writes use key2, key1 data reads as stale.
    let step2 = t(vec![
        cbc(&[("key2", k2.clone()), ("key1", k1.clone())]),
        identity(),
    ]);
    assert_eq!(step2.decrypt(KEY, &v1).unwrap(), (PLAIN.to_vec(), true));
    let v2 = step2.encrypt(KEY, PLAIN).unwrap();
    assert!(v2.starts_with(b"k8s:enc:aescbc:v1:key2:"));
    assert_eq!(step2.decrypt(KEY, &v2).unwrap(), (PLAIN.to_vec(), false));
    // Data written at step 2 is readable by a server still at step 1.
    assert_eq!(step1.decrypt(KEY, &v2).unwrap(), (PLAIN.to_vec(), true));

    // 3. after the rewrite, key1 removed: key2 data current, leftovers under key1 fail.
    let step3 = t(vec![cbc(&[("key2", k2)]), identity()]);
    assert_eq!(step3.decrypt(KEY, &v2).unwrap(), (PLAIN.to_vec(), false));
    let err = step3.decrypt(KEY, &v1).unwrap_err();
    assert_eq!(err, Error::NoMatchingAesKey);
    assert_eq!(
        err.to_string(),
        "no matching key was found for the provided AES transformer"
    );
}

/// Rotating across providers: a later provider's data is stale.
#[test]
fn switching_provider_marks_old_data_stale() {
    let old = t(vec![cbc(&[("key1", key32(1))])]);
    let v1 = old.encrypt(KEY, PLAIN).unwrap();
    let new = t(vec![
        secretbox(&[("key1", key32(2))]),
        cbc(&[("key1", key32(1))]),
    ]);
    assert_eq!(new.decrypt(KEY, &v1).unwrap(), (PLAIN.to_vec(), true));
    let v2 = new.encrypt(KEY, PLAIN).unwrap();
    assert!(v2.starts_with(b"k8s:enc:secretbox:v1:key1:"));
    assert_eq!(new.decrypt(KEY, &v2).unwrap(), (PLAIN.to_vec(), false));
}

/// Two providers of one type share a prefix; a failure under the first is not final.
#[test]
fn same_prefix_failure_falls_through_to_later_provider() {
    let writer = t(vec![gcm(&[("key1", key16(50))])]);
    let stored = writer.encrypt(KEY, PLAIN).unwrap();
    let tr = t(vec![
        gcm(&[("key1", key16(1))]),
        gcm(&[("key1", key16(50))]),
    ]);
    assert_eq!(tr.decrypt(KEY, &stored).unwrap(), (PLAIN.to_vec(), true));

    // Both failing: the errors are aggregated, duplicates folded.
    let none = t(vec![gcm(&[("key1", key16(1))]), gcm(&[("key1", key16(2))])]);
    let err = none.decrypt(KEY, &stored).unwrap_err();
    assert!(matches!(err, Error::Aggregate(ref v) if v.len() == 2));
    assert_eq!(err.to_string(), "cipher: message authentication failed");
}

#[test]
fn aggregate_message_matches_upstream_format() {
    let err = Error::Aggregate(vec![
        Error::NoMatchingAesKey,
        Error::Aggregate(vec![Error::InvalidPkcs7Padding, Error::NoMatchingAesKey]),
    ]);
    assert_eq!(
        err.to_string(),
        "[no matching key was found for the provided AES transformer, invalid padding on input]"
    );
}

#[test]
fn unknown_key_names_name_their_provider() {
    let cbc_value = t(vec![cbc(&[("old", key16(0))])])
        .encrypt(KEY, PLAIN)
        .unwrap();
    let sb_value = t(vec![secretbox(&[("old", key32(0))])])
        .encrypt(KEY, PLAIN)
        .unwrap();
    let tr = t(vec![
        cbc(&[("new", key16(0))]),
        secretbox(&[("new", key32(0))]),
    ]);
    assert_eq!(tr.decrypt(KEY, &cbc_value), Err(Error::NoMatchingAesKey));
    assert_eq!(
        tr.decrypt(KEY, &sb_value),
        Err(Error::NoMatchingSecretboxKey)
    );
}

#[test]
fn short_and_malformed_values_are_errors() {
    let tr = t(vec![
        cbc(&[("k", key16(0))]),
        gcm(&[("k", key16(0))]),
        secretbox(&[("k", key32(0))]),
    ]);
    let cases: &[(&[u8], Error)] = &[
        (b"k8s:enc:aescbc:v1:k:", Error::TooShort),
        (b"k8s:enc:aescbc:v1:k:0123456789abcde", Error::TooShort),
        // An IV and no block at all: upstream's Go indexes past the end here.
        (
            b"k8s:enc:aescbc:v1:k:0123456789abcdef",
            Error::InvalidPkcs7Data,
        ),
        (
            b"k8s:enc:aescbc:v1:k:0123456789abcdef0123",
            Error::NotBlockMultiple,
        ),
        (b"k8s:enc:aesgcm:v1:k:", Error::TooShort),
        (b"k8s:enc:aesgcm:v1:k:0123456789a", Error::TooShort),
        (b"k8s:enc:aesgcm:v1:k:0123456789ab", Error::GcmOpen),
        (b"k8s:enc:secretbox:v1:k:", Error::TooShort),
        (
            b"k8s:enc:secretbox:v1:k:0123456789abcdef0123456789abcdef0123456",
            Error::TooShort,
        ),
        (
            b"k8s:enc:secretbox:v1:k:0123456789abcdef0123456789abcdef01234567",
            Error::SecretboxOpen,
        ),
        (b"k8s:enc:aescbc:v1:", Error::NoMatchingAesKey),
        (b"k8s:enc:kms:v2:plugin:xyz", Error::NoMatchingPrefix),
        (b"", Error::NoMatchingPrefix),
    ];
    for (stored, want) in cases {
        assert_eq!(
            tr.decrypt(KEY, stored).as_ref(),
            Err(want),
            "{}",
            String::from_utf8_lossy(stored)
        );
    }
}

/// Every truncation and every single-byte flip of every provider's output: an error or,
/// for unauthenticated CBC only, some plaintext, and never a panic.
#[test]
fn corrupted_values_never_panic() {
    let providers = [
        (cbc(&[("key1", key32(0))]), false),
        (gcm(&[("key1", key32(0))]), true),
        (secretbox(&[("key1", key32(0))]), true),
    ];
    for (provider, authenticated) in providers {
        let tr = t(vec![provider, identity()]);
        let stored = tr.encrypt(KEY, PLAIN).unwrap();
        for len in 0..stored.len() {
            let truncated = &stored[..len];
            if let Ok((out, _)) = tr.decrypt(KEY, truncated) {
                // Only identity may accept it: a truncation too short to carry the prefix.
                assert!(!truncated.starts_with(ENCRYPTED_PREFIX), "len {len}");
                assert_eq!(out, truncated);
            }
        }
        for i in 0..stored.len() {
            let mut flipped = stored.clone();
            flipped[i] ^= 0x41;
            match tr.decrypt(KEY, &flipped) {
                Ok((out, _)) if authenticated => {
                    // Only a flip inside the prefix can make identity read it, as is.
                    assert!(!flipped.starts_with(ENCRYPTED_PREFIX), "byte {i}");
                    assert_eq!(out, flipped);
                }
                Ok((out, _)) => assert_ne!(out, PLAIN, "byte {i}"),
                Err(_) => {}
            }
        }
    }
}

#[test]
fn debug_shows_providers_and_key_names_but_no_secrets() {
    let tr = t(vec![
        cbc(&[("key2", key32(0)), ("key1", key32(1))]),
        identity(),
    ]);
    let text = format!("{tr:?}");
    assert_eq!(text, r#"[k8s:enc:aescbc:v1:["key2", "key1"], identity]"#);
}

#[test]
fn pkcs7_checks() {
    assert_eq!(strip_pkcs7(vec![]), Err(Error::InvalidPkcs7Data));
    assert_eq!(strip_pkcs7(vec![1, 2, 0]), Err(Error::InvalidPkcs7Data));
    assert_eq!(strip_pkcs7(vec![1, 2, 4]), Err(Error::InvalidPkcs7Data));
    assert_eq!(strip_pkcs7(vec![1, 3, 2]), Err(Error::InvalidPkcs7Padding));
    assert_eq!(strip_pkcs7(vec![1, 2, 2]), Ok(vec![1]));
    assert_eq!(strip_pkcs7(vec![3, 3, 3]), Ok(vec![]));
}

#[test]
fn transformers_are_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Transformer>();
    assert_send_sync::<crate::EncryptionConfig>();
}
