//! Where segments live in the artifact store, and reading them back.
//!
//! `serving/prediction-logs/deployment=<d>/date=YYYY-MM-DD/hour=HH/<version>-<ts>-<uuid>.arrow`:
//! Hive partition names, so `pyarrow.dataset.dataset(prefix, format="arrow",
//! partitioning="hive")` reads the tree as one table and prunes by deployment, date and hour.
//! The spool holds the same relative paths as IPC *streams* (`.arrows`, readable after a
//! crash); an upload converts a sealed stream to the IPC *file* format (`.arrow`, with the
//! footer that dataset readers need).
//! Every path built here goes through `slipway_artifacts::sanitize` as well as the stricter
//! name check below: a deployment name that is fine for the sanitiser (`a=b`, `..x`) could
//! still bend the partition layout.

use std::io::Cursor;

use arrow_array::RecordBatch;
use arrow_ipc::reader::FileReader;
use futures::TryStreamExt;
use slipway_artifacts::{ArtifactPath, Artifacts, sanitize};

use crate::PredlogError;

/// The root of every prediction log in the artifact store; GC must never touch it.
pub const PREFIX: &str = "serving/prediction-logs";
/// The file extension of an Arrow IPC stream (the spool).
pub(crate) const EXTENSION: &str = ".arrows";
/// The file extension of an Arrow IPC file (what is uploaded).
pub(crate) const UPLOADED: &str = ".arrow";

/// Where a spooled segment is uploaded to.
pub(crate) fn uploaded_path(rel: &str) -> String {
    format!("{}{UPLOADED}", rel.strip_suffix(EXTENSION).unwrap_or(rel))
}

pub(crate) const MICROS_PER_HOUR: i64 = 3_600_000_000;
/// Timestamps outside [1970, 10000) would not print as `YYYY` and are refused.
pub(crate) const MAX_TIMESTAMP_US: i64 = 253_402_300_800_000_000;

/// Deployment and version names become path segments: `[A-Za-z0-9_.-]`, not `.` or `..`.
pub(crate) fn check_name(what: &str, name: &str) -> Result<(), PredlogError> {
    let ok_chars = name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if name.is_empty() || name.len() > 200 || !ok_chars || name == "." || name == ".." {
        let shown: String = name.chars().take(200).collect();
        return Err(PredlogError::InvalidName(format!("{what} name '{shown}' is not [A-Za-z0-9_.-]{{1,200}}")));
    }
    Ok(())
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`), so that no date library is needed for partition names.
pub(crate) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11], March-based
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The inverse of [`civil_from_days`].
pub(crate) fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(month);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The artifact-relative path of a new segment whose first row was logged at `first_us`.
pub(crate) fn segment_path(deployment: &str, version: &str, first_us: i64) -> String {
    let secs = first_us.div_euclid(1_000_000);
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    let (h, mi, s) = (sod / 3600, sod % 3600 / 60, sod % 60);
    let id = uuid::Uuid::new_v4();
    format!(
        "{PREFIX}/deployment={deployment}/date={y:04}-{mo:02}-{d:02}/hour={h:02}/\
         {version}-{y:04}{mo:02}{d:02}T{h:02}{mi:02}{s:02}-{id}{EXTENSION}"
    )
}

/// A segment path through the one sanitiser; it must stay under the prediction-log prefix.
pub(crate) fn checked(rel: &str) -> Result<ArtifactPath, PredlogError> {
    let path = sanitize(rel)?;
    let under = path.segments().take(2).eq(PREFIX.split('/'));
    if !under || !(rel.ends_with(EXTENSION) || rel.ends_with(UPLOADED)) {
        return Err(PredlogError::InvalidName(format!("'{rel}' is not a prediction log segment")));
    }
    Ok(path)
}

fn deployment_dir(deployment: &str) -> Result<ArtifactPath, PredlogError> {
    check_name("deployment", deployment)?;
    Ok(sanitize(&format!("{PREFIX}/deployment={deployment}"))?)
}

/// The value of a Hive partition directory `<key>=<value>` listed as a full path.
fn partition<'a>(path: &'a str, key: &str) -> Option<&'a str> {
    path.rsplit('/').next()?.strip_prefix(key)?.strip_prefix('=')
}

fn parse_date(value: &str) -> Option<i64> {
    if value.len() != 10 {
        return None;
    }
    let mut parts = value.splitn(3, '-');
    let y: i64 = parts.next()?.parse().ok()?;
    let m: u32 = parts.next()?.parse().ok()?;
    let d: u32 = parts.next()?.parse().ok()?;
    ((1..=12).contains(&m) && (1..=31).contains(&d)).then(|| days_from_civil(y, m, d))
}

/// Every uploaded segment of a deployment, sorted by path (that is, by hour, then version).
pub async fn list_segments(artifacts: &Artifacts, deployment: &str) -> Result<Vec<String>, PredlogError> {
    list_segments_between(artifacts, deployment, i64::MIN, i64::MAX).await
}

/// The uploaded segments of a deployment whose hour partition overlaps `[from_us, to_us)`
/// (unix microseconds, UTC); partitions outside the range are not listed at all.
pub async fn list_segments_between(
    artifacts: &Artifacts,
    deployment: &str,
    from_us: i64,
    to_us: i64,
) -> Result<Vec<String>, PredlogError> {
    let hours = from_us.div_euclid(MICROS_PER_HOUR)..=(to_us.saturating_sub(1)).div_euclid(MICROS_PER_HOUR);
    let mut out = Vec::new();
    for date_dir in artifacts.list(&deployment_dir(deployment)?).await? {
        let Some(day) = partition(&date_dir.path, "date").and_then(parse_date) else { continue };
        if !date_dir.is_dir || day * 24 + 23 < *hours.start() || day * 24 > *hours.end() {
            continue;
        }
        for hour_dir in artifacts.list(&sanitize(&date_dir.path)?).await? {
            let Some(hour) = partition(&hour_dir.path, "hour").and_then(|h| h.parse::<i64>().ok()) else { continue };
            if !hour_dir.is_dir || !hours.contains(&(day * 24 + hour)) {
                continue;
            }
            let files = artifacts.list(&sanitize(&hour_dir.path)?).await?;
            out.extend(files.into_iter().filter(|f| !f.is_dir && f.path.ends_with(UPLOADED)).map(|f| f.path));
        }
    }
    out.sort();
    Ok(out)
}

/// Reads a whole segment back as the record batches it was written in.
pub async fn read_segment(artifacts: &Artifacts, path: &str) -> Result<Vec<RecordBatch>, PredlogError> {
    let download = artifacts.get_stream(&sanitize(path)?).await?;
    let mut bytes = Vec::with_capacity(usize::try_from(download.size).unwrap_or(0));
    let mut stream = download.stream;
    while let Some(chunk) = stream.try_next().await? {
        bytes.extend_from_slice(&chunk);
    }
    let arrow = |source| PredlogError::Arrow { path: path.to_string(), source };
    let reader = FileReader::try_new(Cursor::new(bytes), None).map_err(arrow)?;
    reader.collect::<Result<Vec<_>, _>>().map_err(arrow)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates_match_known_days() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        assert_eq!(civil_from_days(19_783), (2024, 3, 1));
        assert_eq!(civil_from_days(47_541), (2100, 3, 1)); // 2100 is not a leap year
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }

    #[test]
    fn civil_dates_round_trip_and_advance_by_one_day() {
        let mut prev = civil_from_days(-1);
        for days in 0..200_000 {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
            let next_day = (y, m, d) == (prev.0, prev.1, prev.2 + 1);
            let next_month = d == 1 && ((y, m) == (prev.0, prev.1 + 1) || (y, m, prev.1) == (prev.0 + 1, 1, 12));
            assert!(next_day || next_month, "{prev:?} -> {:?}", (y, m, d));
            prev = (y, m, d);
        }
    }

    #[test]
    fn segment_paths_use_hive_partitions_in_utc() {
        // 2024-02-29T23:59:58.5Z
        let us = days_from_civil(2024, 2, 29) * 86_400_000_000 + (23 * 3600 + 59 * 60 + 58) * 1_000_000 + 500_000;
        let p = segment_path("fraud", "7", us);
        let prefix = "serving/prediction-logs/deployment=fraud/date=2024-02-29/hour=23/7-20240229T235958-";
        assert!(p.starts_with(prefix), "{p}");
        assert!(p.ends_with(".arrows"));
        assert!(checked(&p).is_ok());
    }

    #[test]
    fn names_that_bend_the_layout_are_refused() {
        for bad in ["../x", "a/b", "..", ".", "", "a=b", "a b", "a%2F", "é"] {
            assert!(check_name("deployment", bad).is_err(), "{bad}");
        }
        for good in ["-", "fraud", "fraud-v2.1_x"] {
            assert!(check_name("deployment", good).is_ok(), "{good}");
        }
        assert!(checked("serving/prediction-logs/../x.arrows").is_err());
        assert!(checked("other/prediction-logs/x.arrows").is_err());
        assert!(checked("serving/prediction-logs/deployment=a/x.txt").is_err());
    }
}
