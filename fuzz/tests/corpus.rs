//! Replays every file of `corpus/<target>/` through its target's function on plain stable (no
//! instrumentation, no libFuzzer): the seeds and every crash ever found stay a regression suite
//! that `cargo test` in `fuzz/` runs.

use std::path::Path;

/// The stack of a tokio worker thread (2 MiB), where the server decodes requests: a deep
/// nesting that fits libFuzzer's 8 MiB main thread must fit there too (in a debug build, which
/// uses more stack than the server's release build).
const SERVER_STACK: usize = 2 * 1024 * 1024;

#[test]
fn every_corpus_file_passes_its_target() {
    std::thread::Builder::new()
        .stack_size(SERVER_STACK)
        .spawn(replay_corpus)
        .unwrap()
        .join()
        .unwrap();
}

fn replay_corpus() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    for (name, target) in kinesin_fuzz::TARGETS {
        let dir = root.join(name);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| entry.unwrap().path())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "no seeds in {}", dir.display());
        for file in files {
            let data = std::fs::read(&file).unwrap();
            eprintln!("{name}: {}", file.display());
            target(&data);
        }
    }
}

/// The signed seeds are real signatures (botocore's, with kinesin_fuzz::SECRET): the fuzzer
/// starts from requests that verify, so it explores the verification path to its end.
#[test]
fn the_signed_seeds_verify() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/sigv4");
    for seed in ["seed-header", "seed-presigned"] {
        let data = std::fs::read(dir.join(seed)).unwrap();
        let text = kinesin_fuzz::HttpText::parse(&data);
        let request = text.request();
        let auth = kinesin_api::Authentication::read(&request)
            .unwrap()
            .expect("signed");
        auth.verify(&request, kinesin_fuzz::SECRET, auth.signed_at)
            .unwrap_or_else(|e| panic!("{seed}: {e:?}"));
        assert!(auth
            .verify(&request, "another secret", auth.signed_at)
            .is_err());
    }
}

/// The request seeds are valid requests (botocore's JSON, the Java SDK's CBOR), so the fuzzer
/// starts from bodies that pass validation and reaches the typed decoding behind it.
#[test]
fn the_request_seeds_decode() {
    use kinesin_api::{Operation, Protocol};
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    for (target, protocol) in [
        ("json_request", Protocol::Json),
        ("cbor_request", Protocol::Cbor),
    ] {
        for entry in std::fs::read_dir(root.join(target)).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if !name.starts_with("seed-") {
                continue;
            }
            let data = std::fs::read(&path).unwrap();
            let op = Operation::ALL[data[0] as usize];
            protocol
                .decode_request(op, &data[1..])
                .unwrap_or_else(|e| panic!("{target}/{name}: {e:?}"));
        }
    }
}
