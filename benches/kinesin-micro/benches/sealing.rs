//! Encryption at rest on the write and read paths: a gateway seals each record of an encrypted
//! stream (AES-256-GCM, one envelope per record) before routing it, and opens each one it reads.
//! What a PutRecords of 500 x 1 KiB costs in sealing, and a GetRecords page of them in opening,
//! beside the plaintext path (which builds the same records without sealing them).

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use kinesin_controller::{DataKey, EncryptionType, NewDataKey, StreamKey, StreamMeta};
use kinesin_gateway::encryption::{DataKeys, KeyScope, Keyring};
use kinesin_micro::{criterion, RECORD_BYTES};
use kinesin_raft::{NewRecord, StoredRecord};

const RECORDS: usize = 500;

fn encrypted_stream(dir: &tempfile::TempDir) -> (DataKeys, StreamMeta) {
    let path = dir.path().join("keyring.toml");
    let material = base64::engine::general_purpose::STANDARD.encode([5u8; 32]);
    std::fs::write(
        &path,
        format!("[[key]]\nid = \"k\"\nmaterial = \"{material}\"\n"),
    )
    .expect("keyring");
    let keys = DataKeys::new(Arc::new(Keyring::open(&path).expect("keyring")));
    let key = StreamKey {
        account: "000000000000".into(),
        region: "us-east-1".into(),
        name: "bench".into(),
    };
    let mut stream = StreamMeta::new(
        key,
        "arn:aws:kinesis:us-east-1:000000000000:stream/bench".into(),
        1,
    );
    let scope = KeyScope {
        account: "000000000000",
        region: "us-east-1",
    };
    let NewDataKey { key_arn, wrapped } = keys.new_data_key(&stream, "k", scope).expect("data key");
    stream.encryption = EncryptionType::Kms { key_id: "k".into() };
    stream.data_keys.push(DataKey {
        generation: 1,
        key_arn,
        wrapped,
    });
    (keys, stream)
}

fn sealing(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (keys, stream) = encrypted_stream(&dir);
    let payloads: Vec<(String, Vec<u8>)> = (0..RECORDS)
        .map(|i| (format!("partition-{i}"), vec![i as u8; RECORD_BYTES]))
        .collect();
    let stored: Vec<StoredRecord> = {
        let sealer = keys.sealer(&stream).expect("sealer").expect("encrypted");
        payloads
            .iter()
            .enumerate()
            .map(|(i, (key, data))| {
                let sealed = sealer.seal(key, data).expect("seal");
                StoredRecord {
                    position: i as u64,
                    arrival_ms: 1,
                    partition_key: sealed.partition_key,
                    data: sealed.data.to_vec(),
                    data_key: sealed.data_key,
                }
            })
            .collect()
    };

    let mut group = c.benchmark_group("sealing");
    group.throughput(Throughput::Bytes((RECORDS * RECORD_BYTES) as u64));
    group.bench_function("plain_put_500x1KiB", |b| {
        b.iter(|| {
            payloads
                .iter()
                .map(|(key, data)| NewRecord::plain(key.clone(), data.clone()))
                .collect::<Vec<_>>()
        })
    });
    group.bench_function("seal_put_500x1KiB", |b| {
        b.iter(|| {
            let sealer = keys
                .sealer(black_box(&stream))
                .expect("sealer")
                .expect("encrypted");
            payloads
                .iter()
                .map(|(key, data)| sealer.seal(key, data).expect("seal"))
                .collect::<Vec<_>>()
        })
    });
    group.bench_function("open_page_500x1KiB", |b| {
        b.iter_batched(
            || stored.clone(),
            |mut page| {
                keys.open(black_box(&stream), &mut page).expect("open");
                page
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = criterion(20, Duration::from_secs(2));
    targets = sealing
}
criterion_main!(benches);
