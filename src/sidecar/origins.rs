//! The origins the sidecar relays from: `--origin-api` and `--origin-flv` paired in order.

/// One origin's two HTTP endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginEndpoints {
    /// xiu's HTTP API base, e.g. `http://xiu-origin-0.xiu-origin:8000` (the stream list).
    pub api: String,
    /// xiu's HTTP-FLV base, e.g. `http://xiu-origin-0.xiu-origin:8081` (what is relayed).
    pub flv: String,
}

/// The HTTP-FLV port of deploy/'s origins (and xiu's usual one).
pub const DEFAULT_ORIGIN_FLV_PORT: u16 = 8081;

/// Why `--origin-api`/`--origin-flv` do not describe the origins.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OriginsError {
    #[error("at least one --origin-api is needed")]
    NoApi,
    #[error(
        "{apis} --origin-api but {flvs} --origin-flv: give one --origin-flv per --origin-api, in the same \
         order (or none, to use each API host's port {DEFAULT_ORIGIN_FLV_PORT})"
    )]
    CountsDiffer { apis: usize, flvs: usize },
    #[error("--origin-api {0:?} is not an http:// URL")]
    NotAUrl(String),
    #[error("--origin-api {0:?} has no host")]
    NoHost(String),
}

/// Pairs the flags in order. With no `--origin-flv` at all, each origin's FLV base is its API's
/// host on port 8081, so today's single `--origin-api http://xiu-origin:8000` keeps working.
pub fn pair_origins(
    apis: &[String],
    flvs: &[String],
) -> Result<Vec<OriginEndpoints>, OriginsError> {
    if apis.is_empty() {
        return Err(OriginsError::NoApi);
    }
    if flvs.is_empty() {
        return apis
            .iter()
            .map(|api| {
                Ok(OriginEndpoints {
                    api: api.clone(),
                    flv: flv_beside(api)?,
                })
            })
            .collect();
    }
    if flvs.len() != apis.len() {
        return Err(OriginsError::CountsDiffer {
            apis: apis.len(),
            flvs: flvs.len(),
        });
    }
    Ok(apis
        .iter()
        .zip(flvs)
        .map(|(api, flv)| OriginEndpoints {
            api: api.clone(),
            flv: flv.clone(),
        })
        .collect())
}

/// `http://host:8000/x` → `http://host:8081`.
fn flv_beside(api: &str) -> Result<String, OriginsError> {
    let (scheme, rest) = api
        .split_once("://")
        .ok_or_else(|| OriginsError::NotAUrl(api.to_string()))?;
    let authority = rest.split('/').next().unwrap_or("");
    let host = match authority.rsplit_once(':') {
        // An IPv6 literal without a port ends with `]`.
        Some((h, port)) if !port.contains(']') => h,
        _ => authority,
    };
    if host.is_empty() {
        return Err(OriginsError::NoHost(api.to_string()));
    }
    Ok(format!("{scheme}://{host}:{DEFAULT_ORIGIN_FLV_PORT}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn single_api_gets_the_flv_port_beside_it() {
        let o = pair_origins(&s(&["http://xiu-origin:8000"]), &[]).unwrap();
        assert_eq!(
            o,
            vec![OriginEndpoints {
                api: "http://xiu-origin:8000".into(),
                flv: "http://xiu-origin:8081".into()
            }]
        );
        let o = pair_origins(&s(&["http://[::1]:8000/", "http://o1"]), &[]).unwrap();
        assert_eq!(o[0].flv, "http://[::1]:8081");
        assert_eq!(o[1].flv, "http://o1:8081");
    }

    #[test]
    fn pairs_in_order() {
        let o = pair_origins(
            &s(&["http://a:1", "http://b:1"]),
            &s(&["http://a:2", "http://b:2"]),
        )
        .unwrap();
        assert_eq!(o[1].api, "http://b:1");
        assert_eq!(o[1].flv, "http://b:2");
    }

    #[test]
    fn mismatched_counts_and_bad_urls_are_errors() {
        let e = pair_origins(&s(&["http://a:1", "http://b:1"]), &s(&["http://a:2"])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "2 --origin-api but 1 --origin-flv: give one --origin-flv per --origin-api, in the \
             same order (or none, to use each API host's port 8081)"
        );
        assert_eq!(pair_origins(&[], &[]), Err(OriginsError::NoApi));
        let e = pair_origins(&s(&["xiu-origin:8000"]), &[]).unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"--origin-api "xiu-origin:8000" is not an http:// URL"#
        );
        let e = pair_origins(&s(&["http://:8000"]), &[]).unwrap_err();
        assert_eq!(e.to_string(), r#"--origin-api "http://:8000" has no host"#);
    }
}
