//! Lists as upstream's `Store.List` over `GetList`: label and field selectors, `limit`
//! with continue tokens (base64 JSON `{"v":"meta.k8s.io/v1","rv":N,"start":"key\u0000"}`,
//! 410 when expired), `resourceVersion`/`resourceVersionMatch`, and `remainingItemCount`.

use base64::Engine;
use ferrokube_api::selectors::{FieldSelector, LabelSelector};
use ferrokube_api::status::Status;
use ferrokube_storage::{RangeRequest, StorageError};
use serde_json::{json, Value};

use crate::errors::ApiResult;
use bytes::Bytes;

use crate::registry::store::{decode, raw_with_rv, Registry, Target};
use crate::request_info::Query;

#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    pub labels: LabelSelector,
    pub fields: FieldSelector,
    pub limit: usize,
    pub continue_token: Option<String>,
    pub resource_version: Option<String>,
    pub resource_version_match: Option<String>,
}

impl ListOptions {
    pub fn from_query(target: &Target<'_>, q: &Query) -> ApiResult<ListOptions> {
        let labels = LabelSelector::parse(q.get("labelSelector").unwrap_or(""))
            .map_err(Status::bad_request)?;
        let fields = FieldSelector::parse(q.get("fieldSelector").unwrap_or(""))
            .map_err(Status::bad_request)?;
        fields
            .check_supported(target.info.group, target.info.resource)
            .map_err(Status::bad_request)?;
        let limit = match q.get("limit").filter(|l| !l.is_empty()) {
            None => 0,
            Some(l) => l
                .parse::<i64>()
                .map_err(|_| Status::bad_request(format!("invalid limit {l:?}")))?
                .max(0) as usize,
        };
        let opts = ListOptions {
            labels,
            fields,
            limit,
            continue_token: q
                .get("continue")
                .filter(|c| !c.is_empty())
                .map(str::to_string),
            resource_version: q
                .get("resourceVersion")
                .filter(|c| !c.is_empty())
                .map(str::to_string),
            resource_version_match: q
                .get("resourceVersionMatch")
                .filter(|c| !c.is_empty())
                .map(str::to_string),
        };
        if opts.continue_token.is_some()
            && opts.resource_version.as_deref().is_some_and(|rv| rv != "0")
        {
            return Err(Status::bad_request(
                "specifying resource version is not allowed when using continue",
            )
            .into());
        }
        if let Some(m) = &opts.resource_version_match {
            if !matches!(m.as_str(), "Exact" | "NotOlderThan") {
                return Err(
                    Status::bad_request(format!("unsupported resourceVersionMatch {m:?}")).into(),
                );
            }
            if opts.resource_version.is_none() {
                return Err(Status::bad_request(
                    "resourceVersionMatch is forbidden unless resourceVersion is provided",
                )
                .into());
            }
        }
        Ok(opts)
    }

    pub fn matches(&self, target: &Target<'_>, obj: &Value) -> bool {
        self.labels.matches_object(obj)
            && self
                .fields
                .matches_object(target.info.group, target.info.resource, obj)
    }
}

pub fn encode_continue(rv: i64, start: &str) -> String {
    let token = json!({"v": "meta.k8s.io/v1", "rv": rv, "start": start});
    base64::engine::general_purpose::URL_SAFE.encode(token.to_string())
}

fn decode_continue(token: &str) -> Option<(i64, String)> {
    let raw = base64::engine::general_purpose::URL_SAFE
        .decode(token)
        .ok()?;
    let v: Value = serde_json::from_slice(&raw).ok()?;
    if v.get("v")?.as_str()? != "meta.k8s.io/v1" {
        return None;
    }
    let start = v.get("start")?.as_str()?.to_string();
    if start.contains("..") || start.starts_with('/') {
        return None;
    }
    Some((v.get("rv")?.as_i64()?, start))
}

impl Registry {
    /// Returns the matching objects, the list's resourceVersion, the continue token and
    /// the remaining item count (only when no selector filtered the result).
    pub async fn list(
        &self,
        target: &Target<'_>,
        opts: &ListOptions,
    ) -> ApiResult<(Vec<Value>, i64, Option<String>, Option<i64>)> {
        let filtered = !opts.labels.is_empty() || !opts.fields.is_empty();
        self.list_with(target, opts, filtered, |kv| {
            let obj = decode(kv)?;
            Ok(opts.matches(target, &obj).then_some(obj))
        })
        .await
    }

    /// [`Registry::list`] without selectors, as JSON bytes spliced from storage (no parsing).
    pub async fn list_raw(
        &self,
        target: &Target<'_>,
        opts: &ListOptions,
    ) -> ApiResult<(Vec<Bytes>, i64, Option<String>, Option<i64>)> {
        self.list_with(target, opts, false, |kv| raw_with_rv(kv).map(Some))
            .await
    }

    /// The paging loop of every list: `item` turns a stored key-value into an item, or
    /// None when a selector filters it out (`filtered` says whether one can).
    async fn list_with<T>(
        &self,
        target: &Target<'_>,
        opts: &ListOptions,
        filtered: bool,
        mut item: impl FnMut(&ferrokube_storage::KeyValue) -> ApiResult<Option<T>>,
    ) -> ApiResult<(Vec<T>, i64, Option<String>, Option<i64>)> {
        let prefix = target.info.storage_list_prefix(target.namespace);
        let (mut start, mut revision) = (None, None);
        if let Some(token) = &opts.continue_token {
            let (rv, rel) = decode_continue(token).ok_or_else(|| Status::bad_request("continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)"))?;
            start = Some(format!("{prefix}{rel}"));
            revision = Some(rv);
        } else if let Some(rv) = opts.resource_version.as_deref().filter(|rv| *rv != "0") {
            let rv: i64 = rv
                .parse()
                .map_err(|_| Status::bad_request(format!("invalid resource version {rv:?}")))?;
            if opts.resource_version_match.as_deref() == Some("Exact") {
                revision = Some(rv);
            } else {
                let current = self.storage.current_revision().await?;
                if rv > current {
                    return Err(StorageError::FutureRevision {
                        requested: rv,
                        current,
                    }
                    .into());
                }
            }
        }
        let mut items = Vec::new();
        loop {
            // Read a page (more than the limit when filtering, as upstream does).
            let page = if opts.limit == 0 {
                0
            } else if filtered {
                opts.limit.max(64) * 2
            } else {
                opts.limit + 1
            };
            let mut req = RangeRequest::prefix(prefix.clone()).with_limit(page);
            req.start = start.clone();
            req.revision = revision;
            let resp = match self.storage.range(req).await {
                Err(StorageError::Compacted { .. }) if opts.continue_token.is_some() => {
                    return Err(Status::gone("The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.").into());
                }
                other => other?,
            };
            revision = Some(resp.revision);
            let total = resp.count;
            let mut last_key = None;
            for kv in &resp.kvs {
                if opts.limit > 0 && items.len() == opts.limit {
                    // One more than requested exists: hand out a continue token.
                    let rel = last_key
                        .as_deref()
                        .unwrap_or("")
                        .strip_prefix(prefix.as_str())
                        .unwrap_or("")
                        .to_string();
                    let remaining = (!filtered).then(|| total - items.len() as i64);
                    return Ok((
                        items,
                        resp.revision,
                        Some(encode_continue(resp.revision, &format!("{rel}\u{0}"))),
                        remaining,
                    ));
                }
                last_key = Some(kv.key.clone());
                if let Some(it) = item(kv)? {
                    items.push(it);
                }
            }
            match (resp.more, last_key) {
                (true, Some(k)) => start = Some(format!("{k}\u{0}")),
                _ => return Ok((items, resp.revision, None, None)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_tokens_round_trip_and_reject_garbage() {
        let t = encode_continue(42, "ns/name\u{0}");
        assert_eq!(decode_continue(&t), Some((42, "ns/name\u{0}".into())));
        assert_eq!(decode_continue("!!"), None);
        let evil = base64::engine::general_purpose::URL_SAFE
            .encode(r#"{"v":"meta.k8s.io/v1","rv":1,"start":"../secrets"}"#);
        assert_eq!(decode_continue(&evil), None);
    }
}
