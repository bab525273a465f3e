from pathlib import Path

import pytest

from firebox.settings import SettingsError, load_settings


def test_flags_beat_environment_beat_config_file(tmp_path: Path):
    cfg = tmp_path / "firebox.toml"
    cfg.write_text('port = 7000\nregion = "eu-west-1"\nkeepalive_s = 10\n')
    s = load_settings(
        flags={"port": 7002},
        environ={"FIREBOX_PORT": "7001", "FIREBOX_KEEPALIVE_S": "20"},
        config_file=cfg,
    )
    assert s.port == 7002
    assert s.keepalive_s == 20.0
    assert s.region == "eu-west-1"
    assert s.data_dir.is_absolute()


def test_bad_values_are_refused_with_the_setting_named():
    with pytest.raises(SettingsError, match="FIREBOX_PORT"):
        load_settings(environ={"FIREBOX_PORT": "many"})
    with pytest.raises(SettingsError, match="account_id"):
        load_settings(environ={"FIREBOX_ACCOUNT_ID": "12"})
    with pytest.raises(SettingsError, match="sandbox"):
        load_settings(flags={"sandbox": "docker"}, environ={})


def test_tuple_and_bool_settings_parse_from_environment():
    s = load_settings(
        environ={"FIREBOX_ASYNC_RETRY_DELAYS_S": "0.5,1", "FIREBOX_ALLOW_UNSANDBOXED": "yes"}
    )
    assert s.async_retry_delays_s == (0.5, 1.0)
    assert s.allow_unsandboxed is True


def test_storage_urls_choose_backends_and_the_queue_follows_the_database():
    s = load_settings(environ={})
    assert (s.database_url, s.code_store_url, s.queue_database_url) == ("", "", "")
    s = load_settings(
        environ={
            "FIREBOX_DATABASE_URL": "postgresql://fb@db/firebox",
            "FIREBOX_CODE_STORE_URL": "s3://firebox-code/prod",
        }
    )
    assert s.queue_database_url == "postgresql://fb@db/firebox"
    assert s.code_store_url == "s3://firebox-code/prod"
    # FIREBOX_QUEUE_URL alone (as before database_url): only the queue in PostgreSQL.
    s = load_settings(environ={"FIREBOX_QUEUE_URL": "postgres://q@db/queue"})
    assert (s.database_url, s.queue_database_url) == ("", "postgres://q@db/queue")
    s = load_settings(
        flags={"database_url": "postgresql://a@db/a", "queue_url": "postgresql://b@db/b"},
        environ={},
    )
    assert s.queue_database_url == "postgresql://b@db/b"


def test_bad_storage_urls_are_refused():
    with pytest.raises(SettingsError, match="database_url"):
        load_settings(environ={"FIREBOX_DATABASE_URL": "mysql://db/x"})
    for bad in ("file:///tmp/code", "s3://", "s3://UPPER", "s3://ab", "https://bucket/x"):
        with pytest.raises(SettingsError, match="code_store_url"):
            load_settings(environ={"FIREBOX_CODE_STORE_URL": bad})


def test_egress_allow_takes_cidrs_and_refuses_anything_else():
    s = load_settings(environ={"FIREBOX_EGRESS_ALLOW": "10.1.0.0/16, 192.168.5.7,fd00::/8"})
    assert s.egress_allow == "10.1.0.0/16, 192.168.5.7,fd00::/8"
    assert load_settings(environ={}).egress_allow == ""
    for bad in ("10.1.0.0/33", "example.com", "10.0.0.0/8;rm"):
        with pytest.raises(SettingsError, match="egress_allow"):
            load_settings(environ={"FIREBOX_EGRESS_ALLOW": bad})
