//! A tokio-util codec for Goridge frames: handles partial reads, verifies the header CRC,
//! bounds the frame size, and turns the classic "PHP printed something to stdout" failure
//! into a diagnostic that shows what was printed.

use bytes::{Buf, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use super::frame::{Frame, HEADER_LEN, Options, VERSION, encode_parts, printable};
use super::{RelayError, Result};

/// The most buffer reserved ahead of the bytes of a frame that are still to come.
const MAX_RESERVE: usize = 1 << 20;

/// How many of the offending bytes a diagnostic quotes.
const DIAGNOSTIC_BYTES: usize = 512;

/// Decoder and encoder of Goridge v3 frames.
#[derive(Clone, Debug)]
pub struct FrameCodec {
    max_frame_size: usize,
    /// Skip bytes that are not a frame (and keep them in `stray`) instead of failing.
    resync: bool,
    /// Boxed: rare, and a `Worker` (and so every in-flight request future) carries a
    /// codec.
    stray: Option<Box<Stray>>,
}

/// Bytes a worker wrote outside any frame, skipped by a resynchronising codec.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stray {
    /// The first [`DIAGNOSTIC_BYTES`] of them, for the log.
    pub head: Vec<u8>,
    /// How many there were.
    pub total: usize,
}

impl Stray {
    fn push(&mut self, bytes: &[u8]) {
        let room = DIAGNOSTIC_BYTES.saturating_sub(self.head.len());
        self.head.extend_from_slice(&bytes[..bytes.len().min(room)]);
        self.total += bytes.len();
    }

    /// The skipped bytes as text for a log line (control bytes escaped).
    pub fn printable(&self) -> String {
        printable(&self.head, DIAGNOSTIC_BYTES)
    }
}

impl FrameCodec {
    /// `max_frame_size` bounds the payload length a peer may announce; a larger announcement
    /// is refused before any of it is buffered.
    pub fn new(max_frame_size: usize) -> Self {
        FrameCodec {
            max_frame_size,
            resync: false,
            stray: None,
        }
    }

    /// A codec for a worker's relay: bytes that are not a frame (a stray `echo`,
    /// `var_dump` or notice on STDOUT) are skipped up to the next valid frame header and
    /// kept for [`FrameCodec::take_stray`], instead of failing the relay. The header's
    /// CRC-32 makes a false match in text practically impossible (2^-32 per offset, and
    /// the version and length nibbles must fit too).
    pub fn resynchronising(mut self) -> Self {
        self.resync = true;
        self
    }

    pub fn max_frame_size(&self) -> usize {
        self.max_frame_size
    }

    /// The bytes skipped since the last call, if any.
    pub fn take_stray(&mut self) -> Option<Stray> {
        self.stray.take().map(|s| *s)
    }

    /// Moves the bytes before the next plausible frame header into `stray`. Returns
    /// whether a header candidate now starts the buffer.
    fn skip_to_header(&mut self, src: &mut BytesMut) -> bool {
        let found = (1..=src.len().saturating_sub(HEADER_LEN))
            .find(|&at| header_is_valid(&src[at..at + HEADER_LEN]));
        // Without a candidate, all but the last HEADER_LEN - 1 bytes are certainly not
        // the start of one (a header may be arriving in pieces).
        let cut = found.unwrap_or_else(|| src.len().saturating_sub(HEADER_LEN - 1));
        if cut > 0 {
            self.stray.get_or_insert_default().push(&src[..cut]);
        }
        src.advance(cut);
        found.is_some()
    }
}

/// Whether `head` (12 bytes) is a Goridge v1 header with a matching CRC.
fn header_is_valid(head: &[u8]) -> bool {
    head[0] >> 4 == VERSION
        && (3..=13).contains(&(head[0] & 0x0f))
        && crc32fast::hash(&head[..6]) == u32::from_le_bytes([head[6], head[7], head[8], head[9]])
}

impl Default for FrameCodec {
    /// 1 GiB: RoadRunner's default `max_request_size` is 1000 MB and one frame carries a
    /// whole request body.
    fn default() -> Self {
        FrameCodec::new(1 << 30)
    }
}

/// Parses the header at the start of `src` without consuming anything.
/// Returns the total frame length once the header is known to be valid.
fn check_header(src: &[u8], max_frame_size: usize) -> Result<usize> {
    let head = &src[..HEADER_LEN];
    if head == b"Could not op" {
        return Err(RelayError::CouldNotOpen(printable(src, DIAGNOSTIC_BYTES)));
    }
    let crc = u32::from_le_bytes([head[6], head[7], head[8], head[9]]);
    if crc32fast::hash(&head[..6]) != crc {
        return Err(RelayError::Crc {
            printed: printable(src, DIAGNOSTIC_BYTES),
        });
    }
    // Go and PHP never read the version, but every writer puts 1 there: a frame with
    // another version is not one this codec could write back (or trust) as it came.
    let version = head[0] >> 4;
    if version != VERSION {
        return Err(RelayError::Version(version));
    }
    let hl = head[0] & 0x0f;
    if !(3..=13).contains(&hl) {
        return Err(RelayError::HeaderLength(hl));
    }
    let len = u32::from_le_bytes([head[2], head[3], head[4], head[5]]) as usize;
    if len > max_frame_size {
        return Err(RelayError::TooLarge {
            size: len,
            max: max_frame_size,
        });
    }
    Ok(4 * hl as usize + len)
}

impl Decoder for FrameCodec {
    type Item = Frame;
    type Error = RelayError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>> {
        let total = loop {
            if src.len() < HEADER_LEN {
                src.reserve(HEADER_LEN);
                return Ok(None);
            }
            match check_header(src, self.max_frame_size) {
                Ok(total) => break total,
                // Not a header: on a worker relay, text PHP printed. Skipped only after
                // the normal check failed, so a valid frame costs no second CRC.
                Err(
                    RelayError::Crc { .. }
                    | RelayError::CouldNotOpen(_)
                    | RelayError::Version(_)
                    | RelayError::HeaderLength(_),
                ) if self.resync => {
                    if !self.skip_to_header(src) {
                        return Ok(None);
                    }
                }
                Err(e) => return Err(e),
            }
        };
        if src.len() < total {
            // Grow with what arrives rather than trusting the announced length: a worker
            // announcing a 1 GiB frame must not make pacer reserve 1 GiB up front.
            src.reserve((total - src.len()).min(MAX_RESERVE));
            return Ok(None);
        }
        let hl = (src[0] & 0x0f) as usize;
        let flags = src[1];
        let byte10 = src[10];
        let byte11 = src[11];
        let mut words = [0u32; 10];
        for (i, word) in words.iter_mut().enumerate().take(hl - 3) {
            let at = HEADER_LEN + 4 * i;
            *word = u32::from_le_bytes([src[at], src[at + 1], src[at + 2], src[at + 3]]);
        }
        let options = Options::from_slice(&words[..hl - 3]).unwrap_or_default();
        let mut frame_bytes = src.split_to(total);
        frame_bytes.advance(4 * hl);
        Ok(Some(Frame {
            flags,
            byte10,
            byte11,
            options,
            payload: frame_bytes.freeze(),
        }))
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Frame>> {
        if src.is_empty() {
            return Ok(None);
        }
        // A complete frame may still be buffered; anything else is a cut-off frame, or text
        // the process printed just before it exited.
        if let Some(frame) = self.decode(src)? {
            return Ok(Some(frame));
        }
        // A resynchronising decode leaves less than a header only when no frame starts
        // in those bytes.
        if self.resync && src.len() < HEADER_LEN {
            // Text after the last frame (printed on the way out): stray too, and the
            // relay simply ends. A missing script is still an error worth its own words.
            let stray = self.stray.get_or_insert_default();
            stray.push(src);
            src.clear();
            if stray.head.starts_with(b"Could not op") {
                return Err(RelayError::CouldNotOpen(stray.printable()));
            }
            return Ok(None);
        }
        let printed = printable(src, DIAGNOSTIC_BYTES);
        src.clear();
        if printed.starts_with("Could not op") {
            return Err(RelayError::CouldNotOpen(printed));
        }
        Err(RelayError::Truncated { printed })
    }
}

impl Encoder<&Frame> for FrameCodec {
    type Error = RelayError;

    fn encode(&mut self, frame: &Frame, dst: &mut BytesMut) -> Result<()> {
        if frame.payload.len() > self.max_frame_size {
            return Err(RelayError::TooLarge {
                size: frame.payload.len(),
                max: self.max_frame_size,
            });
        }
        encode_parts(
            dst,
            frame.flags,
            frame.byte10,
            frame.byte11,
            &frame.options,
            &[&frame.payload],
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::relay::frame::{flags, stream};
    use bytes::Bytes;
    use proptest::prelude::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn golden() -> serde_json::Value {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../testdata/goridge/frames.json"
        );
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    #[test]
    fn golden_frames_decode_and_reencode_byte_for_byte() {
        let doc = golden();
        let frames = doc["frames"].as_array().unwrap();
        assert!(
            frames.len() >= 10,
            "the worked examples of docs/wire-protocol.md 1.5 are all there"
        );
        for g in frames {
            let name = g["name"].as_str().unwrap();
            let bytes = hex(g["hex"].as_str().unwrap());
            let mut buf = BytesMut::from(&bytes[..]);
            let frame = FrameCodec::default().decode(&mut buf).unwrap().unwrap();
            assert!(buf.is_empty(), "{name}: whole input consumed");
            assert_eq!(
                frame.flags as u64,
                g["flags"].as_u64().unwrap(),
                "{name}: flags"
            );
            assert_eq!(
                frame.byte10 as u64,
                g["byte10"].as_u64().unwrap(),
                "{name}: byte10"
            );
            assert_eq!(
                frame.byte11 as u64,
                g["byte11"].as_u64().unwrap(),
                "{name}: byte11"
            );
            let options: Vec<u32> = g["options"]
                .as_array()
                .unwrap()
                .iter()
                .map(|o| o.as_u64().unwrap() as u32)
                .collect();
            assert_eq!(frame.options.as_slice(), &options[..], "{name}: options");
            let payload = match g.get("payload") {
                Some(p) => p.as_str().unwrap().as_bytes().to_vec(),
                None => hex(g["payload_hex"].as_str().unwrap()),
            };
            assert_eq!(&frame.payload[..], &payload[..], "{name}: payload");

            let mut out = BytesMut::new();
            FrameCodec::default().encode(&frame, &mut out).unwrap();
            assert_eq!(&out[..], &bytes[..], "{name}: re-encoded bytes");
        }
    }

    #[test]
    fn golden_bad_frames_are_refused_with_their_kind() {
        let doc = golden();
        for g in doc["bad"].as_array().unwrap() {
            let name = g["name"].as_str().unwrap();
            let mut buf = BytesMut::from(&hex(g["hex"].as_str().unwrap())[..]);
            let err = FrameCodec::default().decode(&mut buf).unwrap_err();
            let kind = match err {
                RelayError::Crc { .. } => "crc",
                RelayError::CouldNotOpen(_) => "could_not_open",
                RelayError::HeaderLength(_) => "header_length",
                other => panic!("{name}: unexpected {other}"),
            };
            assert_eq!(kind, g["error"].as_str().unwrap(), "{name}");
        }
    }

    #[test]
    fn could_not_open_quotes_what_php_printed() {
        let mut buf = BytesMut::from(&b"Could not open input file: missing.php\n"[..]);
        let err = FrameCodec::default().decode(&mut buf).unwrap_err();
        assert!(
            err.to_string()
                .contains("Could not open input file: missing.php"),
            "{err}"
        );
    }

    #[test]
    fn garbage_on_stdout_is_shown_in_the_crc_diagnostic() {
        let mut buf = BytesMut::from(&b"Hello from a stray echo\n"[..]);
        let err = FrameCodec::default().decode(&mut buf).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("Hello from a stray echo\\n"), "{text}");
    }

    /// Found by the `frame_decoder` fuzz target (fuzz/regressions/frame_decoder): a
    /// header with a valid CRC but a version nibble other than 1 was decoded, and its
    /// frame re-encoded to different bytes (version 1, another CRC).
    #[test]
    fn versions_other_than_1_are_refused() {
        for byte0 in [0x03, 0x23, 0xb3, 0xf4] {
            let mut head = [byte0, 0, 0, 0, 0, 0];
            let mut buf = BytesMut::from(&head[..]);
            buf.extend_from_slice(&crc32fast::hash(&head).to_le_bytes());
            buf.extend_from_slice(&[0; 6]);
            let err = FrameCodec::default().decode(&mut buf).unwrap_err();
            assert!(
                matches!(err, RelayError::Version(v) if v == byte0 >> 4),
                "{byte0:#04x}: {err}"
            );
            head[0] = 0x10 | (byte0 & 0x0f);
            let mut ok = BytesMut::from(&head[..]);
            ok.extend_from_slice(&crc32fast::hash(&head).to_le_bytes());
            ok.extend_from_slice(&[0; 6]);
            let frame = FrameCodec::default().decode(&mut ok).unwrap().unwrap();
            let mut out = BytesMut::new();
            FrameCodec::default().encode(&frame, &mut out).unwrap();
            assert_eq!(out[0], head[0], "version 1 still round-trips");
        }
    }

    #[test]
    fn oversized_announcement_is_refused_before_buffering() {
        let mut buf = BytesMut::new();
        Frame::new(0, Options::one(0), Bytes::from(vec![7u8; 100])).encode(&mut buf);
        buf.truncate(HEADER_LEN + 4); // only the header arrived so far
        let err = FrameCodec::new(64).decode(&mut buf).unwrap_err();
        assert!(
            matches!(err, RelayError::TooLarge { size: 100, max: 64 }),
            "{err}"
        );
        assert!(err.to_string().contains("100"), "{err}");
    }

    #[test]
    fn eof_inside_a_frame_is_a_typed_error() {
        let mut buf = BytesMut::new();
        Frame::new(0, Options::one(2), &b"ctxbody"[..]).encode(&mut buf);
        buf.truncate(buf.len() - 3);
        let err = FrameCodec::default().decode_eof(&mut buf).unwrap_err();
        assert!(matches!(err, RelayError::Truncated { .. }), "{err}");
    }

    #[test]
    fn encoding_more_than_max_payload_is_refused() {
        let frame = Frame::new(0, Options::NONE, vec![0u8; 65]);
        let err = FrameCodec::new(64)
            .encode(&frame, &mut BytesMut::new())
            .unwrap_err();
        assert!(matches!(err, RelayError::TooLarge { .. }));
    }

    #[test]
    fn stream_bits_and_flags_are_readable() {
        let mut frame = Frame::new(
            flags::CONTROL | flags::CODEC_JSON,
            Options::NONE,
            &b"{}"[..],
        );
        frame.byte10 = stream::STREAM | stream::PING;
        assert!(frame.has_flag(flags::CONTROL) && !frame.has_flag(flags::ERROR));
        assert!(frame.has_stream_bit(stream::PING) && !frame.has_stream_bit(stream::STOP));
    }

    fn arb_frame() -> impl Strategy<Value = Frame> {
        (
            any::<u8>(),
            any::<u8>(),
            any::<u8>(),
            proptest::collection::vec(any::<u32>(), 0..=10),
            proptest::collection::vec(any::<u8>(), 0..300),
        )
            .prop_map(|(flags, byte10, byte11, options, payload)| Frame {
                flags,
                byte10,
                byte11,
                options: Options::from_slice(&options).unwrap(),
                payload: payload.into(),
            })
    }

    #[test]
    fn resync_keeps_the_stray_text_for_the_log_and_a_missing_script_is_still_an_error() {
        let frame = Frame::new(
            flags::CODEC_JSON,
            Options::one(2),
            Bytes::from_static(b"{}ok"),
        );
        let mut wire = BytesMut::from(&b"Notice: Undefined variable $x\n"[..]);
        frame.encode(&mut wire);
        let mut codec = FrameCodec::default().resynchronising();
        assert_eq!(codec.decode(&mut wire).unwrap(), Some(frame));
        let stray = codec.take_stray().unwrap();
        assert_eq!(stray.total, 30);
        assert_eq!(stray.printable(), "Notice: Undefined variable $x\\n");
        assert_eq!(codec.take_stray(), None);
        // Only a prefix is kept, however much is printed.
        let mut noise = BytesMut::from(&vec![b'x'; 100_000][..]);
        assert_eq!(codec.decode_eof(&mut noise).unwrap(), None);
        let stray = codec.take_stray().unwrap();
        assert_eq!(stray.total, 100_000);
        assert_eq!(stray.head.len(), DIAGNOSTIC_BYTES);
        let mut missing = BytesMut::from(&b"Could not open input file: w.php\n"[..]);
        let err = codec.decode_eof(&mut missing).unwrap_err();
        assert!(
            matches!(err, RelayError::CouldNotOpen(ref t) if t.contains("w.php")),
            "{err}"
        );
        // Without resync, text is still a diagnosed error (RPC connections).
        let mut text = BytesMut::from(&b"Notice: Undefined variable $x\n"[..]);
        let err = FrameCodec::default().decode(&mut text).unwrap_err();
        assert!(matches!(err, RelayError::Crc { .. }), "{err}");
    }

    proptest! {
        #[test]
        fn any_frame_round_trips_through_any_split(frames in proptest::collection::vec(arb_frame(), 1..5), cut in 0usize..2000) {
            let mut wire = BytesMut::new();
            for f in &frames {
                f.encode(&mut wire);
            }
            let cut = cut.min(wire.len());
            let mut codec = FrameCodec::default();
            let mut buf = BytesMut::from(&wire[..cut]);
            let mut decoded = Vec::new();
            while let Some(f) = codec.decode(&mut buf).unwrap() {
                decoded.push(f);
            }
            buf.extend_from_slice(&wire[cut..]);
            while let Some(f) = codec.decode(&mut buf).unwrap() {
                decoded.push(f);
            }
            prop_assert_eq!(decoded, frames);
            prop_assert!(buf.is_empty());
        }

        /// Text before, between and after frames, cut anywhere: a resynchronising
        /// decoder yields exactly the frames, and exactly the text as stray bytes.
        #[test]
        fn resync_skips_text_before_between_and_after_frames(
            frames in proptest::collection::vec(arb_frame(), 1..4),
            texts in proptest::collection::vec("[ -~\n]{0,40}", 4),
            cut in 0usize..2000,
        ) {
            let mut wire = BytesMut::new();
            let mut text_total = 0;
            for (i, f) in frames.iter().enumerate() {
                wire.extend_from_slice(texts[i].as_bytes());
                text_total += texts[i].len();
                f.encode(&mut wire);
            }
            wire.extend_from_slice(texts[3].as_bytes());
            text_total += texts[3].len();
            let cut = cut.min(wire.len());
            let mut codec = FrameCodec::default().resynchronising();
            let mut buf = BytesMut::from(&wire[..cut]);
            let mut decoded = Vec::new();
            let mut stray = 0;
            while let Some(f) = codec.decode(&mut buf).unwrap() {
                decoded.push(f);
            }
            stray += codec.take_stray().map_or(0, |s| s.total);
            buf.extend_from_slice(&wire[cut..]);
            while let Some(f) = codec.decode_eof(&mut buf).unwrap() {
                decoded.push(f);
            }
            stray += codec.take_stray().map_or(0, |s| s.total);
            prop_assert_eq!(decoded, frames);
            prop_assert_eq!(stray, text_total);
            prop_assert!(buf.is_empty());
        }

        #[test]
        fn decoder_never_panics_on_noise(noise in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut buf = BytesMut::from(&noise[..]);
            let mut codec = FrameCodec::new(1 << 16);
            while let Ok(Some(_)) = codec.decode(&mut buf) {}
        }
    }
}
