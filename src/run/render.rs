//! `xiuload render`: the objects a distributed run creates, as YAML, without a cluster; and the
//! one place that turns a scenario into them (the coordinator creates the same).

use super::RunError;
use crate::exit;
use crate::k8s::job::{self, JobInput};
use crate::scenario::Scenario;
use crate::scenario::distributed::DistributedSection;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::ConfigMap;
use std::path::Path;

/// The ConfigMap and the Job of a run of `scenario` (read from `scenario_file`, whose text the
/// ConfigMap carries as it is).
pub(super) fn objects(
    scenario: &Scenario,
    section: &DistributedSection,
    scenario_file: &Path,
    run_id: &str,
    namespace: Option<&str>,
) -> Result<(ConfigMap, Job), RunError> {
    let read = |path: &Path| {
        std::fs::read_to_string(path)
            .map_err(|e| RunError::Setup(format!("{}: {e}", path.display())))
    };
    let text = read(scenario_file)?;
    let ca = match &scenario.target.tls.ca_file {
        Some(path) => Some((path.as_path(), read(path)?)),
        None => None,
    };
    let input = JobInput {
        run_id,
        namespace,
        section,
        scenario_text: &text,
        planned: super::planned_length(scenario),
        publish_token_env: scenario.target.publish_token_env.as_deref(),
        ca_file: ca.as_ref().map(|(p, pem)| (*p, pem.as_str())),
    };
    Ok((job::config_map(&input), job::job(&input)))
}

/// Prints the objects of a run of the scenario at `path`; exit 2 on a scenario without
/// `[distributed]` (and no `--workers`).
pub fn command(path: &Path, workers: Option<u32>, run_id: Option<String>) -> i32 {
    let mut scenario = match crate::scenario::load(path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return exit::BAD_INPUT;
        }
    };
    if let Some(n) = workers
        && let Err(e) = crate::scenario::distributed::apply_workers_flag(&mut scenario, n)
    {
        eprintln!("error: {e}");
        return exit::BAD_INPUT;
    }
    let Some(section) = scenario.distributed.clone() else {
        eprintln!(
            "error: {}: no [distributed] section: nothing to render (add one, or give --workers N)",
            path.display()
        );
        return exit::BAD_INPUT;
    };
    let options = super::RunOptions {
        scenario_file: path.to_path_buf(),
        ..Default::default()
    };
    let run_id = run_id.unwrap_or_else(|| super::setup::identity(&scenario, &options).id);
    let objects = objects(
        &scenario,
        &section,
        path,
        &run_id,
        section.namespace.as_deref(),
    );
    match objects.map(|(cm, job)| job::to_yaml(&cm, &job)) {
        Ok(Ok(yaml)) => {
            crate::outln!("{}", yaml.trim_end());
            exit::OK
        }
        Ok(Err(e)) => {
            eprintln!("error: cannot write YAML: {e}");
            exit::RUNTIME_FAILURE
        }
        Err(e) => {
            eprintln!("error: {e}");
            exit::BAD_INPUT
        }
    }
}
