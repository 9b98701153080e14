//! IAM's wildcards: `*` matches any run of characters (none included), `?` exactly one.

/// Whether `text` matches `pattern`; letters compared without case when `ignore_case`.
pub(crate) fn glob(pattern: &str, text: &str, ignore_case: bool) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let text: Vec<char> = text.chars().collect();
    let same = |p: char, t: char| {
        p == '?' || p == t || (ignore_case && p.to_lowercase().eq(t.to_lowercase()))
    };
    let (mut p, mut t) = (0, 0);
    // The last `*` seen and the text position it was tried at, to backtrack to.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == '*' {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && same(pattern[p], text[t]) {
            p += 1;
            t += 1;
        } else if let Some((sp, st)) = star {
            // Let the `*` swallow one more character.
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

/// IAM's ARN matching (the `Resource` element, `ArnLike`): `*` alone matches anything;
/// otherwise both are split into their six colon-separated parts and each part is matched with
/// wildcards on its own, with case. The resource part keeps its colons (a consumer ARN's
/// `:<creation time>`). A resource of `*` (an operation on no resource) matches only `*`.
pub(crate) fn arn_like(pattern: &str, arn: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    let patterns: Vec<&str> = pattern.splitn(6, ':').collect();
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    patterns.len() == 6
        && parts.len() == 6
        && patterns
            .iter()
            .zip(&parts)
            .all(|(pattern, part)| glob(pattern, part, false))
}
