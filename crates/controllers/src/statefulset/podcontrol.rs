//! What the StatefulSet controller does to pods and claims (upstream
//! `pkg/controller/statefulset/stateful_pod_control.go`): claims created before
//! their pod, pods created, updated to their identity and storage, and deleted, the
//! claims' owner references kept to the retention policy, and an Event for each.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::api::{DeleteParams, PostParams};
use kube::{Api, ResourceExt};

use super::utils;
use super::Controller;
use crate::error::{is_conflict, is_not_found, Error, ResultExt};
use crate::events::EventType;

/// Title case of a verb, as Go's `strings.Title`.
fn title(verb: &str) -> String {
    let mut c = verb.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

impl Controller {
    fn pods_api(&self, set: &StatefulSet) -> Api<Pod> {
        Api::namespaced(
            self.ctx.client.clone(),
            &set.namespace().unwrap_or_default(),
        )
    }

    fn claims_api(&self, set: &StatefulSet) -> Api<PersistentVolumeClaim> {
        Api::namespaced(
            self.ctx.client.clone(),
            &set.namespace().unwrap_or_default(),
        )
    }

    /// `recordPodEvent`.
    fn pod_event(&self, verb: &str, set: &StatefulSet, pod: &Pod, err: Option<&Error>) {
        let (pod_name, set_name) = (pod.name_any(), set.name_any());
        match err {
            None => self.ctx.recorder.event(
                set,
                EventType::Normal,
                &format!("Successful{}", title(verb)),
                format!("{verb} Pod {pod_name} in StatefulSet {set_name} successful"),
            ),
            Some(e) => self.ctx.recorder.event(
                set,
                EventType::Warning,
                &format!("Failed{}", title(verb)),
                format!("{verb} Pod {pod_name} in StatefulSet {set_name} failed error: {e}"),
            ),
        }
    }

    /// `recordClaimEvent`.
    fn claim_event(&self, set: &StatefulSet, pod: &Pod, claim: &str, err: Option<&kube::Error>) {
        let (pod_name, set_name) = (pod.name_any(), set.name_any());
        match err {
            None => self.ctx.recorder.event(
                set,
                EventType::Normal,
                "SuccessfulCreate",
                format!("create Claim {claim} Pod {pod_name} in StatefulSet {set_name} success"),
            ),
            Some(e) => self.ctx.recorder.event(
                set,
                EventType::Warning,
                "FailedCreate",
                format!(
                    "create Claim {claim} for Pod {pod_name} in StatefulSet {set_name} failed error: {e}"
                ),
            ),
        }
    }

    fn claim(&self, ns: &str, name: &str) -> Option<std::sync::Arc<PersistentVolumeClaim>> {
        self.claims.get(ns, name)
    }

    /// `createPersistentVolumeClaims`: every missing claim of the pod.
    pub(super) async fn create_claims(&self, set: &StatefulSet, pod: &Pod) -> Result<(), Error> {
        let ns = set.namespace().unwrap_or_default();
        let api = self.claims_api(set);
        let mut errors = Vec::new();
        for claim in utils::claims_for(set, pod).into_values() {
            let name = claim.name_any();
            match self.claim(&ns, &name) {
                Some(existing) => {
                    if existing.metadata.deletion_timestamp.is_some() {
                        errors.push(format!("pvc {name} is being deleted"));
                    }
                }
                None => match api.create(&PostParams::default(), &claim).await {
                    Ok(_) => self.claim_event(set, pod, &name, None),
                    Err(e) => {
                        if !is_conflict(&e) {
                            self.claim_event(set, pod, &name, Some(&e));
                        }
                        errors.push(format!("failed to create PVC {name}: {e}"));
                    }
                },
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(Error::Invalid {
                what: format!("claims of pod {}", pod.name_any()),
                reason: errors.join(", "),
            })
        }
    }

    /// `PodClaimIsStale`: under a scale-down Delete policy, a claim still owned by
    /// an earlier pod of the same name must be deleted (by the garbage collector)
    /// before the pod is recreated.
    pub(super) fn claim_is_stale(&self, set: &StatefulSet, pod: &Pod) -> bool {
        if !utils::retention_policy(set).0 {
            return false;
        }
        let ns = set.namespace().unwrap_or_default();
        utils::claims_for(set, pod).values().any(|c| {
            self.claim(&ns, &c.name_any())
                .is_some_and(|pvc| utils::has_stale_owner_ref(&pvc, pod))
        })
    }

    /// `ClaimsMatchRetentionPolicy`.
    pub(super) fn claims_match_policy(&self, set: &StatefulSet, pod: &Pod) -> bool {
        let ns = set.namespace().unwrap_or_default();
        utils::claims_for(set, pod).values().all(|c| {
            self.claim(&ns, &c.name_any())
                .is_none_or(|pvc| utils::claim_owner_up_to_date(&pvc, set, pod))
        })
    }

    /// `UpdatePodClaimForRetentionPolicy`: rewrites the owner references of claims
    /// that do not follow the policy (PUT: the role grants `update`, not `patch`).
    pub(super) async fn update_claims_for_policy(
        &self,
        set: &StatefulSet,
        pod: &Pod,
    ) -> Result<(), Error> {
        let ns = set.namespace().unwrap_or_default();
        let api = self.claims_api(set);
        for c in utils::claims_for(set, pod).values() {
            let name = c.name_any();
            let Some(pvc) = self.claim(&ns, &name) else {
                continue;
            };
            if utils::has_unexpected_controller(&pvc, set, pod) {
                self.ctx.recorder.event(
                    set,
                    EventType::Warning,
                    "ConflictingController",
                    format!("PersistentVolumeClaim {name} has a conflicting OwnerReference that acts as a manging controller, the retention policy is ignored for this claim"),
                );
            }
            if utils::claim_owner_up_to_date(&pvc, set, pod) {
                continue;
            }
            let mut updated = (*pvc).clone();
            utils::update_claim_owner_refs(&mut updated, set, pod);
            api.replace(&name, &PostParams::default(), &updated)
                .await
                .action(format!(
                    "could not update claim {name} for delete policy ownerRefs"
                ))?;
        }
        Ok(())
    }

    /// `createMissingPersistentVolumeClaims` (a pending pod's claims).
    pub(super) async fn create_missing_claims(
        &self,
        set: &StatefulSet,
        pod: &Pod,
    ) -> Result<(), Error> {
        self.create_claims(set, pod).await?;
        if let Err(e) = self.update_claims_for_policy(set, pod).await {
            self.pod_event("update", set, pod, Some(&e));
            return Err(e);
        }
        Ok(())
    }

    /// `CreateStatefulPod`: claims first, then the pod.
    pub(super) async fn create_pod(&self, set: &StatefulSet, pod: &Pod) -> Result<(), Error> {
        if let Err(e) = self.create_claims(set, pod).await {
            self.pod_event("create", set, pod, Some(&e));
            return Err(e);
        }
        let created = match self.pods_api(set).create(&PostParams::default(), pod).await {
            Ok(p) => p,
            Err(e) if is_conflict(&e) => {
                return Err(e).action(format!("creating pod {}", pod.name_any()))
            }
            Err(e) => {
                let e = Error::Api {
                    action: format!("creating pod {}", pod.name_any()),
                    source: e,
                };
                self.pod_event("create", set, pod, Some(&e));
                return Err(e);
            }
        };
        if let Err(e) = self.update_claims_for_policy(set, &created).await {
            self.pod_event("update", set, pod, Some(&e));
            return Err(e);
        }
        self.pod_event("create", set, pod, None);
        Ok(())
    }

    /// `DeleteStatefulPod`.
    pub(super) async fn delete_pod(&self, set: &StatefulSet, pod: &Pod) -> Result<(), Error> {
        match self
            .pods_api(set)
            .delete(&pod.name_any(), &DeleteParams::default())
            .await
        {
            Ok(_) => {
                self.pod_event("delete", set, pod, None);
                Ok(())
            }
            Err(e) => {
                let not_found = is_not_found(&e);
                let e = Error::Api {
                    action: format!("deleting pod {}", pod.name_any()),
                    source: e,
                };
                self.pod_event("delete", set, pod, Some(&e));
                if not_found {
                    Ok(())
                } else {
                    Err(e)
                }
            }
        }
    }

    /// `UpdateStatefulPod`: restores identity and storage (creating missing claims)
    /// and the claims' retention references, retrying on conflicts.
    pub(super) async fn update_pod(&self, set: &StatefulSet, pod: &Pod) -> Result<(), Error> {
        let api = self.pods_api(set);
        let mut pod = pod.clone();
        let mut attempted = false;
        let mut result = Ok(());
        for _ in 0..5 {
            let mut consistent = true;
            if !utils::identity_matches(set, &pod) {
                utils::update_identity(set, &mut pod);
                consistent = false;
            }
            if !utils::storage_matches(set, &pod) {
                utils::update_storage(set, &mut pod);
                consistent = false;
                if let Err(e) = self.create_claims(set, &pod).await {
                    self.pod_event("update", set, &pod, Some(&e));
                    return Err(e);
                }
            }
            if !self.claims_match_policy(set, &pod) {
                if let Err(e) = self.update_claims_for_policy(set, &pod).await {
                    self.pod_event("update", set, &pod, Some(&e));
                    return Err(e);
                }
            }
            if consistent {
                result = Ok(());
                break;
            }
            attempted = true;
            match api
                .replace(&pod.name_any(), &PostParams::default(), &pod)
                .await
            {
                Ok(_) => {
                    result = Ok(());
                    break;
                }
                Err(e) if is_conflict(&e) => {
                    result = Err(e).action(format!("updating pod {}", pod.name_any()));
                    match api.get(&pod.name_any()).await {
                        Ok(fresh) => pod = fresh,
                        Err(e) => {
                            result = Err(e).action(format!("getting pod {}", pod.name_any()));
                            break;
                        }
                    }
                }
                Err(e) => {
                    result = Err(e).action(format!("updating pod {}", pod.name_any()));
                    break;
                }
            }
        }
        if attempted {
            self.pod_event("update", set, &pod, result.as_ref().err());
        }
        result
    }
}
