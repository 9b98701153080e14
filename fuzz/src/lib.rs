//! The bodies of Kinesin's fuzz targets, one function per target. `fuzz_targets/*.rs` hand
//! libFuzzer's input to them; `tests/corpus.rs` replays every file of `corpus/<target>/`
//! through them on plain stable, so the corpus is a regression suite without instrumentation.
//!
//! Every function must return normally for any input: a panic is a bug in the crate under
//! test (what the client sends must be answered with an error, never a panic).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use kinesin_api::event_stream;
use kinesin_api::sigv4::canonical;
use kinesin_api::{Authentication, CredentialScope, HttpRequest, Operation, Protocol};
use kinesin_types::{IteratorCodec, IteratorPayload, SequenceNumber, ShardId};
use sha2::Sha256;

/// A target's body: returns normally for every input.
pub type Target = fn(&[u8]);

/// Every target, by name: what `fuzz/run.sh` runs and the corpus test replays.
pub const TARGETS: [(&str, Target); 6] = [
    ("json_request", json_request),
    ("cbor_request", cbor_request),
    ("event_stream", event_stream),
    ("sigv4", sigv4),
    ("shard_iterator", shard_iterator),
    ("values", values),
];

/// The secret the `sigv4` target verifies with (its seed is signed with it).
pub const SECRET: &str = "fuzz-secret";

/// The iterator key of the `shard_iterator` target.
pub const ITERATOR_KEY: [u8; 32] = [7; 32];

/// The first byte chooses the operation, the rest is the body.
fn operation_and_body(data: &[u8]) -> Option<(Operation, &[u8])> {
    let (&first, body) = data.split_first()?;
    Some((Operation::ALL[first as usize % Operation::ALL.len()], body))
}

fn request(protocol: Protocol, data: &[u8]) {
    let Some((op, body)) = operation_and_body(data) else {
        return;
    };
    match protocol.decode_request(op, body) {
        Ok(request) => assert_eq!(request.operation(), op),
        // The error must encode in the protocol the request came in.
        Err(error) => {
            let _ = protocol.encode_error(&error);
        }
    }
}

/// Target `json_request`: `Protocol::Json.decode_request` of every operation; for PutRecord and
/// PutRecords, the write path's shortcut must answer exactly as the general decoder does.
pub fn json_request(data: &[u8]) {
    request(Protocol::Json, data);
    if let Some((op @ (Operation::PutRecord | Operation::PutRecords), body)) =
        operation_and_body(data)
    {
        assert_eq!(
            kinesin_api::decode_request(op, body),
            kinesin_api::decode_slowly(op, body),
            "the fast path differs"
        );
    }
}

/// Target `cbor_request`: `Protocol::Cbor.decode_request` of every operation.
pub fn cbor_request(data: &[u8]) {
    request(Protocol::Cbor, data);
}

/// Target `event_stream`: reads messages from arbitrary bytes, writes each back and reads it
/// again (the same message), and writes a message made of the input's bytes and reads it back.
pub fn event_stream(data: &[u8]) {
    let mut rest = data;
    while let Ok(Some((message, used))) = event_stream::read_message(rest) {
        assert!(
            used >= 16 && used <= rest.len(),
            "read {used} of {}",
            rest.len()
        );
        // Names longer than a u8 or values longer than a u16 cannot be written (the writer
        // only ever writes its own short constants); lossy UTF-8 can lengthen them.
        if message
            .headers
            .iter()
            .all(|(n, v)| n.len() <= 255 && v.len() <= 65535)
        {
            let headers: Vec<(&str, &str)> = message
                .headers
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str()))
                .collect();
            let framed = event_stream::message(&headers, &message.payload);
            let again = event_stream::read_message(&framed);
            assert_eq!(again, Ok(Some((message.clone(), framed.len()))));
        }
        rest = &rest[used..];
    }

    // Write then read: headers taken from the input, `[name len][name][value len][value]`,
    // up to 4 of them, the rest is the payload.
    let mut at = 0;
    let mut owned = Vec::new();
    let count = data.first().map_or(0, |b| b % 5);
    at += 1;
    for _ in 0..count {
        let Some(field) = take_field(data, &mut at) else {
            break;
        };
        let Some(value) = take_field(data, &mut at) else {
            break;
        };
        owned.push((
            String::from_utf8_lossy(field).into_owned(),
            String::from_utf8_lossy(value).into_owned(),
        ));
    }
    let owned: Vec<(String, String)> = owned.into_iter().filter(|(n, _)| n.len() <= 255).collect();
    let headers: Vec<(&str, &str)> = owned
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let payload = data.get(at..).unwrap_or_default();
    let framed = event_stream::message(&headers, payload);
    let (message, used) = event_stream::read_message(&framed)
        .expect("own message reads")
        .expect("own message is whole");
    assert_eq!(used, framed.len());
    assert_eq!(message.headers, owned);
    assert_eq!(message.payload, payload);
    // A message cut short is never a message, nor an error.
    assert_eq!(
        event_stream::read_message(&framed[..framed.len() - 1]),
        Ok(None)
    );
}

fn take_field<'a>(data: &'a [u8], at: &mut usize) -> Option<&'a [u8]> {
    let len = *data.get(*at)? as usize;
    let field = data.get(*at + 1..*at + 1 + len)?;
    *at += 1 + len;
    Some(field)
}

/// An HTTP request in the text form the `sigv4` corpus uses: the method on the first line, the
/// path and query on the second, `name: value` headers, an empty line, then the body.
pub struct HttpText<'a> {
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub body: &'a [u8],
}

impl<'a> HttpText<'a> {
    pub fn parse(data: &'a [u8]) -> HttpText<'a> {
        let split = data.windows(2).position(|w| w == b"\n\n");
        let (head, body) = match split {
            Some(at) => (&data[..at], &data[at + 2..]),
            None => (data, &[][..]),
        };
        let head = String::from_utf8_lossy(head);
        let mut lines = head.split('\n');
        let method = lines.next().unwrap_or_default().to_string();
        let target = lines.next().unwrap_or_default();
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let headers = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(name, value)| (name.to_string(), value.trim().to_string()))
            .collect();
        HttpText {
            method,
            path: path.to_string(),
            query: query.to_string(),
            headers,
            body,
        }
    }

    pub fn request(&self) -> HttpRequest<'_> {
        HttpRequest {
            method: &self.method,
            path: &self.path,
            query: &self.query,
            headers: self.headers.clone(),
            body: self.body,
        }
    }
}

/// Target `sigv4`: `Authentication::read` of an arbitrary request (Authorization header or
/// presigned query) and `verify` with a fixed secret at several clocks, and the canonical
/// request's parts on their own.
pub fn sigv4(data: &[u8]) {
    let text = HttpText::parse(data);
    let request = text.request();
    let (path, query) = (text.path.as_str(), text.query.as_str());
    if let Ok(Some(auth)) = Authentication::read(&request) {
        for now in [auth.signed_at, 0, 1_700_000_000, u64::MAX] {
            let _ = auth.verify(&request, SECRET, now);
        }
        let _ = auth.scope.check_service(kinesin_api::SIGNING_SERVICE);
    }
    let _ = kinesin_api::credential_scope(request.header("authorization"), Some(query));
    let _ = CredentialScope::parse(path);
    let _ = canonical::canonical_uri(path);
    let _ = canonical::canonical_query(query, true);
    let _ = canonical::canonical_query(query, false);
    let signed = request.header("x-signed").unwrap_or("host;x-amz-date");
    let _ = canonical::canonical_request(&request, signed, "UNSIGNED-PAYLOAD", false);
    if let Some(secs) = canonical::parse_timestamp(&text.method) {
        assert_eq!(canonical::format_timestamp(secs), text.method);
    }
}

/// Target `shard_iterator`: `IteratorCodec::decode` of an arbitrary string, and of arbitrary
/// bytes under a valid MAC (so the payload decoder sees them), and a decoded payload written
/// again reads back the same.
pub fn shard_iterator(data: &[u8]) {
    let codec = IteratorCodec::new(ITERATOR_KEY);
    let now = 1_700_000_000_000;
    let text = String::from_utf8_lossy(data);
    for now in [now, 0, u64::MAX] {
        let _ = codec.decode(&text, now);
    }
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&ITERATOR_KEY).expect("any key length");
    mac.update(data);
    let mut bytes = data.to_vec();
    bytes.extend_from_slice(&mac.finalize().into_bytes()[..16]);
    let iterator = STANDARD.encode(&bytes);
    if let Ok(payload) = codec.decode(&iterator, 0) {
        // One byte form per payload: writing it again gives back the input.
        assert_eq!(codec.encode(&payload), iterator);
        check_payload(&codec, payload);
    }
}

fn check_payload(codec: &IteratorCodec, payload: IteratorPayload) {
    let again = codec.decode(&codec.encode(&payload), payload.issued_ms);
    assert_eq!(again, Ok(payload));
}

/// Target `values`: the small values clients send, one per line: sequence numbers, shard ids,
/// hash keys, ARNs, stream names, content types, base64, operation names. Each parser's output
/// written again parses to the same value.
pub fn values(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    for line in text.split('\n') {
        if let Ok(sequence) = SequenceNumber::parse(line) {
            assert_eq!(
                SequenceNumber::parse(&sequence.to_decimal()),
                Ok(sequence),
                "{line}"
            );
        }
        if let Ok(shard) = line.parse::<ShardId>() {
            assert_eq!(shard.to_string().parse::<ShardId>(), Ok(shard));
        }
        if let Ok(key) = kinesin_types::parse_hash_key(line) {
            assert_eq!(kinesin_types::parse_hash_key(&key.to_string()), Ok(key));
        }
        let _ = kinesin_types::partition_key_hash(line);
        if let Ok(arn) = kinesin_types::parse_resource_arn(line) {
            let _ = kinesin_types::parse_stream_arn(line);
            let _ = kinesin_types::parse_consumer_arn(line);
            let written = match &arn {
                kinesin_types::ResourceArn::Stream(s) => {
                    kinesin_types::stream_arn(&s.region, &s.account, &s.stream_name)
                }
                kinesin_types::ResourceArn::Consumer(c) => kinesin_types::consumer_arn(
                    &kinesin_types::stream_arn(
                        &c.stream.region,
                        &c.stream.account,
                        &c.stream.stream_name,
                    ),
                    &c.consumer_name,
                    c.created_secs,
                ),
            };
            assert_eq!(kinesin_types::parse_resource_arn(&written), Ok(arn));
        }
        let _ = kinesin_types::validate_stream_name(line);
        let _ = Protocol::from_content_type(line);
        let _ = Operation::from_name(line);
        let _ = kinesin_api::codec::check_base64(line);
        let _ = CredentialScope::parse(line);
        let _ = canonical::parse_timestamp(line);
        let _ = canonical::uri_encode(line.as_bytes(), true);
    }
}
