//! One file per family of rules; each exposes `check(&ObjectSet) -> Vec<Finding>`.

mod drain;
mod hpa;
mod ingress;
mod netpol;
mod podsec;
mod probes;
mod readiness;
mod refs;
mod rollout;
mod services;
mod topology;
mod xiu;
mod xiu_signals;

use super::finding::Finding;
use super::objects::ObjectSet;

pub fn run_all(set: &ObjectSet<'_>) -> Vec<Finding> {
    let checks: [fn(&ObjectSet<'_>) -> Vec<Finding>; 13] = [
        services::check,
        ingress::check,
        probes::check,
        hpa::check,
        rollout::check,
        readiness::check,
        xiu::check,
        xiu_signals::check,
        topology::check,
        refs::check,
        netpol::check,
        podsec::check,
        drain::check,
    ];
    checks.iter().flat_map(|c| c(set)).collect()
}
