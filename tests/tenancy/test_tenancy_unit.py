"""Tenant ids, resolution and the per-tenant token bucket (otelingest.tenancy), and the [tenancy]
config checks: no daemon needed."""

from __future__ import annotations

import pytest

from otelingest import config as config_mod
from otelingest.auth import Authenticator
from otelingest.config import AuthConfig, TenancyConfig
from otelingest.errors import ConfigError
from otelingest.tenancy import Problem, RateLimiter, Tenancy, parse_tenant


@pytest.mark.parametrize("value", ["a", "team-a", "A_b.c*d'e(f)g!h", "x" * 150, "..."])
def test_valid_tenant_ids(value: str) -> None:
    assert parse_tenant(value) == value


@pytest.mark.parametrize("value", ["", ".", "..", "a|b", "x" * 151, "a b", "a;DROP TABLE", "a'--\n", "é", "a/b", "a\x00"])
def test_invalid_tenant_ids_are_400(value: str) -> None:
    p = parse_tenant(value)
    assert isinstance(p, Problem) and p.status == 400 and p.grpc == "INVALID_ARGUMENT"


def test_off_mode_is_the_default_tenant_whatever_is_sent() -> None:
    t = Tenancy(TenancyConfig())
    assert t.resolve(None) == "default"
    assert t.resolve("team-a") == "default"


def test_header_mode() -> None:
    t = Tenancy(TenancyConfig(mode="header"))
    assert t.resolve_headers({"x-scope-orgid": "team-a"}) == "team-a"
    missing = t.resolve_headers({})
    assert isinstance(missing, Problem) and missing.status == 401 and missing.grpc == "UNAUTHENTICATED"
    both = t.resolve("a|b")
    assert isinstance(both, Problem) and both.status == 400


def test_credential_mode() -> None:
    cfg = TenancyConfig(mode="credential", credentials={"alice": "team-a", "bob": "team-b"})
    auth = Authenticator(AuthConfig(receiver_basic_users=["alice:pw1", "bob:pw2"]), "receiver")
    t = Tenancy(cfg, auth)
    import base64

    alice = "Basic " + base64.b64encode(b"alice:pw1").decode()
    assert auth.identify(alice) == "alice"
    assert auth.identify("Basic " + base64.b64encode(b"alice:wrong").decode()) is None
    assert t.resolve(None, "alice") == "team-a"
    assert t.resolve("team-a", "alice") == "team-a"  # a header that agrees is fine
    other = t.resolve("team-b", "alice")
    assert isinstance(other, Problem) and other.status == 400
    bad = t.resolve("a|b", "alice")
    assert isinstance(bad, Problem) and bad.status == 400
    none = t.resolve("team-a", None)
    assert isinstance(none, Problem) and none.status == 401


def test_credential_mode_refuses_an_unmapped_credential_from_a_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    users = tmp_path / "users"
    users.write_text("alice:pw\ncarol:pw\n")
    cfg = TenancyConfig(mode="credential", credentials={"alice": "team-a"})
    with pytest.raises(ConfigError, match="carol"):
        Tenancy(cfg, Authenticator(AuthConfig(receiver_basic_users_file=str(users)), "receiver"))


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def limiter(rate: float, burst: int, workers: int = 1) -> tuple[RateLimiter, Clock]:
    cfg = config_mod.load(overrides={"tenancy": {"mode": "header", "tenants": {"a": {"rate": rate, "burst": burst}}}},
                          environ={}).tenancy
    clock = Clock()
    return RateLimiter(cfg, workers, clock), clock


def test_bucket_allows_burst_then_refuses_until_refilled() -> None:
    rl, clock = limiter(rate=10, burst=20)
    assert rl.take("a", 15) == 0.0
    assert rl.take("a", 5) == 0.0
    wait = rl.take("a", 5)
    assert wait == pytest.approx(0.5)
    clock.t += 0.5
    assert rl.take("a", 5) == 0.0
    # Only tenant a is limited: others have no rate.
    assert rl.take("b", 10**9) == 0.0


def test_oversize_request_passes_on_a_full_bucket_and_leaves_debt() -> None:
    rl, clock = limiter(rate=10, burst=20)
    assert rl.take("a", 100) == 0.0  # 5x the burst: allowed once, bucket at -80
    assert rl.take("a", 1) > 0
    clock.t += 9.9  # -80 + 99 = 19 tokens: not full yet
    assert rl.take("a", 100) > 0
    clock.t += 0.1
    assert rl.take("a", 100) == 0.0


def test_rate_is_shared_between_workers() -> None:
    rl, clock = limiter(rate=10, burst=5, workers=2)
    assert rl.take("a", 5) == 0.0
    assert rl.take("a", 5) == pytest.approx(1.0)  # 5 tokens at 10/2 per second


@pytest.mark.parametrize("overrides, message", [
    ({"tenants": {"a|b": {}}}, "tenancy.tenants.a|b"),
    ({"tenants": {"..": {}}}, "tenancy.tenants..."),
    ({"defaults": {"burst": 5}}, "tenancy.defaults.burst"),
    ({"credentials": {"alice": "team-a"}}, "only read with tenancy.mode = 'credential'"),
    ({"mode": "credential"}, "needs credentials on both sides"),
    ({"mode": "credential", "credentials": {"alice": "a b"}}, "tenancy.credentials.alice"),
])
def test_contradictory_config_is_refused_with_one_line(overrides: dict, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ConfigError) as err:
        config_mod.load(overrides={"tenancy": overrides}, environ={})
    assert message in str(err.value) and "\n" not in str(err.value)


def test_credential_mode_checks_auth() -> None:
    base = {"tenancy": {"mode": "credential", "credentials": {"alice": "team-a"}}}
    with pytest.raises(ConfigError, match="bearer tokens have no name"):
        config_mod.load(overrides={**base, "auth": {"receiver_bearer_tokens": ["t"], "query_basic_users": ["alice:x"]}},
                        environ={})
    with pytest.raises(ConfigError, match="'bob' of \\[auth\\] maps to no tenant"):
        config_mod.load(overrides={**base, "auth": {"receiver_basic_users": ["bob:x"], "query_basic_users": ["alice:x"]}},
                        environ={})
    cfg = config_mod.load(overrides={**base, "auth": {"receiver_basic_users": ["alice:x"], "query_basic_users": ["alice:y"]}},
                          environ={})
    assert cfg.tenancy.mode == "credential"


def test_tenant_limits_inherit_the_defaults() -> None:
    cfg = config_mod.load(overrides={"tenancy": {"mode": "header", "defaults": {"rate": 100, "max_query_points": 500},
                                                 "tenants": {"big": {"rate": 1000, "retention": {"traces": 7}}}}},
                          environ={}).tenancy
    big = cfg.limits("big")
    assert (big.rate, big.max_query_points, big.retention.traces, big.retention.logs) == (1000, 500, 7, None)
    assert cfg.limits("other").rate == 100


def test_the_header_twice_is_two_tenants() -> None:
    t = Tenancy(TenancyConfig(mode="header"))
    assert t.resolve_pairs([("x-scope-orgid", "a")]) == "a"
    twice = t.resolve_pairs([("x-scope-orgid", "a"), ("x-scope-orgid", "b")])
    assert isinstance(twice, Problem) and twice.status == 400
    assert isinstance(t.resolve_pairs([("other", "a")]), Problem)


def test_enabled_is_any_mode_but_off() -> None:
    assert not TenancyConfig().enabled
    assert TenancyConfig(mode="header").enabled and TenancyConfig(mode="credential").enabled


def _request(cfg: config_mod.Config, tenant: str):  # type: ignore[no-untyped-def]
    from types import SimpleNamespace

    from starlette.requests import Request

    app = SimpleNamespace(state=SimpleNamespace(cfg=cfg))
    return Request({"type": "http", "app": app, "state": {"tenant": tenant}, "headers": []})


def test_a_listing_holds_a_tenant_s_range_limit_even_when_query_s_is_lower() -> None:
    from otelingest.query.tenant import tenant_range_days

    # [query] max_range_days 30 is lower than wide's 60 and equal to equal's: the listings, which
    # [query] does not limit, still hold each tenant to its own days.
    cfg = config_mod.Config(
        query=config_mod.QueryConfig(max_range_days=30),
        tenancy=TenancyConfig(mode="header", defaults=config_mod.TenantLimits(max_query_range_days=5), tenants={
            "wide": config_mod.TenantLimits(max_query_range_days=60),
            "equal": config_mod.TenantLimits(max_query_range_days=30),
            "free": config_mod.TenantLimits(max_query_range_days=0)}))
    assert tenant_range_days(_request(cfg, "wide")) == (60, "tenancy.tenants.wide.max_query_range_days of tenant wide")
    assert tenant_range_days(_request(cfg, "equal"))[0] == 30  # type: ignore[index]
    assert tenant_range_days(_request(cfg, "other")) == (5, "tenancy.defaults.max_query_range_days of tenant other")
    assert tenant_range_days(_request(cfg, "free")) is None
    off = config_mod.Config(query=config_mod.QueryConfig(max_range_days=30))
    assert tenant_range_days(_request(off, "default")) is None
