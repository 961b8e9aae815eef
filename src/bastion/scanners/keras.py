"""Keras scanner: the ``config.json`` of a Keras v3 ``.keras`` zip and legacy HDF5 ``.h5`` models.

Keras rebuilds a model from a JSON description of its layers. Code enters that description in
three ways: ``Lambda`` layers carrying marshalled Python bytecode (legacy ``"function": [b64,
defaults, closure]`` or v3 ``{"class_name": "__lambda__"}``), references to objects outside
Keras (``module`` / ``registered_name`` of custom objects, functions such as ``os.system``,
Keras helpers abused for a safe-mode bypass, CVE-2025-1550), and TFOpLambda layers naming TF
functions. HDF5 files are read without h5py: the ``model_config`` / ``training_config``
attributes are JSON stored verbatim, found by searching for their opening bytes.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
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
_SAFE_MODE = (
    "Load Keras models with safe_mode=True (the default in Keras 3; never pass safe_mode=False or call "
    "keras.config.enable_unsafe_deserialization for untrusted files) and keep Keras >= 3.9."
)

KERAS_LAMBDA_BYTECODE = rule(
    "BAS-M240",
    "keras-lambda-bytecode",
    Severity.CRITICAL,
    "Keras Lambda layer carries marshalled Python bytecode",
    "Do not load this model outside a sandbox: the Lambda layer's bytecode runs when the model is loaded "
    "or called. " + _SAFE_MODE + " Rebuild the model with the Lambda replaced by a reviewed layer class.",
    atlas=_ATLAS,
    cwe=("CWE-502", "CWE-94"),
)
KERAS_LAMBDA = rule(
    "BAS-M241",
    "keras-lambda-layer",
    Severity.HIGH,
    "Keras Lambda layer calls a function by reference",
    "The Lambda layer calls a Python function looked up at load time. Make sure it resolves to code you "
    "ship and trust. " + _SAFE_MODE,
    atlas=_ATLAS,
    cwe=("CWE-94",),
)
KERAS_CUSTOM_OBJECT = rule(
    "BAS-M242",
    "keras-custom-object",
    Severity.HIGH,
    "Keras config references an object outside Keras / TensorFlow / NumPy",
    "Loading imports the named module and instantiates the object. Only load the model with custom_objects "
    "you wrote or reviewed; " + _SAFE_MODE,
    atlas=_ATLAS,
    cwe=("CWE-502", "CWE-470"),
)
KERAS_DANGEROUS_REFERENCE = rule(
    "BAS-M243",
    "keras-dangerous-reference",
    Severity.CRITICAL,
    "Keras config references a dangerous function (code execution, files, safe-mode bypass)",
    "Do not load this model: its config names a function that executes code, touches files or disables "
    "Keras' safe mode when deserialised (CVE-2025-1550 class). " + _SAFE_MODE,
    atlas=_ATLAS,
    cwe=("CWE-502", "CWE-94"),
)
KERAS_TFOP_LAMBDA = rule(
    "BAS-M244",
    "keras-tfoplambda-function",
    Severity.HIGH,
    "Keras TFOpLambda layer names an unexpected TensorFlow function",
    "TFOpLambda layers call the TensorFlow symbol they name; this one is not a plain tf.* math/array op "
    "(or calls back into Python or the filesystem). Rebuild the model with reviewed layers.",
    atlas=_ATLAS,
    cwe=("CWE-94",),
)

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
# The Keras team's own model libraries are trusted like Keras; tensorflow_hub is not (it downloads).
_TRUSTED_ROOTS = frozenset({"keras", "tensorflow", "tf_keras", "numpy", "keras_hub", "keras_nlp", "keras_cv"})
_DANGEROUS_MODULE_ROOTS = frozenset(
    {"os", "posix", "nt", "subprocess", "sys", "builtins", "importlib", "runpy", "shutil", "socket", "pickle",
     "marshal", "code", "codeop", "ctypes", "pty", "webbrowser",
     "urllib", "requests", "http", "multiprocessing"}
)  # fmt: skip
# Functions inside trusted namespaces that should never appear in a model config.
_DANGEROUS_NAMES = frozenset(
    {"enable_unsafe_deserialization", "get_file", "load_model", "save_model", "load_weights", "set_floatx",
     "exec", "eval", "compile", "system", "popen", "__import__", "getattr", "open", "py_func", "py_function",
     "numpy_function", "write_file", "read_file", "run_functions_eagerly", "load_library", "load_op_library"}
)  # fmt: skip
_TFOP_NAME = re.compile(r"^(?:tf\.)?(?:__operators__|[A-Za-z_][A-Za-z0-9_]*)(?:\.[A-Za-z_][A-Za-z0-9_]*)*$")
_TFOP_DANGEROUS = re.compile(r"py_func|py_function|numpy_function|(?:^|\.)io\.|gfile|file|debugging|print")
_CONFIG_STARTS = re.compile(rb'\{"(?:class_name|module|loss|optimizer_config)"')
_NUL = re.compile(rb"\x00")
_IDENT = re.compile(rb"[A-Za-z_][A-Za-z0-9_.]{2,40}")
_MAX_JSON_NODES = 5_000_000


def scan_keras_config(data: memoryview, loc: Location, ctx: ScanContext, depth: int) -> None:
    """Judge the ``config.json`` of a Keras v3 archive."""
    config = parse_json_document(data, ctx, "Keras config")
    ctx.mark_scanned(loc, "keras-config", len(data))
    if not isinstance(config, dict):
        raise FormatError("Keras config is not a JSON object", offset=0)
    _judge(config, loc, ctx, None)


def looks_like_hdf5(data: memoryview) -> bool:
    """HDF5 superblock signature at offset 0, 512, 1024, 2048..."""
    return hdf5_superblock(data) is not None


def hdf5_superblock(data: memoryview) -> int | None:
    at = 0
    while at + 8 <= len(data):
        if bytes(data[at : at + 8]) == HDF5_MAGIC:
            return at
        at = 512 if at == 0 else at * 2
    return None


def scan_hdf5(data: memoryview, loc: Location, ctx: ScanContext, depth: int) -> None:
    """Find the Keras JSON attributes of an HDF5 file in its raw bytes and judge them."""
    if hdf5_superblock(data) is None:
        raise FormatError("no HDF5 superblock signature", offset=0)
    ctx.mark_scanned(loc, "hdf5", len(data))
    decoder = json.JSONDecoder()
    limit = ctx.limits.max_header_bytes
    covered = 0
    for match in _CONFIG_STARTS.finditer(data):  # re reads buffers
        start = match.start()
        if start < covered:
            continue  # inside a config already judged
        end = start + limit
        nul = _NUL.search(data, start, end)  # attribute strings end with NUL
        window = bytes(data[start : nul.start() if nul is not None else end])
        text = window.decode("utf-8", errors="replace")
        try:
            config, used = decoder.raw_decode(text)
        except json.JSONDecodeError:
            continue  # bytes that merely look like the start of a config
        except RecursionError:
            raise LimitExceeded("Keras config attribute nests too deeply", offset=start) from None
        covered = start + len(text[:used].encode("utf-8", errors="replace"))
        if isinstance(config, dict):
            _judge(config, loc, ctx, start)


def _judge(config: dict[str, Any], loc: Location, ctx: ScanContext, offset: int | None) -> None:
    for node, path in _objects(config):
        class_name = node.get("class_name")
        module = node.get("module")
        registered = node.get("registered_name")
        inner = node.get("config")
        where = f"{path}: " if path else ""
        if class_name == "__lambda__":
            _lambda_bytecode(inner, f"{where}v3 __lambda__", loc, ctx, offset)
            continue
        if class_name == "Lambda" and isinstance(inner, dict):
            _lambda_layer(inner, where, loc, ctx, offset)
        elif class_name in ("TFOpLambda", "SlicingOpLambda") and isinstance(inner, dict):
            fn = inner.get("function")
            if not isinstance(fn, str) or not _TFOP_NAME.match(fn) or _TFOP_DANGEROUS.search(fn):
                message = f"{where}{class_name} calls {fn!r}"
                ctx.finding(loc, KERAS_TFOP_LAMBDA, message, offset=offset, callable=str(fn))
        _reference(class_name, module, registered, inner, where, loc, ctx, offset)


def _reference(
    class_name: Any,
    module: Any,
    registered: Any,
    inner: Any,
    where: str,
    loc: Location,
    ctx: ScanContext,
    offset: int | None,
) -> None:
    name = inner if class_name == "function" and isinstance(inner, str) else class_name
    target = f"{module}.{name}" if isinstance(module, str) else str(name)
    root = module.split(".")[0] if isinstance(module, str) else None
    names = {str(name), str(registered).rsplit(">", 1)[-1]}
    if (root is not None and root in _DANGEROUS_MODULE_ROOTS) or names & _DANGEROUS_NAMES:
        message = f"{where}references {target}" + (f" (registered as {registered!r})" if registered else "")
        ctx.finding(loc, KERAS_DANGEROUS_REFERENCE, message, offset=offset, callable=target)
    elif root is not None and root not in _TRUSTED_ROOTS:
        message = f"{where}custom object {target}" + (
            f" (registered as {registered!r})" if registered else ""
        )
        ctx.finding(loc, KERAS_CUSTOM_OBJECT, message, offset=offset, callable=target)
    elif isinstance(registered, str) and ">" in registered and registered.split(">")[0] not in _TRUSTED_ROOTS:
        message = f"{where}custom registered object {registered!r}"
        ctx.finding(loc, KERAS_CUSTOM_OBJECT, message, offset=offset, callable=registered)


def _lambda_layer(
    inner: dict[str, Any], where: str, loc: Location, ctx: ScanContext, offset: int | None
) -> None:
    fn = inner.get("function")
    name = inner.get("name", "?")
    if isinstance(fn, dict) and fn.get("class_name") == "__lambda__":
        return  # judged as its own object by the walk
    if (isinstance(fn, list) and fn and isinstance(fn[0], str)) or inner.get("function_type") == "lambda":
        _lambda_bytecode(fn, f"{where}Lambda layer {name!r}", loc, ctx, offset)
        return
    module = inner.get("module")
    target = f"{module}.{fn}" if isinstance(module, str) and isinstance(fn, str) else repr(fn)[:200]
    ctx.finding(
        loc, KERAS_LAMBDA, f"{where}Lambda layer {name!r} calls {target}", offset=offset, callable=target
    )


def _lambda_bytecode(fn: Any, what: str, loc: Location, ctx: ScanContext, offset: int | None) -> None:
    if isinstance(fn, dict):  # v3: {"code": b64, ...} or {"value": [b64, defaults, closure]}
        fn = fn.get("code", fn.get("value"))
    if isinstance(fn, list) and fn:
        fn = fn[0]
    names = ""
    if isinstance(fn, str):
        try:
            raw = base64.b64decode(fn.encode("ascii", errors="replace"), validate=False)
        except (binascii.Error, ValueError):
            raw = b""
        if raw[:1] in (b"c", b"\xe3"):
            found = dict.fromkeys(m.group(0).decode() for m in _IDENT.finditer(raw[:65536]))
            names = ", names: " + ", ".join(list(found)[:12]) if found else ""
    message = (
        f"{what} holds marshalled bytecode ({len(fn) if isinstance(fn, str) else 0} base64 chars{names})"
    )
    ctx.finding(loc, KERAS_LAMBDA_BYTECODE, message, offset=offset, callable="<lambda>")


def _objects(root: dict[str, Any]) -> Iterator[tuple[dict[str, Any], str]]:
    """Every JSON object that names a class or module, with a readable path (iterative, bounded)."""
    stack: list[tuple[Any, str]] = [(root, "")]
    seen = 0
    while stack:
        node, path = stack.pop()
        seen += 1
        if seen > _MAX_JSON_NODES:
            raise LimitExceeded(f"Keras config has more than {_MAX_JSON_NODES} JSON values", offset=None)
        if isinstance(node, dict):
            if "class_name" in node:
                yield node, path
            inner = node.get("config")
            label = inner.get("name") if isinstance(inner, dict) else None
            here = f"{path}/{label}" if isinstance(label, str) else path
            stack.extend((v, here) for v in reversed(node.values()))
        elif isinstance(node, list):
            stack.extend((v, path) for v in reversed(node))
