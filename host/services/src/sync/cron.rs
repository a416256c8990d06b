//! Sync schedules: a fixed interval or a cron expression, both in UTC.
//!
//! A [`Schedule`] is either [`Schedule::Every`] (a fixed interval of at least
//! [`MIN_INTERVAL_SECS`] second) or [`Schedule::Cron`] (a [`CronExpr`]). [`Schedule::parse`]
//! builds one from the two optional settings a sync stores (`interval_secs`, `cron`), exactly one
//! of which must be given.
//!
//! [`CronExpr`] is the standard five-field Vixie cron syntax, evaluated in UTC:
//!
//! ```text
//! minute (0-59)  hour (0-23)  day-of-month (1-31)  month (1-12 or JAN-DEC)  day-of-week (0-7 or SUN-SAT)
//! ```
//!
//! Every field is a comma-separated list of `*`, a value `5`, a range `1-5`, or either with a step
//! (`*/15`, `10-40/5`; `5/15` means `5-59/15`). Month and day names are three letters,
//! case-insensitive; both 0 and 7 are Sunday. As in Vixie cron, when both day-of-month and
//! day-of-week are restricted (their text does not start with `*`), a day matches if **either**
//! matches; otherwise both must. The macros `@yearly` (`@annually`), `@monthly`, `@weekly`,
//! `@daily` (`@midnight`) and `@hourly` are accepted; `@reboot` is not.
//!
//! [`CronExpr::next_after`] finds the first matching minute strictly after an instant. It skips
//! whole months, days and hours that cannot match, and looks at most 400 years ahead — one full
//! cycle of the Gregorian calendar — so `None` means the expression can never match (such as
//! `0 0 30 2 *`, February 30); [`Schedule::parse`] refuses those expressions.
//!
//! The module also holds the civil-calendar arithmetic (days from and to a proleptic Gregorian
//! date) that [`super::mapping`] uses for its date transforms.

pub(crate) use patchbay_core::timefmt::{civil_from_days, days_from_civil};
use std::fmt;
use std::str::FromStr;

/// Shortest interval [`Schedule::parse`] accepts, in seconds.
pub(crate) const MIN_INTERVAL_SECS: u64 = 1;

/// How many years [`CronExpr::next_after`] looks ahead: the Gregorian calendar repeats every 400
/// years, so an expression that matches nothing in that span never matches.
const SEARCH_YEARS: i64 = 401;

const MINUTE_MS: i64 = 60_000;

/// When a sync runs: a fixed interval or a cron expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Schedule {
    /// Every `secs` seconds after the previous run (at least [`MIN_INTERVAL_SECS`]).
    Every {
        /// The interval in seconds.
        secs: u64,
    },
    /// At the minutes a cron expression matches (UTC).
    Cron(CronExpr),
}

/// The longest interval between runs: a year (a longer one is a typo, not a schedule).
pub(crate) const MAX_INTERVAL_SECS: u64 = 366 * 86_400;

impl Schedule {
    /// Builds a schedule from the two settings a sync stores; exactly one must be given.
    ///
    /// An interval must be at least [`MIN_INTERVAL_SECS`]; a cron expression must parse and be
    /// able to match at least once (`0 0 30 2 *` is refused).
    pub(crate) fn parse(interval_secs: Option<u64>, cron: Option<&str>) -> Result<Schedule, String> {
        match (interval_secs, cron) {
            (Some(_), Some(_)) => Err("give either interval_secs or cron, not both".to_owned()),
            (None, None) => Err("give either interval_secs or cron".to_owned()),
            (Some(secs), None) if secs < MIN_INTERVAL_SECS => {
                Err(format!("interval_secs must be at least {MIN_INTERVAL_SECS}"))
            }
            (Some(secs), None) if secs > MAX_INTERVAL_SECS => {
                Err(format!("interval_secs must be at most {MAX_INTERVAL_SECS} (one year)"))
            }
            (Some(secs), None) => Ok(Schedule::Every { secs }),
            (None, Some(text)) => {
                let expr: CronExpr = text.parse().map_err(|e| format!("cron: {e}"))?;
                if !expr.is_satisfiable() {
                    return Err(format!("cron: \"{expr}\" never matches: no month has such a day"));
                }
                Ok(Schedule::Cron(expr))
            }
        }
    }

    /// The next run strictly after `unix_ms`.
    ///
    /// For an interval that is `unix_ms` plus the interval (pass the previous run's start to keep
    /// a steady cadence); for a cron expression the first matching minute after `unix_ms`. A cron
    /// expression that never matches (only possible when built without [`Schedule::parse`])
    /// gives `i64::MAX`, as does an interval that would overflow.
    pub(crate) fn next_after(&self, unix_ms: i64) -> i64 {
        match self {
            Schedule::Every { secs } => {
                let step = i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX);
                unix_ms.saturating_add(step)
            }
            Schedule::Cron(expr) => expr.next_after(unix_ms).unwrap_or(i64::MAX),
        }
    }

    /// The interval in seconds, for [`Schedule::Every`].
    #[cfg(test)]
    pub(crate) fn interval_secs(&self) -> Option<u64> {
        match self {
            Schedule::Every { secs } => Some(*secs),
            Schedule::Cron(_) => None,
        }
    }

    /// The cron expression, for [`Schedule::Cron`].
    pub(crate) fn cron(&self) -> Option<&CronExpr> {
        match self {
            Schedule::Every { .. } => None,
            Schedule::Cron(expr) => Some(expr),
        }
    }
}

impl fmt::Display for Schedule {
    /// `every 300s`, or the normalized cron text (see [`CronExpr`]'s `Display`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Schedule::Every { secs } => write!(f, "every {secs}s"),
            Schedule::Cron(expr) => fmt::Display::fmt(expr, f),
        }
    }
}

/// A cron expression problem; `field` names the offending field when there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CronError {
    /// `minute`, `hour`, `day-of-month`, `month` or `day-of-week`.
    pub field: Option<&'static str>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for CronError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.field {
            Some(field) => write!(f, "{field}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for CronError {}

/// A parsed five-field cron expression (UTC); see the [module docs](self) for the syntax.
///
/// `Display` gives the normalized text: the five fields separated by single spaces with names in
/// upper case (`0 9 * * MON-FRI`), or the canonical macro (`@yearly` for `@annually`, `@daily`
/// for `@midnight`). The normalized text parses back to the same expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CronExpr {
    text: String,
    /// Bit n set: minute n matches.
    minutes: u64,
    /// Bit n set: hour n matches.
    hours: u32,
    /// Bit n set: day of month n (1-31) matches.
    days_of_month: u32,
    /// Bit n set: month n (1-12) matches.
    months: u16,
    /// Bit n set: weekday n (0 = Sunday … 6 = Saturday) matches.
    days_of_week: u8,
    /// The day-of-month field starts with `*` (unrestricted, in Vixie's sense).
    dom_star: bool,
    /// The day-of-week field starts with `*`.
    dow_star: bool,
}

struct FieldSpec {
    name: &'static str,
    min: u32,
    max: u32,
    /// Names of the values `min..`, if the field has names.
    names: &'static [&'static str],
    names_hint: &'static str,
}

const MINUTE: FieldSpec = FieldSpec { name: "minute", min: 0, max: 59, names: &[], names_hint: "" };
const HOUR: FieldSpec = FieldSpec { name: "hour", min: 0, max: 23, names: &[], names_hint: "" };
const DAY_OF_MONTH: FieldSpec = FieldSpec { name: "day-of-month", min: 1, max: 31, names: &[], names_hint: "" };
const MONTH: FieldSpec = FieldSpec {
    name: "month",
    min: 1,
    max: 12,
    names: &["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"],
    names_hint: " or month name (JAN-DEC)",
};
const DAY_OF_WEEK: FieldSpec = FieldSpec {
    name: "day-of-week",
    min: 0,
    max: 7,
    names: &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"],
    names_hint: " or day name (SUN-SAT)",
};

impl FieldSpec {
    fn err(&self, message: impl Into<String>) -> CronError {
        CronError { field: Some(self.name), message: message.into() }
    }

    fn value(&self, text: &str, element: &str) -> Result<u32, CronError> {
        if text.is_empty() {
            return Err(self.err(format!("\"{element}\" is missing a value")));
        }
        if text.bytes().all(|b| b.is_ascii_digit()) {
            let n: u32 =
                text.parse().map_err(|_| self.err(format!("{text} is out of range {}-{}", self.min, self.max)))?;
            if n < self.min || n > self.max {
                return Err(self.err(format!("{n} is out of range {}-{}", self.min, self.max)));
            }
            return Ok(n);
        }
        if let Some(i) = self.names.iter().position(|name| name.eq_ignore_ascii_case(text)) {
            // `i` is below 12, so the cast is exact.
            return Ok(self.min + i as u32);
        }
        Err(self.err(format!("\"{text}\" is not a number{}", self.names_hint)))
    }

    /// Parses one field into a bit set (bit n = value n).
    fn parse(&self, text: &str) -> Result<u64, CronError> {
        let mut bits = 0u64;
        for element in text.split(',') {
            if element.is_empty() {
                return Err(self.err(format!("empty element in list \"{text}\"")));
            }
            let (base, step) = match element.split_once('/') {
                Some((base, step_text)) => {
                    if !step_text.bytes().all(|b| b.is_ascii_digit()) || step_text.is_empty() {
                        return Err(self.err(format!("step \"{step_text}\" in \"{element}\" is not a number")));
                    }
                    let span = self.max - self.min + 1;
                    let step: u32 = step_text.parse().unwrap_or(u32::MAX);
                    if step == 0 {
                        return Err(self.err(format!("step 0 in \"{element}\"")));
                    }
                    if step > span {
                        return Err(self.err(format!(
                            "step {step} in \"{element}\" is larger than the range {}-{}",
                            self.min, self.max
                        )));
                    }
                    (base, Some(step))
                }
                None => (element, None),
            };
            let (lo, hi) = if base == "*" {
                (self.min, self.max)
            } else if let Some((a, b)) = base.split_once('-') {
                let (lo, hi) = (self.value(a, element)?, self.value(b, element)?);
                if lo > hi {
                    return Err(self.err(format!("range \"{base}\" goes backwards")));
                }
                (lo, hi)
            } else {
                let v = self.value(base, element)?;
                // `5/15` means `5-max/15`.
                if step.is_some() { (v, self.max) } else { (v, v) }
            };
            let step = step.unwrap_or(1) as usize;
            for v in (lo..=hi).step_by(step) {
                bits |= 1 << v;
            }
        }
        Ok(bits)
    }

    /// The field's text, normalized: names in upper case.
    fn normalize(&self, text: &str) -> String {
        if self.names.is_empty() { text.to_owned() } else { text.to_ascii_uppercase() }
    }
}

const MACROS: &[(&str, &str, &str)] = &[
    ("@yearly", "@yearly", "0 0 1 1 *"),
    ("@annually", "@yearly", "0 0 1 1 *"),
    ("@monthly", "@monthly", "0 0 1 * *"),
    ("@weekly", "@weekly", "0 0 * * 0"),
    ("@daily", "@daily", "0 0 * * *"),
    ("@midnight", "@daily", "0 0 * * *"),
    ("@hourly", "@hourly", "0 * * * *"),
];

impl FromStr for CronExpr {
    type Err = CronError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let general = |message: String| CronError { field: None, message };
        if s.starts_with('@') {
            let lower = s.to_ascii_lowercase();
            if lower == "@reboot" {
                return Err(general("@reboot is not supported".to_owned()));
            }
            let Some((_, canonical, expansion)) = MACROS.iter().find(|(name, _, _)| *name == lower) else {
                return Err(general(format!(
                    "unknown macro \"{s}\"; expected one of @yearly, @annually, @monthly, @weekly, @daily, \
                     @midnight, @hourly"
                )));
            };
            let mut expr = Self::from_fields(expansion)?;
            expr.text = (*canonical).to_owned();
            return Ok(expr);
        }
        Self::from_fields(s)
    }
}

impl CronExpr {
    fn from_fields(s: &str) -> Result<Self, CronError> {
        let fields: Vec<&str> = s.split_whitespace().collect();
        let [minute, hour, dom, month, dow] = fields[..] else {
            let hint = if fields.len() == 6 { "; seconds and years are not supported" } else { "" };
            return Err(CronError {
                field: None,
                message: format!(
                    "expected 5 fields (minute hour day-of-month month day-of-week), got {}{hint}",
                    fields.len()
                ),
            });
        };
        let dows = DAY_OF_WEEK.parse(dow)?;
        // Fold 7 (Sunday) into 0; the masks below keep every value within its field's width.
        let days_of_week = ((dows | (dows >> 7)) & 0x7f) as u8;
        let text = [(&MINUTE, minute), (&HOUR, hour), (&DAY_OF_MONTH, dom), (&MONTH, month), (&DAY_OF_WEEK, dow)]
            .iter()
            .map(|(spec, text)| spec.normalize(text))
            .collect::<Vec<_>>()
            .join(" ");
        Ok(CronExpr {
            minutes: MINUTE.parse(minute)?,
            hours: (HOUR.parse(hour)? & 0xff_ffff) as u32,
            days_of_month: (DAY_OF_MONTH.parse(dom)? & 0xffff_fffe) as u32,
            months: (MONTH.parse(month)? & 0x1ffe) as u16,
            days_of_week,
            dom_star: dom.starts_with('*'),
            dow_star: dow.starts_with('*'),
            text,
        })
    }

    /// The normalized text (the same as `Display`).
    pub(crate) fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the expression matches at least one minute (it does not for `0 0 30 2 *`).
    pub(crate) fn is_satisfiable(&self) -> bool {
        // The search covers a whole 400-year cycle of the calendar, so any start will do.
        self.next_after(0).is_some()
    }

    /// The first minute strictly after `unix_ms` that the expression matches, as unix
    /// milliseconds; `None` if it never matches (see the [module docs](self)).
    pub(crate) fn next_after(&self, unix_ms: i64) -> Option<i64> {
        let start = unix_ms.div_euclid(MINUTE_MS).checked_add(1)?;
        let (mut y, mut m, mut d) = civil_from_days(start.div_euclid(1440));
        let minute_of_day = start.rem_euclid(1440);
        let (mut h, mut mi) = (minute_of_day / 60, minute_of_day % 60);
        let last_year = y.checked_add(SEARCH_YEARS)?;
        // Only day-of-month constrains the day when day-of-week allows every day and must also hold.
        let dom_only = (self.dom_star || self.dow_star) && self.days_of_week == 0x7f;
        loop {
            if y > last_year {
                return None;
            }
            // Month.
            if self.months & (1 << m) == 0 {
                match next_bit(u64::from(self.months), m + 1, 12) {
                    Some(next) => m = next,
                    None => {
                        y += 1;
                        m = next_bit(u64::from(self.months), 1, 12)?;
                    }
                }
                (d, h, mi) = (1, 0, 0);
                continue;
            }
            // Day.
            let month_len = days_in_month(y, m);
            if dom_only {
                match next_bit(u64::from(self.days_of_month), d, month_len) {
                    Some(next) if next != d => (d, h, mi) = (next, 0, 0),
                    Some(_) => {}
                    None => d = month_len + 1,
                }
            }
            if d > month_len {
                (d, h, mi) = (1, 0, 0);
                if m == 12 {
                    (y, m) = (y + 1, 1);
                } else {
                    m += 1;
                }
                continue;
            }
            if !dom_only && !self.day_matches(y, m, d) {
                (d, h, mi) = (d + 1, 0, 0);
                continue;
            }
            // Hour.
            match next_bit(u64::from(self.hours), h, 23) {
                None => {
                    (d, h, mi) = (d + 1, 0, 0);
                    continue;
                }
                Some(next) if next != h => (h, mi) = (next, 0),
                Some(_) => {}
            }
            // Minute.
            match next_bit(self.minutes, mi, 59) {
                None => {
                    (h, mi) = (h + 1, 0);
                    continue;
                }
                Some(next) => mi = next,
            }
            let minutes = days_from_civil(y, m, d).checked_mul(1440)?.checked_add(h * 60 + mi)?;
            return minutes.checked_mul(MINUTE_MS);
        }
    }

    fn day_matches(&self, y: i64, m: i64, d: i64) -> bool {
        let dom = self.days_of_month & (1 << d) != 0;
        let dow = self.days_of_week & (1 << weekday(days_from_civil(y, m, d))) != 0;
        if self.dom_star || self.dow_star { dom && dow } else { dom || dow }
    }
}

impl fmt::Display for CronExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// The lowest set bit of `bits` in `from..=max`.
fn next_bit(bits: u64, from: i64, max: i64) -> Option<i64> {
    if from > max || !(0..64).contains(&from) {
        return None;
    }
    let rest = bits >> from;
    if rest == 0 {
        return None;
    }
    let n = from + i64::from(rest.trailing_zeros());
    (n <= max).then_some(n)
}

// Civil calendar (proleptic Gregorian), after Howard Hinnant's algorithms.

/// Whether `y` is a leap year.
pub(crate) fn is_leap_year(y: i64) -> bool {
    y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
}

/// The number of days in month `m` (1-12) of year `y`.
pub(crate) fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap_year(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// The weekday (0 = Sunday) of a number of days since 1970-01-01 (a Thursday).
fn weekday(days: i64) -> i64 {
    (days + 4).rem_euclid(7)
}

#[cfg(test)]
mod tests {
    use super::*;
    use patchbay_core::timefmt::{parse_rfc3339, rfc3339};

    fn at(s: &str) -> i64 {
        parse_rfc3339(s).unwrap_or_else(|| panic!("bad test timestamp {s}"))
    }

    fn expr(s: &str) -> CronExpr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    /// The next `n` runs of `cron` after `after`, as RFC 3339 text.
    fn runs(cron: &str, after: &str, n: usize) -> Vec<String> {
        let e = expr(cron);
        let mut t = at(after);
        let mut out = Vec::new();
        for _ in 0..n {
            match e.next_after(t) {
                Some(next) => {
                    assert!(next > t, "{cron}: {} is not after {}", rfc3339(next), rfc3339(t));
                    out.push(rfc3339(next));
                    t = next;
                }
                None => break,
            }
        }
        out
    }

    fn next(cron: &str, after: &str) -> Option<String> {
        expr(cron).next_after(at(after)).map(rfc3339)
    }

    fn parse_err(s: &str) -> String {
        match s.parse::<CronExpr>() {
            Ok(e) => panic!("{s} parsed as {e:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn every_fifteen_minutes() {
        assert_eq!(
            runs("*/15 * * * *", "2024-01-01T00:07:30Z", 5),
            [
                "2024-01-01T00:15:00.000Z",
                "2024-01-01T00:30:00.000Z",
                "2024-01-01T00:45:00.000Z",
                "2024-01-01T01:00:00.000Z",
                "2024-01-01T01:15:00.000Z"
            ]
        );
        // Strictly after: a matching instant itself is not returned.
        assert_eq!(next("*/15 * * * *", "2024-01-01T00:15:00Z").as_deref(), Some("2024-01-01T00:30:00.000Z"));
        assert_eq!(next("*/15 * * * *", "2024-01-01T00:14:59.999Z").as_deref(), Some("2024-01-01T00:15:00.000Z"));
        assert_eq!(next("* * * * *", "2024-01-01T12:00:30Z").as_deref(), Some("2024-01-01T12:01:00.000Z"));
        assert_eq!(runs("10-40/15 * * * *", "2024-01-01T00:00:00Z", 4).len(), 4);
        assert_eq!(
            runs("10-40/15 * * * *", "2024-01-01T00:00:00Z", 4),
            [
                "2024-01-01T00:10:00.000Z",
                "2024-01-01T00:25:00.000Z",
                "2024-01-01T00:40:00.000Z",
                "2024-01-01T01:10:00.000Z"
            ]
        );
        assert_eq!(
            runs("5/20 * * * *", "2024-01-01T00:00:00Z", 4),
            [
                "2024-01-01T00:05:00.000Z",
                "2024-01-01T00:25:00.000Z",
                "2024-01-01T00:45:00.000Z",
                "2024-01-01T01:05:00.000Z"
            ]
        );
        assert_eq!(
            runs("0,30 1,2 * * *", "2024-01-01T01:45:00Z", 3),
            ["2024-01-01T02:00:00.000Z", "2024-01-01T02:30:00.000Z", "2024-01-02T01:00:00.000Z"]
        );
    }

    #[test]
    fn weekdays_during_office_hours() {
        // 2024-03-01 is a Friday.
        let runs = runs("0 9-17 * * 1-5", "2024-03-01T16:30:00Z", 3);
        assert_eq!(runs, ["2024-03-01T17:00:00.000Z", "2024-03-04T09:00:00.000Z", "2024-03-04T10:00:00.000Z"]);
        assert_eq!(next("30 8 * * MON-FRI", "2024-03-02T00:00:00Z").as_deref(), Some("2024-03-04T08:30:00.000Z"));
    }

    #[test]
    fn last_days_of_month() {
        assert_eq!(
            runs("0 0 28-31 * *", "2023-02-27T00:00:00Z", 6),
            [
                "2023-02-28T00:00:00.000Z",
                "2023-03-28T00:00:00.000Z",
                "2023-03-29T00:00:00.000Z",
                "2023-03-30T00:00:00.000Z",
                "2023-03-31T00:00:00.000Z",
                "2023-04-28T00:00:00.000Z"
            ]
        );
        // April, June have no 31st.
        assert_eq!(
            runs("0 0 31 * *", "2024-03-31T00:00:00Z", 3),
            ["2024-05-31T00:00:00.000Z", "2024-07-31T00:00:00.000Z", "2024-08-31T00:00:00.000Z"]
        );
    }

    #[test]
    fn february_29th_only_in_leap_years() {
        assert_eq!(
            runs("0 12 29 2 *", "2023-06-01T00:00:00Z", 3),
            ["2024-02-29T12:00:00.000Z", "2028-02-29T12:00:00.000Z", "2032-02-29T12:00:00.000Z"]
        );
        // 2100 is not a leap year: eight years between two February 29ths.
        assert_eq!(next("0 0 29 2 *", "2096-03-01T00:00:00Z").as_deref(), Some("2104-02-29T00:00:00.000Z"));
        assert_eq!(next("0 0 29 2 *", "1999-03-01T00:00:00Z").as_deref(), Some("2000-02-29T00:00:00.000Z"));
    }

    #[test]
    fn impossible_dates_never_match() {
        for cron in ["0 0 30 2 *", "0 0 31 2 *", "0 0 31 4,6,9,11 *", "* * 30-31 FEB *"] {
            let e = expr(cron);
            assert_eq!(e.next_after(at("2024-01-01T00:00:00Z")), None, "{cron}");
            assert!(!e.is_satisfiable(), "{cron}");
            let err = Schedule::parse(None, Some(cron)).unwrap_err();
            assert!(err.contains("never matches"), "{err}");
        }
        // With a restricted day-of-week too, the days are ORed: any Monday in February will do.
        assert_eq!(next("0 0 30 2 MON", "2024-01-01T00:00:00Z").as_deref(), Some("2024-02-05T00:00:00.000Z"));
        // Schedules built without `parse` never run.
        assert_eq!(Schedule::Cron(expr("0 0 30 2 *")).next_after(0), i64::MAX);
    }

    #[test]
    fn day_of_month_or_day_of_week() {
        // 2024-01-01 is a Monday; the 5th and 12th are Fridays.
        assert_eq!(
            runs("0 0 13 * FRI", "2024-01-01T00:00:00Z", 4),
            [
                "2024-01-05T00:00:00.000Z",
                "2024-01-12T00:00:00.000Z",
                "2024-01-13T00:00:00.000Z",
                "2024-01-19T00:00:00.000Z"
            ]
        );
        // A day-of-month starting with `*` counts as unrestricted (Vixie): both must match,
        // here odd days that are Mondays.
        assert_eq!(
            runs("0 0 */2 * 1", "2024-01-01T00:00:00Z", 2),
            ["2024-01-15T00:00:00.000Z", "2024-01-29T00:00:00.000Z"]
        );
        // An unrestricted day-of-week leaves day-of-month alone.
        assert_eq!(
            runs("0 0 1,15 * *", "2024-01-01T00:00:00Z", 2),
            ["2024-01-15T00:00:00.000Z", "2024-02-01T00:00:00.000Z"]
        );
        // A day-of-week starting with `*` is unrestricted too, so both must hold: the 1st of a
        // month when it is a Sunday, Wednesday or Saturday (`*/3` = 0,3,6).
        assert_eq!(next("0 0 1 * */3", "2024-01-01T00:00:00Z").as_deref(), Some("2024-05-01T00:00:00.000Z"));
    }

    #[test]
    fn sunday_is_zero_and_seven() {
        let sunday = Some("2024-01-07T12:00:00.000Z");
        for cron in ["0 12 * * 0", "0 12 * * 7", "0 12 * * SUN", "0 12 * * sun", "0 12 * * 7-7"] {
            assert_eq!(next(cron, "2024-01-01T00:00:00Z").as_deref(), sunday, "{cron}");
        }
        assert_eq!(expr("0 12 * * 0"), {
            let mut e = expr("0 12 * * 7");
            e.text = "0 12 * * 0".to_owned();
            e
        });
        assert_eq!(
            runs("0 12 * * 5-7", "2024-01-01T00:00:00Z", 4),
            [
                "2024-01-05T12:00:00.000Z",
                "2024-01-06T12:00:00.000Z",
                "2024-01-07T12:00:00.000Z",
                "2024-01-12T12:00:00.000Z"
            ]
        );
    }

    #[test]
    fn month_and_day_names() {
        assert_eq!(
            runs("0 0 1 jan,Jul *", "2024-01-01T00:00:00Z", 2),
            ["2024-07-01T00:00:00.000Z", "2025-01-01T00:00:00.000Z"]
        );
        assert_eq!(expr("0 0 1 JAN-MAR *").months, 0b1110);
        assert_eq!(expr("0 0 * * Mon-Fri").days_of_week, 0b011_1110);
        assert_eq!(expr("0 0 * * SAT,sun").days_of_week, 0b100_0001);
        assert_eq!(expr("0 0 * feb-dec/2 *").months, (1 << 2) | (1 << 4) | (1 << 6) | (1 << 8) | (1 << 10) | (1 << 12));
    }

    #[test]
    fn macros() {
        let after = "2024-01-01T10:30:00Z"; // a Monday
        assert_eq!(next("@yearly", after).as_deref(), Some("2025-01-01T00:00:00.000Z"));
        assert_eq!(next("@annually", after).as_deref(), Some("2025-01-01T00:00:00.000Z"));
        assert_eq!(next("@monthly", after).as_deref(), Some("2024-02-01T00:00:00.000Z"));
        assert_eq!(next("@weekly", after).as_deref(), Some("2024-01-07T00:00:00.000Z"));
        assert_eq!(next("@daily", after).as_deref(), Some("2024-01-02T00:00:00.000Z"));
        assert_eq!(next("@midnight", after).as_deref(), Some("2024-01-02T00:00:00.000Z"));
        assert_eq!(next("@hourly", after).as_deref(), Some("2024-01-01T11:00:00.000Z"));
        assert_eq!(expr("@ANNUALLY").to_string(), "@yearly");
        assert_eq!(expr(" @Midnight ").to_string(), "@daily");
        assert_eq!(expr("@hourly").to_string(), "@hourly");
    }

    #[test]
    fn year_rollover() {
        assert_eq!(next("59 23 31 12 *", "2024-12-31T23:59:00Z").as_deref(), Some("2025-12-31T23:59:00.000Z"));
        assert_eq!(next("0 0 1 1 *", "2024-12-31T23:59:59.999Z").as_deref(), Some("2025-01-01T00:00:00.000Z"));
        assert_eq!(next("* * * * *", "2024-12-31T23:59:00Z").as_deref(), Some("2025-01-01T00:00:00.000Z"));
        assert_eq!(next("0 0 * * *", "1969-12-31T12:00:00Z"), Some(rfc3339(0)));
        assert_eq!(next("0 0 1 1 *", "1969-06-01T00:00:00Z"), Some(rfc3339(0)));
    }

    #[test]
    fn extreme_instants_do_not_panic() {
        let e = expr("* * * * *");
        assert_eq!(e.next_after(i64::MAX), None);
        assert!(e.next_after(i64::MIN).is_some());
        assert_eq!(expr("0 0 30 2 *").next_after(i64::MIN), None);
        assert_eq!(Schedule::Every { secs: u64::MAX }.next_after(5), i64::MAX);
    }

    /// A minute-by-minute reference matcher.
    fn matches_naive(e: &CronExpr, ms: i64) -> bool {
        let minutes = ms.div_euclid(MINUTE_MS);
        let days = minutes.div_euclid(1440);
        let (y, m, d) = civil_from_days(days);
        let (h, mi) = (minutes.rem_euclid(1440) / 60, minutes.rem_euclid(60));
        e.minutes & (1 << mi) != 0 && e.hours & (1 << h) != 0 && e.months & (1 << m) != 0 && e.day_matches(y, m, d)
    }

    #[test]
    fn agrees_with_a_naive_search() {
        let exprs = [
            "*/7 */5 * * *",
            "0 0 13 * FRI",
            "15 3 */3 * MON,THU",
            "59 23 28-31 * *",
            "0 12 1-7 * SUN",
            "*/20 22-23,0-1 * 2,3 *",
            "0 0 29 * *",
            "7 7 * * 6",
        ];
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for cron in exprs {
            let e = expr(cron);
            for _ in 0..4 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                // Somewhere in 1990-2060, at any millisecond.
                let start = 631_152_000_000 + (seed % 2_208_988_800_000) as i64;
                let mut naive = (start.div_euclid(MINUTE_MS) + 1) * MINUTE_MS;
                let limit = naive + 62 * 86_400_000;
                while naive < limit && !matches_naive(&e, naive) {
                    naive += MINUTE_MS;
                }
                if naive < limit {
                    assert_eq!(
                        e.next_after(start).map(rfc3339),
                        Some(rfc3339(naive)),
                        "{cron} after {}",
                        rfc3339(start)
                    );
                }
            }
        }
    }

    #[test]
    fn parse_errors_name_the_field() {
        assert_eq!(parse_err("0 0 * * 8"), "day-of-week: 8 is out of range 0-7");
        assert_eq!(parse_err("60 * * * *"), "minute: 60 is out of range 0-59");
        assert_eq!(parse_err("* 24 * * *"), "hour: 24 is out of range 0-23");
        assert_eq!(parse_err("* * 0 * *"), "day-of-month: 0 is out of range 1-31");
        assert_eq!(parse_err("* * 32 * *"), "day-of-month: 32 is out of range 1-31");
        assert_eq!(parse_err("* * * 13 *"), "month: 13 is out of range 1-12");
        assert_eq!(parse_err("* * * 0 *"), "month: 0 is out of range 1-12");
        assert_eq!(parse_err("* * * FOO *"), "month: \"FOO\" is not a number or month name (JAN-DEC)");
        assert_eq!(parse_err("* * * * FRIDAY"), "day-of-week: \"FRIDAY\" is not a number or day name (SUN-SAT)");
        assert_eq!(parse_err("x * * * *"), "minute: \"x\" is not a number");
        assert_eq!(parse_err("MON * * * *"), "minute: \"MON\" is not a number");
        assert_eq!(parse_err("99999999999 * * * *"), "minute: 99999999999 is out of range 0-59");
        assert_eq!(parse_err("*/0 * * * *"), "minute: step 0 in \"*/0\"");
        assert_eq!(parse_err("*/a * * * *"), "minute: step \"a\" in \"*/a\" is not a number");
        assert_eq!(parse_err("*/ * * * *"), "minute: step \"\" in \"*/\" is not a number");
        assert_eq!(parse_err("*/61 * * * *"), "minute: step 61 in \"*/61\" is larger than the range 0-59");
        assert_eq!(parse_err("5-1 * * * *"), "minute: range \"5-1\" goes backwards");
        assert_eq!(parse_err("* * * * FRI-MON"), "day-of-week: range \"FRI-MON\" goes backwards");
        assert_eq!(parse_err("-5 * * * *"), "minute: \"-5\" is missing a value");
        assert_eq!(parse_err("1,,2 * * * *"), "minute: empty element in list \"1,,2\"");
        assert_eq!(parse_err("* * * *"), "expected 5 fields (minute hour day-of-month month day-of-week), got 4");
        assert_eq!(
            parse_err("0 * * * * *"),
            "expected 5 fields (minute hour day-of-month month day-of-week), got 6; seconds and years are not supported"
        );
        assert_eq!(parse_err(""), "expected 5 fields (minute hour day-of-month month day-of-week), got 0");
        assert_eq!(parse_err("@reboot"), "@reboot is not supported");
        assert!(parse_err("@every 5m").starts_with("unknown macro \"@every 5m\"; expected one of @yearly"));
        let e = "0 0 * * 8".parse::<CronExpr>().unwrap_err();
        assert_eq!(e.field, Some("day-of-week"));
    }

    #[test]
    fn display_is_normalized_and_round_trips() {
        for (input, normalized) in [
            ("  0   9 * *   mon-fri ", "0 9 * * MON-FRI"),
            ("*/15 * * * *", "*/15 * * * *"),
            ("0 0 1 jan,jul *", "0 0 1 JAN,JUL *"),
            ("0\t0 * * Sun", "0 0 * * SUN"),
            ("@annually", "@yearly"),
        ] {
            let e = expr(input);
            assert_eq!(e.to_string(), normalized);
            assert_eq!(e.as_str(), normalized);
            assert_eq!(expr(&e.to_string()), e);
        }
    }

    #[test]
    fn schedules() {
        assert_eq!(Schedule::parse(Some(300), None), Ok(Schedule::Every { secs: 300 }));
        assert_eq!(Schedule::parse(Some(1), None), Ok(Schedule::Every { secs: 1 }));
        assert_eq!(Schedule::parse(Some(0), None).unwrap_err(), "interval_secs must be at least 1");
        assert_eq!(Schedule::parse(None, None).unwrap_err(), "give either interval_secs or cron");
        assert_eq!(
            Schedule::parse(Some(60), Some("* * * * *")).unwrap_err(),
            "give either interval_secs or cron, not both"
        );
        assert_eq!(Schedule::parse(None, Some("0 0 * * 8")).unwrap_err(), "cron: day-of-week: 8 is out of range 0-7");

        let every = Schedule::parse(Some(300), None).unwrap();
        assert_eq!(every.next_after(1_000), 301_000);
        assert_eq!(every.to_string(), "every 300s");
        assert_eq!(every.interval_secs(), Some(300));
        assert!(every.cron().is_none());

        let cron = Schedule::parse(None, Some(" 0  9 * * mon-fri")).unwrap();
        assert_eq!(cron.to_string(), "0 9 * * MON-FRI");
        assert_eq!(rfc3339(cron.next_after(at("2024-03-01T09:00:00Z"))), "2024-03-04T09:00:00.000Z");
        assert_eq!(cron.interval_secs(), None);
        assert_eq!(cron.cron().map(CronExpr::as_str), Some("0 9 * * MON-FRI"));
        // The normalized text gives the same schedule back.
        assert_eq!(Schedule::parse(None, Some(&cron.to_string())), Ok(cron));
    }

    #[test]
    fn civil_calendar() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(civil_from_days(days_from_civil(2024, 2, 29)), (2024, 2, 29));
        assert_eq!(weekday(days_from_civil(2024, 1, 1)), 1);
        assert_eq!(days_in_month(2024, 2), 29);
        assert_eq!(days_in_month(2100, 2), 28);
        assert_eq!(days_in_month(2000, 2), 29);
        for days in -800_000..-799_000 {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }
}
