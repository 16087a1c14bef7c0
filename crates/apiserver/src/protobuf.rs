//! Protobuf responses (`application/vnd.kubernetes.protobuf`), as upstream's protobuf
//! serializer: an answer negotiated as protobuf is the JSON answer re-encoded through the
//! built-in kinds' message layouts (`ferrokube_api::protobuf::encode`). Watch streams
//! frame their events themselves (`handlers::watch`).

use serde_json::Value;

use crate::negotiation::PROTOBUF;

/// Re-encodes a whole JSON response (an object or a `Status`) as protobuf. Streams,
/// non-JSON bodies and the rare body without a protobuf form pass through as JSON.
pub fn response_as_protobuf(resp: crate::body::Response) -> crate::body::Response {
    crate::body::reencode_json(resp, PROTOBUF, |bytes| {
        let encoded = serde_json::from_slice::<Value>(bytes)
            .map_err(|e| e.to_string())
            .and_then(|v| ferrokube_api::protobuf::encode_object(&v).map_err(|e| e.0));
        encoded
            .map_err(|e| tracing::debug!("answering in JSON: no protobuf form: {e}"))
            .ok()
    })
}
