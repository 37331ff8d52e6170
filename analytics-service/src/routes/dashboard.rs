//! `GET /api/v1/analytics/dashboard`: the overview as one HTML page with server-rendered
//! SVG charts (no scripts, nothing loaded from elsewhere).

use std::fmt::Write;

use axum::extract::State;
use axum::http::header;
use axum::response::{Html, IntoResponse};
use common::ApiError;
use common::auth::AuthUser;
use common::extract::Query;

use super::reports::overview_of;
use crate::AppState;
use crate::domain::range::RangeQuery;
use crate::domain::report::Overview;

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 160.0;

/// The overview as HTML with bar charts per day.
#[utoipa::path(get, path = "/api/v1/analytics/dashboard", tag = "analytics", params(RangeQuery),
    responses((status = 200, content_type = "text/html", body = String)))]
#[tracing::instrument(skip_all, fields(tenant_id = %user.tenant_id), err)]
pub async fn page(
    State(state): State<AppState>,
    user: AuthUser,
    Query(query): Query<RangeQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let overview = overview_of(&state, &user, &query).await?;
    Ok((
        [(
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'",
        )],
        Html(render(&user.tenant_slug, &overview)),
    ))
}

pub fn render(tenant: &str, o: &Overview) -> String {
    let t = &o.totals;
    let mut html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>Analytics · {tenant}</title><style>\
         body{{font:14px system-ui,sans-serif;margin:2em;color:#222}}\
         .cards{{display:flex;gap:1em}}.card{{border:1px solid #ddd;padding:.8em 1.2em;border-radius:6px}}\
         .card b{{display:block;font-size:1.6em}}table{{border-collapse:collapse}}\
         td,th{{padding:.2em .8em;text-align:left;border-bottom:1px solid #eee}}\
         </style></head><body><h1>Analytics · {tenant}</h1><p>{} – {} (UTC)</p><div class=\"cards\">",
        o.from,
        o.to,
        tenant = escape(tenant)
    );
    for (label, value) in [
        ("Tasks created", t.tasks_created),
        ("Tasks completed", t.tasks_completed),
        ("Link clicks", t.link_clicks),
        ("Minutes logged", t.minutes_logged),
    ] {
        let _ = write!(html, "<div class=\"card\">{label}<b>{value}</b></div>");
    }
    html.push_str("</div>");
    let days: Vec<String> = o.daily.iter().map(|d| d.date.to_string()).collect();
    let created: Vec<i64> = o.daily.iter().map(|d| d.totals.tasks_created).collect();
    let completed: Vec<i64> = o.daily.iter().map(|d| d.totals.tasks_completed).collect();
    let clicks: Vec<i64> = o.daily.iter().map(|d| d.totals.link_clicks).collect();
    html.push_str("<h2>Tasks per day</h2>");
    html.push_str(&bars(
        &days,
        &[
            ("created", "#4e79a7", &created),
            ("completed", "#59a14f", &completed),
        ],
    ));
    html.push_str("<h2>Link clicks per day</h2>");
    html.push_str(&bars(&days, &[("clicks", "#f28e2b", &clicks)]));
    let cycle = o
        .cycle_time
        .average_minutes
        .map_or("–".to_owned(), |m| format!("{:.1} h", m / 60.0));
    let _ = write!(
        html,
        "<h2>Status</h2><p>{} open, {} done; average cycle time {cycle} over {} tasks.</p>",
        o.status_mix.open, o.status_mix.done, o.cycle_time.tasks
    );
    html.push_str("<h2>Top links</h2><table><tr><th>code</th><th>clicks</th></tr>");
    for l in &o.top_links {
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{}</td></tr>",
            escape(&l.code),
            l.clicks
        );
    }
    html.push_str("</table><h2>Top referrers</h2><table><tr><th>host</th><th>clicks</th></tr>");
    for r in &o.top_referrers {
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{}</td></tr>",
            escape(&r.host),
            r.clicks
        );
    }
    html.push_str("</table></body></html>");
    html
}

/// A bar chart: one group of bars per day, one bar per series.
fn bars(days: &[String], series: &[(&str, &str, &[i64])]) -> String {
    let max = series
        .iter()
        .flat_map(|(_, _, v)| v.iter().copied())
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let slot = WIDTH / days.len().max(1) as f64;
    let bar = (slot * 0.8) / series.len().max(1) as f64;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" width=\"{WIDTH}\" height=\"{}\" \
         viewBox=\"0 0 {WIDTH} {}\"><line x1=\"0\" y1=\"{HEIGHT}\" x2=\"{WIDTH}\" y2=\"{HEIGHT}\" stroke=\"#999\"/>",
        HEIGHT + 20.0,
        HEIGHT + 20.0
    );
    for (i, day) in days.iter().enumerate() {
        for (s, (name, colour, values)) in series.iter().enumerate() {
            let value = values.get(i).copied().unwrap_or(0);
            let h = value as f64 / max * (HEIGHT - 10.0);
            let x = i as f64 * slot + slot * 0.1 + s as f64 * bar;
            let _ = write!(
                svg,
                "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{bar:.1}\" height=\"{h:.1}\" fill=\"{colour}\">\
                 <title>{day} {name}: {value}</title></rect>",
                HEIGHT - h
            );
        }
    }
    if let (Some(first), Some(last)) = (days.first(), days.last()) {
        let _ = write!(
            svg,
            "<text x=\"0\" y=\"{}\" font-size=\"11\">{first}</text>\
             <text x=\"{WIDTH}\" y=\"{}\" font-size=\"11\" text-anchor=\"end\">{last}</text>",
            HEIGHT + 15.0,
            HEIGHT + 15.0
        );
    }
    let _ = write!(
        svg,
        "<text x=\"{WIDTH}\" y=\"10\" font-size=\"11\" text-anchor=\"end\">max {max}</text></svg>"
    );
    svg
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}
