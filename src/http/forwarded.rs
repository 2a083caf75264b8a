//! Whose `Forwarded` / `X-Forwarded-Host` / `X-Forwarded-Proto` / `X-Forwarded-For` headers
//! we believe: only a request whose TCP peer is in `server.trusted_proxies` (a proxy we put
//! there). Anyone else could send them to point the URLs we hand out (attachment upload and
//! preview URLs) at a host of their choosing; for them the request's own scheme and `Host`
//! count.

use std::net::{IpAddr, SocketAddr};

use actix_web::http::header;
use actix_web::HttpRequest;

/// An address, or a block of them in CIDR notation (`10.0.0.0/8`, `fd00::/8`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpBlock {
    addr: IpAddr,
    prefix: u8,
}

impl IpBlock {
    /// `addr` or `addr/prefix`; host bits after the prefix are ignored (`10.1.2.3/8` is
    /// `10.0.0.0/8`).
    pub fn parse(text: &str) -> Option<IpBlock> {
        let (addr, prefix) = match text.trim().split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text.trim(), None),
        };
        let addr: IpAddr = addr.parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            // Digits only: `u8::from_str` would take a leading `+`.
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                p.parse::<u8>().ok().filter(|p| *p <= max)?
            }
            Some(_) => return None,
        };
        Some(IpBlock { addr, prefix })
    }

    /// Whether `ip` is in the block (an IPv4 address mapped into IPv6, as a dual-stack
    /// listener sees IPv4 peers, counts as that IPv4 address).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(block), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(block) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(block), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(block) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// `server.trusted_proxies`: the peers whose forwarded headers count (none by default).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpBlock>);

impl TrustedProxies {
    /// Every entry parsed; the entries that are not an address or a CIDR block otherwise.
    pub fn parse(entries: &[String]) -> Result<TrustedProxies, Vec<String>> {
        let mut blocks = Vec::new();
        let mut bad = Vec::new();
        for entry in entries {
            match IpBlock::parse(entry) {
                Some(block) => blocks.push(block),
                None => bad.push(entry.clone()),
            }
        }
        match bad.is_empty() {
            true => Ok(TrustedProxies(blocks)),
            false => Err(bad),
        }
    }

    /// Whether a request from `peer` may tell us where it was first received.
    pub fn trusts(&self, peer: Option<SocketAddr>) -> bool {
        peer.is_some_and(|peer| self.0.iter().any(|block| block.contains(peer.ip())))
    }
}

/// `scheme://host[:port]` as the client reached us: from the forwarded headers when the
/// peer is a trusted proxy, else from the request itself (`Host`, or HTTP/2's authority).
pub(super) fn request_origin(req: &HttpRequest, trusted: &TrustedProxies) -> String {
    if trusted.trusts(req.peer_addr()) {
        let info = req.connection_info();
        return format!("{}://{}", info.scheme(), info.host());
    }
    let config = req.app_config();
    let scheme = if config.secure() { "https" } else { "http" };
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()))
        .unwrap_or_else(|| config.host());
    format!("{scheme}://{host}")
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn addresses_and_blocks_parse_and_match() {
        let block = IpBlock::parse("10.0.0.0/8").unwrap();
        assert!(block.contains(ip("10.200.1.2")));
        assert!(!block.contains(ip("11.0.0.1")));
        assert!(!block.contains(ip("::1")));
        let one = IpBlock::parse("127.0.0.1").unwrap();
        assert!(one.contains(ip("127.0.0.1")));
        assert!(one.contains(ip("::ffff:127.0.0.1")), "IPv4-mapped peers");
        assert!(!one.contains(ip("127.0.0.2")));
        let v6 = IpBlock::parse("fd00::/8").unwrap();
        assert!(v6.contains(ip("fd12::1")));
        assert!(!v6.contains(ip("fe80::1")));
        assert!(IpBlock::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        assert!(IpBlock::parse("::/0").unwrap().contains(ip("2001:db8::1")));
        for bad in [
            "",
            "10.0.0.0/33",
            "::/129",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "host",
            "10.0.0/8",
        ] {
            assert_eq!(IpBlock::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn bad_entries_are_all_named() {
        let entries = ["127.0.0.1".to_string(), "x".into(), "10.0.0.0/99".into()];
        assert_eq!(
            TrustedProxies::parse(&entries),
            Err(vec!["x".to_string(), "10.0.0.0/99".into()])
        );
        assert!(!TrustedProxies::default().trusts(Some("127.0.0.1:1".parse().unwrap())));
    }

    #[test]
    fn forwarded_headers_count_only_from_a_trusted_peer() {
        let request = |peer: &str| {
            TestRequest::default()
                .peer_addr(peer.parse().unwrap())
                .insert_header((header::HOST, "chat.example:8000"))
                .insert_header(("x-forwarded-host", "evil.example"))
                .insert_header(("x-forwarded-proto", "https"))
                .to_http_request()
        };
        let trusted = TrustedProxies::parse(&["10.0.0.0/8".to_string()]).unwrap();
        assert_eq!(
            request_origin(&request("203.0.113.9:5000"), &trusted),
            "http://chat.example:8000"
        );
        assert_eq!(
            request_origin(&request("10.1.1.1:5000"), &trusted),
            "https://evil.example"
        );
        let forwarded = TestRequest::default()
            .peer_addr("10.1.1.1:5000".parse().unwrap())
            .insert_header((header::HOST, "internal:8000"))
            .insert_header((header::FORWARDED, "host=chat.example;proto=https"))
            .to_http_request();
        assert_eq!(request_origin(&forwarded, &trusted), "https://chat.example");
    }
}
