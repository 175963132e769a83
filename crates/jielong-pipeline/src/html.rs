//! Main text out of HTML: Mozilla's Readability algorithm (the `dom_smoothie` port) finds the
//! article and drops navigation, sidebars, footers and other boilerplate; the text keeps
//! paragraphs as blank-line-separated blocks. Bytes in a legacy encoding are repaired first:
//! the charset is guessed (`chardetng`, the detector Firefox uses) and decoded
//! (`encoding_rs`) rather than turned into U+FFFD.

use dom_smoothie::{Config, Readability, TextMode};

/// Decode bytes to text: UTF-8 when they are, otherwise the detected legacy encoding.
/// Returns the text and whether it had to be repaired.
pub fn decode(bytes: &[u8]) -> (String, bool) {
    match std::str::from_utf8(bytes) {
        Ok(s) => (s.to_string(), false),
        Err(_) => {
            let mut det = chardetng::EncodingDetector::new(chardetng::Iso2022JpDetection::Allow);
            det.feed(bytes, true);
            let enc = det.guess(None, chardetng::Utf8Detection::Allow);
            let (text, _, _) = enc.decode(bytes);
            (text.into_owned(), true)
        }
    }
}

/// The article's title and text, or `None` when the page holds no article text.
pub fn extract(html: &str, url: Option<&str>) -> Option<(String, String)> {
    let cfg = Config { text_mode: TextMode::Formatted, ..Default::default() };
    let url = url.filter(|u| u.starts_with("http://") || u.starts_with("https://"));
    let mut r = Readability::new(html, url, Some(cfg)).ok()?;
    let article = r.parse().ok()?;
    let text = tidy(&article.text_content);
    if text.is_empty() {
        return None;
    }
    Some((article.title.trim().to_string(), text))
}

/// Trim every line, and collapse runs of blank lines into one.
fn tidy(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut blank = false;
    for line in text.lines().map(str::trim) {
        if line.is_empty() {
            blank = !out.is_empty();
            continue;
        }
        if blank {
            out.push_str("\n\n");
        } else if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(line);
        blank = false;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extract_keeps_the_article_and_drops_the_boilerplate() {
        let html = r#"<html><head><title>River towns</title></head><body>
<nav><a href="/">Home</a> | <a href="/about">About us</a> | <a href="/login">Log in</a></nav>
<article><h1>River towns</h1>
<p>The river carried timber down to the mills, and every spring the town grew a little larger. Families came from the hills to work the saws, and the market square filled with their carts.</p>
<p>By the end of the century the mills had closed, but the town kept its bridges, its library and the habit of meeting by the water on summer evenings, when the light stayed late.</p>
<p>河水把木材送到下游的工厂，小城一年比一年热闹。人们从山里来到这里做工，集市上挤满了他们的车。</p>
</article>
<footer>Copyright 2026. All rights reserved. Privacy policy.</footer></body></html>"#;
        let (title, text) = extract(html, Some("https://example.org/river")).unwrap();
        assert_eq!(title, "River towns");
        assert!(text.contains("The river carried timber"), "{text}");
        assert!(text.contains("河水把木材送到下游的工厂"), "{text}");
        assert!(!text.contains("Log in") && !text.contains("All rights reserved"), "{text}");
    }

    #[test]
    fn decode_repairs_gbk_and_keeps_utf8() {
        let (gbk, _, _) = encoding_rs::GBK.encode("春天来了，河水带着木材流向下游的工厂，小城一年比一年热闹。");
        let (text, repaired) = decode(&gbk);
        assert!(repaired);
        assert_eq!(text, "春天来了，河水带着木材流向下游的工厂，小城一年比一年热闹。");
        assert_eq!(decode("plain".as_bytes()), ("plain".to_string(), false));
    }
}
