use crate::error::{excerpt, TypesError};
use crate::names::validate_stream_name;

/// The API caps StreamARN/ConsumerARN/ResourceARN at 2048 characters.
const MAX_ARN_LEN: usize = 2048;

/// Partitions whose ARNs we accept. Kinesin always emits `aws`, but clients built against
/// China or GovCloud endpoints send their own partition back.
const PARTITIONS: [&str; 3] = ["aws", "aws-cn", "aws-us-gov"];

/// `arn:aws:kinesis:{region}:{account}:stream/{name}`
pub fn stream_arn(region: &str, account: &str, stream_name: &str) -> String {
    format!("arn:aws:kinesis:{region}:{account}:stream/{stream_name}")
}

/// A parsed stream ARN. The partition is validated but not kept: Kinesin serves one
/// partition, and names within a region/account are what identify a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamArn {
    pub region: String,
    pub account: String,
    pub stream_name: String,
}

/// `{stream_arn}/consumer/{name}:{created_secs}`
pub fn consumer_arn(stream_arn: &str, consumer_name: &str, created_secs: u64) -> String {
    format!("{stream_arn}/consumer/{consumer_name}:{created_secs}")
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerArn {
    pub stream: StreamArn,
    pub consumer_name: String,
    pub created_secs: u64,
}

/// Either kind of resource ARN (TagResource etc. take both).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResourceArn {
    Stream(StreamArn),
    Consumer(ConsumerArn),
}

pub fn parse_stream_arn(arn: &str) -> Result<StreamArn, TypesError> {
    match parse_resource_arn(arn)? {
        ResourceArn::Stream(s) => Ok(s),
        ResourceArn::Consumer(_) => Err(invalid(arn, "expected a stream ARN, got a consumer ARN")),
    }
}

pub fn parse_consumer_arn(arn: &str) -> Result<ConsumerArn, TypesError> {
    match parse_resource_arn(arn)? {
        ResourceArn::Consumer(c) => Ok(c),
        ResourceArn::Stream(_) => Err(invalid(arn, "expected a consumer ARN, got a stream ARN")),
    }
}

pub fn parse_resource_arn(arn: &str) -> Result<ResourceArn, TypesError> {
    if arn.len() > MAX_ARN_LEN {
        return Err(invalid(arn, "longer than 2048 characters"));
    }
    // The resource part of a consumer ARN contains ':' itself, so split at most 6 ways.
    let mut parts = arn.splitn(6, ':');
    let (Some(prefix), Some(partition), Some(service), Some(region), Some(account), Some(resource)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(invalid(
            arn,
            "expected arn:<partition>:kinesis:<region>:<account>:<resource>",
        ));
    };
    if prefix != "arn" {
        return Err(invalid(arn, "must start with \"arn:\""));
    }
    if !PARTITIONS.contains(&partition) {
        return Err(invalid(arn, "partition must be aws, aws-cn or aws-us-gov"));
    }
    if service != "kinesis" {
        return Err(invalid(arn, "service must be kinesis"));
    }
    if region.is_empty()
        || !region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(invalid(arn, "region must match [a-z0-9-]+"));
    }
    if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid(arn, "account must be 12 digits"));
    }
    let Some(path) = resource.strip_prefix("stream/") else {
        return Err(invalid(arn, "resource must start with \"stream/\""));
    };
    // Names cannot contain '/' or ':', so these splits are unambiguous once names validate.
    let (stream_name, consumer) = match path.split_once("/consumer/") {
        Some((stream_name, consumer)) => (stream_name, Some(consumer)),
        None => (path, None),
    };
    validate_stream_name(stream_name).map_err(|_| invalid(arn, "invalid stream name"))?;
    let stream = StreamArn {
        region: region.to_owned(),
        account: account.to_owned(),
        stream_name: stream_name.to_owned(),
    };
    let Some(consumer) = consumer else {
        return Ok(ResourceArn::Stream(stream));
    };
    let Some((consumer_name, created)) = consumer.split_once(':') else {
        return Err(invalid(
            arn,
            "consumer ARN must end in :<creation timestamp>",
        ));
    };
    validate_stream_name(consumer_name).map_err(|_| invalid(arn, "invalid consumer name"))?;
    // Checked by hand because u64::from_str also accepts a leading '+'.
    if created.is_empty() || !created.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid(arn, "consumer creation timestamp must be digits"));
    }
    let created_secs = created
        .parse::<u64>()
        .map_err(|_| invalid(arn, "consumer creation timestamp out of range"))?;
    Ok(ResourceArn::Consumer(ConsumerArn {
        stream,
        consumer_name: consumer_name.to_owned(),
        created_secs,
    }))
}

fn invalid(arn: &str, reason: &'static str) -> TypesError {
    TypesError::InvalidArn {
        arn: excerpt(arn),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STREAM: &str = "arn:aws:kinesis:us-east-1:123456789012:stream/my-stream";
    const CONSUMER: &str =
        "arn:aws:kinesis:us-east-1:123456789012:stream/my-stream/consumer/app_1.v2:1700000000";

    fn my_stream() -> StreamArn {
        StreamArn {
            region: "us-east-1".into(),
            account: "123456789012".into(),
            stream_name: "my-stream".into(),
        }
    }

    #[test]
    fn builds_arns() {
        assert_eq!(stream_arn("us-east-1", "123456789012", "my-stream"), STREAM);
        assert_eq!(consumer_arn(STREAM, "app_1.v2", 1_700_000_000), CONSUMER);
    }

    #[test]
    fn stream_round_trip() {
        let parsed = parse_stream_arn(STREAM).unwrap();
        assert_eq!(parsed, my_stream());
        assert_eq!(
            stream_arn(&parsed.region, &parsed.account, &parsed.stream_name),
            STREAM
        );
    }

    #[test]
    fn consumer_round_trip() {
        let parsed = parse_consumer_arn(CONSUMER).unwrap();
        assert_eq!(
            parsed,
            ConsumerArn {
                stream: my_stream(),
                consumer_name: "app_1.v2".into(),
                created_secs: 1_700_000_000,
            }
        );
        let s = &parsed.stream;
        assert_eq!(
            consumer_arn(
                &stream_arn(&s.region, &s.account, &s.stream_name),
                &parsed.consumer_name,
                parsed.created_secs
            ),
            CONSUMER
        );
    }

    #[test]
    fn resource_arn_dispatches_on_kind() {
        assert_eq!(
            parse_resource_arn(STREAM).unwrap(),
            ResourceArn::Stream(my_stream())
        );
        assert!(matches!(
            parse_resource_arn(CONSUMER).unwrap(),
            ResourceArn::Consumer(c) if c.consumer_name == "app_1.v2"
        ));
        assert!(parse_stream_arn(CONSUMER).is_err());
        assert!(parse_consumer_arn(STREAM).is_err());
    }

    #[test]
    fn accepts_other_partitions() {
        for p in ["aws-cn", "aws-us-gov"] {
            let arn = format!("arn:{p}:kinesis:cn-north-1:123456789012:stream/s");
            assert_eq!(parse_stream_arn(&arn).unwrap().stream_name, "s");
        }
    }

    #[test]
    fn accepts_boundary_names_and_timestamps() {
        let long = "n".repeat(128);
        let arn = consumer_arn(
            &stream_arn("eu-west-1", "000000000000", &long),
            &long,
            u64::MAX,
        );
        let c = parse_consumer_arn(&arn).unwrap();
        assert_eq!(c.stream.stream_name, long);
        assert_eq!(c.consumer_name, long);
        assert_eq!(c.created_secs, u64::MAX);
        let zero = consumer_arn(STREAM, "c", 0);
        assert_eq!(parse_consumer_arn(&zero).unwrap().created_secs, 0);
    }

    #[test]
    fn rejects_malformed() {
        let long_name = stream_arn("us-east-1", "123456789012", &"n".repeat(129));
        let huge = format!("{STREAM}{}", "x".repeat(3000));
        for bad in [
            "",
            "arn",
            "arn:aws:kinesis:us-east-1:123456789012",
            "arn:aws:kinesis:us-east-1:123456789012:",
            "arn:aws:kinesis:us-east-1:123456789012:stream/",
            "arn:aws:kinesis:us-east-1:123456789012:stream",
            "arn:aws:kinesis:us-east-1:123456789012:table/my-stream",
            "ARN:aws:kinesis:us-east-1:123456789012:stream/my-stream",
            "urn:aws:kinesis:us-east-1:123456789012:stream/my-stream",
            "arn:aws-iso:kinesis:us-east-1:123456789012:stream/my-stream",
            "arn:gcp:kinesis:us-east-1:123456789012:stream/my-stream",
            "arn::kinesis:us-east-1:123456789012:stream/my-stream",
            "arn:aws:sqs:us-east-1:123456789012:stream/my-stream",
            "arn:aws:kinesis::123456789012:stream/my-stream",
            "arn:aws:kinesis:US-EAST-1:123456789012:stream/my-stream",
            "arn:aws:kinesis:us east:123456789012:stream/my-stream",
            "arn:aws:kinesis:us-east-1:12345678901:stream/my-stream",
            "arn:aws:kinesis:us-east-1:1234567890123:stream/my-stream",
            "arn:aws:kinesis:us-east-1:12345678901x:stream/my-stream",
            "arn:aws:kinesis:us-east-1:123456789012:stream/my stream",
            "arn:aws:kinesis:us-east-1:123456789012:stream/my-stream/",
            "arn:aws:kinesis:us-east-1:123456789012:stream/a/b",
            "arn:aws:kinesis:us-east-1:123456789012:stream/my-stream/consumer/",
            "arn:aws:kinesis:us-east-1:123456789012:stream/my-stream/consumer/c",
            "arn:aws:kinesis:us-east-1:123456789012:stream/my-stream/consumer/c:",
            "arn:aws:kinesis:us-east-1:123456789012:stream/my-stream/consumer/c:+1",
            "arn:aws:kinesis:us-east-1:123456789012:stream/my-stream/consumer/c:1x",
            "arn:aws:kinesis:us-east-1:123456789012:stream/my-stream/consumer/c:1:2",
            "arn:aws:kinesis:us-east-1:123456789012:stream/my-stream/consumer/:1",
            "arn:aws:kinesis:us-east-1:123456789012:stream/my-stream/consumer/c/d:1",
            "arn:aws:kinesis:us-east-1:123456789012:stream/my-stream/consumer/c:18446744073709551616",
            "arn:aws:kinesis:us-east-1:123456789012:stream//consumer/c:1",
            long_name.as_str(),
            huge.as_str(),
        ] {
            let err = parse_resource_arn(bad).unwrap_err();
            assert!(matches!(err, TypesError::InvalidArn { .. }), "{bad:?}");
        }
    }

    #[test]
    fn error_explains_why() {
        let err = parse_stream_arn("arn:aws:kinesis:us-east-1:1:stream/s").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid ARN \"arn:aws:kinesis:us-east-1:1:stream/s\": account must be 12 digits"
        );
    }
}
