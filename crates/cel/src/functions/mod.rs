//! Function library: declarations for the checker and runtime dispatch.

pub(crate) mod authz;
pub(crate) mod format;
pub(crate) mod ip;
pub(crate) mod lists;
pub(crate) mod optional;
pub(crate) mod quantity;
pub(crate) mod regex;
pub(crate) mod sets;
pub(crate) mod standard;
pub(crate) mod strings;
pub(crate) mod time;
pub(crate) mod url;

use crate::error::EvalError;
use crate::value::Value;

/// Declaration of a function name: accepted argument counts as a global function and
/// as a member function (not counting the receiver).
#[derive(Debug)]
pub(crate) struct FnDecl {
    pub name: &'static str,
    pub global: &'static [usize],
    pub member: &'static [usize],
}

const fn decl(name: &'static str, global: &'static [usize], member: &'static [usize]) -> FnDecl {
    FnDecl {
        name,
        global,
        member,
    }
}

const NONE: &[usize] = &[];
const ZERO: &[usize] = &[0];
const ONE: &[usize] = &[1];
const TWO: &[usize] = &[2];
const ZERO_ONE: &[usize] = &[0, 1];
const ONE_TWO: &[usize] = &[1, 2];
const TWO_THREE: &[usize] = &[2, 3];

/// Every known function.
pub(crate) const DECLS: &[FnDecl] = &[
    // standard
    decl("size", ONE, ZERO),
    decl("type", ONE, NONE),
    decl("dyn", ONE, NONE),
    decl("int", ONE, NONE),
    decl("uint", ONE, NONE),
    decl("double", ONE, NONE),
    decl("string", ONE, NONE),
    decl("bytes", ONE, NONE),
    decl("bool", ONE, NONE),
    decl("duration", ONE, NONE),
    decl("timestamp", ONE, NONE),
    decl("contains", NONE, ONE),
    decl("startsWith", NONE, ONE),
    decl("endsWith", NONE, ONE),
    decl("matches", TWO, ONE),
    // time accessors
    decl("getFullYear", NONE, ZERO_ONE),
    decl("getMonth", NONE, ZERO_ONE),
    decl("getDayOfMonth", NONE, ZERO_ONE),
    decl("getDate", NONE, ZERO_ONE),
    decl("getDayOfWeek", NONE, ZERO_ONE),
    decl("getDayOfYear", NONE, ZERO_ONE),
    decl("getHours", NONE, ZERO_ONE),
    decl("getMinutes", NONE, ZERO_ONE),
    decl("getSeconds", NONE, ZERO_ONE),
    decl("getMilliseconds", NONE, ZERO_ONE),
    // strings extension
    decl("charAt", NONE, ONE),
    decl("indexOf", NONE, ONE_TWO),
    decl("lastIndexOf", NONE, ONE_TWO),
    decl("lowerAscii", NONE, ZERO),
    decl("upperAscii", NONE, ZERO),
    decl("replace", NONE, TWO_THREE),
    decl("split", NONE, ONE_TWO),
    decl("substring", NONE, ONE_TWO),
    decl("trim", NONE, ZERO),
    decl("join", NONE, ZERO_ONE),
    decl("reverse", NONE, ZERO),
    decl("strings.quote", ONE, NONE),
    decl("format", NONE, ONE),
    // lists
    decl("isSorted", NONE, ZERO),
    decl("sum", NONE, ZERO),
    decl("min", NONE, ZERO),
    decl("max", NONE, ZERO),
    decl("slice", NONE, TWO),
    decl("flatten", NONE, ZERO_ONE),
    decl("distinct", NONE, ZERO),
    decl("sort", NONE, ZERO),
    decl("lists.range", ONE, NONE),
    // regex
    decl("find", NONE, ONE),
    decl("findAll", NONE, ONE_TWO),
    // sets
    decl("sets.contains", TWO, NONE),
    decl("sets.equivalent", TWO, NONE),
    decl("sets.intersects", TWO, NONE),
    // optional
    decl("optional.of", ONE, NONE),
    decl("optional.none", &[0], NONE),
    decl("optional.ofNonZeroValue", ONE, NONE),
    decl("hasValue", NONE, ZERO),
    decl("value", NONE, ZERO),
    decl("orValue", NONE, ONE),
    decl("or", NONE, ONE),
    // quantity
    decl("quantity", ONE, NONE),
    decl("isQuantity", ONE, NONE),
    decl("isInteger", NONE, ZERO),
    decl("asInteger", NONE, ZERO),
    decl("asApproximateFloat", NONE, ZERO),
    decl("sign", NONE, ZERO),
    decl("add", NONE, ONE),
    decl("sub", NONE, ONE),
    decl("isGreaterThan", NONE, ONE),
    decl("isLessThan", NONE, ONE),
    decl("compareTo", NONE, ONE),
    // url
    decl("url", ONE, NONE),
    decl("isURL", ONE, NONE),
    decl("getScheme", NONE, ZERO),
    decl("getHost", NONE, ZERO),
    decl("getHostname", NONE, ZERO),
    decl("getPort", NONE, ZERO),
    decl("getEscapedPath", NONE, ZERO),
    decl("getQuery", NONE, ZERO),
    // ip / cidr
    decl("ip", ONE, ZERO),
    decl("isIP", ONE, NONE),
    decl("ip.isCanonical", ONE, NONE),
    decl("family", NONE, ZERO),
    decl("isUnspecified", NONE, ZERO),
    decl("isLoopback", NONE, ZERO),
    decl("isLinkLocalMulticast", NONE, ZERO),
    decl("isLinkLocalUnicast", NONE, ZERO),
    decl("isGlobalUnicast", NONE, ZERO),
    decl("cidr", ONE, NONE),
    decl("isCIDR", ONE, NONE),
    decl("containsIP", NONE, ONE),
    decl("containsCIDR", NONE, ONE),
    decl("masked", NONE, ZERO),
    decl("prefixLength", NONE, ZERO),
    // Kubernetes authorizer library (functions/authz.rs).
    decl("path", NONE, ONE),
    decl("group", NONE, ONE),
    decl("serviceAccount", NONE, TWO),
    decl("resource", NONE, ONE),
    decl("subresource", NONE, ONE),
    decl("namespace", NONE, ONE),
    decl("name", NONE, ONE),
    decl("check", NONE, ONE),
    decl("allowed", NONE, ZERO),
    decl("reason", NONE, ZERO),
    decl("errored", NONE, ZERO),
    decl("error", NONE, ZERO),
    decl("fieldSelector", NONE, ONE),
    decl("labelSelector", NONE, ONE),
];

/// Finds the declaration of a function name.
pub(crate) fn lookup(name: &str) -> Option<&'static FnDecl> {
    DECLS.iter().find(|d| d.name == name)
}

type Handler = fn(&str, &Value, &[Value]) -> Option<Result<Value, EvalError>>;
type GlobalHandler = fn(&str, &[Value]) -> Option<Result<Value, EvalError>>;

const MEMBER_HANDLERS: &[Handler] = &[
    standard::member,
    strings::member,
    format::member,
    lists::member,
    regex::member,
    optional::member,
    time::member,
    quantity::member,
    url::member,
    ip::member,
    authz::member,
];

const GLOBAL_HANDLERS: &[GlobalHandler] = &[
    standard::global,
    strings::global,
    lists::global,
    regex::global,
    sets::global,
    optional::global,
    quantity::global,
    url::global,
    ip::global,
];

/// Invokes a function with evaluated arguments.
pub(crate) fn call(name: &str, target: Option<&Value>, args: &[Value]) -> Result<Value, EvalError> {
    match target {
        Some(t) => {
            for h in MEMBER_HANDLERS {
                if let Some(r) = h(name, t, args) {
                    return r;
                }
            }
            let types: Vec<&str> = args.iter().map(Value::type_name).collect();
            Err(EvalError::new(format!(
                "no such overload: {}.{name}({})",
                t.type_name(),
                types.join(", ")
            )))
        }
        None => {
            for h in GLOBAL_HANDLERS {
                if let Some(r) = h(name, args) {
                    return r;
                }
            }
            let types: Vec<&str> = args.iter().map(Value::type_name).collect();
            Err(EvalError::new(format!(
                "no such overload: {name}({})",
                types.join(", ")
            )))
        }
    }
}

/// The summed sizes of a list's items (0 for anything else): what flattening,
/// formatting or joining it touches.
fn nested_size(v: Option<&Value>) -> u64 {
    match v {
        Some(Value::List(items)) => items
            .iter()
            .map(Value::cost_size)
            .fold(0, u64::saturating_add),
        _ => 0,
    }
}

/// The cost charged for a call, beyond the cost of evaluating its operands.
pub(crate) fn cost(name: &str, target: Option<&Value>, args: &[Value]) -> u64 {
    let size = |v: Option<&Value>| v.map_or(0, Value::cost_size);
    let total: u64 = size(target).saturating_add(
        args.iter()
            .map(Value::cost_size)
            .fold(0, u64::saturating_add),
    );
    match name {
        "size" | "type" | "dyn" | "hasValue" | "value" | "orValue" | "or" | "optional.of"
        | "optional.none" => 1,
        "distinct" => 1u64.saturating_add(size(target).saturating_mul(size(target)) / 10),
        "sets.contains" | "sets.equivalent" | "sets.intersects" => {
            1u64.saturating_add(size(args.first()).saturating_mul(size(args.get(1))) / 10)
        }
        "sort" | "isSorted" => {
            let n = size(target);
            let log = u64::from(64 - n.leading_zeros());
            1u64.saturating_add(n.saturating_mul(log) / 10)
        }
        "lists.range" => match args.first() {
            Some(Value::Int(n)) => 1u64.saturating_add(u64::try_from(*n).unwrap_or(0) / 10),
            _ => 1,
        },
        "flatten" => {
            let nested = nested_size(target);
            1u64.saturating_add(total.saturating_add(nested) / 10)
        }
        "format" => {
            let nested = nested_size(args.first());
            1u64.saturating_add(total.saturating_add(nested) / 10)
        }
        "replace" => {
            let n = size(target);
            let bound = n.saturating_add(n.saturating_add(1).saturating_mul(size(args.get(1))));
            1u64.saturating_add(bound.saturating_add(total) / 10)
        }
        "join" => {
            let nested = nested_size(target);
            let sep = size(args.first()).saturating_mul(size(target));
            1u64.saturating_add(nested.saturating_add(sep) / 10)
        }
        // An authorizer check asks the server's authorizers: charged as a large step
        // (upstream's authz library charges it heavily too), so a loop of checks hits
        // the budget long before it costs the server much.
        "check" => 1000,
        "matches" | "find" | "findAll" | "split" => {
            1u64.saturating_add(total.saturating_mul(2) / 10)
        }
        _ => 1u64.saturating_add(total / 10),
    }
}
