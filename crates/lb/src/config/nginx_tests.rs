#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use super::*;

/// The seeds' kube-nginx.conf, byte for byte (001, "Nginx 설치 및 배포").
const SEED: &str = r#"worker_processes 1;

events {
    worker_connections  1024;
}

stream {
    upstream backend {
        hash $remote_addr consistent;
        server 172.31.39.151:6443        max_fails=3 fail_timeout=30s;
        server 172.31.32.72:6443        max_fails=3 fail_timeout=30s;
    }

    server {
        listen 127.0.0.1:8443;
        proxy_connect_timeout 1s;
        proxy_pass backend;
    }
}
"#;

fn err(text: &str) -> String {
    parse("/etc/kube-nginx/kube-nginx.conf", text)
        .unwrap_err()
        .to_string()
}

#[test]
fn the_seed_kube_nginx_conf() {
    let c = parse("kube-nginx.conf", SEED).unwrap();
    assert_eq!(c.max_connections, Some(1024));
    assert_eq!(c.listeners.len(), 1);
    let l = &c.listeners[0];
    assert_eq!(l.address, "127.0.0.1:8443".parse().unwrap());
    assert_eq!(l.upstream, "backend");
    assert_eq!(l.connect_timeout, Duration::from_secs(1));
    assert_eq!(l.idle_timeout, Duration::from_secs(600)); // nginx's default
    assert!(l.next_upstream);
    let u = c.upstream("backend").unwrap();
    assert_eq!(u.balance, Balance::HashRemoteAddr { consistent: true });
    assert_eq!(u.servers.len(), 2);
    assert_eq!(u.servers[0].name, "172.31.39.151:6443");
    assert_eq!(u.servers[1].address, "172.31.32.72:6443".parse().unwrap());
    for s in &u.servers {
        assert_eq!(s.max_fails, 3);
        assert_eq!(s.fail_timeout, Duration::from_secs(30));
        assert_eq!(s.weight, 1);
        assert!(!s.backup && !s.down);
    }
}

#[test]
fn tokens_comments_quotes_and_inheritance() {
    let text = r#"
# a comment
stream {   # trailing comment
    proxy_timeout "1m 30s";
    proxy_connect_timeout '2s';
    upstream "pool" {
        least_conn;
        zone pool 64k;
        server 127.0.0.1:1 weight=3;
        server 127.0.0.1:2 backup;
        server 127.0.0.1:3 down max_fails=0;
    }
    server { listen 9000; proxy_pass pool; proxy_connect_timeout 3s; proxy_buffer_size 64k; }
    server { listen [::1]:9001; proxy_pass 127.0.0.1:7; proxy_next_upstream off; }
}
"#;
    let c = parse("x.conf", text).unwrap();
    assert_eq!(c.max_connections, Some(512));
    let a = &c.listeners[0];
    assert_eq!(a.address, "0.0.0.0:9000".parse().unwrap());
    assert_eq!(a.idle_timeout, Duration::from_secs(90));
    assert_eq!(a.connect_timeout, Duration::from_secs(3));
    assert_eq!(a.buffer_size, 65536);
    let b = &c.listeners[1];
    assert_eq!(b.address, "[::1]:9001".parse().unwrap());
    assert_eq!(b.connect_timeout, Duration::from_secs(2));
    assert!(!b.next_upstream);
    assert_eq!(b.upstream, "127.0.0.1:7");
    let implicit = c.upstream("127.0.0.1:7").unwrap();
    assert_eq!(implicit.servers.len(), 1);
    let pool = c.upstream("pool").unwrap();
    assert_eq!(pool.balance, Balance::LeastConn);
    assert_eq!(pool.servers[0].weight, 3);
    assert!(pool.servers[1].backup);
    assert!(pool.servers[2].down);
    assert_eq!(pool.servers[2].max_fails, 0);
}

#[test]
fn worker_connections_times_workers_caps_connections() {
    let text = "worker_processes 2; events { worker_connections 100; use epoll; }
        stream { server { listen 1; proxy_pass 127.0.0.1:2; } }";
    assert_eq!(parse("x", text).unwrap().max_connections, Some(200));
}

#[test]
fn unknown_directives_name_file_line_and_directive() {
    let text = "worker_processes 1;\nstream {\n    upstream b { server 127.0.0.1:1; }\n    server {\n        listen 1;\n        proxy_pas b;\n    }\n}\n";
    assert_eq!(
        err(text),
        "unknown directive \"proxy_pas\" in /etc/kube-nginx/kube-nginx.conf:6"
    );
    assert_eq!(
        err("bogus on;\n"),
        "unknown directive \"bogus\" in /etc/kube-nginx/kube-nginx.conf:1"
    );
}

#[test]
fn syntax_errors_as_nginx_words_them() {
    assert!(err("stream {\n").contains("unexpected end of file, expecting \"}\""));
    assert!(err("worker_processes 1\n").contains("unexpected end of file"));
    assert!(err("}\n").contains("unexpected \"}\" in /etc/kube-nginx/kube-nginx.conf:1"));
    assert!(err("a \"b\"c;").contains("unexpected \"c\""));
    assert!(err("a \"unterminated;\n").contains("unexpected end of file"));
    assert!(err(";").contains("unexpected \";\""));
}

#[test]
fn directive_errors() {
    let wrap = |inner: &str| format!("stream {{\n{inner}\n}}\n");
    assert_eq!(
        err(&wrap("server { listen 1 2 x; proxy_pass 127.0.0.1:1; }")),
        "invalid parameter \"2\" in /etc/kube-nginx/kube-nginx.conf:2"
    );
    assert!(err(&wrap("server { listen; proxy_pass a:1; }")).contains(
        "invalid number of arguments in \"listen\" directive in /etc/kube-nginx/kube-nginx.conf:2"
    ));
    assert!(err(&wrap("server { listen 1; }")).contains("no handler for server"));
    assert!(err(&wrap("server { proxy_pass 127.0.0.1:1; }")).contains("no \"listen\""));
    assert!(err(&wrap("server { listen 1; proxy_pass nowhere; }"))
        .contains("host not found in upstream \"nowhere\""));
    assert!(
        err(&wrap("upstream u { }\nserver { listen 1; proxy_pass u; }"))
            .contains("no servers are inside upstream in /etc/kube-nginx/kube-nginx.conf:2")
    );
    assert!(err(&wrap("upstream u { server 127.0.0.1; }"))
        .contains("no port in upstream \"127.0.0.1\" in /etc/kube-nginx/kube-nginx.conf:2"));
    assert!(err(&wrap("upstream u { server 127.0.0.1:1 weight=0; }"))
        .contains("invalid parameter \"weight=0\""));
    assert!(err(&wrap("upstream u { hash $remote_addr consistent; server 127.0.0.1:1; server 127.0.0.1:2 backup; }"))
        .contains("invalid parameter \"backup\" in /etc/kube-nginx/kube-nginx.conf:2"));
    assert!(err(&wrap(
        "upstream u { least_conn; hash $remote_addr; server 127.0.0.1:1; }"
    ))
    .contains("load balancing method redefined"));
    assert!(err(&wrap(
        "upstream u { hash $request_uri; server 127.0.0.1:1; }"
    ))
    .contains("hash key \"$request_uri\""));
    assert!(err(&wrap(
        "server { listen 1; proxy_pass 127.0.0.1:1; proxy_timeout 10x; }"
    ))
    .contains("\"proxy_timeout\" directive invalid value \"10x\""));
    assert!(err(&wrap(
        "server { listen 1; proxy_pass 127.0.0.1:1; proxy_timeout 1s; proxy_timeout 2s; }"
    ))
    .contains("\"proxy_timeout\" directive is duplicate"));
    assert!(err(&wrap("server { listen 1; proxy_pass 127.0.0.1:1; }\nserver { listen 1; proxy_pass 127.0.0.1:1; }"))
        .contains("duplicate \"0.0.0.0:1\" address and port pair in /etc/kube-nginx/kube-nginx.conf:3"));
    assert!(err(&wrap("listen 1;"))
        .contains("\"listen\" directive is not allowed here in /etc/kube-nginx/kube-nginx.conf:2"));
    assert!(err("http { }").contains("\"http\" directive is not supported"));
    assert!(
        err(&wrap("server { listen 1 udp; proxy_pass 127.0.0.1:1; }"))
            .contains("\"udp\" is not supported")
    );
    assert!(err(&wrap(
        "server { listen 1; proxy_pass 127.0.0.1:1; proxy_next_upstream maybe; }"
    ))
    .contains("it must be \"on\" or \"off\""));
    assert!(err("worker_processes 1;").contains("no \"stream"));
    assert!(err("events { worker_connections many; }").contains("invalid value \"many\""));
}

#[test]
fn hash_without_consistent_is_the_modulo_hash() {
    let text = "stream { upstream u { hash $remote_addr; server 127.0.0.1:1; }
        server { listen 1; proxy_pass u; } }";
    let c = parse("x", text).unwrap();
    assert_eq!(
        c.upstreams[0].balance,
        Balance::HashRemoteAddr { consistent: false }
    );
}

#[test]
fn never_panics_on_garbage() {
    // Every prefix of a valid file, and a few odd bytes: errors, never a panic.
    for i in 0..SEED.len() {
        if let Some(prefix) = SEED.get(..i) {
            let _ = parse("x", prefix);
        }
    }
    for text in [
        "{",
        "}}",
        "\"",
        "'",
        "\\",
        "a\\",
        "#",
        "a {;}",
        "stream { server { } }",
        "\u{0}",
    ] {
        let _ = parse("x", text);
    }
}
