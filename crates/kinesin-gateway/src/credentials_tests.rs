use super::*;

const GOOD: &str = r#"
[[user]]
name = "alice"
account = "111111111111"
access_key_id = "AKIAALICE"
secret_access_key = "alice-secret"
admin = true
policies = ['{"Version": "2012-10-17", "Statement": []}']

[[user]]
name = "bob"
account = "222222222222"
access_key_id = "AKIABOB"
secret_access_key = "bob-secret"
"#;

fn parse(text: &str) -> Result<Credentials, CredentialsError> {
    Credentials::parse(text, Path::new("/etc/kinesin/credentials.toml"))
}

fn message(text: &str) -> String {
    parse(text).unwrap_err().to_string()
}

#[test]
fn users_are_read_with_defaults() {
    let credentials = parse(GOOD).unwrap();
    assert_eq!(credentials.len(), 2);
    let alice = credentials.principal("AKIAALICE").unwrap();
    assert!(alice.admin);
    assert_eq!(alice.arn(), "arn:aws:iam::111111111111:user/alice");
    assert_eq!(alice.policies.len(), 1);
    let bob = credentials.principal("AKIABOB").unwrap();
    assert!(!bob.admin && bob.policies.is_empty());
    assert_eq!(bob.secret_access_key.expose(), "bob-secret");
    assert!(credentials.principal("AKIANOBODY").is_none());
}

#[test]
fn secrets_are_never_shown() {
    let credentials = parse(GOOD).unwrap();
    let debug = format!("{credentials:?}");
    assert!(
        !debug.contains("alice-secret") && !debug.contains("bob-secret"),
        "{debug}"
    );
    assert!(debug.contains("<redacted>"));
}

#[test]
fn errors_name_the_file_and_the_key() {
    let file = "/etc/kinesin/credentials.toml";
    let bad_account = GOOD.replace("222222222222", "2222");
    assert_eq!(
        message(&bad_account),
        format!("credentials file {file}: `user[1].account`: must be 12 digits, like 123456789012")
    );
    let unknown = GOOD.replace("admin = true", "admn = true");
    let text = message(&unknown);
    assert!(
        text.starts_with(&format!("credentials file {file}:")) && text.contains("admn"),
        "{text}"
    );
    let missing = GOOD.replace("secret_access_key = \"bob-secret\"", "");
    assert!(
        message(&missing).contains("secret_access_key"),
        "{}",
        message(&missing)
    );
    let duplicate = GOOD.replace("AKIABOB", "AKIAALICE");
    assert_eq!(
        message(&duplicate),
        format!("credentials file {file}: `user[1].access_key_id`: the same as user \"alice\"'s")
    );
    let policy = GOOD.replace(r#"'{"Version": "2012-10-17", "Statement": []}'"#, "'[1'");
    assert!(message(&policy).starts_with(&format!(
        "credentials file {file}: `user[0].policies[0]`: user \"alice\"'s policy is not a valid IAM policy: the policy is not JSON"
    )));
    let no_resource = GOOD.replace(
        r#"'{"Version": "2012-10-17", "Statement": []}'"#,
        r#"'{"Statement": {"Effect": "Allow", "Action": "kinesis:*"}}'"#,
    );
    assert_eq!(
        message(&no_resource),
        format!("credentials file {file}: `user[0].policies[0]`: user \"alice\"'s policy is not a valid IAM policy: Statement[0]: needs Resource or NotResource")
    );
    assert!(message("").contains("no [[user]] table"));
    let slash = GOOD.replace("AKIABOB", "AKIA/BOB");
    assert!(message(&slash).contains("user[1].access_key_id"));
    // No secret in any error.
    for text in [&bad_account, &duplicate, &policy] {
        assert!(!message(text).contains("secret"), "{}", message(text));
    }
}

#[test]
fn a_changed_file_is_reloaded_and_a_bad_one_keeps_the_old() {
    let dir = std::env::temp_dir().join(format!("kinesin-credentials-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("credentials.toml");
    std::fs::write(&path, GOOD).unwrap();
    let store = CredentialStore::open(&path).unwrap();
    assert!(!store.reload_if_changed());
    let carol = "\n[[user]]\nname = \"carol\"\naccount = \"111111111111\"\naccess_key_id = \"AKIACAROL\"\nsecret_access_key = \"c\"\n";
    std::fs::write(&path, format!("{GOOD}{carol}")).unwrap();
    assert!(store.reload_if_changed());
    assert!(store.current().principal("AKIACAROL").is_some());
    std::fs::write(&path, "not toml at all [").unwrap();
    assert!(!store.reload_if_changed());
    assert!(store.current().principal("AKIACAROL").is_some());
    std::fs::remove_dir_all(&dir).unwrap();
}
