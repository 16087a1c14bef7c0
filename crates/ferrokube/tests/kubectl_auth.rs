#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Authentication and authorization as kubectl users meet them on `ferrokube server`
//! (token file for the admin, service-account tokens, Node,RBAC): `create token`,
//! `auth whoami`, TokenReview, `auth can-i` (and `--list`), RBAC grants taking effect,
//! escalation prevention, impersonation rights.

mod common;

use common::start;

/// `kubectl auth can-i` answers yes (exit 0) or no (exit 1).
fn can_i(s: &common::Server, args: &[&str]) -> String {
    let mut full = vec!["auth", "can-i"];
    full.extend_from_slice(args);
    let o = s.kubectl(&full);
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

#[test]
fn tokens_rbac_and_reviews_with_kubectl() {
    let s = start();
    assert!(s.ok(&["auth", "whoami"]).contains("system:masters"));
    s.ok(&["create", "serviceaccount", "app"]);
    let token = s.ok(&["create", "token", "app", "--duration=1h"]);
    let token = token.trim();
    assert!(token.starts_with("eyJ"), "{token}");
    let me = s.ok(&[
        "auth",
        "whoami",
        "--token",
        token,
        "-o",
        "jsonpath={.status.userInfo.username}",
    ]);
    assert_eq!(me, "system:serviceaccount:default:app");
    let review = format!(
        "apiVersion: authentication.k8s.io/v1\nkind: TokenReview\nspec: {{token: \"{token}\"}}\n"
    );
    let o = s.kubectl_stdin(
        &[
            "create",
            "-f",
            "-",
            "-o",
            "jsonpath={.status.authenticated} {.status.user.username}",
        ],
        Some(&review),
    );
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "true system:serviceaccount:default:app"
    );
    // A forged token authenticates nobody.
    let forged = format!("{}x", &token[..token.len() - 1]);
    let err = s.fails(&["get", "pods", "--token", &forged]);
    assert!(err.contains("Unauthorized"), "{err}");

    // Nothing is allowed until RBAC grants it; then exactly that.
    let err = s.fails(&["get", "pods", "--token", token]);
    assert!(
        err.contains(r#"pods is forbidden: User "system:serviceaccount:default:app" cannot list resource "pods" in API group "" in the namespace "default""#),
        "{err}"
    );
    assert_eq!(
        can_i(
            &s,
            &["list", "pods", "--as", "system:serviceaccount:default:app"]
        ),
        "no"
    );
    s.ok(&[
        "create",
        "role",
        "pod-reader",
        "--verb=get,list,watch",
        "--resource=pods",
    ]);
    s.ok(&[
        "create",
        "rolebinding",
        "app-reads",
        "--role=pod-reader",
        "--serviceaccount=default:app",
    ]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while s.kubectl(&["get", "pods", "--token", token]).status.code() != Some(0) {
        assert!(
            std::time::Instant::now() < deadline,
            "the RoleBinding never took effect"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(can_i(&s, &["list", "pods", "--token", token]), "yes");
    assert_eq!(can_i(&s, &["delete", "pods", "--token", token]), "no");
    assert_eq!(
        can_i(&s, &["list", "pods", "-n", "kube-system", "--token", token]),
        "no"
    );
    let list = can_i(&s, &["--list", "--token", token]);
    assert!(
        list.lines()
            .any(|l| l.starts_with("pods ") && l.contains("[get list watch]")),
        "{list}"
    );

    // Escalation: granting what you do not hold is forbidden, impersonation needs its verb.
    s.ok(&[
        "create",
        "role",
        "role-writer",
        "--verb=create",
        "--resource=roles.rbac.authorization.k8s.io",
    ]);
    s.ok(&[
        "create",
        "rolebinding",
        "app-writes-roles",
        "--role=role-writer",
        "--serviceaccount=default:app",
    ]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while can_i(&s, &["create", "roles", "--token", token]) != "yes" {
        assert!(
            std::time::Instant::now() < deadline,
            "the RoleBinding never took effect"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let err = s.fails(&[
        "create",
        "role",
        "secret-reader",
        "--verb=get",
        "--resource=secrets",
        "--token",
        token,
    ]);
    assert!(
        err.contains(r#"roles.rbac.authorization.k8s.io "secret-reader" is forbidden: user "system:serviceaccount:default:app""#)
            && err.contains("is attempting to grant RBAC permissions not currently held"),
        "{err}"
    );
    s.ok(&[
        "create",
        "role",
        "pod-lister",
        "--verb=list",
        "--resource=pods",
        "--token",
        token,
    ]);
    let err = s.fails(&["get", "pods", "--token", token, "--as", "admin"]);
    assert!(
        err.contains(r#"users "admin" is forbidden: User "system:serviceaccount:default:app" cannot impersonate resource "users" in API group "" at the cluster scope"#),
        "{err}"
    );
}

#[test]
fn discovery_documents_are_open_to_every_authenticated_user() {
    // Upstream's request-info rules: /api/v1 and /apis/<group>/<version> are
    // non-resource paths that system:discovery grants to system:authenticated.
    let s = common::start();
    s.ok(&["create", "serviceaccount", "reader"]);
    let token = s.ok(&["create", "token", "reader"]);
    for path in ["/api", "/api/v1", "/apis", "/apis/apps/v1"] {
        let out = s.kubectl(&["--token", token.trim(), "get", "--raw", path]);
        assert!(
            out.status.success(),
            "{path}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Listing a resource is still authorized as a list.
    let out = s.kubectl(&[
        "--token",
        token.trim(),
        "get",
        "--raw",
        "/apis/apps/v1/deployments",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("forbidden"));
}

/// As upstream's AuthorizePodWebsocketUpgradeCreatePermission: a WebSocket exec
/// (a GET) needs `create` on pods/exec as well as `get`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_exec_needs_create_as_well_as_get() {
    let s = start();
    s.ok(&["create", "serviceaccount", "runner"]);
    let token = s.ok(&["create", "token", "runner"]).trim().to_string();
    s.ok(&[
        "create",
        "role",
        "exec-get",
        "--verb=get",
        "--resource=pods/exec",
    ]);
    s.ok(&[
        "create",
        "rolebinding",
        "exec-get",
        "--role=exec-get",
        "--serviceaccount=default:runner",
    ]);
    let mut config = kube::Config::new(s.server_url().parse().unwrap());
    config.accept_invalid_certs = true;
    config.headers.push((
        http::header::AUTHORIZATION,
        format!("Bearer {token}").parse().unwrap(),
    ));
    let client = kube::Client::try_from(config).unwrap();
    let upgrade = || {
        http::Request::get("/api/v1/namespaces/default/pods/nowhere/exec?command=ls&stdout=true")
            .header("connection", "Upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-version", "13")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
            .header("sec-websocket-protocol", "v5.channel.k8s.io")
            .body(kube::client::Body::empty())
            .unwrap()
    };
    let status = |resp: http::Response<kube::client::Body>| async move {
        let code = resp.status().as_u16();
        let body = resp
            .into_body()
            .collect_bytes()
            .await
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        (code, body)
    };
    let (code, body) = status(client.send(upgrade()).await.unwrap()).await;
    assert_eq!(code, 403, "{body}");
    assert!(
        body.contains(r#"cannot create resource \"pods/exec\""#),
        "{body}"
    );
    // With create too, the request gets as far as the (missing) pod.
    s.ok(&[
        "create",
        "role",
        "exec-create",
        "--verb=create",
        "--resource=pods/exec",
    ]);
    s.ok(&[
        "create",
        "rolebinding",
        "exec-create",
        "--role=exec-create",
        "--serviceaccount=default:runner",
    ]);
    let (code, body) = status(client.send(upgrade()).await.unwrap()).await;
    assert_eq!(code, 404, "{body}");
}
