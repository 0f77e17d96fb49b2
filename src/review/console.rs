//! The review console: the browser UI of the review API, served by the same server.
//!
//! Plain HTML, CSS and small vanilla JavaScript modules under `src/review/console/`, embedded in
//! the binary ([`ASSETS`], `include_str!`): no build step, no CDN, it works on an isolated
//! network. `/` is the page, `/assets/<name>` the rest ([`ROUTES`]). They hold no data, so they
//! are open without a session (the session layer only closes `/api/…`); everything the page shows
//! comes from the API, with the reviewer's session and scope.
//!
//! Every answer carries a strict `Content-Security-Policy` ([`CSP`]: scripts, styles and
//! connections from this origin only, no inline script or style, no framing), `nosniff`, and
//! `Cache-Control: no-cache` with an `ETag` (assets are not fingerprinted, so a browser
//! revalidates them and a new binary's console is used at once; a 304 costs nothing).
//!
//! The modules: `app.js` (sign-in, the three columns, search, the auditor's and admin's views),
//! `render.js` (a message JSON of `render` → DOM, every kind), `i18n.js` (Chinese labels first,
//! English in `localStorage`).

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};

/// One embedded file: (name under `/assets/`, Content-Type, bytes).
pub type Asset = (&'static str, &'static str, &'static str);

/// The page itself, served at `/`.
pub const INDEX: Asset = ("index.html", "text/html; charset=utf-8", include_str!("console/index.html"));

/// The files served under `/assets/`.
pub const ASSETS: &[Asset] = &[
    ("app.js", "text/javascript; charset=utf-8", include_str!("console/app.js")),
    ("render.js", "text/javascript; charset=utf-8", include_str!("console/render.js")),
    ("i18n.js", "text/javascript; charset=utf-8", include_str!("console/i18n.js")),
    ("console.css", "text/css; charset=utf-8", include_str!("console/console.css")),
    ("favicon.svg", "image/svg+xml", include_str!("console/favicon.svg")),
];

/// The console's routes (GET; not part of the API document: they are not `/api/…`).
pub const ROUTES: &[(&str, &str)] = &[("get", "/"), ("get", "/assets/{name}")];

/// The policy of every console answer: nothing but this origin, no inline code, no framing;
/// media and images may be `blob:` (nothing makes them yet, but a lightbox may).
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; \
                       media-src 'self' blob:; connect-src 'self'; font-src 'self'; form-action 'self'; \
                       base-uri 'none'; frame-ancestors 'none'";

/// Registers [`ROUTES`].
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/").route(web::get().to(index)));
    cfg.service(web::resource("/assets/{name}").route(web::get().to(asset)));
}

/// The asset called `name`.
pub fn find(name: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|(n, _, _)| *n == name)
}

/// A strong validator of `body` (FNV-1a 64: stable across builds of the same bytes).
fn etag(body: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in body.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("\"{h:016x}\"")
}

/// `asset` as the answer to `req` (304 when the browser's copy is current).
fn serve(req: &HttpRequest, asset: &Asset) -> HttpResponse {
    let (_, content_type, body) = asset;
    let tag = etag(body);
    let fresh = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag));
    let mut res = if fresh { HttpResponse::NotModified() } else { HttpResponse::Ok() };
    res.insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((header::ETAG, tag))
        .insert_header((header::CONTENT_SECURITY_POLICY, CSP))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"));
    if fresh {
        return res.finish();
    }
    res.content_type(*content_type).body(*body)
}

/// `GET /`.
pub async fn index(req: HttpRequest) -> HttpResponse {
    serve(&req, &INDEX)
}

/// `GET /assets/{name}`.
pub async fn asset(req: HttpRequest, name: web::Path<String>) -> HttpResponse {
    match find(&name) {
        Some(a) => serve(&req, a),
        None => super::server::no_route().await,
    }
}

#[cfg(test)]
mod tests {
    use actix_web::{test as atest, App};

    use super::*;

    #[actix_web::test]
    async fn assets_are_served_with_type_policy_and_validators() {
        let app = atest::init_service(App::new().configure(configure)).await;
        let mut names: Vec<(String, &str)> = vec![("/".into(), INDEX.1)];
        names.extend(ASSETS.iter().map(|(n, t, _)| (format!("/assets/{n}"), *t)));
        for (path, content_type) in names {
            let resp = atest::call_service(&app, atest::TestRequest::get().uri(&path).to_request()).await;
            assert_eq!(resp.status().as_u16(), 200, "{path}");
            let h = |n: header::HeaderName| resp.headers().get(n).map(|v| v.to_str().unwrap().to_string());
            assert_eq!(h(header::CONTENT_TYPE).as_deref(), Some(content_type), "{path}");
            assert_eq!(h(header::CONTENT_SECURITY_POLICY).as_deref(), Some(CSP), "{path}");
            assert_eq!(h(header::CACHE_CONTROL).as_deref(), Some("no-cache"), "{path}");
            let tag = h(header::ETAG).unwrap();
            let again = atest::TestRequest::get().uri(&path).insert_header((header::IF_NONE_MATCH, tag.as_str()));
            let resp = atest::call_service(&app, again.to_request()).await;
            assert_eq!(resp.status().as_u16(), 304, "{path}");
        }
        let resp = atest::call_service(&app, atest::TestRequest::get().uri("/assets/nope.js").to_request()).await;
        assert_eq!(resp.status().as_u16(), 404);
    }

    #[test]
    fn no_inline_code_and_every_module_is_served() {
        let (_, _, html) = INDEX;
        assert!(!html.contains("<script>"), "no inline script (CSP script-src 'self')");
        assert!(!html.contains("<style"), "no inline style");
        assert!(!html.contains(" style="), "no style attributes");
        let handler = html.split(" on").skip(1).any(|rest| {
            let word: String = rest.chars().take_while(char::is_ascii_lowercase).collect();
            !word.is_empty() && rest[word.len()..].starts_with('=')
        });
        assert!(!handler, "no inline event handlers");
        for (_, _, body) in ASSETS.iter().chain([&INDEX]) {
            for part in body.split("/assets/").skip(1) {
                let name: String = part.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '.').collect();
                assert!(find(&name).is_some(), "/assets/{name} is referenced but not embedded");
            }
            for from_elsewhere in ["src=\"http", "href=\"http", "from \"http", "url(http"] {
                assert!(!body.contains(from_elsewhere), "nothing from elsewhere: {from_elsewhere}");
            }
        }
    }
}
