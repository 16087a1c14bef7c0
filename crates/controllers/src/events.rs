//! Event recording (client-go `tools/record`): controllers say what they did as
//! core/v1 Events on the object concerned. Posting happens on a background task fed
//! through a bounded channel — a slow API server drops events rather than stalling a
//! controller, as upstream's broadcaster does. Repeats of the same (object, type,
//! reason, message) within the cache's life bump `count` and `lastTimestamp` of the
//! first Event instead of creating new ones (upstream's EventCorrelator).

use std::collections::HashMap;

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Resource, ResourceExt};
use parking_lot::Mutex;
use tokio::sync::mpsc;

/// `Normal` or `Warning`, as upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

#[derive(Debug)]
struct Pending {
    regarding: ObjectReference,
    kind: EventType,
    reason: String,
    message: String,
}

/// Records Events for one component (`source.component`, e.g.
/// `deployment-controller`).
#[derive(Debug, Clone)]
pub struct Recorder {
    tx: mpsc::Sender<Pending>,
}

/// A reference to `obj` for an Event's `involvedObject`.
pub fn object_reference<K: Resource<DynamicType = ()>>(obj: &K) -> ObjectReference {
    ObjectReference {
        api_version: Some(K::api_version(&()).into_owned()),
        kind: Some(K::kind(&()).into_owned()),
        name: Some(obj.name_any()),
        namespace: obj.namespace(),
        uid: obj.meta().uid.clone(),
        resource_version: obj.meta().resource_version.clone(),
        field_path: None,
    }
}

type Correlation = (String, &'static str, String, String);

impl Recorder {
    /// A recorder posting with `client` as `component`; the posting task ends when
    /// every clone of the recorder is dropped.
    pub fn new(client: kube::Client, component: &str) -> Recorder {
        let (tx, mut rx) = mpsc::channel::<Pending>(1024);
        let component = component.to_string();
        let host = ferrokube_client::leaderelection::hostname();
        tokio::spawn(async move {
            let seen: Mutex<HashMap<Correlation, (String, String, i32)>> = Mutex::default();
            while let Some(p) = rx.recv().await {
                post(&client, &component, &host, &seen, p).await;
            }
        });
        Recorder { tx }
    }

    /// Records an event about `obj`.
    pub fn event<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        kind: EventType,
        reason: &str,
        message: impl Into<String>,
    ) {
        self.event_ref(object_reference(obj), kind, reason, message);
    }

    /// Records an event about the object `regarding` names.
    pub fn event_ref(
        &self,
        regarding: ObjectReference,
        kind: EventType,
        reason: &str,
        message: impl Into<String>,
    ) {
        let p = Pending {
            regarding,
            kind,
            reason: reason.to_string(),
            message: message.into(),
        };
        if self.tx.try_send(p).is_err() {
            tracing::debug!(reason, "event dropped: recorder queue full");
        }
    }
}

async fn post(
    client: &kube::Client,
    component: &str,
    host: &str,
    seen: &Mutex<HashMap<Correlation, (String, String, i32)>>,
    p: Pending,
) {
    let namespace = p
        .regarding
        .namespace
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "default".into());
    let api: Api<Event> = Api::namespaced(client.clone(), &namespace);
    let now = Timestamp::now();
    let corr: Correlation = (
        p.regarding.uid.clone().unwrap_or_default(),
        p.kind.as_str(),
        p.reason.clone(),
        p.message.clone(),
    );
    let previous = seen.lock().get(&corr).cloned();
    if let Some((ns, name, count)) = previous {
        let patch = serde_json::json!({
            "count": count + 1,
            "lastTimestamp": Time(now),
        });
        let api: Api<Event> = Api::namespaced(client.clone(), &ns);
        if api
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .is_ok()
        {
            seen.lock().insert(corr, (ns, name, count + 1));
            return;
        }
    }
    let base = p.regarding.name.clone().unwrap_or_default();
    let name = format!("{base}.{:x}", now.as_nanosecond());
    let event = Event {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(namespace.clone()),
            ..ObjectMeta::default()
        },
        involved_object: p.regarding,
        reason: Some(p.reason),
        message: Some(p.message),
        type_: Some(p.kind.as_str().into()),
        source: Some(EventSource {
            component: Some(component.into()),
            host: None,
        }),
        first_timestamp: Some(Time(now)),
        last_timestamp: Some(Time(now)),
        event_time: None::<MicroTime>,
        count: Some(1),
        reporting_component: Some(component.into()),
        reporting_instance: Some(host.into()),
        ..Event::default()
    };
    match api.create(&PostParams::default(), &event).await {
        Ok(_) => {
            let mut seen = seen.lock();
            if seen.len() > 4096 {
                seen.clear();
            }
            seen.insert(corr, (namespace, name, 1));
        }
        Err(e) => tracing::debug!(error = %e, "event not recorded"),
    }
}
