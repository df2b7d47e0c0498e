//! Where clients connect, resolved from the scenario's target (or the local topology).

use crate::rtmp::url::RtmpBase;
use crate::scenario::Target;

#[derive(Debug, Clone)]
pub struct Endpoints {
    pub app: String,
    pub rtmp_publish: Option<RtmpBase>,
    pub rtmp_play: Option<RtmpBase>,
    pub flv_base: Option<String>,
    pub hls_base: Option<String>,
}

impl Endpoints {
    /// Remote endpoints from a validated scenario target.
    pub fn from_target(t: &Target) -> Result<Self, String> {
        Ok(Endpoints {
            app: t.app.clone(),
            rtmp_publish: t.rtmp_publish.as_deref().map(RtmpBase::parse).transpose()?,
            rtmp_play: t.rtmp_play.as_deref().map(RtmpBase::parse).transpose()?,
            flv_base: t
                .flv_base
                .as_ref()
                .map(|u| u.trim_end_matches('/').to_string()),
            hls_base: t
                .hls_base
                .as_ref()
                .map(|u| u.trim_end_matches('/').to_string()),
        })
    }

    pub fn flv_url(&self, stream: &str) -> Option<String> {
        self.flv_base
            .as_ref()
            .map(|b| format!("{b}/{}/{stream}.flv", self.app))
    }

    pub fn hls_url(&self, stream: &str) -> Option<String> {
        self.hls_base
            .as_ref()
            .map(|b| format!("{b}/{}/{stream}/{stream}.m3u8", self.app))
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
    fn urls_follow_xiu_layout() {
        let e = Endpoints {
            app: "live".into(),
            rtmp_publish: None,
            rtmp_play: None,
            flv_base: Some("https://httpflv.example.com".into()),
            hls_base: Some("http://127.0.0.1:8080".into()),
        };
        assert_eq!(
            e.flv_url("cam-1").unwrap(),
            "https://httpflv.example.com/live/cam-1.flv"
        );
        assert_eq!(
            e.hls_url("cam-1").unwrap(),
            "http://127.0.0.1:8080/live/cam-1/cam-1.m3u8"
        );
        assert_eq!(stream_name("cam-{i}", 7), "cam-7");
    }
}
