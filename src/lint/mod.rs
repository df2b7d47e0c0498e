//! `xiuload lint`: semantic checks over Kubernetes manifests that a schema
//! cannot make (cross-object references, rollout arithmetic, xiu's own config).
//!
//! Objects are handled as untyped `serde_json::Value`s on purpose: the linter
//! must keep going on manifests that are half wrong, and typed k8s-openapi
//! structs would reject a whole document over one bad field.

mod finding;
mod load;
mod objects;
mod roles;
mod rules;
mod skip;
mod xiu_config;

use std::path::PathBuf;

pub use finding::{Finding, Severity};
pub use load::{LintError, SourcedDoc, load_paths};

/// Reads every path (files, or directories searched recursively for
/// `*.yaml`/`*.yml`), parses all YAML documents and lints them as one set.
pub fn lint_paths(paths: &[PathBuf]) -> Result<Vec<Finding>, LintError> {
    Ok(lint_documents(load_paths(paths)?))
}

/// Pure: lints an already-parsed set of documents. `kind: List` items are
/// expanded; documents without `kind`/`metadata.name` are ignored.
pub fn lint_documents(docs: Vec<SourcedDoc>) -> Vec<Finding> {
    let set = objects::ObjectSet::new(&docs);
    let mut findings = skip::apply(&set, rules::run_all(&set));
    findings.sort_by(|a, b| {
        (&a.file, &a.object, a.rule, &a.message).cmp(&(&b.file, &b.object, b.rule, &b.message))
    });
    findings
}

#[cfg(test)]
pub(crate) mod test_support {
    use super::*;

    /// Parses inline multi-document YAML as if it came from `test.yaml`.
    pub fn lint_yaml(yaml: &str) -> Vec<Finding> {
        let docs = load::parse_yaml(std::path::Path::new("test.yaml"), yaml).expect("valid yaml");
        lint_documents(docs)
    }

    pub fn rules_of(findings: &[Finding]) -> Vec<&'static str> {
        findings.iter().map(|f| f.rule).collect()
    }

    pub fn has(yaml: &str, rule: &str) -> bool {
        lint_yaml(yaml).iter().any(|f| f.rule == rule)
    }
}
