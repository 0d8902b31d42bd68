//! Strings that came from files made safe to print: control characters shown, never sent to a terminal.

/// `s` with every control character except newline shown as `\u{..}`, so a string that came from a file (a model
/// name, a backend's message) cannot move the cursor, clear the screen or retitle the terminal.
pub fn terminal_safe(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() && c != '\n' {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

/// `s` as one word of a POSIX shell command: as is when it is plainly safe, else single-quoted.
pub fn shell_word(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "@%+=:,./_-".contains(c)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// `bytes` in binary units, exact where it divides (`1 GiB`, `96 MiB`, `1.5 GiB`, `1000 B`).
pub fn bytes_iec(bytes: u64) -> String {
    const UNITS: [(&str, u64); 3] = [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
    for (unit, size) in UNITS {
        if bytes >= size {
            let v = bytes as f64 / size as f64;
            return if bytes.is_multiple_of(size) {
                format!("{} {unit}", bytes / size)
            } else {
                format!("{v:.1} {unit}")
            };
        }
    }
    format!("{bytes} B")
}

/// Parses a size such as `1GiB`, `512 MiB`, `1.5G`, `200M` or `4096` (bytes). Suffixes are binary (K, M, G = KiB,
/// MiB, GiB); a decimal `KB`/`MB`/`GB` is refused as ambiguous.
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = (&t[..split], t[split..].trim());
    let value: f64 = num.parse().map_err(|_| format!("`{s}` is not a size (e.g. 1GiB, 512MiB, 200M)"))?;
    let scale: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "kb" | "mb" | "gb" => return Err(format!("`{s}`: say KiB, MiB or GiB (binary units) to avoid ambiguity")),
        other => return Err(format!("`{s}`: unknown unit `{other}` (B, KiB, MiB, GiB)")),
    };
    let bytes = value * scale as f64;
    if !bytes.is_finite() || bytes < 1.0 || bytes > u64::MAX as f64 / 2.0 {
        return Err(format!("`{s}` is out of range"));
    }
    Ok(bytes.round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_round_trip_and_bad_ones_are_named() {
        assert_eq!(parse_bytes("1GiB"), Ok(1 << 30));
        assert_eq!(parse_bytes("96 MiB"), Ok(96 << 20));
        assert_eq!(parse_bytes("1.5G"), Ok(3 << 29));
        assert_eq!(parse_bytes("4096"), Ok(4096));
        assert!(parse_bytes("1GB").unwrap_err().contains("binary"));
        assert!(parse_bytes("12 parsecs").unwrap_err().contains("parsecs"));
        assert!(parse_bytes("0").is_err());
        assert!(parse_bytes("GiB").is_err());
        assert_eq!(bytes_iec(1 << 30), "1 GiB");
        assert_eq!(bytes_iec(3 << 29), "1.5 GiB");
        assert_eq!(bytes_iec(96 << 20), "96 MiB");
        assert_eq!(bytes_iec(1000), "1000 B");
    }
}
