use std::collections::BTreeMap;

use super::glob::{arn_like, glob};
use super::*;

const ALICE: &str = "arn:aws:iam::111122223333:user/alice";
const S1: &str = "arn:aws:kinesis:us-east-1:111122223333:stream/s1";
const OTHER: &str = "arn:aws:kinesis:us-east-1:444455556666:stream/s1";

fn identity(statements: &str) -> Policy {
    let text = format!(r#"{{"Version": "2012-10-17", "Statement": {statements}}}"#);
    Policy::parse(&text, PolicyKind::Identity).expect("a valid identity policy")
}

fn resource(statements: &str) -> Policy {
    let text = format!(r#"{{"Version": "2012-10-17", "Statement": {statements}}}"#);
    Policy::parse(&text, PolicyKind::Resource).expect("a valid resource policy")
}

fn context(extra: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut c = BTreeMap::from([
        (
            "aws:principalaccount".to_string(),
            "111122223333".to_string(),
        ),
        ("aws:principalarn".to_string(), ALICE.to_string()),
        ("aws:securetransport".to_string(), "false".to_string()),
    ]);
    for (k, v) in extra {
        c.insert(k.to_lowercase(), v.to_string());
    }
    c
}

fn ask(
    identity: &[Policy],
    resource: Option<&Policy>,
    action: &str,
    arn: &str,
    context: &BTreeMap<String, String>,
) -> Result<(), Denial> {
    let resource_account = arn.split(':').nth(4).unwrap_or("111122223333");
    decide(
        identity,
        resource,
        &AccessRequest {
            principal_arn: ALICE,
            principal_account: "111122223333",
            action,
            resource: arn,
            resource_account,
            context,
        },
    )
}

#[test]
fn wildcards() {
    assert!(glob("kinesis:Get*", "kinesis:GetRecords", true));
    assert!(glob("KINESIS:get*", "kinesis:GetRecords", true));
    assert!(!glob("KINESIS:get*", "kinesis:GetRecords", false));
    assert!(glob("kinesis:Put?ecord", "kinesis:PutRecord", true));
    assert!(!glob("kinesis:Put?ecord", "kinesis:PutRecords", true));
    assert!(glob("*", "", false) && glob("a*b*c", "aXbYbc", false));
    assert!(!glob("a*b*c", "aXbYb", false));
    assert!(arn_like("arn:aws:kinesis:*:111122223333:stream/s*", S1));
    assert!(arn_like("*", S1));
    assert!(!arn_like("arn:aws:kinesis:*:111122223333:stream/S*", S1));
    assert!(
        !arn_like("arn:aws:kinesis:*", S1),
        "a wildcard does not span ARN parts"
    );
    assert!(arn_like(
        "arn:aws:kinesis:us-east-1:111122223333:stream/s1/consumer/*",
        "arn:aws:kinesis:us-east-1:111122223333:stream/s1/consumer/c:1700000000"
    ));
    assert!(!arn_like("arn:aws:kinesis:*:*:stream/*", "*"));
}

#[test]
fn no_policy_denies_and_actions_match_with_wildcards() {
    let c = context(&[]);
    assert_eq!(
        ask(&[], None, "kinesis:PutRecord", S1, &c),
        Err(Denial::NoIdentityAllow)
    );
    let reader = identity(r#"{"Effect": "Allow", "Action": "kinesis:Get*", "Resource": "*"}"#);
    assert_eq!(
        ask(
            std::slice::from_ref(&reader),
            None,
            "kinesis:GetRecords",
            S1,
            &c
        ),
        Ok(())
    );
    assert_eq!(
        ask(
            std::slice::from_ref(&reader),
            None,
            "kinesis:PutRecord",
            S1,
            &c
        ),
        Err(Denial::NoIdentityAllow)
    );
    let all = identity(r#"[{"Effect": "Allow", "Action": "*", "Resource": "*"}]"#);
    assert_eq!(ask(&[all], None, "kinesis:DeleteStream", S1, &c), Ok(()));
}

#[test]
fn resources_and_not_elements() {
    let c = context(&[]);
    let p = identity(
        r#"[{"Effect": "Allow", "Action": ["kinesis:PutRecord", "kinesis:PutRecords"],
             "Resource": "arn:aws:kinesis:*:111122223333:stream/s?"}]"#,
    );
    assert_eq!(
        ask(std::slice::from_ref(&p), None, "kinesis:PutRecord", S1, &c),
        Ok(())
    );
    let s10 = "arn:aws:kinesis:us-east-1:111122223333:stream/s10";
    assert!(ask(std::slice::from_ref(&p), None, "kinesis:PutRecord", s10, &c).is_err());
    assert!(ask(&[p], None, "kinesis:ListStreams", "*", &c).is_err());
    let not = identity(
        r#"{"Effect": "Allow", "NotAction": "kinesis:Delete*",
            "NotResource": "arn:aws:kinesis:*:*:stream/secret*"}"#,
    );
    assert_eq!(
        ask(
            std::slice::from_ref(&not),
            None,
            "kinesis:PutRecord",
            S1,
            &c
        ),
        Ok(())
    );
    assert!(ask(
        std::slice::from_ref(&not),
        None,
        "kinesis:DeleteStream",
        S1,
        &c
    )
    .is_err());
    let secret = "arn:aws:kinesis:us-east-1:111122223333:stream/secret-1";
    assert!(ask(&[not], None, "kinesis:PutRecord", secret, &c).is_err());
}

#[test]
fn explicit_deny_wins() {
    let c = context(&[]);
    let allow = identity(r#"{"Effect": "Allow", "Action": "kinesis:*", "Resource": "*"}"#);
    let deny = identity(r#"{"Effect": "Deny", "Action": "kinesis:DeleteStream", "Resource": "*"}"#);
    let both = [allow.clone(), deny];
    assert_eq!(ask(&both, None, "kinesis:PutRecord", S1, &c), Ok(()));
    assert_eq!(
        ask(&both, None, "kinesis:DeleteStream", S1, &c),
        Err(Denial::ExplicitIdentityDeny)
    );
    let fence = resource(
        r#"{"Effect": "Deny", "Principal": {"AWS": "111122223333"}, "Action": "kinesis:Get*", "Resource": "*"}"#,
    );
    assert_eq!(
        ask(
            std::slice::from_ref(&allow),
            Some(&fence),
            "kinesis:GetRecords",
            S1,
            &c
        ),
        Err(Denial::ExplicitResourceDeny)
    );
    assert_eq!(
        ask(&[allow], Some(&fence), "kinesis:PutRecord", S1, &c),
        Ok(())
    );
}

#[test]
fn resource_policies_and_principals() {
    let c = context(&[]);
    let allow_all = identity(r#"{"Effect": "Allow", "Action": "kinesis:*", "Resource": "*"}"#);
    let to_user = resource(&format!(
        r#"{{"Effect": "Allow", "Principal": {{"AWS": ["{ALICE}"]}}, "Action": "kinesis:PutRecord", "Resource": "{OTHER}"}}"#
    ));
    let to_account = resource(
        r#"{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:root"}, "Action": "kinesis:PutRecord", "Resource": "*"}"#,
    );
    let to_bob = resource(
        r#"{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:user/bob"}, "Action": "*", "Resource": "*"}"#,
    );
    // Across accounts both sides must allow.
    assert_eq!(
        ask(
            std::slice::from_ref(&allow_all),
            None,
            "kinesis:PutRecord",
            OTHER,
            &c
        ),
        Err(Denial::NoResourceAllow)
    );
    assert_eq!(
        ask(
            std::slice::from_ref(&allow_all),
            Some(&to_user),
            "kinesis:PutRecord",
            OTHER,
            &c
        ),
        Ok(())
    );
    assert_eq!(
        ask(&[], Some(&to_user), "kinesis:PutRecord", OTHER, &c),
        Err(Denial::NoIdentityAllow)
    );
    assert_eq!(
        ask(
            std::slice::from_ref(&allow_all),
            Some(&to_account),
            "kinesis:PutRecord",
            OTHER,
            &c
        ),
        Ok(())
    );
    assert_eq!(
        ask(
            std::slice::from_ref(&allow_all),
            Some(&to_bob),
            "kinesis:PutRecord",
            OTHER,
            &c
        ),
        Err(Denial::NoResourceAllow)
    );
    assert!(ask(
        &[allow_all],
        Some(&to_user),
        "kinesis:GetRecords",
        OTHER,
        &c
    )
    .is_err());
    // Within the account, a resource policy naming the user suffices; naming the account does not.
    let own_user = resource(&format!(
        r#"{{"Effect": "Allow", "Principal": {{"AWS": "{ALICE}"}}, "Action": "kinesis:PutRecord", "Resource": "*"}}"#
    ));
    assert_eq!(
        ask(&[], Some(&own_user), "kinesis:PutRecord", S1, &c),
        Ok(())
    );
    assert_eq!(
        ask(&[], Some(&to_account), "kinesis:PutRecord", S1, &c),
        Err(Denial::NoIdentityAllow)
    );
    let everyone = resource(
        r#"{"Effect": "Allow", "Principal": "*", "Action": "kinesis:DescribeStream", "Resource": "*"}"#,
    );
    assert_eq!(
        ask(&[], Some(&everyone), "kinesis:DescribeStream", S1, &c),
        Ok(())
    );
    let not_bob = resource(
        r#"{"Effect": "Deny", "NotPrincipal": {"AWS": "arn:aws:iam::111122223333:user/bob"}, "Action": "*", "Resource": "*"}"#,
    );
    let allow = identity(r#"{"Effect": "Allow", "Action": "*", "Resource": "*"}"#);
    assert_eq!(
        ask(&[allow], Some(&not_bob), "kinesis:PutRecord", S1, &c),
        Err(Denial::ExplicitResourceDeny)
    );
}

#[test]
fn conditions() {
    let p = identity(
        r#"{"Effect": "Allow", "Action": "kinesis:*", "Resource": "*",
            "Condition": {"StringEquals": {"aws:PrincipalAccount": ["999999999999", "111122223333"]},
                          "Bool": {"aws:SecureTransport": "true"}}}"#,
    );
    let plain = context(&[]);
    let tls = context(&[("aws:SecureTransport", "true")]);
    assert!(ask(
        std::slice::from_ref(&p),
        None,
        "kinesis:PutRecord",
        S1,
        &plain
    )
    .is_err());
    assert_eq!(
        ask(
            std::slice::from_ref(&p),
            None,
            "kinesis:PutRecord",
            S1,
            &tls
        ),
        Ok(())
    );
    let like = identity(
        r#"{"Effect": "Allow", "Action": "kinesis:*", "Resource": "*",
            "Condition": {"StringLike": {"aws:principalarn": "arn:aws:iam::*:user/al*"},
                          "ArnLike": {"aws:PrincipalArn": "arn:aws:iam::111122223333:user/*"}}}"#,
    );
    assert_eq!(ask(&[like], None, "kinesis:PutRecord", S1, &plain), Ok(()));
    // A key the request lacks fails a positive operator, passes a negated one and IfExists.
    let unknown = identity(
        r#"{"Effect": "Allow", "Action": "kinesis:*", "Resource": "*",
            "Condition": {"StringEquals": {"aws:NoSuchKey": "x"}}}"#,
    );
    assert!(ask(&[unknown], None, "kinesis:PutRecord", S1, &plain).is_err());
    let negated = identity(
        r#"{"Effect": "Allow", "Action": "kinesis:*", "Resource": "*",
            "Condition": {"StringNotEquals": {"aws:NoSuchKey": "x"}, "StringEqualsIfExists": {"aws:Other": "y"},
                          "Null": {"aws:NoSuchKey": "true"}, "NumericLessThan": {"kinesis:n": 10}}}"#,
    );
    let n5 = context(&[("kinesis:n", "5")]);
    let n50 = context(&[("kinesis:n", "50")]);
    assert_eq!(
        ask(
            std::slice::from_ref(&negated),
            None,
            "kinesis:PutRecord",
            S1,
            &n5
        ),
        Ok(())
    );
    assert!(ask(&[negated], None, "kinesis:PutRecord", S1, &n50).is_err());
}

#[test]
fn malformed_documents_are_refused() {
    let bad = |text: &str, kind| Policy::parse(text, kind).expect_err(text).to_string();
    let id = PolicyKind::Identity;
    assert!(bad("nope", id).contains("not JSON"));
    assert!(bad("[]", id).contains("JSON object"));
    assert!(bad(
        r#"{"Statement": [{"Effect": "Maybe", "Action": "*", "Resource": "*"}]}"#,
        id
    )
    .contains("Effect"));
    assert!(bad(r#"{"Statement": {"Effect": "Allow", "Resource": "*"}}"#, id).contains("Action"));
    assert!(bad(r#"{"Statement": {"Effect": "Allow", "Action": "*"}}"#, id).contains("Resource"));
    assert!(bad(
        r#"{"Statement": {"Effect": "Allow", "Action": "PutRecord", "Resource": "*"}}"#,
        id
    )
    .contains("service:action"));
    assert!(bad(
        r#"{"Statement": {"Effect": "Allow", "Action": "*", "NotAction": "*", "Resource": "*"}}"#,
        id
    )
    .contains("both"));
    assert!(bad(r#"{"Version": "2020-01-01", "Statement": []}"#, id).contains("Version"));
    assert!(bad(r#"{"Statement": [], "Extra": 1}"#, id).contains("Extra"));
    let with_principal =
        r#"{"Statement": {"Effect": "Allow", "Principal": "*", "Action": "*", "Resource": "*"}}"#;
    assert!(bad(with_principal, id).contains("Principal"));
    assert!(Policy::parse(with_principal, PolicyKind::Resource).is_ok());
    assert!(bad(
        r#"{"Statement": {"Effect": "Allow", "Action": "*", "Resource": "*"}}"#,
        PolicyKind::Resource
    )
    .contains("Principal"));
    let cond = |c: &str| {
        format!(
            r#"{{"Statement": {{"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": {c}}}}}"#
        )
    };
    assert!(bad(
        &cond(r#"{"DateLessThan": {"aws:CurrentTime": "2020"}}"#),
        id
    )
    .contains("DateLessThan"));
    assert!(bad(&cond(r#"{"NumericLessThan": {"k": "ten"}}"#), id).contains("numbers"));
    assert!(
        bad(&cond(r#"{"Bool": {"aws:SecureTransport": "yes"}}"#), id).contains("true or false")
    );
    assert!(Policy::parse(
        &cond(r#"{"StringLikeIfExists": {"k": ["a*", 1, true]}}"#),
        id
    )
    .is_ok());
    assert!(
        bad(&cond(r#"{"StringEquals": {"k": "${aws:username}"}}"#), id)
            .contains("policy variables")
    );
    let variable = r#"{"Statement": {"Effect": "Allow", "Action": "*", "Resource": "arn:aws:kinesis:*:*:stream/${aws:username}"}}"#;
    assert!(bad(variable, id).contains("policy variables"));
}
