"""``lanspread config`` and what the settings do to other commands."""

from __future__ import annotations

import json
import socket
from pathlib import Path

from support.cli import invoke


def show(env: dict[str, str]) -> dict[str, dict[str, object]]:
    result = invoke("config", "show", "--json", env=env)
    assert result.returncode == 0, result.stderr
    data: dict[str, dict[str, object]] = json.loads(result.stdout)["settings"]
    return data


def test_set_then_show_says_where_each_value_comes_from(tmp_path: Path) -> None:
    env = {"LANSPREAD_CONFIG": str(tmp_path / "conf" / "lanspread.toml")}
    before = show(env)
    assert before["name"] == {"value": socket.gethostname().split(".")[0], "source": "default"}
    assert before["port"] == {"value": 24470, "source": "default"}
    assert invoke("config", "set", "games_dir", tmp_path / "g", env=env).returncode == 0
    assert invoke("config", "set", "port", "7000", env=env).returncode == 0
    assert invoke("config", "set", "party_key", "abc123", env=env).returncode == 0
    after = show(env)
    assert after["games_dir"] == {"value": str(tmp_path / "g"), "source": "file"}
    assert after["catalog"] == {"value": str(tmp_path / "g" / "catalog.json"), "source": "default"}
    assert after["port"] == {"value": 7000, "source": "file"}
    # another port than the default shows in the default name (two peers on one machine)
    host = socket.gethostname().split(".")[0]
    assert after["name"] == {"value": f"{host}:7000", "source": "default"}
    assert after["party_key"] == {"value": "abc123", "source": "file"}
    overridden = show({**env, "LANSPREAD_GAMES_DIR": "/elsewhere"})
    assert overridden["games_dir"] == {
        "value": "/elsewhere",
        "source": "environment (LANSPREAD_GAMES_DIR)",
    }
    table = invoke("config", "show", env=env).stdout
    assert f"settings file: {tmp_path / 'conf' / 'lanspread.toml'}" in table
    assert invoke("config", "unset", "port", env=env).returncode == 0
    assert show(env)["port"]["source"] == "default"


def test_bad_values_are_one_sentence(tmp_path: Path) -> None:
    env = {"LANSPREAD_CONFIG": str(tmp_path / "lanspread.toml")}
    port = invoke("config", "set", "port", "seven", env=env)
    assert port.returncode == 2 and "port must be a port number" in port.stderr
    provider = invoke("config", "set", "provider", "nope", env=env)
    assert provider.returncode == 2 and "provider 'nope' is not installed" in provider.stderr
    assert not (tmp_path / "lanspread.toml").exists()


def test_the_games_dir_setting_feeds_local_commands_and_flags_win(tmp_path: Path) -> None:
    toml = tmp_path / "lanspread.toml"
    games, other = tmp_path / "games", tmp_path / "other"
    for folder in (games / "quake", other / "doom"):
        folder.mkdir(parents=True)
        (folder / "version.ini").write_text("1.0\n")
    toml.write_text(f'games_dir = "{games}"\n')
    env = {"LANSPREAD_CONFIG": str(toml), "LANSPREAD_STATE_DIR": str(tmp_path / "state")}
    listed = invoke("scan", "--json", env=env)
    assert [g["id"] for g in json.loads(listed.stdout)] == ["quake"]
    flagged = invoke("scan", "--json", "--games-dir", other, env=env)
    assert [g["id"] for g in json.loads(flagged.stdout)] == ["doom"]
    from_env = invoke("scan", "--json", env={**env, "LANSPREAD_GAMES_DIR": str(other)})
    assert [g["id"] for g in json.loads(from_env.stdout)] == ["doom"]
    assert invoke("catalog", "scan", env=env).returncode == 0  # GAMES_DIR from the setting
    assert (games / "catalog.json").is_file()


def test_a_broken_settings_file_stops_only_what_reads_it(tmp_path: Path) -> None:
    toml = tmp_path / "lanspread.toml"
    toml.write_text("port = [\n")
    env = {"LANSPREAD_CONFIG": str(toml), "LANSPREAD_STATE_DIR": str(tmp_path / "state")}
    scan = invoke("scan", env=env)
    assert scan.returncode == 1
    assert f"settings file {toml} is not valid TOML" in scan.stderr
    assert "Traceback" not in scan.stderr
    assert invoke("plugins", env=env).returncode == 0
    setting = invoke("config", "set", "name", "bob", env=env)
    assert setting.returncode == 1 and toml.read_text() == "port = [\n"
