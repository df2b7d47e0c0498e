//! HPA what-if replay: the Kubernetes HorizontalPodAutoscaler algorithm as pure functions
//! ([`algorithm`]), HPA YAML parsing ([`spec`]), and replaying a run's recorded per-pod metrics
//! through alternative specs ([`replay`]). Used by `xiuload hpa-replay`.

pub mod algorithm;
pub mod replay;
pub mod spec;
