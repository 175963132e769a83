//! GPT-2's reversible byte-to-character table: every byte gets a printable character, so byte-level
//! BPE pieces can be stored as strings. We only need the inverse to show pieces to people.

use std::collections::HashMap;

/// Map from the printable stand-in character back to the byte it represents.
pub fn char_to_byte() -> HashMap<char, u8> {
    let mut printable: Vec<u32> = (b'!' as u32..=b'~' as u32).collect();
    printable.extend(0xA1..=0xAC);
    printable.extend(0xAE..=0xFF);
    let mut map = HashMap::with_capacity(256);
    let mut extra = 0u32;
    for b in 0u32..256 {
        let c = if printable.contains(&b) {
            b
        } else {
            extra += 1;
            255 + extra
        };
        map.insert(char::from_u32(c).expect("valid char"), b as u8);
    }
    map
}

#[cfg(test)]
mod tests {
    #[test]
    fn byte_level_table_is_a_bijection() {
        let m = super::char_to_byte();
        assert_eq!(m.len(), 256);
        assert_eq!(m[&'Ġ'], b' ');
        assert_eq!(m[&'Ċ'], b'\n');
        assert_eq!(m[&'a'], b'a');
    }
}
