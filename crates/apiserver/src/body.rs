//! Response bodies: whole buffers, or a stream of chunks fed through a channel (watch),
//! each chunk flushed to the client as it is sent.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use tokio::sync::mpsc;

#[derive(Debug)]
pub enum Body {
    Full(Option<Bytes>),
    Stream(mpsc::Receiver<Bytes>),
}

impl Body {
    pub fn full(b: impl Into<Bytes>) -> Body {
        Body::Full(Some(b.into()))
    }
}

impl HttpBody for Body {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            Body::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            Body::Stream(rx) => rx.poll_recv(cx).map(|c| c.map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, Body::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Body::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            Body::Full(None) => SizeHint::with_exact(0),
            Body::Stream(_) => SizeHint::default(),
        }
    }
}

pub type Response = http::Response<Body>;

/// Re-encodes a whole JSON response (YAML, protobuf) when the client asked for another
/// form: `encode` gets the JSON bytes; streams, non-JSON bodies and bodies `encode`
/// cannot turn (`None`) pass through as they are.
pub fn reencode_json(
    resp: Response,
    content_type: &'static str,
    encode: impl FnOnce(&[u8]) -> Option<Vec<u8>>,
) -> Response {
    let is_json = resp
        .headers()
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|ct| ct.as_bytes().starts_with(b"application/json"));
    if !is_json {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let Body::Full(Some(bytes)) = body else {
        return http::Response::from_parts(parts, body);
    };
    match encode(&bytes) {
        Some(out) => {
            parts.headers.insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static(content_type),
            );
            parts.headers.remove(http::header::CONTENT_LENGTH);
            http::Response::from_parts(parts, Body::full(out))
        }
        None => http::Response::from_parts(parts, Body::Full(Some(bytes))),
    }
}
