import tomllib
from pathlib import Path

import click
import pytest

from lanspread_core.cli.settings import (
    Settings,
    SettingsError,
    default_map,
    load_settings,
    parse_value,
    set_value,
    toml_value,
)
from lanspread_core.errors import UsageError


@pytest.mark.parametrize(
    "text",
    ['Bob "the" Builder', "C:\\Games\\Half Life", "tab\there", "new\nline", "ünï", "\x00\x1f\x7f"],
)
def test_strings_are_escaped_so_tomllib_reads_them_back(text: str) -> None:
    assert tomllib.loads(f"name = {toml_value(text)}")["name"] == text


def test_set_keeps_comments_and_other_keys_and_replaces_its_own_line(tmp_path: Path) -> None:
    path = tmp_path / "lanspread.toml"
    path.write_text('# mine\nname = "alice"\nmystery = [1, 2]\n\n[later]\nx = 1\n')
    set_value("name", "bob", path)
    set_value("port", 7000, path)
    text = path.read_text()
    assert text.startswith('# mine\nname = "bob"\nmystery = [1, 2]\n')
    data = tomllib.loads(text)
    assert data["port"] == 7000 and data["later"] == {"x": 1}  # not inside [later]
    settings = load_settings(path)
    assert (settings.name, settings.port, settings.extra["mystery"]) == ("bob", 7000, [1, 2])
    set_value("name", None, path)
    assert load_settings(path).name is None and "# mine" in path.read_text()


def test_set_makes_the_file_and_its_folder(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "lanspread.toml"
    set_value("games_dir", "/srv/games", path)
    assert load_settings(path).games_dir == Path("/srv/games")


def test_a_broken_file_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "lanspread.toml"
    path.write_text('name = "unterminated\n')
    with pytest.raises(SettingsError, match="is not valid TOML"):
        load_settings(path)
    with pytest.raises(SettingsError, match="is not valid TOML"):
        set_value("name", "bob", path)
    assert path.read_text() == 'name = "unterminated\n'


@pytest.mark.parametrize(
    ("body", "words"),
    [("port = 70000", "port must be a port number"), ('games_dir = ""', "non-empty string")],
)
def test_a_wrong_value_in_the_file_is_one_sentence(tmp_path: Path, body: str, words: str) -> None:
    path = tmp_path / "lanspread.toml"
    path.write_text(body + "\n")
    with pytest.raises(SettingsError, match=words):
        load_settings(path)


def test_a_missing_file_is_empty_settings(tmp_path: Path) -> None:
    assert load_settings(tmp_path / "none.toml") == Settings(tmp_path / "none.toml")


def test_parse_value_checks_and_makes_paths_absolute(tmp_path: Path) -> None:
    assert parse_value("port", "7000") == 7000
    assert Path(parse_value("catalog", "x.json")).is_absolute()
    with pytest.raises(UsageError, match="port must be a port number"):
        parse_value("port", "70000")
    with pytest.raises(UsageError, match="there is no setting 'colour'"):
        parse_value("colour", "red")


def test_settings_feed_only_options_they_name() -> None:
    @click.command()
    @click.option("--games-dir", envvar="LANSPREAD_GAMES_DIR")
    @click.option("--name")  # a game's name here, not the peer's
    def add(games_dir: str, name: str) -> None: ...

    @click.command()
    @click.option("--listen")
    @click.option("--name")
    @click.option("--provider", envvar="LANSPREAD_PROVIDER")
    def run(listen: str, name: str, provider: str) -> None: ...

    group = click.Group(commands={"add": add})
    settings = Settings(Path("x"), games_dir=Path("/g"), name="alice", port=7000, provider="unrar")
    assert default_map(group, settings) == {"add": {"games_dir": "/g"}}
    assert default_map(run, settings) == {
        "listen": "0.0.0.0:7000",
        "name": "alice",
        "provider": "unrar",
    }


def test_a_relative_path_in_the_file_is_relative_to_the_file(tmp_path: Path) -> None:
    path = tmp_path / "conf" / "lanspread.toml"
    path.parent.mkdir()
    path.write_text('games_dir = "../games"\ncatalog = "/abs/catalog.json"\n')
    settings = load_settings(path)
    assert settings.games_dir == tmp_path / "conf" / ".." / "games"
    assert settings.catalog == Path("/abs/catalog.json")
