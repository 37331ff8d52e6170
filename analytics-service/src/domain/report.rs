//! The reports the API answers, computed from counters, rollups and raw events.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, NaiveDate, Utc};
use common::events::keys;
use serde::Serialize;

use super::event::{Metric, completes};
use super::range::Range;
use crate::store::query::{DayCounts, Rolled};
use crate::store::rollup::{DIRECT, Raw};

/// How many links and referrers the overview lists.
pub const TOP: usize = 10;

#[derive(Debug, Default, Clone, Copy, Serialize, utoipa::ToSchema)]
pub struct Totals {
    pub tasks_created: i64,
    pub tasks_completed: i64,
    pub link_clicks: i64,
    pub minutes_logged: i64,
}

impl From<DayCounts> for Totals {
    fn from(c: DayCounts) -> Self {
        let at = |m: Metric| c[Metric::ALL.iter().position(|x| *x == m).unwrap_or(0)];
        Self {
            tasks_created: at(Metric::TasksCreated),
            tasks_completed: at(Metric::TasksCompleted),
            link_clicks: at(Metric::LinkClicks),
            minutes_logged: at(Metric::MinutesLogged),
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Daily {
    pub date: NaiveDate,
    #[serde(flatten)]
    pub totals: Totals,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StatusCount {
    /// Column id the task is in.
    pub status: String,
    pub tasks: i64,
}

/// Where the tasks created in the range stand at its end.
#[derive(Debug, Default, Serialize, utoipa::ToSchema)]
pub struct StatusMix {
    pub open: i64,
    pub done: i64,
    pub by_status: Vec<StatusCount>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CycleTime {
    /// Mean minutes from `task.created` to the task's first completion, over the tasks
    /// first completed in the range; `null` when there are none.
    pub average_minutes: Option<f64>,
    pub tasks: i64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LinkClicks {
    pub code: String,
    pub clicks: i64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReferrerClicks {
    /// Referring host, or `(direct)`.
    pub host: String,
    pub clicks: i64,
}

/// `GET /api/v1/analytics/overview`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Overview {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub totals: Totals,
    /// One entry per day of the range, zeros included.
    pub daily: Vec<Daily>,
    pub status_mix: StatusMix,
    pub cycle_time: CycleTime,
    pub top_links: Vec<LinkClicks>,
    pub top_referrers: Vec<ReferrerClicks>,
}

impl Overview {
    pub fn build(
        range: &Range,
        counters: &BTreeMap<NaiveDate, DayCounts>,
        rolled: Rolled,
        mix: Statuses,
    ) -> Self {
        let mut sum: DayCounts = [0; 4];
        let daily = range
            .days()
            .map(|date| {
                let counts = counters.get(&date).copied().unwrap_or_default();
                for (s, c) in sum.iter_mut().zip(counts) {
                    *s += c;
                }
                Daily {
                    date,
                    totals: counts.into(),
                }
            })
            .collect();
        Self {
            from: range.from,
            to: range.to,
            totals: sum.into(),
            daily,
            status_mix: mix.finish(),
            cycle_time: CycleTime {
                average_minutes: (rolled.cycle_samples > 0)
                    .then(|| rolled.cycle_minutes_total as f64 / rolled.cycle_samples as f64),
                tasks: rolled.cycle_samples,
            },
            top_links: top(rolled.links)
                .map(|(code, clicks)| LinkClicks { code, clicks })
                .collect(),
            top_referrers: top(rolled.referrers)
                .map(|(host, clicks)| ReferrerClicks { host, clicks })
                .collect(),
        }
    }
}

/// The [`TOP`] largest entries, largest first (ties by name).
fn top(map: BTreeMap<String, i64>) -> impl Iterator<Item = (String, i64)> {
    let mut entries: Vec<_> = map.into_iter().collect();
    entries.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    entries.into_iter().take(TOP)
}

/// Where each task stands, from the range's `task.created` and `task.status_changed`
/// events, in any order (the latest change by `occurred_at` wins), so the events can be
/// read as they are stored.
#[derive(Default)]
pub struct Statuses {
    tasks: HashMap<String, TaskState>,
}

#[derive(Default)]
struct TaskState {
    /// Column and done flag at creation, when the task was created in the range.
    created: Option<(String, bool)>,
    /// The latest status change: when, column, done.
    changed: Option<(DateTime<Utc>, String, bool)>,
}

impl Statuses {
    pub fn add(&mut self, e: &Raw) {
        let Some(task) = e.str("task_id") else {
            return;
        };
        let state = || TaskState::default();
        match e.kind.as_str() {
            keys::TASK_CREATED => {
                let done = e.data["done"].as_bool().unwrap_or(false);
                let status = e.str("status").unwrap_or_default().to_owned();
                entry(&mut self.tasks, task, state).created = Some((status, done));
            }
            keys::TASK_STATUS_CHANGED => {
                let changed = &mut entry(&mut self.tasks, task, state).changed;
                if changed
                    .as_ref()
                    .is_none_or(|(at, _, _)| *at <= e.occurred_at)
                {
                    *changed = Some((
                        e.occurred_at,
                        e.str("to").unwrap_or_default().to_owned(),
                        e.data["done"].as_bool() == Some(true),
                    ));
                }
            }
            _ => {}
        }
    }

    fn finish(self) -> StatusMix {
        let mut mix = StatusMix::default();
        let mut by: BTreeMap<String, i64> = BTreeMap::new();
        // Only the tasks created in the range count; a change stands over the creation.
        let standing = self.tasks.into_values().filter_map(|t| {
            let created = t.created?;
            Some(
                t.changed
                    .map_or(created, |(_, status, done)| (status, done)),
            )
        });
        for (status, done) in standing {
            if done {
                mix.done += 1;
            } else {
                mix.open += 1;
            }
            *by.entry(status).or_default() += 1;
        }
        mix.by_status = by
            .into_iter()
            .map(|(status, tasks)| StatusCount { status, tasks })
            .collect();
        mix
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LinkDay {
    pub date: NaiveDate,
    pub clicks: i64,
    pub unique_visitors: i64,
}

/// `GET /api/v1/analytics/links/{code}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LinkStats {
    pub code: String,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub clicks: i64,
    /// Distinct `visitor_hash` values over the whole range.
    pub unique_visitors: i64,
    pub browsers: i64,
    pub bots: i64,
    pub daily: Vec<LinkDay>,
    pub referrers: Vec<ReferrerClicks>,
}

/// A link's clicks added up, fed one `url.accessed` event at a time.
#[derive(Default)]
pub struct Clicks {
    count: i64,
    per_day: BTreeMap<NaiveDate, (i64, HashSet<String>)>,
    visitors: HashSet<String>,
    referrers: BTreeMap<String, i64>,
    browsers: i64,
    bots: i64,
}

impl Clicks {
    pub fn add(&mut self, click: &Raw) {
        self.count += 1;
        let visitor = click.str("visitor_hash").unwrap_or_default();
        let day = self
            .per_day
            .entry(click.occurred_at.date_naive())
            .or_default();
        day.0 += 1;
        if !day.1.contains(visitor) {
            day.1.insert(visitor.to_owned());
        }
        if !self.visitors.contains(visitor) {
            self.visitors.insert(visitor.to_owned());
        }
        let host = click
            .str("referrer_host")
            .filter(|h| !h.is_empty())
            .unwrap_or(DIRECT);
        match self.referrers.get_mut(host) {
            Some(n) => *n += 1,
            None => {
                self.referrers.insert(host.to_owned(), 1);
            }
        }
        if click.str("agent_class") == Some("bot") {
            self.bots += 1;
        } else {
            self.browsers += 1;
        }
    }
}

impl LinkStats {
    pub fn build(code: &str, range: &Range, clicks: Clicks) -> Self {
        let Clicks {
            count,
            mut per_day,
            visitors,
            referrers,
            browsers,
            bots,
        } = clicks;
        let mut referrers: Vec<_> = referrers
            .into_iter()
            .map(|(host, clicks)| ReferrerClicks { host, clicks })
            .collect();
        referrers.sort_by(|a, b| b.clicks.cmp(&a.clicks).then_with(|| a.host.cmp(&b.host)));
        Self {
            code: code.to_owned(),
            from: range.from,
            to: range.to,
            clicks: count,
            unique_visitors: visitors.len() as i64,
            browsers,
            bots,
            daily: range
                .days()
                .map(|date| {
                    let (clicks, seen) = per_day.remove(&date).unwrap_or_default();
                    LinkDay {
                        date,
                        clicks,
                        unique_visitors: seen.len() as i64,
                    }
                })
                .collect(),
            referrers,
        }
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BurnDay {
    pub date: NaiveDate,
    pub created: i64,
    pub completed: i64,
    /// Tasks created up to and including this day (all time).
    pub total_created: i64,
    /// Task completions up to and including this day (all time).
    pub total_completed: i64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProjectBurnup {
    pub project_id: String,
    pub daily: Vec<BurnDay>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AssigneeBurnup {
    /// `null`: tasks nobody is assigned to.
    pub assignee_id: Option<String>,
    pub daily: Vec<BurnDay>,
}

/// `GET /api/v1/analytics/tasks`: created vs completed, per project and per assignee.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Burnup {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub projects: Vec<ProjectBurnup>,
    pub assignees: Vec<AssigneeBurnup>,
}

#[derive(Default)]
struct Series {
    created: BTreeMap<NaiveDate, i64>,
    completed: BTreeMap<NaiveDate, i64>,
}

impl Series {
    fn days(&self, range: &Range) -> Vec<BurnDay> {
        let before = |m: &BTreeMap<NaiveDate, i64>| m.range(..range.from).map(|(_, n)| n).sum();
        let (mut total_created, mut total_completed): (i64, i64) =
            (before(&self.created), before(&self.completed));
        range
            .days()
            .map(|date| {
                let created = self.created.get(&date).copied().unwrap_or(0);
                let completed = self.completed.get(&date).copied().unwrap_or(0);
                total_created += created;
                total_completed += completed;
                BurnDay {
                    date,
                    created,
                    completed,
                    total_created,
                    total_completed,
                }
            })
            .collect()
    }
}

/// Every task's project, assignee, creation day and completion days, from every
/// `task.created`, `task.status_changed` and `task.assigned` up to the end of a range,
/// in any order (the latest project and assignee by `occurred_at` win).
#[derive(Default)]
pub struct TaskHistory {
    project_of: HashMap<String, Latest<String>>,
    assignee_of: HashMap<String, Latest<Option<String>>>,
    created: Vec<(String, NaiveDate)>,
    completed: HashSet<(String, NaiveDate)>,
}

/// A value with the time it was set; a later one replaces it.
struct Latest<T> {
    at: DateTime<Utc>,
    value: T,
}

/// Sets `map[key]` to `value` unless it holds a later one.
fn set_latest<T>(map: &mut HashMap<String, Latest<T>>, key: &str, at: DateTime<Utc>, value: T) {
    match map.get_mut(key) {
        Some(latest) if latest.at > at => {}
        Some(latest) => *latest = Latest { at, value },
        None => {
            map.insert(key.to_owned(), Latest { at, value });
        }
    }
}

/// `map[key]`, made with `new` when absent (without allocating the key when present).
fn entry<'m, T>(map: &'m mut HashMap<String, T>, key: &str, new: impl FnOnce() -> T) -> &'m mut T {
    if !map.contains_key(key) {
        map.insert(key.to_owned(), new());
    }
    map.get_mut(key).expect("just inserted")
}

impl TaskHistory {
    pub fn add(&mut self, e: &Raw) {
        let Some(task) = e.str("task_id") else {
            return;
        };
        let at = e.occurred_at;
        if let Some(project) = e.str("project_id") {
            set_latest(&mut self.project_of, task, at, project.to_owned());
        }
        match e.kind.as_str() {
            keys::TASK_CREATED => {
                let assignee = e.str("assignee_id").map(str::to_owned);
                set_latest(&mut self.assignee_of, task, at, assignee);
                self.created.push((task.to_owned(), at.date_naive()));
            }
            keys::TASK_ASSIGNED => {
                let assignee = e.str("to").map(str::to_owned);
                set_latest(&mut self.assignee_of, task, at, assignee);
            }
            keys::TASK_STATUS_CHANGED if completes(&e.data) => {
                self.completed
                    .insert((task.to_owned(), e.occurred_at.date_naive()));
            }
            _ => {}
        }
    }
}

impl Burnup {
    /// A task counts under its project and under its assignee as of the end of the
    /// range; a completion is counted once per task and day.
    pub fn build(range: &Range, history: &TaskHistory) -> Self {
        let TaskHistory {
            project_of,
            assignee_of,
            created,
            completed,
        } = history;
        let mut projects: BTreeMap<&str, Series> = BTreeMap::new();
        let mut assignees: BTreeMap<Option<&str>, Series> = BTreeMap::new();
        let mut add = |task: &str, day: NaiveDate, done: bool| {
            let pick = |s: &mut Series| {
                *if done {
                    &mut s.completed
                } else {
                    &mut s.created
                }
                .entry(day)
                .or_default() += 1;
            };
            if let Some(project) = project_of.get(task) {
                pick(projects.entry(project.value.as_str()).or_default());
            }
            pick(
                assignees
                    .entry(assignee_of.get(task).and_then(|a| a.value.as_deref()))
                    .or_default(),
            );
        };
        for (task, day) in created {
            add(task, *day, false);
        }
        for (task, day) in completed {
            add(task, *day, true);
        }
        Self {
            from: range.from,
            to: range.to,
            projects: projects
                .into_iter()
                .map(|(id, s)| ProjectBurnup {
                    project_id: id.to_owned(),
                    daily: s.days(range),
                })
                .collect(),
            assignees: assignees
                .into_iter()
                .map(|(id, s)| AssigneeBurnup {
                    assignee_id: id.map(str::to_owned),
                    daily: s.days(range),
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use serde_json::json;

    use super::*;

    fn event(kind: &str, minute: u32, data: serde_json::Value) -> Raw {
        Raw {
            kind: kind.to_owned(),
            occurred_at: Utc.with_ymd_and_hms(2026, 12, 1, 10, minute, 0).unwrap(),
            data,
        }
    }

    /// A task created in the range and moved twice, a task created before the range and
    /// moved in it, and a task assigned twice.
    fn history() -> Vec<Raw> {
        vec![
            event(
                keys::TASK_CREATED,
                0,
                json!({"task_id": "a", "project_id": "p", "status": "todo", "done": false, "assignee_id": "u1"}),
            ),
            event(
                keys::TASK_STATUS_CHANGED,
                5,
                json!({"task_id": "a", "project_id": "p", "to": "doing", "done": false}),
            ),
            event(
                keys::TASK_STATUS_CHANGED,
                9,
                json!({"task_id": "a", "project_id": "p", "to": "done", "done": true}),
            ),
            event(
                keys::TASK_STATUS_CHANGED,
                7,
                json!({"task_id": "old", "project_id": "p", "to": "doing", "done": false}),
            ),
            event(
                keys::TASK_ASSIGNED,
                3,
                json!({"task_id": "a", "project_id": "p", "to": "u2"}),
            ),
            event(
                keys::TASK_ASSIGNED,
                8,
                json!({"task_id": "a", "project_id": "p", "to": "u3"}),
            ),
        ]
    }

    fn range() -> Range {
        let day = NaiveDate::from_ymd_opt(2026, 12, 1).unwrap();
        Range { from: day, to: day }
    }

    #[test]
    fn the_status_mix_is_the_same_whatever_order_the_events_come_in() {
        let mix = |events: &[Raw]| {
            let mut statuses = Statuses::default();
            events.iter().for_each(|e| statuses.add(e));
            let mix = statuses.finish();
            (
                mix.open,
                mix.done,
                mix.by_status.len(),
                mix.by_status[0].status.clone(),
            )
        };
        let mut events = history();
        let in_order = mix(&events);
        events.reverse();
        assert_eq!(mix(&events), in_order);
        // Only "a" was created in the range, and it ended done.
        assert_eq!(in_order, (0, 1, 1, "done".to_owned()));
    }

    #[test]
    fn the_burn_up_counts_a_task_under_its_latest_assignee_whatever_the_order() {
        let assignees = |events: &[Raw]| {
            let mut history = TaskHistory::default();
            events.iter().for_each(|e| history.add(e));
            Burnup::build(&range(), &history)
                .assignees
                .into_iter()
                .map(|a| (a.assignee_id, a.daily[0].created, a.daily[0].completed))
                .collect::<Vec<_>>()
        };
        let mut events = history();
        let in_order = assignees(&events);
        events.reverse();
        assert_eq!(assignees(&events), in_order);
        assert_eq!(in_order, vec![(Some("u3".to_owned()), 1, 1)]);
    }
}
