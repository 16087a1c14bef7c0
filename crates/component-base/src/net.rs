//! Small network helpers the components share.

/// `host:port`, with an IPv6 host bracketed (Go's `net.JoinHostPort`).
pub fn join_host_port(host: &str, port: impl std::fmt::Display) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn ipv6_hosts_are_bracketed() {
        assert_eq!(super::join_host_port("10.0.0.1", 443), "10.0.0.1:443");
        assert_eq!(super::join_host_port("::1", 8443u16), "[::1]:8443");
        assert_eq!(super::join_host_port("svc.ns.svc", 443), "svc.ns.svc:443");
    }
}
