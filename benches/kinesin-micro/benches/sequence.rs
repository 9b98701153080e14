//! Sequence numbers (`kinesin_types::SequenceNumber`): the decimal form every PutRecords answer
//! and every GetRecords record carries, and parsing it back (GetShardIterator AT/AFTER); shard
//! iterators (`kinesin_types::IteratorCodec`): encoded by GetShardIterator and every GetRecords,
//! decoded and verified by every GetRecords.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kinesin_micro::criterion;
use kinesin_types::{IteratorCodec, IteratorPayload, SequenceNumber, ShardId};

fn sequence_numbers(c: &mut Criterion) {
    // As the gateway builds them: the shard's epoch and index, `log index << 20 | slot`, seconds.
    let number = SequenceNumber {
        shard_epoch: 1_700_000_000,
        shard_index: 3,
        position: (123_456 << 20) | 17,
        arrival_secs: 1_700_000_123,
    };
    let text = number.to_decimal();
    assert_eq!(SequenceNumber::parse(&text), Ok(number));

    let mut group = c.benchmark_group("sequence_number");
    group.throughput(Throughput::Elements(1));
    group.bench_function("to_decimal", |b| b.iter(|| black_box(number).to_decimal()));
    group.bench_function("parse", |b| {
        b.iter(|| SequenceNumber::parse(black_box(&text)))
    });
    group.finish();
}

fn iterators(c: &mut Criterion) {
    let codec = IteratorCodec::new([7; 32]);
    let issued_ms = 1_700_000_000_000;
    let payload = IteratorPayload {
        account: "123456789012".into(),
        region: "us-east-1".into(),
        stream_name: "orders-events-production".into(),
        stream_created_ms: 1_699_000_000_000,
        shard: ShardId(42),
        position: (123_456 << 20) | 17,
        issued_ms,
    };
    let iterator = codec.encode(&payload);
    assert_eq!(
        codec.decode(&iterator, issued_ms + 1_000),
        Ok(payload.clone())
    );

    let mut group = c.benchmark_group("shard_iterator");
    group.throughput(Throughput::Elements(1));
    group.bench_function("encode", |b| b.iter(|| codec.encode(black_box(&payload))));
    group.bench_function("decode_verify", |b| {
        b.iter(|| codec.decode(black_box(&iterator), issued_ms + 1_000))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = criterion(20, Duration::from_secs(2));
    targets = sequence_numbers, iterators
}
criterion_main!(benches);
