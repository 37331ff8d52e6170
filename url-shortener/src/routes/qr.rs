//! `GET /api/v1/links/{code}/qr.svg` and `qr.png`: the link's short URL as a QR code.
//! PNG is drawn here from the code's modules and written with the small `png` crate,
//! which avoids pulling in `image` for one greyscale picture.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use common::ApiError;
use common::auth::AuthUser;
use common::error::Problem;
use qrcode::{Color, EcLevel, QrCode};

use crate::AppState;
use crate::routes::links::visible;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/links/{code}/qr.svg", get(svg))
        .route("/api/v1/links/{code}/qr.png", get(png))
}

/// Pixels per module of the PNG, and the quiet zone around the code in modules.
const SCALE: usize = 8;
const QUIET: usize = 4;

async fn qr_of(state: &AppState, user: &AuthUser, code: &str) -> Result<QrCode, ApiError> {
    let row = visible(state, user, code).await?;
    QrCode::with_error_correction_level(state.config.short_url(&row.code), EcLevel::M)
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("encoding QR code: {e}")))
}

fn image(content_type: &'static str, body: Vec<u8>) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("private, max-age=3600"),
            ),
        ],
        body,
    )
        .into_response()
}

/// The link's short URL as an SVG QR code.
#[utoipa::path(get, path = "/api/v1/links/{code}/qr.svg", tag = "links",
    params(("code" = String, Path, description = "The link's code")),
    responses((status = 200, description = "SVG image", content_type = "image/svg+xml"),
              (status = 404, body = Problem)))]
pub async fn svg(
    State(state): State<AppState>,
    user: AuthUser,
    Path(code): Path<String>,
) -> Result<Response, ApiError> {
    let qr = qr_of(&state, &user, &code).await?;
    let svg = qr
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(200, 200)
        .quiet_zone(true)
        .build();
    Ok(image("image/svg+xml", svg.into_bytes()))
}

/// The link's short URL as a PNG QR code (greyscale, 8 pixels per module).
#[utoipa::path(get, path = "/api/v1/links/{code}/qr.png", tag = "links",
    params(("code" = String, Path, description = "The link's code")),
    responses((status = 200, description = "PNG image", content_type = "image/png"),
              (status = 404, body = Problem)))]
pub async fn png(
    State(state): State<AppState>,
    user: AuthUser,
    Path(code): Path<String>,
) -> Result<Response, ApiError> {
    let qr = qr_of(&state, &user, &code).await?;
    let bytes = encode_png(&qr).map_err(|e| ApiError::Internal(e.into()))?;
    Ok(image("image/png", bytes))
}

fn encode_png(qr: &QrCode) -> Result<Vec<u8>, png::EncodingError> {
    let modules = qr.width();
    let colors = qr.to_colors();
    let side = (modules + 2 * QUIET) * SCALE;
    let mut pixels = vec![255u8; side * side];
    for (i, color) in colors.iter().enumerate() {
        if *color == Color::Dark {
            let (mx, my) = (i % modules + QUIET, i / modules + QUIET);
            for y in my * SCALE..(my + 1) * SCALE {
                pixels[y * side + mx * SCALE..y * side + (mx + 1) * SCALE].fill(0);
            }
        }
    }
    let mut out = Vec::new();
    let side = u32::try_from(side).unwrap_or(u32::MAX);
    let mut encoder = png::Encoder::new(&mut out, side, side);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(&pixels)?;
    writer.finish()?;
    Ok(out)
}
