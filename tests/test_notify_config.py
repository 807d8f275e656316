"""data/notify.toml: the shipped file, one-line errors naming file and key, the env webhook."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path

import pytest

from tower.notify.channels import (
    LogChannel,
    WebhookChannel,
    build_channels,
    channel_kinds,
    channel_secrets,
    register_kind,
)
from tower.notify.config import ChannelConfig, NotifyConfig, NotifyConfigError, load_notify
from tower.settings import DEFAULT_DATA_DIR, Settings, SettingsError, load_settings


def _write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "notify.toml"
    path.write_text(body, encoding="utf-8")
    return path


def test_the_shipped_file_is_one_log_channel_on_what_people_act_on() -> None:
    config = load_notify(DEFAULT_DATA_DIR / "notify.toml")
    [log] = config.channels
    assert (log.name, log.kind) == ("log", "log")
    assert log.topics == ("exception.*", "warehouse.*", "customer.delay")
    assert log.subscribes("exception.opened") and not log.subscribes("customer.milestone")
    assert config.dispatch_every_s == 2.0
    assert config.milestones.shipped == ("tracking.assigned", "in_transit")
    channels = build_channels(config, {})
    assert isinstance(channels["log"], LogChannel)


def test_the_commented_webhook_example_is_valid() -> None:
    text = (DEFAULT_DATA_DIR / "notify.toml").read_text(encoding="utf-8")
    example = text.split("# [[channels]]", 1)[1].split("\n\n", 1)[0]
    body = "[[channels]]" + "\n".join(line.removeprefix("# ") for line in example.splitlines())
    config = NotifyConfig.model_validate(tomllib.loads(body))
    [hook] = config.channels
    assert hook.kind == "webhook" and hook.topics == ("exception.*",)
    assert hook.subscribes("exception.escalated") and not hook.subscribes("customer.delay")


def test_a_missing_file_is_the_defaults(tmp_path: Path) -> None:
    config = load_notify(tmp_path / "nope.toml")
    assert [c.name for c in config.channels] == ["log"]


@pytest.mark.parametrize(("body", "key", "why"), [
    ("[[channels]]\nname = 'h'\nkind = 'log'\nmax_attempts = 0\n", "channels.0.max_attempts",
     "greater than or equal to 1"),
    ("[[channels]]\nname = 'h'\nkind = 'webhook'\nsecret_env = 'S'\n", "channels.0", "needs a url"),
    ("[[channels]]\nname = 'h'\nkind = 'webhook'\nurl = 'http://x/'\n", "channels.0", "needs secret_env"),
    ("[[channels]]\nname = 'h'\nkind = 'webhook'\nurl = 'ftp://x/'\nsecret_env = 'S'\n",
     "channels.0.url", "http:// or https://"),
    ("[[channels]]\nname = 'h'\nkind = 'pigeon'\n", "channels.0.kind", "unknown channel kind 'pigeon'"),
    ("[[channels]]\nname = 'h'\nkind = 'log'\n[[channels]]\nname = 'h'\nkind = 'log'\n", "channels",
     "'h' appears twice"),
    ("[[channels]]\nname = 'h'\nkind = 'log'\nbackoff_base_s = 10\nbackoff_cap_s = 5\n", "channels.0",
     "backoff_cap_s must be at least"),
    ("[[channels]]\nname = 'h'\nkind = 'log'\ncolour = 'red'\n", "channels.0.colour", "Extra inputs"),
    ("[milestones]\nstale_after_h = -1\n", "milestones.stale_after_h", "greater than 0"),
    ("dispatch_every_s = 'often'\n", "dispatch_every_s", "valid number"),
    ("[[channels]\n", "", "not valid TOML"),
])
def test_a_bad_file_names_the_file_the_key_and_why(tmp_path: Path, body: str, key: str, why: str) -> None:
    path = _write(tmp_path, body)
    with pytest.raises(NotifyConfigError) as err:
        load_notify(path)
    message = str(err.value)
    assert message.startswith(f"{path}: {key}") and why in message


def test_env_webhook_adds_a_channel_on_every_topic() -> None:
    settings = Settings(TOWER_WEBHOOK_URL="https://hooks.example.com/t",  # type: ignore[call-arg]
                        TOWER_WEBHOOK_SECRET="k3y")
    config = load_notify(DEFAULT_DATA_DIR / "notify.toml", settings)
    assert [c.name for c in config.channels] == ["log", "webhook"]
    hook = config.by_name["webhook"]
    assert hook.url == "https://hooks.example.com/t" and hook.subscribes("anything.at.all")
    channels = build_channels(config, channel_secrets(settings))
    assert isinstance(channels["webhook"], WebhookChannel)
    assert "k3y" not in repr(channels["webhook"]) and "k3y" not in repr(settings)


def test_env_webhook_needs_its_secret(tmp_path: Path) -> None:
    settings = Settings(TOWER_WEBHOOK_URL="https://hooks.example.com/t")  # type: ignore[call-arg]
    with pytest.raises(NotifyConfigError, match="TOWER_WEBHOOK_SECRET is not"):
        load_notify(DEFAULT_DATA_DIR / "notify.toml", settings)
    path = _write(tmp_path, "[[channels]]\nname = 'webhook'\nkind = 'log'\n")
    both = Settings(TOWER_WEBHOOK_URL="https://h/", TOWER_WEBHOOK_SECRET="k")  # type: ignore[call-arg]
    with pytest.raises(NotifyConfigError, match="has one already"):
        load_notify(path, both)


def test_settings_check_the_webhook_url() -> None:
    with pytest.raises(SettingsError, match="bad setting TOWER_WEBHOOK_URL: must start with http"):
        load_settings(TOWER_WEBHOOK_URL="hooks.example.com")
    assert load_settings(TOWER_WEBHOOK_URL="", TOWER_WEBHOOK_SECRET="").webhook_url is None


def test_a_missing_secret_env_fails_on_build(tmp_path: Path) -> None:
    path = _write(tmp_path, "[[channels]]\nname = 'ops'\nkind = 'webhook'\nurl = 'http://x/'\n"
                            "secret_env = 'OPS_SECRET'\n")
    config = load_notify(path)
    with pytest.raises(NotifyConfigError, match=r"OPS_SECRET .* is not set"):
        build_channels(config, {})
    assert isinstance(build_channels(config, {"OPS_SECRET": "k"})["ops"], WebhookChannel)


def test_a_new_kind_plugs_in(tmp_path: Path) -> None:
    class Sms:
        def __init__(self, name: str, sender: str) -> None:
            self.name = name
            self.sender = sender

        def send(self, message: object) -> None:
            pass

    def factory(config: ChannelConfig, secrets: Mapping[str, str]) -> Sms:
        return Sms(config.name, str(config.options["sender"]))

    path = _write(tmp_path, "[[channels]]\nname = 'sms'\nkind = 'sms'\ntopics = ['customer.*']\n"
                            "options = { sender = 'Tower' }\n")
    with pytest.raises(NotifyConfigError, match="unknown channel kind 'sms'"):
        load_notify(path)
    register_kind("sms", factory)
    try:
        channels = build_channels(load_notify(path), {})
        assert isinstance(channels["sms"], Sms) and channels["sms"].sender == "Tower"
    finally:
        from tower.notify import channels as module

        module._KINDS.pop("sms")
    assert "sms" not in channel_kinds()
