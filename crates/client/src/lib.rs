//! ferrokube-client: what ferrokube's components (controller-manager, scheduler,
//! kubelet, proxy) share on top of the kube-rs client — upstream's `k8s.io/client-go`
//! pieces every component wires the same way:
//!
//! - [`kubeconfig`]: `--kubeconfig` → a [`kube::Client`] with a `<component>/<version>`
//!   user agent and client-go's token-bucket rate limit (`--kube-api-qps`,
//!   `--kube-api-burst`, [`ratelimit`]); flags in [`ClientFlags`].
//! - [`leaderelection`]: client-go's `tools/leaderelection` on a
//!   `coordination.k8s.io/v1` Lease (`resourcelock/leaselock.go`), flags in
//!   [`LeaderElectionFlags`] (upstream's `--leader-elect*` names and defaults).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use ferrokube_client::{ClientFlags, LeaderElectionFlags, LeaderElector, Ended};
//! let client_flags = ClientFlags::default();
//! let le = LeaderElectionFlags::default();
//! let client = client_flags.client("kube-scheduler", "v1.33.0").await?;
//! let (_stop, shutdown) = tokio::sync::watch::channel(false);
//! let elector = LeaderElector::new(client, &le.leader_elect_resource_namespace,
//!     &le.leader_elect_resource_name, ferrokube_client::new_identity(), le.config())?;
//! match elector.run(shutdown, |mut leadership| async move {
//!     // run the controllers until leadership.stopped() resolves
//!     leadership.stopped().await;
//! }).await? {
//!     Ended::LostLeadership => { /* upstream exits the process here */ }
//!     Ended::Shutdown => {}
//! }
//! # Ok(()) }
//! ```

pub mod kubeconfig;
pub mod leaderelection;
pub mod ratelimit;

pub use kubeconfig::{user_agent, ClientConfig, ClientError, ClientFlags};
pub use leaderelection::{
    new_identity, Ended, HealthzAdaptor, LeaderElectionConfig, LeaderElectionError,
    LeaderElectionFlags, LeaderElectionRecord, LeaderElector, Leadership,
};
pub use ratelimit::{TokenBucket, TokenBucketLayer};
