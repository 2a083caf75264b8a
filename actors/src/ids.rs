//! Identifier generation. The reference uses 8 hex characters (32 random bits, §13.20), which
//! collide in a shared database; we keep its prefixes and use 96 random bits.

/// Prefixes of §2.4.
pub mod prefix {
    pub const THREAD: &str = "thr";
    pub const MESSAGE: &str = "msg";
    pub const TOOL_CALL: &str = "tc";
    pub const WORKFLOW: &str = "wf";
    pub const TASK: &str = "tsk";
    pub const SDK_HIDDEN_CONTEXT: &str = "shcx";
}

/// `<prefix>_` followed by 24 lowercase hex characters (96 random bits).
pub fn new_id(prefix: &str) -> String {
    let random: u128 = rand::random::<u128>() >> 32;
    format!("{prefix}_{random:024x}")
}

/// Longest identifier we accept from a client; ids are opaque but bounded so they cannot be
/// used to bloat indexes or logs.
pub const MAX_ID_LEN: usize = 128;

/// A client-supplied id is plausible: non-empty, bounded, printable ASCII without spaces.
pub fn is_valid_client_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_ID_LEN && id.bytes().all(|b| b.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_prefix_and_96_bits() {
        let id = new_id(prefix::THREAD);
        assert!(id.starts_with("thr_"));
        assert_eq!(id.len(), 4 + 24);
        assert_ne!(new_id("msg"), new_id("msg"));
    }

    #[test]
    fn client_ids_are_bounded() {
        assert!(is_valid_client_id("thr_abc"));
        assert!(!is_valid_client_id(""));
        assert!(!is_valid_client_id("a b"));
        assert!(!is_valid_client_id(&"x".repeat(200)));
    }
}
