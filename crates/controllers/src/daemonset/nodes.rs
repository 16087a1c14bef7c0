//! Which nodes run a daemon pod (upstream `pkg/controller/daemon`
//! `NodeShouldRunDaemonPod` and `pkg/controller/daemon/util`): the template's
//! nodeName, nodeSelector and required node affinity, taints against tolerations
//! (with the tolerations every daemon pod gets), the node-name affinity daemon pods
//! are created with, and the node a pod targets.

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{
    Affinity, Node, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Pod,
    PodSpec, Taint, Toleration,
};

/// `metav1.ObjectNameField`.
const OBJECT_NAME_FIELD: &str = "metadata.name";

fn toleration(key: &str, effect: &str) -> Toleration {
    Toleration {
        key: Some(key.into()),
        operator: Some("Exists".into()),
        effect: Some(effect.into()),
        ..Toleration::default()
    }
}

/// `AddOrUpdateDaemonPodTolerations`: daemon pods survive not-ready and unreachable
/// nodes and are placed despite pressure, unschedulable and (host-network pods)
/// network-unavailable taints.
pub fn add_daemon_tolerations(spec: &mut PodSpec) {
    let mut wanted = vec![
        toleration("node.kubernetes.io/not-ready", "NoExecute"),
        toleration("node.kubernetes.io/unreachable", "NoExecute"),
        toleration("node.kubernetes.io/disk-pressure", "NoSchedule"),
        toleration("node.kubernetes.io/memory-pressure", "NoSchedule"),
        toleration("node.kubernetes.io/pid-pressure", "NoSchedule"),
        toleration("node.kubernetes.io/unschedulable", "NoSchedule"),
    ];
    if spec.host_network == Some(true) {
        wanted.push(toleration(
            "node.kubernetes.io/network-unavailable",
            "NoSchedule",
        ));
    }
    let list = spec.tolerations.get_or_insert_with(Vec::new);
    for t in wanted {
        // `AddOrUpdateTolerationInPodSpec`: one with the same key, operator, value
        // and effect is replaced; otherwise it is added.
        let same = |o: &Toleration| {
            o.key == t.key
                && o.operator.as_deref().unwrap_or("Equal") == "Exists"
                && o.value.as_deref().unwrap_or("").is_empty()
                && o.effect == t.effect
        };
        match list.iter_mut().find(|o| same(o)) {
            Some(existing) => *existing = t,
            None => list.push(t),
        }
    }
}

/// `Toleration.ToleratesTaint`.
pub fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    if t.effect
        .as_deref()
        .is_some_and(|e| !e.is_empty() && e != taint.effect)
    {
        return false;
    }
    if t.key
        .as_deref()
        .is_some_and(|k| !k.is_empty() && k != taint.key)
    {
        return false;
    }
    match t.operator.as_deref().unwrap_or("") {
        "" | "Equal" => t.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or(""),
        "Exists" => true,
        _ => false,
    }
}

/// `FindMatchingUntoleratedTaint` over the taints `include` selects.
fn untolerated<'a>(
    taints: &'a [Taint],
    tolerations: &[Toleration],
    include: impl Fn(&Taint) -> bool,
) -> Option<&'a Taint> {
    taints
        .iter()
        .filter(|t| include(t))
        .find(|t| !tolerations.iter().any(|tol| tolerates(tol, t)))
}

fn requirement_matches(r: &NodeSelectorRequirement, value: Option<&str>) -> bool {
    let values = r.values.as_deref().unwrap_or_default();
    match r.operator.as_str() {
        "In" => value.is_some_and(|v| values.iter().any(|x| x == v)),
        "NotIn" => value.is_none_or(|v| !values.iter().any(|x| x == v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" | "Lt" => {
            let (Some(v), [bound]) = (value, values) else {
                return false;
            };
            match (v.parse::<i64>(), bound.parse::<i64>()) {
                (Ok(v), Ok(b)) if r.operator == "Gt" => v > b,
                (Ok(v), Ok(b)) => v < b,
                _ => false,
            }
        }
        _ => false,
    }
}

/// A node selector term: every expression (on labels) and field (only
/// `metadata.name`) holds; a term with neither matches nothing.
fn term_matches(term: &NodeSelectorTerm, node: &Node) -> bool {
    let exprs = term.match_expressions.as_deref().unwrap_or_default();
    let fields = term.match_fields.as_deref().unwrap_or_default();
    if exprs.is_empty() && fields.is_empty() {
        return false;
    }
    let labels = node.metadata.labels.as_ref();
    exprs
        .iter()
        .all(|r| requirement_matches(r, labels.and_then(|l| l.get(&r.key)).map(String::as_str)))
        && fields.iter().all(|r| {
            r.key == OBJECT_NAME_FIELD && requirement_matches(r, node.metadata.name.as_deref())
        })
}

/// `nodeaffinity.GetRequiredNodeAffinity(pod).Match(node)`: the nodeSelector and
/// any of the required affinity terms.
pub fn required_affinity_matches(spec: &PodSpec, node: &Node) -> bool {
    if let Some(sel) = &spec.node_selector {
        let labels = node.metadata.labels.as_ref();
        if !sel
            .iter()
            .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
        {
            return false;
        }
    }
    match spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|n| {
            n.required_during_scheduling_ignored_during_execution
                .as_ref()
        }) {
        Some(required) => required
            .node_selector_terms
            .iter()
            .any(|t| term_matches(t, node)),
        None => true,
    }
}

/// `NodeShouldRunDaemonPod`: (should run, should continue running). A node that
/// does not fit the template's nodeName or affinity runs nothing; one with an
/// untolerated NoSchedule/NoExecute taint gets no new pod, and keeps an existing
/// one unless a NoExecute taint is untolerated.
pub fn should_run(node: &Node, ds: &DaemonSet) -> (bool, bool) {
    let Some(spec) = ds.spec.as_ref() else {
        return (false, false);
    };
    let mut pod_spec = spec.template.spec.clone().unwrap_or_default();
    let node_name = node.metadata.name.as_deref().unwrap_or_default();
    if pod_spec
        .node_name
        .as_deref()
        .is_some_and(|n| !n.is_empty() && n != node_name)
    {
        return (false, false);
    }
    add_daemon_tolerations(&mut pod_spec);
    if !required_affinity_matches(&pod_spec, node) {
        return (false, false);
    }
    let taints = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_deref())
        .unwrap_or_default();
    let tolerations = pod_spec.tolerations.as_deref().unwrap_or_default();
    let fits = untolerated(taints, tolerations, |t| {
        t.effect == "NoExecute" || t.effect == "NoSchedule"
    })
    .is_none();
    if !fits {
        let no_execute = untolerated(taints, tolerations, |t| t.effect == "NoExecute");
        return (false, no_execute.is_none());
    }
    (true, true)
}

/// `ReplaceDaemonSetPodNodeNameNodeAffinity`: the required node affinity becomes
/// the single term `metadata.name In [<node>]`, so the scheduler binds the pod
/// there.
pub fn replace_node_name_affinity(affinity: Option<Affinity>, node: &str) -> Affinity {
    let term = NodeSelectorTerm {
        match_fields: Some(vec![NodeSelectorRequirement {
            key: OBJECT_NAME_FIELD.into(),
            operator: "In".into(),
            values: Some(vec![node.into()]),
        }]),
        match_expressions: None,
    };
    let mut affinity = affinity.unwrap_or_default();
    let na = affinity
        .node_affinity
        .get_or_insert_with(NodeAffinity::default);
    match na
        .required_during_scheduling_ignored_during_execution
        .as_mut()
    {
        Some(req) => req.node_selector_terms = vec![term],
        None => {
            na.required_during_scheduling_ignored_during_execution = Some(NodeSelector {
                node_selector_terms: vec![term],
            })
        }
    }
    affinity
}

/// `GetTargetNodeName`: `spec.nodeName`, else the node of the pod's
/// `metadata.name In [<node>]` affinity.
pub fn target_node(pod: &Pod) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    if let Some(n) = spec.node_name.as_deref().filter(|n| !n.is_empty()) {
        return Some(n.to_string());
    }
    let terms = &spec
        .affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?
        .node_selector_terms;
    for term in terms {
        for r in term.match_fields.iter().flatten() {
            if r.key == OBJECT_NAME_FIELD && r.operator == "In" {
                return match r.values.as_deref() {
                    Some([one]) => Some(one.clone()),
                    _ => None,
                };
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(v: serde_json::Value) -> Node {
        serde_json::from_value(v).unwrap()
    }

    fn ds(spec: serde_json::Value) -> DaemonSet {
        serde_json::from_value(json!({
            "metadata": {"name": "d"},
            "spec": {"selector": {"matchLabels": {"a": "b"}},
                     "template": {"metadata": {"labels": {"a": "b"}}, "spec": spec}}
        }))
        .unwrap()
    }

    #[test]
    fn eligibility_follows_selectors_and_taints() {
        let plain = node(json!({"metadata": {"name": "n1", "labels": {"disk": "ssd"}}}));
        let tainted = node(json!({"metadata": {"name": "n2"},
            "spec": {"taints": [{"key": "k", "value": "v", "effect": "NoSchedule"}]}}));
        let evicting = node(json!({"metadata": {"name": "n3"},
            "spec": {"taints": [{"key": "k", "effect": "NoExecute"}]}}));
        let not_ready = node(json!({"metadata": {"name": "n4"},
            "spec": {"taints": [{"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"},
                                {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}]}}));
        let basic = ds(json!({"containers": [{"name": "c", "image": "i"}]}));
        assert_eq!(should_run(&plain, &basic), (true, true));
        assert_eq!(should_run(&tainted, &basic), (false, true));
        assert_eq!(should_run(&evicting, &basic), (false, false));
        assert_eq!(should_run(&not_ready, &basic), (true, true));
        let tolerant = ds(json!({"containers": [{"name": "c", "image": "i"}],
            "tolerations": [{"key": "k", "operator": "Equal", "value": "v"}]}));
        assert_eq!(should_run(&tainted, &tolerant), (true, true));
        let selective = ds(json!({"containers": [{"name": "c", "image": "i"}],
            "nodeSelector": {"disk": "ssd"}}));
        assert_eq!(should_run(&plain, &selective), (true, true));
        assert_eq!(should_run(&not_ready, &selective), (false, false));
        let affine = ds(json!({"containers": [{"name": "c", "image": "i"}],
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
                {"nodeSelectorTerms": [{"matchExpressions": [{"key": "disk", "operator": "NotIn", "values": ["ssd"]}]}]}}}}));
        assert_eq!(should_run(&plain, &affine), (false, false));
        assert_eq!(should_run(&not_ready, &affine), (true, true));
        let named = ds(json!({"containers": [{"name": "c", "image": "i"}], "nodeName": "n4"}));
        assert_eq!(should_run(&plain, &named), (false, false));
    }

    #[test]
    fn tolerations_are_added_once_and_affinity_names_the_node() {
        let mut spec = PodSpec {
            host_network: Some(true),
            ..PodSpec::default()
        };
        add_daemon_tolerations(&mut spec);
        add_daemon_tolerations(&mut spec);
        assert_eq!(spec.tolerations.as_ref().map(Vec::len), Some(7));
        let a = replace_node_name_affinity(None, "n1");
        let pod = Pod {
            spec: Some(PodSpec {
                affinity: Some(a.clone()),
                ..PodSpec::default()
            }),
            ..Pod::default()
        };
        assert_eq!(target_node(&pod).as_deref(), Some("n1"));
        let a2 = replace_node_name_affinity(Some(a), "n2");
        let terms = &a2
            .node_affinity
            .unwrap()
            .required_during_scheduling_ignored_during_execution
            .unwrap()
            .node_selector_terms;
        assert_eq!(terms.len(), 1);
        assert_eq!(
            terms[0].match_fields.as_ref().unwrap()[0].values,
            Some(vec!["n2".to_string()])
        );
    }
}
