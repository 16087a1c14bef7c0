//! Request-header (authenticating front proxy) authentication (upstream
//! `staging/src/k8s.io/apiserver/pkg/authentication/request/headerrequest/requestheader.go`
//! behind `x509.NewDynamicCAVerifier`): the proxy's client certificate must verify against
//! `--requestheader-client-ca-file` and, when `--requestheader-allowed-names` is set, have
//! one of those CNs; then the user comes from the headers.

use std::collections::BTreeMap;

use http::HeaderMap;

use crate::user::UserInfo;
use crate::x509::{CaVerifier, X509Error};

/// The header names upstream always strips after authentication
/// (`standardRequestHeaderConfig`), besides the configured ones.
pub const STANDARD_USERNAME_HEADER: &str = "X-Remote-User";
/// The standard UID header.
pub const STANDARD_UID_HEADER: &str = "X-Remote-Uid";
/// The standard group header.
pub const STANDARD_GROUP_HEADER: &str = "X-Remote-Group";
/// The standard extra prefix.
pub const STANDARD_EXTRA_PREFIX: &str = "X-Remote-Extra-";

/// The request-header names in use (`--requestheader-*-headers`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestHeaderNames {
    /// `--requestheader-username-headers`.
    pub username_headers: Vec<String>,
    /// `--requestheader-uid-headers`.
    pub uid_headers: Vec<String>,
    /// `--requestheader-group-headers`.
    pub group_headers: Vec<String>,
    /// `--requestheader-extra-headers-prefix`.
    pub extra_headers_prefix: Vec<String>,
}

impl RequestHeaderNames {
    /// Removes these headers (names, and any header starting with an extra prefix,
    /// case-insensitively) — `ClearAuthenticationHeaders`.
    pub fn clear(&self, headers: &mut HeaderMap) {
        for name in self
            .username_headers
            .iter()
            .chain(&self.uid_headers)
            .chain(&self.group_headers)
        {
            headers.remove(name.as_str());
        }
        if self.extra_headers_prefix.is_empty() {
            return;
        }
        let prefixes: Vec<String> = self
            .extra_headers_prefix
            .iter()
            .map(|p| p.to_ascii_lowercase())
            .collect();
        let doomed: Vec<http::HeaderName> = headers
            .keys()
            .filter(|k| prefixes.iter().any(|p| k.as_str().starts_with(p.as_str())))
            .cloned()
            .collect();
        for name in doomed {
            headers.remove(name);
        }
    }

    /// The standard `X-Remote-*` names.
    pub(crate) fn standard() -> Self {
        RequestHeaderNames {
            username_headers: vec![STANDARD_USERNAME_HEADER.into()],
            uid_headers: vec![STANDARD_UID_HEADER.into()],
            group_headers: vec![STANDARD_GROUP_HEADER.into()],
            extra_headers_prefix: vec![STANDARD_EXTRA_PREFIX.into()],
        }
    }
}

/// The request-header authenticator.
#[derive(Debug)]
pub(crate) struct RequestHeaderAuthenticator {
    pub(crate) ca: CaVerifier,
    pub(crate) allowed_names: Vec<String>,
    pub(crate) names: RequestHeaderNames,
}

fn text(value: &http::HeaderValue) -> String {
    String::from_utf8_lossy(value.as_bytes()).into_owned()
}

/// The first non-empty value of the first header (in order) that has one (`headerValue`).
fn first_value(headers: &HeaderMap, names: &[String]) -> String {
    for name in names {
        if let Some(value) = headers.get(name.as_str()) {
            let value = text(value);
            if !value.is_empty() {
                return value;
            }
        }
    }
    String::new()
}

/// Go's `url.PathUnescape`; `None` on a malformed escape or non-UTF-8 result.
fn path_unescape(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

impl RequestHeaderAuthenticator {
    /// `Ok(None)` without a client certificate or without a username header.
    pub(crate) fn authenticate(
        &self,
        headers: &HeaderMap,
        chain: Option<&[Vec<u8>]>,
    ) -> Result<Option<UserInfo>, X509Error> {
        let Some(chain) = chain.filter(|c| !c.is_empty()) else {
            return Ok(None);
        };
        let (cn, _) = self.ca.verify(chain)?;
        if !self.allowed_names.is_empty() && !self.allowed_names.contains(&cn) {
            return Err(X509Error::NotAllowed(cn));
        }
        let name = first_value(headers, &self.names.username_headers);
        if name.is_empty() {
            return Ok(None);
        }
        let uid = first_value(headers, &self.names.uid_headers);
        let mut groups = Vec::new();
        for header in &self.names.group_headers {
            for value in headers.get_all(header.as_str()) {
                let value = text(value);
                if !value.is_empty() {
                    groups.push(value);
                }
            }
        }
        let mut extra: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for prefix in &self.names.extra_headers_prefix {
            let prefix = prefix.to_ascii_lowercase();
            for header in headers.keys() {
                // http lowercases names already.
                let Some(rest) = header.as_str().strip_prefix(prefix.as_str()) else {
                    continue;
                };
                let key = path_unescape(rest).unwrap_or_else(|| rest.to_string());
                extra
                    .entry(key)
                    .or_default()
                    .extend(headers.get_all(header).iter().map(text));
            }
        }
        Ok(Some(UserInfo {
            name,
            uid,
            groups,
            extra,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescape_like_go() {
        assert_eq!(
            path_unescape("example.com%2fkey").as_deref(),
            Some("example.com/key")
        );
        assert_eq!(path_unescape("a+b").as_deref(), Some("a+b"));
        assert_eq!(path_unescape("bad%zz"), None);
        assert_eq!(path_unescape("short%2"), None);
    }

    #[test]
    fn clear_removes_names_and_prefixed() {
        let mut h = HeaderMap::new();
        h.insert("x-remote-user", "a".parse().unwrap());
        h.insert("x-remote-extra-scopes", "s".parse().unwrap());
        h.insert("x-other", "keep".parse().unwrap());
        RequestHeaderNames::standard().clear(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-other"));
    }
}
