import base64

import pytest

from otelingest import config
from otelingest.auth import Authenticator
from otelingest.errors import ConfigError


def auth_cfg(**kw):
    return config.load(None, overrides={"auth": kw}, environ={}).auth


def test_open_when_nothing_configured():
    a = Authenticator(auth_cfg(), "receiver")
    assert not a.enabled and a.check(None) and a.check("Bearer anything")


def test_bearer_and_basic(tmp_path):
    (tmp_path / "tokens").write_text("# ingest tokens\nfile-token\n\n")
    a = Authenticator(auth_cfg(receiver_bearer_tokens=["inline"], receiver_bearer_tokens_file=str(tmp_path / "tokens"),
                               receiver_basic_users=["alice:s3cret"]), "receiver")
    assert a.enabled
    assert a.check("Bearer inline") and a.check(b"Bearer file-token")
    assert a.check("Basic " + base64.b64encode(b"alice:s3cret").decode())
    for bad in (None, "", "Bearer inlin", "Bearer inline2", "bearer inline", "Basic " + base64.b64encode(b"alice:x").decode()):
        assert not a.check(bad)
    assert a.challenge() == 'Bearer realm="otelingest", Basic realm="otelingest"'
    # The query side has its own credentials.
    assert not Authenticator(auth_cfg(receiver_bearer_tokens=["inline"]), "query").enabled


def test_tokens_from_env_are_comma_separated():
    cfg = config.load(None, environ={"OTELINGEST_AUTH_QUERY_BEARER_TOKENS": "a, b"})
    assert cfg.auth.query_bearer_tokens == ["a", "b"]


def test_bad_auth_and_tls_config(tmp_path):
    with pytest.raises(ConfigError, match="must be user:password"):
        auth_cfg(query_basic_users=["nopassword"])
    with pytest.raises(ConfigError, match=r"tls.receiver_key_file = None: TLS needs both"):
        config.load(None, overrides={"tls": {"receiver_cert_file": str(tmp_path)}}, environ={})
    with pytest.raises(ConfigError, match=r"tls.query_cert_file = '/nope.pem': no such file"):
        config.load(None, overrides={"tls": {"query_cert_file": "/nope.pem", "query_key_file": "/nope.key"}}, environ={})
    with pytest.raises(ConfigError, match="cannot read the file"):
        Authenticator(auth_cfg(query_bearer_tokens_file=str(tmp_path / "missing")), "query")
