//! Charts for the creator dashboard, drawn here as SVG over the analytics: attendance over time for one event
//! (`GET /api/events/{id}/charts/attendance.svg`), its occupancy per shard over time
//! (`GET /api/events/{id}/charts/shards.svg`, issue 24) and sales per event (`GET /api/creators/me/charts/sales.svg`).
//!
//! The renderer is a few dozen lines of string building rather than a charting library: two chart shapes, no
//! script, no outside fonts, and text that screen readers can reach (`<title>`, `<desc>`, `role="img"`). Both
//! routes take the same credentials as the analytics they draw, so the page fetches them with its Bearer token
//! and shows the result as an image.

use std::fmt::Write;

use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use ticketing::now_ms;

use crate::error::{ApiError, ApiResult, Path, Query};
use crate::state::AppState;

pub fn router() -> super::Table {
    super::Table::new()
        .get("/api/events/{id}/charts/attendance.svg", attendance_chart)
        .get("/api/events/{id}/charts/shards.svg", shards_chart)
        .get("/api/creators/me/charts/sales.svg", sales_chart)
}

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 260.0;
/// Room for the axis labels: left, right, top, bottom.
const MARGIN: (f64, f64, f64, f64) = (44.0, 16.0, 34.0, 40.0);
const INK: &str = "#1a1d29";
const ACCENT: &str = "#3a2fa8";
const GRID: &str = "#c9cde0";

/// Escapes text for SVG content and attribute values.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

/// A ceiling for the y axis: at least 1, rounded up to a whole number of ticks.
fn nice_max(max: f64) -> f64 {
    if max <= 1.0 {
        return 1.0;
    }
    let step = 10f64.powf(max.log10().floor());
    let scaled = (max / step).ceil();
    let nice = if scaled <= 2.0 {
        2.0
    } else if scaled <= 5.0 {
        5.0
    } else {
        10.0
    };
    (nice * step).max(max.ceil())
}

/// The frame every chart shares: title, description, y grid with labels.
fn open(title: &str, desc: &str, y_max: f64) -> String {
    open_sized(title, desc, y_max, WIDTH, HEIGHT, HEIGHT)
}

/// [`open`] for a chart `width` wide whose plot ends where a `plot_height` tall chart's would; the image is
/// `height` tall (room below for a legend).
fn open_sized(title: &str, desc: &str, y_max: f64, width: f64, plot_height: f64, height: f64) -> String {
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" aria-labelledby="t d" font-family="system-ui, sans-serif" font-size="12"><title id="t">{}</title><desc id="d">{}</desc><rect width="100%" height="100%" fill="white"/><text x="{}" y="20" font-size="14" font-weight="600" fill="{INK}">{}</text>"#,
        escape(title),
        escape(desc),
        MARGIN.0,
        escape(title)
    );
    let (left, right, top, bottom) = MARGIN;
    // Whole-number labels: nice_max gives 1, 2, 5 or a multiple of 5, so one step per unit up to 5, else five steps.
    let steps: i32 = if y_max <= 5.0 { y_max as i32 } else { 5 };
    for i in 0..=steps {
        let value = y_max * f64::from(i) / f64::from(steps);
        let y = plot_height - bottom - (plot_height - top - bottom) * f64::from(i) / f64::from(steps);
        let _ = write!(
            svg,
            r#"<line x1="{left}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="{GRID}"/><text x="{:.1}" y="{:.1}" text-anchor="end" fill="{INK}">{value:.0}</text>"#,
            width - right,
            left - 6.0,
            y + 4.0,
        );
    }
    svg
}

/// A step line of `points` (x label, value), e.g. people present per minute. Labels under the first and last point.
pub fn line_chart(title: &str, points: &[(String, f64)]) -> String {
    let max = nice_max(points.iter().map(|p| p.1).fold(0.0, f64::max));
    let desc = match (points.first(), points.last()) {
        (Some(first), Some(last)) => format!(
            "{} points from {} to {}; highest {}",
            points.len(),
            first.0,
            last.0,
            points.iter().map(|p| p.1).fold(0.0, f64::max)
        ),
        _ => "no data yet".to_owned(),
    };
    let mut svg = open(title, &desc, max);
    let (left, right, top, bottom) = MARGIN;
    let plot_w = WIDTH - left - right;
    let plot_h = HEIGHT - top - bottom;
    if points.is_empty() {
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="{INK}">No attendance yet</text>"#,
            WIDTH / 2.0,
            HEIGHT / 2.0
        );
    } else {
        let step = plot_w / points.len().max(1) as f64;
        let y = |v: f64| HEIGHT - bottom - plot_h * v / max;
        let mut d = format!("M{left:.1} {:.1}", y(points[0].1));
        for (i, (_, value)) in points.iter().enumerate() {
            let x0 = left + step * i as f64;
            let _ = write!(d, "L{x0:.1} {:.1}H{:.1}", y(*value), x0 + step);
        }
        let _ = write!(
            svg,
            r#"<path d="{d}V{:.1}H{left:.1}Z" fill="{ACCENT}" fill-opacity="0.15" stroke="none"/><path d="{d}" fill="none" stroke="{ACCENT}" stroke-width="2"/>"#,
            HEIGHT - bottom
        );
        let first = &points[0].0;
        let last = &points[points.len() - 1].0;
        let _ = write!(
            svg,
            r#"<text x="{left:.1}" y="{:.1}" fill="{INK}">{}</text><text x="{:.1}" y="{:.1}" text-anchor="end" fill="{INK}">{}</text>"#,
            HEIGHT - 14.0,
            escape(first),
            WIDTH - right,
            HEIGHT - 14.0,
            escape(last)
        );
    }
    svg.push_str("</svg>");
    svg
}

/// About how wide one character of the 12 px system font is, in SVG units: labels are cut to fit their bar's slot
/// so neighbours never overlap (the full label stays in the bar's `<title>` and the chart's description).
const CHAR_W: f64 = 7.0;

fn fit_label(label: &str, slot: f64) -> String {
    let room = ((slot - 4.0) / CHAR_W).floor().max(1.0) as usize;
    if label.chars().count() <= room {
        label.to_owned()
    } else {
        label.chars().take(room.saturating_sub(1).max(1)).chain(['…']).collect()
    }
}

/// Vertical bars of `bars` (label, value), e.g. tickets sold per event.
pub fn bar_chart(title: &str, bars: &[(String, f64)]) -> String {
    let max = nice_max(bars.iter().map(|b| b.1).fold(0.0, f64::max));
    let desc = if bars.is_empty() {
        "no data yet".to_owned()
    } else {
        bars.iter().map(|(label, value)| format!("{label}: {value}")).collect::<Vec<_>>().join("; ")
    };
    let mut svg = open(title, &desc, max);
    let (left, right, top, bottom) = MARGIN;
    let plot_w = WIDTH - left - right;
    let plot_h = HEIGHT - top - bottom;
    if bars.is_empty() {
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="{INK}">No sales yet</text>"#,
            WIDTH / 2.0,
            HEIGHT / 2.0
        );
    }
    let slot = plot_w / bars.len().max(1) as f64;
    for (i, (label, value)) in bars.iter().enumerate() {
        let h = plot_h * value / max;
        let x = left + slot * i as f64 + slot * 0.15;
        let short = fit_label(label, slot);
        let _ = write!(
            svg,
            r#"<rect x="{x:.1}" y="{:.1}" width="{:.1}" height="{h:.1}" fill="{ACCENT}"><title>{}: {value}</title></rect><text x="{:.1}" y="{:.1}" text-anchor="middle" fill="{INK}">{value}</text><text x="{:.1}" y="{:.1}" text-anchor="middle" fill="{INK}">{}</text>"#,
            HEIGHT - bottom - h,
            slot * 0.7,
            escape(label),
            x + slot * 0.35,
            HEIGHT - bottom - h - 4.0,
            x + slot * 0.35,
            HEIGHT - bottom + 16.0,
            escape(&short)
        );
    }
    svg.push_str("</svg>");
    svg
}

/// Line colours for several series, distinct and dark enough to read on white (WCAG 3:1 against it).
const SERIES: [&str; 8] = ["#3a2fa8", "#c2410c", "#047857", "#b91c1c", "#0369a1", "#a21caf", "#4d7c0f", "#92400e"];
/// The narrowest and widest a chart is drawn for the page that asks (`?width=`): a phone's column to a desktop's.
const MIN_WIDTH: f64 = 300.0;
const MAX_WIDTH: f64 = 960.0;
const LEGEND_ROW: f64 = 18.0;

/// One step line per series over the same minutes (`x_labels`: the first and last minute), drawn `width` wide so a
/// page can ask for its own column's width and keep the text at 12 px; a legend under the plot names each line,
/// wrapped onto as many rows as the width needs.
pub fn multi_line_chart(title: &str, width: f64, x_labels: (&str, &str), series: &[(String, Vec<f64>)]) -> String {
    let width = width.clamp(MIN_WIDTH, MAX_WIDTH);
    let (left, right, top, bottom) = MARGIN;
    let max = nice_max(series.iter().flat_map(|s| s.1.iter().copied()).fold(0.0, f64::max));
    // Legend entries: a swatch and the name, laid out left to right and wrapped.
    let mut legend = Vec::with_capacity(series.len());
    let (mut x, mut row) = (left, 0.0);
    for (name, _) in series {
        let w = 22.0 + name.chars().count() as f64 * CHAR_W + 14.0;
        if x + w > width - right && x > left {
            x = left;
            row += 1.0;
        }
        legend.push((x, row));
        x += w;
    }
    let rows = if series.is_empty() { 0.0 } else { row + 1.0 };
    let height = HEIGHT + rows * LEGEND_ROW;
    let desc = if series.is_empty() {
        "no data yet".to_owned()
    } else {
        let peaks = series
            .iter()
            .map(|(name, values)| format!("{name}: highest {}", values.iter().copied().fold(0.0, f64::max)))
            .collect::<Vec<_>>()
            .join("; ");
        format!("{} minutes from {} to {}; {peaks}", series[0].1.len(), x_labels.0, x_labels.1)
    };
    let mut svg = open_sized(title, &desc, max, width, HEIGHT, height);
    let plot_w = width - left - right;
    let plot_h = HEIGHT - top - bottom;
    if series.is_empty() {
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="{INK}">No shards yet</text>"#,
            width / 2.0,
            HEIGHT / 2.0
        );
    }
    let y = |v: f64| HEIGHT - bottom - plot_h * v / max;
    for (i, (name, values)) in series.iter().enumerate() {
        let colour = SERIES[i % SERIES.len()];
        if let Some(first) = values.first() {
            let step = plot_w / values.len() as f64;
            let mut d = format!("M{left:.1} {:.1}", y(*first));
            for (j, value) in values.iter().enumerate() {
                let x0 = left + step * j as f64;
                let _ = write!(d, "L{x0:.1} {:.1}H{:.1}", y(*value), x0 + step);
            }
            let _ = write!(
                svg,
                r#"<path d="{d}" fill="none" stroke="{colour}" stroke-width="2"><title>{}</title></path>"#,
                escape(name)
            );
        }
        let (lx, lrow) = legend[i];
        let ly = HEIGHT + 2.0 + lrow * LEGEND_ROW;
        let _ = write!(
            svg,
            r#"<rect x="{lx:.1}" y="{:.1}" width="16" height="4" fill="{colour}"/><text x="{:.1}" y="{ly:.1}" fill="{INK}">{}</text>"#,
            ly - 6.0,
            lx + 22.0,
            escape(name)
        );
    }
    if !series.is_empty() {
        let _ = write!(
            svg,
            r#"<text x="{left:.1}" y="{:.1}" fill="{INK}">{}</text><text x="{:.1}" y="{:.1}" text-anchor="end" fill="{INK}">{}</text>"#,
            HEIGHT - 14.0,
            escape(x_labels.0),
            width - right,
            HEIGHT - 14.0,
            escape(x_labels.1)
        );
    }
    svg.push_str("</svg>");
    svg
}

fn svg_response(svg: String) -> Response {
    ([(header::CONTENT_TYPE, "image/svg+xml"), (header::CACHE_CONTROL, "no-store")], svg).into_response()
}

/// `GET /api/events/{id}/charts/attendance.svg`: people present per minute (the event's host only).
#[utoipa::path(get, path = "/api/events/{id}/charts/attendance.svg", tag = "analytics", params(("id" = String, Path, description = "The event's id")),
    responses((status = 200, content_type = "image/svg+xml", description = "People present per minute"), (status = "4XX", description = "Refused: the error's code and message")),
    security(("creator" = [])))]
pub async fn attendance_chart(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let event_id = id
        .parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| ApiError::not_found("event_not_found", "no such event"))?;
    crate::auth::require_host(&state, &headers, event_id).await?;
    let analytics = state.store.attendance_analytics(event_id, now_ms()).await?;
    let points: Vec<(String, f64)> = analytics
        .per_minute
        .iter()
        .map(|b| {
            let label = chrono::DateTime::from_timestamp_millis(b.minute)
                .map(|t| t.format("%H:%M UTC").to_string())
                .unwrap_or_default();
            (label, b.peak.max(b.present) as f64)
        })
        .collect();
    Ok(svg_response(line_chart("Attendees present, per minute", &points)))
}

#[derive(Debug, serde::Deserialize)]
pub struct ChartQuery {
    /// The width to draw for, in CSS pixels (300 to 960; 640 when absent): the page asks for its column's.
    pub width: Option<f64>,
}

/// `GET /api/events/{id}/charts/shards.svg`: attendees present per shard, per minute (the event's host only).
#[utoipa::path(get, path = "/api/events/{id}/charts/shards.svg", tag = "analytics", params(("id" = String, Path, description = "The event's id"), ("width" = Option<f64>, Query, description = "Width to draw for, 300 to 960 CSS pixels (640)")),
    responses((status = 200, content_type = "image/svg+xml", description = "Attendees present per shard, per minute"), (status = "4XX", description = "Refused: the error's code and message")),
    security(("creator" = [])))]
pub async fn shards_chart(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(query): Query<ChartQuery>,
) -> ApiResult<Response> {
    let event_id = crate::routes::rooms::event_id(&id)?;
    crate::auth::require_host(&state, &headers, event_id).await?;
    let timeline = state.store.shard_timeline(event_id, now_ms()).await?;
    let label = |minute: Option<&i64>| {
        minute
            .and_then(|m| chrono::DateTime::from_timestamp_millis(*m))
            .map(|t| t.format("%H:%M UTC").to_string())
            .unwrap_or_default()
    };
    let (first, last) = (label(timeline.minutes.first()), label(timeline.minutes.last()));
    let series: Vec<(String, Vec<f64>)> = timeline
        .shards
        .iter()
        .map(|s| (format!("Shard {}", s.shard), s.present.iter().map(|p| *p as f64).collect()))
        .collect();
    let width = query.width.filter(|w| w.is_finite()).unwrap_or(WIDTH);
    Ok(svg_response(multi_line_chart("Attendees per shard, per minute", width, (&first, &last), &series)))
}

/// `GET /api/creators/me/charts/sales.svg`: tickets sold per event (the signed-in creator's events).
#[utoipa::path(get, path = "/api/creators/me/charts/sales.svg", tag = "analytics",
    responses((status = 200, content_type = "image/svg+xml", description = "Tickets sold per event"), (status = "4XX", description = "Refused: the error's code and message")),
    security(("creator" = [])))]
pub async fn sales_chart(State(state): State<AppState>, headers: HeaderMap) -> ApiResult<Response> {
    let session = crate::auth::creator::authenticate(&state, &headers).await?;
    let events = state.store.events_by_creator(&session.account).await?;
    let bars: Vec<(String, f64)> =
        events.iter().rev().take(12).rev().map(|e| (e.title.clone(), e.tickets_sold as f64)).collect();
    Ok(svg_response(bar_chart("Tickets sold per event", &bars)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bar_labels_fit_their_slots_so_neighbours_do_not_overlap() {
        for n in [1usize, 4, 9, 20] {
            let slot = (WIDTH - MARGIN.0 - MARGIN.1) / n as f64;
            let label = fit_label("Gallery opening: light sculptures", slot);
            assert!(label.chars().count() as f64 * CHAR_W <= slot, "{n} bars: {label:?} in {slot:.0}");
        }
        assert_eq!(fit_label("Jazz", 200.0), "Jazz");
    }

    #[test]
    fn text_is_escaped_so_a_title_cannot_inject_markup() {
        let svg = bar_chart("Sales", &[("<script>alert(1)</script> & co".into(), 3.0)]);
        assert!(!svg.contains("<script>"));
        assert!(svg.contains("&lt;script&gt;"));
        assert!(svg.contains("&amp; co"));
    }

    #[test]
    fn bars_scale_to_the_plot_and_say_their_values() {
        let svg = bar_chart("Sales", &[("A".into(), 2.0), ("B".into(), 4.0)]);
        assert!(svg.contains("<desc id=\"d\">A: 2; B: 4</desc>"), "{svg}");
        // The tallest bar fills the plot from the axis up (nice_max(4) = 5, so 4/5 of 186).
        let plot_h = HEIGHT - MARGIN.2 - MARGIN.3;
        assert!(svg.contains(&format!("height=\"{:.1}\"", plot_h * 4.0 / 5.0)), "{svg}");
    }

    #[test]
    fn one_line_per_shard_with_a_legend_that_wraps_to_the_width() {
        let series: Vec<(String, Vec<f64>)> =
            (0..6).map(|i| (format!("Shard {i}"), vec![1.0, f64::from(i), 2.0])).collect();
        let wide = multi_line_chart("Per shard", 640.0, ("10:00 UTC", "10:02 UTC"), &series);
        assert_eq!(wide.matches("<path").count(), 6, "{wide}");
        assert!(wide.contains(">Shard 5<") && wide.contains(r#"viewBox="0 0 640 278""#), "one legend row: {wide}");
        // At a phone's width the same legend takes more rows, and nothing is drawn past the right edge.
        let narrow = multi_line_chart("Per shard", 340.0, ("10:00 UTC", "10:02 UTC"), &series);
        assert!(narrow.contains(r#"viewBox="0 0 340 296""#), "two legend rows: {narrow}");
        for x in narrow.split(" x=\"").skip(1).map(|t| t.split('"').next().unwrap().parse::<f64>().unwrap()) {
            assert!(x <= 340.0, "{x} in {narrow}");
        }
        assert!(narrow.contains("highest 5"), "the description names each shard's peak");
        assert!(multi_line_chart("Per shard", 10.0, ("", ""), &[]).contains(r#"viewBox="0 0 300 260""#));
        assert!(multi_line_chart("Per shard", 640.0, ("", ""), &[]).contains("No shards yet"));
    }

    #[test]
    fn empty_charts_say_so() {
        assert!(line_chart("Attendance", &[]).contains("No attendance yet"));
        assert!(bar_chart("Sales", &[]).contains("No sales yet"));
    }

    #[test]
    fn the_y_axis_ends_on_a_round_number_at_or_above_the_highest_value() {
        assert_eq!(nice_max(0.0), 1.0);
        assert_eq!(nice_max(3.0), 5.0);
        assert_eq!(nice_max(7.0), 10.0);
        assert_eq!(nice_max(42.0), 50.0);
        assert_eq!(nice_max(180.0), 200.0);
    }

    #[test]
    fn the_line_steps_through_every_point() {
        let svg = line_chart("Attendance", &[("10:00".into(), 1.0), ("10:01".into(), 3.0), ("10:02".into(), 2.0)]);
        assert!(svg.matches('H').count() >= 3);
        assert!(svg.contains(">10:00<") && svg.contains(">10:02<"));
    }
}
