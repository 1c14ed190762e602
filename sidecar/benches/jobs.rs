//! What one AMQP job costs pacer on its per-job path outside the broker client: the
//! worker's context (JSON frame header) and the ack bookkeeping of the batched acks
//! (`jobs::ack_window`: one `basic.ack(multiple)` per run of acked deliveries instead of a
//! frame per job). The frames saved show in `bench/jobs.sh`'s CPU per job; this shows the
//! window's own cost stays far below a frame write (≈ µs).
//!
//! `cargo bench -p pacer --bench jobs`
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use pacer::jobs::Job;
use pacer::jobs::ack_window::AckWindow;
use pacer::jobs::job::context;

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("jobs per job");
    group.throughput(Throughput::Elements(1));

    let job = Job {
        name: "App\\Jobs\\SendMail".into(),
        id: "0b9c5e2a-8d8f-4b38-9f5e-1f0f7c1d2e3a".into(),
        payload: Bytes::from_static(br#"{"t":1765000000.123,"i":42}"#),
        pipeline: "emails".into(),
        priority: 10,
        ..Default::default()
    };
    group.bench_function("worker context (JSON header)", |b| {
        b.iter(|| context(black_box(&job), "amqp", "emails"))
    });

    // Two workers answering out of order (two jobs per iteration), a flush every 12 jobs
    // (prefetch 50).
    group.throughput(Throughput::Elements(2));
    let mut window = AckWindow::new();
    let mut tag = 0u64;
    group.bench_function(
        "batched ack bookkeeping (2 jobs: deliver, ack, flush share)",
        |b| {
            b.iter(|| {
                tag += 1;
                window.deliver(tag);
                window.deliver(tag + 1);
                window.ack(black_box(tag + 1));
                window.ack(black_box(tag));
                tag += 1;
                if tag.is_multiple_of(12) {
                    black_box(window.take(4));
                }
            })
        },
    );
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
