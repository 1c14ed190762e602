//! Frame codec micro-benchmarks: encoding a worker request (context + body, the hot
//! path) and decoding a reply, for a small and a 64 KiB payload; decoding as a worker
//! relay does (resynchronising past stray STDOUT text), with and without such text.
#![allow(clippy::unwrap_used)]

use bytes::BytesMut;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use pacer::relay::frame::encode_parts;
use pacer::relay::{Frame, FrameCodec, Options, flags};
use std::hint::black_box;
use tokio_util::codec::Decoder;

fn bench(c: &mut Criterion) {
    let context = br#"{"remoteAddr":"127.0.0.1","protocol":"HTTP/1.1","method":"GET","uri":"http://localhost/","rawQuery":"","parsed":false,"headers":{"Accept":["*/*"]}}"#;
    for (name, body_len) in [("small", 16usize), ("64KiB", 64 << 10)] {
        let body = vec![b'x'; body_len];
        let mut group = c.benchmark_group(format!("frame_{name}"));
        group.throughput(Throughput::Bytes((context.len() + body.len()) as u64));
        let mut buf = BytesMut::with_capacity(128 << 10);
        group.bench_function("encode", |b| {
            b.iter(|| {
                buf.clear();
                encode_parts(
                    &mut buf,
                    flags::CODEC_JSON,
                    0,
                    0,
                    &Options::one(context.len() as u32),
                    &[black_box(&context[..]), black_box(&body[..])],
                );
                black_box(buf.len())
            })
        });
        let mut wire = BytesMut::new();
        Frame::new(
            0,
            Options::one(context.len() as u32),
            [&context[..], &body[..]].concat(),
        )
        .encode(&mut wire);
        let wire = wire.freeze();
        let mut codec = FrameCodec::default();
        group.bench_function("decode", |b| {
            b.iter(|| {
                let mut src = BytesMut::from(&wire[..]);
                black_box(codec.decode(&mut src).unwrap().unwrap().payload.len())
            })
        });
        // Worker relays resynchronise: the valid-frame path must cost the same.
        let mut resync = FrameCodec::default().resynchronising();
        group.bench_function("decode (worker relay, resync on)", |b| {
            b.iter(|| {
                let mut src = BytesMut::from(&wire[..]);
                black_box(resync.decode(&mut src).unwrap().unwrap().payload.len())
            })
        });
        let mut noisy =
            BytesMut::from(&b"Notice: Undefined variable $x in /app/index.php on line 3\n"[..]);
        noisy.extend_from_slice(&wire);
        let noisy = noisy.freeze();
        group.bench_function("decode after 58 bytes of stray text", |b| {
            b.iter(|| {
                let mut src = BytesMut::from(&noisy[..]);
                let frame = resync.decode(&mut src).unwrap().unwrap();
                black_box((frame.payload.len(), resync.take_stray()))
            })
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
