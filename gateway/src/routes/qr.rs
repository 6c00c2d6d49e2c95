//! `GET /api/quotes/{id}/qr.svg`: the quote's payment URI as a QR code, so a buyer can pay from a phone wallet
//! by scanning the checkout page.
//!
//! The code is drawn here, server-side, as SVG (the `qrcode` crate with only its `svg` renderer): the page needs
//! no QR library and no outside service, and what the code says is exactly what `GET /api/quotes/{id}` calls
//! `payment_uri`. One SVG user unit is one module, with the standard four-module quiet zone; the page scales it
//! with CSS (`shape-rendering="crispEdges"` keeps the edges sharp at any size).

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use qrcode::render::svg;
use qrcode::{EcLevel, QrCode};
use ticketing::purchases::payment_uri;

use crate::error::{ApiError, ApiResult, Path};
use crate::state::AppState;

pub fn router() -> super::Table {
    super::Table::new().get("/api/quotes/{id}/qr.svg", quote_qr)
}

/// The SVG for `data`: dark modules on white, one user unit per module. `None` when the data does not fit in a
/// QR code (at level M, about 2.3 kB of bytes), which no payment URI comes near.
pub fn qr_svg(data: &str) -> Option<String> {
    let code = QrCode::with_error_correction_level(data.as_bytes(), EcLevel::M).ok()?;
    Some(
        code.render::<svg::Color<'_>>()
            .module_dimensions(1, 1)
            .quiet_zone(true)
            .dark_color(svg::Color("#000000"))
            .light_color(svg::Color("#ffffff"))
            .build(),
    )
}

/// `GET /api/quotes/{id}/qr.svg`: `image/svg+xml` of the payment URI; 404 `quote_not_found`, and
/// 422 `no_payment_uri` for a quote whose chain has no URI scheme.
#[utoipa::path(get, path = "/api/quotes/{id}/qr.svg", tag = "purchases", params(("id" = String, Path, description = "The quote's id")),
    responses((status = 200, content_type = "image/svg+xml", description = "The payment URI as a QR code"), (status = 404, description = "`quote_not_found`"), (status = 422, description = "`no_payment_uri`")))]
pub async fn quote_qr(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    let not_found = || ApiError::not_found("quote_not_found", "no such quote");
    if id.len() > 64 {
        return Err(not_found());
    }
    let quote = state.purchases.quote(&id).await?.ok_or_else(not_found)?;
    let uri = payment_uri(&quote, state.purchases.settings())
        .ok_or_else(|| ApiError::unprocessable("no_payment_uri", "this quote has no payment URI to encode"))?;
    let svg = qr_svg(&uri).ok_or_else(|| ApiError::internal("the payment URI does not fit in a QR code"))?;
    // A quote's URI never changes, so the image can be cached for as long as the quote can be paid.
    Ok(([(header::CONTENT_TYPE, "image/svg+xml"), (header::CACHE_CONTROL, "private, max-age=3600")], svg)
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads the module grid back out of the SVG path (`M{x} {y}h{w}v{h}H{x}V{y}` per dark run).
    fn modules(svg: &str) -> (usize, Vec<bool>) {
        let size: usize = svg.split("width=\"").nth(1).unwrap().split('"').next().unwrap().parse().unwrap();
        let d = svg.split(" d=\"").nth(1).unwrap().split('"').next().unwrap();
        let mut grid = vec![false; size * size];
        for run in d.split('M').filter(|r| !r.is_empty()) {
            let nums: Vec<usize> = run
                .split(|c: char| !c.is_ascii_digit())
                .filter(|s| !s.is_empty())
                .map(|s| s.parse().unwrap())
                .collect();
            let (x, y, w, h) = (nums[0], nums[1], nums[2], nums[3]);
            for row in y..y + h {
                for col in x..x + w {
                    grid[row * size + col] = true;
                }
            }
        }
        (size, grid)
    }

    #[test]
    fn the_svg_draws_exactly_the_codes_modules_inside_a_quiet_zone() {
        let uri = "ethereum:0x52908400098527886E0F7030069857D2E4169EE7@1?value=2014000000000000000";
        let svg = qr_svg(uri).unwrap();
        assert!(svg.contains("<svg") && svg.contains("viewBox"));
        let code = QrCode::with_error_correction_level(uri.as_bytes(), EcLevel::M).unwrap();
        let width = code.width();
        let (size, grid) = modules(&svg);
        assert_eq!(size, width + 8, "four quiet modules on each side");
        let colors = code.to_colors();
        for row in 0..size {
            for col in 0..size {
                let inside = (4..4 + width).contains(&row) && (4..4 + width).contains(&col);
                let dark = inside && colors[(row - 4) * width + (col - 4)] == qrcode::Color::Dark;
                assert_eq!(grid[row * size + col], dark, "module ({col}, {row})");
            }
        }
    }

    #[test]
    fn data_too_long_for_any_version_is_refused() {
        assert!(qr_svg(&"x".repeat(5000)).is_none());
    }
}
