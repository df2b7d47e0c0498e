//! Checks the scenario's `[distributed]` section (README "Running bigger than one machine")
//! against the rest of the scenario, and applies `--workers N` to it.
//!
//! The section's types ([`super::worker_pods`]) only reject unknown keys; what the cluster would
//! refuse (a namespace that is no DNS label, a quantity it cannot parse, a toleration operator it
//! does not know) is checked in [`validate`], so the mistake is named with its line before
//! anything is created. This module reads the whole scenario, so it sits above the model.

use super::cluster::{is_dns_label, is_dns_subdomain};
use super::model::Scenario;
use super::problem::Problem;
use super::problem::problem;
use super::worker_pods::{DistributedSection, Toleration};

/// The most workers one run may have: each is polled once a second through the API server.
pub const MAX_WORKERS: u32 = 256;

/// `xiuload run --workers N` (and `render --workers N`): the scenario's `[distributed]` with
/// `workers = N`, or one with every default when it has none; checked as the file's would be.
pub fn apply_workers_flag(s: &mut Scenario, workers: u32) -> Result<(), WorkersFlagError> {
    match &mut s.distributed {
        Some(d) => d.workers = workers,
        None => s.distributed = Some(DistributedSection::with_workers(workers)),
    }
    let problems = validate(s);
    if problems.is_empty() {
        return Ok(());
    }
    Err(WorkersFlagError { workers, problems })
}

/// `--workers N` does not fit the scenario: what `[distributed]` with N workers would break.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkersFlagError {
    pub workers: u32,
    pub problems: Vec<Problem>,
}

impl std::error::Error for WorkersFlagError {}

impl std::fmt::Display for WorkersFlagError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "--workers {}: {}: {}", self.workers, p.field, p.message)?;
            if let Some(hint) = &p.hint {
                write!(f, " ({hint})")?;
            }
        }
        Ok(())
    }
}

/// Checks `[distributed]` against the rest of the scenario.
pub fn validate(s: &Scenario) -> Vec<Problem> {
    let Some(d) = &s.distributed else {
        return Vec::new();
    };
    let mut p = Vec::new();
    if !(1..=MAX_WORKERS).contains(&d.workers) {
        p.push(problem(
            "distributed.workers",
            format!("{} is outside 1..={MAX_WORKERS}", d.workers),
            None,
        ));
    }
    if s.target.local.is_some() {
        p.push(problem(
            "distributed",
            "worker pods cannot reach a xiu started on this machine ([target.local])",
            Some(
                "give the cluster's URLs in [target], or use `xiuload run --local-workers N` to split a local run",
            ),
        ));
    }
    if let Some(ns) = &d.namespace
        && !is_dns_label(ns)
    {
        p.push(problem(
            "distributed.namespace",
            format!("{ns:?} is not a valid namespace name"),
            Some("lowercase letters, digits and '-', at most 63 characters"),
        ));
    }
    if d.image.trim().is_empty() || d.image.contains(char::is_whitespace) {
        p.push(problem(
            "distributed.image",
            format!("{:?} is not an image reference", d.image),
            Some("e.g. \"registry.example.org/xiuload:0.1.0\""),
        ));
    }
    for (kind, list) in [
        ("requests", &d.resources.requests),
        ("limits", &d.resources.limits),
    ] {
        for (name, quantity) in list {
            let field = format!("distributed.resources.{kind}.{name}");
            if !is_label_key(name) {
                p.push(problem(
                    field.clone(),
                    format!("{name:?} is not a resource name"),
                    Some("e.g. cpu, memory, ephemeral-storage"),
                ));
            }
            if !is_quantity(quantity) {
                p.push(problem(
                    field,
                    format!("{quantity:?} is not a Kubernetes quantity"),
                    Some("e.g. \"500m\" or \"2\" for CPU, \"1Gi\" for memory"),
                ));
            }
        }
    }
    for (name, request) in &d.resources.requests {
        let limit = d.resources.limits.get(name);
        if let (Some(r), Some(l)) = (
            super::quantity::parse(request),
            limit.and_then(|l| super::quantity::parse(l)),
        ) && r > l
        {
            p.push(problem(
                format!("distributed.resources.requests.{name}"),
                format!(
                    "the request {request} is above the limit {}",
                    limit.map_or("", String::as_str)
                ),
                None,
            ));
        }
    }
    for key in d.node_selector.keys() {
        if !is_label_key(key) {
            p.push(problem(
                format!("distributed.node_selector.{key}"),
                format!("{key:?} is not a label key"),
                Some("e.g. \"node.kubernetes.io/instance-type\""),
            ));
        }
    }
    for (i, t) in d.tolerations.iter().enumerate() {
        check_toleration(&format!("distributed.tolerations[{i}]"), t, &mut p);
    }
    if d.spread.enabled {
        if !is_label_key(&d.spread.topology_key) {
            p.push(problem(
                "distributed.spread.topology_key",
                format!("{:?} is not a label key", d.spread.topology_key),
                Some("kubernetes.io/hostname or topology.kubernetes.io/zone"),
            ));
        }
        if d.spread.max_skew < 1 {
            p.push(problem(
                "distributed.spread.max_skew",
                "must be at least 1",
                None,
            ));
        }
    }
    if let Some(sa) = &d.service_account
        && !is_dns_subdomain(sa)
    {
        p.push(problem(
            "distributed.service_account",
            format!("{sa:?} is not a valid service account name"),
            None,
        ));
    }
    if d.schedule_timeout.0.as_secs() < 1 {
        p.push(problem(
            "distributed.schedule_timeout",
            "must be at least 1s",
            Some("images are pulled and media prepared in this time: \"5m\" is usual"),
        ));
    }
    if d.port == 0 {
        p.push(problem(
            "distributed.port",
            "must be a port number (1..=65535)",
            None,
        ));
    }
    if let Some(secret) = &d.publish_token_secret {
        if !is_dns_subdomain(&secret.name) {
            p.push(problem(
                "distributed.publish_token_secret.name",
                format!("{:?} is not a valid Secret name", secret.name),
                None,
            ));
        }
        if secret.key.is_empty() {
            p.push(problem(
                "distributed.publish_token_secret.key",
                "must name a key of the Secret",
                None,
            ));
        }
        if s.target.publish_token_env.is_none() {
            p.push(problem(
                "distributed.publish_token_secret",
                "no [target].publish_token_env names the variable it would fill",
                Some("add publish_token_env = \"XIU_PUBLISH_TOKEN\" under [target]"),
            ));
        }
    }
    p
}

fn check_toleration(at: &str, t: &Toleration, p: &mut Vec<Problem>) {
    match t.operator.as_str() {
        "Equal" => {
            if t.key.is_none() {
                p.push(problem(
                    format!("{at}.key"),
                    "operator Equal needs a key",
                    Some("operator = \"Exists\" without a key tolerates every taint"),
                ));
            }
        }
        "Exists" => {
            if t.value.is_some() {
                p.push(problem(
                    format!("{at}.value"),
                    "operator Exists takes no value",
                    None,
                ));
            }
        }
        other => p.push(problem(
            format!("{at}.operator"),
            format!("{other:?} is not a toleration operator"),
            Some("\"Equal\" or \"Exists\""),
        )),
    }
    if let Some(key) = &t.key
        && !is_label_key(key)
    {
        p.push(problem(
            format!("{at}.key"),
            format!("{key:?} is not a taint key"),
            None,
        ));
    }
    match t.effect.as_deref() {
        None | Some("NoSchedule" | "PreferNoSchedule" | "NoExecute") => {}
        Some(other) => p.push(problem(
            format!("{at}.effect"),
            format!("{other:?} is not a taint effect"),
            Some("\"NoSchedule\", \"PreferNoSchedule\" or \"NoExecute\""),
        )),
    }
    if t.toleration_seconds.is_some() && t.effect.as_deref() != Some("NoExecute") {
        p.push(problem(
            format!("{at}.toleration_seconds"),
            "only a NoExecute toleration has seconds",
            None,
        ));
    }
}

/// A quantity the API server parses: a number with an optional suffix, never a percentage.
fn is_quantity(q: &str) -> bool {
    !q.contains('%')
        && q.trim() == q
        && super::quantity::parse(q).is_some_and(|v| v.is_finite() && v >= 0.0)
}

/// `[prefix/]name`: a DNS subdomain prefix, a name of at most 63 alphanumerics, `-`, `_`, `.`,
/// starting and ending alphanumeric.
fn is_label_key(key: &str) -> bool {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    let name_ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    name_ok && prefix.is_none_or(is_dns_subdomain)
}

#[cfg(test)]
mod tests {
    use crate::scenario::{Located, parse};
    use std::path::Path;

    const BASE: &str = r#"[run]
duration = "10s"
[target]
flv_base = "http://127.0.0.1:8081"
rtmp_publish = "rtmp://127.0.0.1:1935"
[[publishers]]
name = "cams"
stream = "cam-{i}"
count = 2
[[players]]
name = "v"
protocol = "flv"
publishers = "cams"
count = 10
"#;

    fn problems(extra: &str) -> Vec<Located> {
        match parse(Path::new("s.toml"), &format!("{BASE}{extra}")) {
            Ok(_) => Vec::new(),
            Err(crate::scenario::LoadError::Invalid(v)) => v,
            Err(e) => panic!("{e}"),
        }
    }

    fn assert_problem(extra: &str, field: &str, needle: &str) {
        let found = problems(extra);
        let hit = found
            .iter()
            .find(|p| p.field == field)
            .unwrap_or_else(|| panic!("no problem at {field}: {found:?}"));
        assert!(hit.message.contains(needle), "{hit:?}");
        // The line is the one the field is on (or its section's), counted from the file's top.
        let base_lines = BASE.lines().count();
        assert!(hit.line > base_lines, "{hit:?} points into the base");
    }

    #[test]
    fn a_scenario_without_the_section_has_none() {
        assert!(
            parse(Path::new("s.toml"), BASE)
                .unwrap()
                .distributed
                .is_none()
        );
    }

    #[test]
    fn unknown_keys_are_named_with_their_line() {
        let found = problems("[distributed]\nworkers = 2\nreplicas = 3\n");
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].message.contains("replicas"), "{found:?}");
        assert_eq!(found[0].line, BASE.lines().count() + 3, "{found:?}");
    }

    #[test]
    fn each_bad_value_is_named() {
        assert_problem(
            "[distributed]\nworkers = 0\n",
            "distributed.workers",
            "outside",
        );
        assert_problem(
            "[distributed]\nworkers = 2\nnamespace = \"Load_Test\"\n",
            "distributed.namespace",
            "not a valid namespace",
        );
        assert_problem(
            "[distributed]\nworkers = 2\nimage = \"my image\"\n",
            "distributed.image",
            "not an image",
        );
        assert_problem(
            "[distributed]\nworkers = 2\nresources = { requests = { cpu = \"two\" } }\n",
            "distributed.resources.requests.cpu",
            "not a Kubernetes quantity",
        );
        assert_problem(
            "[distributed]\nworkers = 2\nresources = { requests = { memory = \"4Gi\" }, limits = { memory = \"2Gi\" } }\n",
            "distributed.resources.requests.memory",
            "above the limit",
        );
        assert_problem(
            "[distributed]\nworkers = 2\nnode_selector = { \"-bad\" = \"x\" }\n",
            "distributed.node_selector.-bad",
            "not a label key",
        );
        assert_problem(
            "[distributed]\nworkers = 2\ntolerations = [{ key = \"load\", operator = \"Is\" }]\n",
            "distributed.tolerations[0].operator",
            "not a toleration operator",
        );
        assert_problem(
            "[distributed]\nworkers = 2\ntolerations = [{ key = \"load\", effect = \"NoRun\" }]\n",
            "distributed.tolerations[0].effect",
            "not a taint effect",
        );
        assert_problem(
            "[distributed]\nworkers = 2\nspread = { max_skew = 0 }\n",
            "distributed.spread.max_skew",
            "at least 1",
        );
        assert_problem(
            "[distributed]\nworkers = 2\nschedule_timeout = \"0s\"\n",
            "distributed.schedule_timeout",
            "at least 1s",
        );
        assert_problem(
            "[distributed]\nworkers = 2\npublish_token_secret = { name = \"t\", key = \"token\" }\n",
            "distributed.publish_token_secret",
            "publish_token_env",
        );
    }

    #[test]
    fn a_local_target_cannot_be_reached_from_pods() {
        let text = "[run]\nduration = \"5s\"\n[target.local]\n[[publishers]]\nname = \"c\"\ncount = 1\n\n[distributed]\nworkers = 2\n";
        let err = parse(Path::new("s.toml"), text).unwrap_err().to_string();
        assert!(err.contains("s.toml:8:2: field `distributed`"), "{err}");
        assert!(err.contains("--local-workers"), "{err}");
    }

    #[test]
    fn the_workers_flag_overrides_or_adds_the_section() {
        let mut s = parse(
            Path::new("s.toml"),
            &format!("{BASE}[distributed]\nworkers = 4\nnamespace = \"load\"\n"),
        )
        .unwrap();
        super::apply_workers_flag(&mut s, 6).unwrap();
        let d = s.distributed.as_ref().unwrap();
        assert_eq!((d.workers, d.namespace.as_deref()), (6, Some("load")));
        let mut bare = parse(Path::new("s.toml"), BASE).unwrap();
        super::apply_workers_flag(&mut bare, 3).unwrap();
        assert_eq!(bare.distributed.unwrap().workers, 3);
        let mut local = parse(
            Path::new("s.toml"),
            "[run]\nduration = \"5s\"\n[target.local]\n[[publishers]]\nname = \"c\"\ncount = 1\n",
        )
        .unwrap();
        let err = super::apply_workers_flag(&mut local, 2)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("--workers 2: distributed: worker pods cannot reach"),
            "{err}"
        );
    }

    #[test]
    fn good_settings_pass() {
        let extra = r#"[distributed]
workers = 8
namespace = "xiuload"
image = "registry.example.org/xiuload:0.1.0"
resources = { requests = { cpu = "1500m", memory = "1Gi" }, limits = { memory = "2Gi" } }
node_selector = { "node.kubernetes.io/instance-type" = "c5.xlarge" }
tolerations = [{ key = "dedicated", value = "load", effect = "NoSchedule" }, { operator = "Exists", effect = "NoExecute", toleration_seconds = 60 }]
spread = { topology_key = "topology.kubernetes.io/zone", when_unsatisfiable = "do_not_schedule" }
service_account = "xiuload-worker"
schedule_timeout = "2m"
port = 9471
"#;
        assert_eq!(problems(extra), Vec::new());
    }
}
