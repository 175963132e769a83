//! The chat page at `/`: plain HTML, CSS and JavaScript compiled into the binary
//! (`include_str!`), with no CDN and no build step, so it works offline and on a phone.
//! Conversations live in the browser's localStorage; replies stream from
//! `/v1/chat/completions`; model text is inserted as text nodes (never as HTML).

use axum::http::header;
use axum::response::{IntoResponse, Response};

const INDEX: &str = include_str!("web/index.html");
const SCRIPT: &str = include_str!("web/app.js");
const STYLE: &str = include_str!("web/style.css");

/// Headers every asset carries: no inline scripts may run, nothing is fetched from elsewhere.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

fn asset(kind: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, kind), (header::CONTENT_SECURITY_POLICY, CSP), (header::X_CONTENT_TYPE_OPTIONS, "nosniff")], body).into_response()
}

pub async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX)
}

pub async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

pub async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE)
}
