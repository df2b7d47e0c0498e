//! A second real server: nginx with Debian's `libnginx-mod-rtmp`, on loopback. xiuload publishes
//! to it and plays with RTMP and HLS viewers; HLS is found through `[target] hls_path`, since
//! nginx-rtmp lays its URLs out differently from xiu (`/hls/<stream>/index.m3u8` here).
//!
//! Needs nginx and the module (`scripts/install-deps.sh` installs both); the test fails, not skips,
//! without them. `NGINX_BIN` and `NGINX_RTMP_MODULE` override where they are looked for.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use xiuload::report::model::{StopReason, Verdict};

/// An nginx serving RTMP (publish and play) and, over HTTP, the HLS it cuts; killed on drop.
struct Nginx {
    child: Child,
    dir: tempfile::TempDir,
    rtmp: u16,
    http: u16,
}

fn installed(var: &str, default: &str) -> PathBuf {
    let path = std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(default));
    assert!(
        path.exists(),
        "{} not found (set {var}); run scripts/install-deps.sh, which installs nginx and libnginx-mod-rtmp",
        path.display()
    );
    path
}

/// The config: one RTMP application that records HLS into the temp dir, and an HTTP server that
/// serves that dir under /hls/. Everything nginx writes stays in `dir`.
fn config(dir: &Path, module: &Path, rtmp: u16, http: u16) -> String {
    let d = dir.display();
    format!(
        r#"load_module {module};
daemon off;
master_process off;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 256; }}
rtmp {{
  server {{
    listen 127.0.0.1:{rtmp};
    application live {{
      live on;
      hls on;
      hls_path {d}/hls;
      hls_fragment 1s;
      hls_playlist_length 6s;
      hls_nested on;
    }}
  }}
}}
http {{
  access_log off;
  client_body_temp_path {d}/tmp;
  proxy_temp_path {d}/tmp;
  fastcgi_temp_path {d}/tmp;
  uwsgi_temp_path {d}/tmp;
  scgi_temp_path {d}/tmp;
  types {{ application/vnd.apple.mpegurl m3u8; video/mp2t ts; }}
  server {{
    listen 127.0.0.1:{http};
    location /hls/ {{ alias {d}/hls/; add_header Cache-Control no-cache; }}
  }}
}}
"#,
        module = module.display()
    )
}

impl Nginx {
    fn start() -> Nginx {
        let bin = installed("NGINX_BIN", "/usr/sbin/nginx");
        let module = installed(
            "NGINX_RTMP_MODULE",
            "/usr/share/nginx/modules/ngx_rtmp_module.so",
        );
        let dir = tempfile::tempdir().unwrap();
        for sub in ["hls", "tmp"] {
            std::fs::create_dir(dir.path().join(sub)).unwrap();
        }
        let ports = xiuload::local::xiu::free_ports(2).unwrap();
        let (rtmp, http) = (ports[0], ports[1]);
        let conf = dir.path().join("nginx.conf");
        std::fs::write(&conf, config(dir.path(), &module, rtmp, http)).unwrap();
        let child = Command::new(bin)
            .arg("-p")
            .arg(dir.path())
            // Before it reads the config nginx opens its compiled-in error log, which a
            // non-root user cannot write.
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx starts");
        let mut nginx = Nginx {
            child,
            dir,
            rtmp,
            http,
        };
        nginx.wait_listening();
        nginx
    }

    /// Both listeners accept connections, or the test fails with nginx's log (bounded: 10 s).
    fn wait_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        for port in [self.rtmp, self.http] {
            loop {
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    break;
                }
                if let Ok(Some(status)) = self.child.try_wait() {
                    panic!("nginx exited ({status}):\n{}", self.log());
                }
                assert!(
                    Instant::now() < deadline,
                    "nginx is not listening on {port} after 10 s:\n{}",
                    self.log()
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }

    fn target(&self) -> String {
        format!(
            "[target]\napp = \"live\"\nrtmp_publish = \"rtmp://127.0.0.1:{r}\"\nrtmp_play = \"rtmp://127.0.0.1:{r}\"\n\
             hls_base = \"http://127.0.0.1:{h}\"\nhls_path = \"/hls/{{stream}}/index.m3u8\"\n",
            r = self.rtmp,
            h = self.http
        )
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_rtmp_serves_our_publisher_to_rtmp_and_hls_viewers() {
    let nginx = Nginx::start();
    let out = tempfile::tempdir().unwrap();
    let text = format!(
        r#"
[run]
duration = "14s"
{target}
[[publishers]]
name = "cams"
stream = "ngx-{{i}}"
count = 1
video = {{ width = 640, height = 360, fps = 25, bitrate = "800kbps", gop = "1s" }}

[[players]]
name = "rtmp-viewers"
protocol = "rtmp"
publishers = "cams"
ramp = [{{ duration = "2s", target = 0 }}, {{ duration = "1s", target = 2 }}, {{ duration = "11s", target = 2 }}]

[[players]]
name = "hls-viewers"
protocol = "hls"
publishers = "cams"
first_frame_timeout = "8s"
ramp = [{{ duration = "3s", target = 0 }}, {{ duration = "1s", target = 2 }}, {{ duration = "10s", target = 2 }}]

[[thresholds]]
metric = "error_rate"
max = 0.0
"#,
        target = nginx.target()
    );
    let outcome = common::run(&text, out.path()).await;
    let r = &outcome.report;
    assert_eq!(r.run.stopped_by, StopReason::Completed);
    assert!(
        r.publishers[0].errors.0.is_empty(),
        "{:?}",
        r.publishers[0].errors
    );
    for g in &r.players {
        let s = &g.summary;
        assert!(s.errors.0.is_empty(), "{}: {:?}", g.name, s.errors);
        assert_eq!(s.sessions_with_media, 2, "{}: {s:?}", g.name);
        assert!(s.frames > 100, "{}: {} frames", g.name, s.frames);
        assert_eq!(s.lost_frames, 0, "{}", g.name);
        // Our stamps survive nginx's remux: latency is measured, not guessed.
        assert_eq!(s.unstamped_frames, 0, "{}", g.name);
    }
    let hls = r.players.iter().find(|g| g.name == "hls-viewers").unwrap();
    assert!(
        hls.summary.segments >= 4,
        "{} segments",
        hls.summary.segments
    );
    assert_eq!(r.verdict, Verdict::Pass);
    // The playlist really is nginx's layout, under the temp dir nginx serves.
    assert!(nginx.dir.path().join("hls/ngx-0/index.m3u8").exists());
}
