//! Loopback ports for a test to hand to another process (a pacer, a broker, Prometheus).
//!
//! The usual trick, bind `127.0.0.1:0`, read the port and close the socket, is racy: the
//! port goes back to the kernel's ephemeral range, and the next `connect()` anywhere on
//! the machine (another test's client, a worker's relay) may get it as its source port,
//! or the next `bind(0)` may get it outright. The child then fails with "Address already
//! in use". CI lost a run to exactly that.
//!
//! The ports here come from *below* the ephemeral range
//! (`/proc/sys/net/ipv4/ip_local_port_range`), which the kernel never hands out on its
//! own. One counter per process makes the ports of one test binary distinct; each
//! process starts at its own offset, and a port someone already listens on is skipped.
//!
//! Only tests link this crate, so running out of ports is a panic, as in any test helper.
#![allow(clippy::panic, clippy::expect_used)]

use std::net::{Ipv4Addr, TcpListener};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The lowest port handed out: clear of the well-known and most registered services.
const FLOOR: u16 = 10_000;
/// Below this many ports under the ephemeral range, `bind(0)` is the fallback.
const MIN_SPAN: u16 = 1_000;

/// A loopback TCP port that nothing listens on and that the kernel will not give to
/// anyone else on its own. Distinct from every other port this process was given.
///
/// # Panics
/// When no port in the range is free (thousands of listeners), which a test cannot
/// recover from anyway.
pub fn free_port() -> u16 {
    let Some(range) = pool() else {
        return ephemeral_port();
    };
    take(&range, next()).unwrap_or_else(|| panic!("no free loopback port in {range:?}"))
}

/// The next port of `range` after `counter` that binds, if any does.
fn take(range: &std::ops::Range<u16>, counter: &AtomicUsize) -> Option<u16> {
    let span = usize::from(range.end - range.start);
    (0..span).find_map(|_| {
        let n = counter.fetch_add(1, Ordering::Relaxed) % span;
        let port = range.start + u16::try_from(n).expect("n < span ≤ u16::MAX");
        TcpListener::bind((Ipv4Addr::LOCALHOST, port))
            .is_ok()
            .then_some(port)
    })
}

/// `N` distinct [`free_port`]s.
pub fn free_ports<const N: usize>() -> [u16; N] {
    std::array::from_fn(|_| free_port())
}

/// The ports below the ephemeral range, or `None` when that range starts too low to
/// leave room (then this crate is no better than `bind(0)`).
fn pool() -> Option<std::ops::Range<u16>> {
    static POOL: OnceLock<Option<std::ops::Range<u16>>> = OnceLock::new();
    POOL.get_or_init(|| {
        let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
        below_ephemeral(&text)
    })
    .clone()
}

fn below_ephemeral(range_file: &str) -> Option<std::ops::Range<u16>> {
    let low: u16 = range_file.split_whitespace().next()?.parse().ok()?;
    (low >= FLOOR + MIN_SPAN).then_some(FLOOR..low)
}

/// The process's counter, started at an offset from its pid so that test binaries
/// running side by side begin far apart.
fn next() -> &'static AtomicUsize {
    static NEXT: OnceLock<AtomicUsize> = OnceLock::new();
    NEXT.get_or_init(|| {
        let pid = std::process::id() as usize;
        AtomicUsize::new(pid.wrapping_mul(7919))
    })
}

fn ephemeral_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("binding a loopback port")
        .port()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pool_ends_where_the_ephemeral_range_begins() {
        assert_eq!(below_ephemeral("32768\t60999\n"), Some(10_000..32_768));
        assert_eq!(below_ephemeral("1024 65535"), None);
        assert_eq!(below_ephemeral("garbage"), None);
    }

    #[test]
    fn ports_are_distinct_bindable_and_outside_the_ephemeral_range() {
        let ports: Vec<u16> = (0..200).map(|_| free_port()).collect();
        let mut unique = ports.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), ports.len(), "{ports:?}");
        if let Some(range) = pool() {
            assert!(ports.iter().all(|p| range.contains(p)), "{ports:?}");
        }
        for port in ports {
            TcpListener::bind((Ipv4Addr::LOCALHOST, port)).expect("a free port binds");
        }
    }

    #[test]
    fn a_port_in_use_is_skipped() {
        let port = free_port();
        let held = TcpListener::bind((Ipv4Addr::LOCALHOST, port)).unwrap();
        let alone = port..port + 1;
        assert_eq!(take(&alone, &AtomicUsize::new(0)), None);
        drop(held);
        assert_eq!(take(&alone, &AtomicUsize::new(0)), Some(port));
    }
}
