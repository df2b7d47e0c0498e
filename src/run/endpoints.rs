//! Where clients connect, resolved from the scenario's target (or the local topology).

use crate::local::Rotation;
use crate::rtmp::url::RtmpBase;
use crate::scenario::{HttpBase, PathTemplate, Target};

/// Play addresses are lists: a local topology spreads viewers over its edges (a cluster target
/// has one address per protocol, its load balancer).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Endpoints {
    pub app: String,
    pub rtmp_publish: Option<RtmpBase>,
    pub rtmp_play: Vec<RtmpBase>,
    pub flv_base: Vec<String>,
    pub hls_base: Vec<String>,
    /// The server's URL layout below the HTTP bases.
    pub paths: UrlPaths,
    /// A local topology's edges in the viewers' rotation (the play lists are its edges, in
    /// order); a cluster target has none. A worker process gets its own, all edges ready, which
    /// the coordinator's polls keep in step with the kubelet's (`/windows?ready=`).
    #[serde(default, with = "crate::local::rotation::as_edge_count")]
    pub rotation: Option<Rotation>,
}

/// Where a server serves a stream's HTTP outputs, below the base URL.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct UrlPaths {
    pub flv: PathTemplate,
    pub hls: PathTemplate,
}

impl Default for UrlPaths {
    /// xiu's layout: what a local target runs.
    fn default() -> Self {
        UrlPaths {
            flv: PathTemplate::xiu_flv(),
            hls: PathTemplate::xiu_hls(),
        }
    }
}

impl Endpoints {
    /// Remote endpoints from a scenario target, whose URLs were parsed when it was read.
    pub fn from_target(t: &Target) -> Self {
        let bases = |b: &Option<HttpBase>| b.iter().map(|b| b.as_str().to_string()).collect();
        Endpoints {
            app: t.app.clone(),
            rtmp_publish: t.rtmp_publish.clone(),
            rtmp_play: t.rtmp_play.iter().cloned().collect(),
            flv_base: bases(&t.flv_base),
            hls_base: bases(&t.hls_base),
            paths: UrlPaths {
                flv: t.flv_path.clone(),
                hls: t.hls_path.clone(),
            },
            rotation: None,
        }
    }

    /// The HTTP-FLV URL viewer number `viewer` uses.
    pub fn flv_url(&self, stream: &str, viewer: usize) -> Option<String> {
        self.pick(&self.flv_base, viewer)
            .map(|b| format!("{b}{}", self.paths.flv.render(&self.app, stream)))
    }

    /// The HLS playlist URL viewer number `viewer` uses.
    pub fn hls_url(&self, stream: &str, viewer: usize) -> Option<String> {
        self.pick(&self.hls_base, viewer)
            .map(|b| format!("{b}{}", self.paths.hls.render(&self.app, stream)))
    }

    pub fn rtmp_play(&self, viewer: usize) -> Option<&RtmpBase> {
        self.pick(&self.rtmp_play, viewer)
    }

    /// Viewer `viewer`'s server: `viewer % servers`, or with a rotation the ready edge it gives.
    fn pick<'a, T>(&self, list: &'a [T], viewer: usize) -> Option<&'a T> {
        if list.is_empty() {
            return None;
        }
        let i = match &self.rotation {
            Some(r) if r.len() == list.len() => r.pick(viewer),
            _ => viewer % list.len(),
        };
        list.get(i)
    }
}

/// Stream name for publisher `index` of a group: `{i}` in the pattern becomes the index.
pub fn stream_name(pattern: &str, index: u32) -> String {
    pattern.replace("{i}", &index.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_follow_xiu_layout_and_spread_viewers() {
        let e = Endpoints {
            app: "live".into(),
            rtmp_publish: None,
            rtmp_play: vec![],
            flv_base: vec!["https://httpflv.example.com".into()],
            hls_base: vec![
                "http://127.0.0.1:8080".into(),
                "http://127.0.0.1:9080".into(),
            ],
            paths: UrlPaths::default(),
            rotation: None,
        };
        assert_eq!(
            e.flv_url("cam-1", 7).unwrap(),
            "https://httpflv.example.com/live/cam-1.flv"
        );
        assert_eq!(
            e.hls_url("cam-1", 0).unwrap(),
            "http://127.0.0.1:8080/live/cam-1/cam-1.m3u8"
        );
        assert_eq!(
            e.hls_url("cam-1", 3).unwrap(),
            "http://127.0.0.1:9080/live/cam-1/cam-1.m3u8"
        );
        assert!(e.rtmp_play(0).is_none());
        assert_eq!(stream_name("cam-{i}", 7), "cam-7");
    }

    #[test]
    fn a_local_rotation_sends_new_viewers_to_ready_edges_only() {
        let base = |port| format!("http://127.0.0.1:{port}");
        let rotation = Rotation::all_ready(2);
        let e = Endpoints {
            app: "live".into(),
            rtmp_publish: None,
            rtmp_play: vec![],
            flv_base: vec![base(8001), base(8002)],
            hls_base: vec![base(9001), base(9002)],
            paths: UrlPaths::default(),
            rotation: Some(rotation.clone()),
        };
        let flv = |viewer| e.flv_url("s", viewer).unwrap();
        assert_eq!(flv(1), "http://127.0.0.1:8002/live/s.flv");
        rotation.set(1, false);
        assert_eq!(flv(1), "http://127.0.0.1:8001/live/s.flv");
        assert!(e.hls_url("s", 3).unwrap().starts_with(&base(9001)));
        rotation.set(1, true);
        assert_eq!(flv(1), "http://127.0.0.1:8002/live/s.flv");
        // A worker gets a rotation of its own, every edge ready, that follows the coordinator's
        // only through its polls (not this process's flags).
        let sent: Endpoints = serde_json::from_str(&serde_json::to_string(&e).unwrap()).unwrap();
        let theirs = sent.rotation.clone().expect("the rotation travels");
        rotation.set(1, false);
        assert_eq!(
            sent.flv_url("s", 1).unwrap(),
            "http://127.0.0.1:8002/live/s.flv"
        );
        theirs.apply_ready_list(&rotation.ready_list()).unwrap();
        assert_eq!(
            sent.flv_url("s", 1).unwrap(),
            "http://127.0.0.1:8001/live/s.flv"
        );
    }

    #[test]
    fn urls_follow_the_target_templates() {
        let text = "[target]\nflv_base = \"http://127.0.0.1:8080/\"\nhls_base = \"http://127.0.0.1:8080/\"\n\
                    flv_path = \"/flv?app={app}&stream={stream}\"\nhls_path = \"/hls/{stream}/index.m3u8\"\n\
                    [[players]]\nname = \"v\"\nprotocol = \"hls\"\nstreams = [\"s1\"]\ncount = 1\n\
                    [run]\nduration = \"1s\"\n";
        let scenario = crate::scenario::parse(std::path::Path::new("t.toml"), text).unwrap();
        let e = Endpoints::from_target(&scenario.target);
        assert_eq!(
            e.hls_url("s1", 0).unwrap(),
            "http://127.0.0.1:8080/hls/s1/index.m3u8"
        );
        assert_eq!(
            e.flv_url("s1", 0).unwrap(),
            "http://127.0.0.1:8080/flv?app=live&stream=s1"
        );
    }
}
