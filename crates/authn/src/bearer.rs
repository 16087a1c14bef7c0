//! Where tokens come from: `Authorization: Bearer <token>` (upstream
//! `request/bearertoken`) and, on WebSocket upgrades, the
//! `base64url.bearer.authorization.k8s.io.<token>` subprotocol (`request/websocket`).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use http::{header, HeaderMap, HeaderValue};

/// The WebSocket subprotocol prefix that carries a bearer token.
pub const BEARER_PROTOCOL_PREFIX: &str = "base64url.bearer.authorization.k8s.io.";

/// Why the WebSocket protocol header could not carry a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebSocketTokenError {
    /// More than one token subprotocol.
    #[error("multiple base64.bearer.authorization tokens specified")]
    Multiple,
    /// The token is not base64url.
    #[error("invalid base64.bearer.authorization token encoding")]
    Encoding,
    /// The token is not UTF-8.
    #[error("invalid base64.bearer.authorization token")]
    NotUtf8,
    /// The token was the only subprotocol.
    #[error("missing additional subprotocol")]
    NoOtherProtocol,
}

/// The bearer token of `Authorization`, as upstream parses it: first header value,
/// trimmed, `Bearer` (any case) then one space then a non-empty token; anything else is no
/// token (the request is then not authenticated by this method).
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let mut parts = value.splitn(3, ' ');
    let scheme = parts.next()?;
    let token = parts.next()?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return None;
    }
    Some(token)
}

fn is_websocket_upgrade(headers: &HeaderMap) -> bool {
    let connection_upgrade = headers.get_all(header::CONNECTION).iter().any(|v| {
        v.to_str()
            .map(|s| {
                s.split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
            })
            .unwrap_or(false)
    });
    let upgrade_websocket = headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|s| s.trim().eq_ignore_ascii_case("websocket"));
    connection_upgrade && upgrade_websocket
}

/// The token of a WebSocket upgrade's `Sec-WebSocket-Protocol`, if any.
pub fn websocket_token(headers: &HeaderMap) -> Result<Option<String>, WebSocketTokenError> {
    if !is_websocket_upgrade(headers) {
        return Ok(None);
    }
    let mut token = None;
    let mut others = 0;
    for value in headers.get_all(header::SEC_WEBSOCKET_PROTOCOL) {
        let Ok(value) = value.to_str() else { continue };
        for protocol in value.split(',').map(str::trim) {
            let Some(encoded) = protocol.strip_prefix(BEARER_PROTOCOL_PREFIX) else {
                others += 1;
                continue;
            };
            if token.is_some() {
                return Err(WebSocketTokenError::Multiple);
            }
            let decoded = URL_SAFE_NO_PAD
                .decode(encoded)
                .map_err(|_| WebSocketTokenError::Encoding)?;
            token = Some(String::from_utf8(decoded).map_err(|_| WebSocketTokenError::NotUtf8)?);
        }
    }
    match token {
        Some(t) if !t.is_empty() && others == 0 => Err(WebSocketTokenError::NoOtherProtocol),
        Some(t) if !t.is_empty() => Ok(Some(t)),
        _ => Ok(None),
    }
}

/// Removes the token subprotocol from `Sec-WebSocket-Protocol` (after success).
pub(crate) fn strip_websocket_token(headers: &mut HeaderMap) {
    let values: Vec<String> = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|p| p.trim().to_string()))
        .collect();
    if !values.iter().any(|p| p.starts_with(BEARER_PROTOCOL_PREFIX)) {
        return;
    }
    let kept: Vec<String> = values
        .into_iter()
        .filter(|p| !p.starts_with(BEARER_PROTOCOL_PREFIX))
        .collect();
    headers.remove(header::SEC_WEBSOCKET_PROTOCOL);
    if let Ok(v) = HeaderValue::from_str(&kept.join(",")) {
        headers.insert(header::SEC_WEBSOCKET_PROTOCOL, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn bearer_parsing_like_upstream() {
        let t = |v: &str| bearer_token(&headers(&[("authorization", v)])).map(str::to_string);
        assert_eq!(t("Bearer abc").as_deref(), Some("abc"));
        assert_eq!(t("bearer abc").as_deref(), Some("abc"));
        assert_eq!(t("  Bearer abc  ").as_deref(), Some("abc"));
        assert_eq!(t("Bearer abc def").as_deref(), Some("abc"));
        assert_eq!(t("Bearer").as_deref(), None);
        assert_eq!(
            t("Bearer  abc").as_deref(),
            None,
            "space before the token: empty token"
        );
        assert_eq!(t("Basic abc").as_deref(), None);
        assert_eq!(t("").as_deref(), None);
        assert_eq!(bearer_token(&HeaderMap::new()), None);
    }

    #[test]
    fn websocket_protocol_token() {
        let enc = URL_SAFE_NO_PAD.encode("tok");
        let proto = format!("{BEARER_PROTOCOL_PREFIX}{enc}, v4.channel.k8s.io");
        let mut h = headers(&[
            ("connection", "Upgrade"),
            ("upgrade", "websocket"),
            ("sec-websocket-protocol", &proto),
        ]);
        assert_eq!(websocket_token(&h).unwrap().as_deref(), Some("tok"));
        strip_websocket_token(&mut h);
        assert_eq!(
            h.get("sec-websocket-protocol").unwrap(),
            "v4.channel.k8s.io"
        );

        let only = format!("{BEARER_PROTOCOL_PREFIX}{enc}");
        let h = headers(&[
            ("connection", "upgrade"),
            ("upgrade", "websocket"),
            ("sec-websocket-protocol", &only),
        ]);
        assert_eq!(
            websocket_token(&h),
            Err(WebSocketTokenError::NoOtherProtocol)
        );
        let bad = format!("{BEARER_PROTOCOL_PREFIX}!!, x");
        let h = headers(&[
            ("connection", "upgrade"),
            ("upgrade", "websocket"),
            ("sec-websocket-protocol", &bad),
        ]);
        assert_eq!(websocket_token(&h), Err(WebSocketTokenError::Encoding));
        // Not an upgrade: ignored.
        let h = headers(&[("sec-websocket-protocol", &proto)]);
        assert_eq!(websocket_token(&h), Ok(None));
    }
}
