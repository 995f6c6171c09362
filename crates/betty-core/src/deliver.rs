//! Delivering notifications: JSON over HTTPS (or plain HTTP to loopback) to Slack-compatible
//! and generic webhooks, through `ureq` with rustls and the webpki roots, and plain-text mail
//! through an SMTP relay (`lettre`: plain, STARTTLS or implicit TLS, with credentials).
//! Synchronous, with timeouts. Callers record failures; a failed delivery never fails a
//! command. Everything that leaves is redacted ([`crate::redact`]) and every error names its
//! target with its secrets redacted (a webhook URL is a credential).
//!
//! Three rules hold for every webhook ([`Client::post_json`]), whoever sends it:
//! - **Extra CAs** come from `SSL_CERT_FILE` (a PEM bundle) and are added to the webpki roots.
//!   A bundle that cannot be read or holds no valid certificate fails the delivery naming the
//!   file; it never falls back to the webpki roots alone.
//! - **Plain `http://`** goes only to loopback (`127.0.0.0/8`, `::1`, `localhost`) unless the
//!   hook says `insecure: true` ([`Hook`]); anything else is refused before a byte is sent.
//! - **Standard Webhooks v1 signatures** (<https://www.standardwebhooks.com/>): a hook with a
//!   secret (`secret_env: VAR`, or `secret: whsec_...`) gets `webhook-id`, `webhook-timestamp`
//!   and `webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">`. A secret that
//!   is missing or malformed fails the delivery: nothing is sent unsigned.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use hmac::Mac as _;
use lettre::Transport as _;
use serde_json::Value;

/// How long one delivery (connect, TLS, request, answer) may take.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// The variable naming a PEM bundle of extra trusted CAs (OpenSSL's name for it).
pub const CA_FILE_VAR: &str = "SSL_CERT_FILE";

/// The prefix of a Standard Webhooks secret: `whsec_` and the key in base64.
pub const SECRET_PREFIX: &str = "whsec_";

/// The largest CA bundle read (a full Mozilla bundle is about 250 KB).
const MAX_CA_BYTES: u64 = 16 << 20;

/// Why a delivery failed.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("`{0}`: not an http:// or https:// URL")]
    UnsupportedUrl(String),
    #[error(
        "`{0}`: plain http:// is only allowed to loopback (127.0.0.0/8, ::1, localhost); use https://, or set `insecure: true` on this hook"
    )]
    Insecure(String),
    #[error(
        "{CA_FILE_VAR} `{path}`: {reason} (fix the bundle or unset {CA_FILE_VAR}; nothing is sent without the CAs it names)"
    )]
    CaBundle { path: String, reason: String },
    #[error("signing secret of `{target}`: {reason}; nothing was sent unsigned")]
    Secret { target: String, reason: String },
    #[error("cannot deliver to `{target}`: {reason}")]
    Transport { target: String, reason: String },
    #[error("`{target}` answered HTTP {status}")]
    Status { target: String, status: u16 },
    #[error("mail relay `{target}`: {reason}")]
    Smtp { target: String, reason: String },
    #[error("mail address `{address}`: {reason}")]
    Address { address: String, reason: String },
}

/// Text for a Slack-compatible `text` field: `&`, `<` and `>` escaped as Slack asks (so user
/// text cannot mention `<!channel>` or forge a link) and control characters shown escaped.
pub fn slack_text(s: &str) -> String {
    crate::escape::escape(s)
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn shown(target: &str) -> String {
    crate::redact::redact_text(target).into_owned()
}

fn reason(e: &dyn std::fmt::Display) -> String {
    crate::redact::redact_text(&e.to_string()).into_owned()
}

/// Where a webhook's signing secret comes from.
#[derive(Clone, PartialEq, Eq)]
pub enum HookSecret {
    /// `secret_env: VAR`: read from the environment at each delivery (keeps secrets out of
    /// the working tree).
    Env(String),
    /// `secret: whsec_...`, written in the configuration (checked when it is loaded).
    Inline(String),
}

impl std::fmt::Debug for HookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HookSecret::Env(var) => f.debug_tuple("Env").field(var).finish(),
            HookSecret::Inline(_) => f.write_str("Inline([REDACTED])"),
        }
    }
}

/// Decodes `whsec_<base64>` into the HMAC key. The error never quotes the secret.
pub fn parse_secret(secret: &str) -> Result<Vec<u8>, String> {
    let Some(b64) = secret.trim().strip_prefix(SECRET_PREFIX) else {
        return Err(format!(
            "a Standard Webhooks secret starts with `{SECRET_PREFIX}` followed by the key in base64"
        ));
    };
    match base64::engine::general_purpose::STANDARD.decode(b64) {
        Ok(key) if !key.is_empty() => Ok(key),
        Ok(_) => Err(format!("the key after `{SECRET_PREFIX}` is empty")),
        Err(e) => Err(format!(
            "the key after `{SECRET_PREFIX}` is not base64 ({e})"
        )),
    }
}

fn is_env_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl HookSecret {
    /// The HMAC key, read now (an unset variable is an error, never "unsigned").
    pub fn key(&self) -> Result<Vec<u8>, String> {
        match self {
            HookSecret::Inline(s) => parse_secret(s),
            HookSecret::Env(var) => match std::env::var(var) {
                Ok(s) => parse_secret(&s).map_err(|e| format!("`{var}`: {e}")),
                Err(std::env::VarError::NotPresent) => {
                    Err(format!("the environment variable `{var}` is not set"))
                }
                Err(std::env::VarError::NotUnicode(_)) => {
                    Err(format!("the environment variable `{var}` is not UTF-8"))
                }
            },
        }
    }
}

/// The Standard Webhooks v1 signature of one message: `v1,<base64 HMAC-SHA256>` over
/// `{id}.{timestamp}.{body}`.
pub fn webhook_signature(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    // HMAC takes a key of any length; `new_from_slice` cannot fail for it.
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).expect("HMAC takes any key");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    let tag = mac.finalize().into_bytes();
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(tag)
    )
}

/// One webhook as configured: a URL, or `{url, insecure, secret_env | secret}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hook {
    pub url: String,
    /// `insecure: true`: plain `http://` may go beyond loopback.
    pub insecure: bool,
    /// Sign with Standard Webhooks v1 headers.
    pub secret: Option<HookSecret>,
}

impl Hook {
    /// A hook with no options (loopback-only for `http://`, unsigned).
    pub fn plain(url: &str) -> Hook {
        Hook {
            url: url.to_string(),
            insecure: false,
            secret: None,
        }
    }

    /// Reads a hook from its configuration: a URL string, or a mapping with `url` and the
    /// optional `insecure` (a boolean), `secret_env` (a variable name) or `secret`
    /// (`whsec_...`). Unknown keys, bad URLs, plain `http://` beyond loopback without
    /// `insecure: true` and malformed secrets are refused, so a typo cannot silence a hook or
    /// send it unsigned.
    pub fn from_value(v: &Value) -> Result<Hook, String> {
        let hook = match v {
            Value::String(url) => Hook::plain(url),
            Value::Object(map) => {
                const KEYS: [&str; 4] = ["url", "insecure", "secret_env", "secret"];
                if let Some(k) = map.keys().find(|k| !KEYS.contains(&k.as_str())) {
                    return Err(format!(
                        "unknown key `{k}` in a hook; expected `url`, `insecure`, `secret_env` and `secret`"
                    ));
                }
                let Some(url) = map.get("url").and_then(Value::as_str) else {
                    return Err("a hook given as a mapping needs `url:`".into());
                };
                let insecure = match map.get("insecure") {
                    None => false,
                    Some(Value::Bool(b)) => *b,
                    Some(_) => return Err("`insecure` must be `true` or `false`".into()),
                };
                let secret = match (map.get("secret_env"), map.get("secret")) {
                    (Some(_), Some(_)) => {
                        return Err("give a hook `secret_env` or `secret`, not both".into());
                    }
                    (Some(Value::String(var)), None) if is_env_name(var) => {
                        Some(HookSecret::Env(var.clone()))
                    }
                    (Some(_), None) => {
                        return Err(
                            "`secret_env` must name an environment variable (letters, digits, `_`)"
                                .into(),
                        );
                    }
                    (None, Some(Value::String(s))) => {
                        parse_secret(s)?;
                        Some(HookSecret::Inline(s.clone()))
                    }
                    (None, Some(_)) => {
                        return Err(format!("`secret` must be a string `{SECRET_PREFIX}...`"));
                    }
                    (None, None) => None,
                };
                Hook {
                    url: url.to_string(),
                    insecure,
                    secret,
                }
            }
            _ => return Err("a hook is a URL or a mapping with `url:`".into()),
        };
        check_url(&hook.url, hook.insecure).map_err(|e| e.to_string())?;
        Ok(hook)
    }

    /// Reads `v` as one hook or a list of hooks (`None`/null: none).
    pub fn list_from_value(v: Option<&Value>) -> Result<Vec<Hook>, String> {
        match v {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(a)) => a.iter().map(Hook::from_value).collect(),
            Some(one) => Ok(vec![Hook::from_value(one)?]),
        }
    }
}

/// Whether `host` (as in a URL: IPv6 in brackets) names this machine: `127.0.0.0/8`, `::1`
/// or `localhost`. Only the text counts; no name is resolved.
pub fn is_loopback_host(host: &str) -> bool {
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return v6.parse::<Ipv6Addr>().is_ok_and(|ip| ip.is_loopback());
    }
    host.parse::<Ipv4Addr>().is_ok_and(|ip| ip.is_loopback())
}

/// Checks a webhook URL before anything is sent: `http://` or `https://`, no whitespace or
/// control characters (which would end the request line and start a header), and plain
/// `http://` only to loopback unless `insecure`.
pub fn check_url(url: &str, insecure: bool) -> Result<(), DeliveryError> {
    let target = || shown(url);
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(DeliveryError::UnsupportedUrl(target()));
    }
    let uri: ureq::http::Uri = url
        .parse()
        .map_err(|_| DeliveryError::UnsupportedUrl(target()))?;
    let host = uri.host().unwrap_or_default();
    match uri.scheme_str() {
        _ if host.is_empty() => Err(DeliveryError::UnsupportedUrl(target())),
        Some("https") => Ok(()),
        Some("http") if insecure || is_loopback_host(host) => Ok(()),
        Some("http") => Err(DeliveryError::Insecure(target())),
        _ => Err(DeliveryError::UnsupportedUrl(target())),
    }
}

/// Reads a PEM bundle of CA certificates. Every certificate must be one rustls accepts as a
/// trust anchor, and there must be at least one: a bundle that is not what it claims is an
/// error, never a silent fallback to fewer roots.
pub fn load_ca_file(path: &Path) -> Result<Vec<ureq::tls::Certificate<'static>>, DeliveryError> {
    let bad = |reason: String| DeliveryError::CaBundle {
        path: crate::escape::escape(&path.display().to_string()).into_owned(),
        reason,
    };
    let bytes = crate::fsx::read_regular(path, MAX_CA_BYTES).map_err(|e| bad(reason(&e)))?;
    let mut certs = Vec::new();
    let mut store = rustls::RootCertStore::empty();
    for item in ureq::tls::parse_pem(&bytes) {
        match item {
            Ok(ureq::tls::PemItem::Certificate(cert)) => {
                let der = rustls::pki_types::CertificateDer::from(cert.der());
                store.add(der).map_err(|e| {
                    bad(format!(
                        "certificate {} is not a usable CA certificate ({e})",
                        certs.len() + 1
                    ))
                })?;
                certs.push(cert);
            }
            // Keys and other sections are not trust; OpenSSL skips them too.
            Ok(_) => {}
            Err(e) => {
                return Err(bad(format!(
                    "not a PEM bundle after {} certificate(s) ({})",
                    certs.len(),
                    reason(&e)
                )));
            }
        }
    }
    if certs.is_empty() {
        return Err(bad("holds no PEM certificate".into()));
    }
    Ok(certs)
}

/// The one HTTP client: how webhooks go out (see the module documentation).
#[derive(Clone, Debug)]
pub struct Client {
    user_agent: String,
    ca_file: Option<PathBuf>,
}

impl Client {
    /// A client sending as `user_agent`, trusting the CAs of `SSL_CERT_FILE` (when set and not
    /// empty) besides the webpki roots.
    pub fn new(user_agent: &str) -> Client {
        let ca_file = std::env::var_os(CA_FILE_VAR)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from);
        Client {
            user_agent: user_agent.to_string(),
            ca_file,
        }
    }

    /// The same client with another extra CA bundle (`None`: the webpki roots alone).
    pub fn with_ca_file(mut self, ca_file: Option<PathBuf>) -> Client {
        self.ca_file = ca_file;
        self
    }

    fn agent(&self, https: bool) -> Result<ureq::Agent, DeliveryError> {
        let mut config = ureq::Agent::config_builder()
            .timeout_global(Some(TIMEOUT))
            .max_redirects(0)
            .http_status_as_error(false)
            .user_agent(&self.user_agent);
        if https && let Some(path) = &self.ca_file {
            let mut roots: Vec<ureq::tls::Certificate<'static>> =
                webpki_root_certs::TLS_SERVER_ROOT_CERTS
                    .iter()
                    .map(|c| ureq::tls::Certificate::from_der(c.as_ref()))
                    .collect();
            roots.extend(load_ca_file(path)?);
            let tls = ureq::tls::TlsConfig::builder()
                .root_certs(ureq::tls::RootCerts::from(roots))
                .build();
            config = config.tls_config(tls);
        }
        Ok(config.build().into())
    }

    /// POSTs `body` as JSON to `hook` and requires a 2xx answer. No redirect is followed (a
    /// hook that moved must be reconfigured, not chased with the body). `message_id` is the
    /// `webhook-id` of a signed hook: the same for every retry of one message.
    pub fn post_json(
        &self,
        hook: &Hook,
        body: &Value,
        message_id: &str,
    ) -> Result<(), DeliveryError> {
        let url = hook.url.as_str();
        let target = shown(url);
        check_url(url, hook.insecure)?;
        let payload = serde_json::to_vec(&crate::redact::redacted(body)).map_err(|e| {
            DeliveryError::Transport {
                target: target.clone(),
                reason: e.to_string(),
            }
        })?;
        let key = match &hook.secret {
            None => None,
            Some(s) => Some(s.key().map_err(|reason| DeliveryError::Secret {
                target: target.clone(),
                reason,
            })?),
        };
        let agent = self.agent(url.starts_with("https://"))?;
        let mut request = agent.post(url).header("Content-Type", "application/json");
        if let Some(key) = key {
            let timestamp = jiff::Timestamp::now().as_second();
            request = request
                .header("webhook-id", message_id)
                .header("webhook-timestamp", timestamp.to_string())
                .header(
                    "webhook-signature",
                    webhook_signature(&key, message_id, timestamp, &payload),
                );
        }
        let answer = request
            .send(&payload[..])
            .map_err(|e| DeliveryError::Transport {
                target: target.clone(),
                reason: reason(&e),
            })?;
        let status = answer.status().as_u16();
        if (200..300).contains(&status) {
            Ok(())
        } else {
            Err(DeliveryError::Status { target, status })
        }
    }
}

/// A new `webhook-id`: `msg_` and a UUID v7.
pub fn message_id() -> String {
    format!("msg_{}", uuid::Uuid::now_v7().simple())
}

/// The relay a mail goes through: `host:port` (plain SMTP, for a local relay), or a URL as
/// lettre reads it: `smtp://host:port` (plain), `smtp://host:587?tls=required` (STARTTLS),
/// `smtps://user:password@host:465` (implicit TLS); credentials are percent-encoded.
pub fn relay_url(relay: &str) -> String {
    if relay.contains("://") {
        relay.to_string()
    } else {
        format!("smtp://{relay}")
    }
}

/// Whether `s` is one e-mail address (as a mail would be sent to it).
pub fn is_address(s: &str) -> bool {
    s.parse::<lettre::Address>().is_ok()
}

fn address(s: &str) -> Result<lettre::message::Mailbox, DeliveryError> {
    s.trim().parse().map_err(|e| DeliveryError::Address {
        address: crate::escape::escape(s).into_owned(),
        reason: reason(&e),
    })
}

/// Builds one plain-text mail; every address must parse (no header or command can be
/// smuggled through one), the subject and body are redacted.
pub fn mail_message(
    from: &str,
    to: &[String],
    subject: &str,
    body: &str,
) -> Result<lettre::Message, DeliveryError> {
    let mut builder = lettre::Message::builder()
        .from(address(from)?)
        .subject(crate::redact::redact_text(subject).into_owned())
        .header(lettre::message::header::ContentType::TEXT_PLAIN);
    for rcpt in to {
        builder = builder.to(address(rcpt)?);
    }
    builder
        .body(crate::redact::redact_text(body).into_owned())
        .map_err(|e| DeliveryError::Address {
            address: to.join(", "),
            reason: reason(&e),
        })
}

/// Sends one plain-text mail through an SMTP relay (see [`relay_url`]).
pub fn send_mail(
    relay: &str,
    from: &str,
    to: &[String],
    subject: &str,
    body: &str,
) -> Result<(), DeliveryError> {
    let target = shown(relay);
    let smtp = |e: &dyn std::fmt::Display| DeliveryError::Smtp {
        target: target.clone(),
        reason: reason(e),
    };
    let message = mail_message(from, to, subject, body)?;
    let transport = lettre::SmtpTransport::from_url(&relay_url(relay))
        .map_err(|e| smtp(&e))?
        .timeout(Some(TIMEOUT))
        .build();
    transport.send(&message).map(|_| ()).map_err(|e| smtp(&e))
}

/// Where one audience is told: Slack-compatible hooks, generic webhooks and mail addresses,
/// as configured in the registry (`{slack: [HOOK], webhooks: [HOOK], email: [ADDRESS] |
/// members}`, a hook being a URL or `{url, insecure, secret_env | secret}`, see [`Hook`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Channel {
    pub slack: Vec<Hook>,
    pub webhooks: Vec<Hook>,
    pub email: Vec<String>,
    /// `email: members`: mail every member of the group (the approver groups' form).
    pub email_members: bool,
}

/// A relay and the sender every mail goes out as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Relay {
    /// See [`relay_url`].
    pub url: String,
    pub from: String,
}

/// One message to a channel: the text for people (Slack and mail) and the JSON for webhooks.
#[derive(Clone, Debug)]
pub struct Notice {
    pub subject: String,
    pub text: String,
    pub json: Value,
}

/// A delivery that failed: the target (secrets redacted) and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub target: String,
    pub error: String,
}

impl Channel {
    /// Reads a channel from its configuration; the error says what is wrong, for the caller to
    /// place in its file. Unknown keys, hooks [`Hook::from_value`] refuses and addresses that do
    /// not parse are refused, so a typo cannot silence a channel.
    pub fn from_value(v: &Value, members_allowed: bool) -> Result<Channel, String> {
        let Some(map) = v.as_object() else {
            return Err(
                "expected a mapping `{slack: [URL], webhooks: [URL], email: [ADDRESS]}`".into(),
            );
        };
        if let Some(k) = map
            .keys()
            .find(|k| !["slack", "webhooks", "email"].contains(&k.as_str()))
        {
            return Err(format!(
                "unknown key `{k}`; expected `slack`, `webhooks` and `email`"
            ));
        }
        let list = |key: &str| -> Result<Vec<String>, String> {
            match map.get(key) {
                None | Some(Value::Null) => Ok(Vec::new()),
                Some(Value::String(s)) => Ok(vec![s.clone()]),
                Some(Value::Array(a)) => a
                    .iter()
                    .map(|x| {
                        x.as_str()
                            .map(str::to_string)
                            .ok_or_else(|| format!("`{key}` must be a list of strings"))
                    })
                    .collect(),
                Some(_) => Err(format!("`{key}` must be a list of strings")),
            }
        };
        let hooks =
            |key: &str| Hook::list_from_value(map.get(key)).map_err(|e| format!("`{key}`: {e}"));
        let mut out = Channel {
            slack: hooks("slack")?,
            webhooks: hooks("webhooks")?,
            ..Channel::default()
        };
        if map.get("email").and_then(Value::as_str) == Some("members") {
            if !members_allowed {
                return Err("`email: members` is for approver groups; list addresses here".into());
            }
            out.email_members = true;
        } else {
            out.email = list("email")?;
            for a in &out.email {
                address(a).map_err(|e| e.to_string())?;
            }
        }
        Ok(out)
    }

    /// Whether the channel names no destination.
    pub fn is_empty(&self) -> bool {
        self.slack.is_empty()
            && self.webhooks.is_empty()
            && self.email.is_empty()
            && !self.email_members
    }

    /// Sends `notice` to every destination (mail through `relay`, to `members` too when
    /// `email: members`), and returns what failed; nothing here stops at a failure.
    pub fn deliver(
        &self,
        notice: &Notice,
        relay: Option<&Relay>,
        members: &[String],
        user_agent: &str,
    ) -> Vec<Failure> {
        let mut failures = Vec::new();
        let mut failed = |target: &str, e: &DeliveryError| {
            failures.push(Failure {
                target: shown(target),
                error: e.to_string(),
            });
        };
        let client = Client::new(user_agent);
        let id = message_id();
        let slack = serde_json::json!({ "text": slack_text(&notice.text) });
        for hook in &self.slack {
            if let Err(e) = client.post_json(hook, &slack, &id) {
                failed(&hook.url, &e);
            }
        }
        for hook in &self.webhooks {
            if let Err(e) = client.post_json(hook, &notice.json, &id) {
                failed(&hook.url, &e);
            }
        }
        let mut to: Vec<String> = self.email.clone();
        if self.email_members {
            to.extend(members.iter().filter(|m| is_address(m)).cloned());
        }
        let mut seen = std::collections::BTreeSet::new();
        to.retain(|a| seen.insert(a.clone()));
        if !to.is_empty() {
            match relay {
                Some(r) => {
                    let text = crate::escape::escape(&notice.text).into_owned();
                    if let Err(e) = send_mail(&r.url, &r.from, &to, &notice.subject, &text) {
                        failed(&r.url, &e);
                    }
                }
                None => failures.push(Failure {
                    target: format!("mail to {}", to.join(", ")),
                    error: "no mail relay is configured (`smtp:` in the notification settings)"
                        .into(),
                }),
            }
        }
        failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use betty_testkit::loopback::{HttpServer, SmtpServer, TestCa, dead_addr};

    /// The Standard Webhooks test vector (the reference libraries' own).
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    fn post_json(url: &str, body: &Value, user_agent: &str) -> Result<(), DeliveryError> {
        Client::new(user_agent)
            .with_ca_file(None)
            .post_json(&Hook::plain(url), body, "msg_test")
    }

    fn signed(url: &str) -> Hook {
        Hook {
            secret: Some(HookSecret::Inline(SECRET.into())),
            ..Hook::plain(url)
        }
    }

    /// Checks a request's Standard Webhooks headers with an HMAC computed here, not by
    /// [`webhook_signature`].
    fn verify_signature(r: &betty_testkit::loopback::HttpRequest, secret: &str) {
        let id = r.header("webhook-id").expect("webhook-id");
        let ts = r.header("webhook-timestamp").expect("webhook-timestamp");
        let ts_n: i64 = ts.parse().expect("a timestamp in seconds");
        assert!(
            (jiff::Timestamp::now().as_second() - ts_n).abs() < 300,
            "{ts}"
        );
        let key = base64::engine::general_purpose::STANDARD
            .decode(secret.strip_prefix("whsec_").unwrap())
            .unwrap();
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(ts.as_bytes());
        mac.update(b".");
        mac.update(&r.body);
        let want = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        let got = r.header("webhook-signature").expect("webhook-signature");
        assert!(
            got.split(' ').any(|s| s == format!("v1,{want}")),
            "{got} != v1,{want}"
        );
    }

    #[test]
    fn the_signature_is_standard_webhooks_v1() {
        let key = parse_secret(SECRET).unwrap();
        assert_eq!(
            webhook_signature(
                &key,
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1_614_265_330,
                br#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        for bad in [
            "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "whsec_",
            "whsec_!!not base64",
        ] {
            let e = parse_secret(bad).unwrap_err();
            assert!(!e.contains("MfKQ9r8"), "{e}");
        }
        assert_eq!(
            format!("{:?}", HookSecret::Inline(SECRET.into())),
            "Inline([REDACTED])"
        );
    }

    #[test]
    fn https_with_the_ca_of_ssl_cert_file_is_trusted_and_signed() {
        let ca = TestCa::new();
        let server = HttpServer::start_tls(&ca);
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("other")).unwrap();
        let client = Client::new("test-agent").with_ca_file(Some(ca.write_pem(dir.path())));
        let body = serde_json::json!({"text": "hi", "token": "ghp_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"});
        for url in [server.url("/hook"), server.localhost_url("/hook")] {
            client.post_json(&signed(&url), &body, "msg_1").unwrap();
        }
        client
            .post_json(&Hook::plain(&server.url("/plain")), &body, "msg_2")
            .unwrap();
        let got = server.requests();
        assert_eq!(got.len(), 3);
        for r in &got[..2] {
            assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/hook"));
            let sent = r.json();
            assert_eq!(sent["text"], "hi");
            assert_ne!(
                sent["token"], body["token"],
                "the body is redacted on the way out"
            );
            assert_eq!(r.header("webhook-id"), Some("msg_1"));
            verify_signature(r, SECRET);
        }
        assert_eq!(
            got[2].header("webhook-signature"),
            None,
            "no secret, no signature"
        );

        // Without the CA, the webpki roots alone do not trust the server: a transport
        // failure naming the target, the TLS handshake refused, nothing received.
        let err = Client::new("t")
            .with_ca_file(None)
            .post_json(&signed(&server.url("/hook")), &body, "msg_3")
            .unwrap_err();
        assert!(matches!(err, DeliveryError::Transport { .. }), "{err}");
        assert!(err.to_string().contains(&server.url("/hook")), "{err}");
        assert_eq!(server.requests().len(), 3);
        server.wait_for_failed_handshakes(1);
        // Another CA is no better.
        let other = TestCa::new().write_pem(&dir.path().join("other"));
        let err = Client::new("t")
            .with_ca_file(Some(other))
            .post_json(&Hook::plain(&server.url("/hook")), &body, "m")
            .unwrap_err();
        assert!(matches!(err, DeliveryError::Transport { .. }), "{err}");
    }

    #[test]
    fn a_bad_ca_bundle_fails_closed_naming_the_file() {
        let ca = TestCa::new();
        let server = HttpServer::start_tls(&ca);
        let dir = tempfile::tempdir().unwrap();
        let good = ca.write_pem(dir.path());
        let case = |name: &str, text: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            p
        };
        let cases = [
            (dir.path().join("missing.pem"), "missing.pem"),
            (dir.path().to_path_buf(), "regular file"),
            (case("empty.pem", ""), "no PEM certificate"),
            (
                case("text.pem", "not a certificate\n"),
                "no PEM certificate",
            ),
            (
                case(
                    "der.pem",
                    "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
                ),
                "certificate 1",
            ),
            (
                case(
                    "torn.pem",
                    &format!("{}-----BEGIN CERTIFICATE-----\nMIIB!!\n", ca.pem()),
                ),
                "after 1 certificate",
            ),
        ];
        for (path, says) in cases {
            let err = Client::new("t")
                .with_ca_file(Some(path.clone()))
                .post_json(&Hook::plain(&server.url("/hook")), &Value::Null, "m")
                .unwrap_err();
            assert!(matches!(err, DeliveryError::CaBundle { .. }), "{err}");
            let text = err.to_string();
            assert!(
                text.contains(&path.display().to_string()) && text.contains(says),
                "{text}"
            );
        }
        assert!(server.requests().is_empty());
        assert_eq!(server.handshakes_failed(), 0, "nothing was even attempted");
        // A bundle with a key beside the certificate is fine; plain http ignores the bundle.
        let mixed = case(
            "mixed.pem",
            &format!(
                "# comment\n{}\n-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
                ca.pem()
            ),
        );
        Client::new("t")
            .with_ca_file(Some(mixed))
            .post_json(&Hook::plain(&server.url("/hook")), &Value::Null, "m")
            .unwrap();
        let plain = HttpServer::start();
        Client::new("t")
            .with_ca_file(Some(dir.path().join("missing.pem")))
            .post_json(&Hook::plain(&plain.url("/x")), &Value::Null, "m")
            .unwrap();
        drop(good);
    }

    #[test]
    fn plain_http_goes_only_to_loopback_unless_insecure() {
        for ok in [
            "http://127.0.0.1:9/x",
            "http://127.45.6.7/x",
            "http://[::1]:8080/x",
            "http://localhost:1/x",
            "http://LocalHost/x",
            "https://example.com/x",
            "https://10.0.0.1/x",
        ] {
            check_url(ok, false).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for refused in [
            "http://example.com/hook",
            "http://10.0.0.1/x",
            "http://192.0.2.1:80/x",
            "http://[::ffff:127.0.0.1]/x",
            "http://[::2]/x",
            "http://127.0.0.1.example.com/x",
            "http://localhost.example.com/x",
            "http://127.0.0.1@example.com/x",
            "http://127.1/x",
        ] {
            let err = check_url(refused, false).unwrap_err();
            assert!(
                matches!(err, DeliveryError::Insecure(_)),
                "{refused}: {err}"
            );
            check_url(refused, true).unwrap_or_else(|e| panic!("{refused}: {e}"));
        }
        // Refused before anything is sent, with what to do about it.
        let err = post_json("http://192.0.2.1/hook", &Value::Null, "t").unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("https://") && text.contains("insecure: true"),
            "{text}"
        );
        // And refused when the configuration is read.
        let e = Hook::from_value(&serde_json::json!("http://ci.example.com/hook")).unwrap_err();
        assert!(e.contains("insecure: true"), "{e}");
        let h = Hook::from_value(
            &serde_json::json!({"url": "http://ci.example.com/hook", "insecure": true}),
        )
        .unwrap();
        assert!(h.insecure && h.secret.is_none());
    }

    #[test]
    fn hooks_are_read_strictly() {
        let h = Hook::from_value(&serde_json::json!({
            "url": "https://ci.example.com/hook", "secret_env": "BETTY_HOOK_SECRET"
        }))
        .unwrap();
        assert_eq!(h.secret, Some(HookSecret::Env("BETTY_HOOK_SECRET".into())));
        let h = Hook::from_value(&serde_json::json!({"url": "https://x.com/h", "secret": SECRET}))
            .unwrap();
        assert_eq!(h.secret, Some(HookSecret::Inline(SECRET.into())));
        for (bad, says) in [
            (
                serde_json::json!({"url": "https://x.com/h", "secrets": "x"}),
                "unknown key",
            ),
            (serde_json::json!({"insecure": true}), "`url:`"),
            (
                serde_json::json!({"url": "https://x.com/h", "insecure": "yes"}),
                "`insecure`",
            ),
            (
                serde_json::json!({"url": "https://x.com/h", "secret": "hunter2"}),
                "whsec_",
            ),
            (
                serde_json::json!({"url": "https://x.com/h", "secret_env": "A B"}),
                "variable",
            ),
            (
                serde_json::json!({"url": "https://x.com/h", "secret": SECRET, "secret_env": "A"}),
                "not both",
            ),
            (serde_json::json!({"url": "ftp://x.com/h"}), "http"),
            (serde_json::json!(42), "URL"),
        ] {
            let e = Hook::from_value(&bad).unwrap_err();
            assert!(e.contains(says) && !e.contains("hunter2"), "{bad}: {e}");
        }
        let c = Channel::from_value(
            &serde_json::json!({"webhooks": [
                "https://a.example.com/h",
                {"url": "http://10.1.2.3/h", "insecure": true, "secret_env": "S"},
            ]}),
            false,
        )
        .unwrap();
        assert_eq!(c.webhooks.len(), 2);
        assert!(c.webhooks[1].insecure);
        let e = Channel::from_value(
            &serde_json::json!({"slack": "http://hooks.example.com/x"}),
            false,
        )
        .unwrap_err();
        assert!(e.contains("`slack`") && e.contains("insecure: true"), "{e}");
    }

    #[test]
    fn a_missing_secret_sends_nothing_unsigned() {
        let server = HttpServer::start();
        let hook = Hook {
            secret: Some(HookSecret::Env("BETTY_TEST_NEVER_SET_SECRET_9F2C".into())),
            ..Hook::plain(&server.url("/hook"))
        };
        let err = Client::new("t")
            .post_json(&hook, &Value::Null, "m")
            .unwrap_err();
        assert!(matches!(err, DeliveryError::Secret { .. }), "{err}");
        assert!(
            err.to_string().contains("BETTY_TEST_NEVER_SET_SECRET_9F2C"),
            "{err}"
        );
        assert!(server.requests().is_empty());
        // Over plain loopback, a signed hook carries the same headers.
        Client::new("t")
            .post_json(
                &signed(&server.url("/hook")),
                &serde_json::json!({"a": 1}),
                "msg_x",
            )
            .unwrap();
        verify_signature(&server.requests()[0], SECRET);
    }

    #[test]
    fn posts_json_and_reads_the_status() {
        let server = HttpServer::answering(|n| if n == 0 { 200 } else { 500 });
        let url = server.url("/hook");
        post_json(&url, &serde_json::json!({"text": "hi"}), "test-agent").unwrap();
        let err = post_json(&url, &serde_json::json!({}), "test-agent").unwrap_err();
        assert!(
            matches!(err, DeliveryError::Status { status: 500, .. }),
            "{err}"
        );
        let got = server.requests();
        assert_eq!(got.len(), 2);
        assert_eq!(
            (got[0].method.as_str(), got[0].path.as_str()),
            ("POST", "/hook")
        );
        assert_eq!(got[0].json(), serde_json::json!({"text": "hi"}));
        assert_eq!(got[0].header("content-type"), Some("application/json"));
        assert_eq!(got[0].header("user-agent"), Some("test-agent"));
        for bad in [
            "ftp://example.com/x",
            "example.com/hook",
            "http://127.0.0.1:9/x HTTP/1.1\r\nX-Evil: 1",
        ] {
            assert!(
                matches!(
                    post_json(bad, &Value::Null, "t"),
                    Err(DeliveryError::UnsupportedUrl(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_redirect_is_not_followed_and_errors_redact_the_url() {
        let server = HttpServer::answering(|_| 302);
        let err = post_json(&server.url("/hook"), &Value::Null, "t").unwrap_err();
        assert!(
            matches!(err, DeliveryError::Status { status: 302, .. }),
            "{err}"
        );
        assert_eq!(server.requests().len(), 1);
        let dead = format!("http://hook:hunter2secret@{}/x", dead_addr());
        let err = post_json(&dead, &Value::Null, "t").unwrap_err().to_string();
        assert!(
            !err.contains("hunter2secret") && err.contains("[REDACTED]"),
            "{err}"
        );
    }

    #[test]
    fn https_is_spoken() {
        // A plain listener cannot complete a TLS handshake: the failure is a TLS one, which
        // proves the client spoke TLS (an `https://` URL is no longer refused as unsupported).
        let server = HttpServer::start();
        let url = server.url("/hook").replacen("http://", "https://", 1);
        let err = post_json(&url, &Value::Null, "t").unwrap_err();
        assert!(matches!(err, DeliveryError::Transport { .. }), "{err}");
        assert!(server.requests().is_empty());
    }

    #[test]
    fn mail_bodies_and_headers_cannot_inject() {
        let server = SmtpServer::start();
        let body = ".first line\rbare CR\nbare LF\r\n.\r\nQUIT\n..two dots\n\r\nend.";
        send_mail(
            &server.relay(),
            "betty@x.com",
            &["sec@x.com".to_string(), "Ops Team <ops@x.com>".to_string()],
            "approval\r\nBcc: evil@x.com\n\x1b[2J réservé 日本語",
            body,
        )
        .unwrap();
        let mails = server.mails();
        assert_eq!(mails.len(), 1);
        let mail = &mails[0];
        assert_eq!(mail.from, "betty@x.com");
        assert_eq!(mail.to, ["sec@x.com", "ops@x.com"]);
        let head = mail.data.split("\r\n\r\n").next().unwrap();
        assert!(
            !head
                .split("\r\n")
                .any(|h| h.to_ascii_lowercase().starts_with("bcc")),
            "{head}"
        );
        assert!(!head.contains('\x1b'), "{head}");
        // The body survived intact: a `.` line did not end DATA, no command was smuggled.
        assert!(
            mail.commands
                .iter()
                .filter(|c| c.starts_with("QUIT"))
                .count()
                <= 1
        );
        let text = mail.body().replace("\r\n", "\n");
        assert!(text.contains("QUIT"), "{text}");
        assert!(
            text.contains("..two dots") && text.trim_end().ends_with("end."),
            "{text}"
        );
        // An address that does not parse is refused before anything is sent.
        for bad in ["betty@x.com>\r\nRCPT TO:<evil@x.com", "not an address"] {
            let err = send_mail(&server.relay(), bad, &["a@x.com".into()], "s", "b").unwrap_err();
            assert!(matches!(err, DeliveryError::Address { .. }), "{err}");
        }
        let err = send_mail(
            &server.relay(),
            "b@x.com",
            &["sec@x.com> NOTIFY=NEVER".into()],
            "s",
            "b",
        )
        .unwrap_err();
        assert!(matches!(err, DeliveryError::Address { .. }), "{err}");
        assert_eq!(server.mails().len(), 1);
    }

    #[test]
    fn relays_and_failures() {
        assert_eq!(relay_url("mail.x.com:25"), "smtp://mail.x.com:25");
        assert_eq!(
            relay_url("smtps://u:p@mail.x.com"),
            "smtps://u:p@mail.x.com"
        );
        let dead = format!("smtp://user:hunter2secret@{}", dead_addr());
        let err = send_mail(&dead, "a@x.com", &["b@x.com".into()], "s", "b").unwrap_err();
        assert!(matches!(err, DeliveryError::Smtp { .. }), "{err}");
        assert!(!err.to_string().contains("hunter2secret"), "{err}");
    }
}
