//! One file per family of rules; each exposes `check(&ObjectSet) -> Vec<Finding>`.

mod hpa;
mod ingress;
mod probes;
mod readiness;
mod rollout;
mod services;
mod xiu;
mod xiu_signals;

use super::finding::Finding;
use super::objects::ObjectSet;

pub fn run_all(set: &ObjectSet<'_>) -> Vec<Finding> {
    let checks: [fn(&ObjectSet<'_>) -> Vec<Finding>; 8] = [
        services::check,
        ingress::check,
        probes::check,
        hpa::check,
        rollout::check,
        readiness::check,
        xiu::check,
        xiu_signals::check,
    ];
    checks.iter().flat_map(|c| c(set)).collect()
}
