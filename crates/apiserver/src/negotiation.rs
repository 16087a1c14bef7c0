//! Content negotiation of responses (`Accept`) and request bodies (`Content-Type`), as
//! upstream's `runtime/serializer` and `endpoints/handlers/negotiation`: JSON, YAML,
//! protobuf, `as=Table` and `as=PartialObjectMetadata(List)` in meta.k8s.io v1/v1beta1.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Json,
    Yaml,
    /// A meta.k8s.io Table of the given version.
    Table(&'static str),
    /// PartialObjectMetadata (or its List) of the given version.
    Metadata(&'static str),
}

struct MediaRange<'a> {
    typ: &'a str,
    params: Vec<(&'a str, &'a str)>,
}

fn parse_ranges(accept: &str) -> Vec<MediaRange<'_>> {
    accept
        .split(',')
        .map(|r| {
            let mut it = r.split(';').map(str::trim);
            let typ = it.next().unwrap_or("");
            let params = it
                .filter_map(|p| p.split_once('='))
                .map(|(k, v)| (k.trim(), v.trim()))
                .collect();
            MediaRange { typ, params }
        })
        .collect()
}

/// Chooses the response form and whether it is encoded as protobuf
/// (`application/vnd.kubernetes.protobuf`), which `protobuf` says the resource has (the
/// built-in kinds; PartialObjectMetadata always). Protobuf answers are plain objects or
/// PartialObjectMetadata, never Tables (upstream's Table has no protobuf form either).
/// `None`: nothing acceptable (406).
pub fn negotiate(accept: Option<&str>, protobuf: bool) -> Option<(Output, bool)> {
    let accept = match accept {
        None | Some("") => return Some((Output::Json, false)),
        Some(a) => a,
    };
    for range in parse_ranges(accept) {
        let get = |k: &str| {
            range
                .params
                .iter()
                .find(|(pk, _)| *pk == k)
                .map(|(_, v)| *v)
        };
        let json_like = matches!(range.typ, "application/json" | "*/*" | "application/*");
        let is_protobuf = range.typ == PROTOBUF;
        match get("as") {
            Some("Table") if json_like && get("g") == Some("meta.k8s.io") => match get("v") {
                Some("v1") => return Some((Output::Table("v1"), false)),
                Some("v1beta1") => return Some((Output::Table("v1beta1"), false)),
                _ => continue,
            },
            Some("PartialObjectMetadata" | "PartialObjectMetadataList")
                if (json_like || is_protobuf) && get("g") == Some("meta.k8s.io") =>
            {
                match get("v") {
                    Some("v1") => return Some((Output::Metadata("v1"), is_protobuf)),
                    Some("v1beta1") => return Some((Output::Metadata("v1beta1"), is_protobuf)),
                    _ => continue,
                }
            }
            Some(_) => continue,
            None => {}
        }
        match range.typ {
            "application/json" | "*/*" | "application/*" | "application/json;stream=watch" => {
                return Some((Output::Json, false))
            }
            "application/yaml" => return Some((Output::Yaml, false)),
            PROTOBUF if protobuf => return Some((Output::Json, true)),
            _ => continue,
        }
    }
    None
}

/// Kubernetes' protobuf media type.
pub const PROTOBUF: &str = "application/vnd.kubernetes.protobuf";

/// Request body formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    Json,
    Yaml,
    Protobuf,
}

pub fn input(content_type: Option<&str>) -> Option<Input> {
    let t = content_type
        .unwrap_or("application/json")
        .split(';')
        .next()
        .unwrap_or("")
        .trim();
    match t {
        "application/json" | "" => Some(Input::Json),
        "application/yaml" => Some(Input::Yaml),
        "application/vnd.kubernetes.protobuf" => Some(Input::Protobuf),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn output(accept: Option<&str>) -> Option<Output> {
        negotiate(accept, false).map(|(out, _)| out)
    }

    #[test]
    fn kubectl_accept_headers() {
        let get = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert_eq!(output(Some(get)), Some(Output::Table("v1")));
        assert_eq!(output(Some("application/json, */*")), Some(Output::Json));
        assert_eq!(output(None), Some(Output::Json));
        assert_eq!(
            output(Some(
                "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"
            )),
            Some(Output::Metadata("v1"))
        );
        assert_eq!(output(Some("application/vnd.kubernetes.protobuf")), None);
        assert_eq!(
            output(Some(
                "application/vnd.kubernetes.protobuf, application/json"
            )),
            Some(Output::Json)
        );
        assert_eq!(
            output(Some("application/json;as=Table;g=meta.k8s.io;v=v9")),
            None
        );
    }

    #[test]
    fn protobuf_when_the_resource_has_it() {
        let typed = "application/vnd.kubernetes.protobuf, */*";
        assert_eq!(negotiate(Some(typed), true), Some((Output::Json, true)));
        // Custom resources: the next range.
        assert_eq!(negotiate(Some(typed), false), Some((Output::Json, false)));
        assert_eq!(
            negotiate(Some("application/vnd.kubernetes.protobuf"), false),
            None
        );
        let metadata = "application/vnd.kubernetes.protobuf;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json";
        assert_eq!(
            negotiate(Some(metadata), false),
            Some((Output::Metadata("v1"), true))
        );
        assert_eq!(
            negotiate(
                Some("application/vnd.kubernetes.protobuf;as=Table;g=meta.k8s.io;v=v1, application/json"),
                true
            ),
            Some((Output::Json, false))
        );
        assert_eq!(
            negotiate(
                Some("application/json, application/vnd.kubernetes.protobuf"),
                true
            ),
            Some((Output::Json, false))
        );
    }
}
