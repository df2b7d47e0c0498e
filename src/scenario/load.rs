//! Reading a scenario file: TOML syntax and types (via serde), then semantic checks. Every error
//! names the file, line, column and field path, with a hint where one helps.

use super::model::Scenario;
use super::problem::Problem;
use super::protocol::Protocol;
use super::validate::{check_files, validate};
use std::fmt;
use std::io::Read;
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
    #[error(
        "{path}: larger than {} KiB; a scenario file is a few KiB of TOML (is this the right file?)",
        MAX_SCENARIO_BYTES / 1024
    )]
    TooLarge { path: PathBuf },
    #[error("{}", render_all(.0))]
    Invalid(Vec<Located>),
}

/// Scenario files are read whole; this cap keeps `validate /dev/zero` (or a log file passed by
/// mistake) from reading until memory runs out.
pub const MAX_SCENARIO_BYTES: u64 = 1024 * 1024;

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
    let read_error = |source| LoadError::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_SCENARIO_BYTES + 1).read_to_end(&mut bytes))
        .map_err(read_error)?;
    if bytes.len() as u64 > MAX_SCENARIO_BYTES {
        return Err(LoadError::TooLarge {
            path: path.to_path_buf(),
        });
    }
    let text = utf8_text(path, bytes)?;
    parse(path, &text)
}

/// The file's text, or where its first byte that is not UTF-8 is.
fn utf8_text(path: &Path, bytes: Vec<u8>) -> Result<String, LoadError> {
    String::from_utf8(bytes).map_err(|e| {
        let valid = e.utf8_error().valid_up_to();
        let bytes = e.as_bytes();
        let prefix = std::str::from_utf8(&bytes[..valid]).unwrap_or("");
        let (line, column) = line_col(prefix, valid);
        LoadError::Invalid(vec![Located {
            file: path.to_path_buf(),
            line,
            column,
            field: String::new(),
            message: format!("byte 0x{:02x} is not valid UTF-8", bytes[valid]),
            hint: Some("scenario files are UTF-8 text; save the file as UTF-8".into()),
        }])
    })
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

    if let Some(problem) = DeTable::parse(text)
        .ok()
        .and_then(|doc| misplaced_section(doc.get_ref()))
    {
        let (span, field, message, hint) = problem;
        return Err(LoadError::Invalid(vec![locate(
            Some(span),
            field,
            message,
            Some(hint),
        )]));
    }
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
        let message = plain_words(&first_line(inner.message()));
        // toml's words for a number or boolean where a named value is wanted.
        let message = if message == "wanted string or table" {
            let names = if field.ends_with("protocol") {
                format!(
                    ": {}",
                    Protocol::ALL
                        .map(|p| format!("\"{}\"", p.as_str()))
                        .join(", ")
                )
            } else {
                String::new()
            };
            format!("expected one of the names this key takes, in quotes{names}")
        } else {
            message
        };
        let hint = value_hint(inner.message()).or_else(|| hint_for_serde_message(&message));
        LoadError::Invalid(vec![locate(inner.span(), field, message, hint)])
    })?;

    let mut problems = validate(&scenario);
    problems.extend(check_files(&scenario));
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

/// `[[run]]` for `[run]` (or `[players]` for `[[players]]`) reaches serde as a sequence where a
/// struct is wanted, and serde's message then talks about the struct's first field. Caught
/// before: (span, field, message, hint).
fn misplaced_section(
    doc: &DeTable<'_>,
) -> Option<(std::ops::Range<usize>, String, String, String)> {
    const TABLES: [&str; 4] = ["run", "target", "knee", "kube"];
    const ARRAYS: [&str; 5] = ["publishers", "players", "thresholds", "expect", "fault"];
    doc.iter().find_map(|(key, value)| {
        let name: &str = key.get_ref().as_ref();
        let v = value.get_ref();
        if TABLES.contains(&name) && !v.is_table() {
            Some((
                key.span(),
                name.to_string(),
                format!("`{name}` must be one table"),
                format!("write [{name}] with its keys below it (not [[{name}]] or `{name} = ...`)"),
            ))
        } else if ARRAYS.contains(&name) && !v.is_array() {
            Some((
                key.span(),
                name.to_string(),
                format!("`{name}` must be an array of tables, one per entry"),
                format!("write [[{name}]] above each entry"),
            ))
        } else {
            None
        }
    })
}

/// A value type's own advice: its parse error ends in a `hint: ` line (see
/// `base_url::BaseUrlError`), which `first_line` leaves out of the message.
fn value_hint(message: &str) -> Option<String> {
    message
        .lines()
        .find_map(|l| l.trim().strip_prefix("hint: "))
        .map(str::to_string)
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

/// Says what a field wants in the file's terms: serde's messages name Rust types ("expected
/// struct RunSection", "expected u32") that mean nothing to someone writing TOML.
fn plain_words(message: &str) -> String {
    const TYPES: [(&str, &str); 13] = [
        ("u8", "a whole number from 0 to 255"),
        ("u16", "a whole number from 0 to 65535"),
        ("u32", "a whole number from 0 to 4294967295"),
        ("u64", "a whole number of 0 or more"),
        ("usize", "a whole number of 0 or more"),
        ("i8", "a whole number"),
        ("i16", "a whole number"),
        ("i32", "a whole number"),
        ("i64", "a whole number"),
        ("f32", "a number"),
        ("f64", "a number"),
        ("a sequence", "an array, e.g. [\"a\", \"b\"]"),
        ("a map", "a table"),
    ];
    let Some(at) = message.find("expected ") else {
        return message.to_string();
    };
    let (head, wanted) = message.split_at(at + "expected ".len());
    // Rust type names end at the first character that cannot be part of one.
    let ident_end = |s: &str| {
        s.find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(s.len())
    };
    let (plain, rest) = if let Some(after) = wanted.strip_prefix("struct ") {
        ("a table", &after[ident_end(after)..])
    } else if let Some(after) = wanted.strip_prefix("internally tagged enum ") {
        ("a table with a `mode` key", &after[ident_end(after)..])
    } else if let Some(after) = wanted.strip_prefix("enum ") {
        ("one of the values in quotes", &after[ident_end(after)..])
    } else if let Some((rust, plain)) = TYPES.iter().find(|(rust, _)| {
        wanted
            .strip_prefix(rust)
            .is_some_and(|rest| ident_end(rest) == 0)
    }) {
        (*plain, &wanted[rust.len()..])
    } else {
        return message.to_string();
    };
    format!("{head}{plain}{rest}")
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
    fn unknown_fault_key_and_action_are_located() {
        let text = format!(
            "{MINIMAL}\n[[fault]]\nat = \"5s\"\naction = \"kill\"\ntarget = \"origin\"\nsignal = 9\n"
        );
        let e = one_error(&text);
        assert_eq!(e.field, "fault[0].signal");
        assert_eq!(e.line, 21);
        let text = format!(
            "{MINIMAL}\n[[fault]]\nat = \"5s\"\naction = \"reboot\"\ntarget = \"origin\"\n"
        );
        let e = one_error(&text);
        assert_eq!(e.field, "fault[0].action");
        assert!(
            e.message.contains("unknown variant `reboot`") && e.message.contains("restart"),
            "{e}"
        );
    }

    #[test]
    fn unusable_url_is_located_with_its_hint() {
        let text = MINIMAL.replace(
            "[target.local]",
            "[target]\nrtmp_publish = \"rtmp://origin/live\"\nflv_base = \"http://edge\"",
        );
        let e = one_error(&text);
        assert_eq!(e.field, "target.rtmp_publish");
        assert_eq!((e.line, e.column), (6, 16));
        assert!(
            e.message.contains("the path \"/live\" would be ignored"),
            "{e}"
        );
        assert!(!e.message.contains("hint"), "{e}");
        assert!(e.hint.as_deref().unwrap().contains("target.app"), "{e}");
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
    fn serde_internals_become_plain_words() {
        for (text, field, wanted) in [
            ("run = 5\n[target.local]\n", "run", "must be one table"),
            ("[[run]]\n[target.local]\n", "run", "must be one table"),
            ("[players]\n[target.local]\n", "players", "array of tables"),
            ("[fault]\n[target.local]\n", "fault", "array of tables"),
            (
                "[target.local]\nhls_fragment_secs = -1\n",
                "target.local.hls_fragment_secs",
                "expected a whole number from 0 to 4294967295",
            ),
            (
                "[target]\nlocal = \"yes\"\n",
                "target.local",
                "expected a table",
            ),
        ] {
            let e = one_error(text);
            assert_eq!(e.field, field, "{e}");
            assert!(e.message.contains(wanted), "{text}: {e}");
            for internal in ["struct", "u32", "RunSection", "LocalTarget", "untagged"] {
                assert!(!e.message.contains(internal), "{text}: {e}");
            }
        }
        let text = MINIMAL.replace("count = 2", "count = 2\nselect = \"zipf\"");
        let e = one_error(&text);
        assert!(e.message.contains("a table with a `mode` key"), "{e}");
        assert!(!e.message.contains("Selection"), "{e}");
        let text = MINIMAL.replace("\"flv\"", "3");
        let e = one_error(&text);
        assert_eq!(
            e.message,
            "expected one of the names this key takes, in quotes: \"flv\", \"hls\", \"rtmp\"",
        );
    }

    #[test]
    fn plain_words_leave_plain_messages_alone() {
        let m = "unknown variant `dash`, expected one of `flv`, `hls`, `rtmp`";
        assert_eq!(plain_words(m), m);
        assert_eq!(
            plain_words("invalid type: string \"x\", expected u32"),
            "invalid type: string \"x\", expected a whole number from 0 to 4294967295"
        );
    }

    #[test]
    fn invalid_utf8_is_located() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("latin1.toml");
        std::fs::write(&path, b"[run]\nname = \"caf\xe9\"\n").unwrap();
        let Err(LoadError::Invalid(v)) = load(&path) else {
            panic!("expected a located error")
        };
        assert_eq!((v[0].line, v[0].column), (2, 12), "{}", v[0]);
        assert!(v[0].message.contains("0xe9 is not valid UTF-8"), "{}", v[0]);
    }

    #[test]
    fn endless_files_are_cut_at_the_size_cap() {
        let err = load(Path::new("/dev/zero")).unwrap_err();
        assert!(matches!(err, LoadError::TooLarge { .. }), "{err}");
        assert!(err.to_string().contains("larger than 1024 KiB"), "{err}");
    }

    #[test]
    fn line_col_counts_from_one() {
        assert_eq!(line_col("ab\ncd", 0), (1, 1));
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
    }
}
