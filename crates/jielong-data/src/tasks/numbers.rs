//! Numbers written out in words, the targets of the `numbers-en` and `numbers-zh` tasks.
//!
//! English: American style without "and" ("two thousand twenty-six", "one hundred one"),
//! tens and ones joined by a hyphen, short scale (thousand, million, billion, trillion).
//!
//! Chinese: groups of four digits with 万, 亿 and 万亿; inside a group 千 百 十. Rules:
//! - one 零 stands for any run of zeros between two non-zero digits (101 一百零一,
//!   1001 一千零一); trailing zeros are not read (1000 一千);
//! - a group below 1000 after a higher non-zero part, or an all-zero group between non-zero
//!   ones, is preceded by one 零 (10 0010 十万零一十, 1 0000 0001 一亿零一);
//! - a number starting with 10–19 drops the 一 of 一十 (10 十, 11 0000 十一万), elsewhere it
//!   stays (110 一百一十);
//! - 2 is 两 as the first digit of a group before 千 or 百, and as a whole group before 万 or
//!   亿 (2026 两千零二十六, 200 两百, 2 0000 两万), and 二 elsewhere (二十, 十二, 二十万,
//!   1200 一千二百).

const ONES: [&str; 20] = [
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve", "thirteen",
    "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen",
];
const TENS: [&str; 10] = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"];
const SCALES: [&str; 5] = ["", "thousand", "million", "billion", "trillion"];

/// The largest number either language writes out (15 digits).
pub const MAX_NUMBER: u64 = 999_999_999_999_999;

/// `n` in English words; None above [`MAX_NUMBER`].
pub fn english(n: u64) -> Option<String> {
    if n > MAX_NUMBER {
        return None;
    }
    if n == 0 {
        return Some("zero".into());
    }
    let mut groups = Vec::new();
    let mut rest = n;
    while rest > 0 {
        groups.push((rest % 1000) as usize);
        rest /= 1000;
    }
    let mut words = Vec::new();
    for (i, &g) in groups.iter().enumerate().rev() {
        if g == 0 {
            continue;
        }
        if g >= 100 {
            words.push(format!("{} hundred", ONES[g / 100]));
        }
        let r = g % 100;
        if r >= 20 {
            words.push(if r % 10 == 0 { TENS[r / 10].to_string() } else { format!("{}-{}", TENS[r / 10], ONES[r % 10]) });
        } else if r > 0 {
            words.push(ONES[r].to_string());
        }
        if i > 0 {
            words.push(SCALES[i].to_string());
        }
    }
    Some(words.join(" "))
}

const DIGITS: [char; 10] = ['零', '一', '二', '三', '四', '五', '六', '七', '八', '九'];
const GROUP_UNITS: [&str; 4] = ["", "万", "亿", "万亿"];

/// One group of four digits (1..=9999). `first`: the group opens the number; `big_unit`: 万
/// or 亿 follows it.
fn chinese_group(g: usize, first: bool, big_unit: bool, out: &mut String) {
    let digits = [g / 1000, g / 100 % 10, g / 10 % 10, g % 10];
    let (mut seen, mut zero) = (false, false);
    for (i, &d) in digits.iter().enumerate() {
        let pos = 3 - i; // 3 千, 2 百, 1 十, 0 ones
        if d == 0 {
            zero |= seen;
            continue;
        }
        if zero {
            out.push('零');
            zero = false;
        }
        if d == 2 && ((pos >= 2 && !seen) || (pos == 0 && g == 2 && big_unit)) {
            out.push('两');
        } else if !(d == 1 && pos == 1 && !seen && first) {
            out.push(DIGITS[d]);
        }
        out.push_str(["", "十", "百", "千"][pos]);
        seen = true;
    }
}

/// `n` in Chinese numerals; None above [`MAX_NUMBER`].
pub fn chinese(n: u64) -> Option<String> {
    if n > MAX_NUMBER {
        return None;
    }
    if n == 0 {
        return Some("零".into());
    }
    let mut groups = Vec::new();
    let mut rest = n;
    while rest > 0 {
        groups.push((rest % 10_000) as usize);
        rest /= 10_000;
    }
    let mut out = String::new();
    let (mut started, mut pending_zero) = (false, false);
    for (i, &g) in groups.iter().enumerate().rev() {
        if g == 0 {
            pending_zero |= started;
            continue;
        }
        if started && (pending_zero || g < 1000) {
            out.push('零');
        }
        chinese_group(g, !started, i > 0, &mut out);
        out.push_str(GROUP_UNITS[i]);
        started = true;
        pending_zero = false;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn english_known_answers() {
        for (n, want) in [
            (0, "zero"),
            (7, "seven"),
            (13, "thirteen"),
            (20, "twenty"),
            (42, "forty-two"),
            (100, "one hundred"),
            (101, "one hundred one"),
            (999, "nine hundred ninety-nine"),
            (1000, "one thousand"),
            (2026, "two thousand twenty-six"),
            (10_000, "ten thousand"),
            (100_010, "one hundred thousand ten"),
            (1_000_001, "one million one"),
            (100_000_000, "one hundred million"),
            (3_000_400_000_015, "three trillion four hundred million fifteen"),
        ] {
            assert_eq!(english(n).unwrap(), want, "{n}");
        }
        assert_eq!(english(MAX_NUMBER + 1), None);
    }

    #[test]
    fn chinese_known_answers_with_zero_rules() {
        for (n, want) in [
            (0, "零"),
            (2, "二"),
            (10, "十"),
            (12, "十二"),
            (20, "二十"),
            (101, "一百零一"),
            (110, "一百一十"),
            (200, "两百"),
            (222, "两百二十二"),
            (1000, "一千"),
            (1001, "一千零一"),
            (1010, "一千零一十"),
            (2026, "两千零二十六"),
            (10_000, "一万"),
            (10_100, "一万零一百"),
            (20_000, "两万"),
            (20_002, "两万零二"),
            (100_010, "十万零一十"),
            (110_000, "十一万"),
            (200_000, "二十万"),
            (1_000_100, "一百万零一百"),
            (12_345_678, "一千二百三十四万五千六百七十八"),
            (100_000_000, "一亿"),
            (100_000_001, "一亿零一"),
            (200_000_000, "两亿"),
            (1_000_010_000, "十亿零一万"),
            (1_002_003_004, "十亿零两百万三千零四"),
            (1200, "一千二百"),
            (1_000_000_000_000, "一万亿"),
        ] {
            assert_eq!(chinese(n).unwrap(), want, "{n}");
        }
        assert_eq!(chinese(MAX_NUMBER + 1), None);
    }
}
