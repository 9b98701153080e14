//! Routing a record: partition key → MD5 hash key (`kinesin_types::partition_key_hash`) → the
//! open shard owning it, and ExplicitHashKey parsing (`kinesin_types::parse_hash_key`).
//!
//! The gateway's `route` (kinesin-gateway/src/ops/records.rs) is private, but its lookup is
//! `kinesin_types::open_shard_index` (first open shard whose range contains the key, a linear
//! scan of `StreamMeta::shards`), which `owner` below calls the same way over the controller's
//! real `ShardMeta`s. Every iteration routes 1024 different keys, so neither the scan's length
//! nor its branches are the same from one key to the next.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use kinesin_controller::ShardMeta;
use kinesin_micro::{criterion, open_shards, partition_key};
use kinesin_types::{open_shard_index, parse_hash_key, partition_key_hash};

const KEYS: usize = 1024;

/// The open shard owning `hash_key`, looked up as the gateway's `route` does for each record.
fn owner(shards: &[ShardMeta], hash_key: u128) -> Option<usize> {
    open_shard_index(
        shards.iter().map(|s| (s.is_open(), &s.hash_range)),
        hash_key,
    )
}

fn hashing(c: &mut Criterion) {
    let keys: Vec<String> = (0..KEYS).map(partition_key).collect();
    let explicit: Vec<String> = keys
        .iter()
        .map(|k| partition_key_hash(k).to_string())
        .collect();
    assert!(explicit.iter().all(|k| parse_hash_key(k).is_ok()));

    let mut group = c.benchmark_group("hash_key");
    group.throughput(Throughput::Elements(KEYS as u64));
    group.bench_function("partition_key_md5_x1024", |b| {
        b.iter(|| {
            let mut acc = 0u128;
            for key in &keys {
                acc ^= partition_key_hash(black_box(key));
            }
            acc
        })
    });
    // Mostly 38 and 39 digits, like keys spread over the whole space.
    group.bench_function("parse_explicit_hash_key_x1024", |b| {
        b.iter(|| {
            let mut acc = 0u128;
            for text in &explicit {
                acc ^= parse_hash_key(black_box(text)).unwrap_or(0);
            }
            acc
        })
    });
    group.finish();
}

fn routing(c: &mut Criterion) {
    let keys: Vec<String> = (0..KEYS).map(partition_key).collect();
    let hashes: Vec<u128> = keys.iter().map(|k| partition_key_hash(k)).collect();

    let mut group = c.benchmark_group("route");
    group.throughput(Throughput::Elements(KEYS as u64));
    for shard_count in [4u32, 1000] {
        let shards = open_shards(shard_count);
        // Every key finds a shard.
        assert!(hashes.iter().all(|h| owner(&shards, *h).is_some()));
        // What the gateway does per record: hash the key, then scan for its shard.
        group.bench_with_input(
            BenchmarkId::new("key_to_shard_x1024", format!("shards_{shard_count}")),
            &shards,
            |b, shards| {
                b.iter(|| {
                    let mut acc = 0usize;
                    for key in &keys {
                        let hash = partition_key_hash(black_box(key));
                        acc += owner(shards, hash).unwrap_or(0);
                    }
                    acc
                })
            },
        );
        // The scan alone, hash keys already known.
        group.bench_with_input(
            BenchmarkId::new("scan_only_x1024", format!("shards_{shard_count}")),
            &shards,
            |b, shards| {
                b.iter(|| {
                    let mut acc = 0usize;
                    for hash in &hashes {
                        acc += owner(shards, black_box(*hash)).unwrap_or(0);
                    }
                    acc
                })
            },
        );
        // For comparison only (not what the gateway does): a binary search over the open
        // shards' sorted start keys.
        let starts: Vec<u128> = shards.iter().map(|s| s.hash_range.start).collect();
        assert!(hashes.iter().all(|h| {
            Some(starts.partition_point(|start| start <= h) - 1) == owner(&shards, *h)
        }));
        group.bench_with_input(
            BenchmarkId::new(
                "reference_binary_search_x1024",
                format!("shards_{shard_count}"),
            ),
            &starts,
            |b, starts| {
                b.iter(|| {
                    let mut acc = 0usize;
                    for hash in &hashes {
                        let h = black_box(*hash);
                        acc += starts.partition_point(|start| *start <= h) - 1;
                    }
                    acc
                })
            },
        );
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = criterion(20, Duration::from_secs(2));
    targets = hashing, routing
}
criterion_main!(benches);
