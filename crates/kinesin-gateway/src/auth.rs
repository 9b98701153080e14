//! Who signed a request: SigV4 verification against the credential store (when the node has
//! one), and the admin API's guard. Without a credential store every request is served, as
//! the emulators do.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, Uri};
use axum::middleware::Next;
use axum::response::Response;
use kinesin_api::{Authentication, CredentialScope, HttpRequest, KinesisError, Protocol};

use crate::credentials::{CredentialStore, Principal};
use crate::Gateway;

/// The largest admin request body read for its signature.
const ADMIN_BODY_LIMIT: usize = 1 << 20;

/// The parts of an HTTP request a SigV4 signature covers. Over HTTP/2 there is no `Host`
/// header: the `:authority` stands in for it, as AWS does.
pub(crate) fn http_request<'a>(
    method: &'a Method,
    uri: &'a Uri,
    headers: &HeaderMap,
    body: &'a [u8],
) -> HttpRequest<'a> {
    let mut list: Vec<(String, String)> = headers
        .iter()
        .map(|(name, value)| {
            let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
            (name.as_str().to_string(), value)
        })
        .collect();
    if !headers.contains_key("host") {
        if let Some(authority) = uri.authority() {
            list.push(("host".into(), authority.as_str().to_string()));
        }
    }
    HttpRequest {
        method: method.as_str(),
        path: uri.path(),
        query: uri.query().unwrap_or(""),
        headers: list,
        body,
    }
}

/// The principal who signed `request`, and the scope it signed for, at `now` (seconds since
/// the Unix epoch). AWS's errors: MissingAuthenticationTokenException when it is not signed,
/// IncompleteSignatureException when the signature is malformed, InvalidSignatureException
/// for another service, a wrong date or signature, UnrecognizedClientException for an access
/// key nobody holds.
pub(crate) fn authenticate(
    store: &CredentialStore,
    request: &HttpRequest<'_>,
    now: u64,
) -> Result<(Arc<Principal>, CredentialScope), KinesisError> {
    let (auth, principal) = claimed_signer(store, request)?;
    auth.verify(request, principal.secret_access_key.expose(), now)?;
    Ok((principal, auth.scope))
}

/// The signature `request` carries and the principal it names, not yet verified.
fn claimed_signer(
    store: &CredentialStore,
    request: &HttpRequest<'_>,
) -> Result<(Authentication, Arc<Principal>), KinesisError> {
    let auth =
        Authentication::read(request)?.ok_or_else(KinesisError::missing_authentication_token)?;
    auth.scope.check_service(kinesin_api::SIGNING_SERVICE)?;
    let principal = store
        .current()
        .principal(&auth.scope.access_key)
        .ok_or_else(KinesisError::unrecognized_client)?;
    Ok((auth, principal))
}

/// What a request's headers alone tell, before its body is read: that it is signed, for this
/// service, by a principal of the file (the signature itself covers the body's hash, so it is
/// verified later). So a client nobody authenticated cannot make the node read, and hold, a
/// body of up to the request limit. Same errors as [`authenticate`].
pub(crate) fn screen(
    store: &CredentialStore,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<(), KinesisError> {
    claimed_signer(store, &http_request(method, uri, headers, &[])).map(|_| ())
}

/// Guards the admin API: when the node has credentials, only a request signed by an
/// `admin = true` principal passes; others get AWS's errors (AccessDeniedException for a
/// principal who is not an admin).
pub(crate) async fn admin_only(
    State(gateway): State<Arc<Gateway>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(store) = gateway.settings.credentials.clone() else {
        return next.run(request).await;
    };
    let (parts, body) = request.into_parts();
    if let Err(error) = screen(&store, &parts.method, &parts.uri, &parts.headers) {
        return crate::server::failure(Protocol::Json, &error);
    }
    let body = match axum::body::to_bytes(body, ADMIN_BODY_LIMIT).await {
        Ok(body) => body,
        Err(e) => {
            let error = KinesisError::new(
                kinesin_api::ErrorKind::InvalidArgument,
                format!("The request body could not be read within {ADMIN_BODY_LIMIT} bytes: {e}"),
            );
            return crate::server::failure(Protocol::Json, &error);
        }
    };
    let signed = http_request(&parts.method, &parts.uri, &parts.headers, &body);
    let principal = match authenticate(&store, &signed, gateway.now_ms() / 1000) {
        Ok((principal, _)) => principal,
        Err(error) => return crate::server::failure(Protocol::Json, &error),
    };
    if !principal.admin {
        let error = KinesisError::access_denied(format!(
            "User: {} is not authorized to perform: kinesin:Admin on resource: {}",
            principal.arn(),
            parts.uri.path()
        ));
        return crate::server::failure(Protocol::Json, &error);
    }
    let mut request = Request::from_parts(parts, Body::from(body));
    request.extensions_mut().insert(principal);
    next.run(request).await
}
