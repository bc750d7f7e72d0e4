"""Command-line options generated from the trainers' config dataclasses, so each default and help text
exists once: in the dataclass field.

A field describes its option in its ``metadata`` with :func:`opt`::

    @dataclass
    class EmotionConfig:
        epochs: int = field(default=60, metadata=opt("Passes over FER2013 train.", min=1))
        data_root: str | None = field(default=None, metadata=opt("Data root ...", name="--data", path="dir"))

and the click command takes them with :func:`config_options`, then builds the config back with
:func:`config_from_options`::

    @train.command("emotion")
    @config_options(EmotionConfig)
    def emotion(**values): cfg = config_from_options(EmotionConfig, values)

Mapping (type hints of the dataclass): ``int``/``float``/``str`` -> that type (``min``/``max`` ->
``click.IntRange``/``FloatRange``; ``choices`` -> ``click.Choice``, values of the field's type; ``path``
-> ``click.Path``); ``bool`` -> a flag (``--name`` when the default is ``False``, ``--name/--no-name``
when it is ``True``); ``X | None`` -> ``X`` with default ``None``; ``list[X]``/``tuple[X, ...]`` -> a
repeatable option (``multiple=True``). The option is ``--field-name`` unless ``name`` says otherwise;
its value lands in the field's name. Fields whose metadata says ``cli=False`` (and ``dict`` fields) get
no option. The option's default is the field's default (``show_default``), never a copy; a field with a
``default_factory`` (e.g. a user cache folder), or a path whose default is ``""`` (unset), gets ``None``, and
the dataclass decides when the config is made.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Callable, Iterable, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])
C = TypeVar("C")

_KEY = "faceforge.cli"


def opt(help: str = "", *, name: str | None = None, min: float | None = None, max: float | None = None,
        min_open: bool = False, max_open: bool = False, choices: Iterable[Any] | None = None,
        path: str | None = None, exists: bool = False, metavar: str | None = None, cli: bool = True,
        show_default: bool | str = True, aliases: Iterable[str] = (), sep: str | None = None) -> dict[str, Any]:
    """Field metadata describing the field's command-line option (see the module docstring).

    Args:
        help: the option's help text (also the field's documentation).
        name: the option's name when it is not ``--field-name`` (e.g. ``"--data"``); for a ``True``-default
            flag, the name of its "on" switch (the "off" switch is ``--no-<name>``).
        min, max, min_open, max_open: a numeric range (``click.IntRange``/``FloatRange``).
        choices: the accepted values (``click.Choice``).
        path: ``"dir"`` or ``"file"`` or ``"any"``: a ``click.Path`` (``exists`` to require it).
        metavar: the value's name in ``--help``.
        cli: ``False``: no option for this field.
        show_default: click's ``show_default`` (a string replaces the shown default, e.g. ``"the spec's"``).
        aliases: further names of the option (``("-o",)``).
        sep: for a list field, one value split at this separator (``--widths 16,32,64``) instead of a repeated
            option; each part is converted to the list's item type.

    Returns:
        ``{"faceforge.cli": {...}}`` for ``dataclasses.field(metadata=...)``.
    """
    return {_KEY: {"help": help, "name": name, "min": min, "max": max, "min_open": min_open, "max_open": max_open,
                   "choices": tuple(choices) if choices is not None else None, "path": path, "exists": exists,
                   "metavar": metavar, "cli": cli, "show_default": show_default, "aliases": tuple(aliases), "sep": sep}}


def _spec(f: dataclasses.Field) -> dict[str, Any]:
    return {**opt()[_KEY], **(f.metadata.get(_KEY) or {})}


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return None


def _unwrap(hint: Any) -> tuple[Any, bool, bool]:
    """``(base type, optional, repeated)`` of a type hint."""
    optional = repeated = False
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        optional = len(args) < len(typing.get_args(hint))
        hint = args[0] if len(args) == 1 else str
        origin = typing.get_origin(hint)
    if origin in (list, tuple) or hint in (list, tuple):
        repeated = True
        args = [a for a in typing.get_args(hint) if a is not Ellipsis]
        hint = args[0] if args else str
    return hint, optional, repeated


def _click_type(base: Any, spec: dict[str, Any]) -> click.ParamType | type:
    if spec["choices"] is not None:
        return click.Choice(spec["choices"])
    if spec["path"]:
        return click.Path(file_okay=spec["path"] != "dir", dir_okay=spec["path"] != "file", exists=spec["exists"])
    if base in (int, float) and (spec["min"] is not None or spec["max"] is not None):
        kind = click.IntRange if base is int else click.FloatRange
        kwargs = {"min_open": spec["min_open"], "max_open": spec["max_open"]} if base is float else {}
        return kind(spec["min"], spec["max"], **kwargs)
    if base in (int, float, str):
        return base
    if base is Path:
        return click.Path()
    raise TypeError(f"no command-line type for {base!r}: give the field opt(cli=False) or choices/path")


def field_options(cls: type) -> list[click.Option]:
    """The click options of every CLI field of dataclass ``cls``, in field order.

    Raises:
        TypeError: a field whose type has no option mapping and is not marked ``cli=False``.
    """
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        spec = _spec(f)
        base, optional, repeated = _unwrap(hints[f.name])
        if not spec["cli"] or base is dict or typing.get_origin(base) is dict:
            continue
        default = _default(f)
        name = spec["name"] or "--" + f.name.replace("_", "-")
        common = {"help": spec["help"] or None, "show_default": spec["show_default"]}
        if base is bool:
            if default:
                decls = [f"{name}/--no-{name[2:]}", f.name]
            else:
                decls, common["is_flag"] = [name, f.name], True
            out.append(click.Option(decls, default=bool(default), **common))
            continue
        if repeated and spec["sep"]:
            shown = spec["sep"].join(map(str, default)) if default else spec["show_default"]
            out.append(click.Option([*spec["aliases"], name, f.name], type=str, default=None, metavar=spec["metavar"],
                                    help=spec["help"] or None, show_default=shown if default else False))
            continue
        if f.default is dataclasses.MISSING and not repeated:
            default = None  # left unset, the field's default_factory runs when the config is made
        elif spec["path"] and default == "":
            default = None  # "" = unset (e.g. "the data root's folder"); click would check it as a path
        kwargs = {"type": _click_type(base, spec), "default": tuple(default or ()) if repeated else default,
                  "multiple": repeated, "metavar": spec["metavar"], **common}
        if default is None:
            kwargs["show_default"] = spec["show_default"] if isinstance(spec["show_default"], str) else False
        out.append(click.Option([*spec["aliases"], name, f.name], **kwargs))
    return out


def config_options(cls: type, *, exclude: Iterable[str] = (), defaults: dict[str, Any] | None = None) -> Callable[[F], F]:
    """A decorator adding :func:`field_options` of ``cls`` to a click command (after its own options).

    Args:
        cls: the config dataclass.
        exclude: field names to leave out (the command sets them itself).
        defaults: ``{field: (default, shown default)}`` for options whose default comes from elsewhere at run
            time (e.g. a StyleGAN2 preset: ``None`` shown as ``"the preset's"``); the dataclass default is
            not repeated.
    """
    exclude = set(exclude)
    defaults = defaults or {}

    def decorate(f: F) -> F:
        params = []
        for o in field_options(cls):
            if o.name in exclude:
                continue
            if o.name in defaults:
                o.default, o.show_default = defaults[o.name]
            params.append(o)
        f.__click_params__ = getattr(f, "__click_params__", []) + list(reversed(params))  # type: ignore[attr-defined]
        return f

    return decorate


def config_from_options(cls: type[C], values: dict[str, Any], **fixed: Any) -> C:
    """The config ``cls(...)`` from a command's keyword values: every key naming a field is taken (and
    removed from ``values``), tuples of repeated options become lists, ``fixed`` overrides."""
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name in values:
            value = values.pop(f.name)
            base, optional, repeated = _unwrap(hints[f.name])
            if value is None and not repeated and (not optional or f.default is dataclasses.MISSING):
                continue  # not given: the field's default (or default_factory) decides
            if repeated and _spec(f)["sep"]:
                if value is None:
                    continue  # not given: the field's default
                try:
                    value = [base(v) for v in str(value).split(_spec(f)["sep"]) if v.strip()]
                except ValueError:
                    raise click.BadParameter(f"{value!r} is not a {_spec(f)['sep']!r}-separated list of "
                                             f"{base.__name__}", param_hint="--" + f.name.replace("_", "-")) from None
            elif repeated and optional and value == ():
                value = None  # a repeatable option given no value: the field's "unset"
            elif repeated and isinstance(value, tuple) and typing.get_origin(hints[f.name]) is not tuple:
                value = list(value)
            if isinstance(value, Path) and base is str:
                value = str(value)
            kwargs[f.name] = value
    kwargs.update(fixed)
    return cls(**kwargs)
