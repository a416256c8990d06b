//! Identifiers: a type prefix, the creation time and random bits, e.g.
//! `evt_0193a4c2e8f1b3d27a9e04c5f6a1`.
//!
//! The 12 hex digits after the prefix are the creation time in Unix milliseconds (48 bits, as in
//! UUIDv7 and ULID), the 16 after them 64 bits from the system's random generator. Ids made later
//! sort after ids made earlier (to the millisecond, across hosts as far as their clocks agree), so
//! a new row's key lands at the right edge of every b-tree it is indexed in — the events and
//! deliveries tables take millions of inserts, and random keys would dirty a random leaf page of
//! each index per insert once the table is larger than the cache. Ids are not secrets: the time
//! they carry is the row's `created_at`, which the API shows anyway; nothing that must be
//! unguessable (tokens, hook ids, keys) is made here.

use ring::rand::{SecureRandom, SystemRandom};

/// Hex digits of the time part.
const TIME_DIGITS: usize = 12;

/// A time-ordered id with a type prefix: 48 bits of Unix milliseconds and 64 random bits, e.g.
/// `ins_0193a4c2e8f1b3d27a9e04c5f6a1`.
pub fn new_id(prefix: &str) -> String {
    id_at(prefix, crate::now_ms())
}

/// The id [`new_id`] makes at `ms` (Unix milliseconds; only the low 48 bits are kept, which last
/// until the year 10889).
fn id_at(prefix: &str, ms: i64) -> String {
    let mut b = [0u8; 8];
    // SystemRandom only fails if the OS has no entropy source at all.
    let _ = SystemRandom::new().fill(&mut b);
    let time = (ms.max(0) as u64) & ((1 << (4 * TIME_DIGITS)) - 1);
    format!("{prefix}_{time:0width$x}{}", hex::encode(b), width = TIME_DIGITS)
}

/// `n` bytes from the system's random generator, as lowercase hex.
pub fn random_hex(n: usize) -> Result<String, crate::Error> {
    let mut bytes = vec![0u8; n];
    SystemRandom::new().fill(&mut bytes).map_err(|_| crate::Error::internal("the system random generator failed"))?;
    Ok(hex::encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::id_at;

    #[test]
    fn ids_carry_their_prefix_and_differ() {
        let (a, b) = (super::new_id("ins"), super::new_id("ins"));
        assert!(a.starts_with("ins_") && a.len() == 4 + 28, "{a}");
        assert!(a[4..].bytes().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()), "{a}");
        assert_ne!(a, b);
        assert_eq!(super::random_hex(32).map(|h| h.len()).ok(), Some(64));
    }

    #[test]
    fn ids_sort_by_creation_time() {
        // One millisecond apart, and across a change of the leading digit.
        let ms = [0x00ff_ffff_ffff, 0x0100_0000_0000, 1_765_000_000_000, 1_765_000_000_001];
        let ids: Vec<String> = ms.iter().map(|&t| id_at("evt", t)).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
        assert_eq!(&id_at("evt", 1_765_000_000_000)[4..16], "019af232b200");
        // Before 1970 (a clock set wrong) is time 0, not a wrapped-around future.
        assert_eq!(&id_at("evt", -5)[4..16], "000000000000");
        // Ids of the same millisecond differ by their random part.
        assert_ne!(id_at("evt", 7), id_at("evt", 7));
    }
}
