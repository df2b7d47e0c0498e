//! Number formatting shared by the human-readable writers (Markdown, HTML), so both say the same
//! thing the same way.

use crate::metrics::Summary;
use crate::metrics::stats::ErrorCounts;

/// Milliseconds without decimals; `–` when nothing was measured.
pub fn ms(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.0}")).unwrap_or_else(|| "–".into())
}

/// `p50 / p95 / p99` in milliseconds.
pub fn pcts(s: &Summary) -> String {
    format!("{} / {} / {}", ms(s.p50_ms), ms(s.p95_ms), ms(s.p99_ms))
}

/// `eof×2, http_404×1`, or `0` when there were none.
pub fn errors(e: &ErrorCounts) -> String {
    if e.0.is_empty() {
        "0".into()
    } else {
        e.0.iter()
            .map(|(k, v)| format!("{k}×{v}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::ErrorKind;

    #[test]
    fn formats_missing_values_and_error_counts() {
        assert_eq!(ms(None), "–");
        assert_eq!(ms(Some(12.6)), "13");
        let mut e = ErrorCounts::default();
        assert_eq!(errors(&e), "0");
        e.add(ErrorKind::Eof);
        e.add(ErrorKind::Eof);
        e.add(ErrorKind::HttpStatus(404));
        assert_eq!(errors(&e), "eof×2, http_404×1");
    }
}
