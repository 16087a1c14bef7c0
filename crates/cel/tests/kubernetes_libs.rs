#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{ev, fails, json, no, yes};
use ferrokube_cel::Value;
use serde_json::json;

#[test]
fn quantity_parsing_and_equality() {
    yes("quantity('1') == quantity('1000m')");
    yes("quantity('1k') == quantity('1000')");
    yes("quantity('1Ki') == quantity('1024')");
    yes("quantity('1Gi') == quantity('1073741824')");
    yes("quantity('1e3') == quantity('1k')");
    yes("quantity('1E3') == quantity('1k')");
    yes("quantity('1.5') == quantity('1500m')");
    yes("quantity('.5') == quantity('500m')");
    yes("quantity('1M') == quantity('1000k')");
    yes("quantity('1Ei') == quantity('1024Pi')");
    yes("quantity('1n') == quantity('0.000000001')");
    // more precise than nano rounds up
    yes("quantity('0.0000000001') == quantity('1n')");
    yes("quantity('-1') == quantity('-1000m')");
    yes("quantity('+2') == quantity('2')");
    yes("isQuantity('100Mi')");
    no("isQuantity('100MB')");
    no("isQuantity('')");
    no("isQuantity('1.2.3')");
    no("isQuantity('abc')");
    no("isQuantity('1e')");
    fails("quantity('1ZZ')", "quantities must match");
}

#[test]
fn quantity_methods() {
    yes("quantity('1').isInteger()");
    no("quantity('500m').isInteger()");
    assert_eq!(ev("quantity('5k').asInteger()"), Value::Int(5000));
    fails(
        "quantity('500m').asInteger()",
        "cannot convert value to integer",
    );
    fails(
        "quantity('100E').asInteger()",
        "cannot convert value to integer",
    );
    assert_eq!(
        ev("quantity('500m').asApproximateFloat()"),
        Value::Double(0.5)
    );
    assert_eq!(ev("quantity('-5').sign()"), Value::Int(-1));
    assert_eq!(ev("quantity('0').sign()"), Value::Int(0));
    assert_eq!(ev("quantity('5m').sign()"), Value::Int(1));
    yes("quantity('1').add(quantity('500m')) == quantity('1.5')");
    yes("quantity('1').add(2) == quantity('3')");
    yes("quantity('1').sub(quantity('500m')) == quantity('500m')");
    yes("quantity('1').sub(2) == quantity('-1')");
    yes("quantity('2Gi').isGreaterThan(quantity('1Gi'))");
    yes("quantity('512Mi').isLessThan(quantity('1Gi'))");
    no("quantity('1Gi').isLessThan(quantity('1Gi'))");
    assert_eq!(ev("quantity('1').compareTo(quantity('2'))"), Value::Int(-1));
    assert_eq!(
        ev("quantity('2').compareTo(quantity('2000m'))"),
        Value::Int(0)
    );
    assert_eq!(ev("quantity('3').compareTo(quantity('2'))"), Value::Int(1));
    assert_eq!(json("quantity('1500m')"), json!("1500m"));
    assert_eq!(json("quantity('2048Ki')"), json!("2Mi"));
}

#[test]
fn urls() {
    let u = "url('https://user@example.com:8443/a%20b/c?x=1&x=2&y=hello+world#frag')";
    assert_eq!(ev(&format!("{u}.getScheme()")), Value::from("https"));
    assert_eq!(
        ev(&format!("{u}.getHost()")),
        Value::from("example.com:8443")
    );
    assert_eq!(
        ev(&format!("{u}.getHostname()")),
        Value::from("example.com")
    );
    assert_eq!(ev(&format!("{u}.getPort()")), Value::from("8443"));
    assert_eq!(
        ev(&format!("{u}.getEscapedPath()")),
        Value::from("/a%20b/c")
    );
    assert_eq!(
        json(&format!("{u}.getQuery()")),
        json!({"x": ["1", "2"], "y": ["hello world"]})
    );
    assert_eq!(
        ev("url('https://[::1]:80/').getHostname()"),
        Value::from("::1")
    );
    assert_eq!(
        ev("url('https://[::1]:80/').getHost()"),
        Value::from("[::1]:80")
    );
    assert_eq!(ev("url('https://example.com').getPort()"), Value::from(""));
    assert_eq!(
        ev("url('/path/only').getEscapedPath()"),
        Value::from("/path/only")
    );
    assert_eq!(ev("url('/path/only').getHost()"), Value::from(""));
    yes("isURL('https://example.com/x')");
    yes("isURL('/absolute/path')");
    no("isURL('example.com')");
    no("isURL('')");
    no("isURL('https://exa mple.com')");
    no("isURL('http://example.com:port/')");
    fails("url('relative/path')", "URL parse error");
}

#[test]
fn ips() {
    yes("isIP('192.168.0.1')");
    yes("isIP('::1')");
    no("isIP('192.168.0.256')");
    no("isIP('fe80::1%eth0')");
    no("isIP('::ffff:192.168.0.1')");
    no("isIP('1.2.3')");
    yes("ip.isCanonical('2001:db8::1')");
    no("ip.isCanonical('2001:DB8::1')");
    no("ip.isCanonical('2001:db8:0:0:0:0:0:1')");
    assert_eq!(ev("ip('10.0.0.1').family()"), Value::Int(4));
    assert_eq!(ev("ip('::1').family()"), Value::Int(6));
    yes("ip('0.0.0.0').isUnspecified()");
    yes("ip('::').isUnspecified()");
    yes("ip('127.0.0.1').isLoopback()");
    yes("ip('::1').isLoopback()");
    yes("ip('224.0.0.1').isLinkLocalMulticast()");
    yes("ip('ff02::1').isLinkLocalMulticast()");
    no("ip('239.0.0.1').isLinkLocalMulticast()");
    yes("ip('169.254.1.1').isLinkLocalUnicast()");
    yes("ip('fe80::1').isLinkLocalUnicast()");
    yes("ip('8.8.8.8').isGlobalUnicast()");
    yes("ip('10.0.0.1').isGlobalUnicast()");
    no("ip('255.255.255.255').isGlobalUnicast()");
    no("ip('224.0.0.1').isGlobalUnicast()");
    yes("ip('10.0.0.1') == ip('10.0.0.1')");
    assert_eq!(ev("string(ip('2001:db8::1'))"), Value::from("2001:db8::1"));
    fails("ip('bogus')", "parse error");
}

#[test]
fn cidrs() {
    yes("isCIDR('10.0.0.0/8')");
    yes("isCIDR('2001:db8::/32')");
    no("isCIDR('10.0.0.0/33')");
    no("isCIDR('10.0.0.0')");
    no("isCIDR('10.0.0.0/08')");
    yes("cidr('10.0.0.0/8').containsIP(ip('10.1.2.3'))");
    yes("cidr('10.0.0.0/8').containsIP('10.1.2.3')");
    no("cidr('10.0.0.0/8').containsIP('11.1.2.3')");
    no("cidr('10.0.0.0/8').containsIP('::1')");
    yes("cidr('10.0.0.0/8').containsCIDR(cidr('10.1.0.0/16'))");
    yes("cidr('10.0.0.0/8').containsCIDR('10.1.0.0/16')");
    no("cidr('10.1.0.0/16').containsCIDR('10.0.0.0/8')");
    yes("cidr('0.0.0.0/0').containsIP('1.2.3.4')");
    assert_eq!(ev("cidr('10.1.2.3/8').prefixLength()"), Value::Int(8));
    yes("cidr('10.1.2.3/8').ip() == ip('10.1.2.3')");
    assert_eq!(
        ev("string(cidr('10.1.2.3/8').masked())"),
        Value::from("10.0.0.0/8")
    );
    assert_eq!(
        ev("string(cidr('2001:db8::1/32').masked())"),
        Value::from("2001:db8::/32")
    );
    assert_eq!(ev("string(cidr('10.1.2.3/8'))"), Value::from("10.1.2.3/8"));
    yes("cidr('10.0.0.0/8') == cidr('10.0.0.0/8')");
    fails("cidr('10.0.0.0/99')", "invalid CIDR");
}
