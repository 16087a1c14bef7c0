//! `/logs/`: the node's `/var/log`, as upstream's kubelet serves it (a Go
//! `http.FileServer`, `enableSystemLogHandler`): a directory answers with an HTML list of
//! its entries (directories with a trailing `/`), a file with its bytes; a directory
//! asked for without its trailing slash is redirected to it. Nothing outside the root
//! is reachable (`..`, symlinks leading out).

use std::path::{Path, PathBuf};

use bytes::Bytes;
use http::{header, Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use tokio::io::AsyncReadExt;

use super::{full, text, Body};

/// Upstream's root.
pub const ROOT: &str = "/var/log";

/// Escapes text for HTML as Go's `htmlReplacer` does.
fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&#34;")
        .replace('\'', "&#39;")
}

/// Percent-encodes a name for an href (path segment rules).
fn href(name: &str) -> String {
    let mut out = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn decode(segment: &str) -> Option<String> {
    let bytes: Vec<u8> = percent_decode(segment.as_bytes())?;
    String::from_utf8(bytes).ok()
}

fn percent_decode(s: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%' {
            let hex = std::str::from_utf8(s.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    Some(out)
}

/// The file under `root` that `rel` (the path after `/logs/`) names, if it stays inside.
fn resolve(root: &Path, rel: &str) -> Option<PathBuf> {
    let mut path = root.to_path_buf();
    for seg in rel.split('/').filter(|s| !s.is_empty()) {
        let seg = decode(seg)?;
        if seg == ".." || seg == "." || seg.contains('/') || seg.contains('\0') {
            return None;
        }
        path.push(seg);
    }
    let real = std::fs::canonicalize(&path).ok()?;
    let root = std::fs::canonicalize(root).ok()?;
    real.starts_with(&root).then_some(real)
}

fn listing(dir: &Path) -> std::io::Result<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| {
            let mut n = e.file_name().to_string_lossy().into_owned();
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                n.push('/');
            }
            n
        })
        .collect();
    names.sort();
    let mut out = String::from(
        "<!doctype html>\n<meta name=\"viewport\" content=\"width=device-width\">\n<pre>\n",
    );
    for n in names {
        out.push_str(&format!(
            "<a href=\"{}\">{}</a>\n",
            html_escape(&href(&n)),
            html_escape(&n)
        ));
    }
    out.push_str("</pre>\n");
    Ok(out)
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()) {
        Some("html" | "htm") => "text/html; charset=utf-8",
        Some("json") => "application/json",
        Some("gz") => "application/gzip",
        _ => "text/plain; charset=utf-8",
    }
}

/// Answers `GET /logs/<rel>` from `root`. `request_path` is the whole path asked for
/// (for the trailing-slash redirect).
pub async fn serve(root: &Path, rel: &str, request_path: &str) -> Response<Body> {
    let not_found = || text(StatusCode::NOT_FOUND, "404 page not found\n");
    let Some(path) = resolve(root, rel) else {
        return not_found();
    };
    let Ok(meta) = tokio::fs::metadata(&path).await else {
        return not_found();
    };
    if meta.is_dir() {
        if !request_path.ends_with('/') {
            let mut r = Response::new(full(Bytes::new()));
            *r.status_mut() = StatusCode::MOVED_PERMANENTLY;
            let target = format!("{}/", request_path.rsplit('/').next().unwrap_or_default());
            if let Ok(v) = header::HeaderValue::from_str(&target) {
                r.headers_mut().insert(header::LOCATION, v);
            }
            return r;
        }
        return match listing(&path) {
            Ok(html) => {
                let mut r = Response::new(full(html));
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    header::HeaderValue::from_static("text/html; charset=utf-8"),
                );
                r
            }
            Err(_) => not_found(),
        };
    }
    let Ok(mut file) = tokio::fs::File::open(&path).await else {
        return not_found();
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(8);
    tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match file.read(&mut buf).await {
                Ok(0) => return,
                Ok(n) => {
                    let chunk = Bytes::copy_from_slice(&buf[..n]);
                    if tx.send(Ok(Frame::data(chunk))).await.is_err() {
                        return;
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            }
        }
    });
    let body = StreamBody::new(futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))).boxed();
    let mut r = Response::new(body);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type(&path)),
    );
    if let Ok(v) = header::HeaderValue::from_str(&meta.len().to_string()) {
        r.headers_mut().insert(header::CONTENT_LENGTH, v);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_inside_the_root() {
        let dir = std::env::temp_dir().join(format!("fk-node-logs-{}", std::process::id()));
        let root = dir.join("log");
        std::fs::create_dir_all(root.join("sub")).unwrap_or_default();
        std::fs::write(root.join("sub/a.log"), "x").unwrap_or_default();
        std::fs::write(dir.join("secret"), "s").unwrap_or_default();
        let _ = std::os::unix::fs::symlink(dir.join("secret"), root.join("out"));
        assert!(resolve(&root, "sub/a.log").is_some());
        assert!(resolve(&root, "sub/%61.log").is_some());
        assert!(resolve(&root, "../secret").is_none());
        assert!(resolve(&root, "sub/%2E%2E/%2E%2E/secret").is_none());
        assert!(resolve(&root, "out").is_none());
        let html = listing(&root).unwrap_or_default();
        assert!(html.contains("<a href=\"sub/\">sub/</a>"), "{html}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
