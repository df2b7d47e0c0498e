//! URL path templates for the HTTP outputs (`[target] flv_path`, `hls_path`). Servers lay their
//! URLs out differently (xiu: `/<app>/<stream>/<stream>.m3u8`, nginx-rtmp: `/hls/<stream>.m3u8`),
//! so the layout is a template with `{app}` and `{stream}` placeholders, checked where it is
//! parsed so that a typo is a located error rather than every viewer failing as `no_media`.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// The placeholders a path template may use.
pub const PLACEHOLDERS: [&str; 2] = ["app", "stream"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathTemplate(String);

/// Why a path template cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("path template {template:?} {problem}")]
pub struct TemplateError {
    pub template: String,
    pub problem: TemplateProblem,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateProblem {
    #[error("must start with '/', e.g. \"/{{app}}/{{stream}}.flv\"")]
    NoLeadingSlash,
    #[error("contains {0:?}, which cannot stand in a URL path")]
    NotInAPath(char),
    #[error("has a '}}' without a '{{'")]
    UnopenedBrace,
    #[error("has a '{{' without a '}}'")]
    UnclosedBrace,
    #[error("has an unknown placeholder {{{0}}}; use {{app}} and {{stream}}")]
    UnknownPlaceholder(String),
    #[error("has no {{stream}}: every viewer would ask for the same URL")]
    NoStream,
}

impl PathTemplate {
    /// xiu 0.14's HTTP-FLV layout.
    pub fn xiu_flv() -> Self {
        PathTemplate("/{app}/{stream}.flv".into())
    }

    /// xiu 0.14's HLS layout.
    pub fn xiu_hls() -> Self {
        PathTemplate("/{app}/{stream}/{stream}.m3u8".into())
    }

    /// Checks a template: it starts with `/`, names the stream, uses only known placeholders and
    /// holds nothing that cannot stand in a URL path.
    pub fn parse(text: &str) -> Result<Self, TemplateError> {
        let fail = |problem| {
            Err(TemplateError {
                template: text.to_string(),
                problem,
            })
        };
        if !text.starts_with('/') {
            return fail(TemplateProblem::NoLeadingSlash);
        }
        if let Some(c) = text
            .chars()
            .find(|c| c.is_whitespace() || c.is_control() || *c == '#')
        {
            return fail(TemplateProblem::NotInAPath(c));
        }
        let mut names_stream = false;
        let mut rest = text;
        while let Some(open) = rest.find(['{', '}']) {
            if rest[open..].starts_with('}') {
                return fail(TemplateProblem::UnopenedBrace);
            }
            let after = &rest[open + 1..];
            let Some(close) = after.find('}') else {
                return fail(TemplateProblem::UnclosedBrace);
            };
            let name = &after[..close];
            if !PLACEHOLDERS.contains(&name) {
                return fail(TemplateProblem::UnknownPlaceholder(name.to_string()));
            }
            names_stream |= name == "stream";
            rest = &after[close + 1..];
        }
        if !names_stream {
            return fail(TemplateProblem::NoStream);
        }
        Ok(PathTemplate(text.to_string()))
    }

    /// The path for one stream.
    pub fn render(&self, app: &str, stream: &str) -> String {
        // One pass, so that an app or stream name holding "{stream}" is not expanded again.
        let mut out = String::with_capacity(self.0.len() + stream.len() * 2);
        let mut rest = self.0.as_str();
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let after = &rest[open + 1..];
            let close = after.find('}').unwrap_or(after.len());
            match &after[..close] {
                "app" => out.push_str(app),
                _ => out.push_str(stream),
            }
            rest = after.get(close + 1..).unwrap_or("");
        }
        out.push_str(rest);
        out
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PathTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for PathTemplate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = PathTemplate;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a URL path template in quotes, e.g. \"/{app}/{stream}.flv\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<PathTemplate, E> {
                PathTemplate::parse(v).map_err(E::custom)
            }
        }
        d.deserialize_str(Visitor)
    }
}

impl Serialize for PathTemplate {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xiu_defaults_render_xiu_layout() {
        assert_eq!(
            PathTemplate::xiu_flv().render("live", "cam-1"),
            "/live/cam-1.flv"
        );
        assert_eq!(
            PathTemplate::xiu_hls().render("live", "cam-1"),
            "/live/cam-1/cam-1.m3u8"
        );
        // The defaults pass their own check.
        for t in [PathTemplate::xiu_flv(), PathTemplate::xiu_hls()] {
            assert_eq!(PathTemplate::parse(t.as_str()).unwrap(), t);
        }
    }

    #[test]
    fn other_layouts_render() {
        let nginx = PathTemplate::parse("/hls/{stream}/index.m3u8").unwrap();
        assert_eq!(nginx.render("live", "s1"), "/hls/s1/index.m3u8");
        // A name that looks like a placeholder is not expanded again.
        let t = PathTemplate::parse("/{app}/{stream}.flv").unwrap();
        assert_eq!(t.render("{stream}", "a"), "/{stream}/a.flv");
    }

    #[test]
    fn bad_templates_say_what_is_wrong() {
        for (text, needle) in [
            ("{app}/{stream}.flv", "must start with '/'"),
            ("/{app}/{steam}.flv", "unknown placeholder {steam}"),
            ("/{app}/{stream.flv", "'{' without a '}'"),
            ("/{app}/stream}.flv", "'}' without a '{'"),
            ("/{app}/live.flv", "has no {stream}"),
            ("/{app}/{stream} x.flv", "cannot stand in a URL path"),
            ("/{stream}.flv#frag", "cannot stand in a URL path"),
        ] {
            let err = PathTemplate::parse(text).unwrap_err();
            assert!(err.to_string().contains(needle), "{text}: {err}");
        }
    }
}
