//! Delivering notifications: JSON over HTTP or HTTPS (Slack-compatible and generic webhooks,
//! through `ureq` with rustls and the webpki roots) and plain-text mail through an SMTP relay
//! (`lettre`: plain, STARTTLS or implicit TLS, with credentials). Synchronous, with timeouts.
//! Callers record failures; a failed delivery never fails a command. Everything that leaves is
//! redacted ([`crate::redact`]) and every error names its target with its secrets redacted (a
//! webhook URL is a credential).

use std::time::Duration;

use lettre::Transport as _;
use serde_json::Value;

/// How long one delivery (connect, TLS, request, answer) may take.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Why a delivery failed.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("`{0}`: not an http:// or https:// URL")]
    UnsupportedUrl(String),
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

/// POSTs `body` as JSON to an `http://` or `https://` URL and requires a 2xx answer. No
/// redirect is followed (a hook that moved must be reconfigured, not chased with the body).
pub fn post_json(url: &str, body: &Value, user_agent: &str) -> Result<(), DeliveryError> {
    let target = shown(url);
    let scheme_ok = url.starts_with("http://") || url.starts_with("https://");
    // A line break or space in the URL would end the request line and start a header.
    if !scheme_ok || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(DeliveryError::UnsupportedUrl(target));
    }
    let payload = serde_json::to_vec(&crate::redact::redacted(body)).map_err(|e| {
        DeliveryError::Transport {
            target: target.clone(),
            reason: e.to_string(),
        }
    })?;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(TIMEOUT))
        .max_redirects(0)
        .http_status_as_error(false)
        .user_agent(user_agent)
        .build()
        .into();
    let answer = agent
        .post(url)
        .header("Content-Type", "application/json")
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
/// as configured in the registry (`{slack: [URL], webhooks: [URL], email: [ADDRESS] | members}`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Channel {
    pub slack: Vec<String>,
    pub webhooks: Vec<String>,
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
    /// place in its file. Unknown keys, URLs that are not `http(s)://` and addresses that do not
    /// parse are refused, so a typo cannot silence a channel.
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
        let mut out = Channel {
            slack: list("slack")?,
            webhooks: list("webhooks")?,
            ..Channel::default()
        };
        for url in out.slack.iter().chain(&out.webhooks) {
            if !(url.starts_with("http://") || url.starts_with("https://"))
                || url.chars().any(|c| c.is_whitespace() || c.is_control())
            {
                return Err(format!(
                    "`{}` is not an http:// or https:// URL",
                    shown(url)
                ));
            }
        }
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
        let slack = serde_json::json!({ "text": slack_text(&notice.text) });
        for url in &self.slack {
            if let Err(e) = post_json(url, &slack, user_agent) {
                failed(url, &e);
            }
        }
        for url in &self.webhooks {
            if let Err(e) = post_json(url, &notice.json, user_agent) {
                failed(url, &e);
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
    use betty_testkit::loopback::{HttpServer, SmtpServer, dead_addr};

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
