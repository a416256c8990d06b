//! Parsing of GitHub's `X-Hub-Signature-256` header.
//!
//! The HMAC itself is checked by the host (`credentials.verify-hmac-sha256`), so the webhook
//! secret never enters the guest; this module only turns `sha256=<hex>` into bytes.

/// The raw 32-byte signature from a `sha256=<64 hex digits>` header value, or why it is not one.
pub fn parse(header: &str) -> Result<Vec<u8>, &'static str> {
    let hex = header.trim().strip_prefix("sha256=").ok_or("X-Hub-Signature-256 does not start with sha256=")?;
    if hex.len() != 64 {
        return Err("X-Hub-Signature-256 is not a 64-digit hex digest");
    }
    hex.as_bytes()
        .chunks_exact(2)
        .map(|pair| Some((nibble(pair[0])? << 4) | nibble(pair[1])?))
        .collect::<Option<Vec<u8>>>()
        .ok_or("X-Hub-Signature-256 is not valid hex")
}

fn nibble(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The published vector (GitHub docs, "Validating webhook deliveries").
    const VECTOR: &str = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

    #[test]
    fn parses_the_published_vector() {
        let bytes = parse(VECTOR).expect("valid");
        assert_eq!(bytes.len(), 32);
        assert_eq!(&bytes[..4], &[0x75, 0x71, 0x07, 0xea]);
        assert_eq!(&bytes[28..], &[0x8b, 0x04, 0x3e, 0x17]);
        assert_eq!(parse(&VECTOR.to_uppercase().replace("SHA256=", "sha256=")), Ok(bytes));
    }

    #[test]
    fn rejects_malformed_values() {
        assert!(parse("sha1=757107ea").is_err());
        assert!(parse("sha256=").is_err());
        assert!(parse("sha256=75").is_err());
        assert!(parse(&format!("sha256={}", "zz".repeat(32))).is_err());
        assert!(parse(&format!("sha256={}", "ab".repeat(33))).is_err());
    }
}
