//! Text from files a stranger may have written, made safe to print.
//!
//! A file name, a certificate's O value or a CSR's CN reaches a terminal in
//! `admin list`, `cluster check` and error messages. Control characters
//! (ESC, CR, LF, the C1 set) can clear the screen or rewrite lines, and
//! Unicode format characters (bidi overrides such as U+202E, zero-width
//! spaces) and line/paragraph separators make text read differently from
//! what it is. Every such character is shown as `\u{..}`, as Rust's
//! `escape_debug` would; everything else is printed as it is.

use std::borrow::Cow;
use std::path::Path;

/// Unicode general category Cf (format), plus Zl and Zp: invisible
/// characters that change how the text around them is shown.
fn is_format_or_separator(c: char) -> bool {
    matches!(c as u32,
        0x00AD
        | 0x0600..=0x0605
        | 0x061C
        | 0x06DD
        | 0x070F
        | 0x0890..=0x0891
        | 0x08E2
        | 0x180E
        | 0x200B..=0x200F
        | 0x2028..=0x202E
        | 0x2060..=0x2064
        | 0x2066..=0x206F
        | 0xFEFF
        | 0xFFF9..=0xFFFB
        | 0x110BD
        | 0x110CD
        | 0x13430..=0x1343F
        | 0x1BCA0..=0x1BCA3
        | 0x1D173..=0x1D17A
        | 0xE0001
        | 0xE0020..=0xE007F)
}

/// Whether `c` must not reach a terminal as it is.
pub fn is_unsafe(c: char) -> bool {
    c.is_control() || is_format_or_separator(c)
}

/// `s` with every control, bidi, invisible or separator character escaped.
pub fn escape(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_unsafe) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if is_unsafe(c) {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// A path for a message: lossy UTF-8, then escaped.
pub fn escape_path(p: &Path) -> String {
    escape(&p.to_string_lossy()).into_owned()
}

/// JSON text with the invisible characters serde_json leaves raw (it
/// escapes only C0 controls) written as `\uXXXX` escapes. Such characters
/// can only sit inside JSON strings, where the escape means the same.
pub fn escape_json(json: &str) -> Cow<'_, str> {
    if !json.chars().any(is_unsafe) {
        return Cow::Borrowed(json);
    }
    let mut out = String::with_capacity(json.len() + 8);
    for c in json.chars() {
        // Newlines and indentation between tokens are serde's own.
        if is_unsafe(c) && c != '\n' {
            let mut buf = [0u16; 2];
            for unit in c.encode_utf16(&mut buf) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dangerous_characters_are_escaped() {
        assert_eq!(escape("alice"), "alice");
        assert_eq!(escape("système"), "système");
        assert_eq!(escape("a\x1b[2Jb"), "a\\u{1b}[2Jb");
        assert_eq!(escape("x\r\ny"), "x\\u{d}\\u{a}y");
        assert_eq!(escape("\u{202e}gpj"), "\\u{202e}gpj");
        assert_eq!(escape("a\u{200b}b\u{2028}"), "a\\u{200b}b\\u{2028}");
        assert_eq!(escape("\u{85}"), "\\u{85}");
    }

    #[test]
    fn json_stays_json() {
        let v = serde_json::json!({"o": "a\u{202e}b\u{1b}"});
        let text = serde_json::to_string_pretty(&v).unwrap();
        let safe = escape_json(&text);
        assert!(!safe.chars().any(|c| is_unsafe(c) && c != '\n'));
        let back: serde_json::Value = serde_json::from_str(&safe).unwrap();
        assert_eq!(back, v);
    }
}
