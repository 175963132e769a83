//! Dates in many written forms, the sources of the `dates` task; the target is always ISO 8601
//! (YYYY-MM-DD). Every form is unambiguous on its own (no "03/04/2026", which is March 4 in
//! the United States and 3 April in Britain).

use jielong_core::Rng;

const MONTHS: [&str; 12] = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"];

/// A calendar date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Date {
    pub year: u32,
    /// 1..=12
    pub month: u32,
    /// 1..=days_in_month
    pub day: u32,
}

fn leap(y: u32) -> bool {
    (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400)
}

pub fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// The written forms a source may take.
pub const FORMATS: usize = 7;

impl Date {
    /// A uniform random date between 1900-01-01 and 2099-12-31.
    pub fn random(rng: &mut Rng) -> Self {
        let year = 1900 + rng.below(200) as u32;
        let month = 1 + rng.below(12) as u32;
        let day = 1 + rng.below(days_in_month(year, month) as u64) as u32;
        Self { year, month, day }
    }

    pub fn iso(&self) -> String {
        format!("{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }

    /// Written form `f` (0..FORMATS): "March 7, 2026", "7 March 2026", "Mar 7 2026",
    /// "2026/03/07", "07.03.2026", "2026年3月7日", "20260307".
    pub fn format(&self, f: usize) -> String {
        let (y, m, d) = (self.year, self.month, self.day);
        let name = MONTHS[m as usize - 1];
        match f % FORMATS {
            0 => format!("{name} {d}, {y}"),
            1 => format!("{d} {name} {y}"),
            2 => format!("{} {d} {y}", &name[..3]),
            3 => format!("{y}/{m:02}/{d:02}"),
            4 => format!("{d:02}.{m:02}.{y}"),
            5 => format!("{y}年{m}月{d}日"),
            _ => format!("{y}{m:02}{d:02}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_known_forms_and_valid_days() {
        let d = Date { year: 2026, month: 3, day: 7 };
        let forms: Vec<String> = (0..FORMATS).map(|f| d.format(f)).collect();
        assert_eq!(forms, ["March 7, 2026", "7 March 2026", "Mar 7 2026", "2026/03/07", "07.03.2026", "2026年3月7日", "20260307"]);
        assert_eq!(d.iso(), "2026-03-07");
        assert_eq!((days_in_month(2000, 2), days_in_month(1900, 2), days_in_month(2024, 2), days_in_month(2026, 4)), (29, 28, 29, 30));
        let mut rng = Rng::new(5);
        for _ in 0..2000 {
            let d = Date::random(&mut rng);
            assert!((1900..2100).contains(&d.year) && d.day >= 1 && d.day <= days_in_month(d.year, d.month));
        }
    }
}
