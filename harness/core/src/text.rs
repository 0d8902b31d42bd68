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
