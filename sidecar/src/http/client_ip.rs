//! The client address behind trusted proxies (`http.trusted_subnets`; RoadRunner's
//! `proxy_ip_parser` middleware). Pure.
//!
//! Headers are believed only when the connection comes from a trusted subnet; then
//! `Forwarded` (`for=`), `X-Real-IP` and `X-Forwarded-For` are tried in that order,
//! and the first that yields an address wins. For the two list headers the answer is
//! the right-most address that is *not* trusted: every trusted proxy appends the
//! address it saw, so that is the last hop no trusted party vouches for, and anything
//! left of it may have been written by the client. RoadRunner takes the left-most
//! entry instead, which any client can forge; we do not.
//!
//! A header whose nearest entry is not an address (`for=unknown`, `_hidden`, garbage)
//! gives no answer and the next header is tried; when none answers, the peer address
//! is the client. Proxies must still replace (not pass through) the header they are
//! trusted for: a client-sent `X-Real-IP` forwarded untouched is believed.

use std::net::{IpAddr, SocketAddr};

use http::HeaderMap;
use http::header::{self, HeaderName};
use ipnet::IpNet;

static X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The address to report as `remoteAddr`.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let peer = peer.to_canonical();
    if !is_trusted(peer, trusted) {
        return peer;
    }
    forwarded(headers, trusted)
        .or_else(|| real_ip(headers))
        .or_else(|| x_forwarded_for(headers, trusted))
        .unwrap_or(peer)
}

fn is_trusted(ip: IpAddr, trusted: &[IpNet]) -> bool {
    trusted.iter().any(|net| net.contains(&ip))
}

/// RFC 7239: elements separated by `,` (one per proxy, across all `Forwarded`
/// fields), pairs by `;`, `for=` a node: `1.2.3.4`, `"1.2.3.4:80"`, `"[2001:db8::1]:80"`.
fn forwarded(headers: &HeaderMap, trusted: &[IpNet]) -> Option<IpAddr> {
    let elements = list_entries(headers, &header::FORWARDED)
        .into_iter()
        .map(|element| {
            element?
                .split(';')
                .filter_map(|pair| pair.split_once('='))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case("for"))
                .and_then(|(_, v)| parse_node(v))
        });
    rightmost_untrusted(elements, trusted)
}

fn real_ip(headers: &HeaderMap) -> Option<IpAddr> {
    // The nearest proxy's value is the last one.
    let value = headers.get_all(&X_REAL_IP).iter().next_back()?;
    parse_node(std::str::from_utf8(value.as_bytes()).ok()?)
}

fn x_forwarded_for(headers: &HeaderMap, trusted: &[IpNet]) -> Option<IpAddr> {
    rightmost_untrusted(
        list_entries(headers, &X_FORWARDED_FOR)
            .into_iter()
            .map(|e| e.and_then(parse_node)),
        trusted,
    )
}

/// Every comma-separated entry of every field of `name`, in order. A field that is
/// not UTF-8 counts as one unreadable entry (`None`), so it ends a walk instead of
/// hiding what follows it.
fn list_entries<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Vec<Option<&'a str>> {
    let mut out = Vec::new();
    for v in headers.get_all(name) {
        match std::str::from_utf8(v.as_bytes()) {
            Ok(s) => out.extend(
                s.split(',')
                    .map(str::trim)
                    .filter(|e| !e.is_empty())
                    .map(Some),
            ),
            Err(_) => out.push(None),
        }
    }
    out
}

/// Walks the hops from the nearest one: skips trusted proxies, stops at the first
/// untrusted address; an entry that is not an address ends the walk with no answer.
/// When every hop is trusted, the farthest one is the client.
fn rightmost_untrusted(
    entries: impl DoubleEndedIterator<Item = Option<IpAddr>>,
    trusted: &[IpNet],
) -> Option<IpAddr> {
    let mut farthest = None;
    for entry in entries.rev() {
        let ip = entry?.to_canonical();
        if !is_trusted(ip, trusted) {
            return Some(ip);
        }
        farthest = Some(ip);
    }
    farthest
}

/// An address with or without port, quotes or brackets.
fn parse_node(s: &str) -> Option<IpAddr> {
    let s = s.trim().trim_matches('"').trim();
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Some(sa.ip());
    }
    // `[2001:db8::1]` without a port
    s.strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .and_then(|r| r.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    fn headers(list: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in list {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn client_ip_table() {
        let trusted = nets(&["10.0.0.0/8", "127.0.0.1/32", "fd00::/8"]);
        let proxy = "10.0.0.1";
        #[rustfmt::skip]
        type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str, &'a str);
        let cases: &[Case] = &[
            // untrusted peers are never overridden, whatever they send
            (
                "203.0.113.9",
                &[("x-forwarded-for", "1.2.3.4")],
                "203.0.113.9",
                "untrusted peer, XFF",
            ),
            (
                "203.0.113.9",
                &[("x-real-ip", "1.2.3.4")],
                "203.0.113.9",
                "untrusted peer, X-Real-IP",
            ),
            (
                "203.0.113.9",
                &[("forwarded", "for=1.2.3.4")],
                "203.0.113.9",
                "untrusted peer, Forwarded",
            ),
            // trusted proxy, no headers
            (proxy, &[], proxy, "no headers"),
            // XFF: the right-most untrusted address
            (
                proxy,
                &[("x-forwarded-for", "198.51.100.7")],
                "198.51.100.7",
                "one hop",
            ),
            (
                proxy,
                &[("x-forwarded-for", "6.6.6.6, 198.51.100.7")],
                "198.51.100.7",
                "client-forged left entry",
            ),
            (
                proxy,
                &[("x-forwarded-for", "6.6.6.6, 198.51.100.7, 10.0.0.2")],
                "198.51.100.7",
                "internal proxy skipped",
            ),
            (
                proxy,
                &[
                    ("x-forwarded-for", "6.6.6.6"),
                    ("x-forwarded-for", "198.51.100.7"),
                ],
                "198.51.100.7",
                "several fields",
            ),
            (
                proxy,
                &[("x-forwarded-for", "10.0.0.3, 10.0.0.2")],
                "10.0.0.3",
                "all trusted: farthest",
            ),
            (
                proxy,
                &[("x-forwarded-for", "198.51.100.7:5555")],
                "198.51.100.7",
                "with port",
            ),
            (
                proxy,
                &[("x-forwarded-for", "[2001:db8::7]:443")],
                "2001:db8::7",
                "v6 with port",
            ),
            (
                proxy,
                &[("x-forwarded-for", "2001:db8::7")],
                "2001:db8::7",
                "bare v6",
            ),
            (
                proxy,
                &[("x-forwarded-for", "1.2.3.4, garbage")],
                proxy,
                "garbage nearest: no answer",
            ),
            (proxy, &[("x-forwarded-for", "")], proxy, "empty"),
            (
                proxy,
                &[("x-forwarded-for", "::ffff:198.51.100.7")],
                "198.51.100.7",
                "v4-mapped",
            ),
            // X-Real-IP
            (
                proxy,
                &[("x-real-ip", "198.51.100.8")],
                "198.51.100.8",
                "real ip",
            ),
            (
                proxy,
                &[("x-real-ip", "198.51.100.8:80")],
                "198.51.100.8",
                "real ip with port",
            ),
            (
                proxy,
                &[
                    ("x-real-ip", "nonsense"),
                    ("x-forwarded-for", "198.51.100.7"),
                ],
                "198.51.100.7",
                "bad real ip falls through",
            ),
            (
                proxy,
                &[
                    ("x-real-ip", "198.51.100.8"),
                    ("x-forwarded-for", "198.51.100.7"),
                ],
                "198.51.100.8",
                "real ip before XFF",
            ),
            // Forwarded
            (
                proxy,
                &[("forwarded", "for=198.51.100.9")],
                "198.51.100.9",
                "forwarded",
            ),
            (
                proxy,
                &[("forwarded", "For=\"[2001:db8:cafe::17]:4711\";proto=https")],
                "2001:db8:cafe::17",
                "quoted v6",
            ),
            (
                proxy,
                &[("forwarded", "for=6.6.6.6, for=198.51.100.9;by=10.0.0.1")],
                "198.51.100.9",
                "forged left element",
            ),
            (
                proxy,
                &[
                    ("forwarded", "for=6.6.6.6"),
                    ("forwarded", "for=198.51.100.9, for=10.0.0.5"),
                ],
                "198.51.100.9",
                "fields and trusted hop",
            ),
            (
                proxy,
                &[("forwarded", "for=_hidden"), ("x-real-ip", "198.51.100.8")],
                "198.51.100.8",
                "obfuscated falls through",
            ),
            (proxy, &[("forwarded", "for=unknown")], proxy, "unknown"),
            (
                proxy,
                &[("forwarded", "proto=https;by=10.0.0.1")],
                proxy,
                "no for=",
            ),
            (
                proxy,
                &[
                    ("forwarded", "for=198.51.100.9"),
                    ("x-real-ip", "198.51.100.8"),
                    ("x-forwarded-for", "198.51.100.7"),
                ],
                "198.51.100.9",
                "Forwarded first",
            ),
            // a v4-mapped peer is matched against v4 subnets
            (
                "::ffff:10.0.0.1",
                &[("x-real-ip", "198.51.100.8")],
                "198.51.100.8",
                "mapped peer",
            ),
            (
                "fd00::1",
                &[("x-forwarded-for", "2001:db8::9")],
                "2001:db8::9",
                "v6 proxy",
            ),
        ];
        for (peer, hs, want, what) in cases {
            let got = client_ip(peer.parse().unwrap(), &headers(hs), &trusted);
            assert_eq!(got, want.parse::<IpAddr>().unwrap(), "{what}");
        }
    }

    #[test]
    fn a_non_utf8_field_ends_the_walk() {
        let mut h = headers(&[("x-forwarded-for", "6.6.6.6")]);
        h.append(
            &X_FORWARDED_FOR,
            http::HeaderValue::from_bytes(b"\xff, 198.51.100.7").unwrap(),
        );
        let peer: IpAddr = "10.0.0.1".parse().unwrap();
        // never the forged 6.6.6.6 that precedes the unreadable field
        assert_eq!(client_ip(peer, &h, &nets(&["10.0.0.0/8"])), peer);
    }

    #[test]
    fn nothing_is_trusted_without_subnets() {
        let h = headers(&[("x-forwarded-for", "1.2.3.4"), ("x-real-ip", "1.2.3.4")]);
        let peer: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(client_ip(peer, &h, &[]), peer);
        // the peer is reported without its v4-mapped form
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert_eq!(client_ip(mapped, &h, &[]), peer);
    }
}
