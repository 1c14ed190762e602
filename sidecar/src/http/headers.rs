//! The `headers` middleware (`http.headers`): fixed request headers added before PHP sees
//! a request, fixed response headers added to PHP's responses, and CORS — preflights
//! answered without PHP, the CORS headers added to actual responses. Also the fixed
//! response headers of static files (`http.static.response`).
//!
//! Pure: header maps in, header maps out.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode};

use crate::config::{CorsConfig, HeadersConfig};

/// Headers to add, parsed once.
#[derive(Clone, Debug, Default)]
pub struct FixedHeaders(Vec<(HeaderName, HeaderValue)>);

impl FixedHeaders {
    /// Parses `(name, value)` pairs; the error names the bad header.
    pub fn new(pairs: &[(String, String)], key: &str) -> Result<Self, String> {
        let mut out = Vec::with_capacity(pairs.len());
        for (name, value) in pairs {
            let n = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("{key}: {name:?} is not a header name"))?;
            let v = HeaderValue::from_str(value)
                .map_err(|_| format!("{key}.{name}: {value:?} is not a header value"))?;
            out.push((n, v));
        }
        Ok(FixedHeaders(out))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Sets each header (replacing what was there), like RoadRunner's `Header().Set`.
    pub fn apply(&self, headers: &mut HeaderMap) {
        for (n, v) in &self.0 {
            headers.insert(n.clone(), v.clone());
        }
    }
}

/// Which origins CORS accepts.
#[derive(Clone, Debug)]
enum Origins {
    Any,
    /// Exact origins, or patterns with one `*` (`https://*.example.com`).
    List(Vec<String>),
}

/// CORS settings, parsed once.
#[derive(Clone, Debug)]
pub struct Cors {
    origins: Origins,
    regex: Option<regex_lite::Regex>,
    allow_headers: Option<HeaderValue>,
    allow_methods: HeaderValue,
    allow_credentials: bool,
    expose_headers: Option<HeaderValue>,
    max_age: u64,
    preflight_status: StatusCode,
}

impl Cors {
    pub fn new(c: &CorsConfig) -> Result<Cors, String> {
        let list: Vec<String> = c
            .allowed_origin
            .split(',')
            .map(|o| o.trim().to_ascii_lowercase())
            .filter(|o| !o.is_empty())
            .collect();
        let origins = if list.iter().any(|o| o == "*") {
            Origins::Any
        } else {
            Origins::List(list)
        };
        let regex = match &c.allowed_origin_regex {
            Some(r) if !r.is_empty() => Some(regex_lite::Regex::new(r).map_err(|e| {
                format!("http.headers.cors.allowed_origin_regex: {r:?} is not a regex: {e}")
            })?),
            _ => None,
        };
        let value = |key: &str, v: &str| -> Result<Option<HeaderValue>, String> {
            if v.trim().is_empty() {
                return Ok(None);
            }
            HeaderValue::from_str(v.trim())
                .map(Some)
                .map_err(|_| format!("http.headers.cors.{key}: {v:?} is not a header value"))
        };
        Ok(Cors {
            origins,
            regex,
            allow_headers: value("allowed_headers", &c.allowed_headers)?,
            // rs/cors (RoadRunner's) defaults to the simple methods.
            allow_methods: value("allowed_methods", &c.allowed_methods)?
                .unwrap_or(HeaderValue::from_static("GET, POST, HEAD")),
            allow_credentials: c.allow_credentials,
            expose_headers: value("exposed_headers", &c.exposed_headers)?,
            max_age: c.max_age,
            preflight_status: StatusCode::from_u16(c.options_success_status)
                .unwrap_or(StatusCode::OK),
        })
    }

    fn allows(&self, origin: &str) -> bool {
        let origin = origin.to_ascii_lowercase();
        let listed = match &self.origins {
            Origins::Any => true,
            Origins::List(list) => list.iter().any(|pattern| match pattern.split_once('*') {
                None => *pattern == origin,
                Some((prefix, suffix)) => {
                    origin.len() >= prefix.len() + suffix.len()
                        && origin.starts_with(prefix)
                        && origin.ends_with(suffix)
                }
            }),
        };
        listed || self.regex.as_ref().is_some_and(|r| r.is_match(&origin))
    }

    /// The `Access-Control-Allow-Origin` value for `origin`: `*` when any origin is
    /// allowed and no credentials are involved, else the origin itself.
    fn allow_origin(&self, origin: &HeaderValue) -> HeaderValue {
        if matches!(self.origins, Origins::Any) && !self.allow_credentials {
            HeaderValue::from_static("*")
        } else {
            origin.clone()
        }
    }

    /// Answers a preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`)
    /// without PHP: `Some((status, headers))`. Preflights from origins not allowed get
    /// the status without any CORS header, which the browser reads as a refusal.
    pub fn preflight(
        &self,
        method: &Method,
        headers: &HeaderMap,
    ) -> Option<(StatusCode, HeaderMap)> {
        if method != Method::OPTIONS || !headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
        {
            return None;
        }
        let origin = headers.get(header::ORIGIN)?;
        let mut out = HeaderMap::new();
        out.append(header::VARY, HeaderValue::from_static("Origin"));
        out.append(
            header::VARY,
            HeaderValue::from_static("Access-Control-Request-Method"),
        );
        out.append(
            header::VARY,
            HeaderValue::from_static("Access-Control-Request-Headers"),
        );
        if origin.to_str().is_ok_and(|o| self.allows(o)) {
            out.insert(
                header::ACCESS_CONTROL_ALLOW_ORIGIN,
                self.allow_origin(origin),
            );
            out.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                self.allow_methods.clone(),
            );
            match (
                &self.allow_headers,
                headers.get(header::ACCESS_CONTROL_REQUEST_HEADERS),
            ) {
                (Some(allowed), _) => {
                    out.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, allowed.clone());
                }
                (None, Some(requested)) if matches!(self.origins, Origins::Any) => {
                    out.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, requested.clone());
                }
                _ => {}
            }
            if self.allow_credentials {
                out.insert(
                    header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                    HeaderValue::from_static("true"),
                );
            }
            if self.max_age > 0 {
                out.insert(
                    header::ACCESS_CONTROL_MAX_AGE,
                    HeaderValue::from(self.max_age),
                );
            }
        }
        Some((self.preflight_status, out))
    }

    /// Adds the CORS headers of an actual (non-preflight) response.
    pub fn apply(&self, origin: Option<&HeaderValue>, response: &mut HeaderMap) {
        let Some(origin) = origin else { return };
        response.append(header::VARY, HeaderValue::from_static("Origin"));
        if !origin.to_str().is_ok_and(|o| self.allows(o)) {
            return;
        }
        response.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            self.allow_origin(origin),
        );
        if self.allow_credentials {
            response.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
        if let Some(expose) = &self.expose_headers {
            response.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, expose.clone());
        }
    }
}

/// The whole `headers` middleware.
#[derive(Clone, Debug, Default)]
pub struct HeaderRules {
    pub request: FixedHeaders,
    pub response: FixedHeaders,
    pub cors: Option<Cors>,
}

impl HeaderRules {
    pub fn new(c: &HeadersConfig) -> Result<HeaderRules, String> {
        Ok(HeaderRules {
            request: FixedHeaders::new(&c.request, "http.headers.request")?,
            response: FixedHeaders::new(&c.response, "http.headers.response")?,
            cors: c.cors.as_ref().map(Cors::new).transpose()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cors(origin: &str, credentials: bool) -> Cors {
        Cors::new(&CorsConfig {
            allowed_origin: origin.into(),
            allowed_origin_regex: None,
            allowed_headers: "Content-Type, X-Token".into(),
            allowed_methods: "GET, POST, PUT".into(),
            allow_credentials: credentials,
            exposed_headers: "X-Request-Id".into(),
            max_age: 600,
            options_success_status: 204,
            debug: false,
        })
        .unwrap()
    }

    fn preflight_headers(origin: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ORIGIN, HeaderValue::from_str(origin).unwrap());
        h.insert(
            header::ACCESS_CONTROL_REQUEST_METHOD,
            HeaderValue::from_static("PUT"),
        );
        h
    }

    #[test]
    fn preflight_from_an_allowed_origin_is_answered_fully() {
        let c = cors("https://app.example.com, https://*.example.org", true);
        let (status, h) = c
            .preflight(
                &Method::OPTIONS,
                &preflight_headers("https://app.example.com"),
            )
            .unwrap();
        assert_eq!(status, 204);
        assert_eq!(
            h[header::ACCESS_CONTROL_ALLOW_ORIGIN],
            "https://app.example.com"
        );
        assert_eq!(h[header::ACCESS_CONTROL_ALLOW_METHODS], "GET, POST, PUT");
        assert_eq!(
            h[header::ACCESS_CONTROL_ALLOW_HEADERS],
            "Content-Type, X-Token"
        );
        assert_eq!(h[header::ACCESS_CONTROL_ALLOW_CREDENTIALS], "true");
        assert_eq!(h[header::ACCESS_CONTROL_MAX_AGE], "600");
        let (_, h) = c
            .preflight(
                &Method::OPTIONS,
                &preflight_headers("https://shop.example.org"),
            )
            .unwrap();
        assert_eq!(
            h[header::ACCESS_CONTROL_ALLOW_ORIGIN],
            "https://shop.example.org"
        );
    }

    #[test]
    fn preflight_from_another_origin_gets_no_cors_headers() {
        let c = cors("https://app.example.com", false);
        let (_, h) = c
            .preflight(
                &Method::OPTIONS,
                &preflight_headers("https://evil.example.net"),
            )
            .unwrap();
        assert!(!h.contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN));
        // A wildcard pattern does not match a look-alike suffix without the dot.
        let c = cors("https://*.example.org", false);
        let (_, h) = c
            .preflight(
                &Method::OPTIONS,
                &preflight_headers("https://evilexample.org"),
            )
            .unwrap();
        assert!(!h.contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN));
    }

    #[test]
    fn plain_options_and_other_methods_are_not_preflights() {
        let c = cors("*", false);
        assert!(
            c.preflight(&Method::GET, &preflight_headers("https://a.b"))
                .is_none()
        );
        let mut h = HeaderMap::new();
        h.insert(header::ORIGIN, HeaderValue::from_static("https://a.b"));
        assert!(c.preflight(&Method::OPTIONS, &h).is_none());
    }

    #[test]
    fn actual_responses_get_origin_credentials_and_exposed_headers() {
        let c = cors("*", false);
        let mut out = HeaderMap::new();
        c.apply(Some(&HeaderValue::from_static("https://a.b")), &mut out);
        assert_eq!(out[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
        assert_eq!(out[header::ACCESS_CONTROL_EXPOSE_HEADERS], "X-Request-Id");
        // With credentials a wildcard must echo the origin.
        let c = cors("*", true);
        let mut out = HeaderMap::new();
        c.apply(Some(&HeaderValue::from_static("https://a.b")), &mut out);
        assert_eq!(out[header::ACCESS_CONTROL_ALLOW_ORIGIN], "https://a.b");
        // No Origin, no CORS.
        let mut out = HeaderMap::new();
        c.apply(None, &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn regex_origins() {
        let mut cfg = CorsConfig {
            allowed_origin: String::new(),
            allowed_origin_regex: Some(r"^https://[a-z]+\.test$".into()),
            allowed_headers: String::new(),
            allowed_methods: String::new(),
            allow_credentials: false,
            exposed_headers: String::new(),
            max_age: 0,
            options_success_status: 200,
            debug: false,
        };
        let c = Cors::new(&cfg).unwrap();
        assert!(c.allows("https://abc.test"));
        assert!(!c.allows("https://abc.test.evil"));
        cfg.allowed_origin_regex = Some("(".into());
        assert!(
            Cors::new(&cfg)
                .unwrap_err()
                .contains("allowed_origin_regex")
        );
    }

    #[test]
    fn fixed_headers_replace_and_refuse_bad_values() {
        let f =
            FixedHeaders::new(&[("X-Env".into(), "prod".into())], "http.headers.response").unwrap();
        let mut h = HeaderMap::new();
        h.insert("x-env", HeaderValue::from_static("dev"));
        f.apply(&mut h);
        assert_eq!(h["x-env"], "prod");
        let err = FixedHeaders::new(
            &[("X-Bad".into(), "a\r\nb".into())],
            "http.headers.response",
        )
        .unwrap_err();
        assert!(err.contains("http.headers.response.X-Bad"), "{err}");
    }
}
