#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! ValidatingAdmissionPolicy with CEL, as a kubectl user meets it: upstream's
//! documentation example (replicas limited in namespaces a binding selects), params from
//! a ConfigMap with messageExpression and the Warn action, variables, matchConditions,
//! reasons, failure policies, and policies refused for expressions that do not compile.

mod common;

use common::{start_with, wait_until};

const DEMO: &str = r#"
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata:
  name: demo-policy.example.com
spec:
  failurePolicy: Fail
  matchConstraints:
    resourceRules:
    - apiGroups: ["apps"]
      apiVersions: ["v1"]
      operations: ["CREATE", "UPDATE"]
      resources: ["deployments"]
  validations:
  - expression: "object.spec.replicas <= 5"
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata:
  name: demo-binding-test.example.com
spec:
  policyName: demo-policy.example.com
  validationActions: [Deny]
  matchResources:
    namespaceSelector:
      matchLabels:
        environment: test
"#;

const LABELS: &str = r#"
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata:
  name: team-label
spec:
  matchConstraints:
    resourceRules:
    - apiGroups: [""]
      apiVersions: ["v1"]
      operations: ["CREATE", "UPDATE"]
      resources: ["configmaps"]
  matchConditions:
  - name: not-skipped
    expression: "!object.metadata.name.startsWith('skip-')"
  variables:
  - name: labels
    expression: "object.metadata.?labels.orValue({})"
  - name: hasTeam
    expression: "'team' in variables.labels"
  validations:
  - expression: "variables.hasTeam"
    message: "a team label is required"
    reason: Forbidden
  - expression: "!('env' in variables.labels) || variables.labels['env'] in ['dev', 'prod']"
    messageExpression: "'env must be dev or prod, not ' + variables.labels['env']"
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata:
  name: team-label
spec:
  policyName: team-label
  validationActions: [Deny]
"#;

const PARAMS: &str = r#"
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata:
  name: max-replicas
spec:
  paramKind:
    apiVersion: v1
    kind: ConfigMap
  matchConstraints:
    resourceRules:
    - apiGroups: ["apps"]
      apiVersions: ["v1"]
      operations: ["CREATE", "UPDATE"]
      resources: ["deployments"]
  validations:
  - expression: "object.spec.replicas <= int(params.data.max)"
    messageExpression: "'at most ' + params.data.max + ' replicas, got ' + string(object.spec.replicas)"
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata:
  name: max-replicas-warn
spec:
  policyName: max-replicas
  validationActions: [Warn]
  paramRef:
    name: replica-limits
    parameterNotFoundAction: Deny
  matchResources:
    namespaceSelector:
      matchLabels:
        limits: "on"
"#;

#[test]
fn validating_admission_policies_with_kubectl() {
    let s = start_with(&["--disable-metrics-server"]);
    let apply = |yaml: &str| s.kubectl_stdin(&["apply", "-f", "-"], Some(yaml));

    // Expressions are compiled when the policy is written.
    let bad = DEMO.replace("object.spec.replicas <= 5", "object.spec.replicas <=");
    let out = apply(&bad);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("spec.validations[0].expression: Invalid value: \"object.spec.replicas <=\": compilation failed: ERROR: <input>:1:"),
        "{err}"
    );
    let undeclared = DEMO.replace("object.spec.replicas <= 5", "objct.spec.replicas <= 5");
    let err = String::from_utf8_lossy(&apply(&undeclared).stderr).to_string();
    assert!(err.contains("undeclared reference to 'objct'"), "{err}");
    let no_actions = DEMO.replace("  validationActions: [Deny]\n", "");
    let err = String::from_utf8_lossy(&apply(&no_actions).stderr).to_string();
    assert!(
        err.contains(
            "spec.validationActions: Required value: at least one validation action is required"
        ),
        "{err}"
    );

    // Upstream's documentation example.
    s.ok(&["create", "namespace", "test"]);
    s.ok(&["label", "namespace", "test", "environment=test"]);
    assert!(apply(DEMO).status.success());
    assert_eq!(
        s.ok(&[
            "get",
            "validatingadmissionpolicy",
            "demo-policy.example.com",
            "-o",
            "jsonpath={.spec.failurePolicy} {.spec.matchConstraints.matchPolicy}"
        ]),
        "Fail Equivalent"
    );
    let denied = "ValidatingAdmissionPolicy 'demo-policy.example.com' with binding 'demo-binding-test.example.com' denied request: failed expression: object.spec.replicas <= 5";
    wait_until("the demo policy denies", 10, || {
        let o = s.kubectl(&[
            "create",
            "deployment",
            "probe",
            "--image=nginx",
            "--replicas=6",
            "-n",
            "test",
            "--dry-run=server",
        ]);
        String::from_utf8_lossy(&o.stderr).contains(denied)
    });
    let err = s.fails(&[
        "create",
        "deployment",
        "nginx",
        "--image=nginx",
        "--replicas=6",
        "-n",
        "test",
    ]);
    assert!(
        err.contains(&format!(
            "deployments.apps \"nginx\" is forbidden: {denied}"
        )),
        "{err}"
    );
    s.ok(&[
        "create",
        "deployment",
        "nginx",
        "--image=nginx",
        "--replicas=5",
        "-n",
        "test",
    ]);
    s.ok(&[
        "create",
        "deployment",
        "nginx",
        "--image=nginx",
        "--replicas=6",
    ]);
    // Updates are checked too (a scale goes through the scale subresource, which the
    // rules do not select; a patch of the deployment does).
    let err = s.fails(&[
        "patch",
        "deployment",
        "nginx",
        "-n",
        "test",
        "-p",
        r#"{"spec":{"replicas":7}}"#,
    ]);
    assert!(err.contains(denied), "{err}");
    // The reason and code of the default denial: 422 Invalid.
    let raw = s.kubectl(&[
        "create",
        "deployment",
        "big",
        "--image=nginx",
        "--replicas=9",
        "-n",
        "test",
        "-v=6",
    ]);
    let log = String::from_utf8_lossy(&raw.stderr);
    assert!(log.contains("422 Unprocessable Entity"), "{log}");

    // Variables, matchConditions, messages, reasons.
    assert!(apply(LABELS).status.success());
    wait_until("the label policy denies", 10, || {
        !s.kubectl(&["create", "configmap", "probe", "--dry-run=server"])
            .status
            .success()
    });
    let err = s.fails(&["create", "configmap", "plain"]);
    assert!(
        err.contains("configmaps \"plain\" is forbidden: ValidatingAdmissionPolicy 'team-label' with binding 'team-label' denied request: a team label is required"),
        "{err}"
    );
    let raw = s.kubectl(&["create", "configmap", "plain", "-v=6"]);
    assert!(String::from_utf8_lossy(&raw.stderr).contains("403 Forbidden"));
    s.ok(&["create", "configmap", "skip-me"]);
    let labelled = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: labelled\n  labels: {team: a, env: qa}\n";
    let out = s.kubectl_stdin(&["create", "-f", "-"], Some(labelled));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("denied request: env must be dev or prod, not qa"),
        "{err}"
    );
    assert!(s
        .kubectl_stdin(&["create", "-f", "-"], Some(&labelled.replace("qa", "dev")))
        .status
        .success());

    // Params from a ConfigMap, the Warn action, parameterNotFoundAction Deny.
    assert!(apply(PARAMS).status.success());
    s.ok(&["create", "namespace", "limited"]);
    s.ok(&["label", "namespace", "limited", "limits=on"]);
    let missing = "ValidatingAdmissionPolicy 'max-replicas' with binding 'max-replicas-warn' denied request: failed to configure binding: no params found for policy binding with `Deny` parameterNotFoundAction";
    wait_until("the params policy runs", 10, || {
        let o = s.kubectl(&[
            "create",
            "deployment",
            "probe",
            "--image=x",
            "-n",
            "limited",
            "--dry-run=server",
        ]);
        String::from_utf8_lossy(&o.stderr).contains(missing)
    });
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: replica-limits\n  namespace: limited\n  labels: {team: platform}\ndata: {max: \"3\"}\n";
    assert!(s
        .kubectl_stdin(&["create", "-f", "-"], Some(cm))
        .status
        .success());
    let out = s.kubectl(&[
        "create",
        "deployment",
        "wide",
        "--image=x",
        "--replicas=4",
        "-n",
        "limited",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let warning = String::from_utf8_lossy(&out.stderr);
    assert!(
        warning.contains("Warning: Validation failed for ValidatingAdmissionPolicy 'max-replicas' with binding 'max-replicas-warn': at most 3 replicas, got 4"),
        "{warning}"
    );
    let out = s.kubectl(&[
        "create",
        "deployment",
        "narrow",
        "--image=x",
        "--replicas=2",
        "-n",
        "limited",
    ]);
    assert!(!String::from_utf8_lossy(&out.stderr).contains("Warning"));

    // Evaluation errors: denied under failurePolicy Fail, admitted under Ignore.
    let erring = r#"
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: erring}
spec:
  failurePolicy: Fail
  matchConstraints:
    resourceRules:
    - {apiGroups: [""], apiVersions: ["v1"], operations: ["CREATE"], resources: ["secrets"]}
  validations:
  - expression: "object.data.missing == 'x'"
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: erring}
spec: {policyName: erring, validationActions: [Deny]}
"#;
    assert!(apply(erring).status.success());
    wait_until("the erring policy denies", 10, || {
        !s.kubectl(&[
            "create",
            "secret",
            "generic",
            "probe",
            "--from-literal=a=b",
            "--dry-run=server",
        ])
        .status
        .success()
    });
    let err = s.fails(&["create", "secret", "generic", "s1", "--from-literal=a=b"]);
    assert!(
        err.contains("denied request: expression 'object.data.missing == 'x'' resulted in error: no such key: missing"),
        "{err}"
    );
    assert!(
        apply(&erring.replace("failurePolicy: Fail", "failurePolicy: Ignore"))
            .status
            .success()
    );
    wait_until("the erring policy ignores its error", 10, || {
        s.kubectl(&[
            "create",
            "secret",
            "generic",
            "probe",
            "--from-literal=a=b",
            "--dry-run=server",
        ])
        .status
        .success()
    });

    // The authorizer variable asks RBAC as the requesting user.
    let authz = r#"
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: secret-deleters}
spec:
  matchConstraints:
    resourceRules:
    - {apiGroups: [""], apiVersions: ["v1"], operations: ["CREATE"], resources: ["configmaps"]}
  validations:
  - expression: "authorizer.group('').resource('secrets').namespace(object.metadata.namespace).check('delete').allowed()"
    messageExpression: "'user ' + request.userInfo.username + ' may not delete secrets'"
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: secret-deleters}
spec:
  policyName: secret-deleters
  validationActions: [Deny]
  matchResources:
    namespaceSelector:
      matchLabels: {authz: "on"}
"#;
    s.ok(&["create", "namespace", "authz"]);
    s.ok(&["label", "namespace", "authz", "authz=on"]);
    s.ok(&[
        "create",
        "role",
        "cm-writer",
        "--verb=create",
        "--resource=configmaps",
        "-n",
        "authz",
    ]);
    s.ok(&[
        "create",
        "rolebinding",
        "cm-writer",
        "--role=cm-writer",
        "--user=jane",
        "-n",
        "authz",
    ]);
    assert!(apply(authz).status.success());
    let cm = |name: &str| {
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: authz\n  labels: {{team: a}}\n")
    };
    let mut n = 0;
    let mut err = String::new();
    wait_until("the authorizer policy denies jane", 10, || {
        n += 1;
        let o = s.kubectl_stdin(
            &["create", "--as=jane", "-f", "-"],
            Some(&cm(&format!("j{n}"))),
        );
        err = String::from_utf8_lossy(&o.stderr).into_owned();
        !o.status.success()
    });
    assert!(
        err.contains("ValidatingAdmissionPolicy 'secret-deleters' with binding 'secret-deleters' denied request: user jane may not delete secrets"),
        "{err}"
    );
    assert!(s
        .kubectl_stdin(&["create", "-f", "-"], Some(&cm("admins-may")))
        .status
        .success());

    // Deleting the binding lifts the policy.
    s.ok(&[
        "delete",
        "validatingadmissionpolicybinding",
        "demo-binding-test.example.com",
    ]);
    wait_until("the demo policy is unbound", 10, || {
        s.kubectl(&[
            "create",
            "deployment",
            "free",
            "--image=nginx",
            "--replicas=6",
            "-n",
            "test",
        ])
        .status
        .success()
    });
}
