//! Static token file authentication (upstream
//! `staging/src/k8s.io/apiserver/pkg/authentication/token/tokenfile/tokenfile.go`):
//! CSV read as Go's `encoding/csv` reads it — `token,user,uid[,"group1,group2"]`, extra
//! columns ignored, records with an empty token skipped, the last of duplicate tokens wins.
//!
//! Tokens are kept only as SHA-256 digests, so a lookup's timing says nothing about the
//! stored tokens.

use std::collections::HashMap;
use std::path::Path;

use crate::config::{read_file, ConfigError};
use crate::user::UserInfo;

/// A CSV syntax error (Go's `csv.ParseError` cases).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CsvError {
    /// `"` inside an unquoted field.
    #[error("parse error on line {line}, column {column}: bare \" in non-quoted-field")]
    BareQuote {
        /// 1-based line.
        line: usize,
        /// 1-based column (bytes).
        column: usize,
    },
    /// A quoted field not closed, or with text after the closing quote.
    #[error(
        "parse error on line {line}, column {column}: extraneous or missing \" in quoted-field"
    )]
    Quote {
        /// 1-based line.
        line: usize,
        /// 1-based column (bytes).
        column: usize,
    },
}

/// Parses CSV as Go's `encoding/csv.Reader` with `FieldsPerRecord = -1`: `,` separates,
/// `"` quotes (`""` escapes one), quoted fields may span lines, `\r\n` counts as `\n`,
/// empty lines are skipped. Returns each record with the line it starts on.
pub fn parse_csv(text: &str) -> Result<Vec<(usize, Vec<String>)>, CsvError> {
    let text = text.replace("\r\n", "\n");
    let bytes = text.as_bytes();
    let mut records = Vec::new();
    let mut pos = 0;
    let mut line = 1;
    while pos < bytes.len() {
        if bytes[pos] == b'\n' {
            // Empty line.
            pos += 1;
            line += 1;
            continue;
        }
        let start_line = line;
        let mut fields = Vec::new();
        let mut line_start = pos;
        loop {
            // One field starting at `pos`.
            if bytes.get(pos) == Some(&b'"') {
                let mut field = Vec::new();
                pos += 1;
                loop {
                    match bytes.get(pos) {
                        None => {
                            return Err(CsvError::Quote {
                                line,
                                column: pos - line_start + 1,
                            })
                        }
                        Some(b'"') => match bytes.get(pos + 1) {
                            Some(b'"') => {
                                field.push(b'"');
                                pos += 2;
                            }
                            Some(b',') | Some(b'\n') | None => {
                                pos += 1;
                                break;
                            }
                            Some(_) => {
                                return Err(CsvError::Quote {
                                    line,
                                    column: pos + 1 - line_start + 1,
                                })
                            }
                        },
                        Some(b'\n') => {
                            field.push(b'\n');
                            pos += 1;
                            line += 1;
                            line_start = pos;
                        }
                        Some(&b) => {
                            field.push(b);
                            pos += 1;
                        }
                    }
                }
                fields.push(String::from_utf8_lossy(&field).into_owned());
            } else {
                let end = bytes[pos..]
                    .iter()
                    .position(|b| *b == b',' || *b == b'\n')
                    .map_or(bytes.len(), |i| pos + i);
                let field = &text[pos..end];
                if let Some(q) = field.find('"') {
                    return Err(CsvError::BareQuote {
                        line,
                        column: pos + q - line_start + 1,
                    });
                }
                fields.push(field.to_string());
                pos = end;
            }
            match bytes.get(pos) {
                Some(b',') => {
                    pos += 1;
                    // A trailing comma yields a last empty field.
                    if matches!(bytes.get(pos), None | Some(b'\n')) {
                        fields.push(String::new());
                        break;
                    }
                }
                _ => break,
            }
        }
        if bytes.get(pos) == Some(&b'\n') {
            pos += 1;
            line += 1;
        }
        records.push((start_line, fields));
    }
    Ok(records)
}

/// The token → user table.
#[derive(Debug, Default)]
pub(crate) struct TokenFile {
    users: HashMap<[u8; 32], UserInfo>,
}

fn digest(token: &str) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

impl TokenFile {
    /// Loads `--token-auth-file`.
    pub(crate) fn load(path: &Path) -> Result<Self, ConfigError> {
        let data = read_file("--token-auth-file", path)?;
        let text = String::from_utf8(data).map_err(|_| ConfigError::TokenFileEncoding {
            path: path.to_path_buf(),
        })?;
        Self::parse(&text).map_err(|e| match e {
            ParseError::Csv(source) => ConfigError::TokenFileCsv {
                path: path.to_path_buf(),
                source,
            },
            ParseError::Columns { line, found } => ConfigError::TokenFileColumns {
                path: path.to_path_buf(),
                line,
                found,
            },
        })
    }

    fn parse(text: &str) -> Result<Self, ParseError> {
        let mut users = HashMap::new();
        for (record_number, (line, record)) in parse_csv(text)
            .map_err(ParseError::Csv)?
            .into_iter()
            .enumerate()
        {
            if record.len() < 3 {
                return Err(ParseError::Columns {
                    line,
                    found: record.len(),
                });
            }
            if record[0].is_empty() {
                tracing::warn!(
                    line,
                    record = record_number + 1,
                    "empty token in token file"
                );
                continue;
            }
            let user = UserInfo {
                name: record[1].clone(),
                uid: record[2].clone(),
                // strings.Split: an empty fourth column is one empty group, as upstream.
                groups: record
                    .get(3)
                    .map(|g| g.split(',').map(str::to_string).collect())
                    .unwrap_or_default(),
                ..Default::default()
            };
            if users.insert(digest(&record[0]), user).is_some() {
                tracing::warn!(
                    line,
                    record = record_number + 1,
                    "duplicate token in token file; the later one wins"
                );
            }
        }
        Ok(TokenFile { users })
    }

    pub(crate) fn authenticate(&self, token: &str) -> Option<UserInfo> {
        self.users.get(&digest(token)).cloned()
    }

    pub(crate) fn len(&self) -> usize {
        self.users.len()
    }
}

#[derive(Debug)]
enum ParseError {
    Csv(CsvError),
    Columns { line: usize, found: usize },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(text: &str) -> Vec<Vec<String>> {
        parse_csv(text)
            .unwrap()
            .into_iter()
            .map(|(_, r)| r)
            .collect()
    }

    #[test]
    fn csv_like_go() {
        assert_eq!(rec("a,b,c\n"), vec![vec!["a", "b", "c"]]);
        assert_eq!(rec("a,b,c"), vec![vec!["a", "b", "c"]]);
        assert_eq!(
            rec("a,\"x,y\",c\r\n\nd,e,f\n"),
            vec![vec!["a", "x,y", "c"], vec!["d", "e", "f"]]
        );
        assert_eq!(
            rec("a,\"say \"\"hi\"\"\",c"),
            vec![vec!["a", "say \"hi\"", "c"]]
        );
        assert_eq!(rec("a,b,\n"), vec![vec!["a", "b", ""]]);
        assert_eq!(
            rec("a,\"multi\nline\",c\nd,e,f"),
            vec![vec!["a", "multi\nline", "c"], vec!["d", "e", "f"]]
        );
        assert_eq!(rec(" a , b ,c"), vec![vec![" a ", " b ", "c"]]);
        assert_eq!(rec(""), Vec::<Vec<String>>::new());
        let lines: Vec<usize> = parse_csv("a\n\"x\ny\"\nb")
            .unwrap()
            .iter()
            .map(|(l, _)| *l)
            .collect();
        assert_eq!(lines, vec![1, 2, 4]);
    }

    #[test]
    fn csv_errors() {
        assert_eq!(
            parse_csv("ok,ok,ok\na,b\"c,d").unwrap_err(),
            CsvError::BareQuote { line: 2, column: 4 }
        );
        assert!(matches!(
            parse_csv("a,\"open,c\n"),
            Err(CsvError::Quote { .. })
        ));
        assert!(matches!(
            parse_csv("a,\"x\"y,c"),
            Err(CsvError::Quote { line: 1, .. })
        ));
    }

    #[test]
    fn token_file_edge_cases() {
        let tf = TokenFile::parse(
            "tok1,alice,1001,\"admins,devs\"\n\
             ,nobody,0\n\
             tok2,bob,1002\n\
             tok3,carol,1003,\n\
             tok2,bobby,2002,x,ignored\n",
        )
        .unwrap();
        assert_eq!(tf.len(), 3);
        let alice = tf.authenticate("tok1").unwrap();
        assert_eq!((alice.name.as_str(), alice.uid.as_str()), ("alice", "1001"));
        assert_eq!(alice.groups, vec!["admins", "devs"]);
        // Duplicate: the later record wins.
        let bob = tf.authenticate("tok2").unwrap();
        assert_eq!(
            (bob.name.as_str(), bob.groups.clone()),
            ("bobby", vec!["x".to_string()])
        );
        // An empty group column is one empty group, as strings.Split gives.
        assert_eq!(tf.authenticate("tok3").unwrap().groups, vec![""]);
        assert!(tf.authenticate("").is_none());
        assert!(tf.authenticate("tok").is_none());
    }

    #[test]
    fn short_lines_rejected_with_line_number() {
        match TokenFile::parse("tok1,alice,1\n\ntok2,bob\n") {
            Err(ParseError::Columns { line: 3, found: 2 }) => {}
            other => panic!("{other:?}"),
        }
    }
}
