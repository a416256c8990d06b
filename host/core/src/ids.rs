//! Identifiers: a type prefix and random hex, e.g. `ins_3f9a0c1b2d4e5f60`.

use ring::rand::{SecureRandom, SystemRandom};

/// A random id with a type prefix and 64 random bits, e.g. `ins_3f9a0c1b2d4e5f60`.
pub fn new_id(prefix: &str) -> String {
    let mut b = [0u8; 8];
    // SystemRandom only fails if the OS has no entropy source at all.
    let _ = SystemRandom::new().fill(&mut b);
    format!("{prefix}_{}", hex::encode(b))
}

/// `n` bytes from the system's random generator, as lowercase hex.
pub fn random_hex(n: usize) -> Result<String, crate::Error> {
    let mut bytes = vec![0u8; n];
    SystemRandom::new().fill(&mut bytes).map_err(|_| crate::Error::internal("the system random generator failed"))?;
    Ok(hex::encode(bytes))
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_carry_their_prefix_and_differ() {
        let (a, b) = (super::new_id("ins"), super::new_id("ins"));
        assert!(a.starts_with("ins_") && a.len() == 20, "{a}");
        assert_ne!(a, b);
        assert_eq!(super::random_hex(32).map(|h| h.len()).ok(), Some(64));
    }
}
