"""One source per training setting: the config dataclasses.

Each setting is a dataclass field with its default and `metadata={"help": ...}` (plus
`"choices"` where only some values are valid), and its check is in `__post_init__`. From there:

    add_options(parser, RankerTrainConfig(), {"learning_rate": "--lr"})  # CLI options
    RankerTrainConfig(**options_from(args, ("learning_rate",)))        # ... read back
    @component_defaults(RankerTrainConfig())                              # KFP component defaults

`transformers.HfArgumentParser` builds a whole parser from all of a dataclass's fields; the CLI
needs sub-commands, a chosen subset of fields and its existing flag names, so this module adds
the chosen fields to an argparse (sub)parser instead. Light at import (standard library only).
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from pushgen.core.errors import ConfigError


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _scalar_type(hint: Any) -> Any:
    """`int | None` -> int; Literal[...] -> the type of its values."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        hint = args[0] if len(args) == 1 else str
    if typing.get_origin(hint) is typing.Literal:
        return type(typing.get_args(hint)[0])
    return hint


def _choices(f: dataclasses.Field, hint: Any) -> tuple | None:
    if "choices" in f.metadata:
        return tuple(f.metadata["choices"])
    if typing.get_origin(hint) is typing.Literal:
        return typing.get_args(hint)
    return None


def flag_for(name: str, flags: Mapping[str, str] | None = None) -> str:
    """The CLI flag of field `name`: `flags[name]` or `--name-with-dashes`."""
    return (flags or {}).get(name) or "--" + name.replace("_", "-")


def add_options(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    config: Any,
    names: Iterable[str] | Mapping[str, str | None],
) -> None:
    """Add the fields `names` of the dataclass instance `config` to `parser` as options.

    Type, default (the instance's value), choices and help come from the field; a mapping gives
    a field a flag other than `--name-with-dashes`. A bool field that defaults to False is a
    switch (`store_true`). The parsed value lands under the field's own name (`dest`).
    """
    fields = {f.name: f for f in dataclasses.fields(config)}
    hints = _hints(type(config))
    flags = dict(names) if isinstance(names, Mapping) else dict.fromkeys(names)
    for name in flags:
        f, default = fields[name], getattr(config, name)
        text = f.metadata.get("help", "").replace("%", "%%")
        flag = flag_for(name, flags)
        kwargs: dict[str, Any] = {"dest": name, "default": default}
        if not (default is None or default is False or default == ""):
            text = f"{text} (default: %(default)s)" if text else "(default: %(default)s)"
        if _scalar_type(hints[name]) is bool:
            if default is not False:
                raise TypeError(f"{name}: only bool settings that default to False are switches")
            kwargs["action"] = "store_true"
        else:
            kwargs["type"] = _scalar_type(hints[name])
            kwargs["choices"] = _choices(f, hints[name])
            kwargs["metavar"] = None if kwargs["choices"] else flag[2:].replace("-", "_").upper()
        parser.add_argument(flag, help=text or None, **kwargs)


def options_from(args: argparse.Namespace, names: Iterable[str]) -> dict[str, Any]:
    """{name: value} of the options `names` in `args` (as `add_options` stored them)."""
    return {name: getattr(args, name) for name in names}


def in_cli_terms(error: ConfigError, names: Iterable[str], flags: Mapping[str, str] | None = None):
    """`error` with each field name in `names` written as its CLI flag (`max_p_value` ->
    `--max-p-value`), so a bad option is reported in the terms the user typed."""
    message = str(error)
    for name in sorted(names, key=len, reverse=True):
        message = re.sub(rf"(?<![-\w]){re.escape(name)}\b", flag_for(name, flags), message)
    return ConfigError(message)


def component_defaults(*configs: Any, **renamed: Any) -> Callable:
    """Give a KFP component's keyword-only parameters their defaults from `configs` (dataclass
    instances, first match by field name wins) or from `renamed` (a parameter whose name is not
    the field's: `prompt_order=train.template.order`); put it under `@dsl.component`.

    kfp reads the defaults through `inspect.signature` (so the compiled spec carries them) but
    runs the function's source text in the container, where a default such as
    `RankerTrainConfig.batch_size` would not resolve; keyword-only parameters need no default in
    the source, and every run passes them (kfp fills in the spec's default).
    """

    def apply(func: Callable) -> Callable:
        code = func.__code__
        kwonly = code.co_varnames[code.co_argcount : code.co_argcount + code.co_kwonlyargcount]
        defaults = dict(func.__kwdefaults__ or {})
        for name in kwonly:
            if name in defaults:
                continue
            if name in renamed:
                defaults[name] = renamed[name]
                continue
            holder = next(
                (c for c in configs if name in {f.name for f in dataclasses.fields(c)}), None
            )
            if holder is None:
                raise TypeError(f"{func.__name__}: no config has a setting named {name!r}")
            defaults[name] = getattr(holder, name)
        func.__kwdefaults__ = defaults
        return func

    return apply
