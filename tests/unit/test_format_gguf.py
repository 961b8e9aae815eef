"""GGUF scanner: files written with struct (and the gguf package when available)."""

from __future__ import annotations

import contextlib
import struct
from pathlib import Path

import pytest

from bastion.core import Severity
from bastion.scanners.gguf import scan_gguf
from bastion.scanners.interface import (
    FormatError,
    LimitExceeded,
    Limits,
    Location,
    ScanContext,
    TruncatedError,
)
from tests.conftest import mutations as _mutations

LOC = Location("model.gguf")
HF_TEMPLATE = """{{ bos_token }}
{%- for message in messages %}
    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}
        {{- raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}
    {%- endif %}
    {%- if message['role'] == 'user' %}
        {{- '[INST] ' + message['content'] | trim + ' [/INST]' }}
    {%- elif message['role'] == 'assistant' %}
        {{- ' ' + message['content'] | trim + eos_token }}
    {%- endif %}
{%- endfor %}
{%- set ns = namespace(found=false) %}{{ tools | tojson if tools is defined else '' }}"""
SSTI = "{{ ''.__class__.__mro__[1].__subclasses__() }}"


def s(text: str | bytes, v: int = 3) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    return struct.pack("<I" if v == 1 else "<Q", len(raw)) + raw


def kv_str(key: str, value: str, v: int = 3) -> bytes:
    return s(key, v) + struct.pack("<I", 8) + s(value, v)


def kv_u32(key: str, value: int, v: int = 3) -> bytes:
    return s(key, v) + struct.pack("<II", 4, value)


def kv_array(key: str, etype: int, items: bytes, n: int, v: int = 3) -> bytes:
    return s(key, v) + struct.pack("<II", 9, etype) + struct.pack("<I" if v == 1 else "<Q", n) + items


def tensor_info(name: str, dims: list[int], ggml_type: int, offset: int, v: int = 3) -> bytes:
    d = b"".join(struct.pack("<I" if v == 1 else "<Q", x) for x in dims)
    return s(name, v) + struct.pack("<I", len(dims)) + d + struct.pack("<IQ", ggml_type, offset)


def gguf(
    kvs: list[bytes], tensors: list[bytes] = (), data: bytes = b"", v: int = 3, align: int = 32
) -> bytes:  # type: ignore[assignment]
    counts = struct.pack("<II" if v == 1 else "<QQ", len(tensors), len(kvs))
    head = b"GGUF" + struct.pack("<I", v) + counts + b"".join(kvs) + b"".join(tensors)
    pad = -len(head) % align
    return head + b"\0" * pad + data


def scan(blob: bytes, ctx: ScanContext | None = None) -> ScanContext:
    ctx = ctx or ScanContext()
    scan_gguf(memoryview(blob), LOC, ctx, 0)
    return ctx


def benign(v: int = 3) -> bytes:
    tokens = s("a", v) + s("b", v) + s("<s>", v)
    kvs = [
        kv_str("general.architecture", "llama", v),
        kv_u32("general.alignment", 32, v),
        kv_str("tokenizer.chat_template", HF_TEMPLATE, v),
        kv_array("tokenizer.ggml.tokens", 8, tokens, 3, v),
        kv_array("tokenizer.ggml.scores", 6, struct.pack("<3f", 0, 1, 2), 3, v),
        kv_array(
            "nested", 9, struct.pack("<I", 0) + struct.pack("<I" if v == 1 else "<Q", 2) + b"\1\2", 1, v
        ),
    ]
    tensors = [tensor_info("w", [4, 2], 0, 0, v), tensor_info("q", [32], 8, 32, v)]
    return gguf(kvs, tensors, b"\0" * 32 + b"\0" * 34, v)


@pytest.mark.parametrize("v", [1, 2, 3])
def test_benign_files_have_no_findings(v: int) -> None:
    ctx = scan(benign(v))
    assert ctx.findings == []
    assert [a.format for a in ctx.scanned] == ["gguf"]


def test_file_written_by_the_gguf_package(tmp_path: Path) -> None:
    gg = pytest.importorskip("gguf")
    np = pytest.importorskip("numpy")
    path = tmp_path / "m.gguf"
    w = gg.GGUFWriter(str(path), "llama")
    w.add_chat_template(HF_TEMPLATE)
    w.add_token_list(["a", "b", "c"])
    w.add_tensor("tok_embd", np.zeros((8, 4), dtype=np.float32))
    w.add_tensor("out", np.zeros(64, dtype=np.float16))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    assert scan(path.read_bytes()).findings == []


def test_big_endian_file() -> None:
    blob = b"GGUF" + struct.pack(">IQQ", 3, 0, 1) + struct.pack(">Q", 1) + b"k" + struct.pack(">IB", 0, 7)
    assert scan(blob).findings == []


@pytest.mark.parametrize(
    "payload",
    [
        SSTI,
        "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
        "{% for x in ()|attr('\\x5f\\x5fclass\\x5f\\x5f') %}{% endfor %}",
        "{{ lipsum['__globals__']['os'].system('id') }}",
        "{{ self._TemplateReference__context.joiner.__init__.__globals__ }}",
        "{{ request.application.__globals__.__builtins__.__import__('os') }}",
        "{{ ('%c%c' | format(95, 95)) }}",
        "{{ namespace.__init__ }}",
        "{{ config.items() }}",
        "{% import 'x' as y %}",
    ],
)
def test_ssti_in_chat_template_is_critical(payload: str) -> None:
    template = HF_TEMPLATE + "\n" + payload
    ctx = scan(gguf([kv_str("tokenizer.chat_template", template)]))
    assert ctx.findings and {f.rule_id for f in ctx.findings} == {"BAS-M230"}
    assert ctx.findings[0].severity is Severity.CRITICAL
    assert ctx.findings[0].line == HF_TEMPLATE.count("\n") + 2


def test_named_chat_templates_are_checked_too() -> None:
    ctx = scan(
        gguf(
            [kv_str("tokenizer.chat_template", HF_TEMPLATE), kv_str("tokenizer.chat_template.tool_use", SSTI)]
        )
    )
    assert [(f.rule_id, f.line) for f in ctx.findings] == [("BAS-M230", 1)]
    assert "tool_use" in ctx.findings[0].message


def test_other_string_keys_are_not_templates() -> None:
    assert scan(gguf([kv_str("general.description", SSTI)])).findings == []


def test_giant_string_length_is_reported_not_allocated() -> None:
    blob = b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", 2**62) + b"key" + b"\0" * 16
    ctx = ScanContext()
    with pytest.raises(TruncatedError) as err:
        scan(blob, ctx)
    assert err.value.offset == 32
    assert [f.rule_id for f in ctx.findings] == ["BAS-M231"]


def test_giant_array_count() -> None:
    blob = gguf([kv_array("tokenizer.ggml.tokens", 8, b"", 2**60)])
    ctx = ScanContext()
    with pytest.raises(TruncatedError):
        scan(blob, ctx)
    assert [f.rule_id for f in ctx.findings] == ["BAS-M231"]


def test_impossible_kv_and_tensor_counts() -> None:
    for counts in (struct.pack("<QQ", 0, 2**40), struct.pack("<QQ", 2**40, 0)):
        ctx = ScanContext()
        with pytest.raises(TruncatedError):
            scan(b"GGUF" + struct.pack("<I", 3) + counts + b"\0" * 64, ctx)
        assert [f.rule_id for f in ctx.findings] == ["BAS-M231"]


def test_deeply_nested_arrays_hit_the_limit() -> None:
    nested = b""
    for _ in range(50):
        nested = struct.pack("<IQ", 9, 1) + nested
    blob = gguf([s("deep") + struct.pack("<I", 9) + nested + struct.pack("<IQ", 0, 0)])
    with pytest.raises(LimitExceeded):
        scan(blob)


@pytest.mark.parametrize(
    "blob",
    [b"GGML\x03\0\0\0" + b"\0" * 16, b"GGUF", b"GGUF\x07\0\0\0" + b"\0" * 16, b"GGUF\x03\0\0\0\0\0"],
    ids=["magic", "short", "version", "cut-counts"],
)
def test_malformed_headers(blob: bytes) -> None:
    with pytest.raises(FormatError):
        scan(blob)


def test_unknown_value_type_is_malformed() -> None:
    with pytest.raises(FormatError):
        scan(gguf([s("k") + struct.pack("<I", 99) + b"\0" * 8]))


def test_truncated_after_template_keeps_the_finding() -> None:
    blob = gguf([kv_str("tokenizer.chat_template", SSTI), kv_str("general.name", "x" * 100)])
    ctx = ScanContext()
    with pytest.raises(TruncatedError):
        scan(blob[:-80], ctx)
    assert [f.rule_id for f in ctx.findings] == ["BAS-M230"]


def test_tensor_out_of_bounds_misaligned_and_bad_type() -> None:
    tensors = [
        tensor_info("oob", [1024, 1024], 0, 0),
        tensor_info("mis", [2], 0, 4),
        tensor_info("typ", [2], 4, 0),
        tensor_info("far", [1], 0, 2**63),
    ]
    ctx = scan(gguf([], tensors, b"\0" * 64))
    messages = [f.message for f in ctx.findings]
    assert {f.rule_id for f in ctx.findings} == {"BAS-M232"}
    assert len(messages) == 4
    assert any("'mis'" in m and "aligned" in m for m in messages)


def test_too_many_dimensions() -> None:
    ctx = ScanContext()
    with pytest.raises(FormatError):
        scan(gguf([], [tensor_info("t", [1] * 9, 0, 0)]), ctx)
    assert [f.rule_id for f in ctx.findings] == ["BAS-M232"]


def test_bad_alignment_value() -> None:
    ctx = scan(gguf([kv_u32("general.alignment", 3)]))
    assert [f.rule_id for f in ctx.findings] == ["BAS-M232"]


def test_header_over_limit() -> None:
    ctx = ScanContext(limits=Limits(max_header_bytes=64))
    with pytest.raises(LimitExceeded):
        scan(gguf([kv_str("general.name", "x" * 200)]), ctx)


BENIGN_TEMPLATES = [
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content']"
    " + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}",
    '{%- set date_string = strftime_now("%d %b %Y") %}\n'
    "{%- if builtin_tools is defined %}"
    "{{- 'Tools: ' + builtin_tools | reject('equalto', 'code_interpreter') | join(', ') }}"
    "{%- endif %}",
    "{%- for t in tools %}{{ t.function.name | replace('_', ' ') }} (e.g. call it like this){% endfor %}",
    "{%- for c in message.tool_calls %}{{ 'call_' ~ loop.index }}: "
    "{{ c.function.arguments | tojson }}{% endfor %}",
    "You are a helpful assistant. Do not open links; use the system prompt. The os. module is off limits? "
    "{{ messages[0]['content'] }}",
]


@pytest.mark.parametrize("template", BENIGN_TEMPLATES)
def test_real_world_template_idioms_are_not_flagged(template: str) -> None:
    assert scan(gguf([kv_str("tokenizer.chat_template", template)])).findings == []


@pytest.mark.parametrize(
    "payload",
    [
        "{{ ()['_' ~ '_class_' ~ '_'] }}",
        "{{ x['__cla' + 'ss__'] }}",
        "{{ x[('_' * 2) ~ 'globals' ~ ('_' * 2)] }}",
    ],
)
def test_dunders_assembled_at_render_time(payload: str) -> None:
    assert {f.rule_id for f in scan(gguf([kv_str("tokenizer.chat_template", payload)])).findings} == {
        "BAS-M230"
    }


@pytest.mark.parametrize("v", [1, 3])
def test_random_corruption_only_raises_format_errors(v: int) -> None:
    for blob in _mutations(benign(v)):
        with contextlib.suppress(FormatError):
            scan(blob)
