"""Unsafe ML code, found on the syntax tree (never by regex): deserialisers that execute code, remote
code, disabled TLS checks, shell commands, plain-http downloads and credentials passed to clients.

Imports are resolved (``import pickle as pk``, ``from joblib import load``) so calls are judged by
the fully qualified name they really reach; ``model.eval()`` is not ``eval``.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

from bastion.core import Category, Severity
from bastion.scanners.interface import Rule, rule
from bastion.scanners.workspace.text import is_placeholder


def _r(rid: str, kind: str, sev: Severity, title: str, fix: str, cwe: str, atlas: tuple[str, ...]) -> Rule:
    return rule(rid, kind, sev, title, fix, atlas=atlas, cwe=(cwe,), category=Category.UNSAFE_CODE)


_LOAD = ("AML.T0011.000", "AML.M0011")
PICKLE_LOAD = _r(
    "BAS-C001",
    "pickle-load",
    Severity.HIGH,
    "Deserialisation that can execute code (pickle, joblib, dill, cloudpickle, pandas.read_pickle, marshal)",
    "Load only files you produced and verified (bastion scan + signature), or switch to a format that "
    "cannot carry code (safetensors, ONNX, JSON).",
    "CWE-502",
    _LOAD,
)
TORCH_LOAD = _r(
    "BAS-C002",
    "torch-load",
    Severity.HIGH,
    "torch.load without weights_only=True unpickles arbitrary objects",
    "Call torch.load(path, weights_only=True) (the default only from PyTorch 2.6), or load safetensors.",
    "CWE-502",
    _LOAD,
)
NUMPY_LOAD = _r(
    "BAS-C003",
    "numpy-allow-pickle",
    Severity.HIGH,
    "numpy.load(allow_pickle=True) unpickles object arrays",
    "Drop allow_pickle=True; store object data in a format that cannot carry code.",
    "CWE-502",
    _LOAD,
)
YAML_LOAD = _r(
    "BAS-C004",
    "yaml-unsafe-load",
    Severity.HIGH,
    "yaml.load without a safe loader can construct arbitrary Python objects",
    "Use yaml.safe_load(...) or yaml.load(..., Loader=yaml.SafeLoader).",
    "CWE-502",
    _LOAD,
)
EVAL = _r(
    "BAS-C005",
    "eval-exec",
    Severity.MEDIUM,
    "eval / exec on a value that is not a literal",
    "Parse data with ast.literal_eval or json.loads; never evaluate strings built at run time.",
    "CWE-95",
    ("AML.M0011",),
)
REMOTE_CODE = _r(
    "BAS-C006",
    "remote-code",
    Severity.HIGH,
    "Model loading that runs code from a remote repository (trust_remote_code=True, torch.hub.load)",
    "Pin the repository to a reviewed commit (revision=<sha>) and vendor the code, or use a model that "
    "needs no custom code.",
    "CWE-829",
    ("AML.T0010", "AML.M0011", "AML.M0013"),
)
TLS_OFF = _r(
    "BAS-C007",
    "tls-verification-disabled",
    Severity.HIGH,
    "TLS certificate verification disabled (verify=False, CERT_NONE, unverified SSL context)",
    "Keep verification on; point verify= / SSL_CERT_FILE at the company CA bundle instead.",
    "CWE-295",
    ("AML.T0010", "AML.M0013"),
)
SHELL = _r(
    "BAS-C008",
    "shell-command",
    Severity.MEDIUM,
    "Shell command built from a string (subprocess shell=True, os.system, os.popen)",
    "Pass an argument list to subprocess.run(...) without shell=True.",
    "CWE-78",
    ("AML.M0011",),
)
HTTP_DOWNLOAD = _r(
    "BAS-C009",
    "plain-http-download",
    Severity.MEDIUM,
    "Download over plain http (no integrity, no authenticity)",
    "Use https and check the artifact's digest or signature before using it.",
    "CWE-319",
    ("AML.T0010", "AML.M0014"),
)
HARDCODED_CREDENTIAL = _r(
    "BAS-C010",
    "hardcoded-credential",
    Severity.HIGH,
    "Credential passed to a client as a string literal",
    "Read the credential from the environment at run time: store it with `bastion secrets set NAME "
    "--from-stdin` and start the program with `bastion secrets run -- CMD`.",
    "CWE-798",
    ("AML.T0055", "AML.M0005"),
)

_PICKLE_CALLS = frozenset(
    {
        "pickle.load",
        "pickle.loads",
        "pickle.Unpickler",
        "_pickle.load",
        "_pickle.loads",
        "cPickle.load",
        "cPickle.loads",
        "dill.load",
        "dill.loads",
        "cloudpickle.load",
        "cloudpickle.loads",
        "joblib.load",
        "sklearn.externals.joblib.load",
        "pandas.read_pickle",
        "shelve.open",
        "marshal.load",
        "marshal.loads",
        "numpy.core.multiarray._reconstruct",
    }
)
_SAFE_YAML_LOADERS = ("SafeLoader", "CSafeLoader", "BaseLoader", "CBaseLoader")
_DOWNLOADERS = frozenset(
    {
        "urllib.request.urlopen",
        "urllib.request.urlretrieve",
        "urllib.urlopen",
        "urllib.urlretrieve",
        "requests.get",
        "requests.request",
        "requests.Session.get",
        "httpx.get",
        "wget.download",
        "torch.hub.load_state_dict_from_url",
        "torch.hub.download_url_to_file",
        "tensorflow.keras.utils.get_file",
        "keras.utils.get_file",
        "gdown.download",
        "pandas.read_csv",
        "pandas.read_parquet",
        "pandas.read_pickle",
        "datasets.load_dataset",
    }
)
_CREDENTIAL_KWARGS = frozenset(
    {
        "password",
        "passwd",
        "pwd",
        "secret",
        "token",
        "api_key",
        "apikey",
        "access_token",
        "auth_token",
        "secret_key",
        "client_secret",
        "aws_secret_access_key",
        "aws_session_token",
        "hf_token",
        "use_auth_token",
        "private_key",
        "account_key",
        "sas_token",
        "connection_string",
    }
)
_LOCAL_HOSTS = ("http://localhost", "http://127.", "http://0.0.0.0", "http://[::1]", "http://host.docker")


_CONVENTIONAL = {
    "np": "numpy",
    "pd": "pandas",
    "tf": "tensorflow",
    **{
        m: m
        for m in (
            "pickle",
            "joblib",
            "dill",
            "cloudpickle",
            "torch",
            "numpy",
            "pandas",
            "yaml",
            "subprocess",
            "os",
            "requests",
            "httpx",
            "urllib",
            "ssl",
            "marshal",
            "shelve",
        )
    },
}


@dataclass(frozen=True)
class CodeHit:
    rule: Rule
    line: int
    col: int
    message: str
    severity: Severity | None = None


def _const_str(node: ast.AST | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _kw(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _is_true(node: ast.AST | None) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def _is_false(node: ast.AST | None) -> bool:
    return isinstance(node, ast.Constant) and node.value is False


class _Visitor(ast.NodeVisitor):
    def __init__(self, aliases: dict[str, str] | None = None) -> None:
        self.aliases: dict[str, str] = dict(aliases or {})
        self.hits: list[CodeHit] = []

    def _hit(self, node: ast.AST, r: Rule, message: str, severity: Severity | None = None) -> None:
        line = getattr(node, "lineno", 1)
        col = getattr(node, "col_offset", 0)
        self.hits.append(CodeHit(r, line, col, message, severity))

    def visit_Import(self, node: ast.Import) -> None:
        for a in node.names:
            if a.asname:
                self.aliases[a.asname] = a.name
            else:
                top = a.name.split(".")[0]
                self.aliases[top] = top

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.module and node.level == 0:
            for a in node.names:
                self.aliases[a.asname or a.name] = f"{node.module}.{a.name}"

    def qualname(self, node: ast.AST) -> str | None:
        parts: list[str] = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if not isinstance(node, ast.Name):
            return None
        base = self.aliases.get(node.id)
        if base is None:
            if not parts:
                return f"builtins.{node.id}"
            base = _CONVENTIONAL.get(node.id)  # notebooks often use modules imported in another cell
            if base is None:
                return None  # an attribute of a local object (model.eval, self.load...)
        parts.append(base)
        return ".".join(reversed(parts))

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if node.attr == "CERT_NONE" and self.qualname(node) == "ssl.CERT_NONE":
            self._hit(node, TLS_OFF, "ssl.CERT_NONE disables certificate checks")
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        name = self.qualname(node.func) or ""
        self._check_call(node, name)
        self._check_kwargs(node, name)
        self.generic_visit(node)

    def _check_call(self, node: ast.Call, name: str) -> None:
        if name in _PICKLE_CALLS:
            self._hit(node, PICKLE_LOAD, f"{name}() deserialises with pickle semantics")
        elif name == "torch.load":
            wo = _kw(node, "weights_only")
            if wo is None:
                self._hit(
                    node,
                    TORCH_LOAD,
                    "torch.load() without weights_only=True (unpickles everything before PyTorch 2.6)",
                    Severity.MEDIUM,
                )
            elif _is_false(wo):
                self._hit(node, TORCH_LOAD, "torch.load(weights_only=False) unpickles arbitrary objects")
        elif name == "numpy.load" and _is_true(_kw(node, "allow_pickle")):
            self._hit(node, NUMPY_LOAD, "numpy.load(allow_pickle=True)")
        elif name in ("yaml.load", "yaml.load_all"):
            loader = _kw(node, "Loader") or (node.args[1] if len(node.args) > 1 else None)
            text = ast.unparse(loader) if loader is not None else ""
            if not text.endswith(_SAFE_YAML_LOADERS):
                self._hit(node, YAML_LOAD, f"{name}() with {'Loader=' + text if text else 'no Loader'}")
        elif name in ("yaml.unsafe_load", "yaml.unsafe_load_all"):
            self._hit(node, YAML_LOAD, f"{name}()")
        elif name in ("builtins.eval", "builtins.exec"):
            if node.args and not isinstance(node.args[0], ast.Constant):
                self._hit(node, EVAL, f"{name.split('.')[-1]}() on a value computed at run time")
        elif name == "torch.hub.load":
            self._hit(
                node, REMOTE_CODE, "torch.hub.load() runs hubconf.py from the repository", Severity.MEDIUM
            )
        elif name in ("ssl._create_unverified_context", "ssl._create_stdlib_context"):
            self._hit(node, TLS_OFF, f"{name}() creates a context that does not verify certificates")
        elif (
            name in ("os.system", "os.popen", "commands.getoutput", "subprocess.getoutput")
            and node.args
            and _const_str(node.args[0]) is None
        ):
            self._hit(node, SHELL, f"{name}() with a command built at run time")
        if name in _DOWNLOADERS or name.startswith("requests."):
            url = _const_str(node.args[0]) if node.args else _const_str(_kw(node, "url"))
            if url and url.startswith("http://") and not url.startswith(_LOCAL_HOSTS):
                self._hit(node, HTTP_DOWNLOAD, f"{name}() fetches over plain http")

    def _check_kwargs(self, node: ast.Call, name: str) -> None:
        name = name or ast.unparse(node.func)[:60]
        for kw in node.keywords:
            if kw.arg == "trust_remote_code" and _is_true(kw.value):
                self._hit(kw.value, REMOTE_CODE, f"{name}(trust_remote_code=True)")
            elif kw.arg == "verify" and _is_false(kw.value):
                self._hit(kw.value, TLS_OFF, f"{name}(verify=False)")
            elif kw.arg == "shell" and _is_true(kw.value) and name.startswith("subprocess."):
                cmd = node.args[0] if node.args else _kw(node, "args")
                literal = _const_str(cmd) is not None
                self._hit(
                    kw.value,
                    SHELL,
                    f"{name}(shell=True)" + ("" if literal else " with a command built at run time"),
                    Severity.LOW if literal else None,
                )
            elif kw.arg and kw.arg.lower() in _CREDENTIAL_KWARGS:
                value = _const_str(kw.value)
                if value and len(value) >= 4 and not is_placeholder(value) and " " not in value:
                    self._hit(kw.value, HARDCODED_CREDENTIAL, f"{kw.arg}= is a string literal")

    def visit_Assign(self, node: ast.Assign) -> None:
        for target in node.targets:
            if (
                isinstance(target, ast.Attribute)
                and target.attr == "check_hostname"
                and _is_false(node.value)
            ):
                self._hit(node, TLS_OFF, "check_hostname = False disables host name verification")
            elif isinstance(target, ast.Attribute) and target.attr == "verify" and _is_false(node.value):
                self._hit(node, TLS_OFF, "session.verify = False disables certificate checks")
        self.generic_visit(node)


def collect_imports(source: str) -> dict[str, str]:
    """The import aliases a module defines (to judge later notebook cells). Raises SyntaxError."""
    v = _Visitor()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            v.visit_Import(node)
        elif isinstance(node, ast.ImportFrom):
            v.visit_ImportFrom(node)
    return v.aliases


def check_python(source: str, aliases: dict[str, str] | None = None) -> list[CodeHit]:
    """Unsafe calls in Python source. Raises SyntaxError/ValueError when it does not parse."""
    tree = ast.parse(source)
    v = _Visitor(aliases)
    v.visit(tree)
    return sorted(v.hits, key=lambda h: (h.line, h.col))
