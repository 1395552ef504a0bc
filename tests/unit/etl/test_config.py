from etl.config import Secret, Settings


def test_secrets_never_print(monkeypatch):
    monkeypatch.setenv("MONETL_ZABBIX_PASSWORD", "hunter2")
    monkeypatch.setenv("MONETL_ES_API_KEY", "c2VjcmV0")
    s = Settings()
    text = repr(s) + str(s.redacted()) + f"{s.zabbix_password}" + str(s.es_api_key)
    assert "hunter2" not in text and "c2VjcmV0" not in text
    assert s.zabbix_password.reveal() == "hunter2"


def test_defaults_follow_ports_and_home(monkeypatch, tmp_path):
    monkeypatch.setenv("MONETL_HOME", str(tmp_path))
    monkeypatch.setenv("MONETL_ES_PORT", "19200")
    s = Settings()
    assert s.es_url == "http://127.0.0.1:19200"
    assert s.lake_url == f"file://{tmp_path}/lake"
    assert isinstance(s.zabbix_db_url, Secret)
