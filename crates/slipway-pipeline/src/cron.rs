//! Five-field cron schedules (`minute hour day-of-month month day-of-week`, UTC), with `*`,
//! lists, ranges and steps (`*/15`, `1-5`, `0,30`), as crontab reads them: when both day
//! fields are restricted, either one matching is enough.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    text: String,
    minutes: u64,
    hours: u64,
    days: u64,
    months: u64,
    weekdays: u64,
    days_any: bool,
    weekdays_any: bool,
}

impl Cron {
    pub fn parse(text: &str) -> Result<Cron, String> {
        let fields: Vec<&str> = text.split_whitespace().collect();
        let [min, hour, dom, mon, dow] = fields[..] else {
            return Err(format!("'{text}' is not a cron schedule of five fields (minute hour day month weekday)"));
        };
        let weekdays = field(dow, 0, 7, "weekday")?;
        Ok(Cron {
            text: text.trim().to_string(),
            minutes: field(min, 0, 59, "minute")?,
            hours: field(hour, 0, 23, "hour")?,
            days: field(dom, 1, 31, "day")?,
            months: field(mon, 1, 12, "month")?,
            // 7 is Sunday too.
            weekdays: (weekdays | (weekdays >> 7)) & 0x7f,
            days_any: dom == "*",
            weekdays_any: dow == "*",
        })
    }

    /// Whether the schedule fires in the minute starting at `minute` (minutes since the epoch).
    pub fn matches(&self, minute: i64) -> bool {
        let (days, rem) = (minute.div_euclid(1440), minute.rem_euclid(1440));
        let (_, m, d) = civil(days);
        let weekday = (days + 4).rem_euclid(7); // 1970-01-01 was a Thursday
        let bit = |set: u64, v: i64| set & (1 << v) != 0;
        let day_ok = match (self.days_any, self.weekdays_any) {
            (false, false) => bit(self.days, d) || bit(self.weekdays, weekday),
            _ => bit(self.days, d) && bit(self.weekdays, weekday),
        };
        bit(self.minutes, rem % 60) && bit(self.hours, rem / 60) && bit(self.months, m) && day_ok
    }

    /// The latest minute in `(after, upto]` at which it fires.
    pub fn last_between(&self, after: i64, upto: i64) -> Option<i64> {
        (after + 1..=upto).rev().take(60 * 24 * 366).find(|&m| self.matches(m))
    }
}

impl std::fmt::Display for Cron {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

fn field(text: &str, lo: u64, hi: u64, what: &str) -> Result<u64, String> {
    let bad = || format!("cron {what} '{text}' is not a value, range, list or step within {lo}-{hi}");
    let mut set = 0u64;
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (r, s.parse::<u64>().map_err(|_| bad())?),
            None => (part, 1),
        };
        let (from, to) = match range {
            "*" => (lo, hi),
            r => match r.split_once('-') {
                Some((a, b)) => (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?),
                None => {
                    let v = r.parse().map_err(|_| bad())?;
                    (v, if step > 1 { hi } else { v })
                }
            },
        };
        if step == 0 || from < lo || to > hi || from > to {
            return Err(bad());
        }
        for v in (from..=to).step_by(step as usize) {
            set |= 1 << v;
        }
    }
    Ok(set)
}

/// (year, month, day) of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Minutes since the epoch of a UTC date and time.
    fn at(y: i64, mo: i64, d: i64, h: i64, mi: i64) -> i64 {
        let mut days = 0;
        for year in 1970..y {
            days += if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 { 366 } else { 365 };
        }
        let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        let lengths = [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
        days += lengths[..(mo - 1) as usize].iter().sum::<i64>() + d - 1;
        days * 1440 + h * 60 + mi
    }

    #[test]
    fn schedules_match_as_crontab_reads_them() {
        let nightly = Cron::parse("0 3 * * *").unwrap();
        assert!(nightly.matches(at(2026, 12, 5, 3, 0)));
        assert!(!nightly.matches(at(2026, 12, 5, 3, 1)));
        let quarter = Cron::parse("*/15 9-17 * * 1-5").unwrap();
        // 2026-12-05 is a Saturday, 2026-12-07 a Monday.
        assert!(!quarter.matches(at(2026, 12, 5, 9, 15)));
        assert!(quarter.matches(at(2026, 12, 7, 9, 15)));
        assert!(!quarter.matches(at(2026, 12, 7, 18, 0)));
        let either = Cron::parse("0 0 1 * 0").unwrap();
        assert!(either.matches(at(2026, 12, 6, 0, 0)), "a Sunday");
        assert!(either.matches(at(2027, 1, 1, 0, 0)), "the first of the month");
        let sunday7 = Cron::parse("0 12 * * 7").unwrap();
        assert!(sunday7.matches(at(2026, 12, 6, 12, 0)));
        assert_eq!(nightly.last_between(at(2026, 12, 5, 0, 0), at(2026, 12, 5, 4, 0)), Some(at(2026, 12, 5, 3, 0)));
        assert_eq!(nightly.last_between(at(2026, 12, 5, 3, 0), at(2026, 12, 5, 4, 0)), None);
        for bad in ["* * * *", "60 * * * *", "*/0 * * * *", "a * * * *", "5-1 * * * *"] {
            assert!(Cron::parse(bad).is_err(), "{bad}");
        }
    }
}
