"""Prometheus addresses: what is shown of them, and which ones may be requested.

Aspects tested:
- `redact` hides credentials and query strings, keeps scheme, host, port and path, and
  shows nothing of text that is not a URL; for any generated URL the password and the
  query never survive;
- patterns of `--prometheus-allowed-hosts`: host globs with an optional port, CIDR blocks
  and IP addresses parse; nonsense is refused with a message naming the pattern;
- the policy decides on the URL that is actually requested: case and a trailing dot do
  not matter, a default port counts as 80/443, names are never matched by CIDR blocks,
  userinfo or a fragment cannot disguise the host, unparsable addresses are refused;
- no pattern allows everything; the policy never raises on any text.
"""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from konsumerator.prom.urls import AddressPolicy, PatternError, parse_pattern, redact


@pytest.mark.parametrize(
    ("address", "shown"),
    [
        ("http://prometheus:9090", "http://prometheus:9090"),
        ("https://prom.example.com/prefix/", "https://prom.example.com/prefix/"),
        ("http://admin:hunter2@prom:9090/x", "http://***@prom:9090/x"),
        ("http://token@prom:9090", "http://***@prom:9090"),
        ("http://a:b@c@prom:9090", "http://***@prom:9090"),
        ("http://prom:9090/api?token=hunter2", "http://prom:9090/api?***"),
        ("http://prom:9090?token=hunter2", "http://prom:9090?***"),
        ("http://prom:9090#frag", "http://prom:9090"),
        ("http://[::1]:9090/", "http://[::1]:9090/"),
        ("admin:hunter2@prom:9090", "<not a URL>"),
        ("hunter2", "<not a URL>"),
        ("", "<not a URL>"),
    ],
)
def test_redact_hides_credentials_and_queries(address: str, shown: str) -> None:
    assert redact(address) == shown


secret = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789!$%^*()_+", min_size=8)


@given(
    user=st.text(alphabet="abcxyz", max_size=8),
    password=secret,
    host=st.from_regex(r"[a-z][a-z0-9.-]{0,20}", fullmatch=True),
    path=st.from_regex(r"(/[a-z0-9]{0,8}){0,3}", fullmatch=True),
    query=secret,
)
def test_redact_never_shows_a_password_or_a_query(
    user: str, password: str, host: str, path: str, query: str
) -> None:
    shown = redact(f"https://{user}:{password}@{host}{path}?q={query}")
    assert password not in shown
    assert query not in shown
    assert shown.startswith(f"https://***@{host}{path}")


@pytest.mark.parametrize(
    "pattern",
    [
        "prometheus.monitoring.svc",
        "*.monitoring.svc",
        "*.monitoring.svc.cluster.local:9090",
        "Prom.Example.COM.:443",
        "prom:*",
        "10.0.0.0/8",
        "10.1.2.3",
        "10.1.2.3:9090",
        "fd00::/8",
        "[fd00::1]:9090",
        "[fd00::1]",
    ],
)
def test_patterns_that_parse(pattern: str) -> None:
    parse_pattern(pattern)


@pytest.mark.parametrize(
    "pattern",
    [
        "",
        "http://prom:9090",
        "prom/path",
        "user@prom",
        "prom:0",
        "prom:99999",
        "prom:http",
        "[prom]:9090",
        "[fd00::1]x",
        "prom a",
    ],
)
def test_nonsense_patterns_are_refused_naming_the_pattern(pattern: str) -> None:
    with pytest.raises(PatternError) as caught:
        parse_pattern(pattern)
    assert repr(pattern.strip()) in str(caught.value)


POLICY = AddressPolicy.parse(
    [
        "*.monitoring.svc,*.monitoring.svc.cluster.local",
        "prom.example.com:443",
        "10.0.0.0/8",
        "[fd00::1]:9090",
    ]
)


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("http://prometheus.monitoring.svc:9090", True),
        ("http://PROMETHEUS.Monitoring.SVC.:9090/", True),
        ("http://thanos.monitoring.svc.cluster.local:10902/prefix", True),
        ("https://prom.example.com", True),  # the default port of https
        ("https://prom.example.com:443/", True),
        ("http://prom.example.com", False),  # port 80
        ("https://prom.example.com:8443", False),
        ("http://10.3.4.5:9090", True),
        ("http://11.0.0.1:9090", False),
        ("http://[fd00::1]:9090", True),
        ("http://[fd00:0:0:0:0:0:0:1]:9090", True),  # the same address, written out
        ("http://[fd00::1]:9091", False),
        ("http://169.254.169.254/latest/meta-data", False),
        ("http://kubernetes.default.svc", False),
        ("http://monitoring.svc.evil.com", False),
        ("http://prometheus.monitoring.svc@evil.com", False),  # userinfo, then the host
        ("http://evil.com#@prometheus.monitoring.svc", False),  # a fragment, not the host
        ("http://evil.com?@prometheus.monitoring.svc", False),
        ("http://2130706433/", False),  # 127.0.0.1 as a number: not an IP for the policy
        ("ftp://prometheus.monitoring.svc", False),
        ("not a url", False),
    ],
)
def test_the_policy_decides_on_the_requested_host(address: str, allowed: bool) -> None:
    assert POLICY.allows(address) is allowed


def test_no_pattern_allows_everything() -> None:
    policy = AddressPolicy.parse([])
    assert not policy.restricted
    assert policy.allows("http://169.254.169.254/")
    assert AddressPolicy.parse(["", " , "]) == policy


def test_refused_lists_the_indexes() -> None:
    addresses = ["http://a.monitoring.svc:9090", "http://evil.com", "http://10.0.0.1", "x"]
    assert POLICY.refused(addresses) == [1, 3]


@given(st.text())
def test_the_policy_never_raises(address: str) -> None:
    POLICY.allows(address)
    redact(address)
