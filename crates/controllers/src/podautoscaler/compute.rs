//! One metric's replica proposal (upstream `computeReplicasForMetric` and the
//! `computeStatusFor*Metric` functions of `horizontal.go`): resource and container
//! resource metrics through the resource metrics API and [`super::replicas`]; the
//! metric status reported; and the errors, reasons and messages when a metric cannot
//! be had.

use std::collections::BTreeMap;

use k8s_openapi::api::autoscaling::v2::{
    ContainerResourceMetricStatus, MetricSpec, MetricStatus, MetricTarget, MetricValueStatus,
    ResourceMetricSource, ResourceMetricStatus,
};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as ApiQuantity;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use super::{metrics, replicas};
use crate::resourcequota::quantity::{Amount, Format};

/// A milli-unit value as a quantity (`resource.NewMilliQuantity(v, DecimalSI)`).
pub fn milli_quantity(milli: i64) -> ApiQuantity {
    ApiQuantity(
        Amount {
            nanos: i128::from(milli) * 1_000_000,
            format: Format::DecimalSi,
        }
        .canonical(),
    )
}

/// What one metric proposes, or why it cannot.
#[derive(Debug)]
pub struct Proposal {
    pub replicas: i32,
    pub metric: String,
    pub status: MetricStatus,
}

/// Why a metric gave no proposal.
#[derive(Debug)]
pub struct MetricFailure {
    pub reason: &'static str,
    /// The error the condition and the `reason` event carry.
    pub inner: String,
    /// The error `computeReplicasForMetric` returns.
    pub outer: String,
}

/// The autoscaling/v2 default: 80% average CPU utilisation.
pub fn default_metrics() -> Vec<MetricSpec> {
    vec![MetricSpec {
        type_: "Resource".into(),
        resource: Some(ResourceMetricSource {
            name: "cpu".into(),
            target: MetricTarget {
                type_: "Utilization".into(),
                average_utilization: Some(80),
                ..MetricTarget::default()
            },
        }),
        ..MetricSpec::default()
    }]
}

/// Milli-unit requests of `resource` per pod (upstream `calculatePodRequests`).
pub fn pod_requests(
    pods: &[&Pod],
    container: Option<&str>,
    resource: &str,
) -> Result<BTreeMap<String, i64>, String> {
    let mut out = BTreeMap::new();
    for pod in pods {
        let name = pod.name_any();
        let Some(spec) = &pod.spec else { continue };
        let sidecars = spec
            .init_containers
            .iter()
            .flatten()
            .filter(|c| c.restart_policy.as_deref() == Some("Always"));
        let mut sum = 0i64;
        for c in spec.containers.iter().chain(sidecars) {
            if container.is_some_and(|n| n != c.name) {
                continue;
            }
            let req = c
                .resources
                .as_ref()
                .and_then(|r| r.requests.as_ref())
                .and_then(|r| r.get(resource))
                .and_then(|q| metrics::milli_value(&q.0));
            match req {
                Some(v) => sum += v,
                None => {
                    return Err(format!(
                        "missing request for {resource} in container {} of Pod {name}",
                        c.name
                    ))
                }
            }
        }
        out.insert(name, sum);
    }
    Ok(out)
}

/// Upstream `computeReplicasForMetric` for one metric spec.
pub async fn replicas_for_metric(
    client: &kube::Client,
    ns: &str,
    m: &MetricSpec,
    current: i32,
    selector: &str,
    pods: &[&Pod],
    now: Timestamp,
) -> Result<Proposal, MetricFailure> {
    let custom = "unable to fetch metrics from custom metrics API: no custom metrics API (custom.metrics.k8s.io) registered";
    match m.type_.as_str() {
        "Resource" | "ContainerResource" => {
            let (name, target, container) = match (&m.resource, &m.container_resource) {
                (Some(r), _) if m.type_ == "Resource" => (r.name.clone(), r.target.clone(), None),
                (_, Some(c)) if m.type_ == "ContainerResource" => {
                    (c.name.clone(), c.target.clone(), Some(c.container.clone()))
                }
                _ => {
                    return Err(MetricFailure {
                        reason: "InvalidMetricSourceType",
                        inner: format!("invalid metric source: no {} source set", m.type_),
                        outer: format!("invalid metric source: no {} source set", m.type_),
                    })
                }
            };
            let (reason, outer_prefix) = if container.is_some() {
                (
                    "FailedGetContainerResourceMetric",
                    format!("failed to get {name} container metric value"),
                )
            } else {
                (
                    "FailedGetResourceMetric",
                    format!("failed to get {name} resource metric value"),
                )
            };
            let fail = |inner: String| MetricFailure {
                reason,
                outer: format!("{outer_prefix}: {inner}"),
                inner,
            };
            let cpu = name == "cpu";
            if let Some(avg) = &target.average_value {
                let target_milli = metrics::milli_value(&avg.0).unwrap_or(0);
                let (metrics, _) = metrics::resource_metric(client, &name, ns, selector, container.as_deref())
                    .await
                    .map_err(|e| fail(format!("failed to get {name} usage: unable to get metrics for resource {name}: {e}")))?;
                let (replicas, usage) =
                    replicas::raw_resource_replicas(current, target_milli, pods, metrics, cpu, now)
                        .map_err(|e| fail(format!("failed to get {name} usage: {e}")))?;
                let value = MetricValueStatus {
                    average_value: Some(milli_quantity(usage)),
                    ..MetricValueStatus::default()
                };
                return Ok(Proposal {
                    replicas,
                    metric: if container.is_some() {
                        format!("{name} container resource")
                    } else {
                        format!("{name} resource")
                    },
                    status: metric_status(&m.type_, &name, container, value),
                });
            }
            let Some(util) = target.average_utilization else {
                return Err(fail("invalid resource metric source: neither an average utilization target nor an average value (usage) target was set".into()));
            };
            let (metrics, _) = metrics::resource_metric(client, &name, ns, selector, container.as_deref())
                .await
                .map_err(|e| fail(format!("failed to get {name} utilization: unable to get metrics for resource {name}: {e}")))?;
            let requests = pod_requests(pods, container.as_deref(), &name)
                .map_err(|e| fail(format!("failed to get {name} utilization: {e}")))?;
            let (replicas, utilization, raw) =
                replicas::resource_replicas(current, util, pods, metrics, &requests, cpu, now)
                    .map_err(|e| fail(format!("failed to get {name} utilization: {e}")))?;
            let value = MetricValueStatus {
                average_utilization: Some(utilization),
                average_value: Some(milli_quantity(raw)),
                value: None,
            };
            Ok(Proposal {
                replicas,
                metric: if container.is_some() {
                    format!("{name} container resource utilization (percentage of request)")
                } else {
                    format!("{name} resource utilization (percentage of request)")
                },
                status: metric_status(&m.type_, &name, container, value),
            })
        }
        "Pods" => {
            let name = m
                .pods
                .as_ref()
                .map(|p| p.metric.name.clone())
                .unwrap_or_default();
            let inner = format!("unable to get metric {name}: {custom}");
            Err(MetricFailure {
                reason: "FailedGetPodsMetric",
                outer: format!("failed to get pods metric value: {inner}"),
                inner,
            })
        }
        "Object" => {
            let name = m
                .object
                .as_ref()
                .map(|p| p.metric.name.clone())
                .unwrap_or_default();
            let inner = format!("unable to get metric {name}: {custom}");
            Err(MetricFailure {
                reason: "FailedGetObjectMetric",
                outer: format!("failed to get object metric value: {inner}"),
                inner,
            })
        }
        "External" => {
            let name = m
                .external
                .as_ref()
                .map(|p| p.metric.name.clone())
                .unwrap_or_default();
            let inner = format!("unable to get external metric {ns}/{name}: unable to fetch metrics from external metrics API: no external metrics API (external.metrics.k8s.io) registered");
            Err(MetricFailure {
                reason: "FailedGetExternalMetric",
                outer: format!("failed to get external metric value: {inner}"),
                inner,
            })
        }
        other => {
            let inner = format!("unknown metric source type {other:?}");
            Err(MetricFailure {
                reason: "InvalidMetricSourceType",
                outer: inner.clone(),
                inner,
            })
        }
    }
}

/// The status of a resource or container resource metric.
fn metric_status(
    type_: &str,
    name: &str,
    container: Option<String>,
    current: MetricValueStatus,
) -> MetricStatus {
    match container {
        Some(container) => MetricStatus {
            type_: type_.into(),
            container_resource: Some(ContainerResourceMetricStatus {
                container,
                name: name.into(),
                current,
            }),
            ..MetricStatus::default()
        },
        None => MetricStatus {
            type_: type_.into(),
            resource: Some(ResourceMetricStatus {
                name: name.into(),
                current,
            }),
            ..MetricStatus::default()
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn requests_and_quantities() {
        let p: Pod =
            serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": {"containers": [
            {"name": "a", "resources": {"requests": {"cpu": "200m"}}},
            {"name": "b", "resources": {"requests": {"cpu": "300m"}}}]}}))
            .unwrap();
        let r = pod_requests(&[&p], None, "cpu").unwrap();
        assert_eq!(r["p"], 500);
        assert_eq!(pod_requests(&[&p], Some("b"), "cpu").unwrap()["p"], 300);
        assert!(pod_requests(&[&p], None, "memory")
            .unwrap_err()
            .contains("missing request for memory in container a of Pod p"));
        assert_eq!(milli_quantity(250).0, "250m");
        assert_eq!(milli_quantity(2000).0, "2");
        assert_eq!(
            default_metrics()[0]
                .resource
                .as_ref()
                .unwrap()
                .target
                .average_utilization,
            Some(80)
        );
    }
}
