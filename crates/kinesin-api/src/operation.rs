//! The 39 stream operations of the Kinesis API and their `X-Amz-Target` names.

use crate::TARGET_PREFIX;

macro_rules! operations {
    ($( $name:ident { output: $has_output:literal, data: $data:literal } ),* $(,)?) => {
        /// One operation of the Kinesis Data Streams API (the 39 stream operations).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Operation {
            $( #[doc = concat!("`", stringify!($name), "`")] $name, )*
        }

        impl Operation {
            /// Every operation, in alphabetical order.
            pub const ALL: [Operation; 39] = [ $( Operation::$name, )* ];

            /// The operation's name as in the API (`PutRecord`).
            pub fn name(&self) -> &'static str {
                match self {
                    $( Operation::$name => stringify!($name), )*
                }
            }

            /// Looks an operation up by its exact, case-sensitive name (`PutRecord`).
            pub fn from_name(name: &str) -> Option<Operation> {
                match name {
                    $( stringify!($name) => Some(Operation::$name), )*
                    _ => None,
                }
            }

            /// Whether the model gives the operation an output shape. When it does not
            /// (CreateStream, DeleteStream, PutResourcePolicy, ...), AWS answers `200`
            /// with an empty body, not `{}`.
            pub fn has_output(&self) -> bool {
                match self {
                    $( Operation::$name => $has_output, )*
                }
            }

            /// Whether the model classes the operation as data plane
            /// (`OperationType: data`: PutRecord, PutRecords, GetRecords,
            /// GetShardIterator, SubscribeToShard) rather than control plane.
            pub fn is_data_plane(&self) -> bool {
                match self {
                    $( Operation::$name => $data, )*
                }
            }
        }
    };
}

operations! {
    AddTagsToStream { output: false, data: false },
    CreateStream { output: false, data: false },
    DecreaseStreamRetentionPeriod { output: false, data: false },
    DeleteResourcePolicy { output: false, data: false },
    DeleteStream { output: false, data: false },
    DeregisterStreamConsumer { output: false, data: false },
    DescribeAccountSettings { output: true, data: false },
    DescribeLimits { output: true, data: false },
    DescribeStream { output: true, data: false },
    DescribeStreamConsumer { output: true, data: false },
    DescribeStreamSummary { output: true, data: false },
    DisableEnhancedMonitoring { output: true, data: false },
    EnableEnhancedMonitoring { output: true, data: false },
    GetRecords { output: true, data: true },
    GetResourcePolicy { output: true, data: false },
    GetShardIterator { output: true, data: true },
    IncreaseStreamRetentionPeriod { output: false, data: false },
    ListShards { output: true, data: false },
    ListStreamConsumers { output: true, data: false },
    ListStreams { output: true, data: false },
    ListTagsForResource { output: true, data: false },
    ListTagsForStream { output: true, data: false },
    MergeShards { output: false, data: false },
    PutRecord { output: true, data: true },
    PutRecords { output: true, data: true },
    PutResourcePolicy { output: false, data: false },
    RegisterStreamConsumer { output: true, data: false },
    RemoveTagsFromStream { output: false, data: false },
    SplitShard { output: false, data: false },
    StartStreamEncryption { output: false, data: false },
    StopStreamEncryption { output: false, data: false },
    SubscribeToShard { output: true, data: true },
    TagResource { output: false, data: false },
    UntagResource { output: false, data: false },
    UpdateAccountSettings { output: true, data: false },
    UpdateMaxRecordSize { output: false, data: false },
    UpdateShardCount { output: true, data: false },
    UpdateStreamMode { output: false, data: false },
    UpdateStreamWarmThroughput { output: true, data: false },
}

impl Operation {
    /// Parses an `X-Amz-Target` header value such as `Kinesis_20131202.PutRecord`.
    /// The prefix must be exactly `Kinesis_20131202.` and the operation name must match
    /// exactly (case-sensitive); anything else is `None` (AWS answers
    /// UnknownOperationException).
    pub fn from_target(header_value: &str) -> Option<Operation> {
        header_value
            .strip_prefix(TARGET_PREFIX)
            .and_then(Operation::from_name)
    }

    /// The `X-Amz-Target` value for this operation.
    pub fn target(&self) -> String {
        format!("{TARGET_PREFIX}{}", self.name())
    }

    /// The name of the operation's input shape in the service model.
    pub fn input_shape(&self) -> String {
        format!("{}Input", self.name())
    }
}

impl std::fmt::Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_round_trips_through_its_target() {
        for op in Operation::ALL {
            let target = format!("Kinesis_20131202.{}", op.name());
            assert_eq!(Operation::from_target(&target), Some(op));
            assert_eq!(op.target(), target);
            assert_eq!(Operation::from_name(op.name()), Some(op));
            assert_eq!(op.to_string(), op.name());
        }
    }

    #[test]
    fn all_is_sorted_and_distinct() {
        let mut sorted = Operation::ALL.to_vec();
        sorted.sort_by_key(|op| op.name());
        sorted.dedup();
        assert_eq!(sorted, Operation::ALL.to_vec());
    }

    #[test]
    fn unknown_targets_are_rejected() {
        for target in [
            "",
            "PutRecord",
            "Kinesis_20131202.",
            "Kinesis_20131202.putRecord",
            "Kinesis_20131202.PutRecordx",
            "Kinesis_20131202.PutRecord ",
            " Kinesis_20131202.PutRecord",
            "Kinesis_20131201.PutRecord",
            "kinesis_20131202.PutRecord",
            "Kinesis_20131202PutRecord",
            "Kinesis_20131202.CreateQueue",
            "Kinesis_20131202.UpdateStreamRecordDistributionStrategy",
            "DynamoDB_20120810.PutItem",
            "Kinesis_20131202.Kinesis_20131202.PutRecord",
        ] {
            assert_eq!(Operation::from_target(target), None, "{target:?}");
        }
    }

    #[test]
    fn data_plane_operations() {
        let data: Vec<_> = Operation::ALL
            .into_iter()
            .filter(Operation::is_data_plane)
            .collect();
        assert_eq!(
            data,
            vec![
                Operation::GetRecords,
                Operation::GetShardIterator,
                Operation::PutRecord,
                Operation::PutRecords,
                Operation::SubscribeToShard
            ]
        );
    }
}
