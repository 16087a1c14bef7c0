//! `KubeSchedulerProfile.plugins` (kubescheduler.config.k8s.io/v1): per extension point
//! `enabled` (name, optional weight) and `disabled` (name or `*`) lists, `multiPoint`
//! first and the specific points after it, as upstream merges them into the default
//! plugin set. Plugins upstream has but ferrokube does not implement (volume and
//! dynamic-resource plugins, the queue sort and binder) are accepted and have no
//! effect; unknown names are refused.

use serde_json::Value;

use crate::framework::{PluginName, Profile};

/// Upstream's in-tree plugins that ferrokube does not run.
const NOT_IMPLEMENTED: &[&str] = &[
    "PrioritySort",
    "DefaultBinder",
    "SchedulingGates",
    "VolumeRestrictions",
    "NodeVolumeLimits",
    "EBSLimits",
    "GCEPDLimits",
    "AzureDiskLimits",
    "CinderLimits",
    "VolumeBinding",
    "VolumeZone",
    "DynamicResources",
];

/// The extension points, `multiPoint` first.
const POINTS: &[&str] = &[
    "multiPoint",
    "preEnqueue",
    "queueSort",
    "preFilter",
    "filter",
    "postFilter",
    "preScore",
    "score",
    "reserve",
    "permit",
    "preBind",
    "bind",
    "postBind",
];

/// Applies `plugins` to `profile`; errors name the field (`plugins.score.enabled[0]`).
pub fn apply(profile: &mut Profile, plugins: &Value) -> Result<(), String> {
    if let Some(map) = plugins.as_object() {
        if let Some(unknown) = map.keys().find(|k| !POINTS.contains(&k.as_str())) {
            return Err(format!("plugins.{unknown}: unknown extension point"));
        }
    }
    let defaults = Profile::default();
    for point in POINTS {
        let Some(set) = plugins.get(*point).filter(|v| !v.is_null()) else {
            continue;
        };
        let list = |key: &str| {
            set.get(key)
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        };
        for (i, entry) in list("disabled").iter().enumerate() {
            let at = format!("plugins.{point}.disabled[{i}]");
            match lookup(entry, &at)? {
                Lookup::All => disable_all(profile, point),
                Lookup::Skip => {}
                Lookup::Plugin(p) => disable(profile, point, p),
            }
        }
        for (i, entry) in list("enabled").iter().enumerate() {
            let at = format!("plugins.{point}.enabled[{i}]");
            let weight = entry.get("weight").and_then(Value::as_i64);
            if let Some(w) = weight.filter(|w| *w < 0) {
                return Err(format!(
                    "{at}.weight: Invalid value: {w}: must not be negative"
                ));
            }
            match lookup(entry, &at)? {
                Lookup::All => return Err(format!("{at}.name: \"*\" can only disable")),
                Lookup::Skip => {}
                Lookup::Plugin(p) => enable(profile, &defaults, point, p, weight, &at)?,
            }
        }
    }
    Ok(())
}

enum Lookup {
    All,
    Skip,
    Plugin(PluginName),
}

fn lookup(entry: &Value, at: &str) -> Result<Lookup, String> {
    let name = entry.get("name").and_then(Value::as_str).unwrap_or("");
    if name == "*" {
        return Ok(Lookup::All);
    }
    if NOT_IMPLEMENTED.contains(&name) {
        return Ok(Lookup::Skip);
    }
    PluginName::parse(name)
        .map(Lookup::Plugin)
        .ok_or_else(|| format!("{at}.name: plugin {name:?} does not exist"))
}

fn disable_all(profile: &mut Profile, point: &str) {
    match point {
        "multiPoint" => {
            profile.filters.clear();
            profile.scores.clear();
            profile.preemption = false;
        }
        "filter" => profile.filters.clear(),
        "score" => profile.scores.clear(),
        "postFilter" => profile.preemption = false,
        _ => {}
    }
}

fn disable(profile: &mut Profile, point: &str, p: PluginName) {
    match point {
        "multiPoint" => profile.disable(p),
        "filter" => profile.filters.retain(|f| *f != p),
        "score" => profile.set_weight(p, 0),
        "postFilter" if p == PluginName::DefaultPreemption => profile.preemption = false,
        _ => {}
    }
}

fn enable(
    profile: &mut Profile,
    defaults: &Profile,
    point: &str,
    p: PluginName,
    weight: Option<i64>,
    at: &str,
) -> Result<(), String> {
    let is_filter = defaults.filters.contains(&p);
    let default_weight = defaults.scores.iter().find(|(q, _)| *q == p).map(|s| s.1);
    let add_filter = |profile: &mut Profile| {
        if !profile.filters.contains(&p) {
            profile.filters.push(p);
            // Filters run in the default order whatever order they were enabled in.
            let rank = |f: &PluginName| defaults.filters.iter().position(|d| d == f);
            profile.filters.sort_by_key(rank);
        }
    };
    match point {
        "multiPoint" => {
            if is_filter {
                add_filter(profile);
            }
            if let Some(w) = default_weight {
                profile.set_weight(p, weight.unwrap_or(w));
            }
            if p == PluginName::DefaultPreemption {
                profile.preemption = true;
            }
        }
        "filter" | "preFilter" if is_filter => add_filter(profile),
        "score" | "preScore" if default_weight.is_some() => {
            profile.set_weight(p, weight.or(default_weight).unwrap_or(1))
        }
        "postFilter" if p == PluginName::DefaultPreemption => profile.preemption = true,
        "filter" | "preFilter" | "score" | "preScore" | "postFilter" => {
            return Err(format!(
                "{at}.name: plugin {:?} does not extend the {point} extension point",
                p.as_str()
            ))
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use PluginName::*;

    #[test]
    fn enabled_and_disabled_merge_into_the_defaults() {
        let mut p = Profile::default();
        apply(
            &mut p,
            &json!({
                "score": {"disabled": [{"name": "ImageLocality"}],
                          "enabled": [{"name": "NodeResourcesFit", "weight": 5}]},
                "filter": {"disabled": [{"name": "NodePorts"}]},
                "postFilter": {"disabled": [{"name": "DefaultPreemption"}]},
                "preBind": {"disabled": [{"name": "VolumeBinding"}]},
            }),
        )
        .unwrap();
        assert!(!p.filters.contains(&NodePorts) && !p.preemption);
        assert!(!p.scores.iter().any(|(n, _)| *n == ImageLocality));
        assert!(p.scores.contains(&(NodeResourcesFit, 5)));

        // `*` at multiPoint, then a few back: only those run.
        let mut p = Profile::default();
        apply(
            &mut p,
            &json!({"multiPoint": {
                "disabled": [{"name": "*"}],
                "enabled": [{"name": "NodeResourcesFit"}, {"name": "NodeName"}, {"name": "ImageLocality", "weight": 3}]}}),
        )
        .unwrap();
        assert_eq!(p.filters, [NodeName, NodeResourcesFit]);
        assert_eq!(p.scores, [(NodeResourcesFit, 1), (ImageLocality, 3)]);
        assert!(!p.preemption);
    }

    #[test]
    fn bad_names_and_points_are_refused() {
        let mut p = Profile::default();
        let err = apply(&mut p, &json!({"filter": {"enabled": [{"name": "Nope"}]}})).unwrap_err();
        assert_eq!(
            err,
            "plugins.filter.enabled[0].name: plugin \"Nope\" does not exist"
        );
        let err = apply(
            &mut p,
            &json!({"score": {"enabled": [{"name": "NodeName"}]}}),
        )
        .unwrap_err();
        assert!(
            err.contains("does not extend the score extension point"),
            "{err}"
        );
        let err = apply(&mut p, &json!({"filtre": {}})).unwrap_err();
        assert!(err.contains("plugins.filtre"), "{err}");
        let err = apply(
            &mut p,
            &json!({"score": {"enabled": [{"name": "ImageLocality", "weight": -1}]}}),
        )
        .unwrap_err();
        assert!(err.contains("weight"), "{err}");
    }
}
