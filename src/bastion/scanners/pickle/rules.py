"""Detection rules of the pickle family (``BAS-M1xx``)."""

from __future__ import annotations

from bastion.core import Severity
from bastion.scanners.interface import rule

_CWE = ("CWE-502",)
_ATLAS = ("AML.T0011.000", "AML.T0010", "AML.M0011", "AML.M0014")
_RESAVE = (
    "Do not load this file. Obtain the model from a trusted source and re-save the weights as safetensors "
    "(or load with torch.load(weights_only=True) / a restricted Unpickler allowing only catalogued globals)."
)

DANGEROUS_GLOBAL = rule(
    "BAS-M101",
    "dangerous-global",
    Severity.CRITICAL,
    "Pickle references a known-dangerous callable or module",
    _RESAVE + " Loading it runs code such as a shell command, file write or network access.",
    atlas=_ATLAS,
    cwe=_CWE,
)
UNKNOWN_CALLABLE = rule(
    "BAS-M102",
    "unknown-callable",
    Severity.HIGH,
    "Pickle calls a callable that is not in the allowlist catalogue",
    "Review the callable's source. If it is trusted, add its exact module and name to an organisation "
    "catalogue file; otherwise re-save the weights as safetensors or use torch.load(weights_only=True).",
    atlas=_ATLAS,
    cwe=_CWE,
)
UNVERIFIED_CLASS = rule(
    "BAS-M103",
    "unverified-class",
    Severity.LOW,
    "Pickle instantiates or references a class that is not in the allowlist catalogue",
    "Loading needs this class's code to be trusted: check it comes from a package you install on purpose, "
    "add it to an organisation catalogue file, or save a state dict / safetensors instead of whole objects.",
    atlas=_ATLAS,
    cwe=_CWE,
)
DYNAMIC_GLOBAL = rule(
    "BAS-M104",
    "dynamic-global",
    Severity.CRITICAL,
    "Pickle computes the name of a global at load time (STACK_GLOBAL on non-literal operands)",
    _RESAVE + " No legitimate serializer computes global names; this hides what the pickle imports.",
    atlas=_ATLAS,
    cwe=_CWE,
)
COMPUTED_CALLABLE = rule(
    "BAS-M105",
    "computed-callable",
    Severity.HIGH,
    "Pickle calls a value that is not a plain global (the result of another call or a persistent id)",
    _RESAVE,
    atlas=_ATLAS,
    cwe=_CWE,
)
HIDDEN_PICKLE = rule(
    "BAS-M106",
    "hidden-pickle",
    Severity.HIGH,
    "A pickle stream referencing non-allowlisted globals is hidden in the trailing data",
    "Loaders that read more than the first pickle (torch legacy format, custom formats) would execute it. "
    "Re-save the model from its source as safetensors and delete this file.",
    atlas=_ATLAS,
    cwe=_CWE,
)
MUTATES_GLOBAL = rule(
    "BAS-M107",
    "mutates-global",
    Severity.HIGH,
    "Pickle mutates a global object (BUILD / SETITEM / APPEND applied to an imported name)",
    "Serializers never set state on imported modules, classes or functions; this patches code at load time. "
    + _RESAVE,
    atlas=_ATLAS,
    cwe=_CWE,
)
NPY_INTEGRITY = rule(
    "BAS-M108",
    "npy-integrity",
    Severity.MEDIUM,
    "NumPy .npy data length does not match its header (shape x itemsize)",
    "The file was truncated or has data appended after the array. Re-export it from its source and "
    "verify its digest; load with numpy.load(allow_pickle=False).",
    atlas=("AML.T0010", "AML.M0014"),
    cwe=("CWE-20",),
)
