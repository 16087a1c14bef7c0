//! Versioned component configuration files (`KubeletConfiguration`,
//! `KubeProxyConfiguration`, …): read, check `kind`/`apiVersion`, and decode field by
//! field first so a type error names its field. Fields the caller does not know are
//! logged and ignored, as upstream's lenient fallback does.

use serde::de::DeserializeOwned;
use serde_json::Value;

/// What is wrong with a configuration file. `file` is how errors name it (`--config
/// /etc/kubernetes/kubelet-config.yaml`, or just the path).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: {source}")]
    Read {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: not YAML or JSON: {message}")]
    Syntax { file: String, message: String },
    #[error("{file}: {message}")]
    Kind { file: String, message: String },
    #[error("{file}: field {field}: {message}")]
    Field {
        file: String,
        field: String,
        message: String,
    },
}

impl ConfigError {
    /// A field's value is invalid (from the caller's own validation).
    pub fn field(file: &str, field: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError::Field {
            file: file.to_string(),
            field: field.into(),
            message: message.into(),
        }
    }
}

/// The document type a file must hold.
#[derive(Debug, Clone, Copy)]
pub struct DocumentType<'a> {
    pub kind: &'a str,
    pub api_version: &'a str,
    /// Every top-level field upstream defines for it (others are warned about).
    pub known: fn(&str) -> bool,
}

/// Reads a file's text.
pub fn read(path: &std::path::Path, file: &str) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        file: file.to_string(),
        source,
    })
}

/// Decodes `text` as a document of type `doc` into `T`.
pub fn decode<T: DeserializeOwned>(
    file: &str,
    text: &str,
    doc: DocumentType<'_>,
) -> Result<T, ConfigError> {
    let value: Value = serde_saphyr::from_str(text).map_err(|e| ConfigError::Syntax {
        file: file.to_string(),
        message: e.to_string(),
    })?;
    let Value::Object(map) = value else {
        return Err(ConfigError::Kind {
            file: file.to_string(),
            message: format!("expected a {} object", doc.kind),
        });
    };
    let kind = map.get("kind").and_then(Value::as_str).unwrap_or_default();
    let api_version = map
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if kind != doc.kind || api_version != doc.api_version {
        return Err(ConfigError::Kind {
            file: file.to_string(),
            message: format!(
                "kind {kind:?} apiVersion {api_version:?}: expected kind {}, apiVersion {}",
                doc.kind, doc.api_version
            ),
        });
    }
    // Field by field first, so a type error names its field.
    for (key, value) in &map {
        let one = Value::Object([(key.clone(), value.clone())].into_iter().collect());
        if let Err(e) = serde_json::from_value::<T>(one) {
            return Err(ConfigError::field(file, key.clone(), e.to_string()));
        }
        if !(doc.known)(key) {
            tracing::warn!(field = %key, %file, kind = doc.kind, "unknown field, ignored");
        }
    }
    serde_json::from_value(Value::Object(map))
        .map_err(|e| ConfigError::field(file, "(document)", e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Doc {
        port: Option<u16>,
    }

    const DOC: DocumentType<'static> = DocumentType {
        kind: "TestConfiguration",
        api_version: "test.config.k8s.io/v1",
        known: |k| matches!(k, "kind" | "apiVersion" | "port"),
    };

    fn decode_doc(text: &str) -> Result<Doc, ConfigError> {
        decode("--config t.yaml", text, DOC)
    }

    #[test]
    fn documents_decode_and_errors_name_file_and_field() {
        let head = "kind: TestConfiguration\napiVersion: test.config.k8s.io/v1\n";
        assert_eq!(
            decode_doc(&format!("{head}port: 80\nextra: 1\n"))
                .unwrap()
                .port,
            Some(80)
        );
        let err = decode_doc(&format!("{head}port: eighty\n"))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("--config t.yaml: field port: "), "{err}");
        let err = decode_doc("kind: Pod\n").unwrap_err().to_string();
        assert!(err.contains("expected kind TestConfiguration"), "{err}");
        let err = decode_doc("[1, 2]").unwrap_err().to_string();
        assert!(err.contains("expected a TestConfiguration object"), "{err}");
        assert!(matches!(decode_doc("{{{"), Err(ConfigError::Syntax { .. })));
    }
}
