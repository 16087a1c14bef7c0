//! The Lease lock: client-go's `tools/leaderelection/resourcelock/leaselock.go`.
//!
//! The lock keeps the Lease it last read or wrote; [`LeaseLock::update`] PUTs that
//! object with its `resourceVersion`, so a concurrent writer makes the update fail with
//! 409 Conflict (optimistic concurrency) instead of being overwritten.

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};

/// client-go's `resourcelock.LeaderElectionRecord`: what the elector reads and writes,
/// mapped onto a Lease's spec.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LeaderElectionRecord {
    /// `spec.holderIdentity` (empty: released).
    pub holder_identity: String,
    /// `spec.leaseDurationSeconds`.
    pub lease_duration_seconds: i32,
    /// `spec.acquireTime`.
    pub acquire_time: Option<Timestamp>,
    /// `spec.renewTime`.
    pub renew_time: Option<Timestamp>,
    /// `spec.leaseTransitions`.
    pub leader_transitions: i32,
}

impl LeaderElectionRecord {
    /// `LeaseSpecToLeaderElectionRecord`.
    pub fn from_spec(spec: &LeaseSpec) -> LeaderElectionRecord {
        LeaderElectionRecord {
            holder_identity: spec.holder_identity.clone().unwrap_or_default(),
            lease_duration_seconds: spec.lease_duration_seconds.unwrap_or_default(),
            acquire_time: spec.acquire_time.as_ref().map(|t| t.0),
            renew_time: spec.renew_time.as_ref().map(|t| t.0),
            leader_transitions: spec.lease_transitions.unwrap_or_default(),
        }
    }

    /// `LeaderElectionRecordToLeaseSpec` (every field set, holderIdentity even when
    /// empty, as client-go writes it).
    pub fn to_spec(&self) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.holder_identity.clone()),
            lease_duration_seconds: Some(self.lease_duration_seconds),
            acquire_time: self.acquire_time.map(MicroTime),
            renew_time: self.renew_time.map(MicroTime),
            lease_transitions: Some(self.leader_transitions),
            ..LeaseSpec::default()
        }
    }
}

/// Why a lock operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// `Update` before any `Get`/`Create` succeeded.
    #[error("lease not initialized, call get or create first")]
    NotInitialized,
    /// The API call failed (409 Conflict when someone else wrote the Lease).
    #[error(transparent)]
    Api(#[from] kube::Error),
}

/// A Lease `<namespace>/<name>` used as a lock.
pub(crate) struct LeaseLock {
    api: Api<Lease>,
    name: String,
    lease: Option<Lease>,
}

impl LeaseLock {
    pub(crate) fn new(client: kube::Client, namespace: &str, name: &str) -> LeaseLock {
        LeaseLock {
            api: Api::namespaced(client, namespace),
            name: name.to_string(),
            lease: None,
        }
    }

    /// `Get`: `Ok(None)` when the Lease does not exist.
    pub(crate) async fn get(&mut self) -> Result<Option<LeaderElectionRecord>, LockError> {
        match self.api.get(&self.name).await {
            Ok(lease) => {
                let record =
                    LeaderElectionRecord::from_spec(&lease.spec.clone().unwrap_or_default());
                self.lease = Some(lease);
                Ok(Some(record))
            }
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// `Create`.
    pub(crate) async fn create(&mut self, record: &LeaderElectionRecord) -> Result<(), LockError> {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(record.to_spec()),
        };
        self.lease = Some(self.api.create(&PostParams::default(), &lease).await?);
        Ok(())
    }

    /// `Update`: PUT the last seen Lease (its resourceVersion) with `record` as spec.
    pub(crate) async fn update(&mut self, record: &LeaderElectionRecord) -> Result<(), LockError> {
        let mut lease = self.lease.clone().ok_or(LockError::NotInitialized)?;
        lease.spec = Some(record.to_spec());
        self.lease = Some(
            self.api
                .replace(&self.name, &PostParams::default(), &lease)
                .await?,
        );
        Ok(())
    }

    /// `Describe`: `<namespace>/<name>`.
    pub(crate) fn describe(&self) -> String {
        format!("{}/{}", self.api.namespace().unwrap_or_default(), self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trips_through_the_spec() {
        let now = Timestamp::now();
        let r = LeaderElectionRecord {
            holder_identity: "host_1234".into(),
            lease_duration_seconds: 15,
            acquire_time: Some(now),
            renew_time: Some(now),
            leader_transitions: 3,
        };
        assert_eq!(LeaderElectionRecord::from_spec(&r.to_spec()), r);
        // A released lease still writes holderIdentity "".
        let released = LeaderElectionRecord::default().to_spec();
        assert_eq!(released.holder_identity.as_deref(), Some(""));
    }
}
