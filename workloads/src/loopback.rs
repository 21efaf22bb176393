//! Benchmark traffic stays on this machine: only `http://127.0.0.1:PORT` URLs are driven.
//!
//! A URL is judged as the HTTP client parses it, so that user info (`127.0.0.1@host`) cannot
//! pass a textual check while the request goes elsewhere. The parser also normalises IPv4
//! forms (`0x7f.1`), so the host compared is the address connected to.

/// `Ok` for `http://127.0.0.1[:PORT][/...]`; otherwise why not.
pub fn check(url: &str) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("server URL {url:?} is not a URL ({e})"))?;
    if parsed.scheme() != "http" {
        return Err(format!("server URL {url:?} must start with http://"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(format!("server URL {url:?} must not carry user information"));
    }
    if parsed.host_str() != Some("127.0.0.1") {
        return Err(format!(
            "refusing to benchmark {url}: only http://127.0.0.1 is benchmarked"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn only_plain_loopback_urls_pass() {
        assert!(check("http://127.0.0.1:2424").is_ok());
        assert!(check("http://127.0.0.1:2424/blobs/").is_ok());
        // Other loopback forms are refused too: the rule is one literal address.
        assert!(check("http://[::1]:80/").is_err());
        assert!(check("http://127.0.0.2:80/").is_err());
        // The host is what the client would connect to, not the text before the last `:`.
        assert!(check("http://127.0.0.1:1@example.org/").is_err());
        assert!(check("http://user@127.0.0.1:1/").is_err());
        assert!(check("https://127.0.0.1:1/").is_err());
        assert!(check("127.0.0.1:3900").is_err());
        assert!(check("http://10.0.0.1:2424").is_err());
        assert!(check("http://example.org:2424").is_err());
        assert!(check("http://localhost:2424").is_err());
        assert!(check("http://192.168.1.2").is_err());
        assert!(check("ftp://127.0.0.1").is_err());
        assert!(check("http://127.0.0.1:2379/").is_ok());
    }
}
