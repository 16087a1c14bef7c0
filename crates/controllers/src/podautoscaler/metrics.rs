//! The HPA's resource metrics client (upstream `pkg/controller/podautoscaler/metrics`
//! `resourceMetricsClient`): lists `pods.metrics.k8s.io` (v1beta1) by selector and sums
//! each pod's container usage of a resource in milli-units. With no metrics API served
//! the error is client-go's, so the HPA's events and conditions read as upstream's.

use std::collections::BTreeMap;

use ferrokube_api::kinds::Quantity;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use serde::Deserialize;

use super::replicas::{PodMetric, PodMetrics};

#[derive(Debug, Deserialize)]
struct PodMetricsList {
    #[serde(default)]
    items: Vec<PodMetricsItem>,
}

#[derive(Debug, Deserialize)]
struct PodMetricsItem {
    metadata: Meta,
    #[serde(default)]
    timestamp: Option<String>,
    #[serde(default)]
    window: Option<String>,
    #[serde(default)]
    containers: Vec<ContainerMetrics>,
}

#[derive(Debug, Deserialize)]
struct Meta {
    #[serde(default)]
    name: String,
}

#[derive(Debug, Deserialize)]
struct ContainerMetrics {
    #[serde(default)]
    name: String,
    #[serde(default)]
    usage: BTreeMap<String, String>,
}

/// `Quantity.MilliValue()` (rounded up).
pub fn milli_value(s: &str) -> Option<i64> {
    let q = Quantity::parse_str(s)?;
    let milli = (q.0 + 999_999).div_euclid(1_000_000);
    i64::try_from(milli).ok()
}

/// Upstream `GetResourceMetric`: the metrics of the pods `selector` picks (one
/// container's if `container` is set), and the first sample's timestamp.
pub async fn resource_metric(
    client: &kube::Client,
    resource: &str,
    namespace: &str,
    selector: &str,
    container: Option<&str>,
) -> Result<(PodMetrics, Timestamp), String> {
    let list = list_pod_metrics(client, namespace, selector)
        .await
        .map_err(|e| format!("unable to fetch metrics from resource metrics API: {e}"))?;
    if list.items.is_empty() {
        return Err("no metrics returned from resource metrics API".into());
    }
    let parse_ts = |t: &Option<String>| {
        t.as_deref()
            .and_then(|t| t.parse::<Timestamp>().ok())
            .unwrap_or(Timestamp::UNIX_EPOCH)
    };
    let timestamp = parse_ts(&list.items[0].timestamp);
    let mut out = PodMetrics::new();
    for m in &list.items {
        let window = m
            .window
            .as_deref()
            .and_then(|w| ferrokube_client::leaderelection::parse_duration(w).ok())
            .and_then(|d| SignedDuration::try_from(d).ok())
            .unwrap_or(SignedDuration::ZERO);
        let metric = |value| PodMetric {
            value,
            timestamp: parse_ts(&m.timestamp),
            window,
        };
        match container {
            Some(name) => {
                let Some(c) = m.containers.iter().find(|c| c.name == name) else {
                    continue;
                };
                let Some(v) = c.usage.get(resource).and_then(|q| milli_value(q)) else {
                    return Err(format!(
                        "failed to get container metrics: resource {resource} not found in container {name}"
                    ));
                };
                out.insert(m.metadata.name.clone(), metric(v));
            }
            None => {
                if m.containers.is_empty() {
                    continue;
                }
                let sum: Option<i64> = m
                    .containers
                    .iter()
                    .map(|c| c.usage.get(resource).and_then(|q| milli_value(q)))
                    .sum();
                if let Some(v) = sum {
                    out.insert(m.metadata.name.clone(), metric(v));
                }
            }
        }
    }
    Ok((out, timestamp))
}

async fn list_pod_metrics(
    client: &kube::Client,
    namespace: &str,
    selector: &str,
) -> Result<PodMetricsList, String> {
    let mut url = format!("/apis/metrics.k8s.io/v1beta1/namespaces/{namespace}/pods");
    if !selector.is_empty() {
        url.push_str("?labelSelector=");
        url.push_str(&percent_encode(selector));
    }
    let req = http::Request::get(&url)
        .body(Vec::new())
        .map_err(|e| e.to_string())?;
    match client.request::<PodMetricsList>(req).await {
        Ok(l) => Ok(l),
        // client-go's message for a 404 without a Status body (the group is not
        // served at all)
        Err(kube::Error::Api(s)) if s.code == 404 => {
            Err("the server could not find the requested resource (get pods.metrics.k8s.io)".into())
        }
        Err(e) => Err(e.to_string()),
    }
}

fn percent_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milli_values_round_up() {
        assert_eq!(milli_value("250m"), Some(250));
        assert_eq!(milli_value("1"), Some(1000));
        assert_eq!(milli_value("1n"), Some(1));
        assert_eq!(milli_value("64Mi"), Some(64 * 1024 * 1024 * 1000));
        assert_eq!(percent_encode("app in (a,b)"), "app%20in%20%28a%2Cb%29");
    }

    #[test]
    fn pod_metrics_list_decodes() {
        let l: PodMetricsList = serde_json::from_value(serde_json::json!({
            "items": [{"metadata": {"name": "p"}, "timestamp": "2024-01-01T00:00:00Z", "window": "30s",
                "containers": [{"name": "c", "usage": {"cpu": "120m", "memory": "10Mi"}}]}]
        }))
        .unwrap();
        assert_eq!(l.items[0].containers[0].usage["cpu"], "120m");
    }
}
