//! The REST verbs of a resource (upstream's `endpoints/handlers`: get, list, create,
//! update, patch, delete, deletecollection; watch in `watch.rs`), the `status` and
//! namespace `finalize` subresources, dry-run, and the response status codes upstream
//! uses (201 on create, 202 for a delete that has only begun).

use bytes::Bytes;
use ferrokube_api::meta;
use ferrokube_api::resources::{self, ResourceInfo};
use ferrokube_api::status::{Status, Subject};
use serde_json::{json, Value};

use crate::admission::Operation;
use crate::body::Response;
use crate::errors::{ApiError, ApiResult};
use crate::handlers::admit::Chain;
use crate::handlers::fieldmanager::{check_config_type, check_patch_options, FieldManager};
use crate::handlers::response::{self, shape_object};
use crate::handlers::table::to_table;
use crate::negotiation::{self, Output};
use crate::registry::delete::DeleteOptions;
use crate::registry::list::ListOptions;
use crate::registry::store::{Write, WriteAdmission};
use crate::registry::{Registry, Target};
use crate::request_info::{Query, RequestInfo};

/// Everything a resource request carries.
#[derive(Debug)]
pub struct Request<'a> {
    pub info: &'a RequestInfo,
    pub query: &'a Query,
    pub accept: Option<&'a str>,
    pub content_type: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    pub body: Bytes,
    /// The authenticated (or impersonated) user.
    pub user: &'a ferrokube_authz::UserInfo,
    pub security: &'a crate::auth::Security,
}

pub fn not_found_resource() -> Status {
    Status::failure(
        404,
        "NotFound",
        "the server could not find the requested resource",
    )
}

fn parse_body(info: &ResourceInfo, req: &Request<'_>) -> ApiResult<Value> {
    parse_body_as(info.kind, req)
}

/// A request body as JSON, YAML or protobuf, by its Content-Type.
fn parse_body_as(kind: &str, req: &Request<'_>) -> ApiResult<Value> {
    parse_body_strict(kind, req).map(|(v, _)| v)
}

/// [`parse_body_as`], and what a strict decoder finds beside unknown fields: duplicate
/// fields (JSON), a key given twice (YAML). Protobuf cannot say either.
fn parse_body_strict(kind: &str, req: &Request<'_>) -> ApiResult<(Value, Vec<String>)> {
    let unrecognized = |why: String| {
        Status::bad_request(format!(
            "the object provided is unrecognized (must be of type {kind}): {why}"
        ))
    };
    let (decoded, format) = match negotiation::input(req.content_type) {
        Some(negotiation::Input::Protobuf) => {
            return ferrokube_api::protobuf::decode_object(&req.body)
                .map(|v| (v, Vec::new()))
                .map_err(|e| unrecognized(e.to_string()).into());
        }
        Some(negotiation::Input::Json) => (
            crate::json_body::decode(&req.body).map_err(|e| e.to_string()),
            "json",
        ),
        Some(negotiation::Input::Yaml) => (
            crate::yaml::decode_checked(&req.body).map(|(v, dup)| (v, dup.into_iter().collect())),
            "yaml",
        ),
        None => {
            return Err(Status::unsupported_media_type(req.content_type.unwrap_or("")).into());
        }
    };
    let (v, strict) = decoded.map_err(|e| {
        unrecognized(format!(
            "couldn't get version/kind; {format} parse error: {e}"
        ))
    })?;
    if !v.is_object() {
        let what = if format == "json" {
            "a JSON object"
        } else {
            "a YAML mapping"
        };
        return Err(unrecognized(format!("expected {what}")).into());
    }
    Ok((v, strict))
}

/// The response form the client accepts (406 if none), and whether it is protobuf, which
/// built-in kinds have and custom resources do not.
fn negotiated(req: &Request<'_>, target: &Target<'_>) -> ApiResult<(Output, bool)> {
    negotiation::negotiate(req.accept, target.custom.is_none())
        .ok_or_else(|| Status::not_acceptable(req.accept.unwrap_or("")).into())
}

fn dry_run(q: &Query) -> ApiResult<bool> {
    match q.get("dryRun") {
        None | Some("") => Ok(false),
        Some("All") => Ok(true),
        Some(other) => Err(Status::bad_request(format!(
            "Invalid dryRun value {other:?}: valid values are \"All\""
        ))
        .into()),
    }
}

pub async fn handle(registry: &Registry, req: Request<'_>) -> Response {
    let ri = req.info;
    let custom = match resources::lookup(&ri.group, &ri.version, &ri.resource) {
        Some(_) => None,
        None => match registry.crds.lookup(&ri.group, &ri.version, &ri.resource) {
            Some(cr) => Some(cr),
            None => return response::status(&not_found_resource()),
        },
    };
    let Some(info) = resources::lookup(&ri.group, &ri.version, &ri.resource)
        .or_else(|| custom.as_ref().map(|c| c.info))
    else {
        return response::status(&not_found_resource());
    };
    let namespace = (info.namespaced && !ri.namespace.is_empty()).then_some(ri.namespace.as_str());
    // /api/v1/namespaces/{ns} addresses the namespace itself, not something inside it.
    let storage = crate::conversion::storage_for(info);
    let target = Target {
        info: storage.unwrap_or(info),
        namespace: if info.namespaced { namespace } else { None },
        custom: custom.as_deref(),
        served: storage.map(|_| info),
    };
    let deprecation: Vec<String> = target
        .custom
        .and_then(|c| c.deprecated.clone())
        .into_iter()
        .collect();
    let resp = match dispatch(registry, &req, info, &target).await {
        Ok(resp) => with_warnings(resp, &deprecation),
        Err(err) => response::status(&err.into_status(info.group, info.resource, &ri.name)),
    };
    if ri.verb != "watch" {
        match negotiation::negotiate(req.accept, custom.is_none()) {
            Some((Output::Yaml, _)) => return crate::yaml::response_as_yaml(resp),
            Some((_, true)) => return crate::protobuf::response_as_protobuf(resp),
            _ => {}
        }
    }
    resp
}

async fn dispatch(
    registry: &Registry,
    req: &Request<'_>,
    info: &'static ResourceInfo,
    target: &Target<'_>,
) -> ApiResult<Response> {
    let ri = req.info;
    let sub = ri.subresource.as_str();
    let verb = ri.verb.as_str();
    if info.namespaced && ri.namespace.is_empty() && !matches!(verb, "list" | "watch") {
        return Err(not_found_resource().into());
    }
    let subject = Subject {
        group: info.group,
        resource: info.resource,
        name: &ri.name,
    };
    if crate::auth::reviews::is_review(info.group, info.resource) && sub.is_empty() {
        if verb != "create" {
            return Err(Status::method_not_allowed(subject, verb).into());
        }
        let body = parse_body(info, req)?;
        let out = crate::auth::reviews::handle(
            req.security,
            registry,
            req.user,
            info.resource,
            &ri.namespace,
            body,
        )
        .await?;
        return Ok(response::json(201, &out));
    }
    let allowed = match sub {
        // PUT and PATCH address one object, never a collection.
        "" if matches!(verb, "update" | "patch") && ri.name.is_empty() => false,
        "" => info.supports(verb),
        "status" => {
            matches!(verb, "get" | "update" | "patch") && info.subresource("status").is_some()
        }
        "finalize" => verb == "update" && info.subresource("finalize").is_some(),
        "approval" | "ephemeralcontainers" | "resize" => {
            matches!(verb, "get" | "update" | "patch") && info.subresource(sub).is_some()
        }
        "token" if info.group.is_empty() && info.resource == "serviceaccounts" => {
            if verb != "create" {
                return Err(Status::method_not_allowed(subject, verb).into());
            }
            let body = parse_body(info, req).unwrap_or_else(|_| json!({}));
            let (out, warning) = crate::auth::tokens::token_request(
                req.security,
                registry,
                target.namespace.unwrap_or("default"),
                &ri.name,
                &body,
                dry_run(req.query)?,
            )
            .await?;
            let warnings: Vec<String> = warning.into_iter().collect();
            return Ok(with_warnings(response::json(201, &out), &warnings));
        }
        "binding" | "eviction" if info.group.is_empty() && info.resource == "pods" => {
            if verb != "create" {
                return Err(Status::method_not_allowed(subject, verb).into());
            }
            let body = parse_body_as(
                if sub == "binding" {
                    "Binding"
                } else {
                    "Eviction"
                },
                req,
            )?;
            let ns = target.namespace.unwrap_or("default");
            return if sub == "binding" {
                crate::handlers::pods::bind(registry, info, ns, &ri.name, &body).await
            } else {
                crate::handlers::pods::evict(registry, info, ns, &ri.name, &body).await
            };
        }
        "scale" if info.subresource("scale").is_some() => {
            if !matches!(verb, "get" | "update" | "patch") {
                return Err(Status::method_not_allowed(subject, verb).into());
            }
            return scale(registry, req, info, target).await;
        }
        _ => return Err(not_found_resource().into()),
    };
    if !allowed {
        return Err(Status::method_not_allowed(subject, verb).into());
    }
    if info.group.is_empty() && info.resource == "bindings" && verb == "create" {
        let body = parse_body_as("Binding", req)?;
        let pods = ferrokube_api::resources::lookup("", "v1", "pods")
            .ok_or_else(|| Status::internal("pods are not registered"))?;
        let name = body
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        return crate::handlers::pods::bind(
            registry,
            pods,
            target.namespace.unwrap_or("default"),
            &name,
            &body,
        )
        .await;
    }
    if info.group.is_empty() && info.resource == "componentstatuses" {
        let (out, _) = negotiated(req, target)?;
        let items = crate::handlers::componentstatus::all(registry).await;
        let deprecated = ["v1 ComponentStatus is deprecated in v1.19+".to_string()];
        if verb == "get" {
            let item = items
                .into_iter()
                .find(|cs| cs["metadata"]["name"] == json!(ri.name))
                .ok_or_else(|| Status::not_found(subject))?;
            let resp = match out {
                Output::Table(v) => response::json(
                    200,
                    &crate::handlers::componentstatus::table(std::slice::from_ref(&item), v),
                ),
                _ => response::json(200, &item),
            };
            return Ok(with_warnings(resp, &deprecated));
        }
        let resp = match out {
            Output::Table(v) => {
                response::json(200, &crate::handlers::componentstatus::table(&items, v))
            }
            _ => response::json(
                200,
                &json!({"kind": "ComponentStatusList", "apiVersion": "v1", "metadata": {}, "items": items}),
            ),
        };
        return Ok(with_warnings(resp, &deprecated));
    }
    let (out, protobuf) = negotiated(req, target)?;
    let subresource = (!sub.is_empty()).then_some(sub);
    match verb {
        "get" => {
            let obj = registry.get(target, &ri.name).await?;
            Ok(response::json(200, &shape_object(out, target, obj)))
        }
        "list" => {
            let opts = ListOptions::from_query(target, req.query)?;
            let converted = target.served.is_some()
                || target.custom.is_some_and(|c| c.served_versions.len() > 1);
            if out == Output::Json
                && !protobuf
                && opts.labels.is_empty()
                && opts.fields.is_empty()
                && !converted
            {
                return list_json_fast(registry, info, target, &opts).await;
            }
            let (mut items, rv, cont, remaining) = registry.list(target, &opts).await?;
            if let Some(cr) = target.custom {
                items.iter_mut().for_each(|i| cr.convert(i));
            }
            if let Some(served) = target.served {
                items
                    .iter_mut()
                    .for_each(|i| crate::conversion::to_served(served, i));
            }
            let mut list_meta = json!({"resourceVersion": rv.to_string()});
            if let Some(c) = cont {
                list_meta["continue"] = json!(c);
            }
            if let Some(r) = remaining {
                list_meta["remainingItemCount"] = json!(r);
            }
            let body = match out {
                Output::Table(v) => {
                    let include = req.query.get("includeObject") != Some("None");
                    to_table(target, &items, Some(list_meta), v, include)
                }
                Output::Metadata(v) => {
                    let items: Vec<Value> = items
                        .iter()
                        .map(|o| response::partial_metadata(o, v))
                        .collect();
                    json!({"kind": "PartialObjectMetadataList", "apiVersion": format!("meta.k8s.io/{v}"), "metadata": list_meta, "items": items})
                }
                Output::Json | Output::Yaml => {
                    json!({"kind": info.list_kind(), "apiVersion": info.api_version(), "metadata": list_meta, "items": items})
                }
            };
            Ok(response::json(200, &body))
        }
        "watch" => crate::handlers::watch::serve(registry, target, req.query, out, protobuf).await,
        "create" => {
            let mode = crate::schema::Mode::from_query(req.query.get("fieldValidation"))?;
            let manager =
                FieldManager::for_request(target, req.query, req.user_agent, "CreateOptions")?;
            let (mut obj, strict) = parse_body_strict(info.kind, req)?;
            let mut warnings = crate::schema::validate_for(target, &mut obj, mode, &strict)?;
            if info.group == "certificates.k8s.io" && info.resource == "certificatesigningrequests"
            {
                set_requestor(&mut obj, req.user);
            }
            let dry = dry_run(req.query)?;
            let chain = Chain::new(req, target, registry, dry, "CreateOptions");
            // Managed fields first, as upstream: what admission adds belongs to no manager.
            let mut obj = manager.track(target, None, None, obj);
            chain.mutate(&mut obj, None).await?;
            check_rbac_write(req, target, &obj, None)?;
            chain.admit_builtin(Operation::Create, Some(&obj), None)?;
            let created = registry
                .create_admitted(target, obj, dry, Some(&chain))
                .await?;
            warnings.extend(chain.take_warnings());
            Ok(with_warnings(
                response::json(201, &shape_object(out, target, created)),
                &warnings,
            ))
        }
        "update" => {
            let mode = crate::schema::Mode::from_query(req.query.get("fieldValidation"))?;
            let manager =
                FieldManager::for_request(target, req.query, req.user_agent, "UpdateOptions")?;
            let (mut desired, strict) = parse_body_strict(info.kind, req)?;
            let mut warnings = crate::schema::validate_for(target, &mut desired, mode, &strict)?;
            let dry = dry_run(req.query)?;
            let chain = Chain::new(req, target, registry, dry, "UpdateOptions");
            let write = Write::update(target, &ri.name, subresource, dry);
            let (obj, created) = registry
                .update_admitted(target, write, Some(&chain), |current| {
                    let next = manager.track(target, subresource, current, desired.clone());
                    check_rbac_write(req, target, &next, current)?;
                    check_csr_approval(req, subresource, current)?;
                    chain.admit_builtin(Operation::of_write(current), Some(&next), current)?;
                    Ok(next)
                })
                .await?;
            warnings.extend(chain.take_warnings());
            Ok(with_warnings(
                response::json(
                    if created { 201 } else { 200 },
                    &shape_object(out, target, obj),
                ),
                &warnings,
            ))
        }
        "patch" => {
            let mode = crate::schema::Mode::from_query(req.query.get("fieldValidation"))?;
            let kind = PatchKind::from_content_type(req.content_type)?;
            let force = check_patch_options(req.query, matches!(kind, PatchKind::Apply))?;
            let manager =
                FieldManager::for_request(target, req.query, req.user_agent, "PatchOptions")?;
            if matches!(kind, PatchKind::Apply) {
                return server_side_apply(registry, req, target, &manager, mode, force, out).await;
            }
            let patch = patch_body(req)?;
            let mut warnings = Vec::new();
            let dry = dry_run(req.query)?;
            let chain = Chain::new(req, target, registry, dry, "PatchOptions");
            let write = Write::update(target, &ri.name, subresource, dry);
            let (obj, _) = registry
                .update_admitted(target, write, Some(&chain), |current| {
                    let Some(current) = current else {
                        return Err(ferrokube_storage::StorageError::NotFound {
                            key: ri.name.clone(),
                        }
                        .into());
                    };
                    let mut view = current.clone();
                    if let Some(served) = target.served {
                        crate::conversion::to_served(served, &mut view);
                    }
                    let mut patched = kind.apply(info, &view, &patch)?;
                    warnings = crate::schema::validate_for(target, &mut patched, mode, &[])?;
                    let next = manager.track(target, subresource, Some(current), patched);
                    check_rbac_write(req, target, &next, Some(current))?;
                    check_csr_approval(req, subresource, Some(current))?;
                    chain.admit_builtin(Operation::Update, Some(&next), Some(current))?;
                    Ok(next)
                })
                .await?;
            warnings.extend(chain.take_warnings());
            Ok(with_warnings(
                response::json(200, &shape_object(out, target, obj)),
                &warnings,
            ))
        }
        "delete" => {
            let opts = delete_options(req)?;
            let dry = dry_run(req.query)? || opts.dry_run.iter().any(|d| d == "All");
            let chain =
                Chain::new(req, target, registry, dry, "DeleteOptions").with_delete_options(&opts);
            if Chain::delete_needs_object(req) {
                let current = registry.get(target, &ri.name).await?;
                chain.delete(&current).await?;
            }
            let (obj, gone) = registry.delete(target, &ri.name, &opts, dry).await?;
            if gone {
                let uid = meta::str_field(&obj, "uid").unwrap_or_default().to_string();
                let mut st = Status::success();
                st.details = Some(ferrokube_api::status::StatusDetails {
                    name: ri.name.clone(),
                    group: info.group.into(),
                    kind: info.resource.into(),
                    uid,
                    ..Default::default()
                });
                let mut body = serde_json::to_value(&st).map_err(Status::internal)?;
                if let Some(m) = body.as_object_mut() {
                    m.remove("code");
                }
                Ok(response::json(200, &body))
            } else {
                Ok(response::json(202, &shape_object(out, target, obj)))
            }
        }
        "deletecollection" => {
            let opts = delete_options(req)?;
            let dry = dry_run(req.query)?;
            let list_opts = ListOptions::from_query(target, req.query)?;
            let (items, rv, _, _) = registry
                .list(
                    target,
                    &ListOptions {
                        limit: 0,
                        continue_token: None,
                        ..list_opts
                    },
                )
                .await?;
            let mut deleted = Vec::new();
            let admitted = Chain::delete_needs_object(req);
            for item in items {
                let name = meta::name(&item).unwrap_or_default().to_string();
                let item_target = Target {
                    namespace: meta::namespace(&item).or(target.namespace),
                    ..*target
                };
                if admitted {
                    Chain::new(req, &item_target, registry, dry, "DeleteOptions")
                        .with_delete_options(&opts)
                        .delete(&item)
                        .await?;
                }
                match registry.delete(&item_target, &name, &opts, dry).await {
                    Ok((obj, _)) => deleted.push(shape_object(Output::Json, target, obj)),
                    Err(ApiError::Storage(ferrokube_storage::StorageError::NotFound {
                        ..
                    })) => {}
                    Err(e) => return Err(e),
                }
            }
            let body = json!({"kind": info.list_kind(), "apiVersion": info.api_version(), "metadata": {"resourceVersion": rv.to_string()}, "items": deleted});
            Ok(response::json(200, &body))
        }
        _ => Err(Status::method_not_allowed(subject, verb).into()),
    }
}

fn delete_options(req: &Request<'_>) -> ApiResult<DeleteOptions> {
    let mut opts: DeleteOptions = if req.body.iter().all(u8::is_ascii_whitespace) {
        DeleteOptions::default()
    } else if negotiation::input(req.content_type) == Some(negotiation::Input::Protobuf) {
        let v = ferrokube_api::protobuf::decode_object(&req.body)
            .map_err(|e| Status::bad_request(format!("invalid DeleteOptions: {e}")))?;
        serde_json::from_value(v)
            .map_err(|e| Status::bad_request(format!("invalid DeleteOptions: {e}")))?
    } else {
        serde_json::from_slice(&req.body)
            .map_err(|e| Status::bad_request(format!("invalid DeleteOptions: {e}")))?
    };
    if let Some(g) = req
        .query
        .get("gracePeriodSeconds")
        .filter(|g| !g.is_empty())
    {
        opts.grace_period_seconds = Some(
            g.parse()
                .map_err(|_| Status::bad_request(format!("invalid gracePeriodSeconds {g:?}")))?,
        );
    }
    if let Some(p) = req.query.get("propagationPolicy").filter(|p| !p.is_empty()) {
        opts.propagation_policy = Some(p.to_string());
    }
    if let Some(o) = req.query.get("orphanDependents").filter(|o| !o.is_empty()) {
        opts.orphan_dependents = Some(o == "true");
    }
    Ok(opts)
}

fn patch_body(req: &Request<'_>) -> ApiResult<Value> {
    serde_json::from_slice(&req.body)
        .map_err(|e| Status::bad_request(format!("error decoding patch: {e}")).into())
}

enum PatchKind {
    Json,
    Merge,
    Strategic,
    Apply,
}

impl PatchKind {
    fn from_content_type(ct: Option<&str>) -> ApiResult<PatchKind> {
        match ct.unwrap_or("").split(';').next().unwrap_or("").trim() {
            "application/json-patch+json" => Ok(PatchKind::Json),
            "application/merge-patch+json" => Ok(PatchKind::Merge),
            "application/strategic-merge-patch+json" => Ok(PatchKind::Strategic),
            "application/apply-patch+yaml" => Ok(PatchKind::Apply),
            other => Err(Status::failure(
                415,
                "UnsupportedMediaType",
                format!("the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json; got {other:?}"),
            )
            .into()),
        }
    }

    fn apply(&self, info: &ResourceInfo, current: &Value, patch: &Value) -> ApiResult<Value> {
        let patched = match self {
            // Server-side apply has its own path (`server_side_apply`).
            PatchKind::Apply => return Err(Status::internal("apply is not a patch engine").into()),
            PatchKind::Json => ferrokube_patch::apply_json_patch(current, patch)
                .map_err(|e| Status::failure(422, "Invalid", e.to_string()))?,
            PatchKind::Merge => ferrokube_patch::apply_merge_patch(current, patch),
            PatchKind::Strategic => {
                let schema = ferrokube_patch::schema_for(info.group, info.version, info.kind)
                    .ok_or_else(|| {
                        Status::failure(
                            415,
                            "UnsupportedMediaType",
                            "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
                        )
                    })?;
                ferrokube_patch::apply_strategic_merge_patch(current, patch, schema)
                    .map_err(|e| Status::failure(422, "Invalid", e.to_string()))?
            }
        };
        Ok(patched)
    }
}

/// RBAC's escalation prevention on writes of roles and bindings (the `policybased`
/// storages): the writer must hold the permissions it grants, or `escalate`/`bind`.
fn check_rbac_write(
    req: &Request<'_>,
    target: &Target<'_>,
    obj: &Value,
    old: Option<&Value>,
) -> ApiResult<()> {
    if !req.security.rbac_enabled || target.info.group != "rbac.authorization.k8s.io" {
        return Ok(());
    }
    let Some(kind) = ferrokube_authz::RbacKind::from_kind(target.info.kind) else {
        return Ok(());
    };
    req.security
        .rbac
        .check_write(
            req.security.authz.as_ref(),
            req.user,
            kind,
            target.namespace.unwrap_or(""),
            obj,
            old,
        )
        .map_err(|e| match e {
            ferrokube_authz::WriteCheckError::Forbidden {
                resource,
                ref name,
                ref reason,
            } => Status::forbidden(
                Subject {
                    group: "rbac.authorization.k8s.io",
                    resource,
                    name,
                },
                reason,
            )
            .into(),
            ferrokube_authz::WriteCheckError::BadRequest(m) => Status::bad_request(m).into(),
        })
}

/// A CSR records who asked for it (the CSR strategy's `PrepareForCreate`).
fn set_requestor(obj: &mut Value, user: &ferrokube_authz::UserInfo) {
    let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    spec.insert("username".into(), json!(user.name));
    spec.remove("uid");
    if !user.uid.is_empty() {
        spec.insert("uid".into(), json!(user.uid));
    }
    spec.insert("groups".into(), json!(user.groups));
    spec.remove("extra");
    if !user.extra.is_empty() {
        spec.insert("extra".into(), json!(user.extra));
    }
}

/// The CertificateApproval admission plugin: approving or denying a CSR through
/// `/approval` needs the `approve` verb on its signer (`signers` in certificates.k8s.io,
/// named by the signerName or its `<domain>/*`).
fn check_csr_approval(
    req: &Request<'_>,
    subresource: Option<&str>,
    current: Option<&Value>,
) -> ApiResult<()> {
    if subresource != Some("approval") {
        return Ok(());
    }
    let signer = current
        .and_then(|c| c.pointer("/spec/signerName"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let mut names = vec![signer.to_string()];
    if let Some((domain, _)) = signer.split_once('/') {
        names.push(format!("{domain}/*"));
    }
    for name in &names {
        let a = ferrokube_authz::Attributes::resource(
            req.user.clone(),
            "approve",
            "certificates.k8s.io",
            "signers",
            "",
            name,
        );
        if req.security.authz.authorize(&a).is_allowed() {
            return Ok(());
        }
    }
    Err(Status::forbidden(
        Subject {
            group: "certificates.k8s.io",
            resource: "certificatesigningrequests",
            name: &req.info.name,
        },
        &format!("user not permitted to approve requests with signerName {signer:?}"),
    )
    .into())
}

/// PATCH with `application/apply-patch+yaml`: the configuration is merged into the live
/// object (or creates it) with conflict detection.
async fn server_side_apply(
    registry: &Registry,
    req: &Request<'_>,
    target: &Target<'_>,
    manager: &FieldManager,
    mode: crate::schema::Mode,
    force: Option<bool>,
    out: Output,
) -> ApiResult<Response> {
    let ri = req.info;
    let (mut config, duplicate) = crate::yaml::decode_checked(&req.body)
        .map_err(|e| Status::bad_request(format!("error decoding YAML: {e}")))?;
    // A key given twice, as upstream's applyPatcher checks it: 400 under Strict, a
    // warning under Warn.
    let mut strict_warnings = Vec::new();
    if let Some(dup) = duplicate {
        match mode {
            crate::schema::Mode::Strict => {
                return Err(
                    Status::bad_request(format!("error strict decoding YAML: {dup}")).into(),
                )
            }
            crate::schema::Mode::Warn => strict_warnings.push(dup),
            crate::schema::Mode::Ignore => {}
        }
    }
    if !config.is_object() {
        return Err(Status::bad_request(
            "error decoding YAML: the applied configuration must be an object",
        )
        .into());
    }
    check_config_type(target, &config, &ri.name)?;
    crate::handlers::fieldmanager::check_config_fields(target, &config, &ri.name)?;
    // Unknown fields and wrong types are reported as for any body (and dropped).
    let mut warnings = crate::schema::validate_for(target, &mut config, mode, &[])?;
    warnings.extend(strict_warnings);
    let subresource = (!ri.subresource.is_empty()).then_some(ri.subresource.as_str());
    let dry = dry_run(req.query)?;
    let chain = Chain::new(req, target, registry, dry, "PatchOptions");
    let write = Write {
        name: &ri.name,
        subresource,
        dry_run: dry,
        allow_create: subresource.is_none(),
    };
    let (obj, created) = registry
        .update_admitted(target, write, Some(&chain), |current| {
            let mut applied = manager.apply(
                target,
                subresource,
                current,
                &config,
                force.unwrap_or(false),
                &ri.name,
            )?;
            if current.is_none() {
                // A new object: the namespace of the URL, as a create.
                meta::remove(&mut applied, "resourceVersion");
            }
            Ok(applied)
        })
        .await?;
    warnings.extend(chain.take_warnings());
    Ok(with_warnings(
        response::json(
            if created { 201 } else { 200 },
            &shape_object(out, target, obj),
        ),
        &warnings,
    ))
}

/// GET/PUT/PATCH of `<workload>/scale`.
async fn scale(
    registry: &Registry,
    req: &Request<'_>,
    info: &'static ResourceInfo,
    target: &Target<'_>,
) -> ApiResult<Response> {
    use crate::handlers::scale::{apply_scale_of, to_scale_of};
    let custom = target.custom.and_then(|c| c.scale.as_ref());
    let name = &req.info.name;
    if req.info.verb == "get" {
        let parent = registry.get(target, name).await?;
        return Ok(response::json(200, &to_scale_of(&parent, custom)));
    }
    let dry = dry_run(req.query)?;
    let desired_body = if req.info.verb == "update" {
        Some(parse_body_as("Scale", req)?)
    } else {
        None
    };
    let patch = if req.info.verb == "patch" {
        Some((
            PatchKind::from_content_type(req.content_type)?,
            patch_body(req)?,
        ))
    } else {
        None
    };
    let (obj, _) = registry
        .update_with(target, name, None, dry, |current| {
            let Some(current) = current else {
                return Err(ferrokube_storage::StorageError::NotFound { key: name.clone() }.into());
            };
            let view = to_scale_of(current, custom);
            let desired = match (&desired_body, &patch) {
                (Some(body), _) => body.clone(),
                (None, Some((kind, p))) => match kind {
                    // Scale is a built-in type: strategic merge behaves as merge here.
                    PatchKind::Strategic => ferrokube_patch::apply_merge_patch(&view, p),
                    other => other.apply(info, &view, p)?,
                },
                _ => view.clone(),
            };
            apply_scale_of(current, &desired, name, custom)
        })
        .await?;
    Ok(response::json(200, &to_scale_of(&obj, custom)))
}

/// A JSON list without selectors: items spliced from storage and concatenated.
async fn list_json_fast(
    registry: &Registry,
    info: &ResourceInfo,
    target: &Target<'_>,
    opts: &ListOptions,
) -> ApiResult<Response> {
    let (items, rv, cont, remaining) = registry.list_raw(target, opts).await?;
    let mut list_meta = json!({"resourceVersion": rv.to_string()});
    if let Some(c) = cont {
        list_meta["continue"] = json!(c);
    }
    if let Some(r) = remaining {
        list_meta["remainingItemCount"] = json!(r);
    }
    let head = format!(
        r#"{{"kind":{},"apiVersion":{},"metadata":{},"items":["#,
        json!(info.list_kind()),
        json!(info.api_version()),
        list_meta
    );
    let mut body =
        Vec::with_capacity(head.len() + items.iter().map(|i| i.len() + 1).sum::<usize>() + 2);
    body.extend_from_slice(head.as_bytes());
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(item);
    }
    body.extend_from_slice(b"]}");
    let mut resp = http::Response::new(crate::body::Body::full(body));
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}

/// Adds `Warning: 299 - "…"` headers, as upstream sends for fieldValidation=Warn.
fn with_warnings(mut resp: Response, warnings: &[String]) -> Response {
    for w in warnings {
        let value = format!("299 - {}", serde_json::Value::String(w.clone()));
        if let Ok(v) = http::HeaderValue::from_str(&value) {
            resp.headers_mut().append(http::header::WARNING, v);
        }
    }
    resp
}
