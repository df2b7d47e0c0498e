//! Reading a scenario file: TOML syntax and types (via serde), then semantic checks. Every error
//! names the file, line, column and field path, with a hint where one helps.

use super::model::Scenario;
use super::validate::{Problem, validate};
use std::fmt;
use std::path::{Path, PathBuf};
use toml::Spanned;
use toml::de::{DeTable, DeValue};

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{path}: cannot read scenario: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}", render_all(.0))]
    Invalid(Vec<Located>),
}

/// One problem found in a scenario file, with where it is.
#[derive(Debug, Clone, PartialEq)]
pub struct Located {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    /// Dotted path of the field, e.g. `players[1].ramp[0].target`; empty for syntax errors.
    pub field: String,
    pub message: String,
    pub hint: Option<String>,
}

impl fmt::Display for Located {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file.display(), self.line, self.column)?;
        if !self.field.is_empty() {
            write!(f, "field `{}`: ", self.field)?;
        }
        write!(f, "{}", self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

fn render_all(problems: &[Located]) -> String {
    problems
        .iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Reads and validates a scenario file.
pub fn load(path: &Path) -> Result<Scenario, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(path, &text)
}

/// Parses and validates scenario text; `path` is only used in messages.
pub fn parse(path: &Path, text: &str) -> Result<Scenario, LoadError> {
    let locate = |span: Option<std::ops::Range<usize>>, field: String, message: String, hint| {
        let (line, column) = line_col(text, span.map(|s| s.start).unwrap_or(0));
        Located {
            file: path.to_path_buf(),
            line,
            column,
            field,
            message,
            hint,
        }
    };

    let deserializer = toml::de::Deserializer::parse(text).map_err(|e| {
        LoadError::Invalid(vec![locate(
            e.span(),
            String::new(),
            first_line(e.message()),
            Some("this is a TOML syntax error; see https://toml.io for the syntax".into()),
        )])
    })?;
    let scenario: Scenario = serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let field = render_path(e.path());
        let inner = e.into_inner();
        let message = first_line(inner.message());
        let hint = hint_for_serde_message(&message);
        LoadError::Invalid(vec![locate(inner.span(), field, message, hint)])
    })?;

    let problems = validate(&scenario);
    if problems.is_empty() {
        return Ok(scenario);
    }
    // Semantic checks know the field path; the spanned document knows where that path is.
    let document = DeTable::parse(text).ok();
    let located = problems
        .into_iter()
        .map(
            |Problem {
                 field,
                 message,
                 hint,
             }| {
                let span = document.as_ref().and_then(|doc| span_of_path(doc, &field));
                locate(span, field, message, hint)
            },
        )
        .collect();
    Err(LoadError::Invalid(located))
}

fn first_line(message: &str) -> String {
    message.lines().next().unwrap_or("").trim().to_string()
}

fn render_path(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Unknown => {}
        }
    }
    out
}

fn hint_for_serde_message(message: &str) -> Option<String> {
    if message.starts_with("unknown field") {
        Some("check the spelling; README.md \"Scenario reference\" lists every key".into())
    } else if message.starts_with("missing field") {
        Some("this key is required here".into())
    } else if message.starts_with("unknown variant") {
        Some("use one of the values listed".into())
    } else if message.starts_with("invalid type") {
        Some("check the value's type: strings are quoted, numbers are not".into())
    } else {
        None
    }
}

/// 1-based line and column of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    (line, before[line_start..].chars().count() + 1)
}

/// Finds the span of `a.b[2].c` in the spanned document; falls back to the deepest parent found,
/// so a problem in a defaulted (absent) field points at its table.
fn span_of_path(doc: &Spanned<DeTable<'_>>, path: &str) -> Option<std::ops::Range<usize>> {
    let mut best = Some(doc.span());
    let mut current: Option<&DeValue<'_>> = None;
    let mut table: Option<&DeTable<'_>> = Some(doc.get_ref());
    for part in split_path(path) {
        match part {
            PathPart::Key(key) => {
                let Some(t) = table else { break };
                let Some((k, v)) = t.iter().find(|(k, _)| k.get_ref().as_ref() == key) else {
                    break;
                };
                best = Some(if v.get_ref().is_table() || v.get_ref().is_array() {
                    k.span()
                } else {
                    v.span()
                });
                current = Some(v.get_ref());
                table = v.get_ref().as_table();
            }
            PathPart::Index(i) => {
                let Some(array) = current.and_then(|c| c.as_array()) else {
                    break;
                };
                let Some(item) = array.get(i) else { break };
                best = Some(item.span());
                current = Some(item.get_ref());
                table = item.get_ref().as_table();
            }
        }
    }
    best
}

enum PathPart<'a> {
    Key(&'a str),
    Index(usize),
}

fn split_path(path: &str) -> Vec<PathPart<'_>> {
    let mut parts = Vec::new();
    for piece in path.split('.').filter(|p| !p.is_empty()) {
        let (key, rest) = piece.split_at(piece.find('[').unwrap_or(piece.len()));
        if !key.is_empty() {
            parts.push(PathPart::Key(key));
        }
        for index in rest.split('[').filter(|s| !s.is_empty()) {
            if let Ok(i) = index.trim_end_matches(']').parse() {
                parts.push(PathPart::Index(i));
            }
        }
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[run]
duration = "10s"

[target.local]

[[publishers]]
name = "cams"
count = 1

[[players]]
name = "viewers"
protocol = "flv"
publishers = "cams"
count = 2
"#;

    fn errors(text: &str) -> Vec<Located> {
        match parse(Path::new("bad.toml"), text) {
            Ok(_) => panic!("expected an error for:\n{text}"),
            Err(LoadError::Invalid(v)) => v,
            Err(other) => panic!("unexpected {other}"),
        }
    }

    fn one_error(text: &str) -> Located {
        let mut all = errors(text);
        assert_eq!(all.len(), 1, "{all:?}");
        all.remove(0)
    }

    #[test]
    fn minimal_scenario_loads_with_defaults() {
        let s = parse(Path::new("ok.toml"), MINIMAL).unwrap();
        assert_eq!(s.target.app, "live");
        assert_eq!(s.publishers[0].video.fps, 30);
        assert_eq!(s.players[0].count, Some(2));
    }

    #[test]
    fn syntax_error_points_at_line_and_column() {
        let e = one_error("[run]\nduration = \"10s\n");
        assert_eq!(e.file, PathBuf::from("bad.toml"));
        assert_eq!(e.line, 2);
        assert!(e.field.is_empty());
        assert!(e.hint.as_deref().unwrap().contains("TOML syntax"));
    }

    #[test]
    fn unknown_key_names_field_and_line() {
        let text = MINIMAL.replace("count = 2", "count = 2\nprotocl = \"hls\"");
        let e = one_error(&text);
        assert!(e.message.contains("unknown field `protocl`"), "{e}");
        assert_eq!(e.field, "players[0].protocl");
        assert_eq!(e.line, 16);
        assert!(e.hint.as_deref().unwrap().contains("spelling"));
    }

    #[test]
    fn wrong_type_is_located() {
        let text = MINIMAL.replace("count = 2", "count = \"two\"");
        let e = one_error(&text);
        assert_eq!(e.field, "players[0].count");
        assert_eq!(e.line, 15);
        assert!(e.message.contains("invalid type"), "{e}");
    }

    #[test]
    fn unknown_protocol_lists_choices() {
        let text = MINIMAL.replace("\"flv\"", "\"dash\"");
        let e = one_error(&text);
        assert_eq!(e.field, "players[0].protocol");
        assert!(
            e.message.contains("dash") && e.message.contains("flv"),
            "{e}"
        );
    }

    #[test]
    fn bad_duration_says_how_to_write_one() {
        let text = MINIMAL.replace("\"10s\"", "\"ten seconds\"");
        let e = one_error(&text);
        assert_eq!(e.field, "run.duration");
        assert_eq!(e.line, 3);
        assert!(e.message.contains("invalid duration"), "{e}");
    }

    #[test]
    fn bad_bitrate_is_located() {
        let text = MINIMAL.replace("count = 1", "count = 1\nvideo = { bitrate = \"fast\" }");
        let e = one_error(&text);
        assert_eq!(e.field, "publishers[0].video.bitrate");
        assert!(e.message.contains("invalid bit rate"), "{e}");
    }

    #[test]
    fn line_col_counts_from_one() {
        assert_eq!(line_col("ab\ncd", 0), (1, 1));
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
    }
}
