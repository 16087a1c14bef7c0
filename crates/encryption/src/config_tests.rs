use super::*;

// base64 of 32, 16 and 10 bytes.
const K32: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const K32B: &str = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";
const K16: &str = "AAECAwQFBgcICQoLDA0ODw==";
const K10: &str = "AAECAwQFBgcICQ==";

const KEY: &[u8] = b"/registry/secrets/default/s1";

fn parse(text: &str) -> Result<EncryptionConfig, ConfigError> {
    EncryptionConfig::from_yaml(text, Path::new("/etc/kubernetes/encryption-config.yaml"))
}

fn err(text: &str) -> String {
    match parse(text) {
        Ok(config) => panic!("expected an error, got {config:?}"),
        Err(e) => e.to_string(),
    }
}

fn v1(body: &str) -> String {
    format!("apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\n{body}")
}

#[test]
fn seed_format_loads_from_a_file() {
    // As the seeds write it (kind EncryptionConfig, apiVersion v1), key from `head -c 32
    // /dev/urandom | base64`.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("encryption-config.yaml");
    std::fs::write(
        &path,
        format!(
            "kind: EncryptionConfig\napiVersion: v1\nresources:\n  - resources:\n      - secrets\n    providers:\n      - aescbc:\n          keys:\n            - name: key1\n              secret: {K32}\n      - identity: {{}}\n"
        ),
    )
    .unwrap();
    let config = EncryptionConfig::load(&path).unwrap();
    assert_eq!(config.resources(), vec!["secrets"]);
    let secrets = config.transformer_for("", "secrets").unwrap();
    assert!(!secrets.writes_plaintext());
    let stored = secrets.encrypt(KEY, b"{}").unwrap();
    assert!(stored.starts_with(b"k8s:enc:aescbc:v1:key1:"));
    assert_eq!(secrets.decrypt(KEY, b"{}").unwrap(), (b"{}".to_vec(), true));
    assert!(config.transformer_for("", "configmaps").is_none());
    assert!(config.transformer_for("apps", "secrets").is_none());
}

#[test]
fn json_and_all_providers() {
    let text = format!(
        r#"{{"apiVersion":"apiserver.config.k8s.io/v1","kind":"EncryptionConfiguration","resources":[
            {{"resources":["secrets","configmaps"],"providers":[
                {{"aesgcm":{{"keys":[{{"name":"g","secret":"{K16}"}}]}}}},
                {{"secretbox":{{"keys":[{{"name":"s","secret":"{K32}"}}]}}}},
                {{"aescbc":{{"keys":[{{"name":"c","secret":"{K32}"}}]}}}},
                {{"identity":{{}}}}]}}]}}"#
    );
    let config = parse(&text).unwrap();
    let t = config.transformer_for("", "configmaps").unwrap();
    assert!(t
        .encrypt(KEY, b"x")
        .unwrap()
        .starts_with(b"k8s:enc:aesgcm:v1:g:"));
    assert_eq!(
        format!("{t:?}"),
        r#"[k8s:enc:aesgcm:v1:["g"], k8s:enc:secretbox:v1:["s"], k8s:enc:aescbc:v1:["c"], identity]"#
    );
}

#[test]
fn wildcards_resolve_as_upstream() {
    let text = v1(&format!(
        "resources:
- resources: [secrets]
  providers: [{{secretbox: {{keys: [{{name: a, secret: {K32}}}]}}}}]
- resources: ['*.apps']
  providers: [{{aesgcm: {{keys: [{{name: b, secret: {K16}}}]}}}}]
- resources: ['*.']
  providers: [{{aescbc: {{keys: [{{name: c, secret: {K16}}}]}}}}]
- resources: ['*.*']
  providers: [{{identity: {{}}}}]
"
    ));
    let config = parse(&text).unwrap();
    let prefix = |group: &str, resource: &str| {
        let t = config.transformer_for(group, resource).unwrap();
        let out = t.encrypt(KEY, b"{}").unwrap();
        String::from_utf8_lossy(&out[..out.len().min(22)]).into_owned()
    };
    assert!(prefix("", "secrets").starts_with("k8s:enc:secretbox:v1:a"));
    assert!(prefix("apps", "deployments").starts_with("k8s:enc:aesgcm:v1:b:"));
    assert!(prefix("", "configmaps").starts_with("k8s:enc:aescbc:v1:c:"));
    assert_eq!(prefix("batch", "jobs"), "{}");
    assert_eq!(config.resources(), vec!["*.", "*.*", "*.apps", "secrets"]);
}

#[test]
fn a_resource_in_several_entries_gets_their_providers_in_order() {
    let text = v1(&format!(
        "resources:
- resources: [secrets]
  providers: [{{aescbc: {{keys: [{{name: new, secret: {K32B}}}]}}}}]
- resources: [secrets, configmaps]
  providers: [{{aescbc: {{keys: [{{name: old, secret: {K32}}}]}}}}, {{identity: {{}}}}]
"
    ));
    let config = parse(&text).unwrap();
    let secrets = config.transformer_for("", "secrets").unwrap();
    let configmaps = config.transformer_for("", "configmaps").unwrap();
    let old = configmaps.encrypt(KEY, b"v").unwrap();
    assert_eq!(secrets.decrypt(KEY, &old).unwrap(), (b"v".to_vec(), true));
    assert_eq!(secrets.decrypt(KEY, b"v").unwrap(), (b"v".to_vec(), true));
    assert!(secrets
        .encrypt(KEY, b"v")
        .unwrap()
        .starts_with(b"k8s:enc:aescbc:v1:new:"));
}

#[test]
fn later_rules_masked_by_earlier_wildcards_are_refused() {
    let id = "providers: [{identity: {}}]";
    let cases = [
        (
            "'*.*'",
            "secrets",
            r#"resource "secrets" is masked by earlier rule "*.*""#,
        ),
        (
            "'*.'",
            "configmaps",
            r#"resource "configmaps" is masked by earlier rule "*.""#,
        ),
        (
            "'*.apps'",
            "deployments.apps",
            r#"resource "deployments.apps" is masked by earlier rule "*.apps""#,
        ),
    ];
    for (first, second, want) in cases {
        let text = v1(&format!(
            "resources:\n- resources: [{first}]\n  {id}\n- resources: [{second}]\n  {id}\n"
        ));
        let message = err(&text);
        assert!(message.contains(want), "{message}");
        assert!(
            message.contains("/etc/kubernetes/encryption-config.yaml"),
            "{message}"
        );
    }
    // The other way round is fine: the exact rule wins over a later wildcard.
    let text = v1(&format!(
        "resources:\n- resources: [secrets]\n  {id}\n- resources: ['*.*']\n  {id}\n"
    ));
    parse(&text).unwrap();
}

/// Each bad file, with the field and message upstream reports for it.
#[test]
fn bad_configs_name_file_field_and_reason() {
    let one = |provider: &str| {
        v1(&format!(
            "resources:\n- resources: [secrets]\n  providers:\n  - identity: {{}}\n  - {provider}\n"
        ))
    };
    let cases: Vec<(String, &str)> = vec![
        (
            one(&format!("aescbc: {{keys: [{{name: key1, secret: {K10}}}]}}")),
            r#"resources[0].providers[1].aescbc.keys[0].secret: Invalid value: "REDACTED": secret is not of the expected length, got 10, expected one of [16 24 32]"#,
        ),
        (
            one(&format!("secretbox: {{keys: [{{name: key1, secret: {K16}}}]}}")),
            r#"resources[0].providers[1].secretbox.keys[0].secret: Invalid value: "REDACTED": secret is not of the expected length, got 16, expected one of [32]"#,
        ),
        (
            one("aesgcm: {keys: [{name: key1, secret: 'not base64!'}]}"),
            r#"resources[0].providers[1].aesgcm.keys[0].secret: Invalid value: "REDACTED": secrets must be base64 encoded"#,
        ),
        (
            // Unpadded base64 is refused, as Go's StdEncoding does.
            one("aesgcm: {keys: [{name: key1, secret: AAECAwQFBgcICQoLDA0ODw}]}"),
            "secrets must be base64 encoded",
        ),
        (
            one("aescbc: {keys: [{name: key1}]}"),
            "resources[0].providers[1].aescbc.keys[0].secret: Required value: secret is a mandatory field for a key",
        ),
        (
            one(&format!("aescbc: {{keys: [{{secret: {K32}}}]}}")),
            "resources[0].providers[1].aescbc.keys[0].name: Required value: name is a mandatory field for a key",
        ),
        (
            one("aescbc: {keys: []}"),
            "resources[0].providers[1].aescbc.keys: Required value: at least one keys is required",
        ),
        (
            one("{}"),
            "resources[0].providers[1]: Invalid value: {}: provider does not contain any of the expected providers: KMS, AESGCM, AESCBC, Secretbox, Identity",
        ),
        (
            one(&format!("{{identity: {{}}, aescbc: {{keys: [{{name: k, secret: {K32}}}]}}}}")),
            "resources[0].providers[1]: Invalid value: {aescbc, identity}: more than one provider specified in a single element",
        ),
        (
            one("kms: {apiVersion: v2, name: myKms, endpoint: 'unix:///tmp/kms.sock', timeout: 3s}"),
            r#"resources[0].providers[1].kms: Unsupported value: KMS provider "myKms" (apiVersion v2, endpoint "unix:///tmp/kms.sock"): kms providers are not supported by ferrokube"#,
        ),
        (
            v1("resources:\n- resources: [secrets, secrets]\n  providers: [{identity: {}}]\n"),
            r#"resources[0].resources: Invalid value: []string{"secrets", "secrets"}: the same resource cannot be specified multiple times"#,
        ),
        (
            v1("resources:\n- resources: [secrets, '*.']\n  providers: [{identity: {}}]\n"),
            "using overlapping resources such as 'secrets' and '*.' in the same resource list is not allowed",
        ),
        (
            v1("resources:\n- resources: [Secrets]\n  providers: [{identity: {}}]\n"),
            r#"resources[0].resources[0]: Invalid value: "Secrets": resource name should not contain capital letters"#,
        ),
        (
            v1("resources:\n- resources: ['*']\n  providers: [{identity: {}}]\n"),
            "use '*.' to encrypt all the resources from core API group or *.* to encrypt all resources",
        ),
        (
            v1("resources:\n- resources: [events.events.k8s.io]\n  providers: [{identity: {}}]\n"),
            "Use 'events' instead in the config file",
        ),
        (
            v1("resources:\n- resources: [ingresses.extensions]\n  providers: [{identity: {}}]\n"),
            "'extensions' group has been removed",
        ),
        (
            v1("resources:\n- resources: ['secrets.*']\n  providers: [{identity: {}}]\n"),
            "encrypting the same resource across groups is not supported",
        ),
        (
            v1("resources:\n- resources: [serviceipallocations]\n  providers: [{identity: {}}]\n"),
            "resources which do not have REST API/s cannot be encrypted",
        ),
        (
            v1("resources:\n- resources: []\n  providers: []\n"),
            "[resources[0].resources: Required value: at least one resources[0].resources is required, resources[0].providers: Required value: at least one resources[0].providers is required]",
        ),
        (
            v1("resources: []\n"),
            "resources: Required value: at least one resources is required",
        ),
        (
            v1(""),
            "resources: Required value: at least one resources is required",
        ),
    ];
    for (text, want) in cases {
        let message = err(&text);
        assert!(message.contains(want), "want {want:?}\n got {message:?}");
        assert!(
            message.starts_with(
                "invalid encryption provider configuration file \"/etc/kubernetes/encryption-config.yaml\": "
            ),
            "{message}"
        );
        for secret in [K10, K16, K32] {
            assert!(!message.contains(secret), "secret leaked: {message}");
        }
    }
}

#[test]
fn decode_errors_name_the_file_and_never_echo_secrets() {
    let cases = [
        (
            // Upstream decodes strictly: a misspelt field is an error, not ignored.
            v1(&format!(
                "resources:\n- resources: [secrets]\n  providers:\n  - aescbc:\n      keys:\n      - name: key1\n        secrt: {K32}\n"
            )),
            "secrt",
        ),
        (v1("resources:\n- resources: [secrets]\n  provider: []\n"), "provider"),
        (v1(&format!("resources: {K32}\n")), "error decoding"),
        ("{{{{".to_string(), "error decoding"),
    ];
    for (text, want) in cases {
        let message = err(&text);
        assert!(message.contains(want), "want {want:?}: {message}");
        assert!(
            message.starts_with(
                "error decoding encryption provider configuration file \"/etc/kubernetes/encryption-config.yaml\""
            ),
            "{message}"
        );
        assert!(!message.contains(K32), "secret leaked: {message}");
    }
}

#[test]
fn wrong_or_missing_kind_is_refused() {
    for (head, want) in [
        (
            "apiVersion: apiserver.config.k8s.io/v1beta1\nkind: EncryptionConfiguration\n",
            r#"no kind "EncryptionConfiguration" is registered for version "apiserver.config.k8s.io/v1beta1""#,
        ),
        (
            "apiVersion: v1\nkind: EncryptionConfiguration\n",
            r#"no kind "EncryptionConfiguration" is registered for version "v1""#,
        ),
        ("", r#"no kind "" is registered for version """#),
    ] {
        let text = format!(
            "{head}resources:\n- resources: [secrets]\n  providers: [{{identity: {{}}}}]\n"
        );
        let message = err(&text);
        assert!(message.contains(want), "{message}");
    }
}

#[test]
fn missing_and_empty_files() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.yaml");
    let message = EncryptionConfig::load(&missing).unwrap_err().to_string();
    assert!(
        message.starts_with("error reading encryption provider configuration file")
            && message.contains("nope.yaml"),
        "{message}"
    );
    let empty = dir.path().join("empty.yaml");
    std::fs::write(&empty, "").unwrap();
    let message = EncryptionConfig::load(&empty).unwrap_err().to_string();
    assert!(message.ends_with("empty.yaml\" is empty"), "{message}");
}

#[test]
fn group_resource_parsing_and_yaml_names() {
    let p = GroupResource::parse;
    assert_eq!(p("secrets"), GroupResource::new("", "secrets"));
    assert_eq!(
        p("deployments.apps"),
        GroupResource::new("apps", "deployments")
    );
    assert_eq!(
        p("foos.example.com"),
        GroupResource::new("example.com", "foos")
    );
    assert_eq!(p("*."), GroupResource::new("", "*"));
    assert_eq!(p("*.*"), GroupResource::new("*", "*"));
    for s in ["secrets", "deployments.apps", "*.", "*.*", "*.apps"] {
        assert_eq!(p(s).yaml_string(), s);
    }
}

#[test]
fn base64_as_go_std_encoding() {
    assert_eq!(decode_secret(K16).unwrap().len(), 16);
    // Go's decoder skips line breaks.
    assert_eq!(
        decode_secret("AAECAwQFBgcI\nCQoLDA0ODw==\r\n")
            .unwrap()
            .len(),
        16
    );
    assert!(decode_secret("AAECAwQFBgcICQoLDA0ODw").is_err());
    assert!(decode_secret("AAEC AwQF").is_err());
    // Non-zero trailing bits are accepted by StdEncoding (not Strict()).
    assert_eq!(decode_secret("AB==").unwrap(), vec![0]);
}
