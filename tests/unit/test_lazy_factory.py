"""``lazy("module:attr")``: a record factory that imports its module on first call."""

from __future__ import annotations

import importlib
import sys
import types
from pathlib import Path

import pytest

from lanspread_core import ArchiveProvider, ProbeResult, ProviderRecord, hookimpl, lazy
from lanspread_core.errors import NoProviderCanHandle, PluginError
from lanspread_core.plugin.registry import ENV_LOAD, load_registry
from lanspread_core.plugin.selection import build_provider, choose

PROVIDER_MODULE = """
from lanspread_core import ArchiveProvider, ProbeResult

IMPORTS = []
IMPORTS.append(1)

class Yes(ArchiveProvider):
    def probe(self, archives):
        return ProbeResult(ok=True)

class Outer:
    class Inner:
        pass

NOT_CALLABLE = 42
"""


@pytest.fixture
def module_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest):
    """A real module on disk, with a name no other test uses, not imported yet."""
    name = f"lazy_target_{request.node.name.split('[')[0]}"
    (tmp_path / f"{name}.py").write_text(PROVIDER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    yield name
    sys.modules.pop(name, None)


def _plugin(*records: ProviderRecord) -> types.SimpleNamespace:
    @hookimpl
    def lanspread_providers() -> list[ProviderRecord]:
        return list(records)

    return types.SimpleNamespace(lanspread_providers=lanspread_providers)


def test_the_module_is_imported_on_the_first_call_and_only_once(module_name: str) -> None:
    factory = lazy(f"{module_name}:Yes")
    record = ProviderRecord(name="yes", factory=factory)
    assert module_name not in sys.modules
    first, second = record.factory(), record.factory()
    module = sys.modules[module_name]
    assert isinstance(first, module.Yes) and isinstance(second, module.Yes)
    assert first is not second  # a factory, not a cached instance
    assert module.IMPORTS == [1]
    assert repr(factory) == f"lazy('{module_name}:Yes')"


def test_a_dotted_attribute_is_followed(module_name: str) -> None:
    built = lazy(f"{module_name}:Outer.Inner")()
    assert type(built).__qualname__ == "Outer.Inner"


@pytest.mark.parametrize("target", ["no_colon", "mod:", ":attr", "a b:c", "mod:attr:more", ""])
def test_a_malformed_target_is_refused_at_registration(target: str) -> None:
    with pytest.raises(ValueError, match="must look like 'package.module:attribute'"):
        lazy(target)


def test_a_missing_module_is_one_plugin_error_and_is_tried_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    factory = lazy("lazy_target_late:Yes")
    with pytest.raises(PluginError, match="cannot load 'lazy_target_late:Yes'.*reinstall"):
        factory()
    (tmp_path / "lazy_target_late.py").write_text(PROVIDER_MODULE)
    importlib.invalidate_caches()
    try:
        assert factory().probe([]).ok
    finally:
        sys.modules.pop("lazy_target_late", None)


def test_a_missing_attribute_or_one_that_is_not_callable_is_a_plugin_error(
    module_name: str,
) -> None:
    with pytest.raises(PluginError, match="cannot load"):
        lazy(f"{module_name}:Nope")()
    with pytest.raises(PluginError, match="not callable"):
        lazy(f"{module_name}:NOT_CALLABLE")()


def test_loading_the_registry_does_not_build_or_import(
    module_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_LOAD, "")
    record = ProviderRecord(name="yes", factory=lazy(f"{module_name}:Yes"), handles=("all",))
    registry = load_registry(extra=[("yes", _plugin(record))])
    assert registry.providers["yes"].handles == ("all",)
    assert module_name not in sys.modules


def test_a_provider_that_cannot_load_is_skipped_by_auto_and_named_by_name(
    module_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_LOAD, "")
    gone = ProviderRecord(name="gone", factory=lazy("lanspread_not_installed.provider:Gone"))
    yes = ProviderRecord(name="yes", factory=lazy(f"{module_name}:Yes"))
    registry = load_registry(extra=[("gone", _plugin(gone)), ("yes", _plugin(yes))])
    archive = tmp_path / "game.eti"
    archive.write_bytes(b"x")

    assert choose(registry, "auto", [archive]).name == "yes"
    with pytest.raises(PluginError, match="^provider 'gone' cannot be used: cannot load"):
        build_provider(registry, "gone")
    with pytest.raises(PluginError, match="provider 'gone' cannot be used"):
        choose(registry, "gone", [archive])


def test_auto_reports_the_load_failure_among_the_reasons(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_LOAD, "")

    class Never(ArchiveProvider):
        def probe(self, archives):
            return ProbeResult(ok=False, reason="never reads anything")

    gone = ProviderRecord(name="gone", factory=lazy("lanspread_not_installed.provider:Gone"))
    never = ProviderRecord(name="never", factory=Never)
    registry = load_registry(extra=[("gone", _plugin(gone)), ("never", _plugin(never))])
    archive = tmp_path / "game.eti"
    archive.write_bytes(b"x")
    with pytest.raises(NoProviderCanHandle) as err:
        choose(registry, "auto", [archive])
    assert "gone: cannot load 'lanspread_not_installed.provider:Gone'" in str(err.value)
    assert "never: never reads anything" in str(err.value)
