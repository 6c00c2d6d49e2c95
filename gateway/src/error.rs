//! One error type for the HTTP API: a precise status, a stable machine code and a human message, rendered as
//! `{ "error": { "code": "...", "message": "..." } }`.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use ticketing::purchases::PurchaseError;
use ticketing::rates::RateError;

use crate::auth::access::AccessError;
use crate::payments::payout_export::ExportError;
use crate::payments::settlement::SettlementError;
use ticketing::payouts::SettleError;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Seconds for a `Retry-After` header. Every 429 and every 503 carries one (a default when unset).
    pub retry_after_secs: Option<u64>,
}

/// What a 429 or 503 tells a client to wait when the cause names no better time.
const DEFAULT_RETRY_AFTER_SECS: u64 = 5;

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into(), retry_after_secs: None }
    }

    pub fn too_many_requests(code: &'static str, message: impl Into<String>, retry_after_secs: u64) -> Self {
        Self::new(StatusCode::TOO_MANY_REQUESTS, code, message).retry_after(retry_after_secs)
    }

    pub fn unavailable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, code, message)
    }

    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after_secs = Some(secs.max(1));
        self
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    pub fn unauthorized(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, message)
    }

    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, code, message)
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.code, self.message)
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(code = self.code, message = %self.message, "request failed");
        }
        let body = json!({ "error": { "code": self.code, "message": self.message } });
        let retry_after = match self.status {
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => {
                Some(self.retry_after_secs.unwrap_or(DEFAULT_RETRY_AFTER_SECS))
            }
            _ => self.retry_after_secs,
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(secs) = retry_after {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from(secs));
        }
        response
    }
}

impl From<ticketing::StoreError> for ApiError {
    fn from(err: ticketing::StoreError) -> Self {
        // The details stay in the log; clients learn only that the store failed.
        tracing::error!(error = %err, "store error");
        ApiError::unavailable("store_unavailable", "the database could not complete the request; nothing was changed")
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        let status = match &rejection {
            JsonRejection::MissingJsonContentType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            JsonRejection::JsonDataError(_) => StatusCode::UNPROCESSABLE_ENTITY,
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError::new(status, "invalid_body", rejection.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::bad_request("invalid_query", rejection.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        ApiError::bad_request("invalid_path", rejection.body_text())
    }
}

// The domain errors' statuses, all here so one file says what each refusal looks like over HTTP.

impl From<AccessError> for ApiError {
    fn from(err: AccessError) -> Self {
        let retry = match &err {
            AccessError::RateLimited { retry_after_secs } => Some(*retry_after_secs),
            _ => None,
        };
        let api = ApiError::new(err.http_status(), err.code(), err.to_string());
        match retry {
            Some(secs) => api.retry_after(secs),
            None => api,
        }
    }
}

impl From<SettleError> for ApiError {
    fn from(err: SettleError) -> Self {
        SettlementError::Ledger(err).into()
    }
}

impl From<SettlementError> for ApiError {
    fn from(err: SettlementError) -> Self {
        let status = match &err {
            SettlementError::InvalidTxid { .. }
            | SettlementError::TransactionNotFound { .. }
            | SettlementError::PaysElsewhere { .. }
            | SettlementError::PaysTooLittle { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            SettlementError::NodeUnavailable { .. } => {
                return ApiError::unavailable(err.code(), err.to_string()).retry_after(30);
            }
            SettlementError::Ledger(SettleError::EntryNotFound(_)) => StatusCode::NOT_FOUND,
            SettlementError::Ledger(SettleError::NotSendable(_)) => StatusCode::UNPROCESSABLE_ENTITY,
            SettlementError::Ledger(
                SettleError::AlreadySettled(_)
                | SettleError::NotDue(_)
                | SettleError::NoPayoutAddress { .. }
                | SettleError::DestinationChanged(_),
            ) => StatusCode::CONFLICT,
            SettlementError::Ledger(SettleError::Store(store)) => {
                tracing::error!(error = %store, "store error");
                return ApiError::unavailable("store_unavailable", "the database did not answer").retry_after(1);
            }
        };
        ApiError::new(status, err.code(), err.to_string())
    }
}

impl From<PurchaseError> for ApiError {
    fn from(err: PurchaseError) -> Self {
        let status = match &err {
            PurchaseError::EventNotFound(_) | PurchaseError::QuoteNotFound(_) | PurchaseError::EntryNotFound(_) => {
                StatusCode::NOT_FOUND
            }
            PurchaseError::SoldOut
            | PurchaseError::NotOnSale(_)
            | PurchaseError::AlreadySettled(_)
            | PurchaseError::NotDue(_)
            | PurchaseError::NotRefundable(..) => StatusCode::CONFLICT,
            PurchaseError::CurrencyNotAccepted(_)
            | PurchaseError::FreeEvent(_)
            | PurchaseError::NotFree
            | PurchaseError::PaymentMethodUnavailable(_)
            | PurchaseError::CurrencyNotPayable(..)
            | PurchaseError::BelowMinimum(..)
            | PurchaseError::InvalidWallet(_)
            | PurchaseError::Rate(RateError::Unrepresentable(_)) => StatusCode::UNPROCESSABLE_ENTITY,
            PurchaseError::Rate(_) => StatusCode::SERVICE_UNAVAILABLE,
            PurchaseError::AddressGapFull(_) => {
                return ApiError::unavailable(err.code(), err.to_string()).retry_after(60);
            }
            PurchaseError::TooManyQuotes { retry_after_secs, .. } => {
                return ApiError::too_many_requests(err.code(), err.to_string(), *retry_after_secs);
            }
            PurchaseError::Store(store) => {
                tracing::error!(error = %store, "store error");
                return ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store_unavailable",
                    "the database did not answer",
                );
            }
        };
        let message = match &err {
            PurchaseError::PaymentMethodUnavailable(currency) => {
                format!("{err}: {} is not set", crate::payments::payability::receiving_setting(*currency))
            }
            _ => err.to_string(),
        };
        ApiError::new(status, err.code(), message)
    }
}

impl From<ExportError> for ApiError {
    fn from(err: ExportError) -> Self {
        let status = match &err {
            ExportError::NothingDue | ExportError::Psbt(chains::psbt::PsbtError::InsufficientFunds { .. }) => {
                StatusCode::CONFLICT
            }
            ExportError::NoBtcAccount | ExportError::BtcWatcherRequired | ExportError::Psbt(_) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ExportError::BadOrigin(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ExportError::Node(_) => return ApiError::unavailable(err.code(), err.to_string()).retry_after(30),
            ExportError::Store(store) => {
                tracing::error!(error = %store, "store error");
                return ApiError::unavailable("store_unavailable", "the database did not answer").retry_after(1);
            }
        };
        ApiError::new(status, err.code(), err.to_string())
    }
}

/// `Json` whose rejections are [`ApiError`]s.
#[derive(axum::extract::FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct Json<T>(pub T);

impl<T: serde::Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// `Query` whose rejections are [`ApiError`]s.
#[derive(axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Query<T>(pub T);

/// `Path` whose rejections are [`ApiError`]s.
#[derive(axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct Path<T>(pub T);

pub type ApiResult<T> = Result<T, ApiError>;
