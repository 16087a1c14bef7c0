//! The kubelet's Events about pods (Pulling, Pulled, Created, Started, Killing,
//! BackOff, Failed …) as core/v1 Events with source `kubelet` on this host — what
//! upstream's kubelet posts through client-go's recorder (its RBAC role,
//! system:node, may create only core Events) — sent in the background so a slow API
//! server never holds up a pod worker.

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use kube::Resource;

/// A cloneable handle that publishes events without waiting.
#[derive(Clone)]
pub struct Events {
    client: kube::Client,
    node: String,
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Events")
    }
}

impl Events {
    pub fn new(client: kube::Client, node: &str) -> Events {
        Events {
            client,
            node: node.to_string(),
        }
    }

    /// Publishes an event about `pod` (`field`: `spec.containers{name}`, as upstream's
    /// field path of a container).
    pub fn pod(&self, pod: &Pod, field: Option<String>, warning: bool, reason: &str, note: String) {
        let name = pod.metadata.name.clone().unwrap_or_default();
        if warning {
            tracing::warn!(pod = %name, reason, note = %note, "pod event");
        } else {
            tracing::debug!(pod = %name, reason, note = %note, "pod event");
        }
        let mut reference: ObjectReference = pod.object_ref(&());
        reference.field_path = field;
        let ns = pod
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        self.publish(&ns, &name, reference, warning, reason, note);
    }

    /// Publishes an event about this node (upstream's nodeRef: kind Node, the node's
    /// name as its uid; the event lives in `default`).
    pub fn node(&self, warning: bool, reason: &str, note: String) {
        if warning {
            tracing::warn!(reason, note = %note, "node event");
        } else {
            tracing::info!(reason, note = %note, "node event");
        }
        let reference = ObjectReference {
            kind: Some("Node".into()),
            name: Some(self.node.clone()),
            uid: Some(self.node.clone()),
            ..ObjectReference::default()
        };
        let node = self.node.clone();
        self.publish("default", &node, reference, warning, reason, note);
    }

    fn publish(
        &self,
        ns: &str,
        name: &str,
        reference: ObjectReference,
        warning: bool,
        reason: &str,
        note: String,
    ) {
        let now = Timestamp::now();
        let event = Event {
            metadata: ObjectMeta {
                // Upstream: <object name>.<unix nanoseconds in hex>.
                name: Some(format!("{name}.{:x}", now.as_nanosecond())),
                namespace: Some(ns.to_string()),
                ..ObjectMeta::default()
            },
            involved_object: reference,
            reason: Some(reason.to_string()),
            message: Some(note),
            type_: Some(if warning { "Warning" } else { "Normal" }.into()),
            source: Some(EventSource {
                component: Some("kubelet".into()),
                host: Some(self.node.clone()),
            }),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            event_time: None::<MicroTime>,
            count: Some(1),
            reporting_component: Some("kubelet".into()),
            reporting_instance: Some(self.node.clone()),
            ..Event::default()
        };
        let api: Api<Event> = Api::namespaced(self.client.clone(), ns);
        tokio::spawn(async move {
            if let Err(e) = api.create(&PostParams::default(), &event).await {
                tracing::warn!(error = %e, "publishing an event");
            }
        });
    }
}

/// Upstream's field path of a container in a pod.
pub fn container_field(init: bool, name: &str) -> Option<String> {
    Some(if init {
        format!("spec.initContainers{{{name}}}")
    } else {
        format!("spec.containers{{{name}}}")
    })
}
