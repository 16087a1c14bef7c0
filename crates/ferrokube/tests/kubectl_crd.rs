#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! CustomResourceDefinitions served dynamically, driven by the real kubectl: establishment,
//! discovery, OpenAPI (`explain`), structural-schema pruning, defaulting and validation,
//! printer columns, `status` and `scale` subresources, several versions, deletion.

mod common;

use common::{lines, start};

const CRD: &str = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, shortNames: [wd], categories: [all]}
  versions:
  - name: v1
    served: true
    storage: true
    subresources:
      status: {}
      scale: {specReplicasPath: .spec.replicas, statusReplicasPath: .status.replicas, labelSelectorPath: .status.selector}
    additionalPrinterColumns:
    - {name: Size, type: integer, jsonPath: .spec.size}
    - {name: Color, type: string, jsonPath: .spec.color, priority: 1}
    - {name: Ready, type: string, jsonPath: '.status.conditions[?(@.type=="Ready")].status'}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [size]
            properties:
              size: {type: integer, minimum: 1, maximum: 10, description: How big the widget is.}
              color: {type: string, default: red, enum: [red, blue]}
              replicas: {type: integer}
              port: {x-kubernetes-int-or-string: true}
              extra: {type: object, x-kubernetes-preserve-unknown-fields: true}
          status:
            type: object
            properties:
              replicas: {type: integer}
              selector: {type: string}
              conditions:
                type: array
                items: {type: object, properties: {type: {type: string}, status: {type: string}}}
  - name: v1beta1
    served: true
    storage: false
    schema:
      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
"#;

#[test]
fn custom_resources_with_kubectl() {
    let s = start();
    let crd = |args: &[&str], doc: &str| {
        let o = s.kubectl_stdin(args, Some(doc));
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let (ok, out, err) = crd(&["apply", "-f", "-"], CRD);
    assert!(ok, "{out}{err}");
    s.ok(&[
        "wait",
        "--for",
        "condition=established",
        "crd/widgets.example.com",
        "--timeout=20s",
    ]);
    let status = s.ok(&[
        "get",
        "crd",
        "widgets.example.com",
        "-o",
        "jsonpath={.status.acceptedNames.kind} {.status.storedVersions} {.metadata.finalizers}",
    ]);
    assert_eq!(
        status,
        r#"Widget ["v1"] ["customresourcecleanup.apiextensions.k8s.io"]"#
    );
    let resources = s.ok(&["api-resources", "--api-group=example.com"]);
    assert!(
        resources.contains("widgets") && resources.contains("wd") && resources.contains("Widget"),
        "{resources}"
    );
    assert!(s
        .ok(&["api-versions"])
        .lines()
        .any(|l| l == "example.com/v1beta1"));

    // explain reads the CRD's schema from /openapi/v3.
    let explain = s.ok(&["explain", "widgets.spec.size"]);
    assert!(explain.contains("How big the widget is."), "{explain}");

    // Unknown fields: kubectl validates strictly through the server.
    let bad = "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w1}\nspec: {size: 3, bogus: 1}\n";
    let (ok, _, err) = crd(&["apply", "-f", "-"], bad);
    assert!(!ok);
    assert!(
        err.contains(r#"strict decoding error: unknown field "spec.bogus""#),
        "{err}"
    );
    // Pruned (not stored) when validation is off; defaults applied.
    let (ok, out, err) = crd(&["apply", "--validate=false", "-f", "-"], bad);
    assert!(ok, "{out}{err}");
    let spec = s.ok(&["get", "wd", "w1", "-o", "jsonpath={.spec}"]);
    assert_eq!(spec, r#"{"color":"red","size":3}"#);

    // Value validation: 422 with upstream's wording.
    let err = s.fails(&[
        "patch",
        "wd",
        "w1",
        "--type=merge",
        "-p",
        r#"{"spec":{"size":20,"color":"green"}}"#,
    ]);
    assert!(
        err.contains(r#"The Widget "w1" is invalid"#)
            && err.contains("spec.size: Invalid value: 20: spec.size in body should be less than or equal to 10")
            && err.contains(r#"spec.color: Unsupported value: "green": supported values: "red", "blue""#),
        "{err}"
    );
    let err = s.fails(&["patch", "wd", "w1", "-p", r#"{"spec":{"size":2}}"#]);
    assert!(
        err.contains("application/strategic-merge-patch+json is not supported"),
        "{err}"
    );
    s.ok(&["patch", "wd", "w1", "--type=json", "-p", r#"[{"op":"replace","path":"/spec/size","value":4},{"op":"add","path":"/spec/extra","value":{"free":{"form":1}}}]"#]);
    assert_eq!(
        s.ok(&[
            "get",
            "wd",
            "w1",
            "-o",
            "jsonpath={.spec.extra.free.form} {.metadata.generation}"
        ]),
        "1 2"
    );

    // status is a subresource: the main resource ignores it, /status takes only it.
    s.ok(&[
        "patch",
        "wd",
        "w1",
        "--type=merge",
        "-p",
        r#"{"status":{"replicas":9}}"#,
    ]);
    assert_eq!(s.ok(&["get", "wd", "w1", "-o", "jsonpath={.status}"]), "");
    s.ok(&[
        "patch",
        "wd",
        "w1",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"replicas":2,"selector":"app=w","conditions":[{"type":"Ready","status":"True"}]},"spec":{"size":9}}"#,
    ]);
    assert_eq!(
        s.ok(&[
            "get",
            "wd",
            "w1",
            "-o",
            "jsonpath={.status.replicas} {.spec.size}"
        ]),
        "2 4"
    );

    // Printer columns, with -o wide adding priority-1 columns; `all` includes the category.
    let table = lines(&s.ok(&["get", "widgets"]));
    assert_eq!(table[0], ["NAME", "SIZE", "READY"]);
    assert_eq!(table[1], ["w1", "4", "True"]);
    let wide = lines(&s.ok(&["get", "widgets", "-o", "wide"]));
    assert_eq!(wide[0], ["NAME", "SIZE", "COLOR", "READY"]);
    assert!(s.ok(&["get", "all"]).contains("widget.example.com/w1"));

    // scale: the CRD's paths.
    assert_eq!(
        s.ok(&["scale", "wd", "w1", "--replicas=3"]),
        "widget.example.com/w1 scaled\n"
    );
    assert_eq!(
        s.ok(&["get", "wd", "w1", "-o", "jsonpath={.spec.replicas}"]),
        "3"
    );
    let scale = s.ok(&[
        "get",
        "--raw",
        "/apis/example.com/v1/namespaces/default/widgets/w1/scale",
    ]);
    assert!(
        scale.contains(r#""selector":"app=w""#) && scale.contains(r#""kind":"Scale""#),
        "{scale}"
    );

    // Another served version reads the same objects (conversion None).
    let beta = s.ok(&[
        "get",
        "widgets.v1beta1.example.com",
        "w1",
        "-o",
        "jsonpath={.apiVersion} {.spec.size}",
    ]);
    assert_eq!(beta, "example.com/v1beta1 4");

    // Deleting the CRD deletes its objects; a new CRD of the same name starts empty.
    s.ok(&["delete", "crd", "widgets.example.com", "--timeout=30s"]);
    let err = s.fails(&["get", "widgets.example.com"]);
    assert!(
        err.contains("the server doesn't have a resource type") || err.contains("could not find"),
        "{err}"
    );
    let (ok, out, err) = crd(&["apply", "-f", "-"], CRD);
    assert!(ok, "{out}{err}");
    s.ok(&[
        "wait",
        "--for",
        "condition=established",
        "crd/widgets.example.com",
        "--timeout=20s",
    ]);
    let empty = s.kubectl(&["get", "widgets"]);
    assert!(String::from_utf8_lossy(&empty.stderr).contains("No resources found"));
}

#[test]
fn invalid_crds_and_cluster_scope() {
    let s = start();
    let apply = |doc: &str| {
        let o = s.kubectl_stdin(&["apply", "-f", "-"], Some(doc));
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let (ok, err) = apply(
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {name: things.example.com}\nspec:\n  group: example.com\n  scope: Cluster\n  names: {plural: gadgets, kind: Gadget}\n  versions: [{name: v1, served: true, storage: false, schema: {openAPIV3Schema: {type: object}}}]\n",
    );
    assert!(!ok);
    assert!(
        err.contains("metadata.name: Invalid value")
            && err.contains("must have exactly one version marked as storage version"),
        "{err}"
    );
    let (ok, err) = apply(
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {name: gadgets.example.com}\nspec:\n  group: example.com\n  scope: Cluster\n  names: {plural: gadgets, kind: Gadget}\n  versions: [{name: v1, served: true, storage: true, schema: {openAPIV3Schema: {type: object, properties: {spec: {type: object, x-kubernetes-preserve-unknown-fields: true}}}}}]\n",
    );
    assert!(ok, "{err}");
    s.ok(&[
        "wait",
        "--for",
        "condition=established",
        "crd/gadgets.example.com",
        "--timeout=20s",
    ]);
    let (ok, err) = apply("apiVersion: example.com/v1\nkind: Gadget\nmetadata: {name: g1}\nspec: {anything: [1, 2]}\n");
    assert!(ok, "{err}");
    assert_eq!(
        s.ok(&["get", "gadget", "g1", "-o", "jsonpath={.spec.anything}"]),
        "[1,2]"
    );
    let table = lines(&s.ok(&["get", "gadgets"]));
    assert_eq!(table[0], ["NAME", "AGE"]);
    assert!(!s
        .ok(&["get", "--raw", "/apis/example.com/v1/gadgets/g1"])
        .contains(r#""namespace""#));
}

#[test]
fn one_file_with_a_crd_and_its_objects() {
    let s = start();
    let cr = "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w1}\nspec: {size: 3}\n";
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: after}\ndata: {k: v}\n";
    let file = format!("{CRD}---\n{cr}---\n{cm}");
    // As upstream: the custom object cannot be mapped before its CRD exists; the rest
    // is applied, and applying again completes it. (kubectl validates the unknown kind
    // through /openapi/v2, which must answer for the run to get that far.)
    let o = s.kubectl_stdin(&["apply", "-f", "-"], Some(&file));
    let err = String::from_utf8_lossy(&o.stderr);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("customresourcedefinition.apiextensions.k8s.io/widgets.example.com created"),
        "{out}{err}"
    );
    assert!(out.contains("configmap/after created"), "{out}{err}");
    if !o.status.success() {
        assert!(
            err.contains("ensure CRDs are installed first") || err.contains("could not find"),
            "{err}"
        );
        s.ok(&[
            "wait",
            "--for",
            "condition=established",
            "crd/widgets.example.com",
            "--timeout=20s",
        ]);
        let o = s.kubectl_stdin(&["apply", "-f", "-"], Some(&file));
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    assert_eq!(
        s.ok(&["get", "widget", "w1", "-o", "jsonpath={.spec.size}"]),
        "3"
    );
    let v2 = s.ok(&["get", "--raw", "/openapi/v2"]);
    assert!(v2.contains("com.example.v1.Widget") && v2.contains("io.k8s.api.apps.v1.Deployment"));
}

const GADGETS: &str = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: gadgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {plural: gadgets, singular: gadget, kind: Gadget}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-validations:
        - rule: "self.metadata.name.startsWith('g-')"
          message: gadget names start with g-
        properties:
          spec:
            type: object
            x-kubernetes-validations:
            - rule: "self.minReplicas <= self.maxReplicas"
              messageExpression: "'minReplicas ' + string(self.minReplicas) + ' exceeds maxReplicas ' + string(self.maxReplicas)"
            - rule: "self.mode == oldSelf.mode"
              message: mode is immutable
              reason: FieldValueForbidden
              fieldPath: .mode
            properties:
              minReplicas: {type: integer}
              maxReplicas: {type: integer}
              mode: {type: string}
              memory:
                type: string
                x-kubernetes-validations:
                - rule: "quantity(self).isLessThan(quantity('1Gi'))"
"#;

#[test]
fn crd_validation_rules_with_kubectl() {
    let s = start();
    // A rule that does not compile refuses the CRD.
    let bad = GADGETS.replace(
        "self.minReplicas <= self.maxReplicas",
        "self.minReplicas <=",
    );
    let o = s.kubectl_stdin(&["create", "-f", "-"], Some(&bad));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("spec.versions[0].schema.openAPIV3Schema.properties[spec].x-kubernetes-validations[0].rule: Invalid value: \"self.minReplicas <=\": compilation failed: ERROR: <input>:1:"),
        "{err}"
    );
    assert!(s
        .kubectl_stdin(&["create", "-f", "-"], Some(GADGETS))
        .status
        .success());
    s.ok(&[
        "wait",
        "--for",
        "condition=established",
        "crd/gadgets.example.com",
        "--timeout=20s",
    ]);
    let gadget = |name: &str, min: i64, max: i64, mode: &str| {
        format!("apiVersion: example.com/v1\nkind: Gadget\nmetadata: {{name: {name}}}\nspec: {{minReplicas: {min}, maxReplicas: {max}, mode: {mode}, memory: 512Mi}}\n")
    };
    let o = s.kubectl_stdin(&["apply", "-f", "-"], Some(&gadget("g-1", 3, 2, "a")));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(r#"The Gadget "g-1" is invalid: spec: Invalid value: "object": minReplicas 3 exceeds maxReplicas 2"#),
        "{err}"
    );
    let o = s.kubectl_stdin(&["apply", "-f", "-"], Some(&gadget("x-1", 1, 2, "a")));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(r#"The Gadget "x-1" is invalid: <nil>: Invalid value: "object": gadget names start with g-"#),
        "{err}"
    );
    let big = gadget("g-2", 1, 2, "a").replace("512Mi", "2Gi");
    let o = s.kubectl_stdin(&["apply", "-f", "-"], Some(&big));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(r#"spec.memory: Invalid value: "string": failed rule: quantity(self).isLessThan(quantity('1Gi'))"#),
        "{err}"
    );
    // Transition rules hold on update.
    assert!(s
        .kubectl_stdin(&["apply", "-f", "-"], Some(&gadget("g-1", 1, 2, "a")))
        .status
        .success());
    let err = s.fails(&[
        "patch",
        "gadget",
        "g-1",
        "--type=merge",
        "-p",
        r#"{"spec":{"mode":"b"}}"#,
    ]);
    assert!(
        err.contains(r#"The Gadget "g-1" is invalid: spec.mode: Forbidden: mode is immutable"#),
        "{err}"
    );
    s.ok(&[
        "patch",
        "gadget",
        "g-1",
        "--type=merge",
        "-p",
        r#"{"spec":{"maxReplicas":5}}"#,
    ]);
}
