//! Attachments (protocol §3.14, §3.15, §7.3): what is accepted, how URLs are signed, and what
//! the model is given. The engine's operations on them are in `engine/attachments.rs`, their
//! rows in `store/attachments.rs`.
//!
//! - `media.rs` — media types: which are accepted, which render inline, and the check of the
//!   bytes against the declared type (a "PNG" that is HTML is refused).
//! - `signing.rs` — signed, expiring upload and preview URLs (HMAC-SHA256).
//! - `generated.rs` — files the model makes: signed content URLs in their items, and the
//!   attachment id such a URL names.
//! - `model_input.rs` — attachments in the model's input: images as data URLs, text as text,
//!   PDFs as file parts.

pub(crate) mod generated;
pub(crate) mod media;
pub(crate) mod model_input;
pub mod signing;

pub use media::served_type;
pub use signing::{PublicOrigin, UrlSigner};
