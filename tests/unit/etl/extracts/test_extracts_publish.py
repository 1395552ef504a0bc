"""Optional copies: skipped with one log line when not configured; Tableau settings validated
without ever showing the token secret. (No Tableau Server exists here, and none is faked.)"""

import dataclasses
import logging

import pytest

from etl.config import Secret, Settings
from etl.errors import ConfigError
from etl.extracts.publish import copy_to_hdfs, publish_to_tableau, tableau_target


@pytest.fixture
def base(tmp_path):
    return Settings(home=tmp_path, tableau_server_url="", extracts_hdfs_url="")


def test_unconfigured_targets_are_skipped_with_one_line(base, tmp_path, caplog):
    hyper = tmp_path / "x.hyper"
    hyper.write_bytes(b"not opened")
    with caplog.at_level(logging.INFO, logger="etl.extracts.publish"):
        assert publish_to_tableau(base, [hyper]) == []
        assert copy_to_hdfs(base, [hyper]) == []
    messages = [r.getMessage() for r in caplog.records]
    assert messages == ["Tableau Server publish skipped: MONETL_TABLEAU_SERVER_URL is not set",
                        "HDFS copy of extracts skipped: MONETL_EXTRACTS_HDFS_URL is not set"]


def test_settings_read_tableau_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("MONETL_TABLEAU_SERVER_URL", "https://tableau.example.internal")
    monkeypatch.setenv("MONETL_TABLEAU_SITE", "ops")
    monkeypatch.setenv("MONETL_TABLEAU_TOKEN_NAME", "monetl-bot")
    monkeypatch.setenv("MONETL_TABLEAU_TOKEN_SECRET", "s3cr3t-token")
    monkeypatch.setenv("MONETL_HOME", str(tmp_path))
    s = Settings()
    target = tableau_target(s)
    assert (target.url, target.site, target.project, target.token_name) == (
        "https://tableau.example.internal", "ops", "monetl", "monetl-bot")
    assert isinstance(target.token_secret, Secret) and target.token_secret.reveal() == "s3cr3t-token"
    assert "s3cr3t-token" not in repr(s) + repr(target) + str(s.redacted())


@pytest.mark.parametrize("changes, message", [
    ({"tableau_token_name": "", "tableau_token_secret": Secret("s3cr3t-token")}, "MONETL_TABLEAU_TOKEN_NAME is not"),
    ({"tableau_token_name": "bot", "tableau_token_secret": Secret("")}, "MONETL_TABLEAU_TOKEN_SECRET is not"),
    ({"tableau_token_name": "", "tableau_token_secret": Secret("")},
     "MONETL_TABLEAU_TOKEN_NAME, MONETL_TABLEAU_TOKEN_SECRET are not"),
    ({"tableau_token_name": "bot", "tableau_token_secret": Secret("s3cr3t-token"), "tableau_project": ""},
     "MONETL_TABLEAU_PROJECT is not"),
])
def test_half_configured_tableau_is_a_config_error(base, changes, message):
    s = dataclasses.replace(base, tableau_server_url="https://tableau.example.internal", **changes)
    with pytest.raises(ConfigError, match=message) as err:
        tableau_target(s)
    assert "s3cr3t-token" not in str(err.value)


def test_tableau_url_must_be_http(base):
    s = dataclasses.replace(base, tableau_server_url="tableau.example.internal", tableau_token_name="bot",
                            tableau_token_secret=Secret("s3cr3t-token"))
    with pytest.raises(ConfigError, match="is not an http\\(s\\) URL"):
        tableau_target(s)


def test_empty_site_means_default_site(base):
    s = dataclasses.replace(base, tableau_server_url="https://tableau.example.internal/", tableau_token_name="bot",
                            tableau_token_secret=Secret("x"))
    target = tableau_target(s)
    assert target.site == "" and target.url == "https://tableau.example.internal"
