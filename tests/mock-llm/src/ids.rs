//! Random ids shaped like the reference's `uuid.uuid4().hex[:24]`.

/// The first 24 hex digits of a random version-4 UUID: digit 12 is always `4` and digit 16 one
/// of `89ab`, as in `uuid4().hex[:24]`.
pub fn uuid4_hex24() -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut bytes = rand::random::<u128>().to_be_bytes();
    bytes[6] = (bytes[6] & 0x0f) | 0x40; // version 4
    bytes[8] = (bytes[8] & 0x3f) | 0x80; // RFC 4122 variant
    let mut out = String::with_capacity(24);
    for b in &bytes[..12] {
        out.push(HEX[usize::from(b >> 4)] as char);
        out.push(HEX[usize::from(b & 0xf)] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn shaped_like_uuid4_hex() {
        for _ in 0..100 {
            let id = super::uuid4_hex24();
            assert_eq!(id.len(), 24);
            assert!(id
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
            assert_eq!(&id[12..13], "4");
            assert!("89ab".contains(&id[16..17]));
        }
    }
}
