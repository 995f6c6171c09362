//! Rendering query results: `table` for people, `json`, `jsonl` and `csv` for machines.
//!
//! Renderers write rows as they come (no buffering of results, so output streams and memory
//! stays flat); the table has fixed column widths for the same reason. JSON documents carry
//! `schema_version` and are described by `schemas/telemetry-query-output.schema.json`.

use std::fmt::Write as _;

use serde_json::{Value, json};

use crate::scan::Row;
use crate::stats::{Counts, GroupedStats};

/// Version of every JSON document `telemetry-query` prints.
pub const OUTPUT_SCHEMA_VERSION: u64 = 1;

/// An output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
    Jsonl,
    Csv,
}

/// The formats of a command that prints one summary or one document (`metrics`, `audit head`,
/// `audit verify`): `table` (a line for people) or `json`. Nothing else is offered, so a
/// `--format csv` there is a usage error naming these, never a silent fallback.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DocFormat {
    Table,
    Json,
}

/// A text cell of CSV output: control characters escaped, quoted when it needs it (RFC 4180)
/// and neutralised against formula injection (OWASP).
///
/// Control characters (CR, LF, tab, ESC and the other C0 and C1 controls, DEL, bidi overrides,
/// line separators) are written as [`betty_core::escape`] shows them (`\r`, `\x1b`,
/// `\u{202e}`), so a cell cannot forge a record, move a terminal's cursor when the file is
/// `cat`, or reorder what a spreadsheet shows. A cell starting with `=`, `+`, `-`, `@`, a tab
/// or a CR gets a leading `'` and is quoted, so a spreadsheet shows it as text instead of
/// evaluating it. Numeric columns (`duration_ms`, counts, rates, percentiles, `seq`) are
/// written from numbers the schema types as numbers, never through this, so a negative number
/// stays a number.
pub fn csv_field(s: &str) -> String {
    let neutralise = s.starts_with(['=', '+', '-', '@', '\t', '\r']);
    let s = betty_core::escape::escape(s);
    if neutralise {
        format!("\"'{}\"", s.replace('"', "\"\""))
    } else if s.contains([',', '"']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.into_owned()
    }
}

/// A JSON cell of CSV output (`context`, `policy_checks`): compact JSON that stays JSON, with
/// every character [`betty_core::escape::is_unsafe_char`] names written as a JSON `\uXXXX`
/// escape (compact JSON holds them only inside strings, and all of them are in the BMP), then
/// quoted as [`csv_field`] quotes.
pub fn csv_json_field(v: &Value) -> String {
    let text = v.to_string();
    if !text.chars().any(betty_core::escape::is_unsafe_char) {
        return csv_field(&text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if betty_core::escape::is_unsafe_char(c) {
            let _ = write!(out, "\\u{:04x}", c as u32);
        } else {
            out.push(c);
        }
    }
    csv_field(&out)
}

/// Cuts text to `width` characters, marking the cut with `…`. Control characters are shown
/// escaped first ([`betty_core::escape`]), so a cell cannot move the cursor or break the row.
pub fn fit(s: &str, width: usize) -> String {
    let s = betty_core::escape::escape(s);
    if s.chars().count() <= width {
        format!("{s:<width$}")
    } else {
        let mut t: String = s.chars().take(width.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// An event line as `--format json|jsonl` shows it: exactly as stored, unless it carries a
/// secret (an event written before redaction caught it, or by another tool), then redacted.
pub fn event_json_line(line: &[u8]) -> std::borrow::Cow<'_, str> {
    if let Ok(mut v) = serde_json::from_slice::<Value>(line)
        && betty_core::redact::needs_redaction(&v)
    {
        betty_core::redact::redact_value(&mut v);
        return v.to_string().into();
    }
    String::from_utf8_lossy(line)
}

fn fmt_ms(d: Option<f64>) -> String {
    match d {
        None => "-".into(),
        Some(d) if d >= 10_000.0 => format!("{:.1}s", d / 1000.0),
        Some(d) if d.fract() == 0.0 => format!("{d:.0}ms"),
        Some(d) => format!("{d:.1}ms"),
    }
}

/// The table header for events.
pub fn event_table_header() -> String {
    format!(
        "{:<19}  {:<26}  {:<28}  {:<10}  {:>9}  {}",
        "TIME (UTC)", "EVENT", "SKILL", "OUTCOME", "DURATION", "USER"
    )
}

/// One event as a table row; `colour` paints the outcome.
pub fn event_table_row(row: &Row<'_>, colour: bool) -> String {
    let time =
        betty_core::escape::escape(row.time().get(..19).unwrap_or(row.time())).replace('T', " ");
    let outcome = fit(row.outcome(), 10);
    let outcome = if colour {
        let code = if crate::scan::is_success(row.outcome()) {
            "32"
        } else if matches!(row.outcome(), "pending" | "warning" | "skipped") {
            "33"
        } else {
            "31"
        };
        format!("\x1b[{code}m{outcome}\x1b[0m")
    } else {
        outcome
    };
    format!(
        "{:<19}  {}  {}  {}  {:>9}  {}",
        time,
        fit(row.event_type(), 26),
        fit(row.skill().unwrap_or("-"), 28),
        outcome,
        fmt_ms(row.duration_ms),
        betty_core::escape::Escaped(row.user.as_deref().unwrap_or("-"))
    )
    .trim_end()
    .to_string()
}

/// CSV columns for events.
pub const CSV_COLUMNS: &str =
    "event_id,timestamp,event_type,skill_name,outcome,duration_ms,user,session_id,tool,context";

/// One event as a CSV record (`context` as compact JSON); secrets redacted, text cells
/// neutralised ([`csv_field`]).
pub fn event_csv(line: &[u8], row: &Row<'_>) -> String {
    let mut full: Value = serde_json::from_slice(line).unwrap_or(Value::Null);
    betty_core::redact::redact_value(&mut full);
    let context = &full["context"];
    let s = |v: Option<&str>| csv_field(&betty_core::redact::redact_text(v.unwrap_or("")));
    [
        s(row.event_id.as_deref()),
        s(Some(row.time())),
        s(row.event_type.as_deref()),
        s(row.skill_name.as_deref()),
        s(row.outcome.as_deref()),
        row.duration_ms.map(|d| d.to_string()).unwrap_or_default(),
        s(row.user.as_deref()),
        s(row.session_id.as_deref()),
        s(context["tool"].as_str()),
        if context.is_null() {
            String::new()
        } else {
            csv_json_field(context)
        },
    ]
    .join(",")
}

/// `--count-by` results as a document.
pub fn counts_json(field: &str, counts: &Counts) -> Value {
    json!({
        "schema_version": OUTPUT_SCHEMA_VERSION,
        "count_by": field,
        "total": counts.total,
        "counts": counts.sorted().iter().map(|(v, n)| json!({"value": v, "count": n})).collect::<Vec<_>>(),
    })
}

/// `--count-by` results as lines of text.
pub fn counts_lines(field: &str, counts: &Counts, format: Format) -> Vec<String> {
    let sorted = counts.sorted();
    match format {
        Format::Csv => std::iter::once(format!("{},count", csv_field(field)))
            .chain(sorted.iter().map(|(v, n)| format!("{},{n}", csv_field(v))))
            .collect(),
        Format::Jsonl => sorted
            .iter()
            .map(|(v, n)| json!({"value": v, "count": n}).to_string())
            .collect(),
        Format::Table | Format::Json => {
            let width = sorted
                .iter()
                .map(|(v, _)| v.chars().count())
                .max()
                .unwrap_or(0)
                .max(field.len())
                .min(60);
            let mut out = vec![format!("{:>9}  {}", "COUNT", field.to_ascii_uppercase())];
            out.extend(
                sorted
                    .iter()
                    .map(|(v, n)| format!("{n:>9}  {}", fit(v, width).trim_end())),
            );
            out.push(format!("{:>9}  (total)", counts.total));
            out
        }
    }
}

/// `stats` results as a document.
pub fn stats_json(stats: &GroupedStats) -> Value {
    let groups: Vec<Value> = stats
        .groups
        .iter()
        .map(|(k, g)| {
            let mut v = g.to_json(false);
            if let Value::Object(m) = &mut v {
                m.insert("key".into(), k.clone().into());
            }
            v
        })
        .collect();
    json!({
        "schema_version": OUTPUT_SCHEMA_VERSION,
        "group_by": stats.by.name(),
        "total": stats.total.to_json(false),
        "groups": groups,
    })
}

/// `stats` results as lines of text.
pub fn stats_lines(stats: &GroupedStats, format: Format) -> Vec<String> {
    let pct = |x: Option<f64>| {
        x.map(|r| format!("{:.1}%", r * 100.0))
            .unwrap_or("-".into())
    };
    let rows = stats
        .groups
        .iter()
        .map(|(k, g)| (k.as_str(), g))
        .chain(std::iter::once(("(total)", &stats.total)));
    match format {
        Format::Csv => std::iter::once(format!(
            "{},count,success,success_rate,p50_ms,p95_ms,p99_ms",
            csv_field(&stats.by.name())
        ))
        .chain(rows.map(|(k, g)| {
            let d = &g.durations;
            let n = |x: Option<f64>| x.map(|x| x.to_string()).unwrap_or_default();
            format!(
                "{},{},{},{},{},{},{}",
                csv_field(k),
                g.count,
                g.success,
                n(g.success_rate()),
                n(d.quantile(0.5)),
                n(d.quantile(0.95)),
                n(d.quantile(0.99))
            )
        }))
        .collect(),
        Format::Jsonl => stats_json(stats)["groups"]
            .as_array()
            .map(|a| a.iter().map(Value::to_string).collect())
            .unwrap_or_default(),
        Format::Table | Format::Json => {
            let mut out = vec![format!(
                "{:<32}  {:>9}  {:>8}  {:>9}  {:>9}  {:>9}",
                stats.by.name().to_ascii_uppercase(),
                "COUNT",
                "SUCCESS",
                "P50",
                "P95",
                "P99"
            )];
            out.extend(rows.map(|(k, g)| {
                let d = &g.durations;
                format!(
                    "{}  {:>9}  {:>8}  {:>9}  {:>9}  {:>9}",
                    fit(k, 32),
                    g.count,
                    pct(g.success_rate()),
                    fmt_ms(d.quantile(0.5)),
                    fmt_ms(d.quantile(0.95)),
                    fmt_ms(d.quantile(0.99))
                )
            }));
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every cell, as written: controls escaped, formulas neutralised, RFC 4180 quoting.
    #[test]
    fn csv_cells_escape_controls_and_neutralise_formulas() {
        let cases: &[(&str, &str)] = &[
            ("plain", "plain"),
            ("a,b", "\"a,b\""),
            ("say \"hi\"", "\"say \"\"hi\"\"\""),
            ("line\nbreak", "line\\nbreak"),
            ("cr\rlf\r\n", "cr\\rlf\\r\\n"),
            ("esc\u{1b}[31mred", "esc\\x1b[31mred"),
            ("osc\u{1b}]0;title\u{7}", "osc\\x1b]0;title\\x07"),
            ("nul\u{0}del\u{7f}", "nul\\x00del\\x7f"),
            ("csi\u{9b}c1\u{85}", "csi\\u{9b}c1\\u{85}"),
            (
                "bidi\u{202e}txt\u{2066}i\u{200f}",
                "bidi\\u{202e}txt\\u{2066}i\\u{200f}",
            ),
            ("ls\u{2028}ps\u{2029}", "ls\\u{2028}ps\\u{2029}"),
            ("=1+2", "\"'=1+2\""),
            ("+cmd", "\"'+cmd\""),
            ("-2+3", "\"'-2+3\""),
            ("@SUM(A1)", "\"'@SUM(A1)\""),
            ("\t=1", "\"'\\t=1\""),
            ("\r=1", "\"'\\r=1\""),
            ("=a,\"b\"\n", "\"'=a,\"\"b\"\"\\n\""),
            ("日本語 🎉", "日本語 🎉"),
            ("", ""),
        ];
        for (input, want) in cases {
            assert_eq!(csv_field(input), *want, "{input:?}");
        }
    }

    #[test]
    fn csv_json_cells_stay_json_without_raw_controls() {
        let v = json!({"note": "a\u{1b}b\u{202e}c\u{85}d\u{7f}\ne", "k": "日本"});
        let cell = csv_json_field(&v);
        assert_eq!(
            cell,
            r#""{""note"":""a\u001bb\u202ec\u0085d\u007f\ne"",""k"":""日本""}""#
        );
        let inner = cell[1..cell.len() - 1].replace("\"\"", "\"");
        let back: Value = serde_json::from_str(&inner).unwrap();
        assert_eq!(back, v);
    }
}
