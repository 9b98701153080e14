//! Condition operators (`StringEquals`, `ArnLike`, `Bool`, `Numeric*`, `Null`, with `IfExists`)
//! and how they test a request's context keys, as IAM does: several values of a key are ORed; a
//! key the request does not have fails a positive operator and passes a negated one.

use std::collections::BTreeMap;

use super::glob::{arn_like, glob};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Operator {
    StringEquals,
    StringNotEquals,
    StringEqualsIgnoreCase,
    StringNotEqualsIgnoreCase,
    StringLike,
    StringNotLike,
    ArnLike,
    ArnNotLike,
    Bool,
    NumericEquals,
    NumericNotEquals,
    NumericLessThan,
    NumericLessThanEquals,
    NumericGreaterThan,
    NumericGreaterThanEquals,
    Null,
}

impl Operator {
    /// The operator a condition names, and whether it has the `IfExists` suffix.
    pub(crate) fn parse(name: &str) -> Option<(Operator, bool)> {
        let (base, if_exists) = match name.strip_suffix("IfExists") {
            Some(base) if base != "Null" => (base, true),
            _ => (name, false),
        };
        use Operator::*;
        let operator = match base {
            "StringEquals" => StringEquals,
            "StringNotEquals" => StringNotEquals,
            "StringEqualsIgnoreCase" => StringEqualsIgnoreCase,
            "StringNotEqualsIgnoreCase" => StringNotEqualsIgnoreCase,
            "StringLike" => StringLike,
            "StringNotLike" => StringNotLike,
            // IAM treats ArnEquals as ArnLike: wildcards work in both.
            "ArnLike" | "ArnEquals" => ArnLike,
            "ArnNotLike" | "ArnNotEquals" => ArnNotLike,
            "Bool" => Bool,
            "NumericEquals" => NumericEquals,
            "NumericNotEquals" => NumericNotEquals,
            "NumericLessThan" => NumericLessThan,
            "NumericLessThanEquals" => NumericLessThanEquals,
            "NumericGreaterThan" => NumericGreaterThan,
            "NumericGreaterThanEquals" => NumericGreaterThanEquals,
            "Null" => Null,
            _ => return None,
        };
        Some((operator, if_exists))
    }

    fn negated(self) -> bool {
        use Operator::*;
        matches!(
            self,
            StringNotEquals
                | StringNotEqualsIgnoreCase
                | StringNotLike
                | ArnNotLike
                | NumericNotEquals
        )
    }

    fn numeric(self) -> bool {
        use Operator::*;
        matches!(
            self,
            NumericEquals
                | NumericNotEquals
                | NumericLessThan
                | NumericLessThanEquals
                | NumericGreaterThan
                | NumericGreaterThanEquals
        )
    }

    /// Whether `actual` matches `wanted` under the positive form of the operator.
    fn test(self, wanted: &str, actual: &str) -> bool {
        use Operator::*;
        match self {
            StringEquals | StringNotEquals => wanted == actual,
            StringEqualsIgnoreCase | StringNotEqualsIgnoreCase => {
                wanted.to_lowercase() == actual.to_lowercase()
            }
            StringLike | StringNotLike => glob(wanted, actual, false),
            ArnLike | ArnNotLike => arn_like(wanted, actual),
            Bool => wanted.eq_ignore_ascii_case(actual),
            Null => false,
            _ => {
                let (Ok(w), Ok(a)) = (wanted.parse::<f64>(), actual.parse::<f64>()) else {
                    return false;
                };
                match self {
                    NumericLessThan => a < w,
                    NumericLessThanEquals => a <= w,
                    NumericGreaterThan => a > w,
                    NumericGreaterThanEquals => a >= w,
                    _ => a == w,
                }
            }
        }
    }
}

/// One operator applied to one key: `"StringEquals": {"aws:PrincipalAccount": "111122223333"}`.
#[derive(Debug, Clone)]
pub(crate) struct Condition {
    operator: Operator,
    if_exists: bool,
    /// Lower case: condition key names are case-insensitive.
    key: String,
    values: Vec<String>,
}

impl Condition {
    pub(crate) fn new(
        operator: Operator,
        if_exists: bool,
        key: &str,
        values: Vec<String>,
    ) -> Result<Condition, String> {
        if values.is_empty() {
            return Err("needs at least one value".into());
        }
        if operator.numeric() && values.iter().any(|v| v.parse::<f64>().is_err()) {
            return Err("values must be numbers".into());
        }
        let boolean =
            |v: &String| v.eq_ignore_ascii_case("true") || v.eq_ignore_ascii_case("false");
        if matches!(operator, Operator::Bool | Operator::Null) && !values.iter().all(boolean) {
            return Err("values must be true or false".into());
        }
        Ok(Condition {
            operator,
            if_exists,
            key: key.to_lowercase(),
            values,
        })
    }

    /// Whether the request, described by its context keys (lower-case names), meets it.
    pub(crate) fn holds(&self, context: &BTreeMap<String, String>) -> bool {
        let actual = context.get(&self.key);
        if self.operator == Operator::Null {
            let absent = actual.is_none();
            return self
                .values
                .iter()
                .any(|v| v.eq_ignore_ascii_case("true") == absent);
        }
        let Some(actual) = actual else {
            return self.if_exists || self.operator.negated();
        };
        let any = self.values.iter().any(|w| self.operator.test(w, actual));
        any != self.operator.negated()
    }
}
