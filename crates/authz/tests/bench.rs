//! Micro-benchmark (ignored by default): per-check RBAC cost with 10,000 RoleBindings
//! present, against a scan of every binding the way upstream's resolver lists them.
//! Run: `cargo nextest run -p ferrokube-authz --release --run-ignored only --no-capture bench`.

use std::collections::HashMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use ferrokube_authz::{
    bootstrap, rule_allows, Attributes, Authorizer, PolicyRule, Rbac, RbacKind, UserInfo,
};
use serde_json::{json, Value};

const BINDINGS: usize = 10_000;
const ITERS: u32 = 200_000;

fn binding(ns: &str, i: usize) -> Value {
    json!({"metadata": {"namespace": ns, "name": format!("rb-{i}")},
           "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
           "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": format!("user-{i}")},
                        {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": format!("team-{}", i % 500)}]})
}

fn time(iters: u32, mut f: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        black_box(f());
    }
    start.elapsed() / iters
}

struct NaiveBinding {
    subjects: Vec<(String, String)>,
    role: String,
}

/// Upstream's algorithm over pre-parsed objects: visit every binding of the
/// namespace, test its subjects, evaluate the referenced role's rules.
fn naive(
    bindings: &[NaiveBinding],
    roles: &HashMap<String, Vec<PolicyRule>>,
    a: &Attributes,
) -> bool {
    for b in bindings {
        let applies = b.subjects.iter().any(|(kind, name)| match kind.as_str() {
            "User" => &a.user.name == name,
            "Group" => a.user.in_group(name),
            _ => false,
        });
        if !applies {
            continue;
        }
        if let Some(rules) = roles.get(&b.role) {
            if rules.iter().any(|r| rule_allows(a, r)) {
                return true;
            }
        }
    }
    false
}

fn parse_naive(bindings: &[Value]) -> Vec<NaiveBinding> {
    bindings
        .iter()
        .map(|b| NaiveBinding {
            subjects: b["subjects"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|s| {
                    (
                        s["kind"].as_str().unwrap_or("").to_owned(),
                        s["name"].as_str().unwrap_or("").to_owned(),
                    )
                })
                .collect(),
            role: b["roleRef"]["name"].as_str().unwrap_or("").to_owned(),
        })
        .collect()
}

#[test]
#[ignore = "benchmark; run with --run-ignored only --release"]
fn bench_rbac_with_10k_role_bindings() {
    for (label, namespaces) in [("one namespace", 1usize), ("100 namespaces", 100)] {
        let rbac = Rbac::new();
        bootstrap::load(&rbac);
        let mut in_ns0 = Vec::new();
        for i in 0..BINDINGS {
            let ns = format!("ns-{}", i % namespaces);
            let b = binding(&ns, i);
            rbac.upsert(RbacKind::RoleBinding, &b);
            if ns == "ns-0" {
                in_ns0.push(b);
            }
        }
        assert_eq!(rbac.counts().2, BINDINGS + 7);
        let u = BINDINGS - namespaces; // a user bound in ns-0, late in the list
        let alice = UserInfo::new(&format!("user-{u}"), &["system:authenticated"]);
        let allowed = Attributes::resource(alice.clone(), "get", "", "secrets", "ns-0", "s");
        let denied = Attributes::resource(alice, "create", "", "nodes", "", "");
        let grouped = Attributes::resource(
            UserInfo::new("x", &["team-7", "system:authenticated", "g1", "g2", "g3"]),
            "list",
            "apps",
            "deployments",
            "ns-7",
            "",
        );
        assert!(rbac.authorize(&allowed).is_allowed());
        assert!(!rbac.authorize(&denied).is_allowed());
        let t_allow = time(ITERS, || rbac.authorize(&allowed).is_allowed());
        let t_deny = time(ITERS, || rbac.authorize(&denied).is_allowed());
        let t_group = time(ITERS, || rbac.authorize(&grouped).is_allowed());
        let roles: HashMap<String, Vec<PolicyRule>> = bootstrap::aggregated_cluster_roles()
            .iter()
            .map(|r| {
                let name = r["metadata"]["name"].as_str().unwrap_or("").to_owned();
                (
                    name,
                    serde_json::from_value(r["rules"].clone()).unwrap_or_default(),
                )
            })
            .collect();
        let naive_bindings = parse_naive(&in_ns0);
        assert!(naive(&naive_bindings, &roles, &allowed));
        let t_naive = time(2_000, || naive(&naive_bindings, &roles, &allowed));
        println!(
            "rbac, {BINDINGS} RoleBindings in {label} ({} in ns-0) + bootstrap policy: allowed {:?}/check, denied {:?}/check, via group {:?}/check; scan of the namespace's bindings (upstream's algorithm) {:?}/check = {:.0}x",
            in_ns0.len(),
            t_allow,
            t_deny,
            t_group,
            t_naive,
            t_naive.as_secs_f64() / t_allow.as_secs_f64()
        );
    }
}
