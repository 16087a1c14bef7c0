#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::eval_with;
use ferrokube_cel::{compile, Activation, Env, EvalError, Value};
use serde_json::json;

fn deployment() -> serde_json::Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "prod-web",
            "namespace": "default",
            "labels": {"team": "platform", "app": "web"}
        },
        "spec": {
            "replicas": 3,
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "web",
                            "image": "registry.example/web:1.2",
                            "resources": {"limits": {"memory": "512Mi", "cpu": "500m"}}
                        },
                        {
                            "name": "sidecar",
                            "image": "registry.example/proxy:2.0",
                            "resources": {"limits": {"memory": "128Mi", "cpu": "100m"}}
                        }
                    ]
                }
            }
        }
    })
}

fn check(src: &str, expected: bool) {
    let vars = [
        ("object", deployment()),
        ("oldObject", serde_json::Value::Null),
        (
            "request",
            json!({"operation": "CREATE", "userInfo": {"username": "alice", "groups": ["dev"]}}),
        ),
    ];
    match eval_with(src, &vars) {
        Ok(v) => assert_eq!(v, Value::Bool(expected), "{src}"),
        Err(e) => panic!("{src}: {e}"),
    }
}

#[test]
fn admission_policy_expressions() {
    check("object.spec.replicas <= 5", true);
    check("object.spec.replicas > 5", false);
    check(
        "object.metadata.name.startsWith('prod-') && has(object.metadata.labels) && 'team' in object.metadata.labels",
        true,
    );
    check(
        "object.spec.template.spec.containers.all(c, c.image.startsWith('registry.example/'))",
        true,
    );
    check(
        "object.spec.template.spec.containers.exists(c, c.image.endsWith(':latest'))",
        false,
    );
    check(
        "!has(object.spec.hostNetwork) || object.spec.hostNetwork == false",
        true,
    );
    check(
        "object.metadata.?labels.?env.orValue('none') == 'none'",
        true,
    );
    check(
        "object.metadata.?labels.?team.orValue('none') == 'platform'",
        true,
    );
    check(
        "quantity(object.spec.template.spec.containers[0].resources.limits.memory).isLessThan(quantity('1Gi'))",
        true,
    );
    check(
        "object.spec.template.spec.containers.all(c, quantity(c.resources.limits.cpu).compareTo(quantity('1')) < 0)",
        true,
    );
    check(
        "request.operation == 'CREATE' && request.userInfo.username != 'system:admin'",
        true,
    );
    check("'dev' in request.userInfo.groups", true);
    check("oldObject == null", true);
    check(
        "object.spec.template.spec.containers.map(c, c.name).join(',') == 'web,sidecar'",
        true,
    );
    check(
        "size(object.spec.template.spec.containers.filter(c, c.name == 'web')) == 1",
        true,
    );
    check("object.metadata.labels.all(k, k.matches('^[a-z]+$'))", true);
    check(
        "object.metadata.name.size() <= 63 && object.metadata.name.matches('^[a-z0-9-]+$')",
        true,
    );
    check("type(object.spec.replicas) == int", true);
}

#[test]
fn missing_fields_raise_errors() {
    let vars = [("object", deployment())];
    let err = eval_with("object.spec.hostNetwork", &vars).unwrap_err();
    assert_eq!(err, "no such key: hostNetwork");
    let err = eval_with("object.spec.template.spec.containers[5].name", &vars).unwrap_err();
    assert_eq!(err, "index out of bounds: 5");
}

#[test]
fn crd_validation_rules_with_self() {
    let env = Env::with_variables(["self", "oldSelf"]);
    let program = compile("self.minReplicas <= self.maxReplicas", &env).unwrap();
    let mut act = Activation::new();
    act.bind(
        "self",
        Value::from(&json!({"minReplicas": 1, "maxReplicas": 3})),
    );
    assert_eq!(program.eval(&act).unwrap(), Value::Bool(true));
    act.bind(
        "self",
        Value::from(&json!({"minReplicas": 5, "maxReplicas": 3})),
    );
    assert_eq!(program.eval(&act).unwrap(), Value::Bool(false));

    let transition = compile("self == oldSelf", &env).unwrap();
    act.bind(
        "oldSelf",
        Value::from(&json!({"minReplicas": 5, "maxReplicas": 3})),
    );
    assert_eq!(transition.eval(&act).unwrap(), Value::Bool(true));

    let unbound = compile("oldSelf.x", &env).unwrap();
    let err = unbound.eval(&Activation::new()).unwrap_err();
    assert!(err.message.contains("no such attribute"), "{}", err.message);
}

#[test]
fn variables_namespace() {
    let env = Env::with_variables(["variables", "object"]);
    let mut act = Activation::new();
    act.bind_namespace(
        "variables",
        vec![
            ("foo".to_string(), Ok(Value::from("bar"))),
            ("count".to_string(), Ok(Value::Int(2))),
            (
                "broken".to_string(),
                Err(EvalError::new("division by zero")),
            ),
        ],
    );
    let eval = |src: &str| compile(src, &env).unwrap().eval(&act);
    assert_eq!(eval("variables.foo == 'bar'").unwrap(), Value::Bool(true));
    assert_eq!(eval("variables.count + 1").unwrap(), Value::Int(3));
    assert_eq!(
        eval("variables.broken").unwrap_err().message,
        "division by zero"
    );
    assert_eq!(
        eval("variables.missing").unwrap_err().message,
        "no such key: missing"
    );
    assert_eq!(eval("has(variables.foo)").unwrap(), Value::Bool(true));
    assert_eq!(eval("has(variables.nope)").unwrap(), Value::Bool(false));
    assert_eq!(eval("variables.?nope.orValue(1)").unwrap(), Value::Int(1));
    assert_eq!(
        eval("variables.broken == 1 || true").unwrap(),
        Value::Bool(true)
    );
    // Comprehension variables shadow the namespace.
    assert_eq!(
        eval("[{'foo': 'x'}].all(variables, variables.foo == 'x')").unwrap(),
        Value::Bool(true)
    );
}

#[test]
fn match_conditions() {
    let env = Env::with_variables(["object", "oldObject", "request", "authorizer"]);
    let program = compile(
        "!(request.resource.group == 'rbac.authorization.k8s.io' && request.resource.resource == 'clusterroles')",
        &env,
    )
    .unwrap();
    let mut act = Activation::new();
    act.bind(
        "request",
        Value::from(&json!({"resource": {"group": "", "version": "v1", "resource": "pods"}})),
    );
    assert_eq!(program.eval(&act).unwrap(), Value::Bool(true));
}

#[test]
fn json_round_trip() {
    let doc = json!({
        "a": [1, -2, 18446744073709551615u64, 1.5, "x", null, true],
        "b": {"c": {}}
    });
    let v = Value::from(&doc);
    assert_eq!(v.to_json().unwrap(), doc);
    assert_eq!(v.type_name(), "map");
    assert_eq!(
        Value::from(&json!(18446744073709551615u64)),
        Value::Uint(u64::MAX)
    );
    assert!(matches!(Value::from(&json!(5)), Value::Int(5)));
    assert!(matches!(Value::from(&json!(5.0)), Value::Double(_)));
    assert_eq!(Value::Double(f64::NAN).to_json(), None);
    assert_eq!(
        Value::Bytes(b"hi".to_vec().into()).to_json().unwrap(),
        json!("aGk=")
    );
    let program = compile("{'n': 1 + 1, 'l': [duration('90s')], 1: true}", &Env::new()).unwrap();
    assert_eq!(
        program.eval(&Activation::new()).unwrap().to_json().unwrap(),
        json!({"1": true, "l": ["90s"], "n": 2})
    );
}

#[test]
fn programs_are_shareable() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<ferrokube_cel::Program>();
    assert_send_sync::<Activation>();
    assert_send_sync::<Value>();
}
