"""Command-line options from a function's signature and numpydoc docstring, read from its
source file with :mod:`ast`: the module is not imported, so ``rnnflow COMMAND --help``
answers without importing Prefect (or Dask, xarray, ...), and the options are still
stated once, in the function.

Defaults that are not literals are evaluated in a namespace the caller gives (for the
flows, :mod:`rnnflow.flows.defaults`). If the source cannot be read that way (no source
file, a default the namespace cannot evaluate), the module is imported and
:func:`inspect.signature` read instead: slower, same options.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import importlib.util
import inspect
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.machinery import PathFinder
from pathlib import Path
from typing import Any

__all__ = ["REQUIRED", "Parameter", "add_options", "parameter_docs", "plain", "read_function"]

#: The default of a parameter without one.
REQUIRED = inspect.Parameter.empty
_TYPES: dict[str, type] = {"str": str, "int": int, "float": float, "Path": str}
_SEQUENCES = {"list", "tuple", "Sequence"}


@dataclass(frozen=True)
class Parameter:
    """One parameter of a function, as the command line offers it.

    Attributes
    ----------
    name
        The parameter's name (``--name-with-dashes`` on the command line).
    annotation
        Its annotation's source text (``int | None``, ``tuple[float, ...]``).
    default
        Its default value, or :data:`REQUIRED`.
    help
        Its description in the docstring, in plain text.
    """

    name: str
    annotation: str
    default: Any
    help: str


def read_function(
    module: str, name: str, namespace: Mapping[str, Any] | None = None
) -> tuple[list[Parameter], str]:
    """The parameters of function ``name`` of ``module`` and its docstring, in plain text.

    The module's source is parsed, not run (see the module's docstring for the fallback).
    """
    try:
        return _read_source(_source_path(module), name, namespace or {})
    except (OSError, SyntaxError, ValueError, NameError, AttributeError, TypeError):
        return _read_imported(module, name)


def add_options(
    parser: argparse.ArgumentParser,
    parameters: list[Parameter],
    negations: Mapping[str, str] | None = None,
) -> None:
    """An option per parameter: ``--name`` with the type, choices, ``nargs`` and
    default of its annotation and default, required if it has no default.

    A ``bool`` parameter is a pair of flags: ``--name`` and ``--no-name``, or, if
    ``negations`` maps its name to another, ``--name`` and ``--other``
    (``{"incremental": "full"}``: ``--incremental/--full``).

    Raises
    ------
    ValueError
        If an annotation is not one the command line can take (``str``, ``int``,
        ``float``, ``bool``, a ``Literal`` of those, a list or tuple of them, each
        optionally ``| None``).
    """
    negations = negations or {}
    for parameter in parameters:
        option = _option(parameter.name, parameter.annotation)
        option["help"] = parameter.help.replace("%", "%%")
        if parameter.default is REQUIRED:
            option["required"] = True
        else:
            default = parameter.default
            option["default"] = list(default) if isinstance(default, tuple) else default
            option["help"] += " (default: %(default)s)"
        flag = f"--{parameter.name.replace('_', '-')}"
        negation = negations.get(parameter.name)
        if negation is None or option.get("action") is not argparse.BooleanOptionalAction:
            parser.add_argument(flag, dest=parameter.name, **option)
            continue
        pair = parser.add_mutually_exclusive_group()
        pair.add_argument(flag, **{**option, "action": "store_true"}, dest=parameter.name)
        pair.add_argument(
            f"--{negation.replace('_', '-')}",
            action="store_false",
            dest=parameter.name,
            default=option.get("default"),
            help=f"the opposite of {flag}",
        )


def parameter_docs(doc: str) -> dict[str, str]:
    """The descriptions of a numpydoc ``Parameters`` section, by parameter name, in
    plain text (:func:`plain`)."""
    lines = doc.splitlines()
    if "Parameters" not in lines:
        return {}
    described: dict[str, list[str]] = {}
    names: list[str] = []
    start = lines.index("Parameters") + 2
    for line, following in zip(lines[start:], [*lines[start + 1 :], ""], strict=True):
        if following.startswith("---"):
            break  # the next section's title
        if line and not line.startswith(" "):
            names = [n.strip() for n in line.split(":")[0].split(",")]
            for name in names:
                described[name] = []
        elif line.strip():
            for name in names:
                described[name].append(line.strip())
    return {name: plain(" ".join(text)) for name, text in described.items()}


def plain(text: str) -> str:
    """``text`` without Sphinx/reStructuredText markup: roles (``:mod:`x```,
    ``:func:`~a.b```) and literals (````x````, ```x```) become their text."""
    text = re.sub(r":[a-z]+(?::[a-z]+)?:`~?([^`]+)`", r"\1", text)
    return re.sub(r"`{1,2}([^`]+)`{1,2}", r"\1", text)


# -- helpers ------------------------------------------------------------------------


def _source_path(module: str) -> Path:
    """The source file of ``module``, importing none of its parent packages if their
    folders can be found without (so ``rnncore.synthetic`` does not import ``rnncore``)."""
    top, *rest = module.split(".")
    spec = importlib.util.find_spec(top)
    for part in rest:
        if spec is None or spec.submodule_search_locations is None:
            break
        spec = PathFinder.find_spec(f"{spec.name}.{part}", list(spec.submodule_search_locations))
    if spec is None or spec.name != module:
        spec = importlib.util.find_spec(module)  # imports the parents: a mapped package
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        raise OSError(f"no source file for {module}")
    return Path(spec.origin)


def _read_source(
    path: Path, name: str, namespace: Mapping[str, Any]
) -> tuple[list[Parameter], str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    function = next(
        node
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == name
    )
    doc = ast.get_docstring(function) or ""
    described = parameter_docs(doc)
    arguments = function.args
    positional = [*arguments.posonlyargs, *arguments.args]
    defaults: list[ast.expr | None] = [None] * (len(positional) - len(arguments.defaults))
    pairs = [
        *zip(positional, [*defaults, *arguments.defaults], strict=True),
        *zip(arguments.kwonlyargs, arguments.kw_defaults, strict=True),
    ]
    parameters = [
        Parameter(
            arg.arg,
            ast.unparse(arg.annotation) if arg.annotation else "str",
            REQUIRED if default is None else _evaluate(default, namespace),
            described.get(arg.arg, ""),
        )
        for arg, default in pairs
    ]
    return parameters, plain(doc)


def _evaluate(node: ast.expr, namespace: Mapping[str, Any]) -> Any:
    try:
        return ast.literal_eval(node)
    except ValueError:
        code = compile(ast.Expression(node), "<default>", "eval")
        return eval(code, {"__builtins__": {}}, dict(namespace))


def _read_imported(module: str, name: str) -> tuple[list[Parameter], str]:
    function = getattr(importlib.import_module(module), name)
    function = getattr(function, "fn", function)  # a Prefect flow's function
    doc = inspect.getdoc(function) or ""
    described = parameter_docs(doc)
    parameters = [
        Parameter(
            p.name,
            p.annotation
            if isinstance(p.annotation, str)
            else inspect.formatannotation(p.annotation),
            p.default,
            described.get(p.name, ""),
        )
        for p in inspect.signature(function).parameters.values()
    ]
    return parameters, plain(doc)


def _option(name: str, annotation: str) -> dict[str, Any]:
    node = ast.parse(annotation.replace("typing.", ""), mode="eval").body
    members = [m for m in _union(node) if not (isinstance(m, ast.Constant) and m.value is None)]
    if len(members) != 1:
        raise ValueError(f"parameter {name!r}: the command line cannot take {annotation!r}")
    (node,) = members
    if isinstance(node, ast.Name) and node.id == "bool":
        return {"action": argparse.BooleanOptionalAction}
    if isinstance(node, ast.Name) and node.id in _TYPES:
        return {"type": _TYPES[node.id]}
    if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name):
        items = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        if node.value.id == "Literal":
            choices = [ast.literal_eval(item) for item in items]
            return {"type": type(choices[0]), "choices": choices}
        if node.value.id in _SEQUENCES and isinstance(items[0], ast.Name):
            if items[0].id in _TYPES:
                return {"nargs": "+", "type": _TYPES[items[0].id]}
    raise ValueError(f"parameter {name!r}: the command line cannot take {annotation!r}")


def _union(node: ast.expr) -> list[ast.expr]:
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return [*_union(node.left), *_union(node.right)]
    if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name):
        if node.value.id == "Optional":
            return [node.slice, ast.Constant(None)]
        if node.value.id == "Union" and isinstance(node.slice, ast.Tuple):
            return list(node.slice.elts)
    return [node]
