//! Secrets redaction: what every record, listing, notification and error message passes through
//! before it leaves the process or reaches a file (events, audit entries, approval requests).
//!
//! Two rules, applied together by [`redact_value`] (JSON) and [`redact_text`] (free text):
//!
//! - **Keys** ([`is_secret_key`]): a key names a secret when one of its words (split on
//!   anything not a letter or digit and at camelCase humps, compared case-insensitively) is,
//!   ends with, or is the plural of `password`, `passwd`, `pwd`, `passphrase`, `secret`,
//!   `credential`, `cookie`, `authorization`, `apikey`, `privatekey`, `privkey`, `sshkey`, `token`
//!   (`db_secrets`, `X-Auth-Token`, `sessionToken`, `dbpassword`, `Set-Cookie`), is one of the
//!   short words `auth`, `pw`, `cred`, `bearer`, `jwt` (whole, or plural: `MyDbPw`, `creds`; not
//!   `scrypt`), ends in the word `pass` after another (`DB_PASS`; not `pass` or `pass_count`, which
//!   count passes), or two adjacent words form one (`api_key`,
//!   `api-key`, `private_key`, `access_key`, `secret_key`, `signing_key`, `ssh_key`, `jwt_key`).
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
//! - **Command lines and headers** (`header`, `command_line`): `name: value` with a secret
//!   name (`Authorization: Basic …` keeps the scheme), `curl -u user:pass`, `--password VALUE`,
//!   `mysql -pSECRET`, `sshpass -p SECRET`, `redis-cli -a SECRET`.
//!
//! Redaction is idempotent, linear in the text's length, and never panics: every index is the position of an ASCII byte, so
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
        "privkey",
        "sshkey",
    ];
    // Short words matched only whole (or plural): `MyDbPw`, `creds`, `bearer`, `jwt`, where a
    // word's end would catch `bypass` or `scrypt`.
    const WORDS: &[&str] = &["pw", "cred", "bearer", "jwt"];
    const PAIRS: &[(&str, &str)] = &[
        ("api", "key"),
        ("private", "key"),
        ("access", "key"),
        ("secret", "key"),
        ("signing", "key"),
        ("client", "secret"),
        ("priv", "key"),
        ("ssh", "key"),
        ("jwt", "key"),
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
        let whole = |x: &str| {
            w.eq_ignore_ascii_case(x)
                || w.strip_suffix(['s', 'S'])
                    .is_some_and(|w| w.eq_ignore_ascii_case(x))
        };
        if WORDS.iter().any(|x| whole(x)) {
            return true;
        }
        // `DB_PASS`, `smtp_pass`: `pass` as the last word after another. On its own or first
        // (`pass`, `pass_count`, `pass_rate`) it counts passes, as a report's `summary.pass`.
        if w.eq_ignore_ascii_case("pass") && prev.is_some() && words.peek().is_none() {
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
        } else if c == b':' {
            if let Some(r) = header(b, i) {
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
    command_line(b, &mut ranges);
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

/// `name: value` (an HTTP header, a YAML line, `"name": "value"` in JSON shown as text) where
/// the name is a secret key: the value's range. For `Authorization`, `Proxy-Authorization`,
/// `Cookie` and `Set-Cookie` the whole value up to the end of the line (or a quote) is
/// redacted, keeping a leading scheme (`Basic`, `Bearer`, ...). For any other secret key the
/// value is redacted when it is one token (`password: hunter2`); several words are prose
/// (`invalid token: expected a string`) and stay. Scans at most the key and one token, or the
/// rest of the line it then redacts, so text full of colons stays linear.
fn header(b: &[u8], colon: usize) -> Option<(usize, usize)> {
    let quoted = colon > 0 && matches!(b[colon - 1], b'"' | b'\'');
    let key_end = if quoted { colon - 1 } else { colon };
    let key_start = (0..key_end)
        .rev()
        .take_while(|&k| b[k].is_ascii_alphanumeric() || b"_.-".contains(&b[k]))
        .last()?;
    if quoted && (key_start == 0 || b[key_start - 1] != b[key_end]) {
        return None;
    }
    let key = std::str::from_utf8(&b[key_start..key_end]).ok()?;
    if !is_secret_key(key) {
        return None;
    }
    let lower = key.to_ascii_lowercase();
    let whole_line = lower.ends_with("authorization") || lower.ends_with("cookie");
    let v = run(b, colon + 1, |c| c == b' ' || c == b'\t');
    if v == colon + 1 && !whole_line && !matches!(b.get(v), Some(b'"' | b'\'')) {
        return None;
    }
    let (start, end) = match b.get(v) {
        None => return None,
        Some(&q) if q == b'"' || q == b'\'' => {
            let close = run(b, v + 1, |c| c != q && c != b'\n' && c != b'\r');
            (v + 1, close)
        }
        Some(_) if whole_line => {
            let end = run(b, v, |c| !b"\r\n\"'`".contains(&c));
            (v, end)
        }
        Some(_) => {
            let end = run(b, v, |c| !VALUE_END(c));
            // Another word on the same line: prose, not a value.
            let next = run(b, end, |c| c == b' ' || c == b'\t');
            if next > end && next < b.len() && !VALUE_END(b[next]) {
                return None;
            }
            (v, end)
        }
    };
    let mut end = end;
    while end > start && b[end - 1].is_ascii_whitespace() {
        end -= 1;
    }
    let mut start = start;
    if whole_line {
        // Keep the scheme: `Basic [REDACTED]`.
        let word = run(b, start, |c| c.is_ascii_alphanumeric() || c == b'-');
        let gap = run(b, word, |c| c == b' ' || c == b'\t');
        if word > start && gap > word && gap < end {
            start = gap;
        }
    }
    (end > start).then_some((start, end))
}

/// Password-taking programs and their short password flag (`mysql -pSECRET`,
/// `sshpass -p SECRET`, `redis-cli -a SECRET`).
const PASSWORD_FLAGS: &[(&[u8], u8)] = &[
    (b"mysql", b'p'),
    (b"mysqldump", b'p'),
    (b"mysqladmin", b'p'),
    (b"mysqlimport", b'p'),
    (b"mysqlcheck", b'p'),
    (b"mysqlshow", b'p'),
    (b"mariadb", b'p'),
    (b"mariadb-dump", b'p'),
    (b"mariadb-admin", b'p'),
    (b"sshpass", b'p'),
    (b"redis-cli", b'a'),
];

/// Secrets in command lines, one pass over whitespace-separated words:
/// - `-u user:pass`, `--user user:pass`, `--user=user:pass`, `-uuser:pass` (curl; also
///   `-U`/`--proxy-user`): the part after the first `:`, unless it is all digits (`-u 1000:1000`
///   is a uid:gid);
/// - `--<secret key> VALUE` (`--password hunter2`, `--api-key k`): VALUE, unless it starts with
///   `-` (the next option); the `--password=VALUE` form is [`assignment`]'s;
/// - after a password-taking program ([`PASSWORD_FLAGS`]) on the same line and command
///   (until `|`, `;`, `&`): its flag's value, attached (`-pSECRET`) or the next word.
///
/// `mkdir -p dir`, `ssh -p 22` and `sort -u` keep their words: `-p` counts only after such a
/// program, and `-u` only with a `user:pass` value.
fn command_line(b: &[u8], ranges: &mut Vec<(usize, usize)>) {
    #[derive(Clone, Copy, PartialEq)]
    enum Want {
        Nothing,
        UserPass,
        Value,
    }
    let mut want = Want::Nothing;
    let mut flag: Option<u8> = None;
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_whitespace() {
            if b[i] == b'\n' || b[i] == b'\r' {
                want = Want::Nothing;
                flag = None;
            }
            i += 1;
            continue;
        }
        let start = i;
        let end = shell_word_end(b, i);
        i = end;
        let word = &b[start..end];
        match std::mem::replace(&mut want, Want::Nothing) {
            Want::UserPass => {
                ranges.extend(user_pass(b, start, end));
                continue;
            }
            Want::Value if !word.starts_with(b"-") => {
                ranges.extend(unquoted(b, start, end));
                continue;
            }
            _ => {}
        }
        if word.iter().all(|c| b"|;&".contains(c)) {
            flag = None;
            continue;
        }
        let name_end = word.iter().position(|&c| c == b'=').unwrap_or(word.len());
        let name = &word[..name_end];
        if matches!(name, b"-u" | b"-U" | b"--user" | b"--proxy-user") {
            if name_end < word.len() {
                ranges.extend(user_pass(b, start + name_end + 1, end));
            } else {
                want = Want::UserPass;
            }
        } else if (word.starts_with(b"-u") || word.starts_with(b"-U"))
            && word.len() > 2
            && name_end == word.len()
            && !word.contains(&b'/')
        {
            ranges.extend(user_pass(b, start + 2, end));
        } else if let Some(opt) = name.strip_prefix(b"--")
            && name_end == word.len()
            && std::str::from_utf8(opt).is_ok_and(is_secret_key)
        {
            want = Want::Value;
        } else if let Some(f) = flag
            && word.len() >= 2
            && word[0] == b'-'
            && word[1] == f
        {
            if word.len() == 2 {
                want = Want::Value;
            } else {
                ranges.extend(unquoted(b, start + 2, end));
            }
        }
        let bare = word
            .iter()
            .rposition(|&c| c == b'/')
            .map_or(word, |s| &word[s + 1..]);
        let bare = bare.trim_ascii_start();
        let bare = bare
            .strip_prefix(b"\"")
            .or_else(|| bare.strip_prefix(b"'"))
            .unwrap_or(bare);
        if let Some((_, f)) = PASSWORD_FLAGS.iter().find(|(p, _)| *p == bare) {
            flag = Some(*f);
        }
        if word.ends_with(b";") || word.ends_with(b"|") || word.ends_with(b"&") {
            flag = None;
        }
    }
}

/// The end of a command-line word starting at `i`: whitespace ends it except inside quotes
/// (`-p'S3 cret'`, `"ada:hunter 2"`); a quote left open ends at the line's end.
fn shell_word_end(b: &[u8], mut i: usize) -> usize {
    let mut quote: Option<u8> = None;
    while i < b.len() {
        let c = b[i];
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) if c == b'\n' || c == b'\r' => break,
            Some(_) => {}
            None if c.is_ascii_whitespace() => break,
            None if c == b'"' || c == b'\'' => quote = Some(c),
            None => {}
        }
        i += 1;
    }
    i
}

/// The range of a word without its surrounding quotes (and a trailing `,` or `;`).
fn unquoted(b: &[u8], start: usize, end: usize) -> Option<(usize, usize)> {
    let mut s = start;
    let mut e = end;
    while s < e && b"\"'`".contains(&b[s]) {
        s += 1;
    }
    while e > s && b"\"'`,;".contains(&b[e - 1]) {
        e -= 1;
    }
    (e > s).then_some((s, e))
}

/// `user:pass` in a word: the range of `pass`, unless it is empty or all digits (uid:gid).
fn user_pass(b: &[u8], start: usize, end: usize) -> Option<(usize, usize)> {
    let (s, e) = unquoted(b, start, end)?;
    let colon = s + b[s..e].iter().position(|&c| c == b':')?;
    let pass = &b[colon + 1..e];
    (!pass.is_empty() && !pass.iter().all(u8::is_ascii_digit)).then_some((colon + 1, e))
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
            "DB_PASS",
            "x_pass",
            "MyDbPw",
            "bearer",
            "creds",
            "privkey",
            "ssh_key",
            "sshKey",
            "jwt",
            "jwt_key",
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
            "bypass",
            "compass",
            "passed",
            "pass",
            "pass_count",
            "pass_rate",
            "passes",
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

    /// Secrets in command lines and headers (found by the attack review: none of these was
    /// redacted).
    #[test]
    fn command_lines_and_headers() {
        for (input, expected) in [
            (
                "curl -u user:pass https://x.example.com/",
                "curl -u user:[REDACTED] https://x.example.com/",
            ),
            ("curl -u 'ada:hunter 2' x", "curl -u 'ada:[REDACTED]' x"),
            ("curl --user ada:hunter2 x", "curl --user ada:[REDACTED] x"),
            ("curl --user=ada:hunter2 x", "curl --user=ada:[REDACTED] x"),
            ("curl -uada:hunter2 x", "curl -uada:[REDACTED] x"),
            ("curl -U proxy:pw x", "curl -U proxy:[REDACTED] x"),
            ("cmd --password hunter2 -v", "cmd --password [REDACTED] -v"),
            ("cmd --password=x", "cmd --password=[REDACTED]"),
            (
                "cmd --api-key \"k 1\" go",
                "cmd --api-key \"[REDACTED]\" go",
            ),
            (
                "cmd --client-secret s3 x",
                "cmd --client-secret [REDACTED] x",
            ),
            (
                "sshpass -p secret ssh host",
                "sshpass -p [REDACTED] ssh host",
            ),
            ("mysql -pSECRET db", "mysql -p[REDACTED] db"),
            (
                "/usr/bin/mysqldump -u root -p'S3 cret'",
                "/usr/bin/mysqldump -u root -p'[REDACTED]'",
            ),
            ("redis-cli -a hunter2 ping", "redis-cli -a [REDACTED] ping"),
            (
                "PGPASSWORD=s3cret psql -h db",
                "PGPASSWORD=[REDACTED] psql -h db",
            ),
            (
                "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY aws s3 ls",
                "AWS_SECRET_ACCESS_KEY=[REDACTED] aws s3 ls",
            ),
            (
                "export AWS_SECRET_ACCESS_KEY=abc",
                "export AWS_SECRET_ACCESS_KEY=[REDACTED]",
            ),
            (
                "Authorization: Basic abcdefgh",
                "Authorization: Basic [REDACTED]",
            ),
            (
                "-H 'Authorization: Basic abc' x",
                "-H 'Authorization: Basic [REDACTED]' x",
            ),
            (
                "authorization:Bearer abc",
                "authorization:Bearer [REDACTED]",
            ),
            (
                "Proxy-Authorization: Digest u=1, r=2\nnext",
                "Proxy-Authorization: Digest [REDACTED]\nnext",
            ),
            ("Cookie: sid=1; theme=dark", "Cookie: [REDACTED]"),
            ("password: hunter2", "password: [REDACTED]"),
            (
                "token: ghp_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                "token: [REDACTED]",
            ),
            (
                "{\"password\": \"a b\", \"n\": 1}",
                "{\"password\": \"[REDACTED]\", \"n\": 1}",
            ),
            (
                "  db_secret: 'x y'\n  other: 1",
                "  db_secret: '[REDACTED]'\n  other: 1",
            ),
        ] {
            check(input, expected);
        }
    }

    /// Ordinary text and commands that only look close keep every word.
    #[test]
    fn ordinary_text_is_not_redacted() {
        for s in [
            "mkdir -p build/out && ssh -p 22 host",
            "docker run -u 1000:1000 image",
            "sort -u names.txt",
            "curl -u ada https://x.example.com/",
            "git push -u origin main",
            "curl -url=http://example.com:8080/x",
            "psql -p 5432 -h db",
            "mysql -h db; mkdir -p x",
            "invalid token: expected a string",
            "the password: must be 12 characters long",
            "Token counts: 12 in, 4 out",
            "time: 12:30, port: 8080",
            "use `--password` to set it",
            "--password -v",
            "see https://example.com:443/a?b=c",
            "token_count: 5",
            "author: ada",
            "日本語: テキスト 🎉",
        ] {
            assert_eq!(redact_text(s), s, "{s:?}");
        }
    }

    /// Text built to make a scan quadratic (every colon a secret key, every word an option):
    /// redaction walks each byte a bounded number of times.
    #[test]
    fn pathological_text_stays_linear() {
        for unit in [
            "token: a b ",
            "password:",
            "--password ",
            "-u ",
            "mysql -p",
            "Authorization: x ",
            "\"token\":",
            ":::::",
        ] {
            let s = unit.repeat(50_000);
            let once = redact_text(&s).into_owned();
            assert_eq!(redact_text(&once), once, "{unit:?}");
        }
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
