//! Showing untrusted text on a terminal: [`Escaped`] writes control characters as visible
//! escapes, so a skill name, a reason, a comment or a file name cannot move the cursor, rewrite
//! the screen, set the window title, hide text or reorder it.
//!
//! Escaped: every C0 control (`\n`, `\r`, `\t` by their names, the others as `\x1b`), DEL,
//! the C1 controls U+0080–U+009F (`\u{9b}` is a one-byte CSI on some terminals), the bidi
//! embeddings, overrides and isolates (U+202A–U+202E, U+2066–U+2069, the marks U+200E, U+200F
//! and U+061C: "Trojan Source"), the line and paragraph separators U+2028/U+2029, and the
//! invisible zero-width characters (U+200B, U+200C, U+2060–U+2064, U+FEFF; not the joiner
//! U+200D, which emoji sequences need), so two names cannot differ by what nobody sees.
//! [`EscapedLines`] keeps `\n` where a layout needs real lines (multi-line error messages).
//!
//! Display only: backslashes are not doubled (Windows paths and regex patterns stay readable),
//! so the escaped form is not meant to be parsed back. Machine formats (JSON) never go through
//! this: their own escaping keeps the exact text.

use std::borrow::Cow;
use std::fmt::{self, Write};

/// Text shown on one line with every control character escaped.
#[derive(Clone, Copy, Debug)]
pub struct Escaped<'a>(pub &'a str);

/// Text shown with real newlines kept and every other control character escaped.
#[derive(Clone, Copy, Debug)]
pub struct EscapedLines<'a>(pub &'a str);

/// Whether a character must not reach a terminal as is.
pub fn is_unsafe_char(c: char) -> bool {
    matches!(c,
        '\u{0}'..='\u{1f}'
        | '\u{7f}'..='\u{9f}'
        | '\u{200b}' | '\u{200c}' | '\u{200e}' | '\u{200f}' | '\u{061c}'
        | '\u{2060}'..='\u{2064}' | '\u{feff}'
        | '\u{202a}'..='\u{202e}'
        | '\u{2066}'..='\u{2069}'
        | '\u{2028}' | '\u{2029}')
}

fn write_escaped(f: &mut fmt::Formatter<'_>, s: &str, keep_newlines: bool) -> fmt::Result {
    let mut rest = s;
    while let Some(i) = rest.find(|c: char| is_unsafe_char(c) && !(keep_newlines && c == '\n')) {
        f.write_str(&rest[..i])?;
        let c = rest[i..].chars().next().unwrap_or_default();
        match c {
            '\n' => f.write_str("\\n")?,
            '\r' => f.write_str("\\r")?,
            '\t' => f.write_str("\\t")?,
            c if (c as u32) < 0x80 => write!(f, "\\x{:02x}", c as u32)?,
            c => write!(f, "\\u{{{:x}}}", c as u32)?,
        }
        rest = &rest[i + c.len_utf8()..];
    }
    f.write_str(rest)
}

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_escaped(f, self.0, false)
    }
}

impl fmt::Display for EscapedLines<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_escaped(f, self.0, true)
    }
}

/// `s` on one line with control characters escaped; borrowed when nothing needed escaping.
pub fn escape(s: &str) -> Cow<'_, str> {
    if s.chars().any(is_unsafe_char) {
        let mut out = String::with_capacity(s.len() + 8);
        let _ = write!(out, "{}", Escaped(s));
        Cow::Owned(out)
    } else {
        Cow::Borrowed(s)
    }
}

/// `s` with real newlines kept and every other control character escaped.
pub fn escape_lines(s: &str) -> Cow<'_, str> {
    if s.chars().any(|c| c != '\n' && is_unsafe_char(c)) {
        let mut out = String::with_capacity(s.len() + 8);
        let _ = write!(out, "{}", EscapedLines(s));
        Cow::Owned(out)
    } else {
        Cow::Borrowed(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_every_terminal_control_and_nothing_else() {
        for (input, expected) in [
            ("data.transform", "data.transform"),
            ("a\x1b[2J\x1b[Hb", "a\\x1b[2J\\x1b[Hb"),
            ("t\x1b]0;pwned\x07", "t\\x1b]0;pwned\\x07"),
            ("x\u{9b}31m", "x\\u{9b}31m"),
            ("line\nforged\r\tx", "line\\nforged\\r\\tx"),
            ("\u{0}\u{7f}", "\\x00\\x7f"),
            (
                "abc\u{202e}cba\u{2066}\u{2069}",
                "abc\\u{202e}cba\\u{2066}\\u{2069}",
            ),
            ("a\u{2028}b", "a\\u{2028}b"),
            ("日本語 ✅ C:\\x", "日本語 ✅ C:\\x"),
        ] {
            assert_eq!(Escaped(input).to_string(), expected, "{input:?}");
            assert_eq!(escape(input), expected);
        }
        assert!(matches!(escape("plain"), Cow::Borrowed(_)));
        assert_eq!(
            EscapedLines("one\ntwo\r\n\x1b[31m").to_string(),
            "one\ntwo\\r\n\\x1b[31m"
        );
        assert_eq!(escape_lines("a\nb"), "a\nb");
    }

    #[test]
    fn escaped_text_has_no_control_left_on_any_input() {
        let pieces = [
            "\x1b", "[", "é", "日", "\u{9b}", "\n", "\r", "\u{202e}", "a", "\\",
        ];
        for a in pieces {
            for b in pieces {
                for c in pieces {
                    let s = format!("{a}{b}{c}");
                    let e = Escaped(&s).to_string();
                    assert!(!e.chars().any(is_unsafe_char), "{s:?} -> {e:?}");
                    let l = EscapedLines(&s).to_string();
                    assert!(!l.chars().any(|c| c != '\n' && is_unsafe_char(c)));
                }
            }
        }
    }
}
