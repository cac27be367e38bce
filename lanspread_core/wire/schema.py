"""Strictly checked JSON records: dataclass field types are the validation.

A :class:`Record` subclass is a frozen dataclass whose field types say what
JSON it accepts: ``str``, ``int`` (never a boolean), ``float`` (any finite
JSON number), ``bool``, ``tuple[X, ...]`` (a JSON array), ``dict[str, Any]``
(an opaque JSON object) or another :class:`Record` (a nested JSON object),
each optionally wrapped in ``Annotated[..., Check(...)]``. Every fault is one
:class:`~lanspread_core.wire.errors.MalformedMessage` sentence that names the
place (``LibrarySnapshot.games[3].size``) and never echoes much of the value.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Self, TypeVar

from lanspread_core.wire.errors import MalformedMessage

MAX_INT = 2**63 - 1


@dataclass(frozen=True)
class Check:
    """A constraint on a field's value beyond its JSON type."""

    test: Callable[[Any], bool]
    wants: str  # completes "<field> must be ..."


_Converter = Callable[[Any, str], Any]


class Record:
    """A dataclass that maps to and from one strictly checked JSON object."""

    _FIELDS: ClassVar[tuple[tuple[str, _Converter], ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._FIELDS = ()  # filled by _bind once the subclass is a dataclass

    @classmethod
    def _bind(cls) -> None:
        hints = typing.get_type_hints(cls, include_extras=True)
        cls._FIELDS = tuple(
            (f.name, _converter(hints[f.name]))
            for f in dataclasses.fields(cls)  # type: ignore[arg-type]
        )

    @classmethod
    def _from_fields(cls, obj: dict[str, Any], where: str) -> Self:
        values: dict[str, Any] = {}
        for name, convert in cls._FIELDS:
            if name not in obj:
                raise MalformedMessage(f"{where} is missing the field {name!r}")
            values[name] = convert(obj[name], f"{where}.{name}")
        return cls(**values)

    def _to_fields(self) -> dict[str, Any]:
        return {name: _to_json_value(getattr(self, name)) for name, _ in self._FIELDS}


_R = TypeVar("_R", bound=type[Record])


def record(cls: _R) -> _R:
    """Make ``cls`` (a frozen dataclass deriving from :class:`Record`) checkable."""
    cls._bind()
    return cls


def _converter(tp: Any) -> _Converter:
    origin = typing.get_origin(tp)
    if origin is Annotated:
        base, *meta = typing.get_args(tp)
        inner = _converter(base)
        checks = [m for m in meta if isinstance(m, Check)]

        def checked(value: Any, where: str) -> Any:
            value = inner(value, where)
            for check in checks:
                if not check.test(value):
                    raise MalformedMessage(f"{where} must be {check.wants}, not {describe(value)}")
            return value

        return checked
    if tp is str:
        return _expect(str, "a string")
    if tp is int:
        return _expect_int
    if tp is float:
        return _expect_float
    if tp is bool:
        return _expect(bool, "a boolean")
    if origin is dict:
        return _expect(dict, "a JSON object")
    if origin is tuple:
        item_tp, ellipsis = typing.get_args(tp)
        assert ellipsis is Ellipsis, "message fields use tuple[X, ...]"
        item = _converter(item_tp)

        def array(value: Any, where: str) -> tuple[Any, ...]:
            if not isinstance(value, list):
                raise MalformedMessage(f"{where} must be an array, not {describe(value)}")
            return tuple(item(v, f"{where}[{i}]") for i, v in enumerate(value))

        return array
    if isinstance(tp, type) and issubclass(tp, Record):
        nested: type[Record] = tp

        def obj(value: Any, where: str) -> Record:
            if not isinstance(value, dict):
                raise MalformedMessage(f"{where} must be a JSON object, not {describe(value)}")
            return nested._from_fields(value, where)

        return obj
    raise TypeError(f"no wire converter for field type {tp!r}")


def _expect(kind: type, wants: str) -> _Converter:
    def convert(value: Any, where: str) -> Any:
        if not isinstance(value, kind):
            raise MalformedMessage(f"{where} must be {wants}, not {describe(value)}")
        return value

    return convert


def _expect_int(value: Any, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise MalformedMessage(f"{where} must be an integer, not {describe(value)}")
    return value


def _expect_float(value: Any, where: str) -> float:
    # JSON does not tell 30 from 30.0, so an integer is a fine float; a boolean is not
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise MalformedMessage(f"{where} must be a number, not {describe(value)}")
    try:
        number = float(value)
    except OverflowError:
        raise MalformedMessage(f"{where} must be a finite number, not a huge one") from None
    if not math.isfinite(number):
        raise MalformedMessage(f"{where} must be a finite number")
    return number


def _to_json_value(value: Any) -> Any:
    if isinstance(value, Record):
        return value._to_fields()
    if isinstance(value, (tuple, list)):
        return [_to_json_value(v) for v in value]
    return value


def describe(value: Any) -> str:
    """A short description of a bad value that never echoes much of it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "a number out of range" if abs(value) > MAX_INT else f"{value}"
    if isinstance(value, float):
        return "a fractional number"
    if isinstance(value, str):
        return f"the string {clip(value)!r}"
    if isinstance(value, list | tuple):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def clip(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
