//! `/containerLogs/{namespace}/{pod}/{container}`: a container's output from the log
//! file the runtime writes in the CRI format (`<RFC3339Nano> <stream> <P|F> <text>`),
//! as upstream's `kuberuntime` log reader: `follow`, `previous`, `tailLines`,
//! `limitBytes`, `sinceSeconds`, `sinceTime`, `timestamps`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ferrokube_cri::v1 as cri;
use http::{header, Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::stream::query_values;
use super::{status, Body};
use crate::Kubelet;

/// What the request asks for.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct LogOptions {
    pub follow: bool,
    pub previous: bool,
    pub timestamps: bool,
    pub tail_lines: Option<usize>,
    pub limit_bytes: Option<usize>,
    /// Only lines at or after this Unix second.
    pub since: Option<i64>,
}

impl LogOptions {
    /// From the query string; a malformed number is an error naming the parameter.
    pub fn parse(query: &str, now: i64) -> Result<LogOptions, String> {
        let q = query_values(query);
        let one = |k: &str| q.get(k).and_then(|v| v.first()).map(String::as_str);
        let yes = |k: &str| matches!(one(k), Some("1" | "true" | "True"));
        let number = |k: &str| -> Result<Option<i64>, String> {
            one(k)
                .map(|v| {
                    v.parse::<i64>()
                        .map_err(|_| format!("invalid value {v:?} for {k}: not an integer"))
                })
                .transpose()
        };
        let positive = |k: &str, v: Option<i64>| -> Result<Option<usize>, String> {
            match v {
                Some(n) if n < 0 => Err(format!("{k}: must be greater than or equal to 0")),
                Some(n) => Ok(Some(usize::try_from(n).unwrap_or(usize::MAX))),
                None => Ok(None),
            }
        };
        let since = match (number("sinceSeconds")?, one("sinceTime")) {
            (Some(s), _) if s <= 0 => {
                return Err("sinceSeconds: must be greater than 0".into());
            }
            (Some(s), _) => Some(now - s),
            (None, Some(t)) => Some(
                ferrokube_api::time::parse_rfc3339(t)
                    .ok_or_else(|| format!("invalid value {t:?} for sinceTime"))?,
            ),
            (None, None) => None,
        };
        Ok(LogOptions {
            follow: yes("follow"),
            previous: yes("previous"),
            timestamps: yes("timestamps"),
            tail_lines: positive("tailLines", number("tailLines")?)?,
            limit_bytes: positive("limitBytes", number("limitBytes")?)?,
            since,
        })
    }
}

/// One CRI log record: its timestamp, and the text (a `P` partial has no newline).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<'a> {
    pub timestamp: &'a str,
    pub text: &'a str,
    pub partial: bool,
}

/// Parses one line of a CRI log file (without its newline).
pub fn parse_line(line: &str) -> Option<Record<'_>> {
    let (timestamp, rest) = line.split_once(' ')?;
    let (_stream, rest) = rest.split_once(' ')?;
    let (tag, text) = match rest.split_once(' ') {
        Some((tag, text)) => (tag, text),
        None => (rest, ""),
    };
    Some(Record {
        timestamp,
        text,
        partial: tag.split(':').next() == Some("P"),
    })
}

/// Renders records of `content` (whole lines) as the client sees them.
fn render(content: &str, opts: &LogOptions) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut pending = String::new();
    for line in content.lines() {
        let Some(r) = parse_line(line) else { continue };
        if let Some(since) = opts.since {
            if ferrokube_api::time::parse_rfc3339(r.timestamp).is_some_and(|t| t < since) {
                continue;
            }
        }
        if pending.is_empty() && opts.timestamps {
            pending.push_str(r.timestamp);
            pending.push(' ');
        }
        pending.push_str(r.text);
        if !r.partial {
            pending.push('\n');
            out.push(std::mem::take(&mut pending));
        }
    }
    if !pending.is_empty() {
        out.push(pending);
    }
    out
}

/// The newest attempt of the container, or the one before it for `previous`.
async fn find_container(
    k: &Kubelet,
    ns: &str,
    pod: &str,
    container: &str,
    previous: bool,
) -> Result<cri::Container, Response<Body>> {
    let all = super::stream::instances(k, ns, pod, container, false)
        .await
        .map_err(|e| {
            status(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                &e.to_string(),
            )
        })?;
    let pick = if previous { all.get(1) } else { all.first() };
    pick.cloned().ok_or_else(|| {
        let message = if previous {
            format!("previous terminated container \"{container}\" in pod \"{pod}\" not found")
        } else {
            format!(
                "container \"{container}\" in pod \"{pod}\" is waiting to start: ContainerCreating"
            )
        };
        status(StatusCode::BAD_REQUEST, "BadRequest", &message)
    })
}

fn running(s: &cri::ContainerStatus) -> bool {
    s.state == cri::ContainerState::ContainerRunning as i32
}

/// Serves the logs of `ns/pod`'s `container`.
pub async fn serve(
    k: &Arc<Kubelet>,
    ns: &str,
    pod: &str,
    container: &str,
    query: &str,
) -> Response<Body> {
    let opts = match LogOptions::parse(query, ferrokube_api::time::now_unix()) {
        Ok(o) => o,
        Err(e) => return status(StatusCode::BAD_REQUEST, "BadRequest", &e),
    };
    let c = match find_container(k, ns, pod, container, opts.previous).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let Some(st) = k.container_status(&c.id).await else {
        return status(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("container {container:?} in pod {pod:?} is gone"),
        );
    };
    let path = std::path::PathBuf::from(&st.log_path);
    let mut file = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(e) => {
            return status(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                &format!("failed to open log file {}: {e}", path.display()),
            )
        }
    };
    let mut raw = Vec::new();
    if let Err(e) = file.read_to_end(&mut raw).await {
        return status(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            &format!("reading {}: {e}", path.display()),
        );
    }
    // Only whole lines now; a trailing partial line is read again when following.
    let whole = raw.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let mut offset = whole as u64;
    let mut lines = render(&String::from_utf8_lossy(&raw[..whole]), &opts);
    if let Some(n) = opts.tail_lines {
        let skip = lines.len().saturating_sub(n);
        lines.drain(..skip);
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(16);
    let mut budget = opts.limit_bytes.unwrap_or(usize::MAX);
    let send = |tx: tokio::sync::mpsc::Sender<_>, text: String, budget: &mut usize| {
        let mut bytes = text.into_bytes();
        bytes.truncate(*budget);
        *budget -= bytes.len();
        async move { tx.send(Ok(Frame::data(Bytes::from(bytes)))).await.is_ok() }
    };
    let initial: String = lines.concat();
    let follow = opts.follow && running(&st);
    let (k, id) = (k.clone(), c.id.clone());
    tokio::spawn(async move {
        if !initial.is_empty() && !send(tx.clone(), initial, &mut budget).await {
            return;
        }
        if !follow {
            return;
        }
        // Follow: poll the file for growth; stop once the container has stopped and
        // everything it wrote was sent.
        let mut since_check = 0u32;
        loop {
            if budget == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            let mut chunk = Vec::new();
            if file.seek(std::io::SeekFrom::Start(offset)).await.is_ok() {
                let _ = file.read_to_end(&mut chunk).await;
            }
            let whole = chunk.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
            if whole > 0 {
                offset += whole as u64;
                let text = render(&String::from_utf8_lossy(&chunk[..whole]), &opts).concat();
                if !text.is_empty() && !send(tx.clone(), text, &mut budget).await {
                    return;
                }
                continue;
            }
            if tx.is_closed() {
                return;
            }
            // Rotated: the path is a new file (the old one was read to its end).
            if let Some(ino) = rotated_to(&path, &file).await {
                if let Ok(f) = tokio::fs::File::open(&path).await {
                    tracing::debug!(path = %path.display(), ino, "following the rotated log");
                    file = f;
                    offset = 0;
                    continue;
                }
            }
            since_check += 1;
            if since_check >= 5 {
                since_check = 0;
                let alive = k.container_status(&id).await.is_some_and(|s| running(&s));
                if !alive {
                    return;
                }
            }
        }
    });
    let body = StreamBody::new(tokio_stream_from(rx)).boxed();
    let mut r = Response::new(body);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain"),
    );
    r
}

/// The inode now at `path`, if it is not the open `file`'s (the log was rotated).
async fn rotated_to(path: &std::path::Path, file: &tokio::fs::File) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    let now = tokio::fs::metadata(path).await.ok()?.ino();
    let open = file.metadata().await.ok()?.ino();
    (now != open).then_some(now)
}

/// An mpsc receiver as a stream of body frames.
fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<Result<Frame<Bytes>, std::io::Error>>,
) -> impl futures_util::Stream<Item = Result<Frame<Bytes>, std::io::Error>> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "2026-01-01T00:00:00.1Z stdout F one\n\
        2026-01-01T00:00:01.2Z stderr P tw\n\
        2026-01-01T00:00:01.3Z stderr F o\n\
        2026-01-01T00:00:05.0Z stdout F three\n\
        2026-01-01T00:00:06.0Z stdout F\n";

    #[test]
    fn cri_lines_parse() {
        assert_eq!(
            parse_line("2026-01-01T00:00:00Z stdout F hello world"),
            Some(Record {
                timestamp: "2026-01-01T00:00:00Z",
                text: "hello world",
                partial: false
            })
        );
        assert!(parse_line("2026-01-01T00:00:00Z stdout P x").is_some_and(|r| r.partial));
        assert_eq!(parse_line("garbage"), None);
    }

    #[test]
    fn partial_records_join_and_options_apply() {
        let opts = LogOptions::default();
        assert_eq!(render(LOG, &opts).concat(), "one\ntwo\nthree\n\n");
        let ts = LogOptions {
            timestamps: true,
            ..LogOptions::default()
        };
        assert_eq!(
            render(LOG, &ts)[1],
            "2026-01-01T00:00:01.2Z two\n",
            "a joined line carries its first record's timestamp"
        );
        let since = LogOptions {
            since: ferrokube_api::time::parse_rfc3339("2026-01-01T00:00:05Z"),
            ..LogOptions::default()
        };
        assert_eq!(render(LOG, &since).concat(), "three\n\n");
    }

    #[test]
    fn query_options_and_errors() {
        let o =
            LogOptions::parse("follow=true&tailLines=2&limitBytes=10&timestamps=1", 100).unwrap();
        assert!(o.follow && o.timestamps && !o.previous);
        assert_eq!((o.tail_lines, o.limit_bytes), (Some(2), Some(10)));
        assert_eq!(
            LogOptions::parse("sinceSeconds=10", 100).unwrap().since,
            Some(90)
        );
        assert!(LogOptions::parse("tailLines=x", 0)
            .unwrap_err()
            .contains("tailLines"));
        assert!(LogOptions::parse("tailLines=-1", 0)
            .unwrap_err()
            .contains("tailLines"));
        assert!(LogOptions::parse("sinceSeconds=0", 0).is_err());
        assert!(LogOptions::parse("sinceTime=yesterday", 0)
            .unwrap_err()
            .contains("sinceTime"));
    }
}
