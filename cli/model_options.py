"""Command-line options generated from a pydantic config: one source for defaults, help and validation.

Hand-written because typer has no pydantic-model expansion (it builds options from a function's signature only),
so this builds that signature: one `typer.Option` per scalar field, its default the field's default and its help
the field's description, as litgpt builds its CLI from signatures. Values stay strings on the way in and pydantic
validates them with the rest of the config (`cli.settings.resolve`), so an option obeys the same rules as the
field and a bad value is named by its option. Nested models and lists are not options: they are set with
`--set SECTION.FIELD.SUBFIELD=VALUE` like any other key.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from pydantic import BaseModel

_METAVARS = {int: "INTEGER", float: "FLOAT", str: "TEXT", Path: "PATH", datetime: "ISO-8601"}


@dataclass(frozen=True)
class Given:
    """One option the user set: where it goes in the config and how it was typed (for error messages)."""

    key: str  # dotted config key, e.g. serve.port
    option: str  # e.g. --port
    value: Any


@dataclass
class OptionGroup:
    """The fields of `model` as options; the values given land under the config key `section`.

    `rename` maps a field to its option name (`{"model_name": "--model"}`), `skip` leaves fields out (set
    elsewhere), `flatten` turns the scalar fields of a nested model into options too, `extra` adds typer.Option
    arguments (an `envvar`), `required` makes an option compulsory.
    """

    model: type[BaseModel]
    section: str
    rename: dict[str, str] = field(default_factory=dict)
    skip: Iterable[str] = ()
    flatten: Iterable[str] = ()
    extra: dict[str, dict] = field(default_factory=dict)
    required: Iterable[str] = ()
    params: dict[str, tuple[str, str, bool]] = field(default_factory=dict, init=False)  # -> (key, option, negated)

    def parameters(self) -> list[inspect.Parameter]:
        self.params.clear()
        return list(self._parameters(self.model, ()))

    def _parameters(self, model: type[BaseModel], path: tuple[str, ...]):
        for name, info in model.model_fields.items():
            dotted = ".".join((*path, name))
            if name in self.skip and not path:
                continue
            scalar = _scalar(info.annotation)
            if scalar is None:
                nested = _model(info.annotation)
                if nested is not None and dotted in self.flatten:
                    yield from self._parameters(nested, (*path, name))
                continue
            option = self.rename.get(dotted, "--" + name.replace("_", "-"))
            negate = scalar is bool and info.default is True
            option = "--no-" + option.removeprefix("--") if negate else option
            param = ("no_" if negate else "") + name  # the command's parameter: the field's own name
            self.params[param] = (f"{self.section}.{dotted}", option, negate)
            yield _parameter(param, option, scalar, info, self.extra.get(dotted, {}), dotted in self.required)

    def given(self, values: dict[str, Any], ctx: typer.Context) -> list[Given]:
        """The options set on the command line or by their environment variable, not left at their default."""
        out = []
        for param, (key, option, negate) in self.params.items():
            if ctx.get_parameter_source(param).name in ("COMMANDLINE", "ENVIRONMENT"):
                out.append(Given(key, option, not values[param] if negate else values[param]))
        return out


def _strip_optional(annotation: Any) -> Any:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return args[0] if len(args) == 1 else annotation
    return annotation


def _scalar(annotation: Any) -> Any:
    """The scalar type an option can carry (bool, int, float, str, Path, datetime, a Literal), else None."""
    inner = _strip_optional(annotation)
    if typing.get_origin(inner) is Literal or inner is bool or inner in _METAVARS:
        return inner
    return None


def _model(annotation: Any) -> type[BaseModel] | None:
    inner = _strip_optional(annotation)
    return inner if isinstance(inner, type) and issubclass(inner, BaseModel) else None


def _parameter(name: str, option: str, scalar: Any, info, extra: dict, required: bool) -> inspect.Parameter:
    default = ... if required else info.default
    help_text = info.description or ""
    if scalar is bool:  # one flag, the one that changes the default: `--no-follow-events` for a True default
        help_text = f"Turn off (on by default): {help_text}" if info.default is True else help_text
        opt = typer.Option(option, **({"help": help_text, "show_default": False} | extra))
        return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=False, annotation=Annotated[bool, opt])
    if typing.get_origin(scalar) is Literal:
        metavar = "[" + "|".join(str(a) for a in typing.get_args(scalar)) + "]"
    else:
        metavar = _METAVARS[scalar]
    # A string on the way in: pydantic, not click, checks the value (same rules and message as in a YAML file).
    kwargs = {"help": help_text, "metavar": metavar, "show_default": default is not None} | extra
    opt = typer.Option(option, **kwargs)
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=Annotated[str, opt])


def with_options(*groups: OptionGroup) -> Callable[[Callable], Callable]:
    """Give a command the options of `groups` after its own; it receives what was set as `given: list[Given]`.

    `func` keeps every parameter but `given`; typer reads the combined signature of the returned function.
    """

    def wrap(func: Callable) -> Callable:
        own = [p for p in inspect.signature(func, eval_str=True).parameters.values() if p.name != "given"]
        own = [p.replace(kind=p.KEYWORD_ONLY) for p in own]  # typer passes keywords; order sets --help's order
        generated = [p for group in groups for p in group.parameters()]
        names = [p.name for p in own + generated]
        assert len(names) == len(set(names)), f"{func.__name__}: an option is defined twice"

        def command(ctx: typer.Context, **values: Any) -> Any:
            given = [g for group in groups for g in group.given(values, ctx)]
            return func(**{p.name: values[p.name] for p in own}, given=given)

        command.__name__, command.__doc__, command.__module__ = func.__name__, func.__doc__, func.__module__
        context = inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, annotation=typer.Context)
        command.__signature__ = inspect.Signature([context, *own, *generated])
        command.option_groups = groups
        return command

    return wrap
