//! The scheduling framework's vocabulary (`pkg/scheduler/framework/interface.go`,
//! `cycle_state.go`) and the v1 default profile (`pkg/scheduler/apis/config/v1/
//! default_plugins.go`): status codes, per-cycle plugin state, the plugin set
//! with its order and score weights.
//!
//! The default plugins are compiled in and dispatched by [`PluginName`] rather
//! than through trait objects: the set is closed, and static dispatch keeps the
//! per-node filter loop cheap.

use std::borrow::Cow;

use crate::plugins::{interpodaffinity, podtopologyspread};

/// `framework.MaxNodeScore`.
pub const MAX_NODE_SCORE: i64 = 100;

/// A status code (`framework.Code`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// The pod does not fit the node, but might after preemption.
    Unschedulable,
    /// The pod does not fit the node and preemption would not help.
    UnschedulableAndUnresolvable,
    /// An internal error.
    Error,
}

/// A non-success plugin status (success is `None`/`Ok`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// The code.
    pub code: Code,
    /// The reasons, as aggregated into FitError messages.
    pub reasons: Vec<Cow<'static, str>>,
    /// The plugin that failed.
    pub plugin: PluginName,
}

impl Status {
    /// A status with one reason.
    pub fn new(code: Code, plugin: PluginName, reason: impl Into<Cow<'static, str>>) -> Self {
        Self {
            code,
            reasons: vec![reason.into()],
            plugin,
        }
    }

    /// `Status.Message()`: the reasons joined with ", ".
    pub fn message(&self) -> String {
        self.reasons.join(", ")
    }
}

/// The default plugins, by upstream name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PluginName {
    /// `NodeUnschedulable`.
    NodeUnschedulable,
    /// `NodeName`.
    NodeName,
    /// `TaintToleration`.
    TaintToleration,
    /// `NodeAffinity`.
    NodeAffinity,
    /// `NodePorts`.
    NodePorts,
    /// `NodeResourcesFit`.
    NodeResourcesFit,
    /// `PodTopologySpread`.
    PodTopologySpread,
    /// `InterPodAffinity`.
    InterPodAffinity,
    /// `NodeResourcesBalancedAllocation`.
    NodeResourcesBalancedAllocation,
    /// `ImageLocality`.
    ImageLocality,
    /// `DefaultPreemption`.
    DefaultPreemption,
}

impl PluginName {
    /// The upstream name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NodeUnschedulable => "NodeUnschedulable",
            Self::NodeName => "NodeName",
            Self::TaintToleration => "TaintToleration",
            Self::NodeAffinity => "NodeAffinity",
            Self::NodePorts => "NodePorts",
            Self::NodeResourcesFit => "NodeResourcesFit",
            Self::PodTopologySpread => "PodTopologySpread",
            Self::InterPodAffinity => "InterPodAffinity",
            Self::NodeResourcesBalancedAllocation => "NodeResourcesBalancedAllocation",
            Self::ImageLocality => "ImageLocality",
            Self::DefaultPreemption => "DefaultPreemption",
        }
    }

    /// Parses an upstream plugin name.
    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::NodeUnschedulable,
            Self::NodeName,
            Self::TaintToleration,
            Self::NodeAffinity,
            Self::NodePorts,
            Self::NodeResourcesFit,
            Self::PodTopologySpread,
            Self::InterPodAffinity,
            Self::NodeResourcesBalancedAllocation,
            Self::ImageLocality,
            Self::DefaultPreemption,
        ]
        .into_iter()
        .find(|p| p.as_str() == s)
    }
}

/// `NodeResourcesFit` scoring strategy (`scoringStrategy.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScoringStrategy {
    /// `LeastAllocated` (default): favour emptier nodes.
    LeastAllocated,
    /// `MostAllocated`: bin packing.
    MostAllocated,
}

/// A scheduling profile (`KubeSchedulerProfile`) with the plugins resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    /// `schedulerName`.
    pub scheduler_name: String,
    /// Filter plugins, in order.
    pub filters: Vec<PluginName>,
    /// Score plugins with their weights.
    pub scores: Vec<(PluginName, i64)>,
    /// Whether `DefaultPreemption` is enabled (PostFilter).
    pub preemption: bool,
    /// `percentageOfNodesToScore`; `None` or `Some(0)` is the adaptive default.
    pub percentage_of_nodes_to_score: Option<i32>,
    /// `NodeResourcesFit` scoring strategy.
    pub fit_strategy: ScoringStrategy,
    /// `PodTopologySpread` `defaultingType: System` (the default constraints).
    pub system_default_spread: bool,
    /// `InterPodAffinity` `hardPodAffinityWeight` (default 1).
    pub hard_pod_affinity_weight: i64,
}

impl Default for Profile {
    fn default() -> Self {
        use PluginName::*;
        Self {
            scheduler_name: "default-scheduler".to_owned(),
            filters: vec![
                NodeUnschedulable,
                NodeName,
                TaintToleration,
                NodeAffinity,
                NodePorts,
                NodeResourcesFit,
                PodTopologySpread,
                InterPodAffinity,
            ],
            scores: vec![
                (TaintToleration, 3),
                (NodeAffinity, 2),
                (NodeResourcesFit, 1),
                (PodTopologySpread, 2),
                (InterPodAffinity, 2),
                (NodeResourcesBalancedAllocation, 1),
                (ImageLocality, 1),
            ],
            preemption: true,
            percentage_of_nodes_to_score: None,
            fit_strategy: ScoringStrategy::LeastAllocated,
            system_default_spread: true,
            hard_pod_affinity_weight: 1,
        }
    }
}

impl Profile {
    /// Disables a plugin at every extension point (`plugins.<point>.disabled`).
    pub fn disable(&mut self, plugin: PluginName) {
        self.filters.retain(|p| *p != plugin);
        self.scores.retain(|(p, _)| *p != plugin);
        if plugin == PluginName::DefaultPreemption {
            self.preemption = false;
        }
    }

    /// Sets a score plugin's weight (adding it when absent); weight 0 disables it.
    pub fn set_weight(&mut self, plugin: PluginName, weight: i64) {
        self.scores.retain(|(p, _)| *p != plugin);
        if weight > 0 {
            self.scores.push((plugin, weight));
        }
    }
}

/// Per-cycle state computed by PreFilter and shared by Filter
/// (`framework.CycleState`), updated by `add_pod`/`remove_pod` during preemption.
#[derive(Debug, Clone, Default)]
pub struct CycleState {
    pub(crate) spread: Option<podtopologyspread::PreFilterState>,
    pub(crate) interpod: Option<interpodaffinity::PreFilterState>,
}
