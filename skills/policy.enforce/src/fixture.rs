//! Policy fixtures (`policy-enforce test DIR`): each `*.yaml` in DIR is an input and the
//! outcome the policies must give it. Any mismatch fails; rules no fixture triggers are listed.
//!
//! ```yaml
//! fixture: bad-name-is-blocked     # optional; default: the file name
//! kind: skill                      # skill (default), agent or workflow
//! action: register                 # optional enforcement point
//! strict: false                    # optional
//! environment: production          # optional, for deploy
//! manifest:                        # the input, as it would be on disk
//!   name: BadName
//!   version: 0.1.0
//!   status: active
//! expect:
//!   outcome: failed                # passed, failed or pending
//!   findings:                      # optional: exactly these `policy/rule`s fire
//!     - skill-naming-convention/lowercase-dotted-name
//! ```

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use betty_core::limits::Limits;
use betty_core::manifest::type_name;
use betty_core::{Document, Error};
use jiff::Timestamp;
use serde_json::Value;

use crate::engine::{Context, Outcome, evaluate};
use crate::policy::{Action, PolicySet, TargetKind};
use crate::target::{Approvals, RegistryView, Target};

/// One fixture's verdict.
#[derive(Clone, Debug, serde::Serialize)]
pub struct FixtureResult {
    pub fixture: String,
    pub file: String,
    pub expected: Outcome,
    pub got: Outcome,
    pub missing: Vec<String>,
    pub unexpected: Vec<String>,
    pub ok: bool,
}

/// All fixtures of a folder.
#[derive(Clone, Debug, serde::Serialize)]
pub struct TestRun {
    pub fixtures: Vec<FixtureResult>,
    /// `policy/rule` ids that no fixture made fire.
    pub unexercised: Vec<String>,
}

impl TestRun {
    pub fn passed(&self) -> bool {
        self.fixtures.iter().all(|f| f.ok)
    }

    /// `test --format json` output (`schemas/policy-fixtures.schema.json`).
    pub fn to_json(&self) -> Value {
        betty_core::redact::redacted(&serde_json::json!({
            "schema_version": crate::report::REPORT_SCHEMA_VERSION,
            "tool": crate::report::TOOL,
            "passed": self.passed(),
            "fixtures": self.fixtures,
            "unexercised": self.unexercised,
        }))
    }
}

/// Runs every fixture of `dir` against the policies.
pub fn run_dir(
    dir: &Path,
    set: &PolicySet,
    registry: &RegistryView,
    approvals: &Approvals,
    now: Timestamp,
) -> Result<TestRun, Error> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::Read {
        path: dir.to_path_buf(),
        source: e,
    })?;
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(Error::InvalidArgument {
            what: "fixture folder",
            value: dir.display().to_string(),
            reason: "holds no `*.yaml` fixtures".into(),
        });
    }
    let mut fixtures = Vec::new();
    let mut fired: HashSet<String> = HashSet::new();
    for file in files {
        let doc = Arc::new(Document::read_yaml(&file, &Limits::MANIFEST)?);
        let spec = Spec::parse(&doc)?;
        let mut target = Target::from_document(doc.clone(), "/manifest", spec.kind)?;
        if spec.action == Some(Action::Create) {
            // Before creation only the name is known, as with `--skill-name`.
            target.origin = crate::target::Origin::Argument;
        }
        let cx = Context {
            action: spec.action,
            strict: spec.strict,
            environment: spec.environment.clone(),
            registry,
            approvals,
            batch: HashSet::from([target.name.clone()]),
            now,
            cycles: Default::default(),
        };
        let result = evaluate(set, &target, &cx);
        let got_ids: BTreeSet<String> = result.findings.iter().map(|f| f.rule_id()).collect();
        fired.extend(got_ids.iter().cloned());
        let (missing, unexpected) = match &spec.findings {
            Some(want) => (
                want.difference(&got_ids).cloned().collect(),
                got_ids.difference(want).cloned().collect(),
            ),
            None => (Vec::new(), Vec::new()),
        };
        let ok = result.outcome == spec.outcome && missing.is_empty() && unexpected.is_empty();
        fixtures.push(FixtureResult {
            fixture: spec.name.unwrap_or_else(|| {
                file.file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default()
            }),
            file: crate::target::display_path(&file),
            expected: spec.outcome,
            got: result.outcome,
            missing,
            unexpected,
            ok,
        });
    }
    let mut unexercised = Vec::new();
    for p in &set.policies {
        for r in &p.rules {
            let id = format!("{}/{}", p.name, r.id);
            if !fired.contains(&id) {
                unexercised.push(id);
            }
        }
    }
    Ok(TestRun {
        fixtures,
        unexercised,
    })
}

struct Spec {
    name: Option<String>,
    kind: TargetKind,
    action: Option<Action>,
    strict: bool,
    environment: Option<String>,
    outcome: Outcome,
    findings: Option<BTreeSet<String>>,
}

impl Spec {
    fn parse(doc: &Document) -> Result<Spec, Error> {
        let bad = |ptr: &str, message: String| Error::Invalid {
            input: doc.source.clone(),
            pos: doc.pos(ptr),
            message,
        };
        let Some(map) = doc.value.as_object() else {
            return Err(bad(
                "",
                format!(
                    "a fixture must be a mapping with `manifest:` and `expect:`, found {}",
                    type_name(&doc.value)
                ),
            ));
        };
        for key in map.keys() {
            if ![
                "fixture",
                "kind",
                "action",
                "strict",
                "environment",
                "manifest",
                "expect",
            ]
            .contains(&key.as_str())
            {
                return Err(bad(
                    &format!("/{key}"),
                    format!(
                        "unknown key `{key}` in a fixture (known: fixture, kind, action, strict, environment, manifest, expect)"
                    ),
                ));
            }
        }
        let text = |key: &str| -> Result<Option<String>, Error> {
            match map.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(other) => Err(bad(
                    &format!("/{key}"),
                    format!("`{key}` must be text, found {}", type_name(other)),
                )),
            }
        };
        let kind = match text("kind")?.as_deref() {
            None | Some("skill") => TargetKind::Skill,
            Some("agent") => TargetKind::Agent,
            Some("workflow") => TargetKind::Workflow,
            Some(other) => {
                return Err(bad(
                    "/kind",
                    format!("unknown kind `{other}`; use skill, agent or workflow"),
                ));
            }
        };
        let action = match text("action")? {
            None => None,
            Some(a) => Some(<Action as clap::ValueEnum>::from_str(&a, false).map_err(|_| {
                bad("/action", format!("unknown action `{a}`; use create, update, register, execute, deploy or audit"))
            })?),
        };
        let strict = match map.get("strict") {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                return Err(bad(
                    "/strict",
                    format!("`strict` must be true or false, found {}", type_name(other)),
                ));
            }
        };
        if !map.contains_key("manifest") {
            return Err(bad("", "a fixture needs `manifest:` (the input)".into()));
        }
        let Some(expect) = map.get("expect").and_then(Value::as_object) else {
            return Err(bad(
                "",
                "a fixture needs `expect: {outcome: passed|failed|pending}`".into(),
            ));
        };
        let outcome = match expect.get("outcome").and_then(Value::as_str) {
            Some("passed") => Outcome::Passed,
            Some("failed") => Outcome::Failed,
            Some("pending") => Outcome::Pending,
            _ => {
                return Err(bad(
                    "/expect",
                    "`expect.outcome` must be passed, failed or pending".into(),
                ));
            }
        };
        let findings = match expect.get("findings") {
            None => None,
            Some(Value::Array(items)) => Some(
                items
                    .iter()
                    .map(|v| {
                        v.as_str().map(str::to_string).ok_or_else(|| {
                            bad(
                                "/expect/findings",
                                "`expect.findings` lists `policy/rule` ids as text".into(),
                            )
                        })
                    })
                    .collect::<Result<BTreeSet<_>, _>>()?,
            ),
            Some(_) => {
                return Err(bad(
                    "/expect/findings",
                    "`expect.findings` must be a list of `policy/rule` ids".into(),
                ));
            }
        };
        Ok(Spec {
            name: text("fixture")?,
            kind,
            action,
            strict,
            environment: text("environment")?,
            outcome,
            findings,
        })
    }
}
