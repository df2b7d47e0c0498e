//! Hostile scenario files (issue 14): each is refused by `validate` and by `run` alike, with exit
//! status 2 and a message naming the file, line, column and field, before anything is created or
//! connected. Fixtures are in tests/fixtures/scenarios/.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn xiuload() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_xiuload"));
    // Relative paths in messages and scenarios resolve against the crate root.
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    c
}

fn fixture(name: &str) -> PathBuf {
    Path::new("tests/fixtures/scenarios").join(name)
}

/// What a refused file must print: the location (`file:line:column`), the field and a fragment
/// of the message. An empty field means a problem with the file as a whole (syntax, encoding).
struct Case {
    file: &'static str,
    line_col: &'static str,
    field: &'static str,
    says: &'static str,
}

const CASES: &[Case] = &[
    // Item 3: durations bounded where they are parsed, sums checked.
    Case {
        file: "huge-duration.toml",
        line_col: "2:12",
        field: "run.duration",
        says: "longer than the limit of 30 days",
    },
    Case {
        file: "huge-session.toml",
        line_col: "18:",
        field: "players[0].session.",
        says: "longer than the limit of 30 days",
    },
    Case {
        file: "huge-ramp.toml",
        line_col: "17:1",
        field: "players[0].ramp",
        says: "the stages add up to 40 days, longer than a run may last (30 days)",
    },
    Case {
        file: "duration-number.toml",
        line_col: "2:12",
        field: "run.duration",
        says: "expected a duration in quotes",
    },
    // Item 5: a reconnect backoff has a floor.
    Case {
        file: "backoff-zero.toml",
        line_col: "18:25",
        field: "players[0].reconnect.backoff",
        says: "0s is below the floor of 100ms",
    },
    // Item 7: validation gaps.
    Case {
        file: "bad-port.toml",
        line_col: "5:16",
        field: "target.rtmp_publish",
        says: "port \"99999\" is not a number from 1 to 65535",
    },
    Case {
        file: "url-space.toml",
        line_col: "6:12",
        field: "target.flv_base",
        says: "URLs cannot hold spaces",
    },
    Case {
        file: "empty-host.toml",
        line_col: "5:16",
        field: "target.rtmp_publish",
        says: "\"rtmp://:1935\": no host",
    },
    Case {
        file: "rtmp-path.toml",
        line_col: "5:16",
        field: "target.rtmp_publish",
        says: "the path \"/live\" would be ignored",
    },
    Case {
        file: "knee-max.toml",
        line_col: "22:7",
        field: "knee.max",
        says: "10000000 is more than one load generator can hold (100000)",
    },
    Case {
        file: "all-zero.toml",
        line_col: "8:1",
        field: "publishers[0]",
        says: "there is nothing to run",
    },
    Case {
        file: "ca-missing.toml",
        line_col: "9:11",
        field: "target.tls.ca_file",
        says: "cannot read /nonexistent/xiuload-ca.pem",
    },
    Case {
        file: "run-name-escapes.toml",
        line_col: "2:8",
        field: "run.name",
        says: "\"../../../x\" cannot name a report directory",
    },
    Case {
        file: "latin1.toml",
        line_col: "9:12",
        field: "",
        says: "byte 0xe9 is not valid UTF-8",
    },
    Case {
        file: "run-not-a-table.toml",
        line_col: "1:1",
        field: "run",
        says: "`run` must be one table",
    },
    Case {
        file: "bitrate-negative.toml",
        line_col: "12:21",
        field: "publishers[0].video.bitrate",
        says: "bit rate -5 must be positive",
    },
    Case {
        file: "select-not-a-table.toml",
        line_col: "18:10",
        field: "players[0].select",
        says: "expected a table with a `mode` key",
    },
    // Issue 13: faults the run cannot perform (a cluster's, without [kube]) are refused, not skipped.
    Case {
        file: "cluster-fault.toml",
        line_col: "13:10",
        field: "fault[0].action",
        says: "\"scale\" acts on a cluster workload, and this scenario has no [kube] section",
    },
    Case {
        file: "fault-index.toml",
        line_col: "15:9",
        field: "fault[0].index",
        says: "edge 2 does not exist: the local topology has 2 edge(s)",
    },
    // "Beyond xiu": path templates are checked.
    Case {
        file: "flv-path-placeholder.toml",
        line_col: "7:12",
        field: "target.flv_path",
        says: "unknown placeholder {steam}; use {app} and {stream}",
    },
];

/// What no message may contain: panics and serde's internal type names.
const NEVER: &[&str] = &[
    "panicked",
    "backtrace",
    "untagged enum",
    "expected struct",
    "RunSection",
    "expected u32",
];

fn assert_refused(out: &Output, path: &Path, line_col: &str, field: &str, says: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}: {err}{stdout}",
        path.display()
    );
    assert!(!stdout.contains(": ok"), "{stdout}");
    let location = format!("{}:{line_col}", path.display());
    assert!(err.contains(&location), "want {location}: {err}");
    if !field.is_empty() {
        assert!(
            err.contains(&format!("field `{field}")),
            "want {field}: {err}"
        );
    }
    assert!(err.contains(says), "want {says:?}: {err}");
    for never in NEVER {
        assert!(!err.contains(never), "{never:?} in: {err}");
    }
}

#[test]
fn every_hostile_file_is_refused_by_validate_and_run_with_its_location() {
    let out_root = tempfile::tempdir().unwrap();
    for case in CASES {
        let path = fixture(case.file);
        let out = xiuload().arg("validate").arg(&path).output().unwrap();
        assert_refused(&out, &path, case.line_col, case.field, case.says);
        // `run` loads the same way and stops before creating its output directory.
        let run_out = out_root.path().join(case.file);
        let out = xiuload()
            .args(["run", "--quiet", "--out"])
            .arg(&run_out)
            .arg(&path)
            .output()
            .unwrap();
        assert_refused(&out, &path, case.line_col, case.field, case.says);
        assert!(!run_out.exists(), "{}: run created its output", case.file);
    }
}

#[test]
fn fixtures_are_all_in_the_table() {
    // A fixture added without a row would test nothing.
    let mut on_disk: Vec<String> =
        std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/scenarios"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
    on_disk.sort();
    let mut listed: Vec<String> = CASES.iter().map(|c| c.file.to_string()).collect();
    listed.sort();
    assert_eq!(on_disk, listed);
}

#[test]
fn an_endless_file_is_cut_at_the_size_cap() {
    let out = xiuload().args(["validate", "/dev/zero"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("/dev/zero: larger than 1024 KiB; a scenario file is a few KiB"),
        "{err}"
    );
}

#[test]
fn a_ca_file_holding_a_key_instead_of_a_certificate_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("issuer.key");
    let pair = rcgen::KeyPair::generate().unwrap();
    std::fs::write(&key, pair.serialize_pem()).unwrap();
    let scenario = dir.path().join("key-as-ca.toml");
    std::fs::write(
        &scenario,
        format!(
            "[run]\nduration = \"5s\"\n[target]\nflv_base = \"https://127.0.0.1:8443\"\n\
             [target.tls]\nca_file = \"{}\"\n[[players]]\nname = \"v\"\nprotocol = \"flv\"\n\
             streams = [\"a\"]\ncount = 1\n",
            key.display()
        ),
    )
    .unwrap();
    let out = xiuload().arg("validate").arg(&scenario).output().unwrap();
    assert_refused(
        &out,
        &scenario,
        "6:11",
        "target.tls.ca_file",
        "holds a private key, not a certificate",
    );
    // The same file with a certificate in it is accepted.
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    std::fs::write(&key, cert.cert.pem()).unwrap();
    let out = xiuload().arg("validate").arg(&scenario).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
