//! SSH signatures (OpenSSH's SSHSIG, the format of `ssh-keygen -Y sign` and of git's
//! `gpg.format=ssh`) over approvals, and the `allowed_signers` file that says whose key is whose.
//!
//! Verification is in process (the `ssh-key` crate checks the signature; the file grammar and
//! the trust decision are ours, tested against `ssh-keygen -Y verify` as the oracle). Signing
//! shells out to `ssh-keygen -Y sign`, so keys held by ssh-agent or a FIDO token work as they do
//! for git. What a verified signature proves: the holder of a key listed for `principal` in the
//! allowed signers file signed exactly these bytes, for this namespace; the allowed signers file
//! is the trust root, and validity times are judged at the time the verifier passes in.
//!
//! `allowed_signers` (ssh-keygen(1), ALLOWED SIGNERS) is read as OpenSSH reads it
//! (`sshsig.c`: `parse_principals_key_and_options`, `sshsigopt_parse`; `misc.c`:
//! `strdelimw`, `opt_dequote`, `parse_absolute_time`; `match.c`: `match_pattern_list`):
//! `principals [options] keytype base64 [comment]`, one key per line, `#` comments and blank
//! lines skipped, the principals field a comma-separated pattern list (`*`, `?`, a leading `!`
//! negates) that may be double-quoted, options comma-separated and case-insensitive
//! (`namespaces="pattern-list"`, `valid-after="T"`, `valid-before="T"`, values always
//! quoted, `\"` escapes a quote), times `YYYYMMDD[Z]` or `YYYYMMDDHHMM[SS][Z]` (`UTC` works as
//! `Z`). Where Betty differs, it is stricter or says so:
//! - a line OpenSSH would skip with a log message (bad options, bad key) makes the whole file an
//!   error naming `file:line`, so a typo can never silently drop or keep a signer;
//! - `cert-authority` is refused at load: certificates are not supported, list the keys;
//! - principals and principal patterns are compared after [`crate::principal::normalise`]
//!   (OpenSSH compares bytes): `Alice@Example.com` in the file is `alice@example.com`; a pattern
//!   whose normalised form gains a `*`, `?`, `,` or `!` (a fullwidth `＊`) is refused, and `?`
//!   matches one character, not one byte;
//! - a time that is not a real date (`20240231`) or is before 1970 is refused (OpenSSH rolls
//!   the date over or wraps);
//! - a time without `Z` is local time, as in ssh-keygen, including its quirk: OpenSSH calls
//!   `mktime` with `tm_isdst = 0`, so a local time is read at the zone's *standard* offset even in
//!   summer (`202407011200` in New York is 17:00 UTC, not 16:00). Write `Z` times: they mean the
//!   same on every machine.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use jiff::Timestamp;
use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use ssh_key::{Algorithm, HashAlg};
/// Re-exported so callers need no `ssh-key` dependency of their own.
pub use ssh_key::{PublicKey, SshSig};

use crate::error::{Error, Result};
use crate::principal::{self, PrincipalError};
use crate::source::{Pos, SourceName};

/// The SSHSIG namespace of Betty's approval statements: a signature made for git commits
/// (`git`) or files (`file`) is never an approval.
pub const NAMESPACE: &str = "betty-approval";

/// Largest armoured signature accepted, in bytes (an Ed25519 one is about 330; RSA-16384 about
/// 3,000).
pub const MAX_ARMORED_LEN: usize = 64 * 1024;

/// Largest `allowed_signers` file accepted, in bytes.
pub const MAX_ALLOWED_SIGNERS_LEN: u64 = crate::limits::Limits::MANIFEST.max_bytes;

/// Largest key file read by [`KeyRef::public_key`], in bytes.
const MAX_KEY_FILE_LEN: u64 = 1024 * 1024;

/// OpenSSH's longest sub-pattern (`match_pattern_list` gives up past it).
const MAX_PATTERN_LEN: usize = 1022;

const BEGIN: &str = "-----BEGIN SSH SIGNATURE-----";

/// Why a signature does not count. Every message names what was checked and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigError {
    #[error(
        "the signature is not a valid SSH signature: {0}; an approval signature is the armoured output of `ssh-keygen -Y sign -n betty-approval` (`-----BEGIN SSH SIGNATURE-----`)"
    )]
    Malformed(String),
    #[error(
        "the signature was made for the namespace `{found}`, not `{expected}`: it was made for another purpose (a git commit, a file) and does not approve anything; sign again with `-n {expected}`"
    )]
    WrongNamespace { expected: String, found: String },
    #[error(
        "the signing key {fingerprint} is not in the allowed signers file; if it belongs to an approver, add their public key there (reviewed like code)"
    )]
    UnknownKey { fingerprint: String },
    #[error(
        "the signing key {fingerprint} is not listed for `{principal}` in the allowed signers file: the signature was made by someone else's key; sign with the key listed for `{principal}`, or list this key for them"
    )]
    PrincipalNotAllowed {
        principal: String,
        fingerprint: String,
    },
    #[error(
        "the key {fingerprint} of `{principal}` is not valid yet: line {line} of the allowed signers file says valid-after {valid_after}, and the verification time is {at}"
    )]
    NotYetValid {
        principal: String,
        fingerprint: String,
        line: u32,
        valid_after: Timestamp,
        at: Timestamp,
    },
    #[error(
        "the key {fingerprint} of `{principal}` has expired: line {line} of the allowed signers file says valid-before {valid_before}, and the verification time is {at}; list the approver's current key"
    )]
    Expired {
        principal: String,
        fingerprint: String,
        line: u32,
        valid_before: Timestamp,
        at: Timestamp,
    },
    #[error(
        "the key {fingerprint} of `{principal}` may not sign in the namespace `{namespace}`: line {line} of the allowed signers file allows only namespaces=\"{allowed}\"; add `{namespace}` there"
    )]
    NamespaceNotAllowed {
        principal: String,
        fingerprint: String,
        namespace: String,
        line: u32,
        allowed: String,
    },
    #[error(
        "the signature does not match the signed statement (key {fingerprint}): the statement was changed after signing, or the signature belongs to another statement"
    )]
    BadSignature { fingerprint: String },
    #[error(
        "the signature was made with a {algorithm} key ({fingerprint}), which this build cannot verify; approvers sign with Ed25519 keys (`ssh-keygen -t ed25519`, or `-t ed25519-sk` on a FIDO token)"
    )]
    UnsupportedAlgorithm {
        algorithm: String,
        fingerprint: String,
    },
    #[error("the approver identity cannot be compared: {0}")]
    Principal(#[from] PrincipalError),
}

/// Who signed: the principal it was verified for, and the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signer {
    /// The normalised principal the signature was verified for.
    pub principal: String,
    /// `SHA256:...`, as `ssh-keygen -l` prints it.
    pub fingerprint: String,
    pub key: PublicKey,
}

/// One comma-separated pattern list: `(negated, pattern)`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PatternList {
    text: String,
    items: Vec<(bool, String)>,
}

impl PatternList {
    /// OpenSSH's `match_pattern_list` == 1: some pattern matches and no negated one does.
    fn matches(&self, s: &str) -> bool {
        let mut positive = false;
        for (negated, pattern) in &self.items {
            if glob(s, pattern) {
                if *negated {
                    return false;
                }
                positive = true;
            }
        }
        positive
    }
}

/// `*` any run of characters, `?` one character, everything else itself.
fn glob(s: &str, pattern: &str) -> bool {
    let s: Vec<char> = s.chars().collect();
    let p: Vec<char> = pattern.chars().collect();
    let (mut si, mut pi) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, si));
                pi += 1;
            }
            Some(&c) if c == '?' || c == s[si] => {
                si += 1;
                pi += 1;
            }
            _ => match star {
                Some((sp, ss)) => {
                    pi = sp + 1;
                    si = ss + 1;
                    star = Some((sp, ss + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// One key line of an `allowed_signers` file.
#[derive(Debug, Clone)]
struct Entry {
    line: u32,
    principals: PatternList,
    key: PublicKey,
    namespaces: Option<PatternList>,
    valid_after: Option<Timestamp>,
    valid_before: Option<Timestamp>,
}

/// Why one line does not let a key sign for a principal.
enum Refusal {
    Namespace,
    NotYet(Timestamp),
    Expired(Timestamp),
}

impl Entry {
    fn permits(&self, namespace: &str, at: Timestamp) -> std::result::Result<(), Refusal> {
        if let Some(ns) = &self.namespaces
            && !ns.matches(namespace)
        {
            return Err(Refusal::Namespace);
        }
        // OpenSSH compares whole seconds.
        let now = at.as_second();
        if let Some(after) = self.valid_after
            && now < after.as_second()
        {
            return Err(Refusal::NotYet(after));
        }
        if let Some(before) = self.valid_before
            && now > before.as_second()
        {
            return Err(Refusal::Expired(before));
        }
        Ok(())
    }
}

/// One parsed `allowed_signers` file (see the module documentation for the grammar).
#[derive(Debug, Clone)]
pub struct AllowedSigners {
    source: SourceName,
    entries: Vec<Entry>,
    /// Signatures already verified (see [`crate::sigcache`]); `None` verifies every one.
    cache: Option<std::sync::Arc<crate::sigcache::SigCache>>,
}

impl Default for AllowedSigners {
    /// No keys: nothing verifies.
    fn default() -> AllowedSigners {
        AllowedSigners {
            source: SourceName::from(Path::new("allowed_signers")),
            entries: Vec::new(),
            cache: None,
        }
    }
}

impl AllowedSigners {
    /// Reads `path`. A missing file is an empty list (nothing verifies); a FIFO, a device, a
    /// folder (and inside a registry a symbolic link) is an error, as is a file over
    /// [`MAX_ALLOWED_SIGNERS_LEN`], one that is not UTF-8, or any bad line.
    pub fn load(path: &Path) -> Result<AllowedSigners> {
        let source = SourceName::from(path);
        let Some(file) = crate::fsx::open_regular_if_exists(path)? else {
            return Ok(AllowedSigners {
                source,
                entries: Vec::new(),
                cache: None,
            });
        };
        let bytes = read_at_most(file, path, MAX_ALLOWED_SIGNERS_LEN)?;
        let text = crate::source::into_text(&source, bytes)?;
        let signers = AllowedSigners::parse(&source, &text)?;
        Ok(signers.with_cache(crate::sigcache::SigCache::open_default()))
    }

    /// Uses `cache` to skip signatures verified before (`None`: verify every one).
    pub fn with_cache(mut self, cache: Option<crate::sigcache::SigCache>) -> AllowedSigners {
        self.cache = cache.map(std::sync::Arc::new);
        self
    }

    /// Parses the text of an allowed signers file; times without `Z` are in the system's time
    /// zone (`TZ`, else `/etc/localtime`), as ssh-keygen reads them.
    pub fn parse(source: &SourceName, text: &str) -> Result<AllowedSigners> {
        AllowedSigners::parse_in(source, text, &TimeZone::system())
    }

    /// As [`AllowedSigners::parse`], with times without `Z` read in `tz`.
    pub fn parse_in(source: &SourceName, text: &str, tz: &TimeZone) -> Result<AllowedSigners> {
        let mut entries = Vec::new();
        for (i, raw) in text.split('\n').enumerate() {
            let line = u32::try_from(i + 1).unwrap_or(u32::MAX);
            let raw = raw.strip_suffix('\r').unwrap_or(raw);
            let fail = |column: usize, message: String| {
                Error::invalid(
                    source,
                    Pos::new(line, u32::try_from(column + 1).unwrap_or(u32::MAX)),
                    message,
                )
            };
            if let Some(at) = raw.find('\0') {
                return Err(fail(
                    char_column(raw, at),
                    "the line contains a NUL byte; an allowed signers file is text: remove it"
                        .into(),
                ));
            }
            match parse_line(raw, tz) {
                Ok(None) => {}
                Ok(Some(mut entry)) => {
                    entry.line = line;
                    entries.push(entry);
                }
                Err((at, message)) => return Err(fail(char_column(raw, at), message)),
            }
        }
        Ok(AllowedSigners {
            source: source.clone(),
            entries,
            cache: None,
        })
    }

    /// Whether the file lists no key at all.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// How many key lines the file has.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Where the list was read from.
    pub fn source(&self) -> &SourceName {
        &self.source
    }

    /// Verifies an armoured SSHSIG over `message` made in `namespace`, and that a line listing
    /// the signing key allows `principal` (normalised again here), allows `namespace` (its
    /// `namespaces=` option) and is valid at `at` (`valid-after`/`valid-before`, inclusive, in
    /// whole seconds, as OpenSSH judges them). `at` is the verifier's trusted time, never a time
    /// taken from the signed statement.
    pub fn verify(
        &self,
        message: &[u8],
        armored: &str,
        namespace: &str,
        principal: &str,
        at: Timestamp,
    ) -> std::result::Result<Signer, SigError> {
        let principal = principal::normalise(principal)?;
        let sig = parse_signature(armored)?;
        let key = PublicKey::from(sig.public_key().clone());
        let fingerprint = key.fingerprint(HashAlg::Sha256).to_string();
        if sig.namespace() != namespace {
            return Err(SigError::WrongNamespace {
                expected: namespace.to_string(),
                found: principal_display(sig.namespace()),
            });
        }
        let lines: Vec<&Entry> = self
            .entries
            .iter()
            .filter(|e| e.key.key_data() == key.key_data())
            .collect();
        if lines.is_empty() {
            return Err(SigError::UnknownKey { fingerprint });
        }
        if !matches!(key.algorithm(), Algorithm::Ed25519 | Algorithm::SkEd25519) {
            return Err(SigError::UnsupportedAlgorithm {
                algorithm: key.algorithm().as_str().to_string(),
                fingerprint,
            });
        }
        let cache = self.cache.as_deref();
        if !cache.is_some_and(|c| c.contains(armored, message)) {
            if key.verify(namespace, message, &sig).is_err() {
                return Err(SigError::BadSignature { fingerprint });
            }
            if let Some(c) = cache {
                c.insert(armored, message);
            }
        }
        let mut refusal = None;
        for entry in lines {
            if !entry.principals.matches(&principal) {
                continue;
            }
            match entry.permits(namespace, at) {
                Ok(()) => {
                    return Ok(Signer {
                        principal,
                        fingerprint,
                        key,
                    });
                }
                Err(why) => {
                    refusal.get_or_insert((entry, why));
                }
            }
        }
        Err(match refusal {
            None => SigError::PrincipalNotAllowed {
                principal,
                fingerprint,
            },
            Some((entry, Refusal::Namespace)) => SigError::NamespaceNotAllowed {
                principal,
                fingerprint,
                namespace: namespace.to_string(),
                line: entry.line,
                allowed: entry
                    .namespaces
                    .as_ref()
                    .map(|n| principal_display(&n.text))
                    .unwrap_or_default(),
            },
            Some((entry, Refusal::NotYet(valid_after))) => SigError::NotYetValid {
                principal,
                fingerprint,
                line: entry.line,
                valid_after,
                at,
            },
            Some((entry, Refusal::Expired(valid_before))) => SigError::Expired {
                principal,
                fingerprint,
                line: entry.line,
                valid_before,
                at,
            },
        })
    }

    /// The principals (normalised, literal: no patterns) that lines listing `key` allow in
    /// `namespace` at `at`, in file order without repeats: who a key is.
    pub fn principals_for(&self, key: &PublicKey, namespace: &str, at: Timestamp) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for entry in &self.entries {
            if entry.key.key_data() != key.key_data() || entry.permits(namespace, at).is_err() {
                continue;
            }
            for (negated, pattern) in &entry.principals.items {
                if !negated
                    && !pattern.contains(['*', '?'])
                    && entry.principals.matches(pattern)
                    && !out.contains(pattern)
                {
                    out.push(pattern.clone());
                }
            }
        }
        out
    }

    /// Whether `principal` (normalised here) may sign with `key` in `namespace` at `at`: a
    /// line lists the key, permits the namespace and time, and its principal patterns match.
    pub fn allows(&self, key: &PublicKey, principal: &str, namespace: &str, at: Timestamp) -> bool {
        let Ok(p) = crate::principal::normalise(principal) else {
            return false;
        };
        self.entries.iter().any(|entry| {
            entry.key.key_data() == key.key_data()
                && entry.permits(namespace, at).is_ok()
                && entry.principals.matches(&p)
        })
    }
}

/// `s` shown in a message: control characters escaped.
fn principal_display(s: &str) -> String {
    crate::escape::escape(s).into_owned()
}

fn read_at_most(file: std::fs::File, path: &Path, max: u64) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::Read {
            path: path.to_path_buf(),
            source: e,
        })?;
    if bytes.len() as u64 > max {
        return Err(Error::TooLarge {
            input: SourceName::from(path),
            size: bytes.len() as u64,
            limit: max,
        });
    }
    Ok(bytes)
}

/// The 0-based character column of byte offset `at` in `line`.
fn char_column(line: &str, at: usize) -> usize {
    line.get(..at).map_or(0, |s| s.chars().count())
}

/// A line-parse failure: the byte offset in the line and the message.
type LineError = (usize, String);

/// Offset of `part` (a sub-slice of `line`) in `line`.
fn offset(line: &str, part: &str) -> usize {
    (part.as_ptr() as usize).saturating_sub(line.as_ptr() as usize)
}

const WHITESPACE: [char; 4] = [' ', '\t', '\r', '\n'];

/// One line: `None` for a blank or comment line.
fn parse_line(line: &str, tz: &TimeZone) -> std::result::Result<Option<Entry>, LineError> {
    let body = line.trim_start_matches(WHITESPACE);
    if body.is_empty() || body.starts_with('#') {
        return Ok(None);
    }
    let start = offset(line, body);
    let (principals_text, rest) = strdelimw(body).map_err(|m| (start, m))?;
    let principals = principal_patterns(&principals_text).map_err(|m| (start, m))?;
    if rest.is_empty() {
        return Err((
            offset(line, rest),
            "the line has principals but no key; write `principals [options] keytype base64`"
                .into(),
        ));
    }
    // A key right after the principals, else options and then the key (sshkey_read first, as
    // OpenSSH does). A first word that is a key type is a key, so a bad key is reported as one.
    let first = rest.split([' ', '\t']).next().unwrap_or_default();
    let (options, key_text) = if is_key_type(first) {
        (None, rest)
    } else {
        let end = options_end(rest).map_err(|m| (offset(line, rest), m))?;
        let (opts, after) = rest.split_at(end);
        let after = after.trim_start_matches([' ', '\t']);
        if after.is_empty() {
            return Err((
                offset(line, after),
                "the line has no key after the options; write `principals [options] keytype base64`"
                    .into(),
            ));
        }
        (Some(opts), after)
    };
    // Options first, so `cert-authority` is reported as such whatever follows it.
    let mut parsed = Options::default();
    if let Some(opts) = options {
        parsed = parse_options(opts, tz).map_err(|m| (offset(line, opts), m))?;
    }
    let key = read_key(key_text).map_err(|m| (offset(line, key_text), m))?;
    Ok(Some(Entry {
        line: 0,
        principals,
        key,
        namespaces: parsed.namespaces,
        valid_after: parsed.valid_after,
        valid_before: parsed.valid_before,
    }))
}

/// OpenSSH's `strdelimw`: the first word, which may contain a double-quoted part (the quotes
/// removed), then the rest after white space.
fn strdelimw(s: &str) -> std::result::Result<(String, &str), String> {
    let Some(i) = s.find([' ', '\t', '\r', '\n', '"']) else {
        return Err(
            "the line has only one word and no key; write `principals [options] keytype base64`"
                .into(),
        );
    };
    if s.as_bytes()[i] == b'"' {
        let after_open = &s[i + 1..];
        let Some(j) = after_open.find('"') else {
            return Err(
                "the principals field has an opening `\"` without a closing one; close the quote"
                    .into(),
            );
        };
        let word = format!("{}{}", &s[..i], &after_open[..j]);
        let rest = after_open[j + 1..].trim_start_matches(WHITESPACE);
        Ok((word, rest))
    } else {
        Ok((
            s[..i].to_string(),
            s[i + 1..].trim_start_matches(WHITESPACE),
        ))
    }
}

fn is_key_type(word: &str) -> bool {
    !word.is_empty()
        && (matches!(
            Algorithm::new(word),
            Ok(a) if !matches!(a, Algorithm::Other(_))
        ) || word.ends_with("-cert-v01@openssh.com"))
}

/// `keytype base64 [comment]`.
fn read_key(text: &str) -> std::result::Result<PublicKey, String> {
    let mut words = text.split([' ', '\t']).filter(|w| !w.is_empty());
    let kind = words.next().unwrap_or_default();
    if kind.ends_with("-cert-v01@openssh.com") {
        return Err(format!(
            "`{}` is a certificate; certificates are not supported: list each signer's own public key (the `.pub` file)",
            principal_display(kind)
        ));
    }
    if !is_key_type(kind) {
        return Err(format!(
            "`{}` is not an SSH key type (such as `ssh-ed25519`); write `principals [options] keytype base64`",
            principal_display(truncate(kind, 64))
        ));
    }
    let Some(blob) = words.next() else {
        return Err(format!(
            "the key type `{kind}` is not followed by the base64 key; paste the whole line of the `.pub` file"
        ));
    };
    PublicKey::from_openssh(&format!("{kind} {blob}")).map_err(|e| {
        format!(
            "the `{kind}` key is not valid ({e}); paste the whole line of the signer's `.pub` file"
        )
    })
}

fn truncate(s: &str, max_chars: usize) -> &str {
    s.char_indices().nth(max_chars).map_or(s, |(i, _)| &s[..i])
}

/// OpenSSH's `sshkey_advance_past_options`: the options end at the first white space outside
/// double quotes.
fn options_end(s: &str) -> std::result::Result<usize, String> {
    let bytes = s.as_bytes();
    let mut quoted = false;
    let mut i = 0;
    while i < bytes.len() && (quoted || (bytes[i] != b' ' && bytes[i] != b'\t')) {
        if bytes[i] == b'\\' && bytes.get(i + 1) == Some(&b'"') {
            i += 1;
        } else if bytes[i] == b'"' {
            quoted = !quoted;
        }
        i += 1;
    }
    if quoted {
        return Err(
            "the options have an opening `\"` without a closing one; close the quote".into(),
        );
    }
    Ok(i.min(bytes.len()))
}

/// The principals field: comma-separated patterns, each normalised.
fn principal_patterns(field: &str) -> std::result::Result<PatternList, String> {
    let mut items = Vec::new();
    for part in field.split(',') {
        let (negated, pattern) = match part.strip_prefix('!') {
            Some(p) => (true, p),
            None => (false, part),
        };
        // An empty pattern matches only the empty principal, which is never an approver.
        if pattern.is_empty() {
            continue;
        }
        if pattern.len() > MAX_PATTERN_LEN {
            return Err(format!(
                "a principal pattern is {} bytes long, over OpenSSH's limit of {MAX_PATTERN_LEN}; shorten it",
                pattern.len()
            ));
        }
        if pattern.trim() != pattern {
            return Err(format!(
                "the principal pattern `{}` has white space around it, which OpenSSH would keep as part of the name; remove it",
                principal_display(pattern)
            ));
        }
        let normal = principal::normalise(pattern)
            .map_err(|e| format!("principal pattern `{}`: {e}", principal_display(pattern)))?;
        for special in ['*', '?', ',', '!'] {
            if normal.matches(special).count() != pattern.matches(special).count() {
                return Err(format!(
                    "the principal pattern `{}` becomes `{normal}` once normalised, which adds a `{special}` that was not typed (a fullwidth or compatibility character); write it with plain ASCII `{special}` or without it",
                    principal_display(pattern)
                ));
            }
        }
        items.push((negated, normal));
    }
    if items.is_empty() {
        return Err(format!(
            "the principals field `{}` names nobody; write the signer's identity, such as `appsec@example.com`",
            principal_display(field)
        ));
    }
    Ok(PatternList {
        text: field.to_string(),
        items,
    })
}

/// The namespaces option: a pattern list compared byte for byte, as OpenSSH does.
fn namespace_patterns(value: &str) -> std::result::Result<PatternList, String> {
    let mut items = Vec::new();
    for part in value.split(',') {
        let (negated, pattern) = match part.strip_prefix('!') {
            Some(p) => (true, p),
            None => (false, part),
        };
        if pattern.len() > MAX_PATTERN_LEN {
            return Err(format!(
                "a namespace pattern is {} bytes long, over OpenSSH's limit of {MAX_PATTERN_LEN}; shorten it",
                pattern.len()
            ));
        }
        items.push((negated, pattern.to_string()));
    }
    // OpenSSH's loop ends at a trailing comma without an empty pattern.
    if value.ends_with(',') {
        items.pop();
    }
    Ok(PatternList {
        text: value.to_string(),
        items,
    })
}

/// The options of one line.
#[derive(Default)]
struct Options {
    namespaces: Option<PatternList>,
    valid_after: Option<Timestamp>,
    valid_before: Option<Timestamp>,
}

/// OpenSSH's `sshsigopt_parse`.
fn parse_options(opts: &str, tz: &TimeZone) -> std::result::Result<Options, String> {
    let mut entry = Options::default();
    let mut rest = opts;
    while !rest.is_empty() {
        let lower = |n: usize| rest.get(..n).map(str::to_ascii_lowercase);
        if lower(14).as_deref() == Some("cert-authority") {
            return Err(
                "`cert-authority` is not supported: Betty verifies plain keys, not certificates; list each signer's own public key instead"
                    .into(),
            );
        } else if lower(11).as_deref() == Some("namespaces=") {
            if entry.namespaces.is_some() {
                return Err("the option `namespaces` is given twice; keep one".into());
            }
            let value = dequote(&mut rest, 11, "namespaces")?;
            entry.namespaces = Some(namespace_patterns(&value)?);
        } else if lower(12).as_deref() == Some("valid-after=") {
            if entry.valid_after.is_some() {
                return Err("the option `valid-after` is given twice; keep one".into());
            }
            let value = dequote(&mut rest, 12, "valid-after")?;
            entry.valid_after = Some(parse_time(&value, tz, "valid-after")?);
        } else if lower(13).as_deref() == Some("valid-before=") {
            if entry.valid_before.is_some() {
                return Err("the option `valid-before` is given twice; keep one".into());
            }
            let value = dequote(&mut rest, 13, "valid-before")?;
            entry.valid_before = Some(parse_time(&value, tz, "valid-before")?);
        } else {
            let name = rest.split([',', '=']).next().unwrap_or(rest);
            return Err(format!(
                "unknown option `{}`; the options are namespaces=\"...\", valid-after=\"...\" and valid-before=\"...\"",
                principal_display(truncate(name, 64))
            ));
        }
        if rest.is_empty() {
            break;
        }
        match rest.strip_prefix(',') {
            Some("") => {
                return Err("the options end with a `,`; remove it or add the option".into());
            }
            Some(next) => rest = next,
            None => {
                return Err(format!(
                    "unexpected `{}` after an option; separate options with `,` and quote values",
                    principal_display(truncate(rest, 32))
                ));
            }
        }
    }
    if let (Some(after), Some(before)) = (entry.valid_after, entry.valid_before)
        && before <= after
    {
        return Err(format!(
            "valid-before ({before}) is not after valid-after ({after}); the key would never be valid: fix the times"
        ));
    }
    Ok(entry)
}

/// OpenSSH's `opt_dequote`, after a `name=` of `skip` bytes: a double-quoted value, `\"` for a
/// quote.
fn dequote(rest: &mut &str, skip: usize, name: &str) -> std::result::Result<String, String> {
    let s = rest.get(skip..).unwrap_or_default();
    let Some(body) = s.strip_prefix('"') else {
        return Err(format!(
            "the value of `{name}` must be in double quotes, as `{name}=\"...\"` (ssh-keygen refuses it unquoted)"
        ));
    };
    let mut value = String::new();
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => {
                *rest = &body[i + 1..];
                return Ok(value);
            }
            '\\' if body[i + 1..].starts_with('"') => {
                value.push('"');
                chars.next();
            }
            c => value.push(c),
        }
    }
    Err(format!(
        "the value of `{name}` has no closing `\"`; close the quote"
    ))
}

/// OpenSSH's `parse_absolute_time`: `YYYYMMDD[Z]` or `YYYYMMDDHHMM[SS][Z]`; `Z` or `UTC`
/// (any case) for UTC, else local time at the zone's standard offset (see the module docs).
pub fn parse_time(
    value: &str,
    tz: &TimeZone,
    what: &str,
) -> std::result::Result<Timestamp, String> {
    let bad = |why: &str| {
        format!(
            "{what}=\"{}\" is not a time: {why}; write YYYYMMDD[Z] or YYYYMMDDHHMM[SS][Z], such as \"20260101Z\" (Z: UTC)",
            principal_display(truncate(value, 32))
        )
    };
    let (digits, utc) = if value.len() > 1
        && value
            .get(value.len() - 1..)
            .is_some_and(|z| z.eq_ignore_ascii_case("z"))
    {
        (&value[..value.len() - 1], true)
    } else if value.len() > 3
        && value
            .get(value.len() - 3..)
            .is_some_and(|z| z.eq_ignore_ascii_case("utc"))
    {
        (&value[..value.len() - 3], true)
    } else {
        (value, false)
    };
    if !digits.bytes().all(|b| b.is_ascii_digit()) || ![8, 12, 14].contains(&digits.len()) {
        return Err(bad("it must be 8, 12 or 14 digits"));
    }
    let num = |range: std::ops::Range<usize>| -> i32 {
        digits.get(range).and_then(|d| d.parse().ok()).unwrap_or(-1)
    };
    let (year, month, day) = (num(0..4), num(4..6), num(6..8));
    let (hour, minute, second) = match digits.len() {
        8 => (0, 0, 0),
        12 => (num(8..10), num(10..12), 0),
        _ => (num(8..10), num(10..12), num(12..14)),
    };
    if year < 1970 {
        return Err(bad("times before 1970 are not supported"));
    }
    let small = |n: i32| i8::try_from(n).unwrap_or(-1);
    let dt = DateTime::new(
        i16::try_from(year).unwrap_or(-1),
        small(month),
        small(day),
        small(hour),
        small(minute),
        small(second),
        0,
    )
    .map_err(|_| bad("there is no such date or time"))?;
    let ts = if utc {
        jiff::tz::Offset::UTC.to_timestamp(dt)
    } else {
        standard_time(dt, tz)
    }
    .map_err(|_| bad("it is out of range"))?;
    if ts.as_second() <= 0 {
        return Err(bad("times before 1970 are not supported"));
    }
    Ok(ts)
}

/// `dt` read at `tz`'s standard (non-DST) offset, as `mktime` with `tm_isdst = 0` reads it.
fn standard_time(dt: DateTime, tz: &TimeZone) -> std::result::Result<Timestamp, jiff::Error> {
    let guess = tz.to_ambiguous_timestamp(dt).compatible()?;
    if !tz.to_offset_info(guess).dst().is_dst() {
        return Ok(guess);
    }
    let standard = tz
        .preceding(guess)
        .find(|t| !t.dst().is_dst())
        .or_else(|| tz.following(guess).find(|t| !t.dst().is_dst()))
        .map(|t| t.offset());
    match standard {
        Some(offset) => offset.to_timestamp(dt),
        None => Ok(guess),
    }
}

/// Parses an armoured signature (OpenSSH's `sshsig_dearmor`, then the SSHSIG blob).
pub fn parse_signature(armored: &str) -> std::result::Result<SshSig, SigError> {
    if armored.len() > MAX_ARMORED_LEN {
        return Err(SigError::Malformed(format!(
            "it is {} bytes, over the limit of {MAX_ARMORED_LEN}",
            armored.len()
        )));
    }
    let text = armored.trim_matches(WHITESPACE);
    if !text.starts_with(BEGIN) {
        return Err(SigError::Malformed(format!(
            "it does not start with `{BEGIN}`"
        )));
    }
    let sig = SshSig::from_pem(text).map_err(|e| SigError::Malformed(e.to_string()))?;
    // OpenSSH accepts any version up to its own (1), and the version is not covered by the
    // signature: a blob with version 0 would verify with the same bytes. Only version 1 has
    // ever been defined, so anything else is a changed signature, not a different format.
    if sig.version() != 1 {
        return Err(SigError::Malformed(format!(
            "its SSHSIG version is {}; only version 1 is defined",
            sig.version()
        )));
    }
    Ok(sig)
}

/// Fingerprint (`SHA256:...`) of the key inside an armoured signature, without verifying
/// anything (for messages: "signed by SHA256:..., which is not listed").
pub fn signature_fingerprint(armored: &str) -> std::result::Result<String, SigError> {
    let sig = parse_signature(armored)?;
    Ok(PublicKey::from(sig.public_key().clone())
        .fingerprint(HashAlg::Sha256)
        .to_string())
}

/// `SHA256:...` of a public key.
pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// A signing key as `ssh-keygen -Y sign -f` takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRef {
    kind: KeyKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum KeyKind {
    /// A private key file, or a public key file whose private half is in ssh-agent.
    Path(PathBuf),
    /// git's `key::ssh-ed25519 AAAA...`: a public key whose private half is in ssh-agent.
    Literal(String),
}

impl KeyRef {
    /// A key file: private, or public with the private key in ssh-agent.
    pub fn from_path(path: &Path) -> KeyRef {
        KeyRef {
            kind: KeyKind::Path(path.to_path_buf()),
        }
    }

    /// The key git signs commits with in `cwd`: `user.signingkey` when `gpg.format` is `ssh`.
    /// As git reads it: `key::ssh-ed25519 AAAA...` (or a value starting with `ssh-`) is a
    /// literal public key held by ssh-agent; anything else is a path (`~/` is the home folder,
    /// a relative path is relative to `cwd`).
    pub fn from_git_config(cwd: &Path) -> Result<KeyRef> {
        if !cwd.is_dir() {
            return Err(Error::GitConfig {
                cwd: cwd.to_path_buf(),
                message: "is not a folder, so git cannot be asked for its signing key; run inside the project or pass `--key`".into(),
            });
        }
        let format = git_config(cwd, "gpg.format")?;
        let format = format.as_deref().map(str::trim);
        if format.is_none_or(|f| !f.eq_ignore_ascii_case("ssh")) {
            return Err(Error::GitConfig {
                cwd: cwd.to_path_buf(),
                message: format!(
                    "`gpg.format` is {}, not `ssh`, so git has no SSH signing key; pass `--key ~/.ssh/id_ed25519`, or run `git config gpg.format ssh` and `git config user.signingkey ~/.ssh/id_ed25519.pub`",
                    format.map_or_else(
                        || "not set".to_string(),
                        |f| format!("`{}`", principal_display(f))
                    )
                ),
            });
        }
        let value = git_config(cwd, "user.signingkey")?;
        let Some(value) = value.filter(|v| !v.trim().is_empty()) else {
            return Err(Error::GitConfig {
                cwd: cwd.to_path_buf(),
                message: "`gpg.format` is `ssh` but `user.signingkey` is not set (Betty does not run `gpg.ssh.defaultKeyCommand`); pass `--key ~/.ssh/id_ed25519`, or run `git config user.signingkey ~/.ssh/id_ed25519.pub`".into(),
            });
        };
        let value = value.trim();
        if let Some(literal) = value.strip_prefix("key::") {
            return Ok(KeyRef {
                kind: KeyKind::Literal(literal.trim().to_string()),
            });
        }
        if value.starts_with("ssh-") {
            return Ok(KeyRef {
                kind: KeyKind::Literal(value.to_string()),
            });
        }
        let path = match value.strip_prefix("~/") {
            Some(rest) => match std::env::var_os("HOME").filter(|h| !h.is_empty()) {
                Some(home) => PathBuf::from(home).join(rest),
                None => {
                    return Err(Error::GitConfig {
                        cwd: cwd.to_path_buf(),
                        message: format!(
                            "`user.signingkey` is `{}`, but HOME is not set to expand `~`; set HOME or write the full path",
                            principal_display(value)
                        ),
                    });
                }
            },
            None => cwd.join(value),
        };
        Ok(KeyRef::from_path(&path))
    }

    /// The key as shown in messages: the path, or `key::<type> <fingerprint-ish start>`.
    pub fn describe(&self) -> String {
        match &self.kind {
            KeyKind::Path(p) => p.display().to_string(),
            KeyKind::Literal(k) => format!("key::{}", principal_display(truncate(k, 40))),
        }
    }

    /// The public key: the file itself if it is a public key, else `PATH.pub`, else
    /// `ssh-keygen -y -f PATH` (which may ask for the passphrase on the terminal).
    pub fn public_key(&self) -> Result<PublicKey> {
        match &self.kind {
            KeyKind::Literal(k) => PublicKey::from_openssh(k).map_err(|e| Error::SshKey {
                key: self.describe(),
                message: format!(
                    "the literal key is not a valid OpenSSH public key ({e}); write `key::ssh-ed25519 AAAA...`"
                ),
            }),
            KeyKind::Path(path) => {
                let bytes = crate::fsx::read_regular(path, MAX_KEY_FILE_LEN)?;
                if let Some(key) = public_key_text(&bytes) {
                    return Ok(key);
                }
                let mut pub_path = path.clone().into_os_string();
                pub_path.push(".pub");
                let pub_path = PathBuf::from(pub_path);
                if let Some(file) = crate::fsx::open_regular_if_exists(&pub_path)? {
                    let bytes = read_at_most(file, &pub_path, MAX_KEY_FILE_LEN)?;
                    return public_key_text(&bytes).ok_or_else(|| Error::SshKey {
                        key: pub_path.display().to_string(),
                        message: "is not an OpenSSH public key; regenerate it with `ssh-keygen -y -f KEY > KEY.pub`".into(),
                    });
                }
                let out = run_ssh_keygen(
                    Command::new("ssh-keygen").arg("-y").arg("-f").arg(path),
                    None,
                    &self.describe(),
                )?;
                public_key_text(&out).ok_or_else(|| Error::SshKey {
                    key: self.describe(),
                    message: "`ssh-keygen -y` did not print a public key; is this an SSH key?"
                        .into(),
                })
            }
        }
    }

    /// Signs `message` in `namespace` with `ssh-keygen -Y sign` and returns the armoured
    /// signature (checked to parse). A literal key is written to a private temporary file and
    /// signed with `-U` (the agent holds the private key), as git does.
    pub fn sign(&self, namespace: &str, message: &[u8]) -> Result<String> {
        if namespace.is_empty() {
            return Err(Error::InvalidArgument {
                what: "signature namespace",
                value: String::new(),
                reason: "is empty; SSH signatures always carry a namespace".into(),
            });
        }
        let out = match &self.kind {
            KeyKind::Path(path) => run_ssh_keygen(
                Command::new("ssh-keygen")
                    .args(["-Y", "sign", "-n", namespace, "-f"])
                    .arg(path),
                Some(message),
                &self.describe(),
            )?,
            KeyKind::Literal(k) => {
                let temp = TempKeyFile::create(k)?;
                run_ssh_keygen(
                    Command::new("ssh-keygen")
                        .args(["-Y", "sign", "-U", "-n", namespace, "-f"])
                        .arg(&temp.0),
                    Some(message),
                    &self.describe(),
                )?
            }
        };
        let armored = String::from_utf8(out).map_err(|_| Error::SshKey {
            key: self.describe(),
            message: "`ssh-keygen -Y sign` printed something that is not text".into(),
        })?;
        parse_signature(&armored).map_err(|e| Error::SshKey {
            key: self.describe(),
            message: format!("`ssh-keygen -Y sign` printed no usable signature: {e}"),
        })?;
        Ok(armored)
    }
}

/// The first line of `bytes` as an OpenSSH public key, if it is one.
fn public_key_text(bytes: &[u8]) -> Option<PublicKey> {
    let text = std::str::from_utf8(bytes).ok()?;
    let line = text.lines().map(str::trim).find(|l| !l.is_empty())?;
    PublicKey::from_openssh(line).ok()
}

/// A literal public key written for `ssh-keygen -f`, removed when dropped.
struct TempKeyFile(PathBuf);

impl TempKeyFile {
    fn create(key: &str) -> Result<TempKeyFile> {
        let path =
            std::env::temp_dir().join(format!(".betty-signingkey-{}.pub", uuid::Uuid::now_v7()));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(&path).map_err(|e| Error::write(&path, e))?;
        let temp = TempKeyFile(path);
        file.write_all(format!("{key}\n").as_bytes())
            .map_err(|e| Error::write(&temp.0, e))?;
        Ok(temp)
    }
}

impl Drop for TempKeyFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Runs ssh-keygen with `stdin` (or nothing) and returns its standard output; a failure
/// carries its exit status and (escaped, shortened) standard error.
fn run_ssh_keygen(cmd: &mut Command, stdin: Option<&[u8]>, key: &str) -> Result<Vec<u8>> {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| Error::SshKey {
        key: key.to_string(),
        message: if e.kind() == std::io::ErrorKind::NotFound {
            "`ssh-keygen` was not found on PATH; install OpenSSH (`apt-get install openssh-client`, `brew install openssh`)".to_string()
        } else {
            format!("cannot run `ssh-keygen`: {e}")
        },
    })?;
    let input = child.stdin.take();
    let output = std::thread::scope(|scope| {
        if let (Some(mut pipe), Some(bytes)) = (input, stdin) {
            // A write error means ssh-keygen exited early; its status says why.
            scope.spawn(move || {
                let _ = pipe.write_all(bytes);
            });
        }
        child.wait_with_output()
    })
    .map_err(|e| Error::SshKey {
        key: key.to_string(),
        message: format!("cannot read the output of `ssh-keygen`: {e}"),
    })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let stderr = stderr.trim();
        return Err(Error::SshKey {
            key: key.to_string(),
            message: format!(
                "`ssh-keygen` failed ({}): {}",
                output.status,
                if stderr.is_empty() {
                    "no message".to_string()
                } else {
                    principal_display(truncate(stderr, 2000))
                }
            ),
        });
    }
    Ok(output.stdout)
}

/// `git config --get NAME` in `cwd`: `None` when unset.
fn git_config(cwd: &Path, name: &str) -> Result<Option<String>> {
    let output = Command::new("git")
        .args(["config", "--get", name])
        .current_dir(cwd)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::GitConfig {
            cwd: cwd.to_path_buf(),
            message: format!(
                "cannot run `git config --get {name}`: {e}; install git, or pass the key with `--key`"
            ),
        })?;
    match output.status.code() {
        Some(0) => Ok(Some(
            String::from_utf8_lossy(&output.stdout)
                .trim_end_matches(['\n', '\r'])
                .to_string(),
        )),
        Some(1) => Ok(None),
        _ => Err(Error::GitConfig {
            cwd: cwd.to_path_buf(),
            message: format!(
                "`git config --get {name}` failed ({}): {}",
                output.status,
                principal_display(truncate(
                    String::from_utf8_lossy(&output.stderr).trim(),
                    2000
                ))
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_is_openssh_match_pattern() {
        for (s, p, want) in [
            ("a@x", "a@x", true),
            ("a@x", "*", true),
            ("a@x", "*@x", true),
            ("a@x", "?@x", true),
            ("ab@x", "?@x", false),
            ("a@x", "a@", false),
            ("", "", true),
            ("", "*", true),
            ("a", "", false),
            ("abcabc", "*abc", true),
            ("abcab", "*abc", false),
            ("a.b@example.com", "*@*.com", true),
            ("é@x", "?@x", true),
        ] {
            assert_eq!(glob(s, p), want, "{s:?} vs {p:?}");
        }
        let list = principal_patterns("*@x,!bad@x").unwrap();
        assert!(list.matches("good@x"));
        assert!(!list.matches("bad@x"));
        assert!(!list.matches("good@y"));
        let list = principal_patterns("!bad@x").unwrap();
        assert!(!list.matches("good@x"), "a negation alone allows nobody");
    }

    #[test]
    fn strdelimw_is_openssh() {
        assert_eq!(strdelimw("a b").unwrap(), ("a".into(), "b"));
        assert_eq!(strdelimw("a \t b").unwrap(), ("a".into(), "b"));
        assert_eq!(strdelimw("\"a b\" c").unwrap(), ("a b".into(), "c"));
        assert_eq!(strdelimw("x\"a b\"c d").unwrap(), ("xa b".into(), "c d"));
        assert!(strdelimw("\"a b c").is_err());
        assert!(strdelimw("abc").is_err());
    }

    #[test]
    fn times_follow_parse_absolute_time() {
        let utc = TimeZone::UTC;
        let t = |s| parse_time(s, &utc, "valid-after");
        assert_eq!(t("20240101Z").unwrap().to_string(), "2024-01-01T00:00:00Z");
        assert_eq!(t("20240101").unwrap().to_string(), "2024-01-01T00:00:00Z");
        assert_eq!(
            t("20240101utc").unwrap().to_string(),
            "2024-01-01T00:00:00Z"
        );
        assert_eq!(
            t("202401011230z").unwrap().to_string(),
            "2024-01-01T12:30:00Z"
        );
        assert_eq!(
            t("20240101123059Z").unwrap().to_string(),
            "2024-01-01T12:30:59Z"
        );
        for bad in [
            "",
            "Z",
            "2024010",
            "2024-01-01",
            "20240231Z",
            "19691231Z",
            "19700101Z",
            "2024010112Z",
            "+2024010Z",
            "20241301",
            "20240101246000",
            "２０２４０１０１",
        ] {
            let err = t(bad).unwrap_err();
            assert!(
                err.contains("valid-after") && err.contains("YYYYMMDD"),
                "{bad}: {err}"
            );
        }
        let ny = TimeZone::get("America/New_York").unwrap();
        let s = |v| parse_time(v, &ny, "t").unwrap().to_string();
        assert_eq!(s("202401011200"), "2024-01-01T17:00:00Z");
        // mktime with tm_isdst = 0: standard time even in summer.
        assert_eq!(s("202407011200"), "2024-07-01T17:00:00Z");
    }
}
