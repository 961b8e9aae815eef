"""One regression test per known bypass class of pickle scanners (picklescan, modelscan, fickling).

Every malicious input is built here from raw opcodes; nothing is ever unpickled.
"""

from __future__ import annotations

import pickle
import struct

import pytest

from bastion.core import Severity
from bastion.scanners.interface import (
    FormatError,
    LimitExceeded,
    Limits,
    Location,
    ScanContext,
    TruncatedError,
)
from bastion.scanners.pickle import scan_pickle


# -- raw opcode builders ---------------------------------------------------------------------------
def proto(n: int = 4) -> bytes:
    return bytes([0x80, n])


def glob(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def s(text: str) -> bytes:
    raw = text.encode()
    return b"\x8c" + bytes([len(raw)]) + raw


def stack_global(module: str, name: str) -> bytes:
    return s(module) + s(name) + b"\x93"


def call(func: bytes, *args: bytes) -> bytes:
    """func(*args) with MARK ... TUPLE REDUCE."""
    return func + b"(" + b"".join(args) + b"tR"


def binbytes(data: bytes) -> bytes:
    return b"B" + struct.pack("<I", len(data)) + data


def run(data: bytes, limits: Limits | None = None) -> tuple[ScanContext, FormatError | None]:
    ctx = ScanContext(limits=limits or Limits())
    try:
        scan_pickle(memoryview(data), Location("evil.pkl"), ctx, 0)
    except FormatError as exc:
        return ctx, exc
    return ctx, None


def severities(ctx: ScanContext) -> dict[str, Severity]:
    return {f.callable or "": f.severity for f in ctx.findings}


def assert_flagged(data: bytes, callable: str, severity: Severity = Severity.CRITICAL) -> ScanContext:
    ctx, _ = run(data)
    found = severities(ctx)
    assert callable in found, f"{callable} not reported; got {found}"
    assert found[callable] >= severity, found
    return ctx


def assert_gadget(module: str, name: str, *args: bytes) -> None:
    assert_flagged(proto(4) + call(stack_global(module, name), *args) + b".", f"{module}.{name}")
    assert_flagged(call(glob(module, name), *args) + b".", f"{module}.{name}")


# -- gadget callables missing from other scanners' denylists ----------------------------------------
def test_pip_main_is_critical() -> None:
    assert_gadget("pip", "main", s("install"))


def test_pydoc_pipepager_is_critical() -> None:
    assert_gadget("pydoc", "pipepager", s("x"), s("id"))


def test_timeit_timeit_is_critical() -> None:
    assert_gadget("timeit", "timeit", s("__import__('os').system('id')"))


def test_cprofile_run_is_critical() -> None:
    assert_gadget("cProfile", "run", s("__import__('os').system('id')"))


def test_profile_run_is_critical() -> None:
    assert_gadget("profile", "run", s("print(1)"))


def test_asyncio_subprocess_is_critical() -> None:
    assert_gadget("asyncio.subprocess", "create_subprocess_shell", s("id"))
    assert_gadget("asyncio.unix_events", "_UnixSubprocessTransport", s("id"))


def test_posixsubprocess_fork_exec_is_critical() -> None:
    assert_gadget("_posixsubprocess", "fork_exec", s("id"))


def test_numpy_testing_runstring_is_critical() -> None:
    assert_gadget("numpy.testing._private.utils", "runstring", s("import os"), b"}")


def test_torch_bottleneck_and_inductor_codecache_are_critical() -> None:
    assert_gadget("torch.utils.bottleneck.__main__", "run_cprofile", s("code"), b"}")
    assert_gadget("torch._inductor.codecache", "compile_file", s("x"))
    assert_gadget("torch.utils.cpp_extension", "load_inline", s("x"))
    assert_gadget("torch.hub", "load", s("attacker/repo"), s("model"))


def test_operator_attrgetter_and_methodcaller_are_critical() -> None:
    assert_gadget("operator", "attrgetter", s("system"))
    assert_gadget("_operator", "methodcaller", s("system"), s("id"))


def test_functools_partial_is_critical() -> None:
    assert_gadget("functools", "partial", glob("builtins", "print"))


def test_getattr_import_chain_is_critical_and_computed_call_flagged() -> None:
    imported = call(glob("builtins", "__import__"), s("os"))
    fetched = glob("builtins", "getattr") + b"(" + imported + s("system") + b"tR"
    ctx = assert_flagged(proto(4) + fetched + b"(" + s("id") + b"tR.", "builtins.getattr")
    found = severities(ctx)
    assert found["builtins.__import__"] is Severity.CRITICAL
    assert any(f.rule_id == "BAS-M105" for f in ctx.findings)  # calling the fetched attribute


def test_idlelib_and_lib2to3_gadgets_are_critical() -> None:
    assert_gadget("idlelib.calltip", "get_entity", s("__import__('os')"))
    assert_gadget("lib2to3.pgen2.grammar", "Grammar", s("x"))


def test_venv_and_ensurepip_are_critical() -> None:
    assert_gadget("venv", "create", s("/tmp/x"))
    assert_gadget("ensurepip", "_run_pip", b"]")


def test_unknown_callable_is_high_not_critical() -> None:
    ctx = assert_flagged(
        call(glob("evilpkg.helpers", "run"), s("x")) + b".", "evilpkg.helpers.run", Severity.HIGH
    )
    assert severities(ctx)["evilpkg.helpers.run"] is Severity.HIGH


# -- aliases and name resolution --------------------------------------------------------------------
def test_python2_builtin_alias_is_mapped_and_critical() -> None:
    ctx = assert_flagged(call(glob("__builtin__", "eval"), s("1")) + b".", "__builtin__.eval")
    assert "builtins.eval" in ctx.findings[0].message


def test_copy_reg_alias_of_reconstructor_is_judged_by_its_arguments() -> None:
    data = call(
        glob("copy_reg", "_reconstructor"), glob("__builtin__", "object"), glob("subprocess", "Popen"), s("x")
    )
    assert_flagged(data + b".", "subprocess.Popen")


def test_posix_and_nt_aliases_of_os_are_critical() -> None:
    assert_gadget("posix", "system", s("id"))
    assert_gadget("nt", "system", s("id"))


def test_dotted_name_attribute_walk_is_not_allowlisted() -> None:
    # protocol 4 resolves dotted names with getattr walks: an allowlisted prefix proves nothing
    data = proto(4) + call(stack_global("torch._utils", "_rebuild_tensor_v2.__globals__"), s("x")) + b"."
    assert_flagged(data, "torch._utils._rebuild_tensor_v2.__globals__")
    data = proto(4) + call(stack_global("torch", "hub.load"), s("repo"), s("m")) + b"."
    assert_flagged(data, "torch.hub.load")
    data = proto(4) + call(stack_global("collections", "OrderedDict.fromkeys.__self__"), b"]") + b"."
    assert_flagged(data, "collections.OrderedDict.fromkeys.__self__")


def test_stack_global_with_memo_fetched_names() -> None:
    data = proto(4) + s("os") + b"\x94" + b"0" + s("system") + b"\x94" + b"0"  # memoize then pop
    data += b"h\x00h\x01\x93" + b"(" + s("id") + b"tR."
    assert_flagged(data, "os.system")


def test_stack_global_with_computed_names_is_dynamic() -> None:
    module = call(glob("builtins", "str"), s("os"))  # an allowlisted call computing the module name
    data = proto(4) + module + s("system") + b"\x93(" + s("id") + b"tR."
    ctx, _ = run(data)
    assert any(f.rule_id == "BAS-M104" and f.severity is Severity.CRITICAL for f in ctx.findings)


def test_inst_opcode_is_a_call() -> None:
    assert_flagged(b"(S'id'\nios\nsystem\n.", "os.system")
    ctx, _ = run(b"(S'x'\nievilpkg\nThing\n.")
    assert severities(ctx)["evilpkg.Thing"] is Severity.HIGH


def test_obj_opcode_is_a_call() -> None:
    assert_flagged(b"(cos\nsystem\nS'id'\no.", "os.system")


def test_newobj_ex_of_dangerous_class_is_critical_and_unknown_class_low() -> None:
    data = proto(4) + stack_global("subprocess", "Popen") + b"(" + s("id") + b"t}\x92."
    assert_flagged(data, "subprocess.Popen")
    ctx, _ = run(proto(4) + stack_global("mypkg.models", "Net") + b")}\x92.")
    assert severities(ctx) == {"mypkg.models.Net": Severity.LOW}


def test_ext_opcodes_are_unverifiable_calls() -> None:
    for ext in (b"\x82\x01", b"\x83\x01\x02", b"\x84\x01\x00\x00\x01"):
        ctx, _ = run(proto(2) + ext + b"(" + s("id") + b"tR.")
        assert any(
            f.rule_id == "BAS-M102" and (f.callable or "").startswith("copyreg.extension")
            for f in ctx.findings
        )


# -- higher-order allowlisted callables ------------------------------------------------------------
def test_copyreg_reconstructor_with_dangerous_base() -> None:
    data = call(glob("copyreg", "_reconstructor"), glob("builtins", "object"), glob("os", "system"), s("id"))
    assert_flagged(data + b".", "os.system")
    data = call(
        glob("copyreg", "_reconstructor"), glob("builtins", "object"), glob("evilpkg", "Base"), s("x")
    )
    assert_flagged(data + b".", "evilpkg.Base", Severity.HIGH)


def test_rebuild_from_type_v2_with_dangerous_func() -> None:
    args = glob("torch", "Tensor") + b"(" + s("id") + b"t}"
    data = call(glob("torch._tensor", "_rebuild_from_type_v2"), glob("os", "system"), *[args])
    assert_flagged(data + b".", "os.system")
    data = call(glob("torch._tensor", "_rebuild_from_type_v2"), glob("evilpkg", "rebuild"), args)
    assert_flagged(data + b".", "evilpkg.rebuild", Severity.HIGH)


def test_defaultdict_factory_is_called() -> None:
    assert_flagged(
        call(glob("collections", "defaultdict"), glob("evilpkg", "factory")) + b".",
        "evilpkg.factory",
        Severity.HIGH,
    )


def test_numpy_bit_generator_ctor_calls_its_argument() -> None:
    data = call(glob("numpy.random._pickle", "__bit_generator_ctor"), glob("evilpkg", "Gen"))
    assert_flagged(data + b".", "evilpkg.Gen", Severity.HIGH)


def test_build_on_an_imported_object_is_flagged() -> None:
    data = proto(4) + stack_global("torch", "nn") + b"}" + s("Linear") + glob("evilpkg", "Fake") + b"sb."
    ctx, _ = run(data)
    assert any(f.rule_id == "BAS-M107" for f in ctx.findings)


# -- stream structure ------------------------------------------------------------------------------
def test_payload_before_a_broken_opcode_is_reported_and_a_problem() -> None:
    data = proto(4) + call(stack_global("os", "system"), s("id")) + b"\xff\xff"
    ctx, exc = run(data)
    assert severities(ctx).get("os.system") is Severity.CRITICAL
    assert exc is not None and exc.offset == len(data) - 2


def test_payload_in_a_second_concatenated_pickle() -> None:
    data = (
        pickle.dumps({"weights": [1, 2, 3]}, protocol=2)
        + proto(2)
        + call(glob("os", "system"), s("id"))
        + b"."
    )
    assert_flagged(data, "os.system")


def test_payload_after_trailing_junk_is_found_by_the_resync_sweep() -> None:
    junk = bytes(range(7, 250)) * 40
    data = (
        pickle.dumps([1.0], protocol=4) + junk + proto(4) + call(stack_global("os", "system"), s("id")) + b"."
    )
    ctx, exc = run(data)
    assert exc is None
    assert severities(ctx).get("os.system") is Severity.CRITICAL
    assert any(f.rule_id == "BAS-M106" for f in ctx.findings)


def test_payload_in_a_bytes_value_is_scanned_as_a_nested_pickle() -> None:
    inner = proto(4) + call(stack_global("os", "system"), s("id")) + b"."
    outer = proto(4) + b"}" + s("blob") + binbytes(inner) + b"s."
    ctx, _ = run(outer)
    hits = [f for f in ctx.findings if f.callable == "os.system"]
    assert hits and hits[0].member is not None and hits[0].member.startswith("@")


def test_payload_in_a_protocol2_bytes_via_codecs_encode_is_scanned() -> None:
    inner = proto(2) + glob("os", "system") + b"(X\x02\x00\x00\x00idtR."
    text = inner.decode("latin-1").encode()  # protocol 2 pickles bytes as _codecs.encode(latin-1 text)
    packed = (
        proto(2)
        + call(glob("_codecs", "encode"), b"X" + struct.pack("<I", len(text)) + text, s("latin1"))
        + b"."
    )
    ctx, _ = run(packed)
    assert "os.system" in severities(ctx)


def test_deeply_nested_marks_hit_a_limit_not_recursion() -> None:
    _ctx, exc = run(b"(" * 300_000 + b".")
    assert isinstance(exc, LimitExceeded)


def test_deeply_nested_lists_do_not_recurse() -> None:
    depth = 200_000
    ctx, exc = run(proto(2) + b"]" * depth + b"a" * (depth - 1) + b".")
    assert exc is None and not ctx.findings


def test_huge_memo_index_is_a_limit() -> None:
    _ctx, exc = run(proto(2) + b"N" + b"r\xff\xff\xff\xff" + b".")
    assert isinstance(exc, LimitExceeded)


def test_opcode_budget_is_a_limit() -> None:
    _ctx, exc = run(proto(2) + b"N0" * 10_000 + b"N.", Limits(max_pickle_opcodes=1_000))
    assert isinstance(exc, LimitExceeded)


def test_frame_lying_about_its_length_is_truncated() -> None:
    data = proto(4) + b"\x95" + struct.pack("<Q", 1 << 40) + b"N."
    _ctx, exc = run(data)
    assert isinstance(exc, TruncatedError) and exc.offset == 2


def test_truncated_stream_reports_payload_and_truncation() -> None:
    data = proto(4) + call(stack_global("os", "system"), s("id"))  # no STOP
    ctx, exc = run(data)
    assert isinstance(exc, TruncatedError)
    assert "os.system" in severities(ctx)


def test_binbytes_longer_than_the_data_is_truncated() -> None:
    _ctx, exc = run(proto(4) + b"\x8e" + struct.pack("<Q", 1 << 50) + b".")
    assert isinstance(exc, TruncatedError)


def test_unknown_opcode_is_a_format_error_with_offset() -> None:
    _ctx, exc = run(proto(2) + b"N\xfe.")
    assert exc is not None and not isinstance(exc, TruncatedError) and exc.offset == 3


@pytest.mark.parametrize("protocol", range(6))
def test_reduce_payload_detected_in_every_protocol(protocol: int) -> None:
    class Evil:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            import os

            return (os.system, ("id",))

    ctx, exc = run(pickle.dumps(Evil(), protocol=protocol))
    assert exc is None
    assert any(
        f.severity is Severity.CRITICAL and f.callable in ("posix.system", "nt.system") for f in ctx.findings
    )


def test_bytes_that_merely_start_like_a_pickle_are_data() -> None:
    # tensor bytes starting with \x80\x02 are not a nested pickle: no problem, no finding
    outer = proto(4) + b"}" + s("w") + binbytes(b"\x80\x02\xff\xfe" + bytes(100)) + b"s."
    ctx, exc = run(outer)
    assert exc is None and not ctx.findings and not ctx.problems


def test_payload_appended_after_torch_legacy_storages_is_found() -> None:
    torch = pytest.importorskip("torch")
    import io
    import warnings

    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.save({"w": torch.arange(300.0)}, buf, _use_new_zipfile_serialization=False)
    evil = proto(2) + call(glob("os", "system"), s("id")) + b"."
    ctx, exc = run(buf.getvalue() + evil)
    assert exc is None
    assert severities(ctx).get("os.system") is Severity.CRITICAL


def test_nested_pickle_in_a_zip_like_value_is_handed_to_the_engine() -> None:
    seen: list[str] = []

    def nested(view: memoryview, loc: Location, ctx: ScanContext, depth: int) -> None:
        seen.append(f"{loc.member}:{bytes(view[:4])!r}:{depth}")

    ctx = ScanContext(nested=nested)
    data = proto(4) + binbytes(b"PK\x03\x04" + bytes(40)) + b"."
    scan_pickle(memoryview(data), Location("m.pkl"), ctx, 0)
    assert seen == ["@7:b'PK\\x03\\x04':1"]


# -- names a denylist entry exempts: the class is allowed, every walk through it is not ------------
def test_pathlib_classes_are_allowed_but_walks_through_them_are_critical() -> None:
    """Checkpoints hold paths (``pathlib.PosixPath('/data')``): the classes are allowlisted and
    exempt from the ``pathlib`` denylist entry. A protocol-4 attribute walk from them to a file
    write or to the module's ``os`` is still a known-dangerous callable."""
    ctx, error = run(proto(4) + call(stack_global("pathlib", "PosixPath"), s("/data/train")) + b".")
    assert error is None and not ctx.findings, ctx.findings
    for name in ("PosixPath.write_text", "Path.unlink", "os.system", "PurePath.__init__"):
        data = proto(4) + call(stack_global("pathlib", name), s("/tmp/x"), s("pwned")) + b"."
        assert_flagged(data, f"pathlib.{name}")
    assert_flagged(call(glob("pathlib", "_abc"), s("x")) + b".", "pathlib._abc")  # not exempt


def test_stdlib_helpers_that_run_commands_are_critical() -> None:
    """Private helpers that hand a string to a shell or a subprocess (uuid, _osx_support, _aix_support)."""
    assert_gadget("uuid", "_get_command_stdout", s("sh"), s("-c"), s("echo pwned"))
    assert_gadget("_osx_support", "_read_output", s("echo pwned"))
    assert_gadget("_aix_support", "_read_cmd_output", s("echo pwned"))


def test_sympy_string_evaluators_are_critical() -> None:
    """sympify and parse_expr evaluate their string argument as Python."""
    assert_gadget("sympy", "sympify", s("__import__('os').system('echo pwned')"))
    assert_gadget("sympy.parsing.sympy_parser", "parse_expr", s("__import__('os')"))


def test_torchscript_lite_loader_is_critical() -> None:
    assert_gadget("torch._C", "_load_for_lite_interpreter", s("/tmp/model.ptl"))


def test_pandas_index_rebuilder_judges_the_class_it_is_given() -> None:
    """pandas.core.indexes.base._new_Index(cls, d) runs cls.__new__(cls, **d): an allowlisted
    rebuilder must not launder the class it is handed."""
    rebuild = stack_global("pandas.core.indexes.base", "_new_Index")
    popen = proto(4) + call(rebuild, stack_global("subprocess", "Popen"), b"}") + b"."
    assert_flagged(popen, "subprocess.Popen")
    unknown = proto(4) + call(rebuild, stack_global("acme", "Thing"), b"}") + b"."
    assert_flagged(unknown, "acme.Thing", Severity.LOW)
