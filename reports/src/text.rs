//! Plain-text helpers of the terminal renderers: control characters made visible, and word wrapping.

pub use edgebench_core::text::terminal_safe;

/// `s` fit for one Markdown table cell or inline text: control characters made visible as [`terminal_safe`] does,
/// a newline shown as a space, `|` escaped, and `<`, `>`, `` ` `` replaced by entities, so a string from a file
/// cannot end a cell, open an HTML tag or a code span in a rendered comment, or drive a terminal that shows the raw
/// text.
pub fn markdown_safe(s: &str) -> String {
    terminal_safe(&s.replace('\n', " "))
        .replace('|', "\\|")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('`', "&#96;")
}

/// `text` wrapped at spaces to lines of at most `width` characters, continuation lines starting with `indent`; a
/// word longer than a line (a path, a hash) stays whole on its own line.
pub fn wrap(text: &str, width: usize, indent: &str) -> String {
    let mut out = String::new();
    for (n, para) in text.split('\n').enumerate() {
        if n > 0 {
            out.push('\n');
        }
        let mut line = String::new();
        let (mut len, mut fresh) = (0, true);
        for word in para.split(' ') {
            let w = word.chars().count();
            if !fresh && len + 1 + w > width {
                out.push_str(&line);
                out.push('\n');
                line = indent.to_string();
                (len, fresh) = (indent.chars().count(), true);
            }
            if !fresh {
                line.push(' ');
                len += 1;
            }
            line.push_str(word);
            len += w;
            fresh = false;
        }
        out.push_str(&line);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_shown_not_obeyed() {
        assert_eq!(terminal_safe("a\x1b[2Jb\x07\tc\nd"), "a\\u{1b}[2Jb\\u{7}\\u{9}c\nd");
        assert_eq!(terminal_safe("naïve → ok"), "naïve → ok");
    }

    #[test]
    fn wraps_at_spaces_within_the_width() {
        let text = "energy: not measured, unavailable: no energy meter could be read (rapl: missing)";
        let w = wrap(text, 30, "    ");
        assert!(w.lines().all(|l| l.chars().count() <= 30), "{w}");
        assert_eq!(w.split_whitespace().collect::<Vec<_>>(), text.split_whitespace().collect::<Vec<_>>());
        assert!(w.lines().skip(1).all(|l| l.starts_with("    ")), "{w}");
        assert_eq!(wrap("short", 30, "  "), "short");
        let long = "x".repeat(40);
        assert_eq!(wrap(&format!("a {long} b"), 30, ""), format!("a\n{long}\nb"));
    }
}
