//! botocore's model of the Kinesis service, trimmed to the 39 stream operations
//! (`model/trim.py`), embedded in the crate and parsed once on first use.

use std::collections::HashMap;
use std::fmt;
use std::sync::LazyLock;

use regex::Regex;
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use crate::KinesisError;

/// The trimmed model, as committed in `model/kinesis-2013-12-02.json`.
pub(crate) const MODEL_JSON: &str = include_str!("../model/kinesis-2013-12-02.json");

static MODEL: LazyLock<Result<ServiceModel, String>> =
    LazyLock::new(|| ServiceModel::parse(MODEL_JSON));

/// The embedded model; an error (InternalFailure) only if the embedded file is broken,
/// which the crate's tests rule out.
pub(crate) fn model() -> Result<&'static ServiceModel, KinesisError> {
    MODEL.as_ref().map_err(|e| {
        KinesisError::internal(format!(
            "the embedded Kinesis service model is invalid: {e}"
        ))
    })
}

/// The parts of the service model the validator needs.
#[derive(Debug)]
pub(crate) struct ServiceModel {
    pub shapes: HashMap<String, Shape>,
    pub operations: HashMap<String, OperationDef>,
}

#[derive(Debug)]
pub(crate) struct OperationDef {
    pub input: Option<String>,
    pub output: Option<String>,
    #[cfg_attr(not(test), allow(dead_code))]
    pub data_plane: bool,
}

#[derive(Debug)]
pub(crate) struct Shape {
    pub name: String,
    pub kind: ShapeKind,
    pub min: Option<i64>,
    pub max: Option<i64>,
}

#[derive(Debug)]
pub(crate) enum ShapeKind {
    Structure {
        /// Members in model order.
        members: Vec<Member>,
        required: Vec<String>,
    },
    List {
        member: String,
    },
    Map {
        key: String,
        value: String,
    },
    String {
        pattern: Option<Pattern>,
        enum_values: Option<Vec<String>>,
    },
    Integer,
    Long,
    Boolean,
    Blob,
    Timestamp,
    /// A type this crate does not validate (none occur in the stream operations).
    Other,
}

#[derive(Debug)]
pub(crate) struct Member {
    pub name: String,
    pub shape: String,
}

/// A model regex: `echo`, the pattern as AWS quotes it in its messages, and `regex`, the
/// model's pattern anchored for a full match with Java's ASCII `\d` and `\S`.
#[derive(Debug)]
pub(crate) struct Pattern {
    /// The pattern as AWS's ValidationException quotes it. botocore's model wraps some
    /// patterns in anchors AWS's own model does not have (`^(0|([1-9]\d{0,38}))$` for
    /// `HashKey`); AWS answers `... regular expression pattern: 0|([1-9]\d{0,38})`
    /// (kinesalite's `test/putRecord.js`, recorded against AWS).
    pub echo: String,
    pub regex: Regex,
}

impl Pattern {
    fn compile(source: &str) -> Result<Pattern, String> {
        let translated = translate_java_regex(source);
        let regex = Regex::new(&format!("^(?:{translated})$"))
            .map_err(|e| format!("pattern {source:?}: {e}"))?;
        Ok(Pattern {
            echo: unanchored(source).to_string(),
            regex,
        })
    }

    /// Whether `text` matches the whole pattern (Java `String.matches`).
    pub fn matches(&self, text: &str) -> bool {
        self.regex.is_match(text)
    }
}

/// Java's `\d` and `\S` are ASCII classes; Rust's are Unicode-aware.
/// `inner` for a pattern `^(inner)$` whose group spans the whole pattern; any other pattern
/// as it is (`^(arn):aws...` keeps its `^`: AWS's wording for it is not known).
fn unanchored(source: &str) -> &str {
    let Some(inner) = source
        .strip_prefix("^(")
        .and_then(|rest| rest.strip_suffix(")$"))
    else {
        return source;
    };
    // The group opened after `^` must close only at the end: `^(a)|(b)$` is not wrapped.
    let mut depth = 0usize;
    let mut chars = inner.chars();
    let mut in_class = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                chars.next();
            }
            '[' if !in_class => in_class = true,
            ']' if in_class => in_class = false,
            '(' if !in_class => depth += 1,
            ')' if !in_class => match depth.checked_sub(1) {
                Some(d) => depth = d,
                None => return source,
            },
            _ => {}
        }
    }
    if depth == 0 {
        inner
    } else {
        source
    }
}

fn translate_java_regex(source: &str) -> String {
    let mut out = String::with_capacity(source.len() + 16);
    let mut chars = source.chars();
    while let Some(ch) = chars.next() {
        if ch != '\\' {
            out.push(ch);
            continue;
        }
        match chars.next() {
            Some('d') => out.push_str("[0-9]"),
            Some('D') => out.push_str("[^0-9]"),
            Some('S') => out.push_str(r"[^ \t\n\x0B\x0C\r]"),
            Some('s') => out.push_str(r"[ \t\n\x0B\x0C\r]"),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

impl ServiceModel {
    pub(crate) fn parse(json: &str) -> Result<ServiceModel, String> {
        let raw: RawModel = serde_json::from_str(json).map_err(|e| e.to_string())?;
        let mut shapes = HashMap::with_capacity(raw.shapes.len());
        for (name, shape) in raw.shapes {
            let kind = match shape.kind.as_str() {
                "structure" => ShapeKind::Structure {
                    members: shape
                        .members
                        .0
                        .into_iter()
                        .map(|(name, member)| Member {
                            name,
                            shape: member.shape,
                        })
                        .collect(),
                    required: shape.required,
                },
                "list" => ShapeKind::List {
                    member: shape
                        .member
                        .ok_or_else(|| format!("list {name} has no member"))?
                        .shape,
                },
                "map" => ShapeKind::Map {
                    key: shape
                        .key
                        .ok_or_else(|| format!("map {name} has no key"))?
                        .shape,
                    value: shape
                        .value
                        .ok_or_else(|| format!("map {name} has no value"))?
                        .shape,
                },
                "string" => ShapeKind::String {
                    pattern: shape.pattern.as_deref().map(Pattern::compile).transpose()?,
                    enum_values: shape.enum_values,
                },
                "integer" => ShapeKind::Integer,
                "long" => ShapeKind::Long,
                "boolean" => ShapeKind::Boolean,
                "blob" => ShapeKind::Blob,
                "timestamp" => ShapeKind::Timestamp,
                _ => ShapeKind::Other,
            };
            shapes.insert(
                name.clone(),
                Shape {
                    name,
                    kind,
                    min: shape.min,
                    max: shape.max,
                },
            );
        }
        let mut operations = HashMap::with_capacity(raw.operations.len());
        for (name, op) in raw.operations {
            let data_plane = op
                .static_context_params
                .and_then(|params| params.operation_type)
                .is_some_and(|t| t.value == "data");
            operations.insert(
                name,
                OperationDef {
                    input: op.input.map(|r| r.shape),
                    output: op.output.map(|r| r.shape),
                    data_plane,
                },
            );
        }
        let model = ServiceModel { shapes, operations };
        model.check_references()?;
        Ok(model)
    }

    /// Every shape reference resolves, so lookups during validation cannot miss.
    fn check_references(&self) -> Result<(), String> {
        let known = |name: &str| {
            if self.shapes.contains_key(name) {
                Ok(())
            } else {
                Err(format!("unknown shape {name}"))
            }
        };
        for shape in self.shapes.values() {
            match &shape.kind {
                ShapeKind::Structure { members, .. } => {
                    for member in members {
                        known(&member.shape)?;
                    }
                }
                ShapeKind::List { member } => known(member)?,
                ShapeKind::Map { key, value } => {
                    known(key)?;
                    known(value)?;
                }
                _ => {}
            }
        }
        for op in self.operations.values() {
            for shape in op.input.iter().chain(op.output.iter()) {
                known(shape)?;
            }
        }
        Ok(())
    }

    pub(crate) fn shape(&self, name: &str) -> Option<&Shape> {
        self.shapes.get(name)
    }

    /// The name of `operation`'s output shape, if it has one.
    pub(crate) fn output_shape(&self, operation: &str) -> Option<&str> {
        self.operations
            .get(operation)
            .and_then(|op| op.output.as_deref())
    }

    /// The input shape of `operation`.
    pub(crate) fn input_shape(&self, operation: &str) -> Option<&Shape> {
        self.operations
            .get(operation)
            .and_then(|op| op.input.as_deref())
            .and_then(|name| self.shape(name))
    }
}

#[derive(Deserialize)]
struct RawModel {
    operations: HashMap<String, RawOperation>,
    shapes: HashMap<String, RawShape>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawOperation {
    input: Option<RawRef>,
    output: Option<RawRef>,
    static_context_params: Option<RawContextParams>,
}

#[derive(Deserialize)]
struct RawContextParams {
    #[serde(rename = "OperationType")]
    operation_type: Option<RawValue>,
}

#[derive(Deserialize)]
struct RawValue {
    value: String,
}

#[derive(Deserialize)]
struct RawRef {
    shape: String,
}

#[derive(Deserialize)]
struct RawShape {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    members: OrderedMembers,
    #[serde(default)]
    required: Vec<String>,
    member: Option<RawRef>,
    key: Option<RawRef>,
    value: Option<RawRef>,
    min: Option<i64>,
    max: Option<i64>,
    pattern: Option<String>,
    #[serde(rename = "enum")]
    enum_values: Option<Vec<String>>,
}

/// A JSON object read into a list, keeping the document's order.
#[derive(Default)]
struct OrderedMembers(Vec<(String, RawRef)>);

impl<'de> Deserialize<'de> for OrderedMembers {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct OrderedVisitor;
        impl<'de> Visitor<'de> for OrderedVisitor {
            type Value = OrderedMembers;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of members")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<OrderedMembers, A::Error> {
                let mut members = Vec::new();
                while let Some((name, member)) = map.next_entry::<String, RawRef>()? {
                    members.push((name, member));
                }
                Ok(OrderedMembers(members))
            }
        }
        deserializer.deserialize_map(OrderedVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Operation;

    #[test]
    fn embedded_model_loads() {
        let model = model().unwrap();
        assert_eq!(model.operations.len(), 39);
        assert!(model.shapes.len() > 100);
    }

    #[test]
    fn operations_match_the_model() {
        let model = model().unwrap();
        let mut names: Vec<_> = model.operations.keys().cloned().collect();
        names.sort();
        let ours: Vec<_> = Operation::ALL
            .iter()
            .map(|op| op.name().to_string())
            .collect();
        assert_eq!(names, ours);
        for op in Operation::ALL {
            let def = &model.operations[op.name()];
            assert_eq!(def.output.is_some(), op.has_output(), "{op}");
            assert_eq!(def.data_plane, op.is_data_plane(), "{op}");
            assert_eq!(
                def.input.as_deref(),
                Some(op.input_shape().as_str()),
                "{op}"
            );
        }
    }

    #[test]
    fn member_order_is_kept() {
        let model = model().unwrap();
        let ShapeKind::Structure { members, required } =
            &model.shape("CreateStreamInput").unwrap().kind
        else {
            panic!("not a structure")
        };
        let names: Vec<_> = members.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(
            &names[..3],
            ["StreamName", "ShardCount", "StreamModeDetails"]
        );
        assert_eq!(required, &["StreamName"]);
    }

    #[test]
    fn patterns_match_whole_values_like_java() {
        let stream_name = Pattern::compile("[a-zA-Z0-9_.-]+").unwrap();
        assert!(stream_name.matches("my-stream_1.x"));
        assert!(!stream_name.matches("a b"));
        assert!(!stream_name.matches(""));
        assert!(!stream_name.matches("ok\n"));
        let hash_key = Pattern::compile(r"^(0|([1-9]\d{0,38}))$").unwrap();
        assert!(hash_key.matches("0"));
        assert!(hash_key.matches("340282366920938463463374607431768211455"));
        assert!(!hash_key.matches("01"));
        assert!(!hash_key.matches("1\u{0661}"));
        let arn = Pattern::compile(r"arn:aws.*:kinesis:.*:\d{12}:stream/\S+").unwrap();
        assert!(arn.matches("arn:aws:kinesis:us-east-1:123456789012:stream/s"));
        assert!(!arn.matches("arn:aws:kinesis:us-east-1:123456789012:stream/s t"));
        assert!(!arn.matches("xarn:aws:kinesis:us-east-1:123456789012:stream/s"));
        let consumer = Pattern::compile(
            r"^(arn):aws.*:kinesis:.*:\d{12}:.*stream\/[a-zA-Z0-9_.-]+\/consumer\/[a-zA-Z0-9_.-]+:[0-9]+",
        )
        .unwrap();
        assert!(consumer.matches("arn:aws:kinesis:us-east-1:123456789012:stream/s/consumer/c:1"));
        assert!(!consumer.matches("arn:aws:kinesis:us-east-1:123456789012:stream/s/consumer/c:1x"));
    }

    #[test]
    fn messages_quote_patterns_without_botocores_anchors() {
        let echo = |source: &str| Pattern::compile(source).unwrap().echo;
        assert_eq!(echo(r"^(0|([1-9]\d{0,38}))$"), r"0|([1-9]\d{0,38})");
        assert_eq!(echo(r"^(0|([1-9]\d{0,128}))$"), r"0|([1-9]\d{0,128})");
        assert_eq!(echo("[a-zA-Z0-9_.-]+"), "[a-zA-Z0-9_.-]+");
        assert_eq!(echo("^(a)|(b)$"), "^(a)|(b)$");
        assert_eq!(echo(r"^([(])$"), r"[(]");
        let consumer = r"^(arn):aws.*:kinesis:.*:\d{12}:.*stream\/[a-zA-Z0-9_.-]+\/consumer\/[a-zA-Z0-9_.-]+:[0-9]+";
        assert_eq!(echo(consumer), consumer);
    }

    #[test]
    fn broken_models_are_errors() {
        assert!(ServiceModel::parse("{").is_err());
        assert!(
            ServiceModel::parse(r#"{"operations":{},"shapes":{"A":{"type":"list"}}}"#).is_err()
        );
        assert!(ServiceModel::parse(
            r#"{"operations":{},"shapes":{"A":{"type":"structure","members":{"B":{"shape":"C"}}}}}"#
        )
        .is_err());
        assert!(ServiceModel::parse(
            r#"{"operations":{},"shapes":{"A":{"type":"string","pattern":"("}}}"#
        )
        .is_err());
    }
}
