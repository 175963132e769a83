//! Built-in sequence-to-sequence tasks that jielong generates itself (no download): pairs
//! `{"source": …, "target": …}` for `jielong task make`. Long inputs are where an
//! encoder-decoder without attention, which squeezes the whole source into one vector, breaks
//! down.
//!
//! - `reverse`: a random string of lowercase letters → the same string backwards;
//! - `numbers-en` / `numbers-zh`: a number in digits → in English / Chinese words
//!   (2026 → "two thousand twenty-six" / "两千零二十六");
//! - `dates`: a date in one of several written forms → ISO 8601.
//!
//! `min_len`/`max_len` bound the string length (reverse) or the number of digits (numbers);
//! dates have their own lengths. Pairs come from `Rng::derive(seed, [i])`, so the file for a
//! seed is the same on every machine.

pub mod dates;
pub mod numbers;

use jielong_core::{Error, Result, Rng};

/// A task jielong can generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    Reverse,
    NumbersEn,
    NumbersZh,
    Dates,
}

/// One example.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Pair {
    pub source: String,
    pub target: String,
}

pub const TASK_NAMES: [&str; 4] = ["reverse", "numbers-en", "numbers-zh", "dates"];

impl Task {
    pub fn from_name(name: &str) -> Result<Self> {
        match name {
            "reverse" => Ok(Task::Reverse),
            "numbers-en" => Ok(Task::NumbersEn),
            "numbers-zh" => Ok(Task::NumbersZh),
            "dates" => Ok(Task::Dates),
            _ => Err(Error::input(format!("task `{name}` is not one jielong makes; use one of: {}", TASK_NAMES.join(", ")))),
        }
    }

    /// Default (min_len, max_len): letters for reverse, digits for numbers; None for dates.
    pub fn default_lengths(&self) -> Option<(usize, usize)> {
        match self {
            Task::Reverse => Some((4, 12)),
            Task::NumbersEn | Task::NumbersZh => Some((1, 9)),
            Task::Dates => None,
        }
    }

    /// Check the length bounds for this task.
    pub fn check_lengths(&self, min_len: usize, max_len: usize) -> Result<()> {
        let top = match self {
            Task::Reverse => 10_000,
            Task::NumbersEn | Task::NumbersZh => 15,
            Task::Dates => return Err(Error::input("task dates has its own lengths: leave out --min-len and --max-len")),
        };
        if min_len == 0 || min_len > max_len || max_len > top {
            let unit = if *self == Task::Reverse { "letters" } else { "digits" };
            return Err(Error::input(format!("--min-len {min_len} --max-len {max_len}: need 1 ≤ min-len ≤ max-len ≤ {top} ({unit})")));
        }
        Ok(())
    }

    /// Example `i` of a set drawn with `seed`, lengths in `min_len..=max_len` (ignored for dates).
    pub fn pair(&self, seed: u64, i: u64, min_len: usize, max_len: usize) -> Pair {
        let mut rng = Rng::derive(seed, &[i]);
        let len = |rng: &mut Rng| min_len + rng.below((max_len - min_len + 1) as u64) as usize;
        match self {
            Task::Reverse => {
                let n = len(&mut rng);
                let source: String = (0..n).map(|_| (b'a' + rng.below(26) as u8) as char).collect();
                Pair { target: source.chars().rev().collect(), source }
            }
            Task::NumbersEn | Task::NumbersZh => {
                let digits = len(&mut rng) as u32;
                let lo = if digits == 1 { 0 } else { 10u64.pow(digits - 1) };
                let n = lo + rng.below(10u64.pow(digits) - lo);
                let words = if *self == Task::NumbersEn { numbers::english(n) } else { numbers::chinese(n) };
                Pair { source: n.to_string(), target: words.expect("at most 15 digits") }
            }
            Task::Dates => {
                let d = dates::Date::random(&mut rng);
                Pair { source: d.format(rng.below(dates::FORMATS as u64) as usize), target: d.iso() }
            }
        }
    }

    /// `n` examples as JSON lines.
    pub fn make_jsonl(&self, n: u64, seed: u64, min_len: usize, max_len: usize) -> String {
        let mut out = String::new();
        for i in 0..n {
            out.push_str(&serde_json::to_string(&self.pair(seed, i, min_len, max_len)).expect("pair serializes"));
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_pairs_are_deterministic_and_within_lengths() {
        for name in TASK_NAMES {
            let t = Task::from_name(name).unwrap();
            let (lo, hi) = t.default_lengths().unwrap_or((0, 0));
            let a = t.make_jsonl(50, 7, lo, hi);
            assert_eq!(a, t.make_jsonl(50, 7, lo, hi));
            assert_ne!(a, t.make_jsonl(50, 8, lo, hi));
            for line in a.lines() {
                let p: Pair = serde_json::from_str(line).unwrap();
                match t {
                    Task::Reverse => {
                        assert_eq!(p.target.chars().rev().collect::<String>(), p.source);
                        assert!((lo..=hi).contains(&p.source.len()));
                    }
                    Task::NumbersEn | Task::NumbersZh => {
                        assert!((lo..=hi).contains(&p.source.len()) && !p.source.starts_with('0') || p.source == "0");
                        let n: u64 = p.source.parse().unwrap();
                        let w = if t == Task::NumbersEn { numbers::english(n) } else { numbers::chinese(n) };
                        assert_eq!(w.unwrap(), p.target);
                    }
                    Task::Dates => assert_eq!(p.target.len(), 10),
                }
            }
        }
        assert!(Task::from_name("sort").unwrap_err().to_string().contains("reverse, numbers-en"));
        assert!(Task::Reverse.check_lengths(5, 3).is_err());
        assert!(Task::NumbersZh.check_lengths(1, 16).is_err());
        assert!(Task::Dates.check_lengths(1, 3).unwrap_err().is_user_error());
    }
}
