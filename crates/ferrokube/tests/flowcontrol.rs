#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! flowcontrol.apiserver.k8s.io/v1 with kubectl: upstream's bootstrap FlowSchemas and
//! PriorityLevelConfigurations, the conformance tests' CRUD and /status sequence,
//! validation, the Dangling condition, classification headers and the seats gauge.

mod common;

use common::{start, wait_until};

fn headers(s: &common::Server, args: &[&str]) -> (String, String) {
    let mut all = vec!["get", "--raw", "/version", "-v=8"];
    all.extend_from_slice(args);
    let out = s.kubectl(&all);
    let text = String::from_utf8_lossy(&out.stderr).into_owned();
    let find = |h: &str| {
        text.lines()
            .find_map(|l| {
                let l = l.trim();
                l.to_ascii_lowercase()
                    .starts_with(&format!("{h}:"))
                    .then(|| l[h.len() + 1..].trim().to_string())
            })
            .unwrap_or_default()
    };
    (
        find("x-kubernetes-pf-flowschema-uid"),
        find("x-kubernetes-pf-prioritylevel-uid"),
    )
}

#[test]
fn flow_schemas_and_priority_levels_with_kubectl() {
    let s = start();
    // Discovery and the bootstrap configuration.
    let resources = s.ok(&["api-resources", "--api-group=flowcontrol.apiserver.k8s.io"]);
    assert!(resources.contains("flowschemas") && resources.contains("prioritylevelconfigurations"));
    wait_until("the bootstrap configuration", 20, || {
        s.kubectl(&["get", "flowschema", "global-default"])
            .status
            .success()
            && s.kubectl(&["get", "prioritylevelconfiguration", "catch-all"])
                .status
                .success()
    });
    // Schemas print in matching order.
    let names = s.ok(&[
        "get",
        "flowschemas",
        "--no-headers",
        "-o",
        "custom-columns=N:.metadata.name",
    ]);
    let table = s.ok(&["get", "flowschemas", "--no-headers"]);
    let first: Vec<&str> = table
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .take(3)
        .collect();
    assert_eq!(
        first,
        ["exempt", "probes", "system-leader-election"],
        "{table}\n{names}"
    );
    let table = s.ok(&["get", "prioritylevelconfigurations", "workload-low"]);
    assert!(
        table.contains("NOMINALCONCURRENCYSHARES") && table.contains("Limited   100"),
        "{table}"
    );
    wait_until("Dangling=False on the bootstrap schemas", 20, || {
        s.ok(&[
            "get",
            "flowschema",
            "exempt",
            "-o",
            r#"jsonpath={.status.conditions[?(@.type=="Dangling")].status}"#,
        ]) == "False"
    });

    // Create, list by label, patch, update, /status patch and update, delete.
    let pl = "apiVersion: flowcontrol.apiserver.k8s.io/v1\nkind: PriorityLevelConfiguration\nmetadata: {generateName: e2e-pl-, labels: {e2e: pl}}\nspec: {type: Limited, limited: {nominalConcurrencyShares: 2, limitResponse: {type: Reject}}}\n";
    let mut names = Vec::new();
    for _ in 0..3 {
        let out = s.kubectl_stdin(&["create", "-f", "-", "-o", "name"], Some(pl));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        names.push(String::from_utf8_lossy(&out.stdout).trim().to_string());
    }
    let listed = s.ok(&[
        "get",
        "prioritylevelconfigurations",
        "-l",
        "e2e=pl",
        "-o",
        "name",
    ]);
    assert_eq!(listed.lines().count(), 3, "{listed}");
    let name = &names[2];
    assert_eq!(
        s.ok(&[
            "get",
            name,
            "-o",
            "jsonpath={.spec.limited.lendablePercent}/{.metadata.generation}"
        ]),
        "0/1"
    );
    s.ok(&["patch", name, "--type=merge", "-p", r#"{"metadata":{"annotations":{"patched":"true"}},"spec":{"limited":{"nominalConcurrencyShares":4}}}"#]);
    assert_eq!(
        s.ok(&["get", name, "-o", "jsonpath={.spec.limited.nominalConcurrencyShares}/{.spec.limited.limitResponse.type}/{.metadata.generation}"]),
        "4/Reject/2"
    );
    s.ok(&["patch", name, "--subresource=status", "--type=merge", "-p", r#"{"status":{"conditions":[{"type":"PatchStatusFailed","status":"False","reason":"e2e"}]}}"#]);
    assert_eq!(
        s.ok(&[
            "get",
            name,
            "-o",
            "jsonpath={.status.conditions[0].type}/{.metadata.generation}"
        ]),
        "PatchStatusFailed/2"
    );
    // A status write does not touch the spec; a spec write does not touch the status.
    s.ok(&[
        "patch",
        name,
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"spec":{"limited":{"nominalConcurrencyShares":9}}}"#,
    ]);
    s.ok(&[
        "patch",
        name,
        "--type=merge",
        "-p",
        r#"{"status":{"conditions":[]}}"#,
    ]);
    assert_eq!(
        s.ok(&[
            "get",
            name,
            "-o",
            "jsonpath={.spec.limited.nominalConcurrencyShares}/{.status.conditions[0].type}"
        ]),
        "4/PatchStatusFailed"
    );
    let dup = s.kubectl(&[
        "patch",
        name,
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"conditions":[{"type":"A","status":"True"},{"type":"A","status":"False"}]}}"#,
    ]);
    assert!(
        String::from_utf8_lossy(&dup.stderr)
            .contains("status.conditions[1].type: Duplicate value: \"A\""),
        "{}",
        String::from_utf8_lossy(&dup.stderr)
    );
    s.ok(&["delete", name]);
    assert!(!s.kubectl(&["get", name]).status.success());
    s.ok(&["delete", "prioritylevelconfigurations", "-l", "e2e=pl"]);
    assert_eq!(
        s.ok(&[
            "get",
            "prioritylevelconfigurations",
            "-l",
            "e2e=pl",
            "-o",
            "name"
        ]),
        ""
    );

    // Validation, with upstream's messages.
    let bad = "apiVersion: flowcontrol.apiserver.k8s.io/v1\nkind: FlowSchema\nmetadata: {name: bad}\nspec:\n  matchingPrecedence: 1\n  priorityLevelConfiguration: {name: global-default}\n  distinguisherMethod: {type: ByPod}\n  rules:\n  - subjects: [{kind: User}]\n    nonResourceRules: [{verbs: ['*'], nonResourceURLs: ['/a*']}]\n";
    let out = s.kubectl_stdin(&["create", "-f", "-"], Some(bad));
    let err = String::from_utf8_lossy(&out.stderr);
    for want in [
        "only the schema named 'exempt' may have matchingPrecedence 1",
        "spec.distinguisherMethod.type: Unsupported value",
        "spec.rules[0].subjects[0].user: Required value: user is required when subject kind is 'User'",
        "spec.rules[0].nonResourceRules[0].nonResourceURLs[0]: Invalid value: \"/a*\": wildcard can only do suffix matching",
    ] {
        assert!(err.contains(want), "missing {want}: {err}");
    }
    let pinned = s.kubectl(&[
        "patch",
        "flowschema",
        "catch-all",
        "--type=merge",
        "-p",
        r#"{"spec":{"matchingPrecedence":9000}}"#,
    ]);
    assert!(
        String::from_utf8_lossy(&pinned.stderr)
            .contains("spec of 'catch-all' must equal the fixed value"),
        "{}",
        String::from_utf8_lossy(&pinned.stderr)
    );

    // Classification: a schema for user noxu, its level, the headers and the gauge.
    let plc = "apiVersion: flowcontrol.apiserver.k8s.io/v1\nkind: PriorityLevelConfiguration\nmetadata: {name: e2e-testing-prioritylevel}\nspec: {type: Limited, limited: {nominalConcurrencyShares: 1, limitResponse: {type: Reject}}}\n";
    let fs = "apiVersion: flowcontrol.apiserver.k8s.io/v1\nkind: FlowSchema\nmetadata: {name: e2e-testing-flowschema}\nspec:\n  matchingPrecedence: 1000\n  priorityLevelConfiguration: {name: e2e-testing-prioritylevel}\n  distinguisherMethod: {type: ByUser}\n  rules:\n  - subjects: [{kind: User, user: {name: noxu}}]\n    nonResourceRules: [{verbs: ['*'], nonResourceURLs: ['*']}]\n";
    // The schema first: it dangles until its level exists.
    let out = s.kubectl_stdin(&["create", "-f", "-"], Some(fs));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dangling = r#"jsonpath={.status.conditions[?(@.type=="Dangling")].status}/{.status.conditions[?(@.type=="Dangling")].reason}"#;
    wait_until("Dangling=True", 20, || {
        s.ok(&[
            "get",
            "flowschema",
            "e2e-testing-flowschema",
            "-o",
            dangling,
        ]) == "True/NotFound"
    });
    let out = s.kubectl_stdin(&["create", "-f", "-"], Some(plc));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_until("Dangling=False", 20, || {
        s.ok(&[
            "get",
            "flowschema",
            "e2e-testing-flowschema",
            "-o",
            dangling,
        ]) == "False/Found"
    });
    let metrics = s.ok(&["get", "--raw", "/metrics"]);
    assert!(
        metrics.contains("apiserver_flowcontrol_nominal_limit_seats{priority_level=\"e2e-testing-prioritylevel\"}"),
        "no seats gauge"
    );
    let fs_uid = s.ok(&[
        "get",
        "flowschema",
        "e2e-testing-flowschema",
        "-o",
        "jsonpath={.metadata.uid}",
    ]);
    let pl_uid = s.ok(&[
        "get",
        "prioritylevelconfiguration",
        "e2e-testing-prioritylevel",
        "-o",
        "jsonpath={.metadata.uid}",
    ]);
    let (f, p) = headers(&s, &["--as=noxu", "--as-group=system:authenticated"]);
    assert_eq!((f.as_str(), p.as_str()), (fs_uid.as_str(), pl_uid.as_str()));
    let global = s.ok(&[
        "get",
        "flowschema",
        "global-default",
        "-o",
        "jsonpath={.metadata.uid}",
    ]);
    let (f, p) = headers(&s, &["--as=foo", "--as-group=system:authenticated"]);
    assert_eq!(f, global);
    assert!(!p.is_empty());

    // A deleted bootstrap object comes back (the producer runs every minute; a restart
    // runs it at once).
    s.ok(&["delete", "flowschema", "service-accounts"]);
    let mut s = s;
    s.restart();
    wait_until("service-accounts recreated", 20, || {
        s.kubectl(&["get", "flowschema", "service-accounts"])
            .status
            .success()
    });
}
