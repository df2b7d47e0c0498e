//! Shared helpers for integration tests: a real xiu 0.14.0 per test, on free loopback ports, and
//! synthetic FLV served over TLS where no xiu is needed.
#![allow(dead_code)]

pub mod distributed;
pub mod flv_server;

use std::path::{Path, PathBuf};
use xiuload::local::{LocalXiu, find_xiu_binary};

/// The xiu binary; fails the test (not skips it) when missing, with the install hint.
pub fn xiu_bin() -> PathBuf {
    match find_xiu_binary(None) {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    }
}

pub async fn start_xiu() -> LocalXiu {
    LocalXiu::start(&xiu_bin(), 2, None)
        .await
        .unwrap_or_else(|e| panic!("xiu did not start: {e}"))
}

/// `[target]` lines pointing at a running xiu.
pub fn remote_target(xiu: &LocalXiu) -> String {
    let p = xiu.ports;
    format!(
        "[target]\napp = \"live\"\nrtmp_publish = \"rtmp://127.0.0.1:{}\"\nrtmp_play = \"rtmp://127.0.0.1:{}\"\nflv_base = \"http://127.0.0.1:{}\"\nhls_base = \"http://127.0.0.1:{}\"\n",
        p.rtmp, p.rtmp, p.flv, p.hls
    )
}

pub fn parse(text: &str) -> xiuload::scenario::Scenario {
    xiuload::scenario::parse(Path::new("test.toml"), text)
        .unwrap_or_else(|e| panic!("test scenario is invalid: {e}\n{text}"))
}

/// Runs a scenario in-process to its end.
pub async fn run(text: &str, out: &Path) -> xiuload::run::Outcome {
    run_until(text, out, std::future::pending()).await
}

pub async fn run_until(
    text: &str,
    out: &Path,
    stop: impl std::future::Future<Output = ()>,
) -> xiuload::run::Outcome {
    let options = xiuload::run::RunOptions {
        scenario_file: PathBuf::from("test.toml"),
        out_dir: Some(out.to_path_buf()),
        status_line: false,
        metrics_addr: None,
        ..Default::default()
    };
    xiuload::run::run(parse(text), options, stop)
        .await
        .unwrap_or_else(|e| panic!("run failed: {e}"))
}

pub fn read_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The text of `scenarios/<name>`, as CI runs it.
pub fn scenario_text(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
