//! Who an approver is, as one comparable string: the identity named in a policy's `approvers`,
//! in an `allowed_signers` file and on the command line must compare equal when a human would
//! say they are the same, and must never compare equal by an invisible trick.
//!
//! [`normalise`] applies Unicode NFKC (fullwidth `ａ` is `a`, the ligature `ﬁ` is `fi`), then
//! Unicode lowercase, then NFKC again (lowercasing can leave a string that is not in NFKC, as
//! `İ` does), and trims surrounding white space. It refuses, instead of silently dropping, every
//! character that can make two identities look alike or make one look like another on a
//! terminal: controls (Cc, which include `\n`, `\t`, NUL and DEL), format characters (Cf: the
//! zero-width space and joiners, the bidi embeddings, overrides and isolates, the byte-order mark,
//! the soft hyphen, the invisible operators, the tag characters), the line and paragraph
//! separators, and invisible fillers and variation selectors. Refusing is what makes the result
//! safe to show and safe to compare: there is no hidden part to differ in.

use std::fmt;

use unicode_normalization::UnicodeNormalization;

use crate::escape::Escaped;

/// Longest identity accepted, in bytes after normalisation (OpenSSH's pattern limit is 1,023).
pub const MAX_PRINCIPAL_LEN: usize = 1_000;

/// Why an identity was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrincipalError {
    #[error("the identity is empty; give a user such as `appsec@example.com`")]
    Empty,
    #[error(
        "the identity `{identity}` contains {} at character {}: {}; type the identity again without it",
        CharName(*ch),
        at + 1,
        why(*ch)
    )]
    Forbidden {
        /// The identity as given, with control characters escaped for display.
        identity: String,
        /// The refused character.
        ch: char,
        /// Where it is: the 0-based index in characters of the identity as given.
        at: usize,
    },
    #[error(
        "the identity `{identity}…` is {len} bytes long, over the limit of {max}; use a shorter identity"
    )]
    TooLong {
        /// The start of the identity, escaped for display.
        identity: String,
        len: usize,
        max: usize,
    },
}

/// A character named for a message by its code point: `U+200B`.
struct CharName(char);

impl fmt::Display for CharName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "U+{:04X}", self.0 as u32)
    }
}

fn why(ch: char) -> &'static str {
    match ch {
        '\n' | '\r' | '\u{85}' | '\u{2028}' | '\u{2029}' => "a line break",
        '\0' => "a NUL byte",
        '\u{feff}' => "a byte-order mark",
        '\u{200b}'..='\u{200d}' | '\u{2060}' => "an invisible zero-width character",
        '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}' | '\u{61c}' => {
            "a bidirectional control, which reorders how text is shown"
        }
        c if c.is_control() => "a control character",
        _ => "an invisible or formatting character",
    }
}

/// Whether `c` is refused in an identity. Cc and Cf are the Unicode 15.1 general categories,
/// listed here because the standard library has no category table.
pub fn is_forbidden(c: char) -> bool {
    c.is_control()
        || matches!(c,
            // Cf (format)
            '\u{ad}'
            | '\u{600}'..='\u{605}'
            | '\u{61c}'
            | '\u{6dd}'
            | '\u{70f}'
            | '\u{890}'..='\u{891}'
            | '\u{8e2}'
            | '\u{180e}'
            | '\u{200b}'..='\u{200f}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206f}'
            | '\u{feff}'
            | '\u{fff9}'..='\u{fffb}'
            | '\u{110bd}'
            | '\u{110cd}'
            | '\u{13430}'..='\u{1343f}'
            | '\u{1bca0}'..='\u{1bca3}'
            | '\u{1d173}'..='\u{1d17a}'
            | '\u{e0001}'
            | '\u{e0020}'..='\u{e007f}'
            // line and paragraph separators (Zl, Zp)
            | '\u{2028}'
            | '\u{2029}'
            // invisible: combining grapheme joiner, Hangul fillers, Mongolian and other
            // variation selectors
            | '\u{34f}'
            | '\u{115f}'
            | '\u{1160}'
            | '\u{3164}'
            | '\u{ffa0}'
            | '\u{180b}'..='\u{180d}'
            | '\u{180f}'
            | '\u{fe00}'..='\u{fe0f}'
            | '\u{e0100}'..='\u{e01ef}')
}

/// The comparable form of an identity (see the module documentation).
pub fn normalise(raw: &str) -> Result<String, PrincipalError> {
    if let Some((at, ch)) = raw.chars().enumerate().find(|&(_, c)| is_forbidden(c)) {
        return Err(forbidden(raw, ch, at));
    }
    // A bound before the work: NFKC can grow a string, but by a bounded factor.
    if raw.len() > 4 * MAX_PRINCIPAL_LEN {
        return Err(too_long(raw, raw.len()));
    }
    let folded: String = raw
        .nfkc()
        .collect::<String>()
        .to_lowercase()
        .nfkc()
        .collect();
    // NFKC maps some visible characters to forbidden ones in principle; check the result too.
    if let Some(ch) = folded.chars().find(|&c| is_forbidden(c)) {
        let at = raw.chars().count().saturating_sub(1);
        return Err(forbidden(raw, ch, at));
    }
    let trimmed = folded.trim();
    if trimmed.is_empty() {
        return Err(PrincipalError::Empty);
    }
    if trimmed.len() > MAX_PRINCIPAL_LEN {
        return Err(too_long(raw, trimmed.len()));
    }
    Ok(trimmed.to_string())
}

fn forbidden(raw: &str, ch: char, at: usize) -> PrincipalError {
    PrincipalError::Forbidden {
        identity: display_start(raw),
        ch,
        at,
    }
}

fn too_long(raw: &str, len: usize) -> PrincipalError {
    PrincipalError::TooLong {
        identity: display_start(raw),
        len,
        max: MAX_PRINCIPAL_LEN,
    }
}

/// At most 64 characters of `raw`, escaped, for a message. Invisible characters that
/// [`Escaped`] leaves alone (a zero-width space) are shown as `\u{..}` too.
fn display_start(raw: &str) -> String {
    let mut out = String::new();
    for c in raw.chars().take(64) {
        if is_forbidden(c) && !crate::escape::is_unsafe_char(c) {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push_str(&Escaped(c.encode_utf8(&mut [0; 4])).to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn same(a: &str, b: &str) {
        assert_eq!(normalise(a), normalise(b), "{a:?} vs {b:?}");
        assert!(normalise(a).is_ok(), "{a:?}");
    }

    #[test]
    fn case_space_and_width_do_not_matter() {
        same("APPSEC@Example.com", "appsec@example.com");
        same(" appsec@example.com ", "appsec@example.com");
        same("\u{3000}appsec@example.com\u{a0}", "appsec@example.com");
        same("ａｐｐｓｅｃ@example.com", "appsec@example.com");
        same("ＡＰＰＳＥＣ＠ＥＸＡＭＰＬＥ．ＣＯＭ", "appsec@example.com");
        same("\u{fb01}@example.com", "fi@example.com");
        assert_eq!(
            normalise("Appsec@Example.com").unwrap(),
            "appsec@example.com"
        );
        // Composed and decomposed forms are one identity.
        same("jos\u{e9}@example.com", "jose\u{301}@example.com");
        same("JOS\u{c9}@example.com", "jos\u{e9}@example.com");
        // Lowercase of U+0130 is `i` + U+0307: normalised again, the same as typing it.
        same("\u{130}@x", "i\u{307}@x");
    }

    #[test]
    fn different_identities_stay_different() {
        assert_ne!(
            normalise("appsec@example.com"),
            normalise("appsec@example.org")
        );
        assert_ne!(normalise("app sec@x"), normalise("appsec@x"));
        // Cyrillic `а` is not Latin `a`: NFKC does not fold confusables, and must not claim to.
        assert_ne!(normalise("\u{430}ppsec@x"), normalise("appsec@x"));
    }

    fn refused(raw: &str, ch: char, at: usize) {
        match normalise(raw) {
            Err(PrincipalError::Forbidden {
                ch: c,
                at: a,
                identity,
            }) => {
                assert_eq!((c, a), (ch, at), "{raw:?}");
                assert!(
                    !identity.chars().any(is_forbidden),
                    "{identity:?} is shown escaped"
                );
            }
            other => panic!("{raw:?} gave {other:?}"),
        }
    }

    #[test]
    fn invisible_and_control_characters_are_refused() {
        refused("app\u{200b}sec@example.com", '\u{200b}', 3);
        refused("\u{202e}moc.elpmaxe@cesppa", '\u{202e}', 0);
        refused("\u{feff}appsec@example.com", '\u{feff}', 0);
        refused("appsec@example.com\0", '\0', 18);
        refused("appsec@example.com\n", '\n', 18);
        refused("app\nsec@example.com", '\n', 3);
        refused("appsec\r@x", '\r', 6);
        refused("a\tb@x", '\t', 1);
        refused("ap\u{ad}psec@x", '\u{ad}', 2);
        refused("a\u{2066}b", '\u{2066}', 1);
        refused("a\u{2028}b", '\u{2028}', 1);
        refused("a\u{fe0f}b", '\u{fe0f}', 1);
        refused("a\u{e0041}b", '\u{e0041}', 1);
        refused("a\u{7f}", '\u{7f}', 1);
        refused("a\u{9b}", '\u{9b}', 1);
        let msg = normalise("app\u{200b}sec@x").unwrap_err().to_string();
        assert!(
            msg.contains("U+200B") && msg.contains("character 4"),
            "{msg}"
        );
        assert!(msg.contains("app\\u{200b}sec@x"), "{msg}");
    }

    #[test]
    fn empty_and_overlong_are_refused() {
        assert_eq!(normalise(""), Err(PrincipalError::Empty));
        assert_eq!(normalise("   "), Err(PrincipalError::Empty));
        assert_eq!(normalise("\u{3000}"), Err(PrincipalError::Empty));
        let long = "a".repeat(MAX_PRINCIPAL_LEN + 1);
        assert!(matches!(
            normalise(&long),
            Err(PrincipalError::TooLong { .. })
        ));
        let huge = "ﷺ".repeat(10_000);
        assert!(matches!(
            normalise(&huge),
            Err(PrincipalError::TooLong { .. })
        ));
        assert!(normalise(&"a".repeat(MAX_PRINCIPAL_LEN)).is_ok());
    }
}
