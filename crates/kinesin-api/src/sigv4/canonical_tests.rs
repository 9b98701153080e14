//! Canonicalisation and signing against vectors of AWS's SigV4 test suite
//! (aws-sig-v4-test-suite: key AKIDEXAMPLE, region us-east-1, service `service`,
//! 20150830T123600Z).

use super::*;

const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const TIMESTAMP: &str = "20150830T123600Z";
const VANILLA: &str = "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31";

struct Vector {
    name: &'static str,
    method: &'static str,
    /// Path and query as on the request line.
    target: &'static str,
    headers: &'static [(&'static str, &'static str)],
    body: &'static str,
    signed_headers: &'static str,
    signature: &'static str,
}

const fn get(name: &'static str, target: &'static str, signature: &'static str) -> Vector {
    Vector {
        name,
        method: "GET",
        target,
        headers: &[],
        body: "",
        signed_headers: "host;x-amz-date",
        signature,
    }
}

const VECTORS: &[Vector] = &[
    get("get-vanilla", "/", VANILLA),
    get("get-relative-relative", "/example1/example2/../..", VANILLA),
    get("get-slash-dot-slash", "/./", VANILLA),
    get(
        "get-slashes",
        "//example//",
        "9a624bd73a37c9a373b5312afbebe7a714a789de108f0bdfe846570885f57e84",
    ),
    get(
        "get-vanilla-query-order-key-case",
        "/?Param2=value2&Param1=value1",
        "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
    ),
    get(
        "get-vanilla-query-order-value",
        "/?Param1=value2&Param1=Value1",
        "eedbc4e291e521cf13422ffca22be7d2eb8146eecf653089df300a15b2382bd1",
    ),
    get(
        "get-vanilla-utf8-query",
        "/?%E1%88%B4=bar",
        "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04",
    ),
    get(
        "get-unreserved",
        "/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
        "07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f",
    ),
    get(
        "path-encoded-twice",
        "/example%20space/",
        "446b817944c553435b35e813c261ff4e161fff982d1bacdef1c87f6785dd1662",
    ),
    Vector {
        name: "get-header-value-trim",
        method: "GET",
        target: "/",
        headers: &[("My-Header1", " value1"), ("My-Header2", " \"a   b   c\"")],
        body: "",
        signed_headers: "host;my-header1;my-header2;x-amz-date",
        signature: "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736",
    },
    Vector {
        name: "get-header-key-duplicate",
        method: "GET",
        target: "/",
        headers: &[
            ("My-Header1", "value2"),
            ("My-Header1", "value2"),
            ("My-Header1", "value1"),
        ],
        body: "",
        signed_headers: "host;my-header1;x-amz-date",
        signature: "c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea",
    },
    Vector {
        name: "post-x-www-form-urlencoded",
        method: "POST",
        target: "/",
        headers: &[("Content-Type", "application/x-www-form-urlencoded")],
        body: "Param1=value1",
        signed_headers: "content-type;host;x-amz-date",
        signature: "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a",
    },
];

fn request(vector: &Vector) -> HttpRequest<'static> {
    let (path, query) = vector.target.split_once('?').unwrap_or((vector.target, ""));
    let mut headers = vec![
        ("Host".to_string(), "example.amazonaws.com".to_string()),
        ("X-Amz-Date".to_string(), TIMESTAMP.to_string()),
    ];
    headers.extend(
        vector
            .headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    HttpRequest {
        method: vector.method,
        path,
        query,
        headers,
        body: vector.body.as_bytes(),
    }
}

fn credentials() -> SigningCredentials<'static> {
    SigningCredentials {
        access_key: "AKIDEXAMPLE",
        secret: SECRET,
        region: "us-east-1",
        service: "service",
    }
}

#[test]
fn aws_test_suite_vectors() {
    for vector in VECTORS {
        let request = request(vector);
        let canonical = canonical_request(
            &request,
            vector.signed_headers,
            &sha256_hex(vector.body.as_bytes()),
            false,
        )
        .unwrap();
        let scope = scope("20150830", "us-east-1", "service");
        let key = signing_key(SECRET, "20150830", "us-east-1", "service");
        let string_to_sign = string_to_sign(TIMESTAMP, &scope, &canonical);
        assert_eq!(
            signature(&key, &string_to_sign),
            vector.signature,
            "{}:\n{canonical}",
            vector.name
        );
        assert!(signature_matches(&key, &string_to_sign, vector.signature));
        // The signer signs every header it is given: the same signature.
        assert_eq!(
            authorization(&request, &credentials(), TIMESTAMP),
            format!(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders={}, Signature={}",
                vector.signed_headers, vector.signature
            ),
            "{}",
            vector.name
        );
    }
}

#[test]
fn the_vanilla_canonical_request_and_string_to_sign_are_aws_s() {
    let request = request(&VECTORS[0]);
    let canonical =
        canonical_request(&request, "host;x-amz-date", &sha256_hex(b""), false).unwrap();
    assert_eq!(
        canonical,
        "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    assert_eq!(
        string_to_sign(TIMESTAMP, "20150830/us-east-1/service/aws4_request", &canonical),
        "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\nbb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63"
    );
}

#[test]
fn signatures_that_differ_or_are_not_hex_do_not_match() {
    let key = signing_key(SECRET, "20150830", "us-east-1", "service");
    let sts = "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\nbb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63";
    assert!(signature_matches(&key, sts, VANILLA));
    assert!(signature_matches(&key, sts, &VANILLA.to_uppercase()));
    let mut flipped = VANILLA.to_string();
    flipped.replace_range(63.., "0");
    for bad in [flipped.as_str(), &VANILLA[..62], "", "zz", "é"] {
        assert!(!signature_matches(&key, sts, bad), "{bad}");
    }
}

#[test]
fn canonical_uris_and_queries() {
    for (path, canonical) in [
        ("", "/"),
        ("/", "/"),
        ("/a/./b/../c/", "/a/c/"),
        ("/../a", "/a"),
        ("/a/.", "/a"),
        ("/a%2Fb//", "/a%252Fb/"),
        ("/ሴ", "/%E1%88%B4"),
    ] {
        assert_eq!(canonical_uri(path), canonical, "{path}");
    }
    assert_eq!(canonical_query("", false), "");
    assert_eq!(canonical_query("b=2&a&a=1", false), "a=&a=1&b=2");
    assert_eq!(canonical_query("a=b+c&a=%7e%2f", false), "a=b%2Bc&a=~%2F");
    assert_eq!(
        canonical_query("X-Amz-Signature=x&X-Amz-Date=d", true),
        "X-Amz-Date=d"
    );
    assert_eq!(
        canonical_query("X-Amz-Signature=x", false),
        "X-Amz-Signature=x"
    );
}

#[test]
fn a_missing_signed_header_has_no_canonical_request() {
    let request = request(&VECTORS[0]);
    assert!(canonical_request(&request, "host;x-amz-date;x-amz-target", "h", false).is_none());
}

#[test]
fn timestamps_round_trip() {
    assert_eq!(parse_timestamp("19700101T000000Z"), Some(0));
    assert_eq!(parse_timestamp(TIMESTAMP), Some(1_440_938_160));
    assert_eq!(format_timestamp(1_440_938_160), TIMESTAMP);
    assert_eq!(parse_timestamp("20240229T235959Z"), Some(1_709_251_199));
    for secs in [0, 951_782_400, 1_709_251_199, 4_102_444_800, 1_767_225_600] {
        assert_eq!(parse_timestamp(&format_timestamp(secs)), Some(secs));
    }
    for bad in [
        "",
        "20150830T123600",
        "2015-08-30T12:36:00Z",
        "20151330T123600Z",
        "20150830T246000Z",
        "2015083OT123600Z",
        "+0150830T123600Z",
        "19690101T000000Z",
        "2015083\u{e9}T12360Z",
    ] {
        assert_eq!(parse_timestamp(bad), None, "{bad}");
    }
}

#[test]
fn signing_credentials_never_show_the_secret() {
    let debug = format!("{:?}", credentials());
    assert!(
        !debug.contains(SECRET) && debug.contains("<redacted>"),
        "{debug}"
    );
}
