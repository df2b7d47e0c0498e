//! End-to-end: a real xiu 0.14 origin and edge on loopback, an ffmpeg
//! publisher, and the sidecar making the edge serve the stream unasked.
//! Skips (with a message) only when the xiu binary is absent.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use xiuload::sidecar::{SidecarConfig, run};

/// Kills the child when dropped, so a failing assertion leaves nothing behind.
struct Proc {
    name: &'static str,
    child: Child,
}

impl Proc {
    /// SIGINT is the only signal xiu handles cleanly; fall back to SIGKILL.
    fn interrupt(&mut self) {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        eprintln!("{} ignored SIGINT for 5 s; killing", self.name);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn xiu_binary() -> Option<PathBuf> {
    let home = std::env::var_os("HOME")?;
    let p = Path::new(&home).join(".cache/xiuload/xiu-0.14.0/bin/xiu");
    p.is_file().then_some(p)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Ports {
    rtmp: u16,
    hls: u16,
    flv: u16,
    api: u16,
}

impl Ports {
    fn new() -> Self {
        Ports {
            rtmp: free_port(),
            hls: free_port(),
            flv: free_port(),
            api: free_port(),
        }
    }
}

fn config(p: &Ports, pull_from: Option<u16>) -> String {
    let pull = pull_from
        .map(|port| {
            format!("[rtmp.pull]\nenabled = true\naddress = \"127.0.0.1\"\nport = {port}\n\n")
        })
        .unwrap_or_default();
    format!(
        "[rtmp]\nenabled = true\nport = {}\n\n{pull}[hls]\nenabled = true\nport = {}\nneed_record = false\nfragment = 2\n\n\
         [hls.s3]\nenabled = false\nbucket = \"unused\"\nregion = \"unused\"\n\n\
         [httpflv]\nenabled = true\nport = {}\n\n[httpapi]\nport = {}\n\n\
         [authsecret]\nkey = \"\"\npassword = \"\"\n\n[log]\nlevel = \"info\"\n",
        p.rtmp, p.hls, p.flv, p.api
    )
}

fn start_xiu(bin: &Path, dir: &Path, name: &'static str, cfg: &str) -> Proc {
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("xiu.toml");
    std::fs::write(&path, cfg).unwrap();
    let log = std::fs::File::create(dir.join(format!("{name}.log"))).unwrap();
    let child = Command::new(bin)
        .arg("-c")
        .arg(&path)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("start xiu");
    Proc { name, child }
}

fn start_ffmpeg(rtmp_port: u16, dir: &Path) -> Proc {
    let log = std::fs::File::create(dir.join("ffmpeg.log")).unwrap();
    let child = Command::new("ffmpeg")
        .args(["-nostdin", "-loglevel", "warning", "-re"])
        .args(["-f", "lavfi", "-i", "testsrc=size=320x240:rate=25"])
        .args(["-f", "lavfi", "-i", "sine"])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "25",
            "-c:a",
            "aac",
            "-f",
            "flv",
        ])
        .arg(format!("rtmp://127.0.0.1:{rtmp_port}/live/s1"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start ffmpeg");
    Proc {
        name: "ffmpeg",
        child,
    }
}

async fn status(http: &reqwest::Client, url: &str) -> Option<u16> {
    http.get(url).send().await.ok().map(|r| r.status().as_u16())
}

/// Polls `cond` every 250 ms until it holds or `limit` passes.
async fn wait_for<F, Fut>(what: &str, limit: Duration, mut cond: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond().await {
            return start.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("timed out after {limit:?} waiting for {what}");
}

/// Bytes an FLV player gets within `limit` on its very first request.
async fn flv_bytes(url: &str, limit: Duration) -> usize {
    let http = reqwest::Client::new();
    let read = async {
        let mut n = 0;
        if let Ok(mut r) = http.get(url).send().await {
            while let Ok(Some(c)) = r.chunk().await {
                n += c.len();
                if n > 10_000 {
                    break;
                }
            }
        }
        n
    };
    tokio::time::timeout(limit, read).await.unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_serves_stream_without_a_player_asking() {
    let Some(bin) = xiu_binary() else {
        eprintln!("SKIPPED: xiu binary not found at $HOME/.cache/xiuload/xiu-0.14.0/bin/xiu");
        return;
    };
    let root = std::env::temp_dir().join(format!("xiuload-sidecar-it-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let (o, e) = (Ports::new(), Ports::new());
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();

    let mut origin = start_xiu(&bin, &root.join("origin"), "origin", &config(&o, None));
    let _edge = start_xiu(&bin, &root.join("edge"), "edge", &config(&e, Some(o.rtmp)));
    for api in [o.api, e.api] {
        let url = format!("http://127.0.0.1:{api}/");
        wait_for("xiu API up", Duration::from_secs(10), || async {
            status(&http, &url).await == Some(200)
        })
        .await;
    }
    let mut ffmpeg = start_ffmpeg(o.rtmp, &root);
    let streams = format!("http://127.0.0.1:{}/api/query_whole_streams?top=10", o.api);
    wait_for("origin lists live/s1", Duration::from_secs(15), || async {
        match http.get(&streams).send().await {
            Ok(r) => r.text().await.unwrap_or_default().contains("\"s1\""),
            Err(_) => false,
        }
    })
    .await;

    let listen: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let cfg = SidecarConfig {
        origin_api: format!("http://127.0.0.1:{}", o.api),
        edge_flv: format!("http://127.0.0.1:{}", e.flv),
        edge_rtmp: format!("127.0.0.1:{}", e.rtmp).parse().unwrap(),
        edge_api: format!("http://127.0.0.1:{}", e.api),
        edge_hls: format!("http://127.0.0.1:{}", e.hls),
        app: "live".into(),
        listen,
        poll_interval: Duration::from_secs(1),
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let sidecar = tokio::spawn(run(cfg, async {
        let _ = stop_rx.await;
    }));

    let playlist = format!("http://127.0.0.1:{}/live/s1/s1.m3u8", e.hls);
    let took = wait_for(
        "edge HLS playlist (no player asked)",
        Duration::from_secs(30),
        || async { status(&http, &playlist).await == Some(200) },
    )
    .await;
    eprintln!("edge playlist 200 after {took:?}");

    let flv = format!("http://127.0.0.1:{}/live/s1.flv", e.flv);
    let n = flv_bytes(&flv, Duration::from_secs(5)).await;
    assert!(n > 0, "first FLV request to the edge got an empty body");
    eprintln!("first FLV request got {n} bytes");

    let readyz = format!("http://{listen}/readyz");
    wait_for("/readyz 200", Duration::from_secs(10), || async {
        status(&http, &readyz).await == Some(200)
    })
    .await;
    let livez = format!("http://{listen}/livez");
    assert_eq!(status(&http, &livez).await, Some(200));

    // Origin restart with a new publish: the edge must serve the stream again.
    origin.interrupt();
    ffmpeg.interrupt();
    let gone = async {
        wait_for(
            "edge playlist to go away",
            Duration::from_secs(15),
            || async { status(&http, &playlist).await != Some(200) },
        )
        .await
    };
    gone.await;
    let origin2 = start_xiu(&bin, &root.join("origin"), "origin", &config(&o, None));
    let url = format!("http://127.0.0.1:{}/", o.api);
    wait_for(
        "restarted origin API up",
        Duration::from_secs(10),
        || async { status(&http, &url).await == Some(200) },
    )
    .await;
    let ffmpeg2 = start_ffmpeg(o.rtmp, &root);
    let started = Instant::now();
    let mut got = 0;
    while got == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "edge FLV still empty 30 s after the republish"
        );
        got = flv_bytes(&flv, Duration::from_secs(3)).await;
    }
    eprintln!(
        "edge FLV serves again ({got} bytes) {:?} after the republish",
        started.elapsed()
    );
    wait_for(
        "edge HLS playlist after origin restart",
        Duration::from_secs(30),
        || async { status(&http, &playlist).await == Some(200) },
    )
    .await;
    // A live playlist moves on (2 s fragments); a phantom one is frozen.
    let first = http
        .get(&playlist)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    wait_for(
        "edge playlist to advance",
        Duration::from_secs(15),
        || async {
            match http.get(&playlist).send().await {
                Ok(r) if r.status() == 200 => r.text().await.map(|t| t != first).unwrap_or(false),
                _ => false,
            }
        },
    )
    .await;

    let _ = stop_tx.send(());
    let res = tokio::time::timeout(Duration::from_secs(5), sidecar).await;
    assert!(
        matches!(res, Ok(Ok(Ok(())))),
        "sidecar did not shut down cleanly: {res:?}"
    );
    drop((ffmpeg2, origin2));
    // XIULOAD_KEEP_TMP=1 keeps the xiu/ffmpeg logs for inspection.
    if std::env::var_os("XIULOAD_KEEP_TMP").is_none() {
        let _ = std::fs::remove_dir_all(&root);
    }
}
