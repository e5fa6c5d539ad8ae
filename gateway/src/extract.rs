//! The JSON body extractor: size-limited, content-type checked, and precise about what is
//! wrong — the JSON path of the offending field, and whether it is a field the endpoint does
//! not know (every request type refuses unknown fields).

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header;
use serde::de::DeserializeOwned;

use crate::config::REQUEST_BODY_BYTES_MAX;
use crate::error::Error;

/// A JSON request body of type `T`.
#[derive(Debug)]
pub(crate) struct JsonBody<T>(pub T);

/// Whether the request says its body is JSON (or says nothing, which curl users often do).
fn is_json(request: &Request) -> bool {
    let Some(value) = request.headers().get(header::CONTENT_TYPE) else { return true };
    let Ok(text) = value.to_str() else { return false };
    let essence = text.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Decodes `bytes` as `T`, naming the field that failed.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    let deserializer = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        let message = inner.to_string();
        let unknown_field = message.starts_with("unknown field");
        // serde quotes the offending value (`invalid type: string "…"`), and a path may name a
        // label or input key: the answer carries neither a secret nor personal data.
        let message = security::scrub(&message).unwrap_or(message);
        let path = security::scrub(&path).unwrap_or(path);
        let field = (path != "." && !path.is_empty()).then_some(path);
        Error::InvalidBody { field, message, unknown_field }
    })
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = Error;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(&request) {
            return Err(Error::UnsupportedMediaType);
        }
        let bytes = Bytes::from_request(request, state).await.map_err(|rejection| {
            if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                Error::BodyTooLarge { limit_bytes: REQUEST_BODY_BYTES_MAX }
            } else {
                Error::InvalidBody { field: None, message: rejection.body_text(), unknown_field: false }
            }
        })?;
        decode(&bytes).map(JsonBody)
    }
}

/// Query parameters of type `T`, refused as `invalid_parameter` JSON when they do not parse.
#[derive(Debug)]
pub(crate) struct QueryParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> axum::extract::FromRequestParts<S> for QueryParams<T> {
    type Rejection = Error;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::try_from_uri(&parts.uri).map(|q| QueryParams(q.0)).map_err(|rejection| {
            Error::InvalidParameter { what: "query".into(), message: rejection.body_text() }
        })
    }
}

/// The `{id}` path segment, refused as `not_found` JSON when it cannot be read.
#[derive(Debug)]
pub(crate) struct IdPath(pub String);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for IdPath {
    type Rejection = Error;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<String>::from_request_parts(parts, state)
            .await
            .map(|p| IdPath(p.0))
            .map_err(|_| Error::NotFound { what: "resource".into() })
    }
}

/// An optional JSON body: empty means `T::default()`.
#[derive(Debug)]
pub(crate) struct OptionalJsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Default> FromRequest<S> for OptionalJsonBody<T> {
    type Rejection = Error;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let json = is_json(&request);
        let bytes = Bytes::from_request(request, state).await.map_err(|rejection| {
            if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                Error::BodyTooLarge { limit_bytes: REQUEST_BODY_BYTES_MAX }
            } else {
                Error::InvalidBody { field: None, message: rejection.body_text(), unknown_field: false }
            }
        })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJsonBody(T::default()));
        }
        if !json {
            return Err(Error::UnsupportedMediaType);
        }
        decode(&bytes).map(OptionalJsonBody)
    }
}
