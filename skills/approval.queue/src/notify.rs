//! Notifications of approval transitions, configured in `registry/approvals/notify.yaml`:
//!
//! ```yaml
//! notify:
//!   slack: [http://hooks.example.com/services/T000/B000/XXX]   # Slack-compatible: {"text": ...}
//!   webhooks: [http://ci.example.com/betty-approvals]           # the request as JSON
//!   email:
//!     smtp: mail.example.com:25
//!     from: betty@example.com
//!     to: [security@example.com]
//! ```
//!
//! Delivery never blocks or fails the command: a failure is logged, recorded as an
//! `approval.notification_failed` telemetry event, and the command goes on. Plain HTTP and
//! SMTP only: point `https://` hooks at a local relay (TLS is not built in).

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use betty_core::approval::ApprovalRequest;
use betty_core::discover::RegistryDir;
use betty_core::identity::Identity;
use betty_core::limits::Limits;
use betty_core::telemetry::{EventWriter, NewEvent};
use serde_json::{Map, Value, json};

const TIMEOUT: Duration = Duration::from_secs(5);

/// Sends every configured notification for one transition; records failures.
pub fn send(registry: &RegistryDir, who: &Identity, event: &str, req: &ApprovalRequest) {
    let path = registry.approvals_dir().join("notify.yaml");
    if !path.exists() {
        return;
    }
    let config = match betty_core::Document::read_yaml(&path, &Limits::MANIFEST) {
        Ok(doc) => doc.value,
        Err(e) => {
            tracing::warn!("notifications skipped: {e}");
            return;
        }
    };
    let notify = config.get("notify").cloned().unwrap_or(Value::Null);
    let text = format!(
        "Betty approval {}: {} on {} requested by {} ({}/{} from `{}`): {}",
        req.status,
        req.operation,
        req.skill.as_deref().unwrap_or("-"),
        req.requested_by,
        req.approvals().len(),
        req.required,
        req.approvers,
        req.id
    );
    let mut failures = Vec::new();
    for url in strings(&notify, "slack") {
        if let Err(e) = post_json(&url, &json!({ "text": text })) {
            failures.push((url, e));
        }
    }
    for url in strings(&notify, "webhooks") {
        let body = json!({"event": event, "request": req});
        if let Err(e) = post_json(&url, &body) {
            failures.push((url, e));
        }
    }
    if let Some(email) = notify.get("email") {
        let server = email
            .get("smtp")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let from = email
            .get("from")
            .and_then(Value::as_str)
            .unwrap_or("betty@localhost");
        let to = strings(email, "to");
        if !server.is_empty() && !to.is_empty() {
            let subject = format!("[betty] {} {}", event, req.id);
            if let Err(e) = send_mail(server, from, &to, &subject, &text) {
                failures.push((format!("smtp://{server}"), e));
            }
        }
    }
    for (target, error) in failures {
        tracing::warn!("notification to {target} failed: {error}");
        let mut context = Map::new();
        context.insert("target".into(), target.into());
        context.insert("error".into(), error.into());
        context.insert("approval_id".into(), req.id.clone().into());
        let _ = EventWriter::new(&registry.events_jsonl(), "approval-queue").record(
            NewEvent {
                event_type: "approval.notification_failed".into(),
                skill_name: req.skill.clone(),
                outcome: "failure".into(),
                context,
                ..Default::default()
            },
            who,
        );
    }
}

fn strings(v: &Value, key: &str) -> Vec<String> {
    v.get(key)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn connect(host_port: &str) -> Result<TcpStream, String> {
    let addr = host_port
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve `{host_port}`: {e}"))?
        .next()
        .ok_or_else(|| format!("no address for `{host_port}`"))?;
    let s =
        TcpStream::connect_timeout(&addr, TIMEOUT).map_err(|e| format!("cannot connect: {e}"))?;
    let _ = s.set_read_timeout(Some(TIMEOUT));
    let _ = s.set_write_timeout(Some(TIMEOUT));
    Ok(s)
}

/// POSTs JSON over HTTP/1.1 and checks for a 2xx status.
pub fn post_json(url: &str, body: &Value) -> Result<(), String> {
    let rest = url.strip_prefix("http://").ok_or_else(|| {
        format!("`{url}`: only http:// is supported; use a local relay for https")
    })?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let host_port = if authority.contains(':') {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    let payload = serde_json::to_vec(body).map_err(|e| e.to_string())?;
    let mut s = connect(&host_port)?;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\nUser-Agent: betty-approval-queue\r\n\r\n",
        payload.len()
    );
    s.write_all(head.as_bytes())
        .and_then(|()| s.write_all(&payload))
        .map_err(|e| format!("cannot send: {e}"))?;
    let mut status = String::new();
    BufReader::new(&s)
        .read_line(&mut status)
        .map_err(|e| format!("no response: {e}"))?;
    let code = status.split_whitespace().nth(1).unwrap_or_default();
    if code.starts_with('2') {
        Ok(())
    } else {
        Err(format!("HTTP status `{}`", status.trim()))
    }
}

/// Sends one plain-text mail with SMTP (no TLS, no auth: a local relay).
pub fn send_mail(
    server: &str,
    from: &str,
    to: &[String],
    subject: &str,
    body: &str,
) -> Result<(), String> {
    let s = connect(server)?;
    let mut reader = BufReader::new(s.try_clone().map_err(|e| e.to_string())?);
    let mut w = s;
    let expect = |reader: &mut BufReader<TcpStream>, code: &str| -> Result<(), String> {
        loop {
            let mut line = String::new();
            reader
                .read_line(&mut line)
                .map_err(|e| format!("SMTP read: {e}"))?;
            if line.is_empty() {
                return Err("SMTP server closed the connection".into());
            }
            if !line.starts_with(code) {
                return Err(format!("SMTP: expected {code}, got `{}`", line.trim()));
            }
            // Multi-line replies continue with `250-`.
            if line.as_bytes().get(3) != Some(&b'-') {
                return Ok(());
            }
        }
    };
    let say = |w: &mut TcpStream, line: &str| {
        w.write_all(format!("{line}\r\n").as_bytes())
            .map_err(|e| format!("SMTP write: {e}"))
    };
    expect(&mut reader, "220")?;
    say(&mut w, "HELO betty")?;
    expect(&mut reader, "250")?;
    say(&mut w, &format!("MAIL FROM:<{from}>"))?;
    expect(&mut reader, "250")?;
    for rcpt in to {
        say(&mut w, &format!("RCPT TO:<{rcpt}>"))?;
        expect(&mut reader, "25")?;
    }
    say(&mut w, "DATA")?;
    expect(&mut reader, "354")?;
    let safe_body = body.replace("\n.", "\n..");
    say(
        &mut w,
        &format!(
            "From: {from}\r\nTo: {}\r\nSubject: {subject}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{safe_body}\r\n.",
            to.join(", ")
        ),
    )?;
    expect(&mut reader, "250")?;
    say(&mut w, "QUIT")?;
    Ok(())
}
