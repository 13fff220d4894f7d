//! [`Body`]: a request body as text, refused with an API error (not axum's plain-text one) when
//! it is too large or not UTF-8. Handlers parse it themselves, so errors can name the bad field.

use axum::extract::rejection::StringRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;

use super::error::ApiError;

/// Largest request body: a script may be 1 MiB, and JSON escaping can double it.
pub const MAX_BODY_BYTES: usize = 4 << 20;

/// The body of a request, as UTF-8 text.
pub struct Body(pub String);

impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        String::from_request(request, state)
            .await
            .map(Body)
            .map_err(|rejection: StringRejection| match rejection.status() {
                StatusCode::PAYLOAD_TOO_LARGE => {
                    ApiError::TooLarge(format!("the request body is over {MAX_BODY_BYTES} bytes"))
                }
                _ => ApiError::InvalidRequest(rejection.body_text()),
            })
    }
}
