//! Dates, Paris local time and smooth monthly profiles, for sensor models: the virtual clock
//! gives milliseconds since 1970, and a model of a city needs the hour, the weekday and the
//! season. A few lines, not worth a dependency on a date crate inside every plugin.

/// Milliseconds in an hour and in a day.
pub const HOUR_MS: i64 = 3_600_000;
pub const DAY_MS: i64 = 24 * HOUR_MS;

/// A moment broken into calendar parts, in UTC or in Paris local time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Moment {
    pub year: i64,
    /// 1 = January.
    pub month: u32,
    /// 1 = the first of the month.
    pub day: u32,
    /// Hour of the day with its fraction, in [0, 24).
    pub hour: f64,
    /// 0 = Monday, ..., 5 = Saturday, 6 = Sunday.
    pub weekday: u32,
    /// Days since the 1st of January at 0 h, with the fraction of the day, in [0, 366).
    pub day_of_year: f64,
    /// Months since the 1st of January at 0 h, with the fraction of the month, in [0, 12).
    pub month_position: f64,
}

impl Moment {
    pub fn is_weekend(&self) -> bool {
        self.weekday >= 5
    }
}

/// The calendar parts of `ms` since the Unix epoch, in UTC.
pub fn utc(ms: i64) -> Moment {
    let days = ms.div_euclid(DAY_MS);
    let hour = ms.rem_euclid(DAY_MS) as f64 / HOUR_MS as f64;
    let (year, month, day) = civil_from_days(days);
    let month_length = days_in_month(year, month) as f64;
    Moment {
        year,
        month,
        day,
        hour,
        // 1970-01-01 was a Thursday.
        weekday: (days + 3).rem_euclid(7) as u32,
        day_of_year: (days - days_from_civil(year, 1, 1)) as f64 + hour / 24.0,
        month_position: (month - 1) as f64 + (day as f64 - 1.0 + hour / 24.0) / month_length,
    }
}

/// The calendar parts of `ms` in Paris local time (CET, CEST in summer).
pub fn paris(ms: i64) -> Moment {
    utc(ms + paris_offset_ms(ms))
}

/// The offset of Paris local time from UTC at `ms`: one hour, two in summer time (from 1 h UTC
/// on the last Sunday of March to 1 h UTC on the last Sunday of October, the EU rule since 1996).
pub fn paris_offset_ms(ms: i64) -> i64 {
    let (year, _, _) = civil_from_days(ms.div_euclid(DAY_MS));
    let start = last_sunday(year, 3) * DAY_MS + HOUR_MS;
    let end = last_sunday(year, 10) * DAY_MS + HOUR_MS;
    if (start..end).contains(&ms) { 2 * HOUR_MS } else { HOUR_MS }
}

/// Days since 1970-01-01 of the last Sunday of a month.
fn last_sunday(year: i64, month: u32) -> i64 {
    let last = days_from_civil(year, month, days_in_month(year, month));
    last - (last + 4).rem_euclid(7)
}

pub fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a date of the proleptic Gregorian calendar (H. Hinnant's algorithm).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = month as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a number of days since 1970-01-01 (the inverse of [`days_from_civil`]).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// A quantity that follows twelve monthly means smoothly: linear between mid-month knots chosen
/// so that each month's mean of the curve is that month's mean (a plain interpolation of the
/// means would flatten the peaks by up to 10 %).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct MonthlyProfile {
    knots: [f64; 12],
}

impl MonthlyProfile {
    pub fn from_means(means: [f64; 12]) -> Self {
        // The mean over month m of the curve is 3/4 k[m] + 1/8 (k[m-1] + k[m+1]) (months taken
        // as equally long): solve for k by fixed-point iteration, which converges because the
        // matrix is diagonally dominant (every error halves at least on each pass).
        let mut knots = means;
        for _ in 0..40 {
            let mean_of =
                |k: &[f64; 12], m: usize| 0.75 * k[m] + 0.125 * (k[(m + 11) % 12] + k[(m + 1) % 12]);
            let current = knots;
            for (m, knot) in knots.iter_mut().enumerate() {
                *knot += means[m] - mean_of(&current, m);
            }
        }
        Self { knots }
    }

    /// The value at a position in the year, in months since the 1st of January (0..12).
    pub fn at(&self, month_position: f64) -> f64 {
        let x = month_position - 0.5;
        let below = x.floor();
        let fraction = x - below;
        let i = (below as i64).rem_euclid(12) as usize;
        self.knots[i] * (1.0 - fraction) + self.knots[(i + 1) % 12] * fraction
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates_round_trip_and_know_their_weekday() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(civil_from_days(days_from_civil(2024, 2, 29)), (2024, 2, 29));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        // 2025-11-24 was a Monday; 12:30 UTC is 13:30 in Paris.
        let ms = days_from_civil(2025, 11, 24) * DAY_MS + 12 * HOUR_MS + HOUR_MS / 2;
        let local = paris(ms);
        assert_eq!((local.weekday, local.hour, local.month, local.day), (0, 13.5, 11, 24));
        assert!(!local.is_weekend() && utc(ms + 5 * DAY_MS).is_weekend());
    }

    #[test]
    fn paris_switches_to_summer_time_on_the_last_sundays_of_march_and_october() {
        // 2025: 30 March and 26 October, at 1 h UTC.
        let march = days_from_civil(2025, 3, 30) * DAY_MS + HOUR_MS;
        assert_eq!(paris_offset_ms(march - 1), HOUR_MS);
        assert_eq!(paris_offset_ms(march), 2 * HOUR_MS);
        let october = days_from_civil(2025, 10, 26) * DAY_MS + HOUR_MS;
        assert_eq!(paris_offset_ms(october - 1), 2 * HOUR_MS);
        assert_eq!(paris_offset_ms(october), HOUR_MS);
    }

    #[test]
    fn a_monthly_profile_keeps_every_months_mean() {
        let means = [6.3, 7.2, 10.2, 12.5, 16.2, 20.0, 22.5, 22.5, 19.0, 15.1, 9.7, 6.9];
        let profile = MonthlyProfile::from_means(means);
        for (m, mean) in means.iter().enumerate() {
            let samples = 1000;
            let average: f64 =
                (0..samples).map(|i| profile.at(m as f64 + (i as f64 + 0.5) / samples as f64)).sum::<f64>()
                    / samples as f64;
            assert!((average - mean).abs() < 1e-3, "month {m}: {average} vs {mean}");
        }
        // Continuous across the new year.
        assert!((profile.at(11.999_999) - profile.at(0.0)).abs() < 1e-4);
    }
}
