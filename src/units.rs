//! Durations and sizes as users write them (`5`, `2.5`, `500ms`; `65536`, `64KiB`, `1G`).

use std::time::Duration;

/// `5`, `2.5`, `5s`, `500ms` → Duration.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, scale) = if let Some(n) = s.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else {
        (s, 1.0)
    };
    match num.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 && v * scale < 1e9 => {
            Ok(Duration::from_secs_f64(v * scale))
        }
        _ => Err(format!("'{s}' is not a duration (e.g. 5, 2.5, 500ms)")),
    }
}

/// `65536`, `64KiB`, `64k`, `64MiB`, `1G` → bytes (binary multiples).
pub fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return Err(format!("'{s}' is not a size (e.g. 65536, 64KiB, 64MiB)")),
    };
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .filter(|&n| n > 0 && n <= usize::MAX as u64)
        .map(|n| n as usize)
        .ok_or_else(|| format!("'{s}' is not a size (e.g. 65536, 64KiB, 64MiB)"))
}
