//! The web console at `/console`: one HTML page, its script and its style sheet, built into the
//! binary (no build step, no external assets, works offline). The page talks to the node it was
//! loaded from through the same Kinesis API and admin API every client uses, signing its requests
//! when the node checks signatures; this module only serves the files.
//!
//! `--console-dir DIR` serves the files from DIR instead, so the console can be changed and
//! reloaded without rebuilding the node.

use std::path::{Path, PathBuf};

use axum::extract::{Path as UrlPath, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use std::sync::Arc;

use crate::Gateway;

/// The console's files: name, content type, built-in content.
const FILES: [(&str, &str, &str); 3] = [
    (
        "index.html",
        "text/html; charset=utf-8",
        include_str!("../console/index.html"),
    ),
    (
        "console.js",
        "text/javascript; charset=utf-8",
        include_str!("../console/console.js"),
    ),
    (
        "console.css",
        "text/css; charset=utf-8",
        include_str!("../console/console.css"),
    ),
];

/// `GET /console`: the page's own URL ends in `/` so its relative links resolve.
pub(crate) async fn redirect() -> Redirect {
    Redirect::permanent("/console/")
}

/// `GET /console/`: the page.
pub(crate) async fn index(State(gateway): State<Arc<Gateway>>) -> Response {
    serve(gateway.settings.console_dir.as_deref(), "index.html").await
}

/// `GET /console/{file}`: the page's script and style sheet.
pub(crate) async fn file(
    State(gateway): State<Arc<Gateway>>,
    UrlPath(name): UrlPath<String>,
) -> Response {
    serve(gateway.settings.console_dir.as_deref(), &name).await
}

async fn serve(dir: Option<&Path>, name: &str) -> Response {
    let Some((name, content_type, built_in)) = FILES.iter().find(|(n, ..)| *n == name) else {
        return (StatusCode::NOT_FOUND, "no such console file\n").into_response();
    };
    let body = match dir {
        Some(dir) => match tokio::fs::read_to_string(PathBuf::from(dir).join(name)).await {
            Ok(text) => text,
            Err(e) => {
                return (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("console file {name} in {}: {e}\n", dir.display()),
                )
                    .into_response()
            }
        },
        None => (*built_in).to_string(),
    };
    (
        [
            (header::CONTENT_TYPE, *content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}
