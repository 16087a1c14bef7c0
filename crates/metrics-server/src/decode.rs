//! The kubelet's `/metrics/resource` (Prometheus text format 0.0.4) into metric points:
//! upstream's `pkg/scraper/client/resource/decode.go`.
//!
//! Read: `node_cpu_usage_seconds_total`, `node_memory_working_set_bytes`, and per
//! container (`container`, `namespace`, `pod` labels, in any order)
//! `container_cpu_usage_seconds_total`, `container_memory_working_set_bytes`,
//! `container_start_time_seconds`. A sample's timestamp (milliseconds) is the
//! point's time; without one, the scrape time. Comments, other metrics, NaN/±Inf or
//! negative values and malformed lines are skipped one by one (upstream's parser
//! rejects the whole response at the first malformed line).
//!
//! The node is reported when both its CPU and memory were read; a pod only when every
//! container that appears has both (upstream drops incomplete pods rather than
//! under-report them).

use std::collections::BTreeMap;

use crate::storage::{MetricsPoint, PodRef};

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample<'a> {
    /// Metric name.
    pub name: &'a str,
    /// Labels in the order written, values unescaped.
    pub labels: Vec<(&'a str, String)>,
    /// The value (may be NaN or infinite).
    pub value: f64,
    /// Milliseconds since the epoch, when the line has one.
    pub timestamp_ms: Option<i64>,
}

impl Sample<'_> {
    /// The value of label `name`.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }
}

fn is_name_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c == b':'
}

fn is_name_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b':'
}

fn skip_blanks(bytes: &[u8], mut i: usize) -> usize {
    while i < bytes.len() && (bytes[i] == b' ' || bytes[i] == b'\t') {
        i += 1;
    }
    i
}

/// Parses one line of the text format; `None` for blank lines, comments and anything
/// malformed.
pub fn parse_line(line: &str) -> Option<Sample<'_>> {
    let line = line.trim();
    let bytes = line.as_bytes();
    if bytes.is_empty() || bytes[0] == b'#' || !is_name_start(bytes[0]) {
        return None;
    }
    let mut i = 1;
    while i < bytes.len() && is_name_char(bytes[i]) {
        i += 1;
    }
    let name = &line[..i];
    let mut labels = Vec::new();
    i = skip_blanks(bytes, i);
    if bytes.get(i) == Some(&b'{') {
        i += 1;
        loop {
            i = skip_blanks(bytes, i);
            match bytes.get(i)? {
                b'}' => {
                    i += 1;
                    break;
                }
                c if is_name_start(*c) && *c != b':' => {}
                _ => return None,
            }
            let start = i;
            while i < bytes.len() && is_name_char(bytes[i]) && bytes[i] != b':' {
                i += 1;
            }
            let label = &line[start..i];
            i = skip_blanks(bytes, i);
            if bytes.get(i) != Some(&b'=') {
                return None;
            }
            i = skip_blanks(bytes, i + 1);
            if bytes.get(i) != Some(&b'"') {
                return None;
            }
            i += 1;
            let mut value = String::new();
            let mut chars = line[i..].char_indices();
            let end = loop {
                let (at, c) = chars.next()?;
                match c {
                    '"' => break i + at + 1,
                    '\\' => match chars.next()?.1 {
                        'n' => value.push('\n'),
                        '\\' => value.push('\\'),
                        '"' => value.push('"'),
                        // Unknown escapes are kept verbatim, as Prometheus does.
                        other => {
                            value.push('\\');
                            value.push(other);
                        }
                    },
                    c => value.push(c),
                }
            };
            labels.push((label, value));
            i = skip_blanks(bytes, end);
            match bytes.get(i)? {
                b',' => i += 1,
                b'}' => {}
                _ => return None,
            }
        }
    }
    // A value must be separated from a bare name by a blank.
    if labels.is_empty() && i == name.len() && i < bytes.len() && !matches!(bytes[i], b' ' | b'\t')
    {
        return None;
    }
    let mut rest = line[i..].split_ascii_whitespace();
    let value = parse_value(rest.next()?)?;
    let timestamp_ms = match rest.next() {
        Some(t) => Some(t.parse::<i64>().ok()?),
        None => None,
    };
    if rest.next().is_some() {
        return None;
    }
    Some(Sample {
        name,
        labels,
        value,
        timestamp_ms,
    })
}

/// Go's `ParseFloat` as the text format uses it (`NaN`, `+Inf`, `-Inf`, decimals,
/// exponents).
fn parse_value(s: &str) -> Option<f64> {
    match s {
        "NaN" => Some(f64::NAN),
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        _ if s
            .bytes()
            .all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'+' | b'-')) =>
        {
            s.parse().ok()
        }
        _ => None,
    }
}

/// What one kubelet reported.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeBatch {
    /// The node's point, when complete.
    pub node: Option<MetricsPoint>,
    /// Complete pods: container name → point.
    pub pods: BTreeMap<PodRef, BTreeMap<String, MetricsPoint>>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Partial {
    start_ns: i64,
    timestamp_ns: i64,
    cpu_ns: Option<u64>,
    memory: Option<u64>,
}

impl Partial {
    fn complete(&self) -> Option<MetricsPoint> {
        Some(MetricsPoint {
            start_time_ns: self.start_ns,
            timestamp_ns: self.timestamp_ns,
            cpu_ns: self.cpu_ns?,
            memory_bytes: self.memory?,
        })
    }
}

/// Decodes a `/metrics/resource` body; `scrape_time_ns` stands in for missing
/// timestamps.
pub fn decode(body: &str, scrape_time_ns: i64) -> NodeBatch {
    let mut node = Partial::default();
    let mut pods: BTreeMap<PodRef, BTreeMap<String, Partial>> = BTreeMap::new();
    for line in body.lines() {
        let Some(sample) = parse_line(line) else {
            continue;
        };
        if !sample.value.is_finite() || sample.value < 0.0 {
            continue;
        }
        let timestamp_ns = match sample.timestamp_ms {
            Some(ms) => match ms.checked_mul(1_000_000) {
                Some(ns) => ns,
                None => continue,
            },
            None => scrape_time_ns,
        };
        // `as` saturates: an absurd value cannot wrap.
        let nanos = (sample.value * 1e9) as u64;
        match sample.name {
            "node_cpu_usage_seconds_total" => {
                node.cpu_ns = Some(nanos);
                node.timestamp_ns = timestamp_ns;
            }
            "node_memory_working_set_bytes" => {
                node.memory = Some(sample.value as u64);
                node.timestamp_ns = timestamp_ns;
            }
            "container_cpu_usage_seconds_total"
            | "container_memory_working_set_bytes"
            | "container_start_time_seconds" => {
                let (Some(container), Some(namespace), Some(pod)) = (
                    sample.label("container"),
                    sample.label("namespace"),
                    sample.label("pod"),
                ) else {
                    continue;
                };
                if container.is_empty() || namespace.is_empty() || pod.is_empty() {
                    continue;
                }
                let point = pods
                    .entry(PodRef::new(namespace, pod))
                    .or_default()
                    .entry(container.to_string())
                    .or_default();
                match sample.name {
                    "container_cpu_usage_seconds_total" => {
                        point.cpu_ns = Some(nanos);
                        point.timestamp_ns = timestamp_ns;
                    }
                    "container_memory_working_set_bytes" => {
                        point.memory = Some(sample.value as u64);
                        point.timestamp_ns = timestamp_ns;
                    }
                    _ => point.start_ns = i64::try_from(nanos).unwrap_or(i64::MAX),
                }
            }
            _ => {}
        }
    }
    let node = node.complete();
    let pods = pods
        .into_iter()
        .filter_map(|(pod, containers)| {
            let mut complete = BTreeMap::new();
            for (name, partial) in containers {
                if partial.cpu_ns.is_none() && partial.memory.is_none() {
                    // Only a start time: nothing measured, not counted.
                    continue;
                }
                match partial.complete() {
                    Some(point) => {
                        complete.insert(name, point);
                    }
                    None => {
                        tracing::debug!(pod = %pod, container = %name, "incomplete container metrics: pod skipped");
                        return None;
                    }
                }
            }
            (!complete.is_empty()).then_some((pod, complete))
        })
        .collect();
    NodeBatch { node, pods }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines() {
        let s = parse_line(r#"container_cpu_usage_seconds_total{pod="p",container="c",namespace="ns"} 1.5 1700000000000"#).unwrap();
        assert_eq!(s.name, "container_cpu_usage_seconds_total");
        assert_eq!(s.label("namespace"), Some("ns"));
        assert_eq!(s.label("container"), Some("c"));
        assert_eq!(s.value, 1.5);
        assert_eq!(s.timestamp_ms, Some(1_700_000_000_000));

        let s = parse_line("node_memory_working_set_bytes 1.2e+09").unwrap();
        assert!(s.labels.is_empty());
        assert_eq!(s.value, 1.2e9);
        assert_eq!(s.timestamp_ms, None);

        let s = parse_line(r#"m { a = "x\"y\\z\n" , b="{},= }" , } 3 -5"#).unwrap();
        assert_eq!(s.label("a"), Some("x\"y\\z\n"));
        assert_eq!(s.label("b"), Some("{},= }"));
        assert_eq!(s.timestamp_ms, Some(-5));

        assert!(parse_line("m NaN").unwrap().value.is_nan());
        assert_eq!(parse_line("m +Inf").unwrap().value, f64::INFINITY);
        assert_eq!(parse_line("m{} -Inf").unwrap().value, f64::NEG_INFINITY);

        for bad in [
            "",
            "   ",
            "# HELP m help",
            "# TYPE m counter",
            "m",
            "m{",
            "m{a=\"x\"",
            "m{a=x} 1",
            "m{a=\"x\" b=\"y\"} 1",
            "m{a=\"unterminated} 1",
            "m 1 2 3",
            "m one",
            "m 1 1.5",
            "m{9a=\"x\"} 1",
            "9m 1",
            "m{a=\"x\"}",
            "m 0x10",
            "m infinity",
        ] {
            assert_eq!(parse_line(bad), None, "{bad:?}");
        }
    }

    const BODY: &str = r#"# HELP container_cpu_usage_seconds_total [STABLE] Cumulative cpu time
# TYPE container_cpu_usage_seconds_total counter
container_cpu_usage_seconds_total{container="app",namespace="default",pod="web"} 10.5 1700000000000
container_cpu_usage_seconds_total{namespace="default",pod="web",container="side"} 1 1700000000000
container_cpu_usage_seconds_total{container="half",namespace="default",pod="broken"} 2 1700000000000
container_cpu_usage_seconds_total{container="nan",namespace="default",pod="nan"} NaN 1700000000000
container_memory_working_set_bytes{container="app",namespace="default",pod="web"} 4096000 1700000000500
container_memory_working_set_bytes{container="side",namespace="default",pod="web"} 1024 1700000000500
container_memory_working_set_bytes{container="nan",namespace="default",pod="nan"} 5 1700000000500
container_memory_working_set_bytes{namespace="default",pod="nolabel"} 5 1700000000500
container_start_time_seconds{container="app",namespace="default",pod="web"} 1699999000.5 1699999000500
container_start_time_seconds{container="gone",namespace="default",pod="web"} 1699999000 1699999000000
this is garbage {{{
node_cpu_usage_seconds_total 100.000000001
node_memory_working_set_bytes 2147483648 1700000000000
scrape_error 0
"#;

    #[test]
    fn decodes_a_kubelet_response() {
        let b = decode(BODY, 42_000_000_000);
        let node = b.node.unwrap();
        assert_eq!(node.cpu_ns, 100_000_000_001);
        assert_eq!(node.memory_bytes, 2_147_483_648);
        // The last line read sets the time.
        assert_eq!(node.timestamp_ns, 1_700_000_000_000_000_000);
        let web = &b.pods[&PodRef::new("default", "web")];
        assert_eq!(web.len(), 2, "{web:?}");
        let app = web["app"];
        assert_eq!(app.cpu_ns, 10_500_000_000);
        assert_eq!(app.memory_bytes, 4_096_000);
        assert_eq!(app.timestamp_ns, 1_700_000_000_500_000_000);
        assert_eq!(app.start_time_ns, 1_699_999_000_500_000_000);
        assert_eq!(web["side"].start_time_ns, 0);
        // Incomplete containers drop their pod; a NaN is no value.
        assert!(!b.pods.contains_key(&PodRef::new("default", "broken")));
        assert!(!b.pods.contains_key(&PodRef::new("default", "nan")));
        assert!(!b.pods.contains_key(&PodRef::new("default", "nolabel")));
        assert_eq!(b.pods.len(), 1);
    }

    #[test]
    fn missing_timestamps_and_incomplete_nodes() {
        let b = decode(
            "node_cpu_usage_seconds_total 1\nnode_memory_working_set_bytes 2\n",
            7,
        );
        assert_eq!(b.node.unwrap().timestamp_ns, 7);
        assert_eq!(decode("node_cpu_usage_seconds_total 1\n", 7).node, None);
        assert_eq!(decode("", 7), NodeBatch::default());
        assert_eq!(decode("\u{0}\u{ff}garbage\n{}\n", 7), NodeBatch::default());
        // Negative and overflowing timestamps are skipped.
        let b = decode(
            "node_cpu_usage_seconds_total -1\nnode_memory_working_set_bytes 2 99999999999999999\n",
            7,
        );
        assert_eq!(b.node, None);
    }
}
