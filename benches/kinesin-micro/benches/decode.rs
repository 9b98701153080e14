//! Request decoding: a body through `kinesin_api::decode_request`, exactly what the gateway's
//! `serve` calls on every request (bodies are valid, so this is the success path: whatever route
//! `decode_request` takes for a well-formed write), and base64 on its own for scale: decoding,
//! and `kinesin_api::codec::check_base64`, the AWS-compatible check the general decoder runs on
//! every blob before converting it.

use std::hint::black_box;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use kinesin_api::{decode_request, Operation, Request};
use kinesin_micro::{criterion, payload, put_record_body, put_records_body, RECORD_BYTES};

fn decoded_records(request: &Request) -> usize {
    match request {
        Request::PutRecords(input) => input.records.len(),
        Request::PutRecord(_) => 1,
        _ => 0,
    }
}

fn request_decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode_request");
    for count in [500usize, 100] {
        let body = put_records_body(count, RECORD_BYTES);
        // The body must decode, or the bench would time an error path.
        let request = decode_request(Operation::PutRecords, &body).expect("valid PutRecords");
        assert_eq!(decoded_records(&request), count);
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_function(format!("put_records_{count}x1KiB"), |b| {
            b.iter(|| decode_request(Operation::PutRecords, black_box(&body)))
        });
    }
    let body = put_record_body(RECORD_BYTES);
    let request = decode_request(Operation::PutRecord, &body).expect("valid PutRecord");
    assert_eq!(decoded_records(&request), 1);
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("put_record_1KiB", |b| {
        b.iter(|| decode_request(Operation::PutRecord, black_box(&body)))
    });
    group.finish();
}

fn base64(c: &mut Criterion) {
    let mut group = c.benchmark_group("base64");
    for (name, len) in [("1KiB", 1usize << 10), ("1MiB", 1 << 20)] {
        let text = STANDARD.encode(payload(len, 7));
        if len >= 1 << 20 {
            // Milliseconds per call: fewer, equal-sized samples fit the time budget.
            group.sample_size(10).sampling_mode(SamplingMode::Flat);
        }
        // Throughput in decoded bytes.
        group.throughput(Throughput::Bytes(len as u64));
        group.bench_function(format!("decode_{name}"), |b| {
            b.iter(|| STANDARD.decode(black_box(&text)))
        });
        // The general decoder's check of every blob (AWS's error messages).
        group.bench_function(format!("check_{name}"), |b| {
            b.iter(|| kinesin_api::codec::check_base64(black_box(&text)))
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = criterion(20, Duration::from_secs(2));
    targets = request_decode, base64
}
criterion_main!(benches);
