//! What the commands print: tables and messages for people, JSON for programs, progress on a
//! terminal.

use std::future::Future;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Longest text shown in one table cell; longer values are cut with an ellipsis.
const CELL_CHARS_MAX: usize = 60;
/// How often a progress line is redrawn.
const PROGRESS_INTERVAL_MS: u64 = 200;

/// Prints `value` as one JSON document on stdout.
pub fn print_json(value: &Value) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut stdout, value)?;
    writeln!(stdout)?;
    Ok(())
}

/// Prints one line of text on stdout.
pub fn print_line(line: &str) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}")?;
    Ok(())
}

/// A table: a header row and rows of cells, printed with aligned columns.
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headers.
    pub fn new(headers: &[&str]) -> Table {
        Table { headers: headers.iter().map(|h| (*h).to_owned()).collect(), rows: Vec::new() }
    }

    /// A table of the objects in `items`, one row each, with these fields as columns.
    pub fn of(items: &Value, fields: &[&str]) -> Table {
        let mut table = Table::new(fields);
        for item in items.as_array().map(Vec::as_slice).unwrap_or_default() {
            table.row(fields.iter().map(|field| cell(item.get(*field))).collect());
        }
        table
    }

    /// Appends a row.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// Whether the table has no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The table as text, one line per row, columns separated by two spaces.
    pub fn render(&self) -> String {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate() {
                if let Some(width) = widths.get_mut(i) {
                    *width = (*width).max(cell.chars().count());
                }
            }
        }
        let mut out = String::new();
        let mut line = |cells: &[String]| {
            let mut text = String::new();
            for (i, cell) in cells.iter().enumerate() {
                let width = widths.get(i).copied().unwrap_or(0);
                if i + 1 == cells.len() {
                    text.push_str(cell);
                } else {
                    text.push_str(&format!("{cell:<width$}  "));
                }
            }
            out.push_str(text.trim_end());
            out.push('\n');
        };
        let headers: Vec<String> = self.headers.iter().map(|h| h.to_uppercase()).collect();
        line(&headers);
        for row in &self.rows {
            line(row);
        }
        out
    }

    /// Prints the table on stdout, or `empty` when it has no rows.
    pub fn print_or(&self, empty: &str) -> anyhow::Result<()> {
        if self.is_empty() {
            print_line(empty)
        } else {
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(self.render().as_bytes())?;
            Ok(())
        }
    }
}

/// A JSON value as a table cell: like [`text`], cut to a readable width.
pub fn cell(value: Option<&Value>) -> String {
    let text = text(value);
    if text.chars().count() > CELL_CHARS_MAX {
        let mut cut: String = text.chars().take(CELL_CHARS_MAX - 1).collect();
        cut.push('…');
        cut
    } else {
        text
    }
}

/// A JSON value as text: strings bare (times to the second), null as `-`, anything else as
/// compact JSON.
pub fn text(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => "-".to_owned(),
        Some(Value::String(s)) => match chrono::DateTime::parse_from_rfc3339(s) {
            Ok(time) => time.with_timezone(&chrono::Utc).format("%Y-%m-%d %H:%M:%S UTC").to_string(),
            Err(_) => s.clone(),
        },
        Some(Value::Object(map)) if map.get("kind").is_some_and(Value::is_string) => {
            // Actors and similar tagged values: the tag, then the rest as `key=value`.
            let mut parts = vec![map["kind"].as_str().unwrap_or_default().to_owned()];
            for (key, value) in map.iter().filter(|(key, _)| *key != "kind") {
                parts.push(format!("{key}={}", text(Some(value))));
            }
            parts.join(" ")
        }
        Some(other) => other.to_string(),
    }
}

/// A field of `value` as text, whole, `-` when absent.
pub fn field(value: &Value, name: &str) -> String {
    text(value.get(name))
}

/// Prints any JSON value readably: scalars as `key: value` lines, arrays of objects as tables.
pub fn print_value(value: &Value) -> anyhow::Result<()> {
    let mut out = String::new();
    render_value(&mut out, "", value);
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(out.as_bytes())?;
    Ok(())
}

fn render_value(out: &mut String, title: &str, value: &Value) {
    match value {
        Value::Object(map) => {
            let mut nested = Vec::new();
            for (key, item) in map {
                let is_nested = match item {
                    Value::Array(items) => items.iter().any(|i| i.is_object() || i.is_array()),
                    Value::Object(inner) => !inner.get("kind").is_some_and(Value::is_string),
                    _ => false,
                };
                if is_nested {
                    nested.push((key, item));
                } else {
                    let label = if title.is_empty() { key.clone() } else { format!("{title}.{key}") };
                    out.push_str(&format!("{label}: {}\n", cell(Some(item))));
                }
            }
            for (key, item) in nested {
                let label = if title.is_empty() { key.clone() } else { format!("{title}.{key}") };
                render_value(out, &label, item);
            }
        }
        Value::Array(items) => {
            let mut columns: Vec<String> = Vec::new();
            for item in items {
                if let Value::Object(map) = item {
                    for key in map.keys() {
                        if !columns.contains(key) {
                            columns.push(key.clone());
                        }
                    }
                }
            }
            if !title.is_empty() {
                out.push_str(&format!("\n{title}:\n"));
            }
            if items.is_empty() {
                out.push_str("(none)\n");
            } else if columns.is_empty() {
                for item in items {
                    out.push_str(&format!("{}\n", cell(Some(item))));
                }
            } else {
                let headers: Vec<&str> = columns.iter().map(String::as_str).collect();
                out.push_str(&Table::of(value, &headers).render());
            }
        }
        scalar => {
            let label = if title.is_empty() { String::new() } else { format!("{title}: ") };
            out.push_str(&format!("{label}{}\n", cell(Some(scalar))));
        }
    }
}

/// A progress line on stderr, drawn only when stderr is a terminal.
pub struct Progress {
    enabled: bool,
    drawn: bool,
}

impl Progress {
    /// A progress line that draws only if stderr is a terminal.
    pub fn on_terminal() -> Progress {
        Progress { enabled: std::io::stderr().is_terminal(), drawn: false }
    }

    /// Replaces the progress line with `message`.
    pub fn update(&mut self, message: &str) {
        if self.enabled {
            let mut stderr = std::io::stderr().lock();
            let _ = write!(stderr, "\r\x1b[2K{message}");
            let _ = stderr.flush();
            self.drawn = true;
        }
    }

    /// Clears the progress line.
    pub fn finish(&mut self) {
        if self.enabled && self.drawn {
            let mut stderr = std::io::stderr().lock();
            let _ = write!(stderr, "\r\x1b[2K");
            let _ = stderr.flush();
            self.drawn = false;
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

/// Runs `work`, showing `label` and the time elapsed on a terminal until it is done.
pub async fn with_progress<T>(label: &str, work: impl Future<Output = T>) -> T {
    let mut progress = Progress::on_terminal();
    if !progress.enabled {
        return work.await;
    }
    let started = Instant::now();
    let mut ticker = tokio::time::interval(Duration::from_millis(PROGRESS_INTERVAL_MS));
    let frames = ['|', '/', '-', '\\'];
    let mut frame = 0usize;
    tokio::pin!(work);
    loop {
        tokio::select! {
            output = &mut work => {
                progress.finish();
                return output;
            }
            _ = ticker.tick() => {
                frame = (frame + 1) % frames.len();
                let seconds = started.elapsed().as_secs_f32();
                progress.update(&format!("{} {label} ({seconds:.1}s)", frames[frame]));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn tables_align_columns_and_show_missing_values_as_dashes() {
        let items = json!([
            {"email": "alice@example.com", "role": "owner", "tool_calls": 3},
            {"email": "b@example.com", "role": "member", "tool_calls": null},
        ]);
        let text = Table::of(&items, &["email", "role", "tool_calls"]).render();
        assert_eq!(
            text,
            "EMAIL              ROLE    TOOL_CALLS\n\
             alice@example.com  owner   3\n\
             b@example.com      member  -\n"
        );
    }

    #[test]
    fn times_read_to_the_second() {
        assert_eq!(text(Some(&json!("2026-11-28T06:26:30.560530357Z"))), "2026-11-28 06:26:30 UTC");
        assert_eq!(text(Some(&json!("not a time"))), "not a time");
    }

    #[test]
    fn long_cells_are_cut() {
        let long = "x".repeat(100);
        let text = cell(Some(&json!(long)));
        assert_eq!(text.chars().count(), CELL_CHARS_MAX);
        assert!(text.ends_with('…'));
    }

    #[test]
    fn tagged_objects_read_as_one_cell() {
        let actor = json!({"kind": "account", "account_id": "a1"});
        assert_eq!(cell(Some(&actor)), "account account_id=a1");
    }

    #[test]
    fn nested_values_render_as_lines_and_tables() {
        let mut out = String::new();
        render_value(&mut out, "", &json!({"total": 2, "per_member": [{"email": "a@x.io", "calls": 2}]}));
        assert_eq!(out, "total: 2\n\nper_member:\nCALLS  EMAIL\n2      a@x.io\n");
    }
}
