//! The admission chain of one write request, in upstream's order: the built-in mutating
//! plugins (on creates), then the mutating webhooks; on the object about to be stored,
//! PodSecurity (creates), the validating webhooks, and ResourceQuota (creates) last.
//! NodeRestriction runs where the handlers call [`admit_builtin`]. It runs inside the
//! registry's write (`WriteAdmission`), so a retried write is admitted again.

use ferrokube_api::meta;
use parking_lot::Mutex;
use serde_json::Value;

use crate::admission::webhook::{self, Call};
use crate::admission::{Attributes, Operation};
use crate::errors::ApiResult;
use crate::handlers::rest::Request;
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
    /// The options object when the request carried one (a delete's DeleteOptions).
    options: Option<Value>,
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
            options: None,
            warnings: Mutex::new(Vec::new()),
        }
    }

    /// Replaces the options the webhooks are shown (a delete's DeleteOptions).
    pub fn with_options(mut self, options: Value) -> Self {
        self.options = Some(options);
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
            options: self.options.clone().unwrap_or_else(|| {
                let manager = self.req.query.get("fieldManager");
                webhook::options(self.options_kind, self.dry_run, manager)
            }),
        }
    }

    async fn run_mutating(&self, obj: &mut Value, old: Option<&Value>) -> ApiResult<()> {
        let operation = if old.is_some() {
            Operation::Update
        } else {
            Operation::Create
        };
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
        let operation = if old.is_some() {
            Operation::Update
        } else {
            Operation::Create
        };
        let admission = &self.req.security.admission;
        let a = self.attributes(operation, Some(obj), old);
        let pod_security = admission.check_pod_security(self.registry, &a, obj).await?;
        self.warnings.lock().extend(pod_security);
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

    /// A delete's admission: NodeRestriction, then the webhooks (with the stored object
    /// as oldObject).
    pub async fn delete(&self, current: &Value) -> ApiResult<()> {
        admit_builtin(
            self.req,
            self.target,
            Operation::Delete,
            None,
            Some(current),
        )?;
        let admission = &self.req.security.admission;
        if let Some(hooks) = admission.webhooks() {
            let name = self.name(Some(current)).to_string();
            let call = self.call(Operation::Delete, &name);
            let warnings = hooks.validate(&call, None, Some(current)).await?;
            self.warnings.lock().extend(warnings);
        }
        Ok(())
    }

    /// Whether a delete needs the stored object for admission.
    pub fn delete_needs_object(req: &Request<'_>) -> bool {
        let admission = &req.security.admission;
        !admission.is_empty() || admission.webhooks().is_some()
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

/// The built-in validating plugins that need no I/O (NodeRestriction) on a write.
pub fn admit_builtin(
    req: &Request<'_>,
    target: &Target<'_>,
    operation: Operation,
    object: Option<&Value>,
    old: Option<&Value>,
) -> ApiResult<()> {
    let name = match req.info.name.as_str() {
        "" => object.and_then(meta::name).unwrap_or(""),
        n => n,
    };
    req.security.admission.validate(&Attributes {
        user: req.user,
        operation,
        group: target.info.group,
        resource: target.info.resource,
        subresource: &req.info.subresource,
        namespace: target.namespace.unwrap_or(""),
        name,
        object,
        old,
    })
}
