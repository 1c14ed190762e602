//! `FrameCodec` as a tokio-util `Decoder` against arbitrary bytes arriving in arbitrary
//! pieces.
//!
//! Input layout: byte 0 picks the maximum frame size (low three bits) and whether the
//! harness fixes the header CRCs up (bit 7), byte 1 seeds the chunk sizes, the rest is
//! the byte stream (so a seed is two bytes followed by real frames). Without the CRC
//! fix-up nearly every mutation of a header dies at the CRC check; with it, the fuzzer
//! reaches everything behind it (header length, size limit, options, version).
//!
//! Properties:
//! * `decode` / `decode_eof` never panic;
//! * the stream decodes to the same frames and the same error kind whether it arrives
//!   whole, byte by byte, or in fuzzer-chosen chunks;
//! * every decoded frame re-encodes to exactly the bytes it was decoded from;
//! * no payload exceeds the configured maximum, and the decoder never asks for more
//!   memory than the data it holds plus one maximum-size frame (an announced 4 GiB
//!   payload must not be reserved).
#![no_main]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use pacer::relay::{Frame, FrameCodec, RelayError};
use tokio_util::codec::{Decoder, Encoder};

/// Records the largest single allocation made while `TRACKING` is on.
struct PeakAlloc;

static TRACKING: AtomicBool = AtomicBool::new(false);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn note(size: usize) {
    if TRACKING.load(Ordering::Relaxed) {
        PEAK.fetch_max(size, Ordering::Relaxed);
    }
}

unsafe impl GlobalAlloc for PeakAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: PeakAlloc = PeakAlloc;

/// Maximum frame sizes worth telling apart: none, below the header, small, the
/// production default.
const MAX_SIZES: [usize; 8] = [0, 1, 11, 12, 64, 4096, 1 << 16, 1 << 30];
/// The largest header: 12 bytes and ten option words.
const MAX_HEADER: usize = 52;
/// What an error diagnostic may allocate (512 quoted bytes, escaped).
const DIAGNOSTIC_SLACK: usize = 16 * 1024;

#[derive(Debug, PartialEq)]
enum Outcome {
    Frames(Vec<Frame>),
    /// The frames before the error, and the error's kind.
    Failed(Vec<Frame>, &'static str),
}

fn kind(e: &RelayError) -> &'static str {
    match e {
        RelayError::Io(_) => "io",
        RelayError::Closed => "closed",
        RelayError::Crc { .. } => "crc",
        RelayError::CouldNotOpen(_) => "could_not_open",
        RelayError::HeaderLength(_) => "header_length",
        RelayError::Version(_) => "version",
        RelayError::TooLarge { .. } => "too_large",
        RelayError::Truncated { .. } => "truncated",
        RelayError::Handshake(_) => "handshake",
    }
}

/// Feeds `stream` to a fresh codec in the given chunk sizes, checking each frame
/// against the bytes it came from.
fn run(stream: &[u8], max: usize, mut chunk: impl FnMut() -> usize) -> Outcome {
    let mut codec = FrameCodec::new(max);
    let mut buf = BytesMut::new();
    let mut fed = 0;
    let mut frames = Vec::new();
    loop {
        let n = chunk().clamp(1, stream.len() - fed + 1);
        let end = (fed + n).min(stream.len());
        buf.extend_from_slice(&stream[fed..end]);
        fed = end;
        let eof = fed == stream.len();
        loop {
            let before = fed - buf.len();
            PEAK.store(0, Ordering::Relaxed);
            TRACKING.store(true, Ordering::Relaxed);
            let result = if eof {
                codec.decode_eof(&mut buf)
            } else {
                codec.decode(&mut buf)
            };
            TRACKING.store(false, Ordering::Relaxed);
            let peak = PEAK.load(Ordering::Relaxed);
            let bound = 2 * (fed + MAX_HEADER + max) + DIAGNOSTIC_SLACK;
            assert!(
                peak <= bound,
                "decoder allocated {peak} bytes with {fed} bytes fed and max frame size {max}"
            );
            match result {
                Ok(Some(frame)) => {
                    let consumed = fed - buf.len() - before;
                    check_frame(&frame, &stream[before..before + consumed], max);
                    frames.push(frame);
                }
                Ok(None) if eof => {
                    assert!(buf.is_empty(), "decode_eof left {} bytes", buf.len());
                    return Outcome::Frames(frames);
                }
                Ok(None) => break,
                Err(e) => {
                    assert!(!e.to_string().is_empty());
                    return Outcome::Failed(frames, kind(&e));
                }
            }
        }
    }
}

fn check_frame(frame: &Frame, wire: &[u8], max: usize) {
    assert!(frame.payload.len() <= max, "payload above the maximum");
    assert_eq!(frame.encoded_len(), wire.len(), "encoded_len of {frame:?}");
    let mut out = BytesMut::new();
    FrameCodec::new(max)
        .encode(frame, &mut out)
        .expect("a decoded frame re-encodes");
    assert_eq!(&out[..], wire, "re-encoding {frame:?}");
}

/// Rewrites the CRC of every header in `stream`, following the announced lengths.
fn fix_crcs(stream: &mut [u8]) {
    let mut at = 0usize;
    while let Some(head) = stream.get_mut(at..at + 12) {
        let crc = crc32fast::hash(&head[..6]);
        head[6..10].copy_from_slice(&crc.to_le_bytes());
        let hl = usize::from(head[0] & 0x0f);
        let len = u32::from_le_bytes([head[2], head[3], head[4], head[5]]) as usize;
        if !(3..=13).contains(&hl) {
            return;
        }
        at += 4 * hl + len;
    }
}

fuzz_target!(|data: &[u8]| {
    let [size, seed, stream @ ..] = data else {
        return;
    };
    let max = MAX_SIZES[*size as usize % MAX_SIZES.len()];
    let mut fixed;
    let stream = if size & 0x80 != 0 {
        fixed = stream.to_vec();
        fix_crcs(&mut fixed);
        &fixed[..]
    } else {
        stream
    };

    let whole = run(stream, max, || usize::MAX);
    let bytewise = run(stream, max, || 1);
    assert_eq!(whole, bytewise, "whole vs byte by byte");

    // xorshift from the seed: chunks of 1..=64 bytes, sometimes larger.
    let mut x = u32::from(*seed) | 0x100;
    let chunked = run(stream, max, || {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        if x % 8 == 0 {
            (x % 4096) as usize
        } else {
            (x % 64) as usize + 1
        }
    });
    assert_eq!(whole, chunked, "whole vs chunked");
});
