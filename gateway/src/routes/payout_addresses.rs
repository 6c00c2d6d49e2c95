//! A creator's payout addresses, one per chain: set with a signature from the wallet over a challenge (the access
//! machinery, challenge event id [`chains::challenge::PAYOUT_ADDRESS`], bound to the signed-in creator), listed
//! with the payouts held for want of one. How payouts use them is in `ticketing::payouts`.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use chains::challenge::{Challenge, PAYOUT_ADDRESS};
use chains::{Amount, Chain};
use serde::{Deserialize, Serialize};
use ticketing::payouts::PayoutAddressChange;
use utoipa::{IntoParams, OpenApi, ToSchema};

use crate::auth::access::AccessRequest;
use crate::auth::creator::CreatorSession;
use crate::error::{ApiError, ApiResult, Json, Path, Query};
use crate::routes::events::rfc3339;
use crate::state::AppState;

pub fn router() -> super::Table {
    super::Table::new()
        .get("/api/creators/me/payout-addresses", list)
        .get("/api/creators/me/payout-addresses/challenge", challenge)
        .put("/api/creators/me/payout-addresses/{chain}", set)
}

#[derive(OpenApi)]
#[openapi(paths(list, challenge, set))]
pub struct PayoutAddressesDoc;

/// What a creator's payout-address challenge is bound to.
fn binding(session: &CreatorSession) -> String {
    format!("payout-address:{}", session.account)
}

fn parse_chain(text: &str) -> ApiResult<Chain> {
    text.trim().parse().map_err(|e: chains::UnknownCurrency| ApiError::unprocessable("unknown_chain", e.to_string()))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AddressView {
    pub chain: String,
    pub address: String,
    /// When the wallet's signature was checked (RFC 3339).
    pub proven_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HeldView {
    pub chain: String,
    pub currency: String,
    /// Decimal, in the currency's unit.
    pub amount: String,
    pub payouts: i64,
    /// Why it is held: `no_payout_address`.
    pub reason: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PayoutAddresses {
    pub addresses: Vec<AddressView>,
    /// Payouts (pending or due) that cannot be sent: no address on their chain.
    pub held: Vec<HeldView>,
    /// Chains an address can be set for.
    pub chains: Vec<String>,
}

/// The signed-in creator's payout addresses and the payouts held for want of one.
#[utoipa::path(get, path = "/api/creators/me/payout-addresses",
    responses((status = 200, body = PayoutAddresses)), security(("creator" = [])))]
pub async fn list(State(state): State<AppState>, session: CreatorSession) -> ApiResult<Json<PayoutAddresses>> {
    let addresses = state.store.payout_addresses(&session.account).await?;
    // Summed per reason and currency.
    let mut held: BTreeMap<(&'static str, &'static str), HeldView> = BTreeMap::new();
    let mut sums: BTreeMap<(&'static str, &'static str), Amount> = BTreeMap::new();
    for payout in state.store.creator_payouts(&session.account).await? {
        let Some(reason) = payout.held else { continue };
        let amount = payout.amount()?;
        let key = (reason.code(), amount.currency.symbol());
        let sum = sums.entry(key).or_insert(Amount::zero(amount.currency));
        *sum = sum.checked_add(amount).ok_or_else(|| ApiError::internal("payout sum overflow"))?;
        let line = held.entry(key).or_insert_with(|| HeldView {
            chain: payout.chain.to_string(),
            currency: amount.currency.to_string(),
            amount: String::new(),
            payouts: 0,
            reason: reason.code().to_owned(),
        });
        line.amount = sum.to_string();
        line.payouts += 1;
    }
    Ok(Json(PayoutAddresses {
        addresses: addresses
            .into_iter()
            .map(|a| AddressView { chain: a.chain, address: a.address, proven_at: rfc3339(a.proven_at) })
            .collect(),
        held: held.into_values().collect(),
        chains: Chain::ALL.iter().map(|c| c.to_string()).collect(),
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ChallengeQuery {
    /// hive, btc, eth, pol, bnb, sol or xmr.
    pub chain: String,
    /// The payout address (a Hive account name on Hive).
    pub address: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChallengeView {
    /// The exact text to sign with the payout wallet.
    pub message: String,
    /// RFC 3339 UTC.
    #[serde(serialize_with = "crate::http::time::serialize_ms_as_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: i64,
    pub chain: String,
    /// The address as the message names it (EIP-55 on EVM chains).
    pub address: String,
}

/// A challenge for the payout wallet to sign (five minutes, one use, valid only for the signed-in creator).
#[utoipa::path(get, path = "/api/creators/me/payout-addresses/challenge", params(ChallengeQuery),
    responses((status = 200, body = ChallengeView), (status = 400, description = "`invalid_wallet`, `unknown_chain`"),
        (status = 429, description = "`rate_limited`, with `Retry-After`")),
    security(("creator" = [])))]
pub async fn challenge(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    session: CreatorSession,
    Query(query): Query<ChallengeQuery>,
) -> ApiResult<Json<ChallengeView>> {
    state.access.admit_challenge(Some(remote.ip()))?;
    let issued = state
        .access
        .bound_challenge(PAYOUT_ADDRESS, &binding(&session), &query.chain, &query.address, ticketing::now_ms())
        .await?;
    Ok(Json(ChallengeView {
        message: issued.message,
        expires_at: issued.expires_at,
        chain: issued.chain.to_string(),
        address: issued.wallet,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetBody {
    pub address: String,
    /// The challenge exactly as issued by `/api/creators/me/payout-addresses/challenge`.
    pub message: String,
    /// The wallet's signature over `message`, as the wallet returned it.
    pub signature: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChangeView {
    pub chain: String,
    pub address: String,
    pub previous: Option<String>,
    /// Payouts on this chain not yet settled: they now go to `address`.
    pub unsettled_payouts: i64,
}

impl From<PayoutAddressChange> for ChangeView {
    fn from(c: PayoutAddressChange) -> Self {
        ChangeView {
            chain: c.chain.to_string(),
            address: c.address,
            previous: c.previous,
            unsettled_payouts: c.unsettled_payouts,
        }
    }
}

/// Sets the payout address on a chain, proven by the wallet's signature over a challenge from
/// `/api/creators/me/payout-addresses/challenge`. It applies to every payout on the chain not yet settled.
#[utoipa::path(put, path = "/api/creators/me/payout-addresses/{chain}", params(("chain" = String, Path)),
    request_body = SetBody,
    responses((status = 200, body = ChangeView),
        (status = 400, description = "`invalid_wallet`, `unknown_chain`, `bad_signature` (undecodable), …"),
        (status = 401, description = "`wrong_challenge`, `bad_signature`, `replayed`, `expired`, `unknown_challenge`, …"),
        (status = 422, description = "`unknown_chain`")),
    security(("creator" = [])))]
pub async fn set(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    session: CreatorSession,
    Path(chain): Path<String>,
    Json(body): Json<SetBody>,
) -> ApiResult<Json<ChangeView>> {
    let chain = parse_chain(&chain)?;
    let issued = Challenge::parse(&body.message).ok().filter(|c| {
        c.event_id == PAYOUT_ADDRESS
            && c.chain == chain
            && c.wallet.eq_ignore_ascii_case(body.address.trim())
            && c.to_message() == body.message
    });
    if issued.is_none() {
        return Err(ApiError::unauthorized(
            "wrong_challenge",
            "sign the challenge from /api/creators/me/payout-addresses/challenge for this chain exactly as issued",
        ));
    }
    let request = AccessRequest {
        event_id: PAYOUT_ADDRESS,
        chain: chain.as_str(),
        wallet: &body.address,
        message: Some(&body.message),
        timestamp: None,
        signature: &body.signature,
        remote: Some(remote.ip()),
    };
    let now = ticketing::now_ms();
    let wallet = state.access.verify_bound(request, &binding(&session), now).await?;
    let remote = remote.ip().to_string();
    let change =
        state.store.set_payout_address(&session.account, wallet.chain, &wallet.wallet, Some(&remote), now).await?;
    tracing::info!(creator = %session.account, chain = %chain, unsettled = change.unsettled_payouts, "payout address set");
    Ok(Json(change.into()))
}
