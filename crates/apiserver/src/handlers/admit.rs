//! The admission chain of one write request, in upstream's order: the built-in mutating
//! plugins (on creates), then the mutating webhooks; on the object about to be stored,
//! PodSecurity (creates), the ValidatingAdmissionPolicies, the validating webhooks, and
//! ResourceQuota (creates) last.
//! NodeRestriction runs where the handlers call [`Chain::admit_builtin`]. It runs inside
//! the registry's write (`WriteAdmission`), so a retried write is admitted again.

use ferrokube_api::meta;
use parking_lot::Mutex;
use serde_json::{json, Value};

use crate::admission::webhook::{self, Call};
use crate::admission::{Attributes, Operation};
use crate::errors::ApiResult;
use crate::handlers::rest::Request;
use crate::registry::delete::DeleteOptions;
use crate::registry::store::{AdmissionFuture, WriteAdmission};
use crate::registry::{Registry, Target};

/// One request's admission.
pub struct Chain<'r> {
    req: &'r Request<'r>,
    target: &'r Target<'r>,
    registry: &'r Registry,
    dry_run: bool,
    /// CreateOptions, UpdateOptions, PatchOptions or DeleteOptions, for the webhooks.
    options_kind: &'static str,
    /// A delete's options, shown to the webhooks as sent.
    delete_options: Option<&'r DeleteOptions>,
    warnings: Mutex<Vec<String>>,
}

impl std::fmt::Debug for Chain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chain")
            .field("resource", &self.target.info.resource)
            .field("dry_run", &self.dry_run)
            .finish_non_exhaustive()
    }
}

impl<'r> Chain<'r> {
    pub fn new(
        req: &'r Request<'r>,
        target: &'r Target<'r>,
        registry: &'r Registry,
        dry_run: bool,
        options_kind: &'static str,
    ) -> Self {
        Chain {
            req,
            target,
            registry,
            dry_run,
            options_kind,
            delete_options: None,
            warnings: Mutex::new(Vec::new()),
        }
    }

    /// A delete's options, for the webhooks.
    pub fn with_delete_options(mut self, options: &'r DeleteOptions) -> Self {
        self.delete_options = Some(options);
        self
    }

    /// The warnings the chain collected.
    pub fn take_warnings(&self) -> Vec<String> {
        std::mem::take(&mut *self.warnings.lock())
    }

    fn name<'a>(&'a self, obj: Option<&'a Value>) -> &'a str {
        match self.req.info.name.as_str() {
            "" => obj.and_then(meta::name).unwrap_or(""),
            n => n,
        }
    }

    fn attributes<'a>(
        &'a self,
        operation: Operation,
        obj: Option<&'a Value>,
        old: Option<&'a Value>,
    ) -> Attributes<'a> {
        Attributes {
            user: self.req.user,
            operation,
            group: self.target.info.group,
            resource: self.target.info.resource,
            subresource: &self.req.info.subresource,
            namespace: self.target.namespace.unwrap_or(""),
            name: self.name(obj.or(old)),
            object: obj,
            old,
        }
    }

    fn call<'a>(&'a self, operation: Operation, name: &'a str) -> Call<'a> {
        Call {
            registry: self.registry,
            user: self.req.user,
            operation,
            info: self.target.info,
            subresource: &self.req.info.subresource,
            namespace: self.target.namespace.unwrap_or(""),
            name,
            dry_run: self.dry_run,
            authorizer: Some(self.req.security.authz.clone()),
            options: match self.delete_options {
                Some(o) => delete_options_json(o),
                None => {
                    let manager = self.req.query.get("fieldManager");
                    webhook::options(self.options_kind, self.dry_run, manager)
                }
            },
        }
    }

    async fn run_mutating(&self, obj: &mut Value, old: Option<&Value>) -> ApiResult<()> {
        let operation = Operation::of_write(old);
        let admission = &self.req.security.admission;
        if operation == Operation::Create {
            let name = self.name(Some(obj)).to_string();
            let mut a = self.attributes(operation, None, None);
            a.name = &name;
            admission.mutate(self.registry, &a, obj).await?;
        }
        let Some(hooks) = admission.webhooks().filter(|_| admission.mutating_webhook) else {
            return Ok(());
        };
        let strategy = self.target.strategy();
        let normalize = |o: &mut Value| strategy.normalize(o);
        normalize(obj);
        let name = self.name(Some(obj)).to_string();
        let call = self.call(operation, &name);
        let warnings = hooks.mutate(&call, obj, old, &normalize).await?;
        self.warnings.lock().extend(warnings);
        Ok(())
    }

    async fn run_validating(&self, obj: &Value, old: Option<&Value>) -> ApiResult<()> {
        let operation = Operation::of_write(old);
        let admission = &self.req.security.admission;
        let a = self.attributes(operation, Some(obj), old);
        let pod_security = admission.check_pod_security(self.registry, &a, obj).await?;
        self.warnings.lock().extend(pod_security);
        if let Some(policies) = admission.policies() {
            let call = self.call(operation, a.name);
            let warnings = policies.validate(&call, Some(obj), old).await?;
            self.warnings.lock().extend(warnings);
        }
        if let Some(hooks) = admission
            .webhooks()
            .filter(|_| admission.validating_webhook)
        {
            let call = self.call(operation, a.name);
            let warnings = hooks.validate(&call, Some(obj), old).await?;
            self.warnings.lock().extend(warnings);
        }
        admission.charge_quota(self.registry, &a, obj).await
    }

    /// A delete's admission: NodeRestriction, then the policies and the webhooks (with
    /// the stored object as oldObject).
    pub async fn delete(&self, current: &Value) -> ApiResult<()> {
        self.admit_builtin(Operation::Delete, None, Some(current))?;
        let admission = &self.req.security.admission;
        if let Some(policies) = admission.policies() {
            let name = self.name(Some(current)).to_string();
            let call = self.call(Operation::Delete, &name);
            let warnings = policies.validate(&call, None, Some(current)).await?;
            self.warnings.lock().extend(warnings);
        }
        if let Some(hooks) = admission.webhooks() {
            let name = self.name(Some(current)).to_string();
            let call = self.call(Operation::Delete, &name);
            let warnings = hooks.validate(&call, None, Some(current)).await?;
            self.warnings.lock().extend(warnings);
        }
        Ok(())
    }

    /// The built-in validating plugins that need no I/O (NodeRestriction) on a write.
    pub fn admit_builtin(
        &self,
        operation: Operation,
        object: Option<&Value>,
        old: Option<&Value>,
    ) -> ApiResult<()> {
        let attributes = self.attributes(operation, object, old);
        self.req.security.admission.validate(&attributes)
    }

    /// Whether a delete needs the stored object for admission.
    pub fn delete_needs_object(req: &Request<'_>) -> bool {
        let admission = &req.security.admission;
        !admission.is_empty() || admission.webhooks().is_some() || admission.policies().is_some()
    }
}

impl WriteAdmission for Chain<'_> {
    fn mutate<'a>(&'a self, obj: &'a mut Value, old: Option<&'a Value>) -> AdmissionFuture<'a> {
        Box::pin(self.run_mutating(obj, old))
    }
    fn validate<'a>(&'a self, obj: &'a Value, old: Option<&'a Value>) -> AdmissionFuture<'a> {
        Box::pin(self.run_validating(obj, old))
    }
}

/// DeleteOptions as the webhooks' review carries them.
fn delete_options_json(opts: &DeleteOptions) -> Value {
    let mut v = serde_json::to_value(opts).unwrap_or_else(|_| json!({}));
    if let Some(m) = v.as_object_mut() {
        m.insert("kind".into(), json!("DeleteOptions"));
        m.insert("apiVersion".into(), json!("meta.k8s.io/v1"));
    }
    v
}
