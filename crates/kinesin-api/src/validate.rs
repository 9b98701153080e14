//! Request validation as AWS performs it, driven by the embedded service model.
//!
//! Validation runs in two passes over the parsed JSON body, as AWS's (Coral) JSON layer
//! does:
//!
//! 1. **Types.** Every member the model knows is checked against its shape's type; the
//!    first mismatch is a SerializationException with AWS's message (`class
//!    java.lang.String can not be converted to an Integer`, `Start of list found where
//!    not expected`, `'abc' can not be converted to a Blob: ...`). Members the model does
//!    not know are dropped, JSON `null` counts as absent, decimals given for integers are
//!    truncated (`1.9` → `1`), out-of-range integers saturate (`1e12` → `2147483647`)
//!    and the strings `true`/`false`/`yes`/`no`/`1`/`0` are read as booleans, as AWS
//!    does.
//! 2. **Constraints.** Every violation of `required`, `min`/`max` (length or value),
//!    `pattern` (a full match) and `enum` is collected, in model order, and reported as
//!    one ValidationException: `2 validation errors detected: Value '' at 'streamName'
//!    failed to satisfy constraint: ...; Value ...`. At most
//!    [`MAX_REPORTED_VIOLATIONS`] are reported, as AWS does.
//!
//! Member paths are the member names with the first letter lowered, joined with dots;
//! list elements are `<list>.<1-based index>.member` (`records.1.member.partitionKey`)
//! and map values `<map>.<key>.member`, following kinesalite, whose messages were
//! recorded against AWS. Constraints on the elements of lists of scalars and on map keys
//! and values are rolled up at the list or map, as AWS does: `Value '[a, ...]' at
//! 'tagKeys' failed to satisfy constraint: Member must satisfy constraint: [Member must
//! have length less than or equal to 128, Member must have length greater than or equal
//! to 1]`, `Map keys must satisfy constraint: [...]`, `Map value must satisfy
//! constraint: [...]`.
//!
//! **Not checked here** (the gateway enforces them with configurable limits, using
//! [`data_length_violation`] and [`records_length_violation`] for AWS's messages):
//! the size of blobs (record `Data`, at most 1 MiB by default and 10 MiB at most) and the
//! maximum number of entries of a PutRecords `Records` list (500).

use serde_json::{Map, Number, Value};

use crate::codec::check_base64;
use crate::service_model::{model, ServiceModel, Shape, ShapeKind};
use crate::{KinesisError, Operation};

/// AWS reports at most this many violations in one ValidationException.
pub const MAX_REPORTED_VIOLATIONS: usize = 10;

/// List shapes whose maximum length is left to the gateway.
const UNCHECKED_LIST_MAX: &[&str] = &["PutRecordsRequestEntryList"];

const NOT_NULL: &str = "Member must not be null";
const START_OF_LIST: &str = "Start of list found where not expected";
const START_OF_STRUCTURE: &str = "Start of structure or map found where not expected.";
const BIG_NUMBER: &str = "class com.amazon.coral.value.json.numbers.TruncatingBigNumber";

/// One constraint violation in AWS's words:
/// `Value 'a b' at 'streamName' failed to satisfy constraint: Member must satisfy
/// regular expression pattern: [a-zA-Z0-9_.-]+` (`Value null at ...` for `None`).
pub fn violation(value: Option<&str>, path: &str, constraint: &str) -> String {
    match value {
        Some(value) => {
            format!("Value '{value}' at '{path}' failed to satisfy constraint: {constraint}")
        }
        None => format!("Value null at '{path}' failed to satisfy constraint: {constraint}"),
    }
}

/// The ValidationException for `violations`:
/// `1 validation error detected: ...` or `N validation errors detected: a; b`.
/// Only the first [`MAX_REPORTED_VIOLATIONS`] are reported.
pub fn validation_error<S: AsRef<str>>(violations: &[S]) -> KinesisError {
    let reported = &violations[..violations.len().min(MAX_REPORTED_VIOLATIONS)];
    let joined = reported
        .iter()
        .map(AsRef::as_ref)
        .collect::<Vec<_>>()
        .join("; ");
    let plural = if reported.len() == 1 { "" } else { "s" };
    KinesisError::validation(format!(
        "{} validation error{plural} detected: {joined}",
        reported.len()
    ))
}

/// AWS's violation for a blob longer than allowed, e.g. for PutRecord `Data`
/// (`path` `data`) or a PutRecords entry (`records.3.member.data`):
/// `Value 'java.nio.HeapByteBuffer[pos=0 lim=1048577 cap=1048577]' at 'data' failed to
/// satisfy constraint: Member must have length less than or equal to 1048576`.
pub fn data_length_violation(path: &str, length: usize, max: usize) -> String {
    violation(
        Some(&format!(
            "java.nio.HeapByteBuffer[pos=0 lim={length} cap={length}]"
        )),
        path,
        &format!("Member must have length less than or equal to {max}"),
    )
}

/// AWS's violation for a PutRecords request with more than `max` entries.
pub fn records_length_violation(count: usize, max: usize) -> String {
    let entry = "com.amazonaws.kinesis.v20131202.PutRecordsRequestEntry@c965e310";
    let value = format!("[{}]", vec![entry; count].join(", "));
    violation(
        Some(&value),
        "records",
        &format!("Member must have length less than or equal to {max}"),
    )
}

/// Checks a parsed request body against `op`'s input shape (both passes, see the
/// module documentation) and returns it normalised: unknown and `null` members
/// removed, integers truncated, ready for `serde_json::from_value` into the typed
/// input.
///
/// Blob sizes and the PutRecords entry count are **not** checked (see the module
/// documentation).
pub fn check_input(op: Operation, body: Value) -> Result<Value, KinesisError> {
    let model = model()?;
    let shape = model
        .input_shape(op.name())
        .ok_or_else(|| KinesisError::internal(format!("no input shape for {op} in the model")))?;
    let normalized = normalize(model, shape, body)?.unwrap_or_else(|| Value::Object(Map::new()));
    let mut checker = Checker {
        model,
        violations: Vec::new(),
    };
    if let Value::Object(map) = &normalized {
        checker.structure(shape, map, "")?;
    }
    if checker.violations.is_empty() {
        Ok(normalized)
    } else {
        Err(validation_error(&checker.violations))
    }
}

fn lookup<'m>(model: &'m ServiceModel, name: &str) -> Result<&'m Shape, KinesisError> {
    model
        .shape(name)
        .ok_or_else(|| KinesisError::internal(format!("shape {name} missing from the model")))
}

fn serialization(message: impl Into<String>) -> KinesisError {
    KinesisError::serialization(message)
}

/// The SerializationException AWS gives for `value` where `target` was expected
/// (`an Integer`, `an String`, `a Blob`, `milliseconds since epoch`).
fn type_mismatch(value: &Value, target: &str) -> KinesisError {
    match value {
        Value::Array(_) => serialization(START_OF_LIST),
        Value::Object(_) => serialization(START_OF_STRUCTURE),
        Value::Bool(_) => serialization(format!(
            "class java.lang.Boolean can not be converted to {target}"
        )),
        Value::Number(_) => serialization(format!("{BIG_NUMBER} can not be converted to {target}")),
        Value::String(_) => serialization(format!(
            "class java.lang.String can not be converted to {target}"
        )),
        Value::Null => serialization(format!("null can not be converted to {target}")),
    }
}

/// Truncates a JSON number to an integer in `[min, max]`, as AWS does.
fn truncate(number: &Number, min: i64, max: i64) -> i64 {
    if let Some(int) = number.as_i64() {
        int.clamp(min, max)
    } else if number.as_u64().is_some() {
        max
    } else {
        let float = number.as_f64().unwrap_or(0.0).floor();
        if float.is_nan() {
            0
        } else if float >= max as f64 {
            max
        } else if float <= min as f64 {
            min
        } else {
            float as i64
        }
    }
}

/// Pass 1: type checks and normalisation. `Ok(None)` for `null`.
fn normalize(
    model: &ServiceModel,
    shape: &Shape,
    value: Value,
) -> Result<Option<Value>, KinesisError> {
    if value.is_null() {
        return Ok(None);
    }
    let normalized = match &shape.kind {
        ShapeKind::Structure { members, .. } => match value {
            Value::Object(mut map) => {
                let mut out = Map::new();
                for member in members {
                    if let Some(item) = map.remove(&member.name) {
                        let member_shape = lookup(model, &member.shape)?;
                        if let Some(item) = normalize(model, member_shape, item)? {
                            out.insert(member.name.clone(), item);
                        }
                    }
                }
                Value::Object(out)
            }
            Value::Array(_) => return Err(serialization(START_OF_LIST)),
            _ => return Err(serialization("Expected null")),
        },
        ShapeKind::List { member } => match value {
            Value::Array(items) => {
                let member_shape = lookup(model, member)?;
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    out.push(normalize(model, member_shape, item)?.unwrap_or(Value::Null));
                }
                Value::Array(out)
            }
            Value::Object(_) => return Err(serialization(START_OF_STRUCTURE)),
            _ => return Err(serialization("Expected list or null")),
        },
        ShapeKind::Map {
            value: value_shape, ..
        } => match value {
            Value::Object(map) => {
                let value_shape = lookup(model, value_shape)?;
                let mut out = Map::new();
                for (key, item) in map {
                    let item = normalize(model, value_shape, item)?.unwrap_or(Value::Null);
                    out.insert(key, item);
                }
                Value::Object(out)
            }
            Value::Array(_) => return Err(serialization(START_OF_LIST)),
            _ => return Err(serialization("Expected map or null")),
        },
        ShapeKind::String { .. } => match value {
            Value::String(_) => value,
            other => return Err(type_mismatch(&other, "an String")),
        },
        ShapeKind::Integer => match value {
            Value::Number(number) => {
                Value::from(truncate(&number, i32::MIN.into(), i32::MAX.into()))
            }
            other => return Err(type_mismatch(&other, "an Integer")),
        },
        ShapeKind::Long => match value {
            Value::Number(number) => Value::from(truncate(&number, i64::MIN, i64::MAX)),
            other => return Err(type_mismatch(&other, "an Long")),
        },
        ShapeKind::Boolean => match value {
            Value::Bool(_) => value,
            // AWS's JSON layer reads these spellings as booleans (kinesalite's notes).
            Value::String(text) => match text.to_ascii_lowercase().as_str() {
                "true" | "yes" | "1" => Value::Bool(true),
                "false" | "no" | "0" => Value::Bool(false),
                _ => {
                    return Err(serialization(format!(
                        "'{}' can not be converted to an Boolean",
                        text.to_uppercase()
                    )))
                }
            },
            other => return Err(type_mismatch(&other, "an Boolean")),
        },
        ShapeKind::Blob => match value {
            Value::String(text) => {
                check_base64(&text).map_err(serialization)?;
                Value::String(text)
            }
            other => return Err(type_mismatch(&other, "a Blob")),
        },
        ShapeKind::Timestamp => match value {
            Value::Number(_) => value,
            other => return Err(type_mismatch(&other, "milliseconds since epoch")),
        },
        ShapeKind::Other => value,
    };
    Ok(Some(normalized))
}

/// `StreamName` → `streamName`, `StreamARN` → `streamARN`.
fn lower_first(name: &str) -> String {
    let mut chars = name.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

fn join_path(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        lower_first(name)
    } else {
        format!("{prefix}.{}", lower_first(name))
    }
}

/// Java's `String.length()`: UTF-16 code units.
pub(crate) fn java_length(text: &str) -> i64 {
    text.encode_utf16().count() as i64
}

/// Pass 2: constraint checks, collecting violations.
struct Checker<'m> {
    model: &'m ServiceModel,
    violations: Vec<String>,
}

impl Checker<'_> {
    fn full(&self) -> bool {
        self.violations.len() >= MAX_REPORTED_VIOLATIONS
    }

    fn push(&mut self, value: Option<&str>, path: &str, constraint: &str) {
        if !self.full() {
            self.violations.push(violation(value, path, constraint));
        }
    }

    fn structure(
        &mut self,
        shape: &Shape,
        map: &Map<String, Value>,
        prefix: &str,
    ) -> Result<(), KinesisError> {
        let ShapeKind::Structure { members, required } = &shape.kind else {
            return Ok(());
        };
        for member in members {
            if self.full() {
                break;
            }
            let path = join_path(prefix, &member.name);
            match map.get(&member.name) {
                None | Some(Value::Null) => {
                    if required.iter().any(|name| name == &member.name) {
                        self.push(None, &path, NOT_NULL);
                    }
                }
                Some(value) => {
                    let member_shape = lookup(self.model, &member.shape)?;
                    self.value(member_shape, value, &path)?;
                }
            }
        }
        Ok(())
    }

    fn value(&mut self, shape: &Shape, value: &Value, path: &str) -> Result<(), KinesisError> {
        if value.is_null() {
            self.push(None, path, NOT_NULL);
            return Ok(());
        }
        match &shape.kind {
            ShapeKind::Structure { .. } => {
                if let Value::Object(map) = value {
                    self.structure(shape, map, path)?;
                }
            }
            ShapeKind::List { member } => {
                let Value::Array(items) = value else {
                    return Ok(());
                };
                let length = items.len() as i64;
                self.length(shape, value, length, path, |name| {
                    !UNCHECKED_LIST_MAX.contains(&name)
                })?;
                let member_shape = lookup(self.model, member)?;
                if is_aggregate(member_shape) {
                    for (index, item) in items.iter().enumerate() {
                        if self.full() {
                            break;
                        }
                        self.value(member_shape, item, &format!("{path}.{}.member", index + 1))?;
                    }
                } else {
                    for (index, item) in items.iter().enumerate() {
                        if item.is_null() {
                            self.push(None, &format!("{path}.{}.member", index + 1), NOT_NULL);
                        }
                    }
                    if items.iter().any(|item| {
                        !item.is_null() && !scalar_failures(member_shape, item).is_empty()
                    }) {
                        let shown = self.display(shape, value)?;
                        let constraint = format!(
                            "Member must satisfy constraint: [{}]",
                            scalar_constraints(member_shape).join(", ")
                        );
                        self.push(Some(&shown), path, &constraint);
                    }
                }
            }
            ShapeKind::Map {
                key,
                value: value_shape,
            } => {
                let Value::Object(map) = value else {
                    return Ok(());
                };
                self.length(shape, value, map.len() as i64, path, |_| true)?;
                let key_shape = lookup(self.model, key)?;
                let value_shape = lookup(self.model, value_shape)?;
                if map
                    .keys()
                    .any(|k| !scalar_failures(key_shape, &Value::String(k.clone())).is_empty())
                {
                    let shown = self.display(shape, value)?;
                    let constraint = format!(
                        "Map keys must satisfy constraint: [{}]",
                        scalar_constraints(key_shape).join(", ")
                    );
                    self.push(Some(&shown), path, &constraint);
                }
                if is_aggregate(value_shape) {
                    for (k, item) in map {
                        if self.full() {
                            break;
                        }
                        self.value(value_shape, item, &format!("{path}.{k}.member"))?;
                    }
                } else {
                    for (k, item) in map {
                        if item.is_null() {
                            self.push(None, &format!("{path}.{k}.member"), NOT_NULL);
                        }
                    }
                    if map.values().any(|item| {
                        !item.is_null() && !scalar_failures(value_shape, item).is_empty()
                    }) {
                        let shown = self.display(shape, value)?;
                        let constraint = format!(
                            "Map value must satisfy constraint: [{}]",
                            scalar_constraints(value_shape).join(", ")
                        );
                        self.push(Some(&shown), path, &constraint);
                    }
                }
            }
            _ => {
                let failures = scalar_failures(shape, value);
                if !failures.is_empty() {
                    let shown = self.display(shape, value)?;
                    for failure in failures {
                        self.push(Some(&shown), path, &failure);
                    }
                }
            }
        }
        Ok(())
    }

    /// Length checks of a list or map (`check_max` filters by shape name).
    fn length(
        &mut self,
        shape: &Shape,
        value: &Value,
        length: i64,
        path: &str,
        check_max: impl Fn(&str) -> bool,
    ) -> Result<(), KinesisError> {
        if let Some(min) = shape.min {
            if length < min {
                let shown = self.display(shape, value)?;
                let constraint = format!("Member must have length greater than or equal to {min}");
                self.push(Some(&shown), path, &constraint);
            }
        }
        if let Some(max) = shape.max {
            if length > max && check_max(&shape.name) {
                let shown = self.display(shape, value)?;
                let constraint = format!("Member must have length less than or equal to {max}");
                self.push(Some(&shown), path, &constraint);
            }
        }
        Ok(())
    }

    /// How AWS (Java) prints a value in a violation.
    fn display(&self, shape: &Shape, value: &Value) -> Result<String, KinesisError> {
        Ok(match (&shape.kind, value) {
            (_, Value::Null) => "null".to_string(),
            (_, Value::String(text)) => text.clone(),
            (_, Value::Number(number)) => number.to_string(),
            (_, Value::Bool(flag)) => flag.to_string(),
            (ShapeKind::List { member }, Value::Array(items)) => {
                let member_shape = lookup(self.model, member)?;
                let mut parts = Vec::with_capacity(items.len());
                for item in items {
                    parts.push(self.display(member_shape, item)?);
                }
                format!("[{}]", parts.join(", "))
            }
            (
                ShapeKind::Map {
                    value: value_shape, ..
                },
                Value::Object(map),
            ) => {
                let value_shape = lookup(self.model, value_shape)?;
                let mut parts = Vec::with_capacity(map.len());
                for (key, item) in map {
                    parts.push(format!("{key}={}", self.display(value_shape, item)?));
                }
                format!("{{{}}}", parts.join(", "))
            }
            (_, other) => format!(
                "com.amazonaws.kinesis.v20131202.{}@{:08x}",
                shape.name,
                fnv1a(other.to_string().as_bytes())
            ),
        })
    }
}

fn is_aggregate(shape: &Shape) -> bool {
    matches!(
        shape.kind,
        ShapeKind::Structure { .. } | ShapeKind::List { .. } | ShapeKind::Map { .. }
    )
}

/// The constraints a scalar value violates, in AWS's order.
fn scalar_failures(shape: &Shape, value: &Value) -> Vec<String> {
    let mut failures = Vec::new();
    match (&shape.kind, value) {
        (
            ShapeKind::String {
                pattern,
                enum_values,
            },
            Value::String(text),
        ) => {
            if let Some(values) = enum_values {
                if !values.iter().any(|allowed| allowed == text) {
                    failures.push(enum_constraint(values));
                }
            }
            if let Some(pattern) = pattern {
                if !pattern.matches(text) {
                    failures.push(format!(
                        "Member must satisfy regular expression pattern: {}",
                        pattern.echo
                    ));
                }
            }
            let length = java_length(text);
            if let Some(min) = shape.min {
                if length < min {
                    failures.push(format!(
                        "Member must have length greater than or equal to {min}"
                    ));
                }
            }
            if let Some(max) = shape.max {
                if length > max {
                    failures.push(format!(
                        "Member must have length less than or equal to {max}"
                    ));
                }
            }
        }
        (ShapeKind::Integer | ShapeKind::Long, Value::Number(number)) => {
            let int = truncate(number, i64::MIN, i64::MAX);
            if let Some(min) = shape.min {
                if int < min {
                    failures.push(format!(
                        "Member must have value greater than or equal to {min}"
                    ));
                }
            }
            if let Some(max) = shape.max {
                if int > max {
                    failures.push(format!(
                        "Member must have value less than or equal to {max}"
                    ));
                }
            }
        }
        // Blob sizes are the gateway's (see the module documentation); booleans and
        // timestamps carry no constraints.
        _ => {}
    }
    failures
}

/// Every constraint of a scalar shape, as listed in AWS's rolled-up messages.
fn scalar_constraints(shape: &Shape) -> Vec<String> {
    let mut constraints = Vec::new();
    match &shape.kind {
        ShapeKind::String {
            pattern,
            enum_values,
        } => {
            if let Some(max) = shape.max {
                constraints.push(format!(
                    "Member must have length less than or equal to {max}"
                ));
            }
            if let Some(min) = shape.min {
                constraints.push(format!(
                    "Member must have length greater than or equal to {min}"
                ));
            }
            if let Some(pattern) = pattern {
                constraints.push(format!(
                    "Member must satisfy regular expression pattern: {}",
                    pattern.echo
                ));
            }
            if let Some(values) = enum_values {
                constraints.push(enum_constraint(values));
            }
        }
        ShapeKind::Integer | ShapeKind::Long => {
            if let Some(max) = shape.max {
                constraints.push(format!(
                    "Member must have value less than or equal to {max}"
                ));
            }
            if let Some(min) = shape.min {
                constraints.push(format!(
                    "Member must have value greater than or equal to {min}"
                ));
            }
        }
        _ => {}
    }
    constraints
}

fn enum_constraint(values: &[String]) -> String {
    format!(
        "Member must satisfy enum value set: [{}]",
        values.join(", ")
    )
}

fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5_u32, |hash, byte| {
        (hash ^ u32::from(*byte)).wrapping_mul(0x0100_0193)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(op: Operation, body: Value) -> Result<Value, KinesisError> {
        check_input(op, body)
    }

    fn message(op: Operation, body: Value) -> (crate::ErrorKind, String) {
        let err = check(op, body).unwrap_err();
        (err.kind, err.message)
    }

    #[test]
    fn lower_first_keeps_acronyms() {
        assert_eq!(lower_first("StreamARN"), "streamARN");
        assert_eq!(lower_first("ShardLevelMetrics"), "shardLevelMetrics");
        assert_eq!(lower_first(""), "");
        assert_eq!(
            join_path("records.1.member", "Data"),
            "records.1.member.data"
        );
    }

    #[test]
    fn validation_error_counts_and_caps() {
        assert_eq!(
            validation_error(&["a"]).message,
            "1 validation error detected: a"
        );
        assert_eq!(
            validation_error(&["a", "b"]).message,
            "2 validation errors detected: a; b"
        );
        let many: Vec<String> = (0..12).map(|i| i.to_string()).collect();
        assert_eq!(
            validation_error(&many).message,
            "10 validation errors detected: 0; 1; 2; 3; 4; 5; 6; 7; 8; 9"
        );
    }

    #[test]
    fn gateway_helpers_use_aws_wording() {
        assert_eq!(
            data_length_violation("records.1.member.data", 1_048_577, 1_048_576),
            "Value 'java.nio.HeapByteBuffer[pos=0 lim=1048577 cap=1048577]' at \
             'records.1.member.data' failed to satisfy constraint: Member must have length \
             less than or equal to 1048576"
        );
        let records = records_length_violation(2, 1);
        assert!(records.starts_with(
            "Value '[com.amazonaws.kinesis.v20131202.PutRecordsRequestEntry@c965e310, com.amazonaws"
        ));
        assert!(records.ends_with(
            "at 'records' failed to satisfy constraint: Member must have length less than or equal to 1"
        ));
    }

    #[test]
    fn normalisation_drops_unknown_and_null_members_and_truncates() {
        let out = check(
            Operation::CreateStream,
            json!({"StreamName": "s", "ShardCount": 2.9, "Bogus": [1], "Tags": null,
                   "StreamId": "abcdefghij0123456789-abc"}),
        )
        .unwrap();
        // CreateStream has no StreamId member: it is dropped like any unknown member.
        assert_eq!(out, json!({"StreamName": "s", "ShardCount": 2}));
        let out = check(
            Operation::DeleteStream,
            json!({"StreamName": "s", "StreamId": "abcdefghij0123456789-abc"}),
        )
        .unwrap();
        assert_eq!(
            out,
            json!({"StreamName": "s", "StreamId": "abcdefghij0123456789-abc"})
        );
        let out = check(
            Operation::CreateStream,
            json!({"StreamName": "s", "ShardCount": 1e30}),
        )
        .unwrap();
        assert_eq!(out["ShardCount"], 2_147_483_647);
        let out = check(
            Operation::CreateStream,
            json!({"StreamName": "s", "ShardCount": 18446744073709551615u64}),
        )
        .unwrap();
        assert_eq!(out["ShardCount"], 2_147_483_647);
    }

    #[test]
    fn boolean_spellings() {
        for (text, expected) in [("true", true), ("No", false), ("1", true), ("FALSE", false)] {
            let out = check(
                Operation::DeleteStream,
                json!({"StreamName": "s", "EnforceConsumerDeletion": text}),
            )
            .unwrap();
            assert_eq!(out["EnforceConsumerDeletion"], expected, "{text}");
        }
    }

    #[test]
    fn integer_saturation_shows_in_messages() {
        assert_eq!(
            message(
                Operation::ListShards,
                json!({"StreamName": "s", "MaxResults": 100000000000u64})
            )
            .1,
            "1 validation error detected: Value '2147483647' at 'maxResults' failed to satisfy \
             constraint: Member must have value less than or equal to 10000"
        );
        assert_eq!(
            message(
                Operation::ListShards,
                json!({"StreamName": "s", "MaxResults": -1e30})
            )
            .1,
            "1 validation error detected: Value '-2147483648' at 'maxResults' failed to satisfy \
             constraint: Member must have value greater than or equal to 1"
        );
    }

    #[test]
    fn type_errors_use_coral_messages() {
        use crate::ErrorKind::Serialization;
        let cases = [
            (json!({"StreamName": true}), "class java.lang.Boolean can not be converted to an String"),
            (json!({"StreamName": 23}), "class com.amazon.coral.value.json.numbers.TruncatingBigNumber can not be converted to an String"),
            (json!({"StreamName": 34.56}), "class com.amazon.coral.value.json.numbers.TruncatingBigNumber can not be converted to an String"),
            (json!({"StreamName": []}), "Start of list found where not expected"),
            (json!({"StreamName": {}}), "Start of structure or map found where not expected."),
            (json!({"StreamName": "s", "ShardCount": "23"}), "class java.lang.String can not be converted to an Integer"),
            (json!({"StreamName": "s", "ShardCount": false}), "class java.lang.Boolean can not be converted to an Integer"),
            (json!({"StreamName": "s", "Tags": "x"}), "Expected map or null"),
            (json!({"StreamName": "s", "Tags": []}), "Start of list found where not expected"),
            (json!({"StreamName": "s", "Tags": {"a": 1}}), "class com.amazon.coral.value.json.numbers.TruncatingBigNumber can not be converted to an String"),
            (json!({"StreamName": "s", "StreamModeDetails": 5}), "Expected null"),
            (json!({"StreamName": "s", "StreamModeDetails": []}), "Start of list found where not expected"),
        ];
        for (body, expected) in cases {
            assert_eq!(
                message(Operation::CreateStream, body.clone()),
                (Serialization, expected.to_string()),
                "{body}"
            );
        }
        let cases = [
            (json!({"Records": "x"}), "Expected list or null"),
            (json!({"Records": {}}), "Start of structure or map found where not expected."),
            (json!({"Records": [{"Data": 1}]}), "class com.amazon.coral.value.json.numbers.TruncatingBigNumber can not be converted to a Blob"),
            (json!({"Records": [{"Data": true}]}), "class java.lang.Boolean can not be converted to a Blob"),
            (json!({"Records": [{"Data": "23456"}]}), "'23456' can not be converted to a Blob: Base64 encoded length is expected a multiple of 4 bytes but found: 5"),
            (json!({"Records": [], "DryRun": "maybe"}), "'MAYBE' can not be converted to an Boolean"),
            (json!({"Records": [], "DryRun": 1}), "class com.amazon.coral.value.json.numbers.TruncatingBigNumber can not be converted to an Boolean"),
        ];
        for (body, expected) in cases {
            assert_eq!(
                message(Operation::PutRecords, body.clone()),
                (Serialization, expected.to_string()),
                "{body}"
            );
        }
        assert_eq!(
            message(
                Operation::ListShards,
                json!({"StreamCreationTimestamp": "2024-01-01"})
            ),
            (
                Serialization,
                "class java.lang.String can not be converted to milliseconds since epoch".into()
            )
        );
        assert_eq!(
            message(
                Operation::ListShards,
                json!({"StreamCreationTimestamp": true})
            ),
            (
                Serialization,
                "class java.lang.Boolean can not be converted to milliseconds since epoch".into()
            )
        );
    }

    #[test]
    fn list_and_map_element_constraints_roll_up() {
        let long = "a".repeat(129);
        assert_eq!(
            message(
                Operation::RemoveTagsFromStream,
                json!({"StreamName": "s", "TagKeys": ["a", long, "b"]})
            )
            .1,
            format!(
                "1 validation error detected: Value '[a, {long}, b]' at 'tagKeys' failed to \
                 satisfy constraint: Member must satisfy constraint: [Member must have length \
                 less than or equal to 128, Member must have length greater than or equal to 1]"
            )
        );
        assert_eq!(
            message(
                Operation::AddTagsToStream,
                json!({"StreamName": "s", "Tags": {long.clone(): "3"}})
            )
            .1,
            format!(
                "1 validation error detected: Value '{{{long}=3}}' at 'tags' failed to satisfy \
                 constraint: Map keys must satisfy constraint: [Member must have length less \
                 than or equal to 128, Member must have length greater than or equal to 1]"
            )
        );
        let long_value = "v".repeat(257);
        assert_eq!(
            message(
                Operation::AddTagsToStream,
                json!({"StreamName": "s", "Tags": {"c": long_value}})
            )
            .1,
            format!(
                "1 validation error detected: Value '{{c={long_value}}}' at 'tags' failed to \
                 satisfy constraint: Map value must satisfy constraint: [Member must have length \
                 less than or equal to 256, Member must have length greater than or equal to 0]"
            )
        );
        assert_eq!(
            message(
                Operation::EnableEnhancedMonitoring,
                json!({"StreamName": "s", "ShardLevelMetrics": ["IncomingBytes", "Nope"]})
            )
            .1,
            "1 validation error detected: Value '[IncomingBytes, Nope]' at 'shardLevelMetrics' \
             failed to satisfy constraint: Member must satisfy constraint: [Member must satisfy \
             enum value set: [IncomingBytes, IncomingRecords, OutgoingBytes, OutgoingRecords, \
             WriteProvisionedThroughputExceeded, ReadProvisionedThroughputExceeded, \
             IteratorAgeMilliseconds, ALL]]"
        );
        assert_eq!(
            message(
                Operation::EnableEnhancedMonitoring,
                json!({"StreamName": "s", "ShardLevelMetrics": []})
            )
            .1,
            "1 validation error detected: Value '[]' at 'shardLevelMetrics' failed to satisfy \
             constraint: Member must have length greater than or equal to 1"
        );
        assert_eq!(
            message(Operation::AddTagsToStream, json!({"Tags": {}})).1,
            "1 validation error detected: Value '{}' at 'tags' failed to satisfy constraint: \
             Member must have length greater than or equal to 1"
        );
    }

    #[test]
    fn null_elements_are_reported() {
        assert_eq!(
            message(Operation::PutRecords, json!({"Records": [null]})).1,
            "1 validation error detected: Value null at 'records.1.member' failed to satisfy \
             constraint: Member must not be null"
        );
        assert_eq!(
            message(
                Operation::RemoveTagsFromStream,
                json!({"TagKeys": ["a", null]})
            )
            .1,
            "1 validation error detected: Value null at 'tagKeys.2.member' failed to satisfy \
             constraint: Member must not be null"
        );
        assert_eq!(
            message(Operation::AddTagsToStream, json!({"Tags": {"k": null}})).1,
            "1 validation error detected: Value null at 'tags.k.member' failed to satisfy \
             constraint: Member must not be null"
        );
    }

    #[test]
    fn nested_structures_use_dotted_paths() {
        assert_eq!(
            message(
                Operation::UpdateAccountSettings,
                json!({"MinimumThroughputBillingCommitment": {}})
            )
            .1,
            "1 validation error detected: Value null at \
             'minimumThroughputBillingCommitment.status' failed to satisfy constraint: Member \
             must not be null"
        );
        assert_eq!(
            message(
                Operation::ListShards,
                json!({"ShardFilter": {"Type": "AFTER_SHARD_ID", "ShardId": "a b"}})
            )
            .1,
            "1 validation error detected: Value 'a b' at 'shardFilter.shardId' failed to \
             satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+"
        );
    }

    #[test]
    fn at_most_ten_violations() {
        let records: Vec<Value> = (0..20)
            .map(|_| json!({"Data": "", "PartitionKey": ""}))
            .collect();
        let (_, msg) = message(Operation::PutRecords, json!({"Records": records}));
        assert!(msg.starts_with("10 validation errors detected: "), "{msg}");
        assert!(msg.contains("'records.10.member.partitionKey'"));
        assert!(!msg.contains("'records.11.member.partitionKey'"));
    }

    #[test]
    fn records_max_and_data_size_are_left_to_the_gateway() {
        let records: Vec<Value> = (0..501)
            .map(|_| json!({"Data": "", "PartitionKey": "k"}))
            .collect();
        assert!(check(Operation::PutRecords, json!({"Records": records})).is_ok());
        let big = "A".repeat(12 * 1024 * 1024);
        assert!(check(
            Operation::PutRecord,
            json!({"StreamName": "s", "Data": big, "PartitionKey": "k"})
        )
        .is_ok());
    }
}
