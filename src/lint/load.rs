//! Thin I/O: finds YAML files, reads them and splits multi-document YAML.
//! YAML crate: `serde_yaml_ng` (maintained fork of the archived serde_yaml,
//! same API: multi-document `Deserializer::from_str` and `Error::location`
//! for the line number that `LintError::Yaml` reports).

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Input the linter could not read at all (the CLI maps this to exit 2).
#[derive(Debug, thiserror::Error)]
pub enum LintError {
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}:{line}: YAML syntax error: {message}", path.display())]
    Yaml {
        path: PathBuf,
        /// 1-based; 0 when the parser gave no location.
        line: usize,
        message: String,
    },
}

/// One parsed YAML document and the file it came from.
#[derive(Debug, Clone)]
pub struct SourcedDoc {
    pub file: PathBuf,
    pub value: serde_json::Value,
}

pub fn load_paths(paths: &[PathBuf]) -> Result<Vec<SourcedDoc>, LintError> {
    let mut files = Vec::new();
    for p in paths {
        collect_files(p, &mut files)?;
    }
    let mut docs = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).map_err(|source| LintError::Io {
            path: f.clone(),
            source,
        })?;
        docs.extend(parse_yaml(&f, &text)?);
    }
    Ok(docs)
}

/// A path given explicitly is read whatever its extension; directories
/// contribute only `*.yaml`/`*.yml`, sorted so output order is stable.
fn collect_files(path: &Path, out: &mut Vec<PathBuf>) -> Result<(), LintError> {
    let io = |source| LintError::Io {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if !meta.is_dir() {
        out.push(path.to_path_buf());
        return Ok(());
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(io)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(io)?;
    entries.sort();
    for e in entries {
        if e.is_dir() {
            collect_files(&e, out)?;
        } else if matches!(
            e.extension().and_then(|x| x.to_str()),
            Some("yaml") | Some("yml")
        ) {
            out.push(e);
        }
    }
    Ok(())
}

/// Splits multi-document YAML; empty documents (`---` alone) are dropped.
pub fn parse_yaml(file: &Path, text: &str) -> Result<Vec<SourcedDoc>, LintError> {
    let mut docs = Vec::new();
    for de in serde_yaml_ng::Deserializer::from_str(text) {
        let value = serde_json::Value::deserialize(de).map_err(|e| LintError::Yaml {
            path: file.to_path_buf(),
            line: e.location().map(|l| l.line()).unwrap_or(0),
            message: e.to_string(),
        })?;
        if !value.is_null() {
            docs.push(SourcedDoc {
                file: file.to_path_buf(),
                value,
            });
        }
    }
    Ok(docs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_document_and_empty_docs() {
        let docs = parse_yaml(Path::new("x.yaml"), "a: 1\n---\n---\nb: 2\n").unwrap();
        assert_eq!(docs.len(), 2);
    }

    #[test]
    fn syntax_error_names_file_and_line() {
        let err = parse_yaml(Path::new("x.yaml"), "a: 1\nb: [\n  c: d\n").unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("x.yaml:"), "{text}");
        match err {
            LintError::Yaml { line, .. } => assert!(line >= 2, "line {line}"),
            _ => panic!("wrong error"),
        }
    }

    #[test]
    fn directories_are_searched_recursively_for_yaml_only() {
        let root = std::env::temp_dir().join(format!("xiuload-load-{}", std::process::id()));
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("a.yaml"), "kind: A\n---\nkind: B\n").unwrap();
        std::fs::write(root.join("sub/c.yml"), "kind: C\n").unwrap();
        std::fs::write(root.join("notes.txt"), "not: [yaml").unwrap();
        let docs = load_paths(std::slice::from_ref(&root)).unwrap();
        std::fs::remove_dir_all(&root).unwrap();
        let kinds: Vec<&str> = docs
            .iter()
            .filter_map(|d| d.value["kind"].as_str())
            .collect();
        assert_eq!(kinds, vec!["A", "B", "C"]);
    }

    #[test]
    fn missing_file_is_io_error() {
        let err = load_paths(&[PathBuf::from("/nonexistent/xiuload.yaml")]).unwrap_err();
        assert!(matches!(err, LintError::Io { .. }));
    }
}
