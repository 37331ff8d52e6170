//! One summary over every scenario of `cargo xtask bench`: a row per measure (median of
//! ours, of the reference run beside it, their ratio, the goal of the benchmarks issue
//! and whether it is met), printed as one table, kept in the JSON, and drawn as a chart
//! of the ratios against their goals (`docs/bench-ratios.svg`).

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

/// What a ratio should be: at least or at most this much.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Goal {
    AtLeast(f64),
    AtMost(f64),
}

impl Goal {
    fn met(self, ratio: f64) -> bool {
        match self {
            Goal::AtLeast(g) => ratio >= g,
            Goal::AtMost(g) => ratio <= g,
        }
    }

    fn value(self) -> f64 {
        match self {
            Goal::AtLeast(g) | Goal::AtMost(g) => g,
        }
    }

    fn text(self) -> String {
        match self {
            Goal::AtLeast(g) => format!("≥ {g:.1}×"),
            Goal::AtMost(g) => format!("≤ {g:.1}×"),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub scenario: String,
    pub measure: String,
    /// Ours and the reference, in `unit`.
    pub ours: f64,
    pub reference: f64,
    pub unit: String,
    /// What the reference is.
    pub reference_name: String,
    /// ours ÷ reference.
    pub ratio: f64,
    /// The goal as text (`≥ 0.6×`, `—` when the issue sets none).
    pub goal: String,
    pub goal_kind: Option<Goal>,
    /// Whether the goal is met; `None` without a goal.
    pub met: Option<bool>,
}

/// A row: `ours` against `reference` (same unit), with an optional goal on their ratio.
pub fn row(
    scenario: &str,
    measure: &str,
    (ours, reference): (f64, f64),
    unit: &str,
    reference_name: &str,
    goal: Option<Goal>,
) -> Row {
    let ratio = ours / reference;
    Row {
        scenario: scenario.to_owned(),
        measure: measure.to_owned(),
        ours,
        reference,
        unit: unit.to_owned(),
        reference_name: reference_name.to_owned(),
        ratio,
        goal: goal.map_or_else(|| "—".to_owned(), Goal::text),
        goal_kind: goal,
        met: goal.map(|g| ratio.is_finite() && g.met(ratio)),
    }
}

fn number(value: f64, unit: &str) -> String {
    let digits = if value.abs() >= 100.0 {
        0
    } else if value.abs() >= 10.0 {
        1
    } else {
        2
    };
    let mut text = format!("{value:.digits$}");
    // Thousands separators for the integer part.
    if digits == 0 && value.abs() >= 10_000.0 {
        let negative = text.starts_with('-');
        let body: String = text.trim_start_matches('-').to_owned();
        let mut grouped = String::new();
        for (i, c) in body.chars().enumerate() {
            if i > 0 && (body.len() - i).is_multiple_of(3) {
                grouped.push(',');
            }
            grouped.push(c);
        }
        text = if negative {
            format!("-{grouped}")
        } else {
            grouped
        };
    }
    format!("{text} {unit}")
}

/// The summary as a Markdown table.
pub fn table(rows: &[Row]) -> String {
    let mut out = String::new();
    out.push_str("| scenario | measure | ours | reference | ratio | goal | met |\n");
    out.push_str("|---|---|---|---|---|---|---|\n");
    for r in rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {}: {} | {:.2}× | {} | {} |",
            r.scenario,
            r.measure,
            number(r.ours, &r.unit),
            r.reference_name,
            number(r.reference, &r.unit),
            r.ratio,
            r.goal,
            match r.met {
                Some(true) => "✓",
                Some(false) => "✗",
                None => "",
            }
        );
    }
    out
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A horizontal bar per ratio, green when its goal is met, red when not, grey without
/// one; the goal as a black tick on the bar's line.
pub fn svg(rows: &[Row], caption: &str) -> String {
    const LABEL: f64 = 330.0;
    const PLOT: f64 = 420.0;
    const BAR: f64 = 18.0;
    const GAP: f64 = 8.0;
    const TOP: f64 = 40.0;
    let max = rows
        .iter()
        .flat_map(|r| [r.ratio, r.goal_kind.map_or(0.0, Goal::value)])
        .filter(|v| v.is_finite())
        .fold(1.0_f64, f64::max)
        .min(4.0)
        .ceil();
    let x = |v: f64| LABEL + (v.clamp(0.0, max) / max) * PLOT;
    let height = TOP + rows.len() as f64 * (BAR + GAP) + 40.0;
    let width = LABEL + PLOT + 90.0;
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
         viewBox=\"0 0 {width} {height}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"10\" y=\"20\" font-size=\"14\" font-weight=\"bold\">{}</text>\n",
        escape(caption)
    );
    // Grid: every 0.5×, and 1.0× stronger.
    let mut tick = 0.0;
    while tick <= max + 1e-9 {
        let strong = (tick - 1.0).abs() < 1e-9;
        let _ = writeln!(
            out,
            "<line x1=\"{0:.1}\" y1=\"{1}\" x2=\"{0:.1}\" y2=\"{2}\" stroke=\"{3}\"/>\
             <text x=\"{0:.1}\" y=\"{4}\" text-anchor=\"middle\" fill=\"#555\">{5:.1}×</text>",
            x(tick),
            TOP - 6.0,
            height - 30.0,
            if strong { "#888" } else { "#ddd" },
            height - 14.0,
            tick
        );
        tick += 0.5;
    }
    for (i, r) in rows.iter().enumerate() {
        let y = TOP + i as f64 * (BAR + GAP);
        let colour = match r.met {
            Some(true) => "#3a9d5d",
            Some(false) => "#d0543f",
            None => "#9aa4ad",
        };
        let ratio = if r.ratio.is_finite() { r.ratio } else { 0.0 };
        let _ = writeln!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\
             <rect x=\"{LABEL}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{BAR}\" fill=\"{colour}\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\">{:.2}×{}</text>",
            LABEL - 8.0,
            y + BAR * 0.7,
            escape(&format!("{} — {}", r.scenario, r.measure)),
            x(ratio) - LABEL,
            x(ratio) + 4.0,
            y + BAR * 0.7,
            ratio,
            if ratio > max { " →" } else { "" }
        );
        if let Some(goal) = r.goal_kind {
            let _ = writeln!(
                out,
                "<line x1=\"{0:.1}\" y1=\"{1:.1}\" x2=\"{0:.1}\" y2=\"{2:.1}\" stroke=\"black\" stroke-width=\"3\"/>",
                x(goal.value()),
                y - 3.0,
                y + BAR + 3.0
            );
        }
    }
    let _ = writeln!(
        out,
        "<text x=\"10\" y=\"{:.1}\" fill=\"#555\">bar: ours ÷ reference (median); black tick: goal; green met, red missed, grey no goal</text>",
        height - 2.0
    );
    out.push_str("</svg>\n");
    out
}

pub fn write_svg(path: &Path, rows: &[Row], caption: &str) -> anyhow::Result<()> {
    std::fs::write(path, svg(rows, caption))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_say_whether_goals_are_met() {
        let r = row(
            "gateway",
            "req/s",
            (50.0, 100.0),
            "req/s",
            "nginx",
            Some(Goal::AtLeast(1.0)),
        );
        assert_eq!(r.met, Some(false));
        let r = row("x", "p99", (1.0, 1.0), "ms", "n", Some(Goal::AtMost(1.2)));
        assert_eq!(r.met, Some(true));
        assert!(table(std::slice::from_ref(&r)).contains("| 1.00× | ≤ 1.2× | ✓ |"));
        assert!(svg(&[r], "t").starts_with("<svg"));
        assert_eq!(number(164_089.0, "req/s"), "164,089 req/s");
    }
}
