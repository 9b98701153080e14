//! AWS's evaluation order: an explicit Deny in any applicable policy wins; within one account an
//! Allow in the identity policies or in the resource policy suffices; across accounts both must
//! allow (the resource policy naming the caller or the caller's account).

use std::collections::BTreeMap;

use super::document::{Effect, Negatable, Policy, Statement};
use super::glob::{arn_like, glob};

/// What is asked, and by whom.
#[derive(Debug, Clone)]
pub struct AccessRequest<'a> {
    /// `arn:aws:iam::ACCOUNT:user/NAME`.
    pub principal_arn: &'a str,
    pub principal_account: &'a str,
    /// `kinesis:PutRecord`.
    pub action: &'a str,
    /// The ARN acted on, or `*` for operations on no resource (ListStreams ...).
    pub resource: &'a str,
    /// The account owning the resource (the principal's own for `*`).
    pub resource_account: &'a str,
    /// Condition keys with lower-case names (`aws:principalaccount`, ...).
    pub context: &'a BTreeMap<String, String>,
}

/// Why a request is refused, worded as in AWS's AccessDeniedException.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denial {
    ExplicitIdentityDeny,
    ExplicitResourceDeny,
    NoIdentityAllow,
    NoResourceAllow,
}

/// How far a resource policy's Allow reaches: to the caller itself (its user ARN, or `*`), or
/// to the caller's account (its id or root ARN), which within the account still needs the
/// identity policy to allow, as IAM has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Reach {
    Account,
    Principal,
}

#[derive(Debug, Default)]
struct Verdict {
    deny: bool,
    allow: Option<Reach>,
}

/// Decides a request against the principal's identity policies and the resource's policy.
pub fn decide(
    identity: &[Policy],
    resource: Option<&Policy>,
    request: &AccessRequest<'_>,
) -> Result<(), Denial> {
    let mine = verdict(identity, request);
    let theirs = verdict(resource, request);
    if mine.deny {
        return Err(Denial::ExplicitIdentityDeny);
    }
    if theirs.deny {
        return Err(Denial::ExplicitResourceDeny);
    }
    if request.principal_account == request.resource_account {
        if mine.allow.is_some() || theirs.allow == Some(Reach::Principal) {
            return Ok(());
        }
        return Err(Denial::NoIdentityAllow);
    }
    if theirs.allow.is_none() {
        return Err(Denial::NoResourceAllow);
    }
    if mine.allow.is_none() {
        return Err(Denial::NoIdentityAllow);
    }
    Ok(())
}

fn verdict<'p>(
    policies: impl IntoIterator<Item = &'p Policy>,
    request: &AccessRequest<'_>,
) -> Verdict {
    let mut verdict = Verdict::default();
    for statement in policies.into_iter().flat_map(|p| &p.statements) {
        let Some(reach) = applies(statement, request) else {
            continue;
        };
        match statement.effect {
            Effect::Deny => verdict.deny = true,
            Effect::Allow => verdict.allow = verdict.allow.max(Some(reach)),
        }
    }
    verdict
}

/// Whether a statement covers the request, and how far it reaches the caller.
fn applies(s: &Statement, request: &AccessRequest<'_>) -> Option<Reach> {
    let action = s
        .actions
        .matches(|list| list.iter().any(|a| glob(a, request.action, true)));
    let resource = s
        .resources
        .matches(|list| list.iter().any(|r| arn_like(r, request.resource)));
    if !action || !resource || !s.conditions.iter().all(|c| c.holds(request.context)) {
        return None;
    }
    match &s.principals {
        // An identity policy's statements are about their own principal.
        None => Some(Reach::Principal),
        Some(principals) => {
            let reach = principals_reach(principals_list(principals), request);
            match principals {
                Negatable::Is(_) => reach,
                // NotPrincipal: everyone not named.
                Negatable::Not(_) => match reach {
                    Some(_) => None,
                    None => Some(Reach::Principal),
                },
            }
        }
    }
}

fn principals_list(p: &Negatable<Vec<String>>) -> &[String] {
    match p {
        Negatable::Is(list) | Negatable::Not(list) => list,
    }
}

fn principals_reach(list: &[String], request: &AccessRequest<'_>) -> Option<Reach> {
    let root = format!("arn:aws:iam::{}:root", request.principal_account);
    list.iter()
        .filter_map(|p| {
            if p == "*" || p == request.principal_arn {
                Some(Reach::Principal)
            } else if p == request.principal_account || *p == root {
                Some(Reach::Account)
            } else {
                None
            }
        })
        .max()
}
