//! The Goridge v3 frame: a 12-byte header, up to ten `u32` options and an opaque payload.
//!
//! Layout (all integers little-endian, see docs/wire-protocol.md §1.1):
//!
//! | bytes | field |
//! |---|---|
//! | 0 | high nibble: version (1); low nibble: header length `HL` in 32-bit words (3..=13) |
//! | 1 | flags ([`flags`]) |
//! | 2..6 | payload length |
//! | 6..10 | CRC-32/IEEE of bytes 0..6 |
//! | 10 | stream byte ([`stream`]) — not covered by the CRC |
//! | 11 | reserved, round-tripped |
//! | 12..4·HL | options |
//! | 4·HL.. | payload |
//!
//! Everything here is pure: encoding appends to a buffer, decoding lives in
//! [`super::codec`].

use bytes::{BufMut, Bytes, BytesMut};

/// Flag bits of header byte 1.
pub mod flags {
    /// A control message (JSON body): PID handshake, stop.
    pub const CONTROL: u8 = 0x01;
    /// Raw bytes (RPC).
    pub const CODEC_RAW: u8 = 0x04;
    /// JSON.
    pub const CODEC_JSON: u8 = 0x08;
    /// msgpack (RPC).
    pub const CODEC_MSGPACK: u8 = 0x10;
    /// Go gob (RPC; the Go side's fallback codec).
    pub const CODEC_GOB: u8 = 0x20;
    /// The payload is an error message.
    pub const ERROR: u8 = 0x40;
    /// Protobuf.
    pub const CODEC_PROTO: u8 = 0x80;
}

/// Bits of header byte 10, the stream byte (docs/wire-protocol.md §1.3).
pub mod stream {
    /// Worker → server: more frames of this response follow.
    pub const STREAM: u8 = 0x01;
    /// Server → worker: cancel the current stream.
    pub const STOP: u8 = 0x02;
    /// Worker → server: answer with a PONG.
    pub const PING: u8 = 0x04;
    /// Server → worker: the answer to a PING.
    pub const PONG: u8 = 0x08;
}

/// Size of the fixed header, without options.
pub const HEADER_LEN: usize = 12;
/// Go's goridge panics beyond ten options (HL 13); we refuse to build more.
pub const MAX_OPTIONS: usize = 10;
/// The only protocol version, stored in the high nibble of byte 0.
pub const VERSION: u8 = 1;

/// Up to [`MAX_OPTIONS`] option words, stored inline (no allocation per frame).
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub struct Options {
    len: u8,
    words: [u32; MAX_OPTIONS],
}

impl Options {
    /// No options (control and error frames).
    pub const NONE: Options = Options {
        len: 0,
        words: [0; MAX_OPTIONS],
    };

    /// One option: the context length of a worker data frame.
    pub fn one(word: u32) -> Self {
        let mut o = Self::NONE;
        o.words[0] = word;
        o.len = 1;
        o
    }

    /// Builds options from a slice; `None` when there are more than [`MAX_OPTIONS`].
    pub fn from_slice(words: &[u32]) -> Option<Self> {
        if words.len() > MAX_OPTIONS {
            return None;
        }
        let mut o = Self::NONE;
        o.words[..words.len()].copy_from_slice(words);
        o.len = words.len() as u8;
        Some(o)
    }

    pub fn as_slice(&self) -> &[u32] {
        &self.words[..self.len as usize]
    }

    pub fn len(&self) -> usize {
        self.len as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn get(&self, i: usize) -> Option<u32> {
        self.as_slice().get(i).copied()
    }
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

/// One decoded frame. The payload shares the read buffer (no copy).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Frame {
    pub flags: u8,
    pub byte10: u8,
    pub byte11: u8,
    pub options: Options,
    pub payload: Bytes,
}

impl Frame {
    pub fn new(flags: u8, options: Options, payload: impl Into<Bytes>) -> Self {
        Frame {
            flags,
            byte10: 0,
            byte11: 0,
            options,
            payload: payload.into(),
        }
    }

    pub fn has_flag(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }

    pub fn has_stream_bit(&self, bit: u8) -> bool {
        self.byte10 & bit != 0
    }

    /// Size of the encoded frame in bytes.
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN + 4 * self.options.len() + self.payload.len()
    }

    /// Appends the encoded frame to `dst`.
    pub fn encode(&self, dst: &mut BytesMut) {
        encode_parts(
            dst,
            self.flags,
            self.byte10,
            self.byte11,
            &self.options,
            &[&self.payload],
        );
    }
}

/// Appends a frame whose payload is the concatenation of `parts` (e.g. context and body)
/// to `dst`, without first joining the parts. The caller writes `dst` with ONE write
/// (docs/wire-protocol.md §10: PHP reads the header with a single `fread`).
///
/// The payload length is a `u32` on the wire: callers enforce their maximum frame size
/// (far below 4 GiB) before building a frame; a larger payload is truncated in the
/// length field, which is why [`super::codec::FrameCodec`] rejects it first.
pub fn encode_parts(
    dst: &mut BytesMut,
    flags: u8,
    byte10: u8,
    byte11: u8,
    options: &Options,
    parts: &[&[u8]],
) {
    let payload_len: usize = parts.iter().map(|p| p.len()).sum();
    let hl = 3 + options.len() as u8;
    dst.reserve(HEADER_LEN + 4 * options.len() + payload_len);

    let mut head = [0u8; 6];
    head[0] = (VERSION << 4) | hl;
    head[1] = flags;
    head[2..6].copy_from_slice(&(payload_len as u32).to_le_bytes());
    dst.put_slice(&head);
    dst.put_u32_le(crc32fast::hash(&head));
    dst.put_u8(byte10);
    dst.put_u8(byte11);
    for word in options.as_slice() {
        dst.put_u32_le(*word);
    }
    for part in parts {
        dst.put_slice(part);
    }
}

/// Renders bytes that were expected to be a frame the way a person wants to read them:
/// printable text as is, everything else escaped, cut at `limit` bytes.
pub fn printable(bytes: &[u8], limit: usize) -> String {
    let shown = &bytes[..bytes.len().min(limit)];
    let mut out = String::with_capacity(shown.len() + 8);
    for chunk in shown.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    if bytes.len() > limit {
        out.push_str(&format!("… ({} more bytes)", bytes.len() - limit));
    }
    out
}
