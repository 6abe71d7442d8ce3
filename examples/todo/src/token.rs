//! Share tokens for lists: random, URL-safe, 11 characters of `[A-Za-z0-9]` like the Rails
//! app's `SecureRandom.base64(8)` with `/`, `+` and `=` removed. Owns generation and the
//! shape check used by routing; knows nothing about storage.

const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// Length of generated tokens.
pub const LENGTH: usize = 11;

/// A fresh token from the operating system's random source.
pub fn generate() -> Result<String, getrandom::Error> {
    let mut token = String::with_capacity(LENGTH);
    while token.len() < LENGTH {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes)?;
        // 248 = 4 * 62: rejecting larger bytes keeps every character equally likely.
        for b in bytes.iter().filter(|b| **b < 248) {
            if token.len() == LENGTH {
                break;
            }
            token.push(char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]));
        }
    }
    Ok(token)
}

/// Whether `s` could be a token (1–32 ASCII letters or digits). Old 10-character tokens pass.
pub fn looks_valid(s: &str) -> bool {
    (1..=32).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_are_valid_and_differ() {
        let a = generate().ok();
        let b = generate().ok();
        assert!(a.as_deref().is_some_and(looks_valid));
        assert_eq!(a.as_ref().map(String::len), Some(LENGTH));
        assert_ne!(a, b);
    }

    #[test]
    fn rejects_paths_that_are_not_tokens() {
        assert!(!looks_valid("favicon.ico"));
        assert!(!looks_valid(""));
        assert!(looks_valid("AbC123xyz0"));
    }
}
