//! Errors in OpenAI's shape: `{"error": {"message", "type", "param", "code"}}` with a 4xx or
//! 5xx status, so official clients raise their usual exceptions (`BadRequestError`,
//! `AuthenticationError`, `NotFoundError`, `RateLimitError`).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub kind: &'static str,
    pub param: Option<String>,
    pub code: Option<&'static str>,
}

impl ApiError {
    /// 400: the request is wrong; `param` names the field.
    pub fn invalid(param: &str, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            kind: "invalid_request_error",
            param: (!param.is_empty()).then(|| param.to_string()),
            code: None,
        }
    }

    pub fn with_code(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }

    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    pub fn unauthorized(message: &str) -> Self {
        Self::invalid("", message).with_status(StatusCode::UNAUTHORIZED).with_code("invalid_api_key")
    }

    pub fn model_not_found(model: &str, served: &str) -> Self {
        Self::invalid("model", format!("The model `{model}` does not exist: this server serves `{served}` (see GET /v1/models)"))
            .with_status(StatusCode::NOT_FOUND)
            .with_code("model_not_found")
    }

    pub fn busy(waiting: usize) -> Self {
        Self {
            status: StatusCode::TOO_MANY_REQUESTS,
            message: format!("the server is busy ({waiting} sequences waiting); retry shortly or start it with a larger --queue"),
            kind: "rate_limit_error",
            param: None,
            code: Some("queue_full"),
        }
    }

    pub fn server(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: message.into(),
            kind: "server_error",
            param: None,
            code: None,
        }
    }

    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}})
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = self.body();
        (self.status, axum::Json(body)).into_response()
    }
}

impl From<jielong_core::Error> for ApiError {
    fn from(e: jielong_core::Error) -> Self {
        if e.is_user_error() {
            ApiError::invalid("", e.to_string())
        } else {
            ApiError::server(e.to_string())
        }
    }
}
