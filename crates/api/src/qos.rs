//! A pod's quality-of-service class, as upstream's `qos.ComputePodQOS`: BestEffort when
//! no container asks for or limits cpu or memory; Guaranteed when every container limits
//! both and the pod's requests equal its limits; Burstable otherwise. Zero quantities
//! count as absent.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::kinds::Quantity;

const RESOURCES: [&str; 2] = ["cpu", "memory"];

pub fn class(pod: &Value) -> &'static str {
    let mut requests: BTreeMap<&str, i128> = BTreeMap::new();
    let mut limits: BTreeMap<&str, i128> = BTreeMap::new();
    let mut guaranteed = true;
    let containers = ["/spec/containers", "/spec/initContainers"]
        .into_iter()
        .filter_map(|p| pod.pointer(p).and_then(Value::as_array))
        .flatten();
    for c in containers {
        let positive = |which: &str, res: &str| {
            c.pointer(&format!("/resources/{which}/{res}"))
                .and_then(Quantity::parse)
                .map(|q| q.0)
                .filter(|q| *q > 0)
        };
        let mut limited = 0;
        for res in RESOURCES {
            if let Some(q) = positive("requests", res) {
                *requests.entry(res).or_default() += q;
            }
            if let Some(q) = positive("limits", res) {
                *limits.entry(res).or_default() += q;
                limited += 1;
            }
        }
        if limited < RESOURCES.len() {
            guaranteed = false;
        }
    }
    if requests.is_empty() && limits.is_empty() {
        return "BestEffort";
    }
    if guaranteed && requests == limits {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(resources: Value) -> Value {
        json!({"spec": {"containers": [{"name": "c", "resources": resources}]}})
    }

    #[test]
    fn classes() {
        assert_eq!(class(&pod(json!({}))), "BestEffort");
        assert_eq!(class(&pod(json!({"requests": {"cpu": "0"}}))), "BestEffort");
        assert_eq!(
            class(&pod(json!({"requests": {"cpu": "100m"}}))),
            "Burstable"
        );
        let both = json!({"cpu": "100m", "memory": "64Mi"});
        assert_eq!(
            class(&pod(
                json!({"requests": both.clone(), "limits": both.clone()})
            )),
            "Guaranteed"
        );
        assert_eq!(
            class(&pod(
                json!({"requests": {"cpu": "0.1", "memory": "67108864"}, "limits": both})
            )),
            "Guaranteed"
        );
        assert_eq!(
            class(&pod(
                json!({"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"cpu": "100m", "memory": "64Mi"}})
            )),
            "Burstable"
        );
        assert_eq!(class(&pod(json!({"limits": {"cpu": "100m"}}))), "Burstable");
    }
}
