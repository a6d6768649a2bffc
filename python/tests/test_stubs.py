"""The stubs (`pointsman/_native.pyi`) match the native module, name by name and parameter by
parameter, in both directions."""

import ast
import inspect
from pathlib import Path

import pytest

import pointsman._native as native

STUB = Path(native.__file__).with_name("_native.pyi")
# Dunder methods the stubs and the module must agree on; other dunders are Python's own.
DUNDERS = {"__len__", "__reduce__"}


def stub_tree() -> ast.Module:
    return ast.parse(STUB.read_text())


def is_public(name: str) -> bool:
    return not name.startswith("_") or name in DUNDERS


def stub_params(fn: ast.FunctionDef) -> list[tuple[str, str, bool]]:
    """(name, kind, has default) per parameter, as inspect names the kinds."""
    a = fn.args
    out = []
    positional = a.posonlyargs + a.args
    defaults = [False] * (len(positional) - len(a.defaults)) + [True] * len(a.defaults)
    for arg, d in zip(positional, defaults):
        kind = "POSITIONAL_ONLY" if arg in a.posonlyargs else "POSITIONAL_OR_KEYWORD"
        out.append((arg.arg, kind, d))
    if a.vararg:
        out.append((a.vararg.arg, "VAR_POSITIONAL", False))
    for arg, d in zip(a.kwonlyargs, a.kw_defaults):
        out.append((arg.arg, "KEYWORD_ONLY", d is not None))
    if a.kwarg:
        out.append((a.kwarg.arg, "VAR_KEYWORD", False))
    return out


def runtime_params(obj) -> list[tuple[str, str, bool]]:
    sig = inspect.signature(obj)
    out = []
    for p in sig.parameters.values():
        kind = p.kind.name
        # pyo3 marks `self` positional-only; the stubs write it plainly.
        if kind == "POSITIONAL_ONLY":
            kind = "POSITIONAL_OR_KEYWORD"
        out.append((p.name, kind, p.default is not inspect.Parameter.empty))
    return out


def decorators(fn: ast.FunctionDef) -> set[str]:
    return {d.id for d in fn.decorator_list if isinstance(d, ast.Name)}


def stub_classes() -> dict[str, ast.ClassDef]:
    return {n.name: n for n in stub_tree().body if isinstance(n, ast.ClassDef)}


def stub_functions() -> dict[str, ast.FunctionDef]:
    return {n.name: n for n in stub_tree().body if isinstance(n, ast.FunctionDef)}


def stub_constants() -> set[str]:
    return {
        n.target.id
        for n in stub_tree().body
        if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)
    }


def test_module_names_match():
    stubbed = set(stub_classes()) | set(stub_functions()) | stub_constants()
    runtime = {n for n in dir(native) if not n.startswith("_")} | {"__version__"}
    assert stubbed == runtime


@pytest.mark.parametrize("name", sorted(stub_functions()))
def test_function_signatures_match(name):
    assert stub_params(stub_functions()[name]) == runtime_params(getattr(native, name))


def runtime_kind(attr) -> str:
    if isinstance(attr, staticmethod):
        return "staticmethod"
    if isinstance(attr, classmethod) or type(attr).__name__ == "classmethod_descriptor":
        return "classmethod"
    if inspect.isdatadescriptor(attr):
        return "property"
    return "method"


def stub_kind(defs: list[ast.FunctionDef]) -> str:
    decos = set().union(*(decorators(d) for d in defs))
    for kind in ["property", "staticmethod", "classmethod"]:
        if kind in decos:
            return kind
    return "method"


@pytest.mark.parametrize("name", sorted(stub_classes()))
def test_class_matches(name):
    cls = getattr(native, name)
    node = stub_classes()[name]
    assert [b.id for b in node.bases if isinstance(b, ast.Name)] == [
        b.__name__ for b in cls.__bases__ if b is not object
    ]
    methods: dict[str, list[ast.FunctionDef]] = {}
    for item in node.body:
        if isinstance(item, ast.FunctionDef):
            methods.setdefault(item.name, []).append(item)
    own = {n for n in vars(cls) if is_public(n)}
    # A constructor (`#[new]`) is stubbed as `__init__`; Python sees it as the class's signature.
    init = methods.pop("__init__", None)
    if init is not None:
        assert stub_params(init[0])[1:] == runtime_params(cls), f"{name}()"
    elif not issubclass(cls, BaseException):
        with pytest.raises(TypeError, match="cannot create"):
            cls()  # not constructible, as the stubs say
    assert set(methods) == own, f"stubs {sorted(methods)} vs module {sorted(own)}"
    for mname, defs in methods.items():
        attr = vars(cls)[mname]
        kind = runtime_kind(attr)
        assert stub_kind(defs) == kind, f"{name}.{mname}"
        if kind == "property":
            continue
        # Methods: the descriptor's signature starts with self, as the stub does. Class
        # methods: the bound method's signature has no cls, the stub's does.
        expected = runtime_params(attr if kind == "method" else getattr(cls, mname))
        for d in defs:
            params = stub_params(d)
            if kind == "classmethod":
                params = params[1:]
            if len(defs) > 1:
                # Overloads narrow types (e.g. `return_estimates: Literal[True]` without a
                # default): each lists the runtime's parameters, in order and of the same kind.
                params = [p[:2] for p in params]
                assert params == [p[:2] for p in expected], f"{name}.{mname}"
            else:
                assert params == expected, f"{name}.{mname}"
