//! Content negotiation of responses (`Accept`) and request bodies (`Content-Type`), as
//! upstream's `runtime/serializer` and `endpoints/handlers/negotiation`: JSON, YAML,
//! `as=Table` and `as=PartialObjectMetadata(List)` in meta.k8s.io v1/v1beta1.

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

/// Chooses the response form. `None`: nothing acceptable (406).
pub fn output(accept: Option<&str>) -> Option<Output> {
    let accept = match accept {
        None | Some("") => return Some(Output::Json),
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
        match get("as") {
            Some("Table") if json_like && get("g") == Some("meta.k8s.io") => match get("v") {
                Some("v1") => return Some(Output::Table("v1")),
                Some("v1beta1") => return Some(Output::Table("v1beta1")),
                _ => continue,
            },
            Some("PartialObjectMetadata" | "PartialObjectMetadataList")
                if json_like && get("g") == Some("meta.k8s.io") =>
            {
                match get("v") {
                    Some("v1") => return Some(Output::Metadata("v1")),
                    Some("v1beta1") => return Some(Output::Metadata("v1beta1")),
                    _ => continue,
                }
            }
            Some(_) => continue,
            None => {}
        }
        match range.typ {
            "application/json" | "*/*" | "application/*" | "application/json;stream=watch" => {
                return Some(Output::Json)
            }
            "application/yaml" => return Some(Output::Yaml),
            _ => continue,
        }
    }
    None
}

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
}
