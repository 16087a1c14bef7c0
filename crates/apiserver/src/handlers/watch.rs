//! Watch (`?watch=true`): a chunked stream of `{"type": …, "object": …}` lines, flushed
//! per event, as upstream's `endpoints/handlers/watch.go`. Unset or "0" resourceVersion
//! sends the current state as ADDED first; label/field selectors apply to both the old
//! and new object (leaving the selector is a DELETED, entering an ADDED); bookmarks with
//! `allowWatchBookmarks`; `sendInitialEvents` ends its initial state with the
//! `k8s.io/initial-events-end` bookmark; a compacted start is an ERROR event with 410.
//! Clients that negotiate protobuf get length-prefixed `WatchEvent` messages instead.

use std::time::Duration;

use bytes::Bytes;
use ferrokube_api::meta;
use ferrokube_api::resources::ResourceInfo;
use ferrokube_api::status::Status;
use ferrokube_storage::{EventKind, StorageError, WatchMessage, WatchRequest};
use http::{header, HeaderValue};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::body::{Body, Response};
use crate::errors::ApiResult;
use crate::negotiation::Output;
use crate::registry::list::ListOptions;
use crate::registry::store::decode;
use crate::registry::{Registry, Target};
use crate::request_info::Query;

/// How often an idle watch with bookmarks learns the current revision.
const BOOKMARK_EVERY: Duration = Duration::from_secs(10);

fn shape(target: &Target<'_>, out: Output, obj: Value) -> Value {
    crate::handlers::response::shape_object(out, target, obj)
}

/// How events are written: JSON lines, or length-prefixed protobuf `WatchEvent`s
/// (`application/vnd.kubernetes.protobuf;stream=watch`).
#[derive(Clone, Copy)]
struct Framing {
    protobuf: bool,
}

impl Framing {
    fn frame(self, event_type: &str, object: Value) -> Bytes {
        if self.protobuf {
            match ferrokube_api::protobuf::encode_object(&object) {
                Ok(obj) => {
                    return Bytes::from(ferrokube_api::protobuf::watch_frame(event_type, &obj))
                }
                Err(e) => {
                    // Not expected for a built-in kind; the client learns of it in-band.
                    let status = Status::internal(format!("encoding the watched object: {e}"));
                    let status = serde_json::to_value(&status).unwrap_or_default();
                    let obj = ferrokube_api::protobuf::encode_object(&status).unwrap_or_default();
                    return Bytes::from(ferrokube_api::protobuf::watch_frame("ERROR", &obj));
                }
            }
        }
        let mut v =
            serde_json::to_vec(&json!({"type": event_type, "object": object})).unwrap_or_default();
        v.push(b'\n');
        Bytes::from(v)
    }
}

fn bookmark(info: &ResourceInfo, rv: i64, initial_end: bool) -> Value {
    let mut metadata = json!({"resourceVersion": rv.to_string()});
    if initial_end {
        metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    json!({"kind": info.kind, "apiVersion": info.api_version(), "metadata": metadata})
}

pub async fn serve(
    registry: &Registry,
    target: &Target<'_>,
    q: &Query,
    out: Output,
    protobuf: bool,
) -> ApiResult<Response> {
    let info = target.info;
    let framing = Framing { protobuf };
    let opts = ListOptions::from_query(target, q)?;
    let bookmarks = q.flag("allowWatchBookmarks");
    let rv = q.get("resourceVersion").filter(|rv| !rv.is_empty());
    let send_initial = match q.get("sendInitialEvents") {
        Some("true") => Some(true),
        Some("false") => Some(false),
        _ => None,
    };
    if send_initial.is_some() && q.get("resourceVersionMatch") != Some("NotOlderThan") {
        return Err(Status::invalid(
            ferrokube_api::status::Subject {
                group: "meta.k8s.io",
                resource: "ListOptions",
                name: "",
            },
            vec![ferrokube_api::status::field::forbidden(
                "resourceVersionMatch",
                "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
            )],
        )
        .into());
    }
    let timeout = match q.get("timeoutSeconds").filter(|t| !t.is_empty()) {
        None => None,
        Some(t) => Some(Duration::from_secs(t.parse().map_err(|_| {
            Status::bad_request(format!("invalid timeoutSeconds {t:?}"))
        })?)),
    };
    // Initial state: synthetic ADDED events (rv unset or "0", or sendInitialEvents).
    let wants_initial = send_initial.unwrap_or(matches!(rv, None | Some("0")));
    let (initial, start) = if wants_initial {
        let (items, list_rv, _, _) = registry
            .list(
                target,
                &ListOptions {
                    limit: 0,
                    continue_token: None,
                    resource_version: None,
                    resource_version_match: None,
                    ..opts.clone()
                },
            )
            .await?;
        (items, list_rv + 1)
    } else {
        match rv {
            Some(rv) => {
                let n: i64 = rv
                    .parse()
                    .map_err(|_| Status::bad_request(format!("invalid resource version {rv:?}")))?;
                (Vec::new(), n + 1)
            }
            None => (Vec::new(), registry.storage.current_revision().await? + 1),
        }
    };
    let prefix = info.storage_list_prefix(target.namespace);
    let mut req = WatchRequest::prefix(prefix).from_revision(start);
    if bookmarks {
        req = req.with_progress_notify(BOOKMARK_EVERY);
    }
    let watch = registry.storage.watch(req).await;

    let (tx, rx) = mpsc::channel::<Bytes>(64);
    let target_ns = target.namespace.map(str::to_string);
    let info: &'static ResourceInfo = info;
    let served = target.served;
    let custom = target.custom.and_then(|c| {
        registry
            .crds
            .lookup(c.info.group, c.info.version, c.info.resource)
    });
    tokio::spawn(async move {
        let _watching = crate::metrics::GaugeGuard::new(&crate::metrics::metrics().watches);
        let target = Target {
            info,
            namespace: target_ns.as_deref(),
            custom: custom.as_deref(),
            served,
        };
        let run = async {
            for obj in initial {
                if tx
                    .send(framing.frame("ADDED", shape(&target, out, obj)))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            if send_initial == Some(true) && bookmarks {
                let _ = tx
                    .send(framing.frame(
                        "BOOKMARK",
                        bookmark(served.unwrap_or(info), start - 1, true),
                    ))
                    .await;
            }
            let mut watch = match watch {
                Ok(w) => w,
                Err(e) => {
                    let _ = tx.send(framing.frame("ERROR", error_object(e))).await;
                    return;
                }
            };
            loop {
                let msg = tokio::select! {
                    m = watch.recv() => m,
                    _ = tx.closed() => return,
                };
                let event = match msg {
                    None => return,
                    Some(Err(e)) => {
                        let _ = tx.send(framing.frame("ERROR", error_object(e))).await;
                        return;
                    }
                    Some(Ok(WatchMessage::Progress { revision })) => {
                        if bookmarks
                            && tx
                                .send(framing.frame(
                                    "BOOKMARK",
                                    bookmark(served.unwrap_or(info), revision, false),
                                ))
                                .await
                                .is_err()
                        {
                            return;
                        }
                        continue;
                    }
                    Some(Ok(WatchMessage::Event(e))) => e,
                };
                let Some((typ, obj)) = translate(&target, &opts, event) else {
                    continue;
                };
                if tx
                    .send(framing.frame(typ, shape(&target, out, obj)))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        };
        match timeout {
            Some(t) => {
                let _ = tokio::time::timeout(t, run).await;
            }
            None => run.await,
        }
    });
    let mut resp = http::Response::new(Body::Stream(rx));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(if protobuf {
            "application/vnd.kubernetes.protobuf;stream=watch"
        } else {
            "application/json"
        }),
    );
    Ok(resp)
}

fn error_object(e: StorageError) -> Value {
    let status = match e {
        StorageError::Compacted {
            requested,
            compacted,
        } => Status::gone(format!(
            "too old resource version: {} ({compacted})",
            requested - 1
        )),
        other => Status::internal(other),
    };
    serde_json::to_value(&status).unwrap_or_default()
}

/// A storage event as the watcher sees it through its selectors.
fn translate(
    target: &Target<'_>,
    opts: &ListOptions,
    e: ferrokube_storage::Event,
) -> Option<(&'static str, Value)> {
    let prev = e.prev_kv.as_ref().and_then(|kv| decode(kv).ok());
    let prev_matches = prev.as_ref().is_some_and(|p| opts.matches(target, p));
    match e.kind {
        EventKind::Deleted => {
            let mut obj = prev?;
            meta::set(
                &mut obj,
                "resourceVersion",
                json!(e.kv.mod_revision.to_string()),
            );
            prev_matches.then_some(("DELETED", obj))
        }
        EventKind::Created | EventKind::Modified => {
            let obj = decode(&e.kv).ok()?;
            let now_matches = opts.matches(target, &obj);
            match (prev_matches, now_matches) {
                (_, true) if e.kind == EventKind::Created => Some(("ADDED", obj)),
                (true, true) => Some(("MODIFIED", obj)),
                (false, true) => Some(("ADDED", obj)),
                (true, false) => Some(("DELETED", obj)),
                (false, false) => None,
            }
        }
    }
}
