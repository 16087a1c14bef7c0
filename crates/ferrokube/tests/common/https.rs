//! A small HTTPS server for tests that play an outside server the API server calls
//! (admission webhooks, aggregated API servers): a self-signed certificate for
//! 127.0.0.1, one thread and one request per connection, JSON answers.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// One request: its target (path and query), headers (names lower-cased) and body.
pub struct Request {
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    /// The path without the query.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("/")
    }

    /// Every value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Vec<String> {
        self.headers
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    }
}

/// A self-signed certificate for 127.0.0.1: its PEM (for a caBundle) and the pair.
pub fn loopback_cert() -> (String, Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
    let (cert, key) =
        ferrokube_component_base::tls::generate_self_signed(&["127.0.0.1".into()]).unwrap();
    let chain = vec![CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()];
    let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
    (cert, chain, key)
}

fn read_request(stream: &mut impl Read) -> Option<Request> {
    let mut reader = BufReader::new(stream);
    let mut request_line = String::new();
    reader.read_line(&mut request_line).ok()?;
    let target = request_line.split_whitespace().nth(1)?.to_string();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let length = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .map_or(0, |(_, v)| v.parse().unwrap());
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(Request {
        target,
        headers,
        body,
    })
}

/// Serves `config` on 127.0.0.1 (a free port, returned): `handle` answers each request
/// with a status and a JSON body; it also sees the TLS connection (the client's
/// certificate).
pub fn serve<H>(config: Arc<rustls::ServerConfig>, handle: H) -> u16
where
    H: Fn(&Request, &rustls::ServerConnection) -> (u16, serde_json::Value) + Send + Sync + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = Arc::new(handle);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let (config, handle) = (config.clone(), handle.clone());
            std::thread::spawn(move || answer(stream, config, &*handle));
        }
    });
    port
}

fn answer<H>(stream: TcpStream, config: Arc<rustls::ServerConfig>, handle: &H)
where
    H: Fn(&Request, &rustls::ServerConnection) -> (u16, serde_json::Value),
{
    let conn = rustls::ServerConnection::new(config).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, stream);
    let Some(request) = read_request(&mut tls) else {
        return;
    };
    let (code, body) = handle(&request, &tls.conn);
    let out = serde_json::to_vec(&body).unwrap();
    let head = format!(
        "HTTP/1.1 {code} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        out.len()
    );
    let _ = tls.write_all(head.as_bytes());
    let _ = tls.write_all(&out);
    let _ = tls.flush();
    tls.conn.send_close_notify();
    let _ = tls.flush();
}
