//! Signing in and out, and what guards every form: the token kept in an HttpOnly,
//! SameSite=Strict cookie, a per-session form token checked on every POST, and the Origin check.

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::Form;
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

use super::ConsoleState;
use super::views::{Layout, LoginPage, render};
use crate::auth::TokenRecord;
use crate::engine::TokenCheck;

/// The cookie that holds the signed-in token.
pub const COOKIE: &str = "xueji_console";
/// The header htmx sends the form token in (`hx-headers` on the page body).
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The signed-in user of a page: their token (the pages ask the API with it), its record, and
/// the form token of the session.
#[derive(Clone)]
pub struct User {
    pub token: String,
    pub record: TokenRecord,
    pub csrf: String,
}

fn mac(state: &ConsoleState, token: &str) -> Hmac<Sha256> {
    // INVARIANT: HMAC takes a key of any length.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&state.csrf_key).expect("hmac key");
    mac.update(token.as_bytes());
    mac
}

/// The form token of a session: derived from its bearer token with a key of this process, so
/// another site cannot know it and nothing needs to be stored.
fn csrf_for(state: &ConsoleState, token: &str) -> String {
    hex::encode(mac(state, token).finalize().into_bytes())
}

/// The token in the cookie, if it is one the service knows and has not revoked or seen expire.
pub async fn current_user(state: &ConsoleState, jar: &CookieJar) -> Option<User> {
    let token = jar.get(COOKIE)?.value().to_owned();
    if token.is_empty() || token.len() > 200 {
        return None;
    }
    let check = token.clone();
    let record = crate::http::blocking(&state.app, move |x| x.check_token(&check))
        .await
        .ok()?;
    match record {
        TokenCheck::Valid(record) => Some(User {
            csrf: csrf_for(state, &token),
            token,
            record: *record,
        }),
        TokenCheck::Expired | TokenCheck::Unknown => None,
    }
}

impl FromRequestParts<ConsoleState> for User {
    /// Not signed in: to the sign-in page.
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &ConsoleState) -> Result<Self, Response> {
        let jar = CookieJar::from_headers(&parts.headers);
        match current_user(state, &jar).await {
            Some(user) => Ok(user),
            None if parts.headers.contains_key("hx-request") => {
                // An htmx call whose session ended: the whole page goes to the sign-in page.
                Err(([("hx-redirect", "/")], StatusCode::UNAUTHORIZED).into_response())
            }
            None => Err(Redirect::to("/").into_response()),
        }
    }
}

/// A refused form: the error page, boxed (a `Response` is large to pass by value).
pub struct Refused(Box<Response>);

impl From<Refused> for Response {
    fn from(r: Refused) -> Response {
        *r.0
    }
}

/// A POST from another site is refused: its `Origin`, when the browser sends one, must be this
/// server, and the form token must be the session's (a hidden field or the htmx header).
pub fn check_post(
    state: &ConsoleState,
    user: &User,
    headers: &HeaderMap,
    form_token: Option<&str>,
) -> Result<(), Refused> {
    check_origin(headers)?;
    let given = headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .or(form_token)
        .and_then(|t| hex::decode(t).ok())
        .unwrap_or_default();
    mac(state, &user.token)
        .verify_slice(&given)
        .map_err(|_| forbidden("表单已过期或来源不明,请刷新页面后重试"))
}

fn check_origin(headers: &HeaderMap) -> Result<(), Refused> {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let same = origin
        .to_str()
        .ok()
        .and_then(|o| o.split_once("://"))
        .is_some_and(|(scheme, rest)| (scheme == "http" || scheme == "https") && rest == host);
    if same {
        Ok(())
    } else {
        Err(forbidden("请求来自其他网站,已拒绝"))
    }
}

fn forbidden(message: &str) -> Refused {
    Refused(Box::new(
        (
            StatusCode::FORBIDDEN,
            super::views::error_page(None, message),
        )
            .into_response(),
    ))
}

#[derive(Deserialize)]
pub struct LoginForm {
    token: String,
}

/// The sign-in page (`GET /` when not signed in).
pub fn login_page(message: Option<&str>) -> Response {
    render(&LoginPage {
        layout: Layout::anonymous("登录"),
        message: message.unwrap_or_default().to_owned(),
    })
}

pub async fn login(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    jar: CookieJar,
    Form(form): Form<LoginForm>,
) -> Response {
    if let Err(refused) = check_origin(&headers) {
        return refused.into();
    }
    let token = form.token.trim().to_owned();
    let cookie = Cookie::build((COOKIE, token))
        .http_only(true)
        .same_site(SameSite::Strict)
        .path("/")
        .build();
    let jar = jar.add(cookie);
    if current_user(&state, &jar).await.is_none() {
        return (
            StatusCode::UNAUTHORIZED,
            login_page(Some("令牌无效、已吊销或已过期,请核对后重新输入")),
        )
            .into_response();
    }
    (jar, Redirect::to("/console/")).into_response()
}

#[derive(Deserialize)]
pub struct LogoutForm {
    csrf: String,
}

pub async fn logout(
    State(state): State<ConsoleState>,
    user: User,
    headers: HeaderMap,
    jar: CookieJar,
    Form(form): Form<LogoutForm>,
) -> Response {
    if let Err(refused) = check_post(&state, &user, &headers, Some(&form.csrf)) {
        return refused.into();
    }
    let jar = jar.remove(Cookie::build(COOKIE).path("/").build());
    (jar, Redirect::to("/")).into_response()
}
