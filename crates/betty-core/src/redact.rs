//! Secrets redaction: what every record, listing, notification and error message passes through
//! before it leaves the process or reaches a file (events, audit entries, approval requests).
//!
//! Two rules, applied together by [`redact_value`] (JSON) and [`redact_text`] (free text):
//!
//! - **Keys** ([`is_secret_key`]): a key names a secret when one of its words (split on
//!   anything not a letter or digit and at camelCase humps, compared case-insensitively) is,
//!   ends with, or is the plural of `password`, `passwd`, `pwd`, `passphrase`, `secret`,
//!   `credential`, `cookie`, `authorization`, `apikey`, `privatekey`, `token` (`db_secrets`,
//!   `X-Auth-Token`, `sessionToken`, `dbpassword`, `Set-Cookie`), the word `auth`, or two adjacent words
//!   form one (`api_key`, `api-key`, `private_key`, `access_key`, `secret_key`, `signing_key`).
//!   The value of such a key is replaced whole, whatever its type.
//!   Not secrets, because they are data a reader needs: token *counts* (`tokens` on its own
//!   as in `max_tokens`/`tokens_used`/`input_tokens`, and `token` followed by `count`,
//!   `counts`, `limit`, `usage`, `used`, `budget`, `total`, `type` or `kind`), `author`,
//!   `keyboard`, `passed`, `tokenizer`, `secretary`.
//! - **Values**, whatever the key: `Bearer …`/`Basic …`/`Token …` credentials (the scheme is
//!   kept), the password of URL user-info (`https://user:[REDACTED]@host/`) or a token used as
//!   the user, webhook URLs (Slack `hooks.slack.com/services/…`, Discord `…/api/webhooks/…`,
//!   Teams `….webhook.office.com/…`: the host is kept, the path redacted), `name=value` where the
//!   name is a secret key (`--password=…`, `DB_TOKEN=…`) or a URL query parameter `key`, `sig`
//!   or `signature`, and well-known credentials anywhere in the text (GitHub, GitLab, Slack,
//!   npm, OpenAI-style `sk-`, Google `AIza`, AWS access key ids, JWTs, PEM private keys).
//!
//! Redaction is idempotent and never panics: every index is the position of an ASCII byte, so
//! every slice falls on a character boundary whatever the text around it.

use std::borrow::Cow;

use serde_json::Value;

/// What replaces a redacted value.
pub const REDACTED: &str = "[REDACTED]";

/// Replaces, in place, the value of every key that names a secret and every secret inside a
/// string (see the module documentation).
pub fn redact_value(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for (k, child) in m.iter_mut() {
                if is_secret_key(k) && !child.is_null() {
                    if child.as_str() != Some(REDACTED) {
                        *child = Value::String(REDACTED.into());
                    }
                } else {
                    redact_value(child);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact_value),
        Value::String(s) => {
            if let Cow::Owned(r) = redact_text(s) {
                *s = r;
            }
        }
        _ => {}
    }
}

/// A redacted copy of `v`.
pub fn redacted(v: &Value) -> Value {
    let mut v = v.clone();
    redact_value(&mut v);
    v
}

/// Whether redaction would change `v` (so a caller can keep the exact original bytes).
pub fn needs_redaction(v: &Value) -> bool {
    match v {
        Value::Object(m) => m.iter().any(|(k, child)| {
            (is_secret_key(k) && !child.is_null() && child.as_str() != Some(REDACTED))
                || needs_redaction(child)
        }),
        Value::Array(items) => items.iter().any(needs_redaction),
        Value::String(s) => matches!(redact_text(s), Cow::Owned(_)),
        _ => false,
    }
}

/// Whether a key names a secret (see the module documentation for the rule and the exceptions).
pub fn is_secret_key(key: &str) -> bool {
    // Stems matched as a whole word, a word's end (`dbpassword`) or a plural (`secrets`).
    const STEMS: &[&str] = &[
        "password",
        "passwd",
        "pwd",
        "passphrase",
        "secret",
        "credential",
        "cookie",
        "authorization",
        "apikey",
        "privatekey",
    ];
    const PAIRS: &[(&str, &str)] = &[
        ("api", "key"),
        ("private", "key"),
        ("access", "key"),
        ("secret", "key"),
        ("signing", "key"),
        ("client", "secret"),
        ("priv", "key"),
    ];
    const COUNTS: &[&str] = &[
        "count", "counts", "limit", "usage", "used", "budget", "total", "type", "kind",
    ];
    let ends_with_ci = |w: &str, stem: &str| {
        w.len() >= stem.len()
            && w.get(w.len() - stem.len()..)
                .is_some_and(|end| end.eq_ignore_ascii_case(stem))
    };
    let stem_word = |w: &str, stem: &str| {
        ends_with_ci(w, stem)
            || w.strip_suffix(['s', 'S'])
                .is_some_and(|w| ends_with_ci(w, stem))
    };
    // Called for every key of every event: compares in place, allocates nothing.
    let mut words = key_words(key).peekable();
    let mut prev: Option<&str> = None;
    while let Some(w) = words.next() {
        if STEMS.iter().any(|s| stem_word(w, s)) || w.eq_ignore_ascii_case("auth") {
            return true;
        }
        // `token`, `sessiontoken`, `authToken`: a secret, unless a count follows (`token_count`).
        if ends_with_ci(w, "token")
            && !words
                .peek()
                .is_some_and(|n| COUNTS.iter().any(|c| c.eq_ignore_ascii_case(n)))
        {
            return true;
        }
        if prev.is_some_and(|p| {
            PAIRS
                .iter()
                .any(|(a, b)| a.eq_ignore_ascii_case(p) && stem_word(w, b))
        }) {
            return true;
        }
        // A stem split by case (`PassWord`, `passWord`, `SecRet`): the two words together.
        if let Some(p) = prev
            && p.len() + w.len() <= 64
        {
            let mut joined = [0u8; 64];
            joined[..p.len()].copy_from_slice(p.as_bytes());
            joined[p.len()..p.len() + w.len()].copy_from_slice(w.as_bytes());
            // Both are ASCII alphanumeric words, so the joined bytes are UTF-8.
            if let Ok(j) = std::str::from_utf8(&joined[..p.len() + w.len()])
                && STEMS.iter().any(|s| stem_word(j, s))
            {
                return true;
            }
        }
        prev = Some(w);
    }
    false
}

/// The words of a key: split on anything not an ASCII letter or digit, and where a lowercase
/// letter or digit is followed by an uppercase one (`apiKey` is `api`, `Key`).
fn key_words(key: &str) -> impl Iterator<Item = &str> {
    let b = key.as_bytes();
    let mut i = 0;
    std::iter::from_fn(move || {
        while i < b.len() && !b[i].is_ascii_alphanumeric() {
            i += 1;
        }
        if i == b.len() {
            return None;
        }
        let start = i;
        let mut prev_lower = false;
        while i < b.len() && b[i].is_ascii_alphanumeric() {
            if b[i].is_ascii_uppercase() && prev_lower {
                break;
            }
            prev_lower = b[i].is_ascii_lowercase() || b[i].is_ascii_digit();
            i += 1;
        }
        // Both ends sit next to ASCII bytes (or the ends of the key): character boundaries.
        key.get(start..i)
    })
}

/// Whether the whole of `s` is one well-known credential (a PEM private key, a bearer token, a
/// GitHub/Slack/OpenAI/AWS key).
pub fn looks_like_credential(s: &str) -> bool {
    let t = s.trim();
    !t.is_empty()
        && match secret_ranges(t).as_slice() {
            [(start, end)] => {
                let before = t.get(..*start).unwrap_or_default().trim();
                *end == t.len()
                    && (before.is_empty()
                        || ["bearer", "basic", "token"]
                            .iter()
                            .any(|s| before.eq_ignore_ascii_case(s)))
            }
            _ => false,
        }
}

/// `s` with every secret it carries replaced by [`REDACTED`]; borrowed when there was none.
pub fn redact_text(s: &str) -> Cow<'_, str> {
    let ranges = secret_ranges(s);
    if ranges.is_empty() {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut copied = 0;
    for (start, end) in ranges {
        out.push_str(s.get(copied..start).unwrap_or_default());
        out.push_str(REDACTED);
        copied = end;
    }
    out.push_str(s.get(copied..).unwrap_or_default());
    if out == s {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(out)
    }
}

const WORD: fn(u8) -> bool = |c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-';
/// Characters of a token (base64, base64url, JWT, hex).
const TOKEN: fn(u8) -> bool = |c| c.is_ascii_alphanumeric() || b"._~+/=-".contains(&c);
/// Where a URL or an unquoted `name=value` value ends.
const VALUE_END: fn(u8) -> bool =
    |c| c.is_ascii_whitespace() || c.is_ascii_control() || b"\"'`<>&;".contains(&c);

fn run(b: &[u8], from: usize, ok: impl Fn(u8) -> bool) -> usize {
    let mut i = from;
    while i < b.len() && ok(b[i]) {
        i += 1;
    }
    i
}

/// A token that is plausibly a credential rather than a word: 8+ characters with a digit, a
/// symbol or an inner capital (`dXNlcjpwYXNz`, a JWT), not `authentication`.
fn credential_shaped(tok: &[u8]) -> bool {
    tok.len() >= 8
        && tok.iter().enumerate().any(|(i, &c)| {
            c.is_ascii_digit() || b"._~+/=-".contains(&c) || (i > 0 && c.is_ascii_uppercase())
        })
}

/// Sorted, merged byte ranges of the secrets in `s`.
fn secret_ranges(s: &str) -> Vec<(usize, usize)> {
    let b = s.as_bytes();
    let mut ranges: Vec<(usize, usize)> = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let word_start = c.is_ascii_alphanumeric() && (i == 0 || !WORD(b[i - 1]));
        if c == b'-' && b[i..].starts_with(b"-----BEGIN ") {
            if let Some(end) = pem_block(b, i) {
                ranges.push((i, end));
                i = end;
                continue;
            }
        } else if c == b'=' {
            if let Some(r) = assignment(b, i) {
                ranges.push(r);
                i = r.1;
                continue;
            }
        } else if word_start {
            let w_end = run(b, i, WORD);
            if b[w_end..].starts_with(b"://") || (w_end < b.len() && b[w_end] == b'+') {
                url(b, i, &mut ranges);
            } else if let Some(r) = scheme_credential(b, i, w_end) {
                ranges.push(r);
                i = r.1;
                continue;
            } else if let Some(end) = known_token(b, i) {
                ranges.push((i, end));
                i = end;
                continue;
            }
            i = w_end.max(i + 1);
            continue;
        }
        i += 1;
    }
    ranges.sort_unstable();
    let mut merged: Vec<(usize, usize)> = Vec::with_capacity(ranges.len());
    for (a, z) in ranges {
        match merged.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(z),
            _ => merged.push((a, z)),
        }
    }
    merged
}

/// `-----BEGIN … PRIVATE KEY-----` up to its `-----END …-----` line (or the end of the text).
fn pem_block(b: &[u8], start: usize) -> Option<usize> {
    let label_start = start + "-----BEGIN ".len();
    let label_end = label_start + find(&b[label_start..], b"-----")?;
    find(&b[label_start..label_end], b"PRIVATE KEY")?;
    let after = label_end + 5;
    Some(match find(&b[after..], b"-----END") {
        Some(e) => {
            let e = after + e + "-----END".len();
            find(&b[e..], b"-----").map_or(b.len(), |f| e + f + 5)
        }
        None => b.len(),
    })
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// `name=value` where the name is a secret key, or a query parameter `key`/`sig`/`signature`:
/// the value's range.
fn assignment(b: &[u8], eq: usize) -> Option<(usize, usize)> {
    let key_start = (0..eq)
        .rev()
        .take_while(|&k| b[k].is_ascii_alphanumeric() || b"_.-".contains(&b[k]))
        .last()?;
    let key = std::str::from_utf8(&b[key_start..eq]).ok()?;
    let in_query = key_start > 0 && b"?&;".contains(&b[key_start - 1]);
    let query_secret = in_query
        && ["key", "sig", "signature"]
            .iter()
            .any(|k| k.eq_ignore_ascii_case(key));
    if !(is_secret_key(key) || query_secret) {
        return None;
    }
    let v = eq + 1;
    let (start, end) = match b.get(v) {
        Some(&q) if q == b'"' || q == b'\'' => {
            let close = b[v + 1..]
                .iter()
                .position(|&c| c == q)
                .map_or(b.len(), |p| v + 1 + p);
            (v + 1, close)
        }
        _ => (v, run(b, v, |c| !VALUE_END(c))),
    };
    (end > start).then_some((start, end))
}

/// `Bearer <token>`, `Basic <token>`, `Token <token>`: the token's range.
fn scheme_credential(b: &[u8], start: usize, w_end: usize) -> Option<(usize, usize)> {
    let word = &b[start..w_end];
    if !["bearer", "basic", "token"]
        .iter()
        .any(|s| word.eq_ignore_ascii_case(s.as_bytes()))
    {
        return None;
    }
    let t = run(b, w_end, |c| c == b' ' || c == b'\t');
    if t == w_end {
        return None;
    }
    let t_end = run(b, t, TOKEN);
    credential_shaped(&b[t..t_end]).then_some((t, t_end))
}

/// The end of a well-known credential starting at `i` (a word start).
fn known_token(b: &[u8], i: usize) -> Option<usize> {
    const PREFIXES: &[&[u8]] = &[
        b"ghp_",
        b"gho_",
        b"ghs_",
        b"ghu_",
        b"ghr_",
        b"github_pat_",
        b"glpat-",
        b"xoxb-",
        b"xoxp-",
        b"xoxa-",
        b"xoxs-",
        b"xapp-",
        b"npm_",
        b"sk-",
    ];
    let rest = &b[i..];
    let word_end = run(b, i, WORD);
    let word_len = word_end - i;
    if let Some(p) = PREFIXES.iter().find(|p| rest.starts_with(p)) {
        return (word_len >= p.len() + 20).then_some(word_end);
    }
    let upper_digits = |r: &[u8]| {
        r.iter()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
    };
    if (rest.starts_with(b"AKIA") || rest.starts_with(b"ASIA"))
        && word_len == 20
        && upper_digits(&rest[4..20])
    {
        return Some(word_end);
    }
    if rest.starts_with(b"AIza") && word_len >= 35 {
        return Some(word_end);
    }
    // A JWT: `eyJ` (base64url of `{"`) and three dot-separated parts.
    if rest.starts_with(b"eyJ") {
        let end = run(b, i, |c| c.is_ascii_alphanumeric() || b"_-.".contains(&c));
        let dots = b[i..end].iter().filter(|&&c| c == b'.').count();
        return (dots == 2 && end - i >= 30).then_some(end);
    }
    None
}

/// A URL starting at `start`: the password of its user-info (or a token used as the user), and
/// the path of a known webhook host.
fn url(b: &[u8], start: usize, ranges: &mut Vec<(usize, usize)>) {
    let scheme_end = run(b, start, |c| {
        c.is_ascii_alphanumeric() || b"+.-".contains(&c)
    });
    if !b[scheme_end..].starts_with(b"://") {
        return;
    }
    let auth_start = scheme_end + 3;
    let url_end = run(b, auth_start, |c| !VALUE_END(c));
    let auth_end = auth_start
        + b[auth_start..url_end]
            .iter()
            .position(|c| b"/?#".contains(c))
            .unwrap_or(url_end - auth_start);
    let authority = &b[auth_start..auth_end];
    let mut host_start = auth_start;
    if let Some(at) = authority.iter().rposition(|&c| c == b'@') {
        let userinfo = &authority[..at];
        match userinfo.iter().position(|&c| c == b':') {
            Some(colon) if colon + 1 < at => ranges.push((auth_start + colon + 1, auth_start + at)),
            Some(_) => {}
            None if userinfo.len() >= 20 && credential_shaped(userinfo)
                || known_token(b, auth_start).is_some() =>
            {
                ranges.push((auth_start, auth_start + at))
            }
            None => {}
        }
        host_start = auth_start + at + 1;
    }
    let host_end = host_start
        + b[host_start..auth_end]
            .iter()
            .position(|&c| c == b':')
            .unwrap_or(auth_end - host_start);
    let host = std::str::from_utf8(&b[host_start..host_end])
        .unwrap_or_default()
        .to_ascii_lowercase();
    let path = &b[auth_end..url_end];
    let secret_from = if host == "hooks.slack.com" {
        ["/services/", "/workflows/", "/triggers/"]
            .iter()
            .find(|p| path.starts_with(p.as_bytes()))
            .map(|p| p.len())
    } else if [
        "discord.com",
        "discordapp.com",
        "ptb.discord.com",
        "canary.discord.com",
    ]
    .contains(&host.as_str())
    {
        find(path, b"/webhooks/").map(|p| p + "/webhooks/".len())
    } else if host.ends_with(".webhook.office.com") || host.ends_with(".logic.azure.com") {
        path.first().map(|_| 1)
    } else {
        None
    };
    if let Some(off) = secret_from {
        let from = auth_end + off;
        if from < url_end {
            ranges.push((from, url_end));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secret_keys() {
        for split_by_case in ["PassWord", "passWord", "dbPassWord", "SecRet", "priv_key"] {
            assert!(is_secret_key(split_by_case), "{split_by_case}");
        }

        for k in [
            "password",
            "API_KEY",
            "api-key",
            "apikey",
            "apiKey",
            "x-auth-token",
            "X-Auth-Token",
            "client_secret",
            "Authorization",
            "proxy-authorization",
            "db.password",
            "dbpassword",
            "DB_PASSWORDS",
            "db_secrets",
            "privateKey",
            "private_key",
            "session_token",
            "sessionToken",
            "SESSIONTOKEN",
            "access_token",
            "refresh-token",
            "token",
            "credentials",
            "aws_credential",
            "Cookie",
            "set-cookie",
            "cookies",
            "passwd",
            "auth",
            "secret_key_base",
            "signingKey",
        ] {
            assert!(is_secret_key(k), "{k}");
        }
        for k in [
            "max_tokens",
            "tokens_used",
            "input_tokens",
            "outputTokens",
            "token_count",
            "tokenCount",
            "token_limit",
            "token_usage",
            "token_type",
            "tokenizer",
            "author",
            "authored_by",
            "session_id",
            "keyboard",
            "key",
            "passed",
            "secretary",
            "monkey",
            "",
            "日本語",
        ] {
            assert!(!is_secret_key(k), "{k}");
        }
    }

    fn check(input: &str, expected: &str) {
        assert_eq!(redact_text(input), expected, "{input:?}");
        // Idempotent.
        assert_eq!(redact_text(expected), expected, "{expected:?}");
    }

    #[test]
    fn values_that_carry_secrets() {
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U";
        for (input, expected) in [
            ("nothing here", "nothing here"),
            (
                "Authorization: Bearer abc.DEF-123_456",
                "Authorization: Bearer [REDACTED]",
            ),
            ("Basic dXNlcjpwYXNz", "Basic [REDACTED]"),
            ("basic authentication is off", "basic authentication is off"),
            ("the token expired", "the token expired"),
            (
                "clone https://ada:hunter2@git.example.com/r.git now",
                "clone https://ada:[REDACTED]@git.example.com/r.git now",
            ),
            ("ssh://git@github.com/x", "ssh://git@github.com/x"),
            (
                "https://ghp_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@github.com/x",
                "https://[REDACTED]@github.com/x",
            ),
            (
                "`http://hooks.slack.com/services/T000/B000/XXXX` failed",
                "`http://hooks.slack.com/services/[REDACTED]` failed",
            ),
            (
                "https://discord.com/api/webhooks/123/abcDEF",
                "https://discord.com/api/webhooks/[REDACTED]",
            ),
            (
                "http://ci.example.com/hook?token=s3cr3t&x=1",
                "http://ci.example.com/hook?token=[REDACTED]&x=1",
            ),
            (
                "http://h/x?key=AIzaXYZ&sig=abc;signature=zz",
                "http://h/x?key=[REDACTED]&sig=[REDACTED];signature=[REDACTED]",
            ),
            ("monkey=banana key=value", "monkey=banana key=value"),
            (
                "--password=hunter2 --user=x",
                "--password=[REDACTED] --user=x",
            ),
            ("DB_TOKEN=\"a b c\" rest", "DB_TOKEN=\"[REDACTED]\" rest"),
            ("token_count=5", "token_count=5"),
            (
                "key ghp_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa, then",
                "key [REDACTED], then",
            ),
            (
                "task-aaaaaaaaaaaaaaaaaaaaaaaa",
                "task-aaaaaaaaaaaaaaaaaaaaaaaa",
            ),
            ("sk-aaaaaaaaaaaaaaaaaaaaaaaa", "[REDACTED]"),
            ("id AKIAABCDEFGHIJKLMNOP.", "id [REDACTED]."),
            (
                "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----\nafter",
                "[REDACTED]\nafter",
            ),
            ("-----BEGIN PUBLIC KEY-----", "-----BEGIN PUBLIC KEY-----"),
            ("日本語 password=秘密 ✅", "日本語 password=[REDACTED] ✅"),
        ] {
            check(input, expected);
        }
        check(&format!("jwt {jwt}"), "jwt [REDACTED]");
        assert!(looks_like_credential(
            "Bearer abcdefghijklmnopqrstuvwxyz012"
        ));
        assert!(looks_like_credential("ghp_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));
        assert!(!looks_like_credential("hello"));
    }

    #[test]
    fn json_values_by_key_and_by_content() {
        let mut v = json!({
            "api_key": "abc",
            "db_secrets": {"a": 1},
            "max_tokens": 5,
            "token_count": 7,
            "password": null,
            "headers": {"Authorization": "Basic x", "accept": "json"},
            "note": "ghp_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "hook": "http://hooks.slack.com/services/T/B/X",
            "list": ["https://u:p@h/", 3, true],
        });
        assert!(needs_redaction(&v));
        redact_value(&mut v);
        assert_eq!(
            v,
            json!({
                "api_key": REDACTED,
                "db_secrets": REDACTED,
                "max_tokens": 5,
                "token_count": 7,
                "password": null,
                "headers": {"Authorization": REDACTED, "accept": "json"},
                "note": REDACTED,
                "hook": "http://hooks.slack.com/services/[REDACTED]",
                "list": ["https://u:[REDACTED]@h/", 3, true],
            })
        );
        assert!(!needs_redaction(&v));
        assert_eq!(redacted(&v), v);
    }

    /// Every combination of tricky pieces: no panic, idempotent, no secret piece survives.
    #[test]
    fn never_panics_and_is_idempotent_on_mixed_text() {
        let pieces = [
            "é",
            "日本",
            "🦀",
            "=",
            "://",
            "@",
            ":",
            "?",
            "&",
            "\"",
            "Bearer ",
            "token=",
            "x",
            "-----BEGIN ",
            "PRIVATE KEY-----",
            "ghp_",
            "aaaaaaaaaaaaaaaaaaaaaa",
            "\r\n",
            "AKIA",
            "hooks.slack.com/services/",
            "https",
            "/",
            "eyJ",
            ".",
        ];
        for a in pieces {
            for b in pieces {
                for c in pieces {
                    for d in ["", "é", "1"] {
                        let s = format!("{a}{b}{c}{d}");
                        let once = redact_text(&s).into_owned();
                        assert_eq!(redact_text(&once), once, "{s:?}");
                        let _ = is_secret_key(&s);
                        let _ = looks_like_credential(&s);
                    }
                }
            }
        }
        check("password=hunter2é", "password=[REDACTED]");
    }
}
