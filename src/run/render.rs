//! `xiuload render`: the objects a distributed run creates, as YAML, without a cluster; and the
//! one place that turns a scenario into them (the coordinator creates the same).

use super::RunError;
use crate::k8s::job::{self, JobInput};
use crate::scenario::Scenario;
use crate::scenario::worker_pods::DistributedSection;
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
        planned: crate::scenario::plan::Plan::of(scenario).length,
        publish_token_env: scenario.target.publish_token_env.as_deref(),
        ca_file: ca.as_ref().map(|(p, pem)| (*p, pem.as_str())),
    };
    Ok((job::config_map(&input), job::job(&input)))
}

/// Why `xiuload render` printed nothing.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error(transparent)]
    Scenario(#[from] crate::scenario::LoadError),
    #[error("--workers: {0}")]
    Workers(String),
    #[error("{0}: no [distributed] section: nothing to render (add one, or give --workers N)")]
    NotDistributed(std::path::PathBuf),
    #[error(transparent)]
    Objects(RunError),
    #[error("cannot write YAML: {0}")]
    Yaml(String),
}

impl RenderError {
    pub fn blame(&self) -> crate::blame::Blame {
        match self {
            RenderError::Yaml(_) => crate::blame::Blame::Runtime,
            _ => crate::blame::Blame::Input,
        }
    }
}

/// The objects (YAML) of a run of the scenario at `path`, split as it says or over `workers`.
pub fn render(
    path: &Path,
    workers: Option<u32>,
    run_id: Option<String>,
) -> Result<String, RenderError> {
    let mut scenario = crate::scenario::load(path)?;
    if let Some(n) = workers {
        crate::scenario::distributed::apply_workers_flag(&mut scenario, n)
            .map_err(|e| RenderError::Workers(e.to_string()))?;
    }
    let Some(section) = scenario.distributed.clone() else {
        return Err(RenderError::NotDistributed(path.to_path_buf()));
    };
    let options = super::RunOptions {
        scenario_file: path.to_path_buf(),
        ..Default::default()
    };
    let run_id = run_id.unwrap_or_else(|| super::setup::identity(&scenario, &options).id);
    let namespace = section.namespace.as_deref();
    let (cm, job) =
        objects(&scenario, &section, path, &run_id, namespace).map_err(RenderError::Objects)?;
    job::to_yaml(&cm, &job).map_err(|e| RenderError::Yaml(e.to_string()))
}
