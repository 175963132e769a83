//! Text laid out for a terminal: columns side by side, measured in display cells (a Chinese
//! character or an emoji takes two).

use unicode_width::UnicodeWidthChar;

/// The terminal's width, or 100 columns when output is not a terminal (`COLUMNS` overrides).
pub fn terminal_width() -> usize {
    if let Some(w) = std::env::var("COLUMNS").ok().and_then(|c| c.parse().ok()) {
        return w;
    }
    terminal_size::terminal_size().map(|(w, _)| w.0 as usize).unwrap_or(100)
}

/// Break `text` into lines of at most `width` cells (at spaces where possible).
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    let width = width.max(4);
    let mut lines = Vec::new();
    for para in text.split('\n') {
        let mut line = String::new();
        let mut w = 0;
        let mut last_space: Option<(usize, usize)> = None; // (byte index in line, width up to it)
        for ch in para.chars() {
            let cw = ch.width().unwrap_or(0);
            if w + cw > width && ch == ' ' {
                // The line is full exactly at a space: break here and drop the space.
                lines.push(std::mem::take(&mut line));
                w = 0;
                last_space = None;
                continue;
            }
            if w + cw > width {
                match last_space {
                    Some((at, wat)) if at > 0 => {
                        let rest = line.split_off(at + 1);
                        lines.push(line.trim_end().to_string());
                        line = rest;
                        w -= wat + 1;
                    }
                    _ => {
                        lines.push(std::mem::take(&mut line));
                        w = 0;
                    }
                }
                last_space = None;
                if ch == ' ' && line.is_empty() {
                    continue;
                }
            }
            if ch == ' ' {
                last_space = Some((line.len(), w));
            }
            line.push(ch);
            w += cw;
        }
        lines.push(line);
    }
    lines
}

fn pad(s: &str, width: usize) -> String {
    let w: usize = s.chars().map(|c| c.width().unwrap_or(0)).sum();
    format!("{s}{}", " ".repeat(width.saturating_sub(w)))
}

/// Columns with a title each, side by side when there is room, one after another otherwise.
pub fn side_by_side(columns: &[(String, String)], total_width: usize) -> String {
    let n = columns.len().max(1);
    let gap = 3;
    let col = (total_width.saturating_sub(gap * (n - 1))) / n;
    let mut out = String::new();
    if col < 24 {
        for (title, text) in columns {
            out += &format!("── {title} ──\n{text}\n\n");
        }
        return out;
    }
    let wrapped: Vec<Vec<String>> = columns.iter().map(|(t, text)| {
        let mut lines = vec![format!("── {t} ──").chars().take(col).collect::<String>()];
        lines.extend(wrap(text, col));
        lines
    }).collect();
    let rows = wrapped.iter().map(Vec::len).max().unwrap_or(0);
    for r in 0..rows {
        let cells: Vec<String> = wrapped.iter().map(|c| pad(c.get(r).map_or("", |s| s.as_str()), col)).collect();
        out += cells.join(&" ".repeat(gap)).trim_end();
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_counts_wide_characters_as_two_cells() {
        let lines = wrap("接龙接龙接龙 ab cd", 6);
        assert_eq!(lines, vec!["接龙接", "龙接龙", "ab cd"]);
        assert_eq!(wrap("one two three", 7), vec!["one two", "three"]);
    }

    #[test]
    fn side_by_side_aligns_columns() {
        let s = side_by_side(&[("a".into(), "x y z".into()), ("b".into(), "龙龙".into())], 60);
        let lines: Vec<&str> = s.lines().collect();
        assert!(lines[0].starts_with("── a ──") && lines[0].contains("── b ──"));
        // Column b starts at the same cell on every line.
        assert_eq!(lines[1].find('龙').map(|i| lines[1][..i].chars().count()), Some(lines[0].find("── b").map(|i| lines[0][..i].chars().count()).unwrap()));
        let five: Vec<(String, String)> = (0..5).map(|_| ("a".into(), "x".into())).collect();
        assert!(side_by_side(&five, 60).contains("── a ──\nx\n"));
    }
}
