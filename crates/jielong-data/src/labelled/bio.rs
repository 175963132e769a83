//! BIO (IOB2) tags: `O`, `B-TYPE` (an entity starts), `I-TYPE` (it goes on).
//!
//! [`entities`] cuts a tag sequence into entities exactly as `seqeval.metrics.sequence_labeling.
//! get_entities` does in its default (non-strict) mode, so jielong's scores equal seqeval's: an
//! `I-` after `O` or after another type *starts* an entity there, as seqeval reads it.
//! [`repair_bio`] makes such sequences valid IOB2 before training (that `I-` becomes `B-`), which
//! leaves seqeval's reading of the sequence unchanged.

/// An entity in a tag sequence: its type and the positions it covers, `start..end` (end
/// exclusive).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TagSpan {
    pub label: String,
    pub start: usize,
    pub end: usize,
}

/// The prefix (`O`, `B`, `I`, and `E`/`S` which seqeval also knows) and the type of `tag`, as
/// seqeval splits it: `B-LOC` → (`B`, `LOC`); `O` → (`O`, `_`).
fn split(tag: &str) -> (char, &str) {
    let mut chars = tag.chars();
    let prefix = chars.next().unwrap_or('O');
    let rest = chars.as_str();
    let ty = rest.split_once('-').map_or(rest, |(_, t)| t);
    // Python: chunk[1:].split('-', maxsplit=1)[-1] or '_'
    (prefix, if ty.is_empty() { "_" } else { ty })
}

fn end_of_chunk(prev: char, tag: char, prev_ty: &str, ty: &str) -> bool {
    matches!(prev, 'E' | 'S')
        || (matches!(prev, 'B' | 'I') && matches!(tag, 'B' | 'S' | 'O'))
        || (prev != 'O' && prev != '.' && prev_ty != ty)
}

fn start_of_chunk(prev: char, tag: char, prev_ty: &str, ty: &str) -> bool {
    matches!(tag, 'B' | 'S')
        || (matches!(prev, 'E' | 'S' | 'O') && matches!(tag, 'E' | 'I'))
        || (tag != 'O' && tag != '.' && prev_ty != ty)
}

/// The entities of one tag sequence, in order, as seqeval's `get_entities` finds them.
pub fn entities<S: AsRef<str>>(tags: &[S]) -> Vec<TagSpan> {
    let mut out = Vec::new();
    let (mut prev, mut prev_ty) = ('O', String::new());
    let mut begin = 0;
    for i in 0..=tags.len() {
        let (tag, ty) = if i < tags.len() { split(tags[i].as_ref()) } else { ('O', "_") };
        if end_of_chunk(prev, tag, &prev_ty, ty) {
            out.push(TagSpan { label: prev_ty.clone(), start: begin, end: i });
        }
        if start_of_chunk(prev, tag, &prev_ty, ty) {
            begin = i;
        }
        prev = tag;
        prev_ty = ty.to_string();
    }
    out
}

/// Whether `tag` is a well-formed IOB2 tag: `O`, or `B-`/`I-` followed by a non-empty type.
pub fn is_valid_tag(tag: &str) -> bool {
    tag == "O" || ((tag.starts_with("B-") || tag.starts_with("I-")) && tag.len() > 2)
}

/// Turn every `I-X` that does not continue an `X` entity (after `O`, at the start, or after
/// another type) into `B-X`; returns how many were changed. Tags must be valid (see
/// [`is_valid_tag`]).
pub fn repair_bio(tags: &mut [String]) -> usize {
    let mut fixed = 0;
    let mut prev_ty: Option<String> = None;
    for tag in tags.iter_mut() {
        if let Some(ty) = tag.strip_prefix("I-") {
            if prev_ty.as_deref() != Some(ty) {
                *tag = format!("B-{ty}");
                fixed += 1;
            }
        }
        prev_ty = tag.get(2..).filter(|_| tag != "O").map(str::to_string);
    }
    fixed
}

/// The first position of `tags` that [`repair_bio`] would change, if any.
pub fn first_invalid_i(tags: &[String]) -> Option<usize> {
    let mut copy = tags.to_vec();
    repair_bio(&mut copy);
    copy.iter().zip(tags).position(|(a, b)| a != b)
}

/// BIO tags for `n` positions with `spans` (start..end, type) marked; spans must not overlap.
pub fn tags_from_spans(n: usize, spans: &[TagSpan]) -> Vec<String> {
    let mut tags = vec!["O".to_string(); n];
    for s in spans {
        for (k, t) in tags[s.start..s.end].iter_mut().enumerate() {
            *t = format!("{}-{}", if k == 0 { 'B' } else { 'I' }, s.label);
        }
    }
    tags
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(label: &str, start: usize, end: usize) -> TagSpan {
        TagSpan { label: label.into(), start, end }
    }

    #[test]
    fn entities_reads_bio_like_seqeval() {
        let t = ["B-PER", "I-PER", "O", "B-LOC", "B-LOC", "I-LOC"];
        assert_eq!(entities(&t), vec![span("PER", 0, 2), span("LOC", 3, 4), span("LOC", 4, 6)]);
        // seqeval's lenient reading: an I- after O starts an entity; a type change splits one.
        let t = ["O", "I-ORG", "I-ORG", "I-PER", "O"];
        assert_eq!(entities(&t), vec![span("ORG", 1, 3), span("PER", 3, 4)]);
        assert!(entities::<&str>(&[]).is_empty());
        assert_eq!(entities(&["B-MISC"]), vec![span("MISC", 0, 1)]);
    }

    #[test]
    fn repair_bio_counts_and_keeps_seqeval_reading() {
        let mut t: Vec<String> = ["I-PER", "I-PER", "O", "I-LOC", "B-ORG", "I-LOC", "I-LOC"].iter().map(|s| s.to_string()).collect();
        let before = entities(&t);
        assert_eq!(first_invalid_i(&t), Some(0));
        assert_eq!(repair_bio(&mut t), 3);
        assert_eq!(t, ["B-PER", "I-PER", "O", "B-LOC", "B-ORG", "B-LOC", "I-LOC"]);
        assert_eq!(entities(&t), before);
        assert_eq!(first_invalid_i(&t), None);
    }

    #[test]
    fn tags_from_spans_round_trips() {
        let spans = vec![span("PER", 0, 2), span("LOC", 2, 3)];
        let tags = tags_from_spans(5, &spans);
        assert_eq!(tags, ["B-PER", "I-PER", "B-LOC", "O", "O"]);
        assert_eq!(entities(&tags), spans);
        assert!(is_valid_tag("B-X") && !is_valid_tag("B-") && !is_valid_tag("X-PER"));
    }
}
