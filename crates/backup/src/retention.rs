//! Which backups `backup prune --keep-*` keeps: restic's policies, as a
//! pure function of the backups, the policy and the time ([`decide`]).
//!
//! A backup is kept when any policy keeps it:
//! - `keep-last N`: the N newest backups;
//! - `keep-daily N`: the newest backup of each of the last N days that have
//!   backups (a day without one is skipped, not counted);
//! - `keep-weekly N`: the same per ISO 8601 week (Monday to Sunday; the
//!   week of 31 December can belong to the next year, as 30 December 2024
//!   is in 2025-W01);
//! - `keep-monthly N`, `keep-yearly N`: per calendar month, year.
//!
//! Days, weeks, months and years are in UTC, and a backup's time is the
//! one in its name (`2026-12-01T101010.123Z`), else its catalog's `created`.
//! Only complete backups count. Never removed, whatever the policy: the
//! newest complete backup, an upload (running, or left by a dead run: that
//! is `prune --partial`'s), a damaged backup (not counted either: it is
//! for a person to look at), a backup whose time is unknown or in the future
//! (more than a day after now: not counted by any policy either, nor taken
//! as the newest complete one, which is the newest of the rest).
//!
//! Chains: a backup that a kept one depends on (the parent of a kept
//! incremental backup, and its parent, back to the full backup) is kept
//! too, whatever the policies say (`parent of NAME`): removing it would
//! make the kept increment unrestorable.

use lifeboat_archive::target::State;
use serde::Serialize;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How many backups each policy keeps; 0: the policy is not used.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Policy {
    /// The N newest.
    pub last: u32,
    /// The newest of each of the last N days with backups.
    pub daily: u32,
    /// The newest of each of the last N ISO weeks with backups.
    pub weekly: u32,
    /// The newest of each of the last N months with backups.
    pub monthly: u32,
    /// The newest of each of the last N years with backups.
    pub yearly: u32,
}

impl Policy {
    /// The policy of the configuration (`[backup.retention]`).
    pub fn from_config(r: &lifeboat_config::Retention) -> Policy {
        let n = |v: Option<u32>| v.unwrap_or(0);
        Policy {
            last: n(r.keep_last),
            daily: n(r.keep_daily),
            weekly: n(r.keep_weekly),
            monthly: n(r.keep_monthly),
            yearly: n(r.keep_yearly),
        }
    }

    /// Whether no policy is set (then prune refuses rather than remove everything).
    pub fn is_empty(&self) -> bool {
        *self == Policy::default()
    }

    /// The policy as its options: `--keep-last 3 --keep-daily 7`.
    pub fn describe(&self) -> String {
        let parts: Vec<String> = [
            ("last", self.last),
            ("daily", self.daily),
            ("weekly", self.weekly),
            ("monthly", self.monthly),
            ("yearly", self.yearly),
        ]
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(k, n)| format!("--keep-{k} {n}"))
        .collect();
        parts.join(" ")
    }
}

/// One backup (or upload) to decide about.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// Its name on the target.
    pub name: String,
    /// What it is.
    pub state: State,
    /// When it was made (UTC); None when neither its name nor its catalog says.
    pub created: Option<SystemTime>,
    /// The backup it is an increment of (its catalog's `parent`); None for a full backup.
    pub parent: Option<String>,
}

/// What happens to a backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// It stays.
    Keep,
    /// It is deleted.
    Remove,
}

/// Why a backup is kept or removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "reason", content = "period")]
pub enum Reason {
    /// One of the `keep-last` newest.
    Last,
    /// The newest of its day (`2026-12-01`).
    Daily(String),
    /// The newest of its ISO week (`2026-W49`).
    Weekly(String),
    /// The newest of its month (`2026-12`).
    Monthly(String),
    /// The newest of its year (`2026`).
    Yearly(String),
    /// The newest complete backup, never removed.
    NewestComplete,
    /// An upload a live run is writing.
    Running,
    /// An upload a dead run left (`prune --partial` removes it).
    Interrupted,
    /// A damaged or incomplete backup: not counted, not removed.
    Damaged,
    /// Neither its name nor its catalog gives its time.
    UnknownTime,
    /// Dated after now (a wrong clock, then or now).
    InTheFuture,
    /// No policy keeps it.
    NoPolicy,
    /// A kept incremental backup depends on it (its parent, or further back in its chain).
    ParentOf(String),
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reason::Last => write!(f, "last"),
            Reason::Daily(p) => write!(f, "daily {p}"),
            Reason::Weekly(p) => write!(f, "weekly {p}"),
            Reason::Monthly(p) => write!(f, "monthly {p}"),
            Reason::Yearly(p) => write!(f, "yearly {p}"),
            Reason::NewestComplete => write!(f, "the newest complete backup"),
            Reason::Running => write!(f, "being written"),
            Reason::Interrupted => write!(f, "left by a dead run (prune --partial removes it)"),
            Reason::Damaged => {
                write!(f, "incomplete or damaged: not counted, not removed (look at it, delete it by hand)")
            }
            Reason::UnknownTime => write!(f, "its time is unknown"),
            Reason::InTheFuture => write!(f, "dated in the future (a wrong clock?)"),
            Reason::NoPolicy => write!(f, "no policy keeps it"),
            Reason::ParentOf(child) => write!(f, "parent of {child}"),
        }
    }
}

/// The decision about one backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// The backup's name.
    pub name: String,
    /// Keep or remove.
    pub action: Action,
    /// Why (every policy that keeps it).
    pub reasons: Vec<Reason>,
}

/// A day in UTC: (year, month, day).
fn civil(days: i64) -> (i64, u32, u32) {
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Days since 1970-01-01 (UTC) of a time, before 1970 negative.
fn day_number(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => (d.as_secs() / 86_400) as i64,
        Err(e) => -(e.duration().as_secs().div_ceil(86_400) as i64),
    }
}

/// Days since 1970-01-01 of a day (year, month, day).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    // Howard Hinnant's days_from_civil.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The ISO 8601 week of a day: (ISO year, week 1-53). The week (Monday to
/// Sunday) belongs to the year of its Thursday.
fn iso_week(days: i64) -> (i64, u32) {
    let weekday = (days + 3).rem_euclid(7) + 1; // 1970-01-01 was a Thursday; Monday = 1
    let thursday = days - weekday + 4;
    let (year, _, _) = civil(thursday);
    (year, ((thursday - days_from_civil(year, 1, 1)) / 7 + 1) as u32)
}

/// The period keys of a time: day, ISO week, month, year.
fn periods(t: SystemTime) -> [String; 4] {
    let days = day_number(t);
    let (y, m, d) = civil(days);
    let (wy, w) = iso_week(days);
    [format!("{y:04}-{m:02}-{d:02}"), format!("{wy:04}-W{w:02}"), format!("{y:04}-{m:02}"), format!("{y:04}")]
}

/// A backup's time from its name (`2026-12-01T101010.123Z`, as backups are named), in UTC.
pub fn time_of_name(name: &str) -> Option<SystemTime> {
    let b = name.as_bytes();
    if b.len() < 18 || b.get(10) != Some(&b'T') || !name.is_ascii() {
        return None;
    }
    let with_colons = format!("{}:{}:{}", &name[..13], &name[13..15], &name[15..]);
    humantime::parse_rfc3339(&with_colons).ok()
}

/// A catalog's `created` (RFC 3339, UTC).
pub fn time_of_created(created: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339_weak(created.trim_end_matches('Z')).ok()
}

/// Keep what every backup that is kept depends on: its parent, that one's
/// parent, and so on (a loop or a parent that is not listed ends the walk).
fn keep_parents(backups: &[Candidate], reasons: &mut [Vec<Reason>]) {
    let by_name: std::collections::HashMap<&str, usize> =
        backups.iter().enumerate().map(|(i, b)| (b.name.as_str(), i)).collect();
    let kept = |i: usize, reasons: &[Vec<Reason>]| !reasons[i].is_empty() || backups[i].state != State::Complete;
    for i in 0..backups.len() {
        if !kept(i, reasons) {
            continue;
        }
        let mut seen = std::collections::HashSet::from([i]);
        let mut at = i;
        while let Some(p) = backups[at].parent.as_deref().and_then(|p| by_name.get(p).copied()) {
            if !seen.insert(p) {
                break;
            }
            let why = Reason::ParentOf(backups[at].name.clone());
            if !reasons[p].contains(&why) {
                reasons[p].push(why);
            }
            at = p;
        }
    }
}

/// Decide, for every backup and upload of one host, whether `policy` keeps
/// or removes it, and why (see the module's rules). The result is in the
/// order of `backups`. A backup dated more than a day after `now` is kept.
pub fn decide(backups: &[Candidate], policy: &Policy, now: SystemTime) -> Vec<Decision> {
    let mut reasons: Vec<Vec<Reason>> = vec![Vec::new(); backups.len()];
    let future = now + Duration::from_secs(86_400);
    // Complete backups with a time not in the future, newest first: the ones the policies count
    // (a backup dated in the future is kept as such, and never takes the newest one's place).
    let mut counted: Vec<(usize, SystemTime)> = backups
        .iter()
        .enumerate()
        .filter(|(_, b)| b.state == State::Complete)
        .filter_map(|(i, b)| b.created.map(|t| (i, t)))
        .filter(|(_, t)| *t <= future)
        .collect();
    counted.sort_by(|a, b| b.1.cmp(&a.1).then(b.0.cmp(&a.0)));
    if let Some((newest, _)) = counted.first() {
        reasons[*newest].push(Reason::NewestComplete);
    }
    let mut last = policy.last;
    // Per period kind (day, week, month, year): how many may still be kept, and the last period kept.
    let mut left = [policy.daily, policy.weekly, policy.monthly, policy.yearly];
    let mut seen: [Option<String>; 4] = Default::default();
    for (i, t) in &counted {
        if last > 0 {
            last -= 1;
            reasons[*i].push(Reason::Last);
        }
        for (k, period) in periods(*t).into_iter().enumerate() {
            if left[k] == 0 || seen[k].as_deref() == Some(period.as_str()) {
                continue;
            }
            left[k] -= 1;
            seen[k] = Some(period.clone());
            reasons[*i].push(match k {
                0 => Reason::Daily(period),
                1 => Reason::Weekly(period),
                2 => Reason::Monthly(period),
                _ => Reason::Yearly(period),
            });
        }
    }
    keep_parents(backups, &mut reasons);
    backups
        .iter()
        .zip(reasons)
        .map(|(b, mut why)| {
            match &b.state {
                State::Running => why.push(Reason::Running),
                State::Interrupted => why.push(Reason::Interrupted),
                State::Damaged(_) => why.push(Reason::Damaged),
                State::Complete if b.created.is_none() => why.push(Reason::UnknownTime),
                State::Complete if b.created.is_some_and(|t| t > future) => why.push(Reason::InTheFuture),
                State::Complete => {}
            }
            let action = if why.is_empty() {
                why.push(Reason::NoPolicy);
                Action::Remove
            } else {
                Action::Keep
            };
            Decision { name: b.name.clone(), action, reasons: why }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> SystemTime {
        humantime::parse_rfc3339(s).expect("time")
    }

    /// A complete backup named for a time given as `2026-12-01 10:00`.
    fn b(when: &str) -> Candidate {
        let t = at(&format!("{}:00Z", when.replace(' ', "T")));
        let name = humantime::format_rfc3339_millis(t).to_string().replace(':', "");
        Candidate { name, state: State::Complete, created: Some(t), parent: None }
    }

    #[test]
    fn a_backup_dated_in_the_future_is_kept_but_never_counted_nor_the_newest() {
        let backups = [b("2026-11-30 10:00"), b("2026-12-01 10:00"), b("2027-06-01 10:00")];
        let policy = Policy { last: 1, ..Policy::default() };
        let d = decide(&backups, &policy, at("2026-12-02T10:00:00Z"));
        assert_eq!(d[0].action, Action::Remove, "{:?}", d[0]);
        assert_eq!(d[1].action, Action::Keep);
        assert!(d[1].reasons.contains(&Reason::NewestComplete) && d[1].reasons.contains(&Reason::Last), "{:?}", d[1]);
        assert_eq!(d[2].action, Action::Keep);
        assert_eq!(d[2].reasons, vec![Reason::InTheFuture], "kept only as dated in the future");
    }

    fn kept(backups: &[Candidate], policy: Policy) -> Vec<String> {
        decide(backups, &policy, at("2030-01-01T00:00:00Z"))
            .into_iter()
            .filter(|d| d.action == Action::Keep)
            .map(|d| d.name[..16].to_string())
            .collect()
    }

    fn day(s: &str) -> String {
        s.to_string()
    }

    #[test]
    fn names_and_catalog_times_parse_in_utc() {
        assert_eq!(time_of_name("2026-12-01T101010.123Z"), Some(at("2026-12-01T10:10:10.123Z")));
        assert_eq!(time_of_name("2026-12-01T101010Z"), Some(at("2026-12-01T10:10:10Z")));
        assert_eq!(time_of_name("nightly"), None);
        assert_eq!(time_of_name("2026-12-01T101010.123Z.partial"), None);
        assert_eq!(time_of_created("2026-12-01T10:10:10Z"), Some(at("2026-12-01T10:10:10Z")));
    }

    #[test]
    fn iso_weeks_cross_year_boundaries_as_iso_8601_says() {
        let w = |s: &str| {
            let p = periods(at(&format!("{s}T12:00:00Z")));
            p[1].clone()
        };
        assert_eq!(w("2024-12-29"), "2024-W52"); // a Sunday
        assert_eq!(w("2024-12-30"), "2025-W01"); // Monday of the week holding 2 January
        assert_eq!(w("2021-01-03"), "2020-W53");
        assert_eq!(w("2021-01-04"), "2021-W01");
        assert_eq!(w("2026-12-02"), "2026-W49");
        assert_eq!(iso_week(-1), (1970, 1), "1969-12-31, a Wednesday");
        assert_eq!(civil(-1), (1969, 12, 31));
        assert_eq!(periods(at("2024-02-29T00:00:00Z"))[0], "2024-02-29");
        for x in [-800_000, -1, 0, 1, 19_000, 20_819, 3_000_000] {
            let (y, m, d) = civil(x);
            assert_eq!(days_from_civil(y, m, d), x, "{y}-{m}-{d}");
        }
    }

    #[test]
    fn keep_last_keeps_the_n_newest() {
        let all: Vec<_> =
            ["2026-12-01 10:00", "2026-12-01 11:00", "2026-12-02 10:00", "2026-12-03 10:00", "2026-12-04 10:00"]
                .iter()
                .map(|s| b(s))
                .collect();
        let policy = Policy { last: 3, ..Policy::default() };
        assert_eq!(kept(&all, policy), ["2026-12-02T10000", "2026-12-03T10000", "2026-12-04T10000"]);
        let d = decide(&all, &policy, at("2030-01-01T00:00:00Z"));
        assert_eq!(d[0].reasons, [Reason::NoPolicy]);
        assert_eq!(d[4].reasons, [Reason::NewestComplete, Reason::Last]);
        assert_eq!(d.len(), 5, "one decision per backup, in the given order");
        assert_eq!(d[0].name, all[0].name);
    }

    #[test]
    fn keep_daily_counts_days_with_backups_and_skips_the_gaps() {
        // Days 1, 2, 3, 5, 8, 9, 10, 11 have backups (two on day 10); 4, 6 and 7 have none.
        let all: Vec<_> = [
            "2026-12-01 01:00",
            "2026-12-02 01:00",
            "2026-12-03 01:00",
            "2026-12-05 01:00",
            "2026-12-08 01:00",
            "2026-12-09 01:00",
            "2026-12-10 01:00",
            "2026-12-10 23:00",
            "2026-12-11 01:00",
        ]
        .iter()
        .map(|s| b(s))
        .collect();
        let k = kept(&all, Policy { daily: 7, ..Policy::default() });
        assert_eq!(
            k,
            [
                "2026-12-02T01000",
                "2026-12-03T01000",
                "2026-12-05T01000",
                "2026-12-08T01000",
                "2026-12-09T01000",
                "2026-12-10T23000",
                "2026-12-11T01000"
            ]
        );
        let d = decide(&all, &Policy { daily: 7, ..Policy::default() }, at("2030-01-01T00:00:00Z"));
        assert_eq!(d[7].reasons, [Reason::Daily(day("2026-12-10"))], "the newest of its day");
        assert_eq!(d[6].action, Action::Remove, "an older one of the same day goes");
    }

    #[test]
    fn keep_weekly_uses_iso_weeks_across_the_year_boundary() {
        // 2024-12-29 is in 2024-W52; 2024-12-30 and 2025-01-02 are both in 2025-W01.
        let all: Vec<_> = ["2024-12-22 12:00", "2024-12-29 12:00", "2024-12-30 12:00", "2025-01-02 12:00"]
            .iter()
            .map(|s| b(s))
            .collect();
        let policy = Policy { weekly: 2, ..Policy::default() };
        assert_eq!(kept(&all, policy), ["2024-12-29T12000", "2025-01-02T12000"]);
        let d = decide(&all, &policy, at("2030-01-01T00:00:00Z"));
        assert_eq!(d[3].reasons, [Reason::NewestComplete, Reason::Weekly("2025-W01".into())]);
        assert_eq!(d[1].reasons, [Reason::Weekly("2024-W52".into())]);
        assert_eq!(d[2].action, Action::Remove, "2024-12-30 shares 2025-W01 with a newer one");
    }

    #[test]
    fn keep_monthly_and_yearly_keep_the_newest_of_each() {
        let all: Vec<_> =
            ["2025-11-30 12:00", "2025-12-01 12:00", "2025-12-31 12:00", "2026-01-15 12:00", "2026-02-01 12:00"]
                .iter()
                .map(|s| b(s))
                .collect();
        assert_eq!(
            kept(&all, Policy { monthly: 3, ..Policy::default() }),
            ["2025-12-31T12000", "2026-01-15T12000", "2026-02-01T12000"]
        );
        assert_eq!(kept(&all, Policy { yearly: 5, ..Policy::default() }), ["2025-12-31T12000", "2026-02-01T12000"]);
    }

    #[test]
    fn combined_policies_keep_what_any_of_them_keeps() {
        // restic's example shape: hourly-ish backups over weeks, last 2 + daily 3 + weekly 2 + monthly 2.
        let mut all = vec![b("2026-10-15 08:00")];
        for d in 1..=20 {
            all.push(b(&format!("2026-11-{d:02} 08:00")));
            all.push(b(&format!("2026-11-{d:02} 20:00")));
        }
        let policy = Policy { last: 2, daily: 3, weekly: 2, monthly: 2, ..Policy::default() };
        let k = kept(&all, policy);
        assert_eq!(
            k,
            [
                "2026-10-15T08000", // monthly 2026-10
                "2026-11-15T20000", // weekly 2026-W46 (Sunday 15 November)
                "2026-11-18T20000", // daily
                "2026-11-19T20000", // daily
                "2026-11-20T08000", // last
                "2026-11-20T20000", // last, daily, weekly 2026-W47, monthly 2026-11
            ]
        );
        let d = decide(&all, &policy, at("2030-01-01T00:00:00Z"));
        let newest = d.last().expect("newest");
        assert_eq!(
            newest.reasons,
            [
                Reason::NewestComplete,
                Reason::Last,
                Reason::Daily("2026-11-20".into()),
                Reason::Weekly("2026-W47".into()),
                Reason::Monthly("2026-11".into())
            ]
        );
    }

    #[test]
    fn uploads_damaged_and_undated_backups_are_never_removed_nor_counted() {
        let mut all: Vec<_> = ["2026-12-01 10:00", "2026-12-02 10:00"].iter().map(|s| b(s)).collect();
        let mut damaged = b("2026-12-03 10:00");
        damaged.state = State::Damaged("no backup.json".into());
        let mut running = b("2026-12-04 10:00");
        running.name.push_str(".partial");
        running.state = State::Running;
        let mut dead = b("2026-12-04 11:00");
        dead.name.push_str(".partial");
        dead.state = State::Interrupted;
        let undated = Candidate { name: "nightly".into(), state: State::Complete, created: None, parent: None };
        all.extend([damaged, running, dead, undated]);
        let d = decide(&all, &Policy { last: 1, ..Policy::default() }, at("2030-01-01T00:00:00Z"));
        let actions: Vec<Action> = d.iter().map(|d| d.action).collect();
        use Action::{Keep, Remove};
        assert_eq!(actions, [Remove, Keep, Keep, Keep, Keep, Keep]);
        assert_eq!(d[1].reasons, [Reason::NewestComplete, Reason::Last], "the damaged newer one does not count");
        assert_eq!(d[2].reasons, [Reason::Damaged]);
        assert_eq!(d[3].reasons, [Reason::Running]);
        assert_eq!(d[4].reasons, [Reason::Interrupted]);
        assert_eq!(d[5].reasons, [Reason::UnknownTime]);
    }

    #[test]
    fn the_newest_complete_backup_stays_and_future_dates_are_kept() {
        let all: Vec<_> = ["2026-12-01 10:00", "2026-12-02 10:00", "2031-01-01 10:00"].iter().map(|s| b(s)).collect();
        let d = decide(&all, &Policy { yearly: 2, ..Policy::default() }, at("2030-01-01T00:00:00Z"));
        assert_eq!(d[2].reasons, [Reason::InTheFuture], "not counted, nor the newest");
        assert_eq!(d[1].reasons, [Reason::NewestComplete, Reason::Yearly("2026".into())]);
        assert_eq!(d[0].action, Action::Remove);
        assert!(Policy::default().is_empty() && !Policy { weekly: 1, ..Policy::default() }.is_empty());
        assert_eq!(Policy { last: 3, daily: 7, ..Policy::default() }.describe(), "--keep-last 3 --keep-daily 7");
    }

    #[test]
    fn a_backup_a_kept_increment_depends_on_is_kept_back_to_its_full_backup() {
        let mut backups =
            vec![b("2026-11-01 10:00"), b("2026-11-02 10:00"), b("2026-11-03 10:00"), b("2026-11-04 10:00")];
        // 0 full, 1 and 2 increments of it in a chain, 3 a new full backup.
        backups[1].parent = Some(backups[0].name.clone());
        backups[2].parent = Some(backups[1].name.clone());
        let d = decide(&backups, &Policy { last: 2, ..Policy::default() }, at("2026-12-01T00:00:00Z"));
        assert_eq!(d.iter().map(|d| d.action).collect::<Vec<_>>(), [Action::Keep; 4], "{d:?}");
        assert_eq!(d[1].reasons, vec![Reason::ParentOf(backups[2].name.clone())]);
        assert_eq!(d[0].reasons, vec![Reason::ParentOf(backups[1].name.clone())]);
        assert_eq!(d[0].reasons[0].to_string(), format!("parent of {}", backups[1].name));
        // Only the new full backup kept: the old chain goes whole.
        let d = decide(&backups, &Policy { last: 1, ..Policy::default() }, at("2026-12-01T00:00:00Z"));
        assert_eq!(
            d.iter().map(|d| d.action).collect::<Vec<_>>(),
            [Action::Remove, Action::Remove, Action::Remove, Action::Keep]
        );
        // A loop in crafted catalogs ends the walk.
        backups[0].parent = Some(backups[2].name.clone());
        let d = decide(&backups, &Policy { last: 2, ..Policy::default() }, at("2026-12-01T00:00:00Z"));
        assert!(d.iter().all(|d| d.action == Action::Keep), "{d:?}");
    }
}
