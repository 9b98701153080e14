//! Reading an IAM policy document (JSON) into statements, refusing what IAM refuses: unknown
//! elements, a missing Effect, Action or Resource, a Principal in an identity policy or none in a
//! resource policy, unknown condition operators.

use serde_json::{Map, Value};

use super::condition::{Condition, Operator};
use super::PolicyError;

/// Where a policy is attached: to a principal (identity-based) or to a stream or consumer
/// (resource-based, which must name its principals).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyKind {
    Identity,
    Resource,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Effect {
    Allow,
    Deny,
}

/// An element and its `Not` form (`Action`/`NotAction`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Negatable<T> {
    Is(T),
    Not(T),
}

impl<T> Negatable<T> {
    pub(crate) fn matches(&self, test: impl Fn(&T) -> bool) -> bool {
        match self {
            Negatable::Is(v) => test(v),
            Negatable::Not(v) => !test(v),
        }
    }
}

/// One statement of a policy.
#[derive(Debug, Clone)]
pub(crate) struct Statement {
    pub effect: Effect,
    pub actions: Negatable<Vec<String>>,
    pub resources: Negatable<Vec<String>>,
    /// `Principal`/`NotPrincipal`: the `AWS` principals (`*`, account ids, account root ARNs,
    /// user ARNs). Other kinds (`Service`, `Federated`) are kept out: no Kinesin principal is one.
    pub principals: Option<Negatable<Vec<String>>>,
    pub conditions: Vec<Condition>,
}

/// A parsed policy document.
#[derive(Debug, Clone)]
pub struct Policy {
    pub(crate) statements: Vec<Statement>,
}

const VERSIONS: [&str; 2] = ["2012-10-17", "2008-10-17"];
const STATEMENT_KEYS: [&str; 9] = [
    "Sid",
    "Effect",
    "Action",
    "NotAction",
    "Resource",
    "NotResource",
    "Principal",
    "NotPrincipal",
    "Condition",
];

impl Policy {
    /// Parses the JSON text of a policy attached as `kind`.
    pub fn parse(text: &str, kind: PolicyKind) -> Result<Policy, PolicyError> {
        let value: Value =
            serde_json::from_str(text).map_err(|e| PolicyError::Json(e.to_string()))?;
        let Value::Object(document) = value else {
            return Err(PolicyError::NotObject);
        };
        for key in document.keys() {
            if !["Version", "Id", "Statement"].contains(&key.as_str()) {
                return Err(invalid("policy", format!("unknown element {key:?}")));
            }
        }
        match document.get("Version") {
            None => {}
            Some(Value::String(v)) if VERSIONS.contains(&v.as_str()) => {}
            Some(other) => {
                return Err(invalid(
                    "Version",
                    format!("must be \"2012-10-17\" or \"2008-10-17\", not {other}"),
                ))
            }
        }
        let statements = match document.get("Statement") {
            None => return Err(invalid("policy", "has no Statement".into())),
            Some(Value::Array(list)) => list.iter().collect::<Vec<_>>(),
            Some(one @ Value::Object(_)) => vec![one],
            Some(_) => {
                return Err(invalid(
                    "Statement",
                    "must be an object or a list of objects".into(),
                ))
            }
        };
        let statements = statements
            .into_iter()
            .enumerate()
            .map(|(i, s)| statement(s, kind, &format!("Statement[{i}]")))
            .collect::<Result<_, _>>()?;
        Ok(Policy { statements })
    }
}

fn invalid(at: &str, message: String) -> PolicyError {
    PolicyError::Invalid {
        at: at.to_string(),
        message,
    }
}

fn statement(value: &Value, kind: PolicyKind, at: &str) -> Result<Statement, PolicyError> {
    let Value::Object(s) = value else {
        return Err(invalid(at, "must be an object".into()));
    };
    if let Some(key) = s.keys().find(|k| !STATEMENT_KEYS.contains(&k.as_str())) {
        return Err(invalid(at, format!("unknown element {key:?}")));
    }
    let effect = match s.get("Effect") {
        Some(Value::String(e)) if e == "Allow" => Effect::Allow,
        Some(Value::String(e)) if e == "Deny" => Effect::Deny,
        _ => return Err(invalid(at, "Effect must be \"Allow\" or \"Deny\"".into())),
    };
    let actions =
        pair(s, "Action", at)?.ok_or_else(|| invalid(at, "needs Action or NotAction".into()))?;
    let bad_action =
        |a: &String| a != "*" && a.split_once(':').is_none_or(|(svc, _)| svc.is_empty());
    let (Negatable::Is(list) | Negatable::Not(list)) = &actions;
    if let Some(a) = list.iter().find(|a| bad_action(a)) {
        return Err(invalid(
            at,
            format!("action {a:?} is not \"*\" or service:action"),
        ));
    }
    let resources = pair(s, "Resource", at)?
        .ok_or_else(|| invalid(at, "needs Resource or NotResource".into()))?;
    let principals = principals(s, at)?;
    match (kind, &principals) {
        (PolicyKind::Identity, Some(_)) => {
            return Err(invalid(
                at,
                "an identity-based policy must not have Principal or NotPrincipal".into(),
            ))
        }
        (PolicyKind::Resource, None) => {
            return Err(invalid(
                at,
                "a resource-based policy needs Principal or NotPrincipal".into(),
            ))
        }
        _ => {}
    }
    let conditions = match s.get("Condition") {
        None => Vec::new(),
        Some(c) => conditions(c, &format!("{at}.Condition"))?,
    };
    Ok(Statement {
        effect,
        actions,
        resources,
        principals,
        conditions,
    })
}

/// `NAME` or `NotNAME` (one of them at most), each a string or a list of strings.
fn pair(
    s: &Map<String, Value>,
    name: &str,
    at: &str,
) -> Result<Option<Negatable<Vec<String>>>, PolicyError> {
    let not = format!("Not{name}");
    match (s.get(name), s.get(&not)) {
        (Some(_), Some(_)) => Err(invalid(at, format!("has both {name} and {not}"))),
        (Some(v), None) => Ok(Some(Negatable::Is(strings(v, &format!("{at}.{name}"))?))),
        (None, Some(v)) => Ok(Some(Negatable::Not(strings(v, &format!("{at}.{not}"))?))),
        (None, None) => Ok(None),
    }
}

fn strings(value: &Value, at: &str) -> Result<Vec<String>, PolicyError> {
    let list = match value {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| invalid(at, "must be a string or a list of strings".into()))?,
        _ => return Err(invalid(at, "must be a string or a list of strings".into())),
    };
    if list.is_empty() {
        return Err(invalid(at, "must not be empty".into()));
    }
    no_variables(&list, at)?;
    Ok(list)
}

/// Policy variables (`${aws:username}`) are not supported: refused rather than matched as text.
fn no_variables(values: &[String], at: &str) -> Result<(), PolicyError> {
    match values.iter().find(|v| v.contains("${")) {
        Some(v) => Err(invalid(
            at,
            format!("{v:?}: policy variables are not supported"),
        )),
        None => Ok(()),
    }
}

/// `"Principal": "*"` or `{"AWS": ..., "Service": ...}`.
fn principals(
    s: &Map<String, Value>,
    at: &str,
) -> Result<Option<Negatable<Vec<String>>>, PolicyError> {
    let read = |value: &Value, at: String| -> Result<Vec<String>, PolicyError> {
        match value {
            Value::String(star) if star == "*" => Ok(vec!["*".to_string()]),
            Value::Object(kinds) => {
                let mut aws = Vec::new();
                for (kind, v) in kinds {
                    let list = strings(v, &format!("{at}.{kind}"))?;
                    match kind.as_str() {
                        "AWS" => aws.extend(list),
                        "Service" | "Federated" | "CanonicalUser" => {}
                        other => {
                            return Err(invalid(&at, format!("unknown principal type {other:?}")))
                        }
                    }
                }
                Ok(aws)
            }
            _ => Err(invalid(
                &at,
                "must be \"*\" or an object like {\"AWS\": ...}".into(),
            )),
        }
    };
    match (s.get("Principal"), s.get("NotPrincipal")) {
        (Some(_), Some(_)) => Err(invalid(at, "has both Principal and NotPrincipal".into())),
        (Some(v), None) => Ok(Some(Negatable::Is(read(v, format!("{at}.Principal"))?))),
        (None, Some(v)) => Ok(Some(Negatable::Not(read(v, format!("{at}.NotPrincipal"))?))),
        (None, None) => Ok(None),
    }
}

/// `{"Operator": {"key": value or [values]}}`.
fn conditions(value: &Value, at: &str) -> Result<Vec<Condition>, PolicyError> {
    let Value::Object(operators) = value else {
        return Err(invalid(at, "must be an object".into()));
    };
    let mut out = Vec::new();
    for (name, keys) in operators {
        let (operator, if_exists) = Operator::parse(name)
            .ok_or_else(|| invalid(at, format!("unsupported condition operator {name:?}")))?;
        let Value::Object(keys) = keys else {
            return Err(invalid(
                at,
                format!("{name} must map condition keys to values"),
            ));
        };
        for (key, values) in keys {
            let values = match values {
                Value::Array(items) => items.iter().map(scalar).collect::<Option<Vec<_>>>(),
                one => scalar(one).map(|v| vec![v]),
            }
            .ok_or_else(|| {
                invalid(
                    at,
                    format!("{name}.{key}: values must be strings, numbers or booleans"),
                )
            })?;
            no_variables(&values, &format!("{at}.{name}.{key}"))?;
            let condition = Condition::new(operator, if_exists, key, values)
                .map_err(|message| invalid(at, format!("{name}.{key}: {message}")))?;
            out.push(condition);
        }
    }
    Ok(out)
}

fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}
