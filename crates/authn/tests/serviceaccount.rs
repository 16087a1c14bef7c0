//! Service-account tokens end to end with real keys: issued by `TokenIssuer`, verified by
//! `Authenticator`, and every way a token must be refused.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use common::*;
use ferrokube_authn::{
    resolve_bound_object, AuthMethod, Authenticator, AuthnConfig, BindError, BoundObject,
    IssueError, MapLookup, MethodError, ObjectRef, ServiceAccountTokenError, TokenIssuer,
    TokenSpec,
};
use rustls_pki_types::pem::PemObject as _;
use serde_json::{json, Value};

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

struct Setup {
    _dir: Dir,
    issuer: TokenIssuer,
    authn: Authenticator,
}

/// An issuer signing with `signing_pem` and an authenticator trusting `verify_pems`.
fn setup(signing_pem: &str, verify_pems: &[&str], issuers: &[&str], audiences: &[&str]) -> Setup {
    let dir = Dir::new();
    let signing = dir.write("sa.key", signing_pem);
    let files = verify_pems
        .iter()
        .enumerate()
        .map(|(i, p)| dir.write(&format!("sa{i}.pub"), p))
        .collect();
    let issuer = TokenIssuer::load(&signing, issuers[0])
        .unwrap()
        .with_api_audiences(audiences.iter().map(|s| s.to_string()).collect());
    let cfg = AuthnConfig {
        service_account_key_files: files,
        service_account_issuers: issuers.iter().map(|s| s.to_string()).collect(),
        api_audiences: audiences.iter().map(|s| s.to_string()).collect(),
        anonymous_auth: false,
        ..AuthnConfig::new()
    };
    Setup {
        _dir: dir,
        issuer,
        authn: Authenticator::new(&cfg).unwrap(),
    }
}

fn spec(bound: Option<BoundObject>) -> TokenSpec {
    TokenSpec {
        namespace: NS.into(),
        service_account_name: SA.into(),
        service_account_uid: SA_UID.into(),
        bound_object: bound,
        ..Default::default()
    }
}

fn pod_bound() -> Option<BoundObject> {
    Some(BoundObject::Pod {
        pod: ObjectRef {
            name: POD.into(),
            uid: POD_UID.into(),
        },
        node: Some(ObjectRef {
            name: NODE.into(),
            uid: NODE_UID.into(),
        }),
    })
}

fn sa_error(err: ferrokube_authn::AuthnError) -> ServiceAccountTokenError {
    match err.errors.as_slice() {
        [MethodError::ServiceAccount(e)] => e.clone(),
        other => panic!("expected one service-account error, got {other:?}"),
    }
}

fn decode(part: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

#[tokio::test]
async fn rsa_tokens_issue_verify_and_every_rejection() {
    let key = rsa_key();
    let other = rsa_key();
    let s = setup(&key.pkcs1_pem, &[&key.public_pem], &[ISSUER], &[]);
    let objects = live_objects();
    let t = now();

    let issued = s.issuer.issue_at(&spec(pod_bound()), t).unwrap();
    assert_eq!(issued.expiration_seconds, 3600);
    assert_eq!(issued.audiences, vec![ISSUER]);
    assert_eq!(
        issued.expiration_timestamp,
        ferrokube_authn::format_rfc3339(t + 3600)
    );

    // The token looks like upstream's: header alg+kid, sorted claims.
    let parts: Vec<&str> = issued.token.split('.').collect();
    assert_eq!(parts.len(), 3);
    let header = decode(parts[0]);
    assert_eq!(
        header,
        json!({"alg": "RS256", "kid": s.issuer.public_key().key_id()})
    );
    let claims = decode(parts[1]);
    assert_eq!(claims["iss"], ISSUER);
    assert_eq!(claims["sub"], "system:serviceaccount:default:builder");
    assert_eq!(claims["aud"], json!([ISSUER]));
    assert_eq!(claims["exp"], t + 3600);
    assert_eq!(
        claims["kubernetes.io"]["pod"],
        json!({"name": POD, "uid": POD_UID})
    );
    assert_eq!(
        claims["kubernetes.io"]["node"],
        json!({"name": NODE, "uid": NODE_UID})
    );
    assert_eq!(
        format!("JTI={}", claims["jti"].as_str().unwrap()),
        issued.credential_id
    );

    let a = s
        .authn
        .authenticate_at(&bearer(&issued.token), None, &objects, t)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(a.method, AuthMethod::ServiceAccount);
    assert_eq!(a.user.name, "system:serviceaccount:default:builder");
    assert_eq!(a.user.uid, SA_UID);
    assert_eq!(
        a.user.groups,
        vec![
            "system:serviceaccounts",
            "system:serviceaccounts:default",
            "system:authenticated"
        ]
    );
    assert_eq!(
        a.user.extra["authentication.kubernetes.io/pod-name"],
        vec![POD]
    );
    assert_eq!(
        a.user.extra["authentication.kubernetes.io/pod-uid"],
        vec![POD_UID]
    );
    assert_eq!(
        a.user.extra["authentication.kubernetes.io/node-name"],
        vec![NODE]
    );
    assert_eq!(
        a.user.extra["authentication.kubernetes.io/node-uid"],
        vec![NODE_UID]
    );
    assert_eq!(
        a.user.extra["authentication.kubernetes.io/credential-id"],
        vec![issued.credential_id.clone()]
    );
    assert_eq!(a.audiences, vec![ISSUER]);

    // Tampered signature.
    let mut sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
    sig[10] ^= 1;
    let tampered = format!("{}.{}.{}", parts[0], parts[1], URL_SAFE_NO_PAD.encode(&sig));
    let err = s
        .authn
        .authenticate_at(&bearer(&tampered), None, &objects, t)
        .await
        .unwrap_err();
    assert_eq!(sa_error(err), ServiceAccountTokenError::InvalidSignature);

    // Tampered claims (another service account) under the original signature.
    let mut forged = claims.clone();
    forged["kubernetes.io"]["serviceaccount"]["name"] = json!("admin");
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(forged.to_string()),
        parts[2]
    );
    let err = s
        .authn
        .authenticate_at(&bearer(&forged), None, &objects, t)
        .await
        .unwrap_err();
    assert_eq!(sa_error(err), ServiceAccountTokenError::InvalidSignature);

    // Signed by a key the server does not trust: the kid matches nothing.
    let rogue = setup(&other.pkcs1_pem, &[&other.public_pem], &[ISSUER], &[]);
    let rogue_token = rogue.issuer.issue_at(&spec(pod_bound()), t).unwrap().token;
    let err = s
        .authn
        .authenticate_at(&bearer(&rogue_token), None, &objects, t)
        .await
        .unwrap_err();
    assert_eq!(sa_error(err), ServiceAccountTokenError::NoKeys);
    // …and without a kid every key is tried and fails.
    let rp: Vec<&str> = rogue_token.split('.').collect();
    let no_kid_header = URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256"}"#);
    let no_kid = format!("{no_kid_header}.{}.{}", rp[1], rp[2]);
    let err = s
        .authn
        .authenticate_at(&bearer(&no_kid), None, &objects, t)
        .await
        .unwrap_err();
    assert_eq!(sa_error(err), ServiceAccountTokenError::InvalidSignature);

    // Expired (issued two hours ago with one hour of life), not valid yet.
    let old = s
        .issuer
        .issue_at(&spec(pod_bound()), t - 7200)
        .unwrap()
        .token;
    let err = s
        .authn
        .authenticate_at(&bearer(&old), None, &objects, t)
        .await
        .unwrap_err();
    assert_eq!(sa_error(err), ServiceAccountTokenError::Expired);
    // Within the 60 s leeway it is still fine.
    let edge = s
        .issuer
        .issue_at(&spec(pod_bound()), t - 3630)
        .unwrap()
        .token;
    assert!(s
        .authn
        .authenticate_at(&bearer(&edge), None, &objects, t)
        .await
        .is_ok());
    let future = s
        .issuer
        .issue_at(&spec(pod_bound()), t + 600)
        .unwrap()
        .token;
    let err = s
        .authn
        .authenticate_at(&bearer(&future), None, &objects, t)
        .await
        .unwrap_err();
    assert_eq!(sa_error(err), ServiceAccountTokenError::NotValidYet);

    // Deleted pod, recreated pod (uid mismatch), pod being deleted for a while.
    let mut gone = objects.clone();
    gone.remove("", "pods", NS, POD);
    let err = s
        .authn
        .authenticate_at(&bearer(&issued.token), None, &gone, t)
        .await
        .unwrap_err();
    assert_eq!(sa_error(err), ServiceAccountTokenError::Invalidated);
    let mut recreated = objects.clone();
    recreated.insert(
        "",
        "pods",
        NS,
        POD,
        json!({"metadata": {"name": POD, "uid": "new-uid"}}),
    );
    let err = s
        .authn
        .authenticate_at(&bearer(&issued.token), None, &recreated, t)
        .await
        .unwrap_err();
    assert!(matches!(
        sa_error(err),
        ServiceAccountTokenError::UidMismatch { kind: "pod", .. }
    ));
    let mut deleting = objects.clone();
    deleting.insert(
        "",
        "pods",
        NS,
        POD,
        json!({"metadata": {"name": POD, "uid": POD_UID,
               "deletionTimestamp": ferrokube_authn::format_rfc3339(t - 120)}}),
    );
    let err = s
        .authn
        .authenticate_at(&bearer(&issued.token), None, &deleting, t)
        .await
        .unwrap_err();
    assert_eq!(sa_error(err), ServiceAccountTokenError::Invalidated);
    // Deleted within the leeway: still accepted, as upstream.
    let mut just_deleting = objects.clone();
    just_deleting.insert(
        "",
        "pods",
        NS,
        POD,
        json!({"metadata": {"name": POD, "uid": POD_UID,
               "deletionTimestamp": ferrokube_authn::format_rfc3339(t - 10)}}),
    );
    assert!(s
        .authn
        .authenticate_at(&bearer(&issued.token), None, &just_deleting, t)
        .await
        .is_ok());
    // The node of a pod-bound token is informational: a missing node is fine.
    let mut no_node = objects.clone();
    no_node.remove("", "nodes", "", NODE);
    assert!(s
        .authn
        .authenticate_at(&bearer(&issued.token), None, &no_node, t)
        .await
        .is_ok());

    // Service account recreated / deleted.
    let mut sa_recreated = objects.clone();
    sa_recreated.insert(
        "",
        "serviceaccounts",
        NS,
        SA,
        json!({"metadata": {"name": SA, "uid": "other"}}),
    );
    let err = s
        .authn
        .authenticate_at(&bearer(&issued.token), None, &sa_recreated, t)
        .await
        .unwrap_err();
    assert!(matches!(
        sa_error(err),
        ServiceAccountTokenError::UidMismatch {
            kind: "service account",
            ..
        }
    ));
    let mut no_sa = objects.clone();
    no_sa.remove("", "serviceaccounts", NS, SA);
    let err = s
        .authn
        .authenticate_at(&bearer(&issued.token), None, &no_sa, t)
        .await
        .unwrap_err();
    assert!(matches!(
        sa_error(err),
        ServiceAccountTokenError::NotFound { .. }
    ));
    assert_eq!(
        s.authn
            .authenticate_at(&bearer(&issued.token), None, &no_sa, t)
            .await
            .unwrap_err()
            .to_string(),
        "serviceaccounts \"builder\" not found"
    );
}

#[tokio::test]
async fn issuer_and_audience_checks() {
    let key = ec_key(&rcgen::PKCS_ECDSA_P256_SHA256);
    let s = setup(
        &key.pkcs8_pem,
        &[&key.public_pem],
        &[ISSUER, "https://old.example"],
        &["api", "vault"],
    );
    let objects = live_objects();
    let t = now();

    // Default audiences = --api-audiences; ES256.
    let tok = s.issuer.issue_at(&spec(None), t).unwrap();
    assert_eq!(decode(tok.token.split('.').next().unwrap())["alg"], "ES256");
    let a = s
        .authn
        .authenticate_at(&bearer(&tok.token), None, &objects, t)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(a.audiences, vec!["api", "vault"]);

    // An audience the API server does not accept.
    let mut other_aud = spec(None);
    other_aud.audiences = vec!["https://elsewhere".into()];
    let tok = s.issuer.issue_at(&other_aud, t).unwrap().token;
    let err = s
        .authn
        .authenticate_at(&bearer(&tok), None, &objects, t)
        .await
        .unwrap_err();
    assert!(matches!(
        sa_error(err),
        ServiceAccountTokenError::Audience { .. }
    ));
    // TokenReview may ask for that audience explicitly.
    let reviewed = s
        .authn
        .authenticate_token_at(&tok, &["https://elsewhere".to_string()], &objects, t)
        .await
        .unwrap();
    assert_eq!(reviewed.audiences, vec!["https://elsewhere"]);
    let status = ferrokube_authn::token_review_status(&Ok(reviewed));
    assert_eq!(status["authenticated"], true);
    assert_eq!(
        status["user"]["username"],
        "system:serviceaccount:default:builder"
    );
    assert_eq!(status["audiences"], json!(["https://elsewhere"]));

    // A second accepted issuer.
    let old_issuer = TokenIssuer::from_key(
        ferrokube_authn::SigningKey::from_pem(key.pkcs8_pem.as_bytes()).unwrap(),
        "https://old.example",
    )
    .with_api_audiences(vec!["api".into()]);
    let tok = old_issuer.issue_at(&spec(None), t).unwrap().token;
    assert!(s
        .authn
        .authenticate_at(&bearer(&tok), None, &objects, t)
        .await
        .is_ok());

    // An issuer we do not know: not a token of ours at all → invalid bearer token.
    let foreign = TokenIssuer::from_key(
        ferrokube_authn::SigningKey::from_pem(key.pkcs8_pem.as_bytes()).unwrap(),
        "https://evil.example",
    )
    .with_api_audiences(vec!["api".into()]);
    let tok = foreign.issue_at(&spec(None), t).unwrap().token;
    let err = s
        .authn
        .authenticate_at(&bearer(&tok), None, &objects, t)
        .await
        .unwrap_err();
    assert!(matches!(
        err.errors.as_slice(),
        [MethodError::InvalidBearerToken]
    ));
    assert_eq!(err.to_string(), "invalid bearer token");
    let status = ferrokube_authn::token_review_status(&Err(err));
    assert_eq!(status, json!({"user": {}, "error": "invalid bearer token"}));

    // Garbage tokens are just not ours.
    for junk in ["abc", "a.b.c", "{\"iss\":\"x\"}", ""] {
        let r = s
            .authn
            .authenticate_at(&bearer(junk), None, &objects, t)
            .await;
        assert!(r.is_err() || junk.is_empty(), "{junk}");
    }
}

#[tokio::test]
async fn secret_and_node_bound_tokens() {
    let key = ec_key(&rcgen::PKCS_ECDSA_P384_SHA384);
    let s = setup(&key.sec1_pem, &[&key.public_pem], &[ISSUER], &[]);
    let objects = live_objects();
    let t = now();

    let secret_ref = ObjectRef {
        name: SECRET.into(),
        uid: SECRET_UID.into(),
    };
    let tok = s
        .issuer
        .issue_at(&spec(Some(BoundObject::Secret(secret_ref))), t)
        .unwrap()
        .token;
    assert_eq!(decode(tok.split('.').next().unwrap())["alg"], "ES384");
    let a = s
        .authn
        .authenticate_at(&bearer(&tok), None, &objects, t)
        .await
        .unwrap()
        .unwrap();
    assert!(!a
        .user
        .extra
        .contains_key("authentication.kubernetes.io/pod-name"));
    let mut gone = objects.clone();
    gone.remove("", "secrets", NS, SECRET);
    let err = s
        .authn
        .authenticate_at(&bearer(&tok), None, &gone, t)
        .await
        .unwrap_err();
    assert_eq!(sa_error(err), ServiceAccountTokenError::Invalidated);

    let node_ref = ObjectRef {
        name: NODE.into(),
        uid: NODE_UID.into(),
    };
    let tok = s
        .issuer
        .issue_at(&spec(Some(BoundObject::Node(node_ref))), t)
        .unwrap()
        .token;
    let a = s
        .authn
        .authenticate_at(&bearer(&tok), None, &objects, t)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        a.user.extra["authentication.kubernetes.io/node-name"],
        vec![NODE]
    );
    let mut new_node = objects.clone();
    new_node.insert(
        "",
        "nodes",
        "",
        NODE,
        json!({"metadata": {"name": NODE, "uid": "x"}}),
    );
    let err = s
        .authn
        .authenticate_at(&bearer(&tok), None, &new_node, t)
        .await
        .unwrap_err();
    assert!(matches!(
        sa_error(err),
        ServiceAccountTokenError::UidMismatch { kind: "node", .. }
    ));
}

#[tokio::test]
async fn legacy_secret_tokens() {
    let key = ec_key(&rcgen::PKCS_ECDSA_P256_SHA256);
    let s = setup(&key.pkcs8_pem, &[&key.public_pem], &[ISSUER], &[]);
    let signing = ferrokube_authn::SigningKey::from_pem(key.pkcs8_pem.as_bytes()).unwrap();
    let kid = signing.public_key().key_id();
    // Build a legacy token the way the old token controller did.
    let header = URL_SAFE_NO_PAD.encode(json!({"alg": "ES256", "kid": kid}).to_string());
    let claims = json!({
        "iss": "kubernetes/serviceaccount",
        "sub": "system:serviceaccount:default:builder",
        "kubernetes.io/serviceaccount/namespace": NS,
        "kubernetes.io/serviceaccount/secret.name": SECRET,
        "kubernetes.io/serviceaccount/service-account.name": SA,
        "kubernetes.io/serviceaccount/service-account.uid": SA_UID,
    });
    let input = format!("{header}.{}", URL_SAFE_NO_PAD.encode(claims.to_string()));
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = rustls_pki_types::PrivateKeyDer::from_pem_slice(key.pkcs8_pem.as_bytes()).unwrap();
    let kp = ring::signature::EcdsaKeyPair::from_pkcs8(
        &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        pkcs8.secret_der(),
        &rng,
    )
    .unwrap();
    let sig = kp.sign(&rng, input.as_bytes()).unwrap();
    let token = format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()));

    let with_secret = |data_token: &str, labels: Value| {
        let mut l = live_objects();
        l.insert(
            "",
            "secrets",
            NS,
            SECRET,
            json!({"metadata": {"name": SECRET, "namespace": NS, "uid": SECRET_UID, "labels": labels},
                   "type": "kubernetes.io/service-account-token",
                   "data": {"token": base64::engine::general_purpose::STANDARD.encode(data_token)}}),
        );
        l
    };
    let t = now();
    let good = with_secret(&token, json!({}));
    let a = s
        .authn
        .authenticate_at(&bearer(&token), None, &good, t)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(a.user.name, "system:serviceaccount:default:builder");
    assert_eq!(a.user.uid, SA_UID);
    assert!(a.user.extra.is_empty());

    let other_copy = with_secret("something else", json!({}));
    let err = s
        .authn
        .authenticate_at(&bearer(&token), None, &other_copy, t)
        .await
        .unwrap_err();
    assert_eq!(sa_error(err), ServiceAccountTokenError::NotServersCopy);
    let marked = with_secret(
        &token,
        json!({"kubernetes.io/legacy-token-invalid-since": "2024-01-01"}),
    );
    let err = s
        .authn
        .authenticate_at(&bearer(&token), None, &marked, t)
        .await
        .unwrap_err();
    assert!(matches!(
        sa_error(err),
        ServiceAccountTokenError::LegacyTokenMarkedInvalid { .. }
    ));
    let mut no_secret = good.clone();
    no_secret.remove("", "secrets", NS, SECRET);
    let err = s
        .authn
        .authenticate_at(&bearer(&token), None, &no_secret, t)
        .await
        .unwrap_err();
    assert_eq!(sa_error(err), ServiceAccountTokenError::Invalidated);

    // --service-account-lookup=false trusts the signature alone.
    let dir = Dir::new();
    let cfg = AuthnConfig {
        service_account_key_files: vec![dir.write("k.pem", &key.public_pem)],
        service_account_issuers: vec![ISSUER.into()],
        service_account_lookup: false,
        ..AuthnConfig::new()
    };
    let no_lookup = Authenticator::new(&cfg).unwrap();
    assert!(no_lookup
        .authenticate_at(&bearer(&token), None, &MapLookup::new(), t)
        .await
        .is_ok());
}

#[test]
fn expiration_limits() {
    let key = ec_key(&rcgen::PKCS_ECDSA_P256_SHA256);
    let issuer = TokenIssuer::from_key(
        ferrokube_authn::SigningKey::from_pem(key.pkcs8_pem.as_bytes()).unwrap(),
        ISSUER,
    );
    let mut s = spec(None);
    s.expiration_seconds = Some(599);
    assert!(matches!(
        issuer.issue(&s),
        Err(IssueError::ExpirationTooShort(599))
    ));
    s.expiration_seconds = Some((1 << 32) + 1);
    assert!(matches!(
        issuer.issue(&s),
        Err(IssueError::ExpirationTooLong(_))
    ));

    let capped = TokenIssuer::from_key(
        ferrokube_authn::SigningKey::from_pem(key.pkcs8_pem.as_bytes()).unwrap(),
        ISSUER,
    )
    .with_max_expiration_seconds(7200)
    .unwrap();
    s.expiration_seconds = Some(86400);
    let t = capped.issue_at(&s, 1000).unwrap();
    assert_eq!(t.expiration_seconds, 7200);
    assert!(t.warning.is_some());
    assert!(issuer_err_max(60));

    // The kubelet's 3607 s pod token is extended to a year with warnafter.
    let mut kubelet = spec(pod_bound());
    kubelet.expiration_seconds = Some(3607);
    let t = issuer.issue_at(&kubelet, 1000).unwrap();
    let claims = decode(t.token.split('.').nth(1).unwrap());
    assert_eq!(claims["exp"], 1000 + 365 * 24 * 3600);
    assert_eq!(claims["kubernetes.io"]["warnafter"], 1000 + 3607);
    assert_eq!(
        t.expiration_timestamp,
        ferrokube_authn::format_rfc3339(1000 + 3607)
    );
    // Not for other audiences.
    kubelet.audiences = vec!["vault".into()];
    let t = issuer.issue_at(&kubelet, 1000).unwrap();
    assert_eq!(
        decode(t.token.split('.').nth(1).unwrap())["exp"],
        1000 + 3607
    );
}

fn issuer_err_max(seconds: i64) -> bool {
    let key = ec_key(&rcgen::PKCS_ECDSA_P256_SHA256);
    TokenIssuer::from_key(
        ferrokube_authn::SigningKey::from_pem(key.pkcs8_pem.as_bytes()).unwrap(),
        ISSUER,
    )
    .with_max_expiration_seconds(seconds)
    .is_err()
}

#[tokio::test]
async fn bound_object_resolution() {
    let objects = live_objects();
    let pod = resolve_bound_object(&objects, NS, SA, "v1", "Pod", POD, "")
        .await
        .unwrap();
    assert_eq!(pod, pod_bound().unwrap());
    let err = resolve_bound_object(&objects, NS, "other", "v1", "Pod", POD, "")
        .await
        .unwrap_err();
    assert!(matches!(err, BindError::DifferentServiceAccount(_)));
    let err = resolve_bound_object(&objects, NS, SA, "v1", "Pod", POD, "stale")
        .await
        .unwrap_err();
    assert!(matches!(err, BindError::UidMismatch(_)));
    let err = resolve_bound_object(&objects, NS, SA, "v1", "Pod", "nope", "")
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        BindError::NotFound {
            resource: "pods",
            ..
        }
    ));
    let err = resolve_bound_object(&objects, NS, SA, "apps/v1", "Deployment", "x", "")
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot bind token to object of type apps/v1, Kind=Deployment"
    );
    let node = resolve_bound_object(&objects, NS, SA, "v1", "Node", NODE, NODE_UID)
        .await
        .unwrap();
    assert_eq!(
        node,
        BoundObject::Node(ObjectRef {
            name: NODE.into(),
            uid: NODE_UID.into()
        })
    );
    let secret = resolve_bound_object(&objects, NS, SA, "v1", "Secret", SECRET, "")
        .await
        .unwrap();
    assert_eq!(
        secret,
        BoundObject::Secret(ObjectRef {
            name: SECRET.into(),
            uid: SECRET_UID.into()
        })
    );
}
