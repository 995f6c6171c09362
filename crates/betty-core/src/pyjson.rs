//! JSON written exactly as Python's `json` module writes it, so files that upstream Betty reads
//! and hashes stay byte-identical when we rewrite them.
//!
//! Upstream writes registries with `json.dump(obj, f, indent=2)` (ASCII escapes, `", "`/`": "`
//! separators, no trailing newline) and hashes them with `json.dumps(obj, sort_keys=True)`.

use serde_json::Value;

/// How to lay the JSON out.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    /// `Some(n)`: one item a line, indented by n spaces (`json.dump(indent=n)`); `None`: one line.
    pub indent: Option<usize>,
    /// Sort object keys (`sort_keys=True`); otherwise keep insertion order.
    pub sort_keys: bool,
}

impl Style {
    /// `json.dump(obj, f, indent=2)`.
    pub const REGISTRY: Style = Style {
        indent: Some(2),
        sort_keys: false,
    };
    /// `json.dumps(obj, sort_keys=True)`.
    pub const HASH: Style = Style {
        indent: None,
        sort_keys: true,
    };
}

/// Serialises like Python's `json.dumps(value, ensure_ascii=True, ...)`.
pub fn to_string(value: &Value, style: Style) -> String {
    let mut out = String::with_capacity(4096);
    write_value(value, style, 0, &mut out);
    out
}

fn newline(style: Style, depth: usize, out: &mut String) {
    if let Some(n) = style.indent {
        out.push('\n');
        for _ in 0..n * depth {
            out.push(' ');
        }
    }
}

fn write_value(value: &Value, style: Style, depth: usize, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            if let Some(f) = n.as_f64().filter(|_| n.is_f64()) {
                out.push_str(&float_repr(f));
            } else {
                out.push_str(&n.to_string());
            }
        }
        Value::String(s) => write_str(s, out),
        Value::Array(items) => {
            if items.is_empty() {
                out.push_str("[]");
                return;
            }
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(if style.indent.is_some() { "," } else { ", " });
                }
                newline(style, depth + 1, out);
                write_value(v, style, depth + 1, out);
            }
            newline(style, depth, out);
            out.push(']');
        }
        Value::Object(map) => {
            if map.is_empty() {
                out.push_str("{}");
                return;
            }
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            if style.sort_keys {
                // Python sorts str keys by code point, as Rust's `str` ordering does.
                entries.sort_by(|a, b| a.0.cmp(b.0));
            }
            out.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push_str(if style.indent.is_some() { "," } else { ", " });
                }
                newline(style, depth + 1, out);
                write_str(k, out);
                out.push_str(": ");
                write_value(v, style, depth + 1, out);
            }
            newline(style, depth, out);
            out.push('}');
        }
    }
}

fn write_str(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7e && (c as u32) != 0x7f => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Python's `repr(float)`: shortest round-trip digits, positional for exponents -4..16.
pub fn float_repr(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    let sci = format!("{f:e}"); // e.g. "-1.5e-7", "2.5e2", "0e0"
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    if (-4..16).contains(&exp) {
        let point = exp + 1; // digits before the decimal point
        let body = if point <= 0 {
            format!("0.{}{}", "0".repeat((-point) as usize), digits)
        } else if point as usize >= digits.len() {
            format!("{}{}.0", digits, "0".repeat(point as usize - digits.len()))
        } else {
            let (a, b) = digits.split_at(point as usize);
            format!("{a}.{b}")
        };
        format!("{sign}{body}")
    } else {
        let m = if digits.len() > 1 {
            format!("{}.{}", &digits[..1], &digits[1..])
        } else {
            digits
        };
        let esign = if exp < 0 { '-' } else { '+' };
        format!("{sign}{m}e{esign}{:02}", exp.abs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_match_python_repr() {
        for (f, s) in [
            (250.0, "250.0"),
            (150.5, "150.5"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1e16, "1e+16"),
            (1.5e16, "1.5e+16"),
            (123456789012345.6, "123456789012345.6"),
            (-0.5, "-0.5"),
            (0.0, "0.0"),
            (3.0, "3.0"),
        ] {
            assert_eq!(float_repr(f), s, "{f}");
        }
    }

    #[test]
    fn strings_and_layout_match_python() {
        let v: Value =
            serde_json::from_str(r#"{"b": ["é", "→😀", "a\"b\u0001"], "a": {}, "c": []}"#).unwrap();
        assert_eq!(
            to_string(&v, Style::REGISTRY),
            "{\n  \"b\": [\n    \"\\u00e9\",\n    \"\\u2192\\ud83d\\ude00\",\n    \"a\\\"b\\u0001\"\n  ],\n  \"a\": {},\n  \"c\": []\n}"
        );
        assert_eq!(
            to_string(&v, Style::HASH),
            "{\"a\": {}, \"b\": [\"\\u00e9\", \"\\u2192\\ud83d\\ude00\", \"a\\\"b\\u0001\"], \"c\": []}"
        );
    }
}
