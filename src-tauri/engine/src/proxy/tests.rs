use std::collections::HashMap;

use super::*;

struct Vars(HashMap<String, String>);

impl Vars {
    fn of(pairs: &[(&str, &str)]) -> Vars {
        Vars(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }
}

impl Environment for Vars {
    fn var(&self, name: &str) -> Option<String> {
        self.0.get(name).cloned()
    }
}

fn url(text: &str) -> FeedUrl {
    FeedUrl::parse(text).expect("a feed URL").0
}

fn chosen(target: &str, vars: &[(&str, &str)]) -> Option<String> {
    from_environment(&url(target), &Vars::of(vars))
        .expect("a usable proxy variable")
        .map(|proxy| proxy.shown())
}

#[test]
fn proxy_urls_parse_as_curl_takes_them() {
    let http = Proxy::parse("http://proxy.corp:3128").unwrap();
    assert_eq!(
        (http.kind, http.host.as_str(), http.port),
        (ProxyKind::Http, "proxy.corp", 3128)
    );
    let bare = Proxy::parse("proxy.corp").unwrap();
    assert_eq!(
        (bare.kind, bare.port),
        (ProxyKind::Http, DEFAULT_PROXY_PORT),
        "no scheme is http, no port is 1080"
    );
    let socks = Proxy::parse("socks5://10.0.0.1").unwrap();
    assert_eq!(socks.kind, ProxyKind::Socks5 { remote_dns: false });
    let socks_h = Proxy::parse("socks5h://[::1]:9050").unwrap();
    assert_eq!(
        (socks_h.kind, socks_h.host.as_str(), socks_h.port),
        (ProxyKind::Socks5 { remote_dns: true }, "::1", 9050)
    );
    assert_eq!(socks_h.shown(), "socks5h://[::1]:9050");
}

#[test]
fn credentials_in_a_proxy_url_are_decoded_and_never_shown() {
    let proxy = Proxy::parse("http://al%40ice:p%3Ass%20w@proxy:8080").unwrap();
    let credentials = proxy.credentials.clone().unwrap();
    assert_eq!(credentials.username, "al@ice");
    assert_eq!(credentials.password.expose(), "p:ss w");
    assert_eq!(proxy.shown(), "http://al@ice@proxy:8080");
    for text in [format!("{proxy:?}"), proxy.shown()] {
        assert!(!text.contains("p:ss"), "{text}");
    }
}

#[test]
fn unusable_proxy_urls_are_refused_without_echoing_a_password() {
    assert_eq!(
        Proxy::parse("ftp://proxy:21"),
        Err(ProxyUrlError::Scheme("ftp".into()))
    );
    assert_eq!(
        Proxy::parse("socks4://proxy:1080"),
        Err(ProxyUrlError::Scheme("socks4".into()))
    );
    assert_eq!(
        Proxy::parse("http://proxy:3128/path"),
        Err(ProxyUrlError::Path)
    );
    let bad = Proxy::parse("http://user:s3cret@proxy:notaport").unwrap_err();
    assert!(!bad.to_string().contains("s3cret"), "{bad}");
}

#[test]
fn wss_takes_https_proxy_and_ws_takes_http_proxy() {
    let vars = [
        ("https_proxy", "http://secure:1"),
        ("http_proxy", "http://plain:2"),
    ];
    assert_eq!(
        chosen("wss://feeds.example/ws", &vars).as_deref(),
        Some("http://secure:1")
    );
    assert_eq!(
        chosen("ws://feeds.example/ws", &vars).as_deref(),
        Some("http://plain:2")
    );
}

#[test]
fn both_fall_back_to_all_proxy() {
    let vars = [("ALL_PROXY", "socks5h://gateway:1080")];
    assert_eq!(
        chosen("wss://feeds.example/", &vars).as_deref(),
        Some("socks5h://gateway:1080")
    );
    assert_eq!(
        chosen("ws://feeds.example/", &vars).as_deref(),
        Some("socks5h://gateway:1080")
    );
    // The scheme's own variable wins over the fallback.
    let both = [
        ("ALL_PROXY", "http://all:1"),
        ("HTTPS_PROXY", "http://own:2"),
    ];
    assert_eq!(
        chosen("wss://feeds.example/", &both).as_deref(),
        Some("http://own:2")
    );
}

#[test]
fn lower_case_wins_over_upper_case_and_empty_is_unset() {
    let vars = [
        ("https_proxy", "http://lower:1"),
        ("HTTPS_PROXY", "http://upper:2"),
    ];
    assert_eq!(chosen("wss://h/", &vars).as_deref(), Some("http://lower:1"));
    let empty_lower = [("https_proxy", ""), ("HTTPS_PROXY", "http://upper:2")];
    assert_eq!(
        chosen("wss://h/", &empty_lower).as_deref(),
        Some("http://upper:2")
    );
    assert_eq!(chosen("wss://h/", &[]), None);
}

#[test]
fn no_proxy_covers_names_below_it_addresses_and_ranges() {
    let list = NoProxy::parse("internal.corp, .example.org,10.0.0.0/8 ,::1,[fd00::1]");
    for host in [
        "internal.corp",
        "feeds.internal.corp",
        "INTERNAL.corp.",
        "example.org",
        "a.b.example.org",
        "10.1.2.3",
        "[::1]",
        "fd00::1",
    ] {
        assert!(list.covers(host), "{host} should be direct");
    }
    for host in [
        "notinternal.corp",
        "internal.corp.evil",
        "example.com",
        "11.0.0.1",
        "::2",
    ] {
        assert!(!list.covers(host), "{host} should use the proxy");
    }
    assert!(NoProxy::parse("*").covers("anything.at.all"));
    assert!(!NoProxy::parse("").covers("anything"));
}

#[test]
fn no_proxy_in_either_case_bypasses_the_proxy() {
    let vars = [
        ("https_proxy", "http://proxy:3128"),
        ("NO_PROXY", "feeds.internal"),
    ];
    assert_eq!(chosen("wss://feeds.internal/ws", &vars), None);
    assert_eq!(
        chosen("wss://feeds.public/ws", &vars).as_deref(),
        Some("http://proxy:3128")
    );
}

#[test]
fn a_malformed_proxy_variable_is_an_error_naming_the_variable() {
    let error =
        from_environment(&url("wss://h/"), &Vars::of(&[("HTTPS_PROXY", "ftp://x")])).unwrap_err();
    assert_eq!(error.variable, "HTTPS_PROXY");
    let setting = ProxySetting::System
        .for_target(&url("wss://h/"), &Vars::of(&[("HTTPS_PROXY", "ftp://x")]))
        .unwrap_err();
    assert!(
        matches!(&setting, ConnectError::ProxySetting { detail } if detail.contains("HTTPS_PROXY")),
        "{setting:?}"
    );
}

#[test]
fn the_setting_none_ignores_the_environment() {
    let vars = Vars::of(&[("https_proxy", "http://proxy:3128")]);
    assert_eq!(
        ProxySetting::None.for_target(&url("wss://h/"), &vars),
        Ok(None)
    );
    let given = Proxy::parse("socks5://given:1").unwrap();
    assert_eq!(
        ProxySetting::Url(given.clone()).for_target(&url("wss://h/"), &vars),
        Ok(Some(given))
    );
}

#[test]
fn connect_requests_carry_the_authority_and_basic_credentials() {
    let proxy = Proxy::parse("http://user:pass@proxy:3128").unwrap();
    let request = http_connect::request(&proxy, &url("wss://feeds.example:8443/ws"));
    assert!(
        request.starts_with("CONNECT feeds.example:8443 HTTP/1.1\r\nHost: feeds.example:8443\r\n"),
        "{request}"
    );
    // base64("user:pass")
    assert!(
        request.contains("Proxy-Authorization: Basic dXNlcjpwYXNz\r\n"),
        "{request}"
    );
    assert!(request.ends_with("\r\n\r\n"));
    let anonymous = Proxy::parse("http://proxy:3128").unwrap();
    let request = http_connect::request(&anonymous, &url("ws://[::1]:9000/"));
    assert!(
        request.starts_with("CONNECT [::1]:9000 HTTP/1.1\r\n"),
        "{request}"
    );
    assert!(!request.contains("Proxy-Authorization"));
}

#[test]
fn a_proxys_status_is_told_apart() {
    let proxy = Proxy::parse("http://proxy:3128").unwrap();
    assert_eq!(
        http_connect::judge(&proxy, 200, "Connection established"),
        Ok(())
    );
    assert!(matches!(
        http_connect::judge(&proxy, 407, "Proxy Authentication Required"),
        Err(ConnectError::ProxyAuth { .. })
    ));
    assert!(matches!(
        http_connect::judge(&proxy, 401, "Unauthorized"),
        Err(ConnectError::ProxyAuth { .. })
    ));
    assert!(matches!(
        http_connect::judge(&proxy, 500, "Unable to connect"),
        Err(ConnectError::ProxyTargetFailed {
            status: Some(500),
            ..
        })
    ));
    assert!(matches!(
        http_connect::judge(&proxy, 403, "Forbidden"),
        Err(ConnectError::ProxyRefused {
            status: Some(403),
            ..
        })
    ));
    assert!(matches!(
        http_connect::judge(&proxy, 502, "Bad Gateway"),
        Err(ConnectError::ProxyTargetFailed {
            status: Some(502),
            ..
        })
    ));
    assert_eq!(
        http_connect::parse_status(b"HTTP/1.0 200 Connection established\r\n\r\n"),
        Ok((200, "Connection established".into()))
    );
    assert!(http_connect::parse_status(b"SSH-2.0-OpenSSH\r\n\r\n").is_err());
}

#[test]
fn socks_replies_are_told_apart_by_code() {
    let proxy = Proxy::parse("socks5://user:pw@proxy:1080").unwrap();
    let refused_by_rule =
        socks::classify(&proxy, tokio_socks::Error::ConnectionNotAllowedByRuleset);
    assert!(
        matches!(&refused_by_rule, ConnectError::ProxyRefused { socks_reply: Some(2), detail, .. } if detail.contains("reply 2")),
        "{refused_by_rule:?}"
    );
    let target_refused = socks::classify(&proxy, tokio_socks::Error::ConnectionRefused);
    assert!(
        matches!(
            target_refused,
            ConnectError::ProxyTargetFailed {
                socks_reply: Some(5),
                ..
            }
        ),
        "{target_refused:?}"
    );
    let bad_password = socks::classify(&proxy, tokio_socks::Error::PasswordAuthFailure(1));
    assert!(matches!(bad_password, ConnectError::ProxyAuth { .. }));
    let no_method = socks::classify(
        &Proxy::parse("socks5://proxy:1080").unwrap(),
        tokio_socks::Error::NoAcceptableAuthMethods,
    );
    assert!(
        matches!(&no_method, ConnectError::ProxyAuth { detail, .. } if detail.contains("wants credentials")),
        "{no_method:?}"
    );
    for error in [refused_by_rule, target_refused, bad_password, no_method] {
        assert!(!error.to_string().contains("pw@"), "{error}");
    }
}

#[cfg(target_os = "linux")]
mod gnome_setting {
    use super::super::gnome::GnomeProxy;
    use super::url;

    const MANUAL: &str = "org.gnome.system.proxy autoconfig-url ''
org.gnome.system.proxy ignore-hosts ['localhost', '127.0.0.0/8', '::1', '.internal.corp']
org.gnome.system.proxy mode 'manual'
org.gnome.system.proxy use-same-proxy true
org.gnome.system.proxy.http authentication-password 'it\\'s secret'
org.gnome.system.proxy.http authentication-user 'ann'
org.gnome.system.proxy.http host 'web.corp'
org.gnome.system.proxy.http port 3128
org.gnome.system.proxy.http use-authentication true
org.gnome.system.proxy.https host 'tls.corp'
org.gnome.system.proxy.https port 3129
org.gnome.system.proxy.socks host 'socks.corp'
org.gnome.system.proxy.socks port 1080
";

    #[test]
    fn manual_mode_gives_each_scheme_its_proxy() {
        let settings = GnomeProxy::parse(MANUAL);
        let plain = settings.proxy_for(&url("ws://feeds.example/")).unwrap();
        assert_eq!(plain.shown(), "http://ann@web.corp:3128");
        assert_eq!(plain.credentials.unwrap().password.expose(), "it's secret");
        let secure = settings.proxy_for(&url("wss://feeds.example/")).unwrap();
        assert_eq!(secure.shown(), "http://tls.corp:3129");
    }

    #[test]
    fn ignore_hosts_and_other_modes_go_direct() {
        let settings = GnomeProxy::parse(MANUAL);
        assert_eq!(settings.proxy_for(&url("ws://127.0.0.1:9000/")), None);
        assert_eq!(settings.proxy_for(&url("wss://feeds.internal.corp/")), None);
        for mode in ["'none'", "'auto'"] {
            let other = MANUAL.replace("mode 'manual'", &format!("mode {mode}"));
            assert_eq!(
                GnomeProxy::parse(&other).proxy_for(&url("ws://feeds.example/")),
                None
            );
        }
    }

    #[test]
    fn without_a_scheme_proxy_the_socks_proxy_resolves_names() {
        let socks_only = MANUAL
            .replace("host 'web.corp'", "host ''")
            .replace("host 'tls.corp'", "host ''");
        let proxy = GnomeProxy::parse(&socks_only)
            .proxy_for(&url("wss://feeds.example/"))
            .unwrap();
        assert_eq!(proxy.shown(), "socks5h://socks.corp:1080");
    }
}
