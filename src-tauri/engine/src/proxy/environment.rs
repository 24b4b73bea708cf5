//! The system's proxy as curl reads it from the environment: `wss://` takes
//! `https_proxy`, `ws://` takes `http_proxy`, both fall back to `all_proxy`,
//! and `no_proxy` lists the hosts reached directly. Each name is read in
//! lower case first, then upper case; an empty value counts as unset.

use std::net::IpAddr;

use ipnet::IpNet;

use super::{Proxy, ProxyUrlError};
use crate::feed_url::FeedUrl;

/// Where the system's settings come from; tests give their own.
pub trait Environment: Send + Sync {
    fn var(&self, name: &str) -> Option<String>;
}

/// The process's environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnvironment;

impl Environment for ProcessEnvironment {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

/// A variable that names a proxy that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{variable}: {error}")]
pub struct EnvironmentProxyError {
    pub variable: String,
    pub error: ProxyUrlError,
}

/// The first of `names` (each tried in lower case, then upper case) that is
/// set and not empty, with the name it was found under.
fn first_set(env: &dyn Environment, names: &[&str]) -> Option<(String, String)> {
    names.iter().find_map(|name| {
        [name.to_lowercase(), name.to_uppercase()]
            .into_iter()
            .find_map(|variable| {
                env.var(&variable)
                    .map(|value| value.trim().to_owned())
                    .filter(|value| !value.is_empty())
                    .map(|value| (variable, value))
            })
    })
}

/// Whether the environment names a proxy for `target`'s scheme at all
/// (`no_proxy` aside): if not, the desktop's setting is asked.
pub fn names_a_proxy(target: &FeedUrl, env: &dyn Environment) -> bool {
    let scheme_variable = if target.is_tls() {
        "https_proxy"
    } else {
        "http_proxy"
    };
    first_set(env, &[scheme_variable, "all_proxy"]).is_some()
}

/// The proxy the environment names for `target`, `None` when it names none
/// or `no_proxy` covers the target's host.
pub fn from_environment(
    target: &FeedUrl,
    env: &dyn Environment,
) -> Result<Option<Proxy>, EnvironmentProxyError> {
    let scheme_variable = if target.is_tls() {
        "https_proxy"
    } else {
        "http_proxy"
    };
    let Some((variable, value)) = first_set(env, &[scheme_variable, "all_proxy"]) else {
        return Ok(None);
    };
    if let Some((_, list)) = first_set(env, &["no_proxy"])
        && NoProxy::parse(&list).covers(target.host())
    {
        return Ok(None);
    }
    Proxy::parse(&value)
        .map(Some)
        .map_err(|error| EnvironmentProxyError { variable, error })
}

/// A `no_proxy` list, matched as curl matches it: `*` covers every host; an
/// address or CIDR range covers the addresses in it; a name covers itself
/// and every name below it (a leading dot changes nothing), ignoring case.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NoProxy {
    everything: bool,
    names: Vec<String>,
    ranges: Vec<IpNet>,
}

impl NoProxy {
    pub fn parse(list: &str) -> NoProxy {
        let mut no_proxy = NoProxy::default();
        for entry in list.split([',', ' ', '\t']).map(str::trim) {
            let entry = entry.trim_start_matches('[').trim_end_matches(']');
            if entry.is_empty() {
                continue;
            }
            if entry == "*" {
                no_proxy.everything = true;
            } else if let Ok(range) = entry.parse::<IpNet>() {
                no_proxy.ranges.push(range);
            } else if let Ok(address) = entry.parse::<IpAddr>() {
                no_proxy.ranges.push(IpNet::from(address));
            } else {
                let name = entry.trim_start_matches('.').trim_end_matches('.');
                no_proxy.names.push(name.to_ascii_lowercase());
            }
        }
        no_proxy
    }

    /// Whether `host` (a name, or an address with or without brackets) is
    /// reached directly.
    pub fn covers(&self, host: &str) -> bool {
        if self.everything {
            return true;
        }
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .trim_end_matches('.');
        if let Ok(address) = host.parse::<IpAddr>() {
            return self.ranges.iter().any(|range| range.contains(&address));
        }
        let host = host.to_ascii_lowercase();
        self.names.iter().any(|name| {
            host == *name
                || host
                    .strip_suffix(name.as_str())
                    .is_some_and(|rest| rest.ends_with('.'))
        })
    }
}
