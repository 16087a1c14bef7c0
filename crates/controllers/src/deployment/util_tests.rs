use super::*;
use k8s_openapi::api::apps::v1::{
    DeploymentSpec, DeploymentStrategy, ReplicaSetSpec, ReplicaSetStatus, RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{Container, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

fn ios(s: &str) -> IntOrString {
    IntOrString::String(s.into())
}

fn deployment(replicas: i32, surge: IntOrString, unavailable: IntOrString) -> Deployment {
    Deployment {
        metadata: ObjectMeta {
            name: Some("web".into()),
            generation: Some(1),
            ..Default::default()
        },
        spec: Some(DeploymentSpec {
            replicas: Some(replicas),
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_surge: Some(surge),
                    max_unavailable: Some(unavailable),
                }),
            }),
            template: template("nginx:1"),
            ..Default::default()
        }),
        status: None,
    }
}

fn template(image: &str) -> PodTemplateSpec {
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some([("app".to_string(), "web".to_string())].into()),
            ..Default::default()
        }),
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "c".into(),
                image: Some(image.into()),
                ..Default::default()
            }],
            ..Default::default()
        }),
    }
}

fn rs(name: &str, secs: i64, replicas: i32, available: i32) -> ReplicaSet {
    ReplicaSet {
        metadata: ObjectMeta {
            name: Some(name.into()),
            uid: Some(format!("uid-{name}")),
            creation_timestamp: Some(Time(Timestamp::from_second(secs).unwrap())),
            ..Default::default()
        },
        spec: Some(ReplicaSetSpec {
            replicas: Some(replicas),
            template: Some(template(name)),
            ..Default::default()
        }),
        status: Some(ReplicaSetStatus {
            replicas,
            available_replicas: Some(available),
            ready_replicas: Some(available),
            ..Default::default()
        }),
    }
}

#[test]
fn percentages_round_surge_up_and_unavailable_down() {
    assert_eq!(int_or_percent(&ios("25%"), 10, true), Ok(3));
    assert_eq!(int_or_percent(&ios("25%"), 10, false), Ok(2));
    assert_eq!(int_or_percent(&IntOrString::Int(4), 10, false), Ok(4));
    assert!(int_or_percent(&ios("25"), 10, false).is_err());
    assert_eq!(resolve_fenceposts(&ios("25%"), &ios("25%"), 3), Ok((1, 0)));
    // Both resolving to zero: one unavailable allowed.
    assert_eq!(resolve_fenceposts(&ios("0%"), &ios("10%"), 3), Ok((0, 1)));
    let d = deployment(3, ios("25%"), ios("25%"));
    assert_eq!((max_surge(&d), max_unavailable(&d)), (1, 0));
    let d = deployment(2, IntOrString::Int(0), IntOrString::Int(5));
    assert_eq!(max_unavailable(&d), 2, "capped at replicas");
}

#[test]
fn hash_is_stable_safe_and_changes_with_collisions() {
    let t = template("nginx:1");
    let h = compute_hash(&t, None);
    assert_eq!(h, compute_hash(&t, None));
    assert!(h.chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)));
    assert_ne!(h, compute_hash(&t, Some(1)));
    assert_ne!(h, compute_hash(&template("nginx:2"), None));
    // Decimal digits map onto 4-9 and b, c, d, f: upstream hashes look like `7c5ddbdf54`.
    assert_eq!(safe_encode("0123456789"), "456789bcdf");
}

#[test]
fn equal_ignore_hash_ignores_the_hash_label_and_empty_maps() {
    let a = template("nginx:1");
    let mut b = a.clone();
    b.metadata
        .as_mut()
        .unwrap()
        .labels
        .as_mut()
        .unwrap()
        .insert(POD_TEMPLATE_HASH.into(), "abc".into());
    assert!(equal_ignore_hash(&a, &b));
    b.metadata.as_mut().unwrap().annotations = Some(BTreeMap::new());
    assert!(equal_ignore_hash(&a, &b));
    assert!(!equal_ignore_hash(&a, &template("nginx:2")));
}

#[test]
fn new_rs_annotations_bump_revision_and_keep_history() {
    let mut d = deployment(3, ios("25%"), ios("25%"));
    d.metadata.annotations = Some(
        [
            (LAST_APPLIED.to_string(), "{}".to_string()),
            (REVISION.to_string(), "9".to_string()),
            ("kubernetes.io/change-cause".to_string(), "x".to_string()),
        ]
        .into(),
    );
    let mut r = rs("a", 1, 0, 0);
    assert!(set_new_rs_annotations(&d, &mut r, 1, false));
    let ann = r.metadata.annotations.clone().unwrap();
    assert_eq!(ann.get(REVISION).unwrap(), "1");
    assert_eq!(ann.get("kubernetes.io/change-cause").unwrap(), "x");
    assert!(!ann.contains_key(LAST_APPLIED));
    assert_eq!(ann.get(DESIRED_REPLICAS).unwrap(), "3");
    assert_eq!(ann.get(MAX_REPLICAS).unwrap(), "4");
    assert!(!ann.contains_key(REVISION_HISTORY));
    // Nothing new: unchanged.
    assert!(!set_new_rs_annotations(&d, &mut r, 1, true));
    // Rolled back to: revision 3, history "1"; again to 5: "1,3".
    assert!(set_new_rs_annotations(&d, &mut r, 3, true));
    assert!(set_new_rs_annotations(&d, &mut r, 5, true));
    let ann = r.metadata.annotations.clone().unwrap();
    assert_eq!(ann.get(REVISION).unwrap(), "5");
    assert_eq!(ann.get(REVISION_HISTORY).unwrap(), "1,3");
    // A lower revision never lowers it.
    assert!(!set_new_rs_annotations(&d, &mut r, 2, true));
}

#[test]
fn new_replica_set_is_the_oldest_with_the_template() {
    let d = deployment(3, ios("25%"), ios("25%"));
    let mut a = rs("a", 5, 1, 1);
    a.spec.as_mut().unwrap().template = Some(template("nginx:1"));
    let mut b = rs("b", 2, 1, 1);
    b.spec.as_mut().unwrap().template = Some(template("nginx:1"));
    let c = rs("c", 1, 1, 1);
    let list = vec![a, b, c];
    assert_eq!(find_new(&d, &list), Some(1));
    let (new, old) = split(&d, &list);
    assert_eq!(new.unwrap().metadata.name.as_deref(), Some("b"));
    assert_eq!(old.len(), 2);
}

#[test]
fn rolling_new_replicas_respect_surge() {
    let d = deployment(3, ios("25%"), ios("25%"));
    let old = rs("old", 1, 3, 3);
    let new = rs("new", 2, 0, 0);
    // 3 + surge 1 = 4 total; 3 old → new may have 1.
    assert_eq!(
        new_rs_new_replicas(&d, &[old.clone(), new.clone()], &new),
        1
    );
    let mut old2 = old.clone();
    set_rs_replicas(&mut old2, 1);
    let mut new2 = new.clone();
    set_rs_replicas(&mut new2, 2);
    assert_eq!(new_rs_new_replicas(&d, &[old2, new2.clone()], &new2), 3);
}

#[test]
fn proportions_follow_max_replicas_annotation() {
    // Scaling 10 → 15 mid-rollout with surge 3 (13 total): old 8 and new 5.
    let mut d = deployment(15, IntOrString::Int(3), IntOrString::Int(0));
    d.status = Some(DeploymentStatus {
        replicas: Some(13),
        ..Default::default()
    });
    let mut old = rs("old", 1, 8, 8);
    let mut new = rs("new", 2, 5, 0);
    set_replicas_annotations(&mut old, 10, 13);
    set_replicas_annotations(&mut new, 10, 13);
    // allowed 18, to add 5.
    let p_old = get_proportion(&old, &d, 5, 0);
    let p_new = get_proportion(&new, &d, 5, p_old);
    assert_eq!(p_old, 3); // round(8*18/13)=11 → +3
    assert_eq!(p_new, 2); // round(5*18/13)=7 → +2, capped by allowed 2
                          // Scaling to zero takes each one's whole size.
    let d0 = deployment(0, IntOrString::Int(3), IntOrString::Int(0));
    assert_eq!(get_proportion(&old, &d0, -13, 0), -8);
}

#[test]
fn active_or_latest_and_saturation() {
    let d = deployment(3, ios("25%"), ios("25%"));
    let a = rs("a", 1, 0, 0);
    let b = rs("b", 2, 0, 0);
    let c = rs("c", 3, 2, 2);
    assert_eq!(
        find_active_or_latest(None, &[a.clone(), b.clone()])
            .unwrap()
            .metadata
            .name
            .as_deref(),
        Some("b")
    );
    assert_eq!(
        find_active_or_latest(Some(&c), &[a.clone(), b.clone()])
            .unwrap()
            .metadata
            .name
            .as_deref(),
        Some("c")
    );
    let mut c2 = c.clone();
    set_rs_replicas(&mut c2, 1);
    assert!(find_active_or_latest(Some(&c), &[c2]).is_none());
    let mut full = rs("full", 4, 3, 3);
    assert!(!is_saturated(&d, Some(&full)));
    set_replicas_annotations(&mut full, 3, 4);
    assert!(is_saturated(&d, Some(&full)));
}

#[test]
fn revision_ordering_and_max() {
    let mut a = rs("a", 5, 0, 0);
    let mut b = rs("b", 1, 0, 0);
    a.metadata.annotations = Some([(REVISION.to_string(), "1".to_string())].into());
    b.metadata.annotations = Some([(REVISION.to_string(), "10".to_string())].into());
    let mut v = vec![b.clone(), a.clone()];
    v.sort_by(by_revision);
    assert_eq!(v[0].metadata.name.as_deref(), Some("a"));
    assert_eq!(max_revision(&v), 10);
    let mut sizes = [rs("x", 1, 2, 0), rs("y", 2, 2, 0), rs("z", 3, 5, 0)];
    sizes.sort_by(by_size_newer);
    let names: Vec<_> = sizes
        .iter()
        .map(|r| r.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(names, ["z", "y", "x"]);
    sizes.sort_by(by_size_older);
    let names: Vec<_> = sizes
        .iter()
        .map(|r| r.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(names, ["z", "x", "y"]);
}

#[test]
fn status_conditions_and_progress() {
    let d = deployment(3, ios("25%"), ios("25%"));
    let now = Timestamp::from_second(1000).unwrap();
    let old = rs("old", 1, 2, 2);
    let new = rs("new", 2, 2, 1);
    let s = calculate_status(&[old.clone(), new.clone()], Some(&new), &d, now);
    assert_eq!(s.replicas, Some(4));
    assert_eq!(s.updated_replicas, Some(2));
    assert_eq!(s.available_replicas, Some(3));
    assert_eq!(s.unavailable_replicas, Some(1));
    let c = get_condition(&s, AVAILABLE).unwrap();
    assert_eq!(c.reason.as_deref(), Some(MINIMUM_REPLICAS_AVAILABLE));
    assert!(!deployment_complete(&d, &s));
    assert!(deployment_progressing(&d, &s));
    let done = rs("new", 2, 3, 3);
    let s2 = calculate_status(std::slice::from_ref(&done), Some(&done), &d, now);
    assert!(deployment_complete(&d, &s2));
    let short = rs("new", 2, 3, 1);
    let s3 = calculate_status(std::slice::from_ref(&short), Some(&short), &d, now);
    assert_eq!(
        get_condition(&s3, AVAILABLE).unwrap().reason.as_deref(),
        Some(MINIMUM_REPLICAS_UNAVAILABLE)
    );
}

#[test]
fn set_condition_keeps_transition_time_for_same_status() {
    let mut s = DeploymentStatus::default();
    let t1 = Timestamp::from_second(1).unwrap();
    let t2 = Timestamp::from_second(2).unwrap();
    set_condition(
        &mut s,
        new_condition(PROGRESSING, "True", NEW_REPLICA_SET, "a".into(), t1),
    );
    set_condition(
        &mut s,
        new_condition(PROGRESSING, "True", NEW_REPLICA_SET, "b".into(), t2),
    );
    assert_eq!(
        get_condition(&s, PROGRESSING).unwrap().message.as_deref(),
        Some("a")
    );
    set_condition(
        &mut s,
        new_condition(PROGRESSING, "True", REPLICA_SET_UPDATED, "c".into(), t2),
    );
    let c = get_condition(&s, PROGRESSING).unwrap();
    assert_eq!(c.last_transition_time, Some(Time(t1)));
    assert_eq!(c.last_update_time, Some(Time(t2)));
    remove_condition(&mut s, PROGRESSING);
    assert!(s.conditions.is_none());
}

#[test]
fn timed_out_after_the_deadline() {
    let mut d = deployment(3, ios("25%"), ios("25%"));
    d.spec.as_mut().unwrap().progress_deadline_seconds = Some(10);
    let t = Timestamp::from_second(100).unwrap();
    let mut s = DeploymentStatus::default();
    set_condition(
        &mut s,
        new_condition(PROGRESSING, "True", REPLICA_SET_UPDATED, "x".into(), t),
    );
    assert!(!deployment_timed_out(
        &d,
        &s,
        Timestamp::from_second(110).unwrap()
    ));
    assert!(deployment_timed_out(
        &d,
        &s,
        Timestamp::from_second(111).unwrap()
    ));
    d.spec.as_mut().unwrap().progress_deadline_seconds = Some(i32::MAX);
    assert!(!deployment_timed_out(
        &d,
        &s,
        Timestamp::from_second(10_000).unwrap()
    ));
}
