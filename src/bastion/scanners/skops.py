"""skops scanner: the ``schema.json`` of a skops zip, judged node by node without loading it.

skops rebuilds objects from a JSON tree of nodes (``__loader__``: ObjectNode, ReduceNode,
FunctionNode, MethodNode, OperatorFuncNode, TypeNode, NdArrayNode...). Each node names a type
or a callable by ``__module__`` and ``__class__``. Loading calls callables (FunctionNode is
returned, ReduceNode / ConstructorFromReduceNode / OperatorFuncNode are *called* with their
arguments) and instantiates types (their ``__setstate__`` runs), so anything outside scikit-learn,
NumPy / SciPy data types and builtin containers is reported; the callables that execute code,
spawn processes or touch files are critical. Users routinely pass ``trusted=`` lists to
``skops.io.load`` to silence its own audit, which is why the scanner does not rely on it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from bastion.core import Severity
from bastion.scanners.interface import (
    FormatError,
    LimitExceeded,
    Location,
    ScanContext,
    parse_json_document,
    rule,
)

_ATLAS = ("AML.T0011.000", "AML.T0010", "AML.M0011", "AML.M0014")

SKOPS_DANGEROUS_CALLABLE = rule(
    "BAS-M250",
    "skops-dangerous-callable",
    Severity.CRITICAL,
    "skops schema calls a function that executes code, spawns processes or touches files",
    "Do not load this file, not even with an explicit trusted= list: the named callable runs when "
    "skops.io.load rebuilds the object tree. Obtain the model from its original author and verify it.",
    atlas=_ATLAS,
    cwe=("CWE-502", "CWE-94"),
)
SKOPS_UNTRUSTED_CALLABLE = rule(
    "BAS-M251",
    "skops-untrusted-callable",
    Severity.HIGH,
    "skops schema calls a function outside scikit-learn / NumPy / SciPy",
    "The callable is invoked while loading. Review it, and pass it to skops.io.load(trusted=[...]) only "
    "if it is code you ship; never use trusted=skops.io.get_untrusted_types(...) blindly.",
    atlas=_ATLAS,
    cwe=("CWE-502", "CWE-470"),
)
SKOPS_UNTRUSTED_TYPE = rule(
    "BAS-M252",
    "skops-untrusted-type",
    Severity.MEDIUM,
    "skops schema instantiates a type outside scikit-learn / NumPy / SciPy",
    "Instantiating the type runs its __setstate__ / constructor. Review the type and trust it explicitly "
    "in skops.io.load(trusted=[...]) only if it comes from a package you depend on.",
    atlas=_ATLAS,
    cwe=("CWE-502", "CWE-470"),
)
SKOPS_MALFORMED_NODE = rule(
    "BAS-M253",
    "skops-malformed-node",
    Severity.MEDIUM,
    "skops schema node is malformed or uses an unknown loader",
    "skops refuses nodes it does not know; a crafted node aims at a different (older or patched) loader. "
    "Re-save the model with a current skops release from a trusted copy.",
    atlas=_ATLAS,
    cwe=("CWE-20",),
)

_CALL_LOADERS = frozenset(
    {"FunctionNode", "ReduceNode", "TreeNode", "LossNode", "ConstructorFromReduceNode", "OperatorFuncNode"}
)
_TYPE_LOADERS = frozenset(
    {"ObjectNode", "TypeNode", "DictNode", "DefaultDictNode", "ListNode", "SetNode", "TupleNode", "SliceNode",
     "JsonNode", "PartialNode", "NdArrayNode", "MaskedArrayNode", "DTypeNode", "RandomStateNode",
     "RandomGeneratorNode", "SparseMatrixNode", "BitGeneratorNode", "_DictWithDeprecatedKeysNode",
     "SGDLossNode", "UFuncNode"}
)  # fmt: skip
_KNOWN_LOADERS = _CALL_LOADERS | _TYPE_LOADERS | {"MethodNode"}

_BUILTIN_TYPES = frozenset(
    {"dict", "list", "tuple", "set", "frozenset", "str", "int", "float", "bool", "complex", "bytes",
     "bytearray", "slice", "NoneType", "range", "map", "object"}
)  # fmt: skip
_NUMPY_MODULES = frozenset(
    {"numpy", "numpy.ma", "numpy.ma.core", "numpy.dtypes", "numpy.random", "numpy.random._generator",
     "numpy.random.mtrand", "numpy.random._pcg64", "numpy.random._mt19937", "numpy.random._philox",
     "numpy.random._sfc64", "numpy.random.bit_generator", "numpy.core.multiarray", "numpy._core.multiarray",
     "numpy.core.numeric", "numpy._core.numeric"}
)  # fmt: skip
_NUMPY_DANGEROUS = frozenset(
    {"load", "save", "savez", "savez_compressed", "savetxt", "loadtxt", "genfromtxt", "fromfile", "tofile",
     "fromregex", "memmap", "DataSource", "frompyfunc", "vectorize", "piecewise", "apply_along_axis",
     "apply_over_axes", "fromfunction", "recfromcsv", "recfromtxt", "_pickle"}
)  # fmt: skip
_SAFE_OPERATORS = frozenset(
    {"add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "neg", "pos", "abs", "eq", "ne", "lt", "le",
     "gt", "ge", "and_", "or_", "xor", "not_", "invert", "inv", "matmul", "lshift", "rshift", "truth",
     "is_", "is_not", "index", "concat", "contains", "getitem"}
)  # fmt: skip
_DANGEROUS_MODULE_ROOTS = frozenset(
    {"os", "posix", "nt", "subprocess", "sys", "importlib", "runpy", "shutil", "socket", "pickle", "_pickle",
     "marshal", "code", "codeop", "ctypes", "pty", "webbrowser", "urllib", "http", "requests", "joblib",
     "multiprocessing", "dill", "cloudpickle", "torch", "tempfile", "pathlib", "io", "_io", "asyncio",
     "pdb", "timeit", "threading", "_thread", "signal", "platform", "imp", "zipimport", "pkgutil", "site",
     "shelve", "pydoc"}
)  # fmt: skip
_DANGEROUS_BUILTINS = frozenset(
    {"eval", "exec", "compile", "open", "__import__", "getattr", "setattr", "delattr", "globals", "locals",
     "vars", "input", "breakpoint", "help", "exit", "quit", "memoryview", "type", "super", "classmethod",
     "staticmethod", "property"}
)  # fmt: skip
_DANGEROUS_OPERATORS = frozenset({"attrgetter", "methodcaller", "itemgetter", "call"})
_MAX_NODES = 5_000_000


def scan_skops_schema(data: memoryview, loc: Location, ctx: ScanContext, depth: int) -> None:
    """Judge every node of a skops ``schema.json``."""
    schema = parse_json_document(data, ctx, "skops schema")
    ctx.mark_scanned(loc, "skops-schema", len(data))
    if not isinstance(schema, dict) or "__loader__" not in schema:
        raise FormatError("skops schema root is not a node", offset=0)
    seen: set[tuple[str, str, str]] = set()
    for node, path in _nodes(schema):
        _judge(node, path, loc, ctx, seen)


def _nodes(root: dict[str, Any]) -> Iterator[tuple[dict[str, Any], str]]:
    """Every node (a JSON object with ``__loader__``), iteratively, with a readable path."""
    stack: list[tuple[Any, str]] = [(root, "")]
    count = 0
    while stack:
        value, path = stack.pop()
        count += 1
        if count > _MAX_NODES:
            raise LimitExceeded(f"skops schema has more than {_MAX_NODES} JSON values", offset=None)
        if isinstance(value, dict):
            if "__loader__" in value:
                yield value, path
            stack.extend((v, f"{path}/{k}") for k, v in reversed(value.items()))
        elif isinstance(value, list):
            stack.extend((v, f"{path}/{i}") for i, v in reversed(list(enumerate(value))))


def _judge(
    node: dict[str, Any], path: str, loc: Location, ctx: ScanContext, seen: set[tuple[str, str, str]]
) -> None:
    loader, module, name = node.get("__loader__"), node.get("__module__"), node.get("__class__")
    where = path or "/"
    if not isinstance(loader, str) or not isinstance(module, str) or not isinstance(name, str):
        ctx.finding(
            loc, SKOPS_MALFORMED_NODE, f"node at {where} lacks string __loader__/__module__/__class__"
        )
        return
    target = f"{module}.{name}"
    if loader == "MethodNode":
        content = node.get("content")
        func = content.get("func") if isinstance(content, dict) else None
        target = f"{target}.{func}"
        callable_ = True
        trusted = _trusted_type(module, name) and isinstance(func, str) and not func.startswith("_")
        dangerous = _dangerous(module, name) or not isinstance(func, str) or func.startswith("__")
    elif loader == "OperatorFuncNode":
        callable_ = True
        trusted = module == "operator" and name in _SAFE_OPERATORS
        dangerous = module != "operator" or name in _DANGEROUS_OPERATORS or _dangerous(module, name)
    elif loader in _CALL_LOADERS:
        callable_ = True
        trusted = _trusted_callable(module, name)
        dangerous = _dangerous(module, name)
    elif loader in _TYPE_LOADERS:
        callable_ = False
        trusted = _trusted_type(module, name)
        dangerous = _dangerous(module, name)
    else:
        ctx.finding(
            loc, SKOPS_MALFORMED_NODE, f"unknown loader {loader!r} at {where} ({target})", callable=target
        )
        callable_, trusted, dangerous = False, _trusted_type(module, name), _dangerous(module, name)
    if trusted and not dangerous:
        return
    key = (loader, target, "d" if dangerous else "u")
    if key in seen:
        return  # one finding per loader and target: a forest repeats its nodes thousands of times
    seen.add(key)
    if dangerous:
        r = SKOPS_DANGEROUS_CALLABLE
    else:
        r = SKOPS_UNTRUSTED_CALLABLE if callable_ else SKOPS_UNTRUSTED_TYPE
    ctx.finding(loc, r, f"{loader} {target} at {where}", callable=target)


def _dangerous(module: str, name: str) -> bool:
    root = module.split(".")[0]
    if root in _DANGEROUS_MODULE_ROOTS:
        return True
    if module == "builtins":
        return name in _DANGEROUS_BUILTINS
    if root == "numpy":
        return name in _NUMPY_DANGEROUS or module.startswith(
            ("numpy.lib.npyio", "numpy.distutils", "numpy.f2py")
        )
    if module == "operator":
        return name in _DANGEROUS_OPERATORS
    return root == "functools" and name != "partial"


def _trusted_type(module: str, name: str) -> bool:
    if module == "sklearn" or module.startswith("sklearn."):
        return True
    if module == "builtins":
        return name in _BUILTIN_TYPES
    if module in _NUMPY_MODULES:
        return name not in _NUMPY_DANGEROUS
    if module.startswith("scipy.sparse"):
        return True
    return (module, name) in {
        ("collections", "OrderedDict"),
        ("collections", "defaultdict"),
        ("functools", "partial"),
    }


def _trusted_callable(module: str, name: str) -> bool:
    if module == "sklearn" or module.startswith("sklearn."):
        return True
    if module in ("numpy", "numpy._core.umath", "numpy.core.umath"):
        return name not in _NUMPY_DANGEROUS  # ufuncs such as numpy.log1p, numpy.exp
    if module.startswith("scipy.special") or module.startswith("scipy.sparse"):
        return True
    return module == "builtins" and name in _BUILTIN_TYPES
