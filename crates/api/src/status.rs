//! `metav1.Status`: every API error, with upstream's reasons, codes and message shapes
//! (`k8s.io/apimachinery/pkg/api/errors`).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusCause {
    #[serde(rename = "reason", skip_serializing_if = "String::is_empty", default)]
    pub cause_type: String,
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub message: String,
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub field: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusDetails {
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub group: String,
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub kind: String,
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub uid: String,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub causes: Vec<StatusCause>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub retry_after_seconds: Option<u32>,
}

/// A `metav1.Status` with `status: Failure` (or Success for some deletes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    pub kind: String,
    pub api_version: String,
    pub metadata: serde_json::Map<String, serde_json::Value>,
    pub status: String,
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub message: String,
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub details: Option<StatusDetails>,
    pub code: u16,
}

/// What a status error is about: (group, resource-or-kind, name).
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub group: &'a str,
    /// The plural resource for NotFound/AlreadyExists/Conflict, the Kind for Invalid.
    pub resource: &'a str,
    pub name: &'a str,
}

impl Subject<'_> {
    fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.resource.to_string()
        } else {
            format!("{}.{}", self.resource, self.group)
        }
    }
    fn details(&self) -> StatusDetails {
        StatusDetails {
            name: self.name.into(),
            group: self.group.into(),
            kind: self.resource.into(),
            ..Default::default()
        }
    }
}

impl Status {
    pub fn failure(code: u16, reason: &str, message: impl Into<String>) -> Status {
        Status {
            kind: "Status".into(),
            api_version: "v1".into(),
            metadata: Default::default(),
            status: "Failure".into(),
            message: message.into(),
            reason: reason.into(),
            details: None,
            code,
        }
    }

    pub fn success() -> Status {
        Status {
            status: "Success".into(),
            ..Status::failure(200, "", "")
        }
    }

    pub fn with_details(mut self, details: StatusDetails) -> Status {
        self.details = Some(details);
        self
    }

    pub fn not_found(s: Subject<'_>) -> Status {
        Status::failure(
            404,
            "NotFound",
            format!("{} \"{}\" not found", s.qualified(), s.name),
        )
        .with_details(s.details())
    }

    pub fn already_exists(s: Subject<'_>) -> Status {
        Status::failure(
            409,
            "AlreadyExists",
            format!("{} \"{}\" already exists", s.qualified(), s.name),
        )
        .with_details(s.details())
    }

    /// The optimistic-concurrency conflict (a stale resourceVersion).
    pub fn conflict(s: Subject<'_>, why: &str) -> Status {
        Status::failure(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{}\": {why}",
                s.qualified(),
                s.name
            ),
        )
        .with_details(s.details())
    }

    pub const MODIFIED: &'static str =
        "the object has been modified; please apply your changes to the latest version and try again";

    /// 422 with field causes; `s.resource` is the Kind here, as upstream's NewInvalid.
    pub fn invalid(s: Subject<'_>, causes: Vec<StatusCause>) -> Status {
        let summary = match causes.as_slice() {
            [] => String::new(),
            [one] => format!(": {}", cause_text(one)),
            many => format!(
                ": [{}]",
                many.iter().map(cause_text).collect::<Vec<_>>().join(", ")
            ),
        };
        let message = format!("{} \"{}\" is invalid{summary}", s.qualified(), s.name);
        Status::failure(422, "Invalid", message).with_details(StatusDetails {
            causes,
            ..s.details()
        })
    }

    pub fn bad_request(message: impl Into<String>) -> Status {
        Status::failure(400, "BadRequest", message)
    }

    pub fn method_not_allowed(s: Subject<'_>, action: &str) -> Status {
        Status::failure(
            405,
            "MethodNotAllowed",
            format!(
                "{action} is not supported on resources of kind \"{}\"",
                s.qualified()
            ),
        )
        .with_details(s.details())
    }

    pub fn gone(message: impl Into<String>) -> Status {
        Status::failure(410, "Expired", message)
    }

    pub fn too_large(limit: usize) -> Status {
        Status::failure(
            413,
            "RequestEntityTooLarge",
            format!("Request entity too large: limit is {limit}"),
        )
    }

    pub fn unsupported_media_type(content_type: &str) -> Status {
        Status::failure(415, "UnsupportedMediaType", format!("the body of the request was in an unknown format - accepted media types include: application/json, application/yaml; got {content_type:?}"))
    }

    pub fn not_acceptable(accept: &str) -> Status {
        Status::failure(406, "NotAcceptable", format!("only the following media types are accepted: application/json, application/yaml, application/json;stream=watch; got {accept:?}"))
    }

    pub fn forbidden(s: Subject<'_>, why: &str) -> Status {
        Status::failure(
            403,
            "Forbidden",
            format!("{} \"{}\" is forbidden: {why}", s.qualified(), s.name),
        )
        .with_details(s.details())
    }

    pub fn internal(message: impl std::fmt::Display) -> Status {
        Status::failure(
            500,
            "InternalError",
            format!("Internal error occurred: {message}"),
        )
    }

    pub fn unavailable(message: impl Into<String>) -> Status {
        Status::failure(503, "ServiceUnavailable", message)
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_else(|_| {
            b"{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"status\":\"Failure\",\"code\":500}"
                .to_vec()
        })
    }
}

/// `field: Invalid value: "x": why`, as upstream's field.Error.Error().
fn cause_text(c: &StatusCause) -> String {
    if c.field.is_empty() {
        c.message.clone()
    } else {
        format!("{}: {}", c.field, c.message)
    }
}

/// Builders for field errors with upstream's wording (`field.Invalid`, `field.Required`, …).
pub mod field {
    use super::StatusCause;

    fn cause(kind: &str, field: &str, message: String) -> StatusCause {
        StatusCause {
            cause_type: kind.into(),
            message,
            field: field.into(),
        }
    }
    pub fn invalid(field: &str, value: &serde_json::Value, why: &str) -> StatusCause {
        let shown = match value {
            serde_json::Value::String(s) => format!("{s:?}"),
            other => other.to_string(),
        };
        cause(
            "FieldValueInvalid",
            field,
            format!("Invalid value: {shown}: {why}"),
        )
    }
    pub fn required(field: &str, why: &str) -> StatusCause {
        let detail = if why.is_empty() {
            "Required value".to_string()
        } else {
            format!("Required value: {why}")
        };
        cause("FieldValueRequired", field, detail)
    }
    pub fn forbidden(field: &str, why: &str) -> StatusCause {
        cause("FieldValueForbidden", field, format!("Forbidden: {why}"))
    }
    fn shown(value: &serde_json::Value) -> String {
        match value {
            serde_json::Value::String(s) => format!("{s:?}"),
            other => other.to_string(),
        }
    }
    /// `field.TypeInvalid`.
    pub fn type_invalid(field: &str, value: &serde_json::Value, why: &str) -> StatusCause {
        cause(
            "FieldValueTypeInvalid",
            field,
            format!("Invalid value: {}: {why}", shown(value)),
        )
    }
    /// `field.NotSupported`.
    pub fn not_supported(field: &str, value: &serde_json::Value, valid: &[String]) -> StatusCause {
        let mut message = format!("Unsupported value: {}", shown(value));
        if !valid.is_empty() {
            message.push_str(": supported values: ");
            message.push_str(&valid.join(", "));
        }
        cause("FieldValueNotSupported", field, message)
    }
    /// `field.TooLong` (a string over its maxLength).
    pub fn too_long(field: &str, max: u64) -> StatusCause {
        cause(
            "FieldValueTooLong",
            field,
            format!("Too long: may not be more than {max} bytes"),
        )
    }
    /// `field.TooMany` (a list or map over its maximum size).
    pub fn too_many(field: &str, actual: usize, max: u64) -> StatusCause {
        cause(
            "FieldValueTooMany",
            field,
            format!("Too many: {actual}: must have at most {max} items"),
        )
    }
    /// `field.Duplicate`.
    pub fn duplicate(field: &str, value: &serde_json::Value) -> StatusCause {
        cause(
            "FieldValueDuplicate",
            field,
            format!("Duplicate value: {}", shown(value)),
        )
    }
    pub fn unknown_field(field: &str) -> StatusCause {
        cause("FieldValueInvalid", field, "unknown field".to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_match_upstream() {
        let s = Subject {
            group: "",
            resource: "configmaps",
            name: "x",
        };
        assert_eq!(Status::not_found(s).message, "configmaps \"x\" not found");
        let d = Subject {
            group: "apps",
            resource: "deployments",
            name: "web",
        };
        assert_eq!(
            Status::already_exists(d).message,
            "deployments.apps \"web\" already exists"
        );
        let inv = Status::invalid(
            Subject {
                group: "",
                resource: "ConfigMap",
                name: "Bad",
            },
            vec![field::invalid(
                "metadata.name",
                &serde_json::json!("Bad"),
                "a lowercase RFC 1123 subdomain",
            )],
        );
        assert_eq!(inv.code, 422);
        assert_eq!(inv.message, "ConfigMap \"Bad\" is invalid: metadata.name: Invalid value: \"Bad\": a lowercase RFC 1123 subdomain");
        let json: serde_json::Value = serde_json::from_slice(&inv.to_json()).unwrap();
        assert_eq!(json["details"]["causes"][0]["reason"], "FieldValueInvalid");
        assert_eq!(json["details"]["kind"], "ConfigMap");
    }
}
