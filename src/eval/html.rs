//! [`HtmlReport`]: `--report report.html`, one self-contained page (inline CSS and script, no
//! network, opens from `file://`) to look at an eval: a matrix of cases × models/variants,
//! and each case opened to its deliverables side by side, the violations marked at their
//! lines, each attempt diffed against the previous reply, the reasoning and the inputs.
//!
//! It stays small and quick at 10,000 cases: text is stored once per distinct line (a reply,
//! an input, the reasoning are lists of line numbers into one table, so the inputs every row
//! of a dataset shares and the lines replies repeat are written once), and the page draws
//! rows as they scroll into view and a case's detail when it is opened. It is written as the
//! cases come, with the line table and the rows in temporary files, so it costs no memory
//! per case either.

use std::collections::{HashMap, HashSet};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::error::EvalError;
use super::outputs::{ReportHead, money, write_error};
use super::report::{CaseReport, column_key, outcome_word};

/// The largest input file shown, in bytes: the page is for looking, the run folder keeps all.
const INPUT_BYTES: u64 = 64 * 1024;

/// An HTML report being written.
pub(crate) struct HtmlReport {
    path: PathBuf,
    lines_path: PathBuf,
    rows_path: PathBuf,
    lines: BufWriter<std::fs::File>,
    rows: BufWriter<std::fs::File>,
    /// Each distinct line's number, by its hash.
    line_ids: HashMap<u64, u32>,
    line_count: u32,
    row_count: usize,
    regressed: HashSet<String>,
    columns: Vec<String>,
    /// The case being gathered: its cells arrive one column at a time.
    current: Option<(String, Value)>,
    inputs_seen: HashMap<PathBuf, Value>,
}

impl HtmlReport {
    pub(crate) fn open(path: &Path, head: &ReportHead) -> Result<HtmlReport, EvalError> {
        let io = |e| write_error(path, e);
        let lines_path = sibling(path, "lines");
        let rows_path = sibling(path, "rows");
        let lines = BufWriter::new(std::fs::File::create(&lines_path).map_err(io)?);
        let rows = BufWriter::new(std::fs::File::create(&rows_path).map_err(io)?);
        Ok(HtmlReport {
            path: path.to_owned(),
            lines_path,
            rows_path,
            lines,
            rows,
            line_ids: HashMap::new(),
            line_count: 0,
            row_count: 0,
            regressed: head
                .baseline
                .as_ref()
                .map(|b| b.regressed.iter().cloned().collect())
                .unwrap_or_default(),
            columns: head.columns.iter().map(|c| c.column.clone()).collect(),
            current: None,
            inputs_seen: HashMap::new(),
        })
    }

    /// The number of each line of `text` in the shared table.
    fn text(&mut self, text: &str) -> std::io::Result<Value> {
        let mut ids = Vec::new();
        for line in text.split('\n') {
            let hash = {
                use std::hash::{BuildHasher, Hasher};
                let mut hasher = std::hash::BuildHasherDefault::<
                    std::collections::hash_map::DefaultHasher,
                >::default()
                .build_hasher();
                hasher.write(line.as_bytes());
                hasher.finish()
            };
            let id = match self.line_ids.get(&hash) {
                Some(id) => *id,
                None => {
                    let id = self.line_count;
                    if id > 0 {
                        self.lines.write_all(b",\n")?;
                    }
                    self.lines.write_all(script_json(&json!(line)).as_bytes())?;
                    self.line_ids.insert(hash, id);
                    self.line_count += 1;
                    id
                }
            };
            ids.push(id);
        }
        Ok(json!(ids))
    }

    /// The text files of a case's inputs folder, once per folder.
    fn inputs(&mut self, dir: Option<&Path>, vars: &[(String, String)]) -> std::io::Result<Value> {
        let mut shown = Vec::new();
        if let Some(dir) = dir {
            if let Some(seen) = self.inputs_seen.get(dir) {
                shown = seen.as_array().cloned().unwrap_or_default();
            } else {
                let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
                    .map(|entries| entries.filter_map(Result::ok).map(|e| e.path()).collect())
                    .unwrap_or_default();
                files.sort();
                for file in files {
                    let name = file
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    let text = if file.is_dir() {
                        format!("(a folder: {})", file.display())
                    } else if std::fs::metadata(&file).map_or(0, |m| m.len()) > INPUT_BYTES {
                        format!("(over {} KB: see {})", INPUT_BYTES / 1024, file.display())
                    } else {
                        std::fs::read_to_string(&file).unwrap_or_else(|_| "(not text)".to_owned())
                    };
                    shown.push(json!([name, self.text(&text)?]));
                }
                self.inputs_seen
                    .insert(dir.to_owned(), Value::Array(shown.clone()));
            }
        }
        for (name, value) in vars {
            shown.push(json!([name, self.text(value)?]));
        }
        Ok(Value::Array(shown))
    }

    pub(crate) fn case(
        &mut self,
        case: &CaseReport,
        source: Option<&super::Case>,
    ) -> Result<(), EvalError> {
        self.add(case, source)
            .map_err(|e| write_error(&self.path, e))
    }

    fn add(&mut self, case: &CaseReport, source: Option<&super::Case>) -> std::io::Result<()> {
        if self.current.as_ref().is_some_and(|(id, _)| *id != case.id) {
            self.flush_case()?;
        }
        if self.current.is_none() {
            let inputs = match source {
                Some(source) => self.inputs(source.sources.dir.as_deref(), &source.sources.vars)?,
                None => json!([]),
            };
            let description = self.text(case.description.as_deref().unwrap_or(""))?;
            self.current = Some((
                case.id.clone(),
                json!({
                    "id": case.id,
                    "agent": case.agent,
                    "expected": format!("{:?}", case.expected).to_lowercase(),
                    "description": description,
                    "inputs": inputs,
                    "cells": {},
                }),
            ));
        }
        let column = self
            .columns
            .iter()
            .position(|c| *c == case.column)
            .unwrap_or(0);
        let regressed = self.regressed.contains(&column_key(&case.id, &case.column));
        let mut runs = Vec::new();
        for run in &case.runs {
            let mut attempts = Vec::new();
            for attempt in &run.attempt_log {
                let mark = |noted: &[super::report::Noted]| -> Value {
                    noted
                        .iter()
                        .map(|n| json!([n.line, n.text]))
                        .collect::<Vec<_>>()
                        .into()
                };
                attempts.push(json!({
                    "n": attempt.number,
                    "outcome": attempt.outcome,
                    "reply": self.text(&attempt.reply)?,
                    "violations": mark(&attempt.violations),
                    "warnings": mark(&attempt.warnings),
                }));
            }
            runs.push(json!({
                "repeat": run.repeat + 1,
                "passed": run.passed,
                "outcome": outcome_word(run.outcome),
                "model": run.model,
                "attempts": attempts,
                "failures": run.failures.iter().map(|f| format!("{}: {}", f.check, f.reason)).collect::<Vec<_>>(),
                "error": run.error,
                "warnings": run.warnings,
                "reasoning": self.text(&run.reasoning)?,
                "folder": run.run_folder,
            }));
        }
        let last = case.runs.last();
        let cell = json!({
            "passed": case.passed,
            "regressed": regressed,
            "outcome": last.map(|r| outcome_word(r.outcome)).unwrap_or("-"),
            "attempts": last.map_or(0, |r| r.attempts),
            "tokens": case.runs.iter().map(|r| r.tokens).sum::<u64>(),
            "latency": case.runs.iter().map(|r| r.latency_ms).sum::<u64>(),
            "cost": case.runs.iter().filter_map(|r| r.cost).reduce(|a, b| a + b).map(money),
            "runs": runs,
        });
        if let Some((_, row)) = &mut self.current
            && let Some(cells) = row.get_mut("cells").and_then(Value::as_object_mut)
        {
            cells.insert(column.to_string(), cell);
        }
        Ok(())
    }

    fn flush_case(&mut self) -> std::io::Result<()> {
        if let Some((_, row)) = self.current.take() {
            if self.row_count > 0 {
                self.rows.write_all(b",\n")?;
            }
            self.rows.write_all(script_json(&row).as_bytes())?;
            self.row_count += 1;
        }
        Ok(())
    }

    pub(crate) fn finish(mut self, head: &ReportHead) -> Result<(), EvalError> {
        let path = self.path.clone();
        self.write_page(head).map_err(|e| write_error(&path, e))
    }

    fn write_page(&mut self, head: &ReportHead) -> std::io::Result<()> {
        self.flush_case()?;
        self.lines.flush()?;
        self.rows.flush()?;
        let meta = json!({
            "summary": head.summary,
            "mode": head.mode,
            "partial": head.partial,
            "columns": head.columns,
            "baseline": head.baseline.as_ref().map(|b| json!({
                "regressed": b.regressed.len(),
                "improved": b.improved.len(),
                "new": b.new.len(),
                "missing": b.missing.len(),
            })),
            "cost": head.summary.cost.map(money),
        });
        let temporary = sibling(&self.path, "tmp");
        let mut page = BufWriter::new(std::fs::File::create(&temporary)?);
        page.write_all(PAGE_HEAD.as_bytes())?;
        page.write_all(b"<script>\nconst META = ")?;
        page.write_all(script_json(&meta).as_bytes())?;
        page.write_all(b";\nconst LINES = [\n")?;
        std::io::copy(&mut std::fs::File::open(&self.lines_path)?, &mut page)?;
        page.write_all(b"];\nconst CASES = [\n")?;
        std::io::copy(&mut std::fs::File::open(&self.rows_path)?, &mut page)?;
        page.write_all(b"];\n</script>\n<script>\n")?;
        page.write_all(PAGE_SCRIPT.as_bytes())?;
        page.write_all(b"</script>\n</body>\n</html>\n")?;
        let file = page.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&temporary, &self.path)?;
        let _ = std::fs::remove_file(&self.lines_path);
        let _ = std::fs::remove_file(&self.rows_path);
        Ok(())
    }
}

/// A temporary file beside `path`.
fn sibling(path: &Path, what: &str) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.{}.{what}", std::process::id()))
}

/// JSON safe inside a `<script>` element: no `</script>` or `<!--` can close it early.
fn script_json(value: &Value) -> String {
    // `<` only occurs inside JSON strings, where `\u003c` means the same.
    value.to_string().replace('<', "\\u003c")
}

const PAGE_HEAD: &str = r##"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>agent eval</title>
<style>
:root { --pass: #d7f5dd; --fail: #fbd9d6; --mark: #fff1b8; --line: #888; }
* { box-sizing: border-box; }
body { font: 14px/1.4 system-ui, sans-serif; margin: 0; color: #111; background: #fff; }
header { padding: 12px 16px; border-bottom: 1px solid #ccc; position: sticky; top: 0; background: #fff; z-index: 2; }
header h1 { font-size: 18px; margin: 0 0 4px; }
.filters label { margin-right: 14px; white-space: nowrap; }
.filters input[type=search] { width: 16em; max-width: 100%; }
main { padding: 8px 16px 48px; }
table { border-collapse: collapse; }
.columns td, .columns th, .matrix td, .matrix th { border: 1px solid #ccc; padding: 4px 8px; text-align: left; vertical-align: top; }
.matrix { width: 100%; }
.matrix th.case { min-width: 14em; }
.matrix tr.row:hover { outline: 2px solid #555; cursor: pointer; }
td.cell.pass { background: var(--pass); }
td.cell.fail { background: var(--fail); }
td.cell.none { color: #777; }
.cell .verdict { font-weight: 600; }
.cell .figures { font-size: 12px; color: #333; }
.regressed { font-weight: 700; text-decoration: underline; }
tr.detail > td { background: #fafafa; padding: 12px; }
.deliverables { display: flex; gap: 12px; align-items: flex-start; overflow-x: auto; }
.deliverable { flex: 1 1 0; min-width: 22em; border: 1px solid #bbb; background: #fff; }
.deliverable h3 { font-size: 14px; margin: 0; padding: 6px 8px; border-bottom: 1px solid #bbb; background: #eee; }
pre.reply { margin: 0; padding: 4px 0; font: 12px/1.45 ui-monospace, monospace; white-space: pre-wrap; word-break: break-word; }
pre.reply .line { display: block; padding: 0 8px 0 4.5em; text-indent: -4em; }
pre.reply .line .no { display: inline-block; width: 3.5em; color: var(--line); text-align: right; margin-right: .5em; text-indent: 0; user-select: none; }
pre.reply .line.violated { background: var(--mark); border-left: 4px solid #c00; }
pre.reply .line.violated::before { content: "⚠ "; }
.note { display: block; margin: 0 8px 2px 4.5em; padding: 2px 6px; font: 12px system-ui, sans-serif; border: 1px dashed #c00; text-indent: 0; }
.note.warning { border-color: #a70; }
details { margin: 6px 0; }
details > summary { cursor: pointer; font-weight: 600; }
.diff del { background: #fbd9d6; text-decoration: line-through; display: block; }
.diff ins { background: #d7f5dd; text-decoration: none; display: block; }
.diff del::before { content: "- "; } .diff ins::before { content: "+ "; }
.muted { color: #666; }
.wrap { overflow-x: auto; }
@media (max-width: 700px) {
  main { padding: 8px 6px 48px; }
  .deliverables { flex-direction: column; width: calc(100vw - 40px); position: sticky; left: 0; }
  .deliverable { min-width: 0; width: 100%; }
  .matrix .figures { display: none; }
  header { position: static; }
}
</style>
</head>
<body>
<header>
<h1>agent eval</h1>
<div id="summary"></div>
<div class="filters">
<label><input type="checkbox" id="only-failures"> failures</label>
<label><input type="checkbox" id="only-disagreements"> models/variants disagree</label>
<label><input type="checkbox" id="only-regressions"> regressions vs baseline</label>
<input type="search" id="search" placeholder="case name" aria-label="case name">
<span id="count" class="muted"></span>
</div>
</header>
<main>
<div id="columns"></div>
<div class="wrap"><table class="matrix" id="matrix"><thead></thead><tbody></tbody></table></div>
<div id="more" class="muted"></div>
</main>
"##;

const PAGE_SCRIPT: &str = r##"
"use strict";
const text = (ids) => (ids || []).map((i) => LINES[i]).join("\n");
const el = (tag, attrs, ...children) => {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v; else if (k.startsWith("data-")) node.setAttribute(k, v); else node[k] = v;
  }
  for (const child of children) if (child != null) node.append(child);
  return node;
};
const columns = META.columns.length ? META.columns.map((c) => c.column) : [""];
const cells = (c) => columns.map((_, i) => c.cells[i]);
const disagree = (c) => { const seen = new Set(cells(c).filter(Boolean).map((x) => x.passed + x.outcome)); return seen.size > 1; };
const failed = (c) => cells(c).some((x) => x && !x.passed);
const regressed = (c) => cells(c).some((x) => x && x.regressed);

function summary() {
  const s = META.summary;
  let line = `${s.passed} of ${s.cases} passed, ${s.failed} failed; ${s.runs} runs, ${s.tokens} tokens`;
  if (META.cost) line += `, ${META.cost}`;
  line += `; mode ${META.mode}`;
  if (META.partial) line += "; PARTIAL (interrupted)";
  if (META.baseline) line += `; against the baseline: ${META.baseline.regressed} regressed, ${META.baseline.improved} improved`;
  document.getElementById("summary").textContent = line;
  if (META.columns.length > 1 || (META.columns[0] && META.columns[0].column)) {
    const table = el("table", { class: "columns" });
    table.append(el("tr", {}, ...["column", "pass rate", "valid on first attempt", "mean attempts", "tokens", "latency p50", "p95", "cost"].map((h) => el("th", {}, h))));
    for (const c of META.columns) {
      table.append(el("tr", {}, el("td", {}, c.column), el("td", {}, `${Math.round(c.pass_rate * 100)}% (${c.passed}/${c.cases})`),
        el("td", {}, `${Math.round(c.first_attempt_valid * 100)}%`), el("td", {}, c.mean_attempts.toFixed(2)),
        el("td", {}, String(c.tokens)), el("td", {}, `${c.latency_p50_ms} ms`), el("td", {}, `${c.latency_p95_ms} ms`),
        el("td", {}, c.cost == null ? "-" : "$" + c.cost.toFixed(4))));
    }
    document.getElementById("columns").append(table);
  }
}

function cellNode(cell) {
  if (!cell) return el("td", { class: "cell none" }, "not run");
  const verdict = (cell.passed ? "✓ PASS" : "✗ FAIL") + (cell.regressed ? " (regressed)" : "");
  const figures = `${cell.outcome} · ${cell.attempts} att · ${cell.tokens} tok · ${cell.latency} ms` + (cell.cost ? ` · ${cell.cost}` : "");
  return el("td", { class: "cell " + (cell.passed ? "pass" : "fail") },
    el("div", { class: "verdict" + (cell.regressed ? " regressed" : "") }, verdict), el("div", { class: "figures" }, figures));
}

let shown = [];
let drawn = 0;
const PAGE = 200;
const body = document.querySelector("#matrix tbody");

function filter() {
  const f = document.getElementById("only-failures").checked;
  const d = document.getElementById("only-disagreements").checked;
  const r = document.getElementById("only-regressions").checked;
  const q = document.getElementById("search").value.trim().toLowerCase();
  shown = CASES.filter((c) => (!f || failed(c)) && (!d || disagree(c)) && (!r || regressed(c)) && (!q || c.id.toLowerCase().includes(q)));
  body.textContent = "";
  drawn = 0;
  draw();
  document.getElementById("count").textContent = `${shown.length} of ${CASES.length} cases`;
}

// Rows are drawn a page at a time as the end of the table scrolls into view.
function draw() {
  const end = Math.min(shown.length, drawn + PAGE);
  for (; drawn < end; drawn++) {
    const c = shown[drawn];
    const row = el("tr", { class: "row", "data-case": c.id }, el("th", { class: "case", scope: "row" }, c.id), ...cells(c).map(cellNode));
    row.addEventListener("click", () => toggle(row, c));
    body.append(row);
  }
  document.getElementById("more").textContent = drawn < shown.length ? `showing ${drawn} of ${shown.length}; scroll for more` : "";
}
new IntersectionObserver((entries) => { if (entries.some((e) => e.isIntersecting)) draw(); }).observe(document.getElementById("more"));

function replyNode(reply, attempt) {
  const marks = new Map();
  for (const [line, message] of attempt.violations) if (line) (marks.get(line) || marks.set(line, []).get(line)).push(["violation", message]);
  for (const [line, message] of attempt.warnings) if (line) (marks.get(line) || marks.set(line, []).get(line)).push(["warning", message]);
  const pre = el("pre", { class: "reply" });
  reply.split("\n").forEach((line, i) => {
    const n = i + 1;
    const notes = marks.get(n) || [];
    const violated = notes.some(([kind]) => kind === "violation");
    pre.append(el("span", { class: "line" + (violated ? " violated" : ""), "data-line": String(n) }, el("span", { class: "no" }, String(n)), line));
    for (const [kind, message] of notes) pre.append(el("span", { class: "note " + kind, "data-line": String(n) }, `${kind} at line ${n}: ${message}`));
  });
  const loose = attempt.violations.filter(([line]) => !line).concat(attempt.warnings.filter(([line]) => !line));
  for (const [, message] of loose) pre.append(el("span", { class: "note" }, message));
  return pre;
}

// What a re-ask changed: a line diff of one reply against the one before it.
function diff(before, after) {
  const a = before.split("\n"), b = after.split("\n");
  const n = a.length, m = b.length;
  if (n * m > 4e6) return el("div", { class: "diff muted" }, "replies too long to compare here");
  const lcs = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
  for (let i = n - 1; i >= 0; i--) for (let j = m - 1; j >= 0; j--) lcs[i][j] = a[i] === b[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
  const out = el("pre", { class: "diff reply" });
  let i = 0, j = 0, same = 0;
  const flush = () => { if (same) out.append(el("span", { class: "muted" }, `  … ${same} unchanged line(s)\n`)); same = 0; };
  while (i < n || j < m) {
    if (i < n && j < m && a[i] === b[j]) { same++; i++; j++; }
    else if (j < m && (i === n || lcs[i][j + 1] >= lcs[i + 1][j])) { flush(); out.append(el("ins", {}, b[j++])); }
    else { flush(); out.append(el("del", {}, a[i++])); }
  }
  flush();
  return out;
}

function runNode(run, label) {
  const box = el("div", { class: "deliverable", "data-column": label });
  box.append(el("h3", {}, `${label || "result"}${run.model ? " — " + run.model : ""}: ${run.passed ? "✓ pass" : "✗ FAIL"}, ${run.outcome}` + (run.repeat > 1 ? ` (repeat ${run.repeat})` : "")));
  const last = run.attempts[run.attempts.length - 1];
  if (last) box.append(replyNode(text(last.reply), last));
  if (run.error) box.append(el("p", {}, "error: " + run.error));
  if (run.failures.length) box.append(el("ul", {}, ...run.failures.map((f) => el("li", {}, f))));
  run.attempts.forEach((attempt, i) => {
    const d = el("details", { class: "attempt", "data-attempt": String(attempt.n) }, el("summary", {}, `attempt ${attempt.n}: ${attempt.outcome}, ${attempt.violations.length} violation(s), ${attempt.warnings.length} warning(s)`));
    d.append(el("ul", {}, ...attempt.violations.map(([line, m]) => el("li", {}, (line ? `line ${line}: ` : "") + m)), ...attempt.warnings.map(([line, m]) => el("li", {}, "warning " + (line ? `line ${line}: ` : "") + m))));
    if (i > 0) { d.open = true; d.append(el("div", {}, `changes from attempt ${run.attempts[i - 1].n}:`), diff(text(run.attempts[i - 1].reply), text(attempt.reply))); }
    else if (run.attempts.length > 1) d.append(replyNode(text(attempt.reply), attempt));
    box.append(d);
  });
  const reasoning = text(run.reasoning);
  if (reasoning) box.append(el("details", { class: "reasoning" }, el("summary", {}, "reasoning"), el("pre", { class: "reply" }, reasoning)));
  if (run.warnings.length) box.append(el("details", {}, el("summary", {}, "input warnings"), el("ul", {}, ...run.warnings.map((w) => el("li", {}, w)))));
  if (run.folder) box.append(el("p", { class: "muted" }, "run folder: " + run.folder));
  return box;
}

function toggle(row, c) {
  const next = row.nextElementSibling;
  if (next && next.classList.contains("detail")) { next.remove(); return; }
  const box = el("div", { class: "deliverables" });
  cells(c).forEach((cell, i) => { if (cell) for (const run of cell.runs) box.append(runNode(run, columns[i])); });
  const inputs = el("details", { class: "inputs" }, el("summary", {}, `inputs (${c.inputs.length})`),
    ...c.inputs.map(([name, ids]) => el("details", {}, el("summary", {}, name), el("pre", { class: "reply" }, text(ids)))));
  const description = text(c.description);
  const td = el("td", { colSpan: columns.length + 1 }, el("p", {}, `${c.id}: expects ${c.expected}` + (description ? ` — ${description}` : "")), box, inputs);
  row.after(el("tr", { class: "detail", "data-case": c.id }, td));
}

document.querySelector("#matrix thead").append(el("tr", {}, el("th", { class: "case" }, "case"), ...columns.map((c) => el("th", { scope: "col" }, c || "result"))));
for (const id of ["only-failures", "only-disagreements", "only-regressions", "search"]) document.getElementById(id).addEventListener("input", filter);
summary();
filter();
// `report.html#case=agent/name` opens that case (a link from CI, or a test).
const wanted = decodeURIComponent((location.hash.match(/case=([^&]+)/) || [])[1] || "");
if (wanted) {
  document.getElementById("search").value = wanted;
  filter();
  const row = body.querySelector("tr.row");
  const c = shown[0];
  if (row && c) toggle(row, c);
}
"##;
