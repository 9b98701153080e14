//! Who is asking: the account and region a request acts in, and how it names its stream.

use kinesin_api::{ErrorKind, KinesisError, Protocol};
use kinesin_controller::{ClusterState, StreamKey, StreamMeta};
use kinesin_types::parse_stream_arn;

pub(crate) struct RequestContext {
    pub account: String,
    pub region: String,
    /// The wire the request came in on; its answer goes out on the same.
    pub protocol: Protocol,
}

impl RequestContext {
    /// The stream a request names by `StreamName`, `StreamARN` or both (which must agree).
    pub fn stream_key(
        &self,
        name: Option<&str>,
        arn: Option<&str>,
    ) -> Result<StreamKey, KinesisError> {
        match (name, arn) {
            (None, None) => Err(KinesisError::new(
                ErrorKind::Validation,
                "Either StreamName or StreamARN must be provided.",
            )),
            (Some(name), None) => Ok(StreamKey {
                account: self.account.clone(),
                region: self.region.clone(),
                name: name.to_string(),
            }),
            (name, Some(arn)) => {
                let parsed = parse_stream_arn(arn)
                    .map_err(|e| KinesisError::new(ErrorKind::InvalidArgument, e.to_string()))?;
                if let Some(name) = name {
                    if name != parsed.stream_name {
                        return Err(KinesisError::new(
                            ErrorKind::InvalidArgument,
                            format!(
                                "StreamARN {arn} and StreamName {name} refer to different streams."
                            ),
                        ));
                    }
                }
                Ok(StreamKey {
                    account: parsed.account,
                    region: parsed.region,
                    name: parsed.stream_name,
                })
            }
        }
    }
}

pub(crate) fn not_found(key: &StreamKey) -> KinesisError {
    KinesisError::new(
        ErrorKind::ResourceNotFound,
        format!(
            "Stream {} under account {} not found.",
            key.name, key.account
        ),
    )
}

/// The stream, or AWS's not-found error.
pub(crate) fn find<'a>(
    state: &'a ClusterState,
    key: &StreamKey,
) -> Result<&'a StreamMeta, KinesisError> {
    state.stream(key).ok_or_else(|| not_found(key))
}
