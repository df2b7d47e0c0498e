//! Kubernetes resource quantities ("250m", "200Mi", "1.5G") as numbers. Pure.

/// A quantity in base units (cores, bytes, plain counts); a trailing `%` is stripped so HPA
/// utilisation targets ("60%") compare as numbers too.
pub fn parse(q: &str) -> Option<f64> {
    let q = q.trim();
    let q = q.strip_suffix('%').unwrap_or(q);
    // The unit starts at the first letter, except an exponent's `e`/`E` followed by a digit or
    // sign ("1e3"); a bare trailing `E` is the exa suffix.
    let bytes = q.as_bytes();
    let split = (0..bytes.len())
        .find(|&i| {
            let c = bytes[i];
            c.is_ascii_alphabetic()
                && !((c == b'e' || c == b'E')
                    && i > 0
                    && bytes
                        .get(i + 1)
                        .is_some_and(|n| n.is_ascii_digit() || *n == b'+' || *n == b'-'))
        })
        .unwrap_or(q.len());
    let (num, unit) = q.split_at(split);
    let mult: f64 = match unit {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        _ => return None,
    };
    num.parse::<f64>().ok().map(|v| v * mult)
}

/// A CPU quantity ("250m", "1", "12345678n") in millicores.
pub fn cpu_millicores(q: &str) -> Option<f64> {
    parse(q).map(|cores| (cores * 1000.0 * 1e6).round() / 1e6)
}

/// A memory quantity ("123456Ki", "200Mi", "1G") in bytes.
pub fn memory_bytes(q: &str) -> Option<u64> {
    parse(q).map(|b| b.round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponents_and_exa_are_told_apart() {
        assert_eq!(parse("1e3"), Some(1000.0));
        assert_eq!(parse("2E"), Some(2e18));
        assert_eq!(parse("1Ei"), Some(1024f64.powi(6)));
        assert_eq!(parse("12x"), None);
    }

    #[test]
    fn quantities() {
        assert_eq!(cpu_millicores("250m"), Some(250.0));
        assert_eq!(cpu_millicores("2"), Some(2000.0));
        assert_eq!(cpu_millicores("12500000n"), Some(12.5));
        assert_eq!(cpu_millicores("1500u"), Some(1.5));
        assert_eq!(memory_bytes("200Mi"), Some(200 << 20));
        assert_eq!(memory_bytes("1G"), Some(1_000_000_000));
        assert_eq!(memory_bytes("4096"), Some(4096));
        assert_eq!(memory_bytes("3Qi"), None);
        assert_eq!(parse("65%"), Some(65.0));
        assert_eq!(parse("1500m"), Some(1.5));
    }
}
