//! `GET /api/v1/analytics/dashboard`: the overview as one HTML page with server-rendered
//! SVG charts (no scripts, nothing loaded from elsewhere), in `common::pages`'s shell.

use std::sync::LazyLock;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use common::ApiError;
use common::auth::AuthUser;
use common::extract::Query;
use common::pages::{Forms, Style, document, respond};
use maud::{Markup, html};

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
) -> Result<Response, ApiError> {
    let overview = overview_of(&state, &user, &query).await?;
    Ok(respond(
        StatusCode::OK,
        &STYLE,
        Forms::None,
        render(&user.tenant_slug, &overview),
    ))
}

static STYLE: LazyLock<Style> = LazyLock::new(|| {
    Style::new(
        "body{font:14px system-ui,sans-serif;margin:2em;color:#222}\
         .cards{display:flex;gap:1em}.card{border:1px solid #ddd;padding:.8em 1.2em;border-radius:6px}\
         .card b{display:block;font-size:1.6em}table{border-collapse:collapse}\
         td,th{padding:.2em .8em;text-align:left;border-bottom:1px solid #eee}",
    )
});

/// The dashboard page of `tenant`'s overview.
pub fn render(tenant: &str, o: &Overview) -> Markup {
    let t = &o.totals;
    let days: Vec<String> = o.daily.iter().map(|d| d.date.to_string()).collect();
    let created: Vec<i64> = o.daily.iter().map(|d| d.totals.tasks_created).collect();
    let completed: Vec<i64> = o.daily.iter().map(|d| d.totals.tasks_completed).collect();
    let clicks: Vec<i64> = o.daily.iter().map(|d| d.totals.link_clicks).collect();
    let cycle = o
        .cycle_time
        .average_minutes
        .map_or("–".to_owned(), |m| format!("{:.1} h", m / 60.0));
    let title = format!("Analytics · {tenant}");
    let body = html! {
        h1 { (title) }
        p { (o.from) " – " (o.to) " (UTC)" }
        div.cards {
            @for (label, value) in [
                ("Tasks created", t.tasks_created),
                ("Tasks completed", t.tasks_completed),
                ("Link clicks", t.link_clicks),
                ("Minutes logged", t.minutes_logged),
            ] {
                div.card { (label) b { (value) } }
            }
        }
        h2 { "Tasks per day" }
        (bars(&days, &[("created", "#4e79a7", &created), ("completed", "#59a14f", &completed)]))
        h2 { "Link clicks per day" }
        (bars(&days, &[("clicks", "#f28e2b", &clicks)]))
        h2 { "Status" }
        p {
            (o.status_mix.open) " open, " (o.status_mix.done) " done; average cycle time "
            (cycle) " over " (o.cycle_time.tasks) " tasks."
        }
        h2 { "Top links" }
        table {
            tr { th { "code" } th { "clicks" } }
            @for l in &o.top_links {
                tr { td { (l.code) } td { (l.clicks) } }
            }
        }
        h2 { "Top referrers" }
        table {
            tr { th { "host" } th { "clicks" } }
            @for r in &o.top_referrers {
                tr { td { (r.host) } td { (r.clicks) } }
            }
        }
    };
    document(&title, &STYLE, &body)
}

/// A bar chart: one group of bars per day, one bar per series.
fn bars(days: &[String], series: &[(&str, &str, &[i64])]) -> Markup {
    let max = series
        .iter()
        .flat_map(|(_, _, v)| v.iter().copied())
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let slot = WIDTH / days.len().max(1) as f64;
    let bar = (slot * 0.8) / series.len().max(1) as f64;
    let tenth = |v: f64| format!("{v:.1}");
    html! {
        svg xmlns="http://www.w3.org/2000/svg" role="img" width=(WIDTH) height=(HEIGHT + 20.0)
            viewBox={ "0 0 " (WIDTH) " " (HEIGHT + 20.0) } {
            line x1="0" y1=(HEIGHT) x2=(WIDTH) y2=(HEIGHT) stroke="#999" {}
            @for (i, day) in days.iter().enumerate() {
                @for (s, (name, colour, values)) in series.iter().enumerate() {
                    @let value = values.get(i).copied().unwrap_or(0);
                    @let h = value as f64 / max * (HEIGHT - 10.0);
                    @let x = i as f64 * slot + slot * 0.1 + s as f64 * bar;
                    rect x=(tenth(x)) y=(tenth(HEIGHT - h)) width=(tenth(bar)) height=(tenth(h))
                        fill=(colour) {
                        title { (day) " " (name) ": " (value) }
                    }
                }
            }
            @if let (Some(first), Some(last)) = (days.first(), days.last()) {
                text x="0" y=(HEIGHT + 15.0) font-size="11" { (first) }
                text x=(WIDTH) y=(HEIGHT + 15.0) font-size="11" text-anchor="end" { (last) }
            }
            text x=(WIDTH) y="10" font-size="11" text-anchor="end" { "max " (max) }
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;

    use super::*;
    use crate::domain::report::{CycleTime, Daily, LinkClicks, ReferrerClicks, StatusMix, Totals};

    #[test]
    fn hostile_codes_hosts_and_tenants_are_escaped() {
        let hostile = "<script>alert(\"x\")</script>&'";
        let day = NaiveDate::from_ymd_opt(2026, 11, 4).unwrap();
        let totals = || Totals {
            tasks_created: 1,
            tasks_completed: 0,
            link_clicks: 2,
            minutes_logged: 0,
        };
        let overview = Overview {
            from: day,
            to: day,
            totals: totals(),
            daily: vec![Daily {
                date: day,
                totals: totals(),
            }],
            status_mix: StatusMix {
                open: 1,
                done: 0,
                by_status: vec![],
            },
            cycle_time: CycleTime {
                average_minutes: None,
                tasks: 0,
            },
            top_links: vec![LinkClicks {
                code: hostile.to_owned(),
                clicks: 2,
            }],
            top_referrers: vec![ReferrerClicks {
                host: hostile.to_owned(),
                clicks: 2,
            }],
        };
        let html = render(hostile, &overview).into_string();
        assert!(!html.contains("<script"), "{html}");
        let escaped = "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;'";
        assert_eq!(
            html.matches(escaped).count(),
            4,
            "title, h1, code, host: {html}"
        );
        assert!(
            html.contains("<title>2026-11-04 clicks: 2</title>"),
            "{html}"
        );
    }
}
