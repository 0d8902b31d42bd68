//! The byte-level alphabet in which GGUF `gpt2` vocabularies store their tokens: every byte maps to one printable
//! character (printable ASCII and Latin-1 map to themselves, the rest to U+0100 upward in byte order).

/// The character that stands for byte `b`.
pub fn byte_to_char(b: u8) -> char {
    BYTE_TO_CHAR.with(|t| t[b as usize])
}

/// The byte a vocabulary character stands for, `None` for characters outside the alphabet.
pub fn char_to_byte(c: char) -> Option<u8> {
    let c = c as u32;
    match c {
        0x21..=0x7e | 0xa1..=0xac | 0xae..=0xff => Some(c as u8),
        0x100..=0x143 => non_printable().nth((c - 0x100) as usize),
        _ => None,
    }
}

/// Encodes bytes into the byte-level alphabet.
pub fn encode(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| byte_to_char(b)).collect()
}

fn printable(b: u8) -> bool {
    matches!(b, 0x21..=0x7e | 0xa1..=0xac | 0xae..=0xff)
}

fn non_printable() -> impl Iterator<Item = u8> {
    (0u8..=255).filter(|&b| !printable(b))
}

thread_local! {
    static BYTE_TO_CHAR: [char; 256] = {
        let mut t = ['\0'; 256];
        let mut next = 0x100u32;
        for b in 0u8..=255 {
            t[b as usize] = if printable(b) {
                b as char
            } else {
                let c = char::from_u32(next).expect("U+0100..U+0143 are valid chars");
                next += 1;
                c
            };
        }
        t
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bijective_over_all_bytes() {
        for b in 0u8..=255 {
            assert_eq!(char_to_byte(byte_to_char(b)), Some(b));
        }
        assert_eq!(byte_to_char(b' '), 'Ġ');
        assert_eq!(byte_to_char(b'\n'), 'Ċ');
        assert_eq!(char_to_byte('€'), None);
    }
}
