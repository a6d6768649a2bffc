#!/usr/bin/env python3
"""Writes the engine's fuzz seeds and the crafted inputs of the reliability issue into
fuzz/regressions/{router_file,dataset,npy}/, where `cargo test` replays them (see
crates/pointsman/src/fuzzing.rs). Run from the repository root; it is deterministic and only
adds files (a file a fuzzer found is never overwritten).

The router files start from the small files of crates/pointsman/tests/fixtures/b28f5b0/ and
change their header: the cases that aborted or misled the engine (a 5.7 KB linucb file whose
metadata says dim 100000, a tampered Thompson inverse, a price of 1e308, format versions "01"
and "+1", truncations, a header length beyond the file).
"""

import json
import struct
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "crates/pointsman/tests/fixtures/b28f5b0"
OUT = ROOT / "fuzz/regressions"


def split(data: bytes):
    n = struct.unpack("<Q", data[:8])[0]
    return json.loads(data[8 : 8 + n]), data[8 + n :]


def join(header: dict, body: bytes) -> bytes:
    text = json.dumps(header, separators=(",", ":"))
    text += " " * ((8 - len(text) % 8) % 8)
    return struct.pack("<Q", len(text)) + text.encode() + body


def with_meta(name: str, **changes) -> bytes:
    header, body = split((FIXTURES / f"{name}.safetensors").read_bytes())
    header["__metadata__"].update(changes)
    return join(header, body)


def with_tensor_values(name: str, tensor: str, fmt: str, edits: dict) -> bytes:
    """The fixture with some values of `tensor` replaced (index → value)."""
    header, body = split((FIXTURES / f"{name}.safetensors").read_bytes())
    body = bytearray(body)
    start = header[tensor]["data_offsets"][0]
    size = struct.calcsize(fmt)
    for i, v in edits.items():
        struct.pack_into(fmt, body, start + i * size, v)
    return join(header, bytes(body))


def write(target: str, name: str, data: bytes) -> None:
    d = OUT / target
    d.mkdir(parents=True, exist_ok=True)
    p = d / name
    if not p.exists():
        p.write_bytes(data)


def router_files() -> None:
    for f in sorted(FIXTURES.glob("*.safetensors")):
        write("router_file", f"seed_{f.stem}.safetensors", f.read_bytes())
    # Sizes declared in the metadata that the tensors do not have.
    for dim in ["100000", "100000000000", "30000", "0", "-1", "385"]:
        write("router_file", f"linucb_dim_{dim}.safetensors", with_meta("linucb", dim=dim))
    write("router_file", "thompson_dim_30000.safetensors", with_meta("thompson", dim="30000"))
    # Three off-diagonal values of a Thompson inverse set to -1: loaded and routed before, and
    # after one observation saved a file that no longer loaded.
    header, _ = split((FIXTURES / "thompson.safetensors").read_bytes())
    p = header["thompson.a_inv"]["shape"][2]
    write(
        "router_file",
        "thompson_tampered_inverse.safetensors",
        with_tensor_values("thompson", "thompson.a_inv", "<d", {1: -1.0, p: -1.0, 2 * p + 1: -1.0}),
    )
    # A price that makes every cost infinite.
    models = json.loads(split((FIXTURES / "knn.safetensors").read_bytes())[0]["__metadata__"]["models"])
    models[0]["input_usd_per_mtok"] = 1e308
    write("router_file", "knn_price_1e308.safetensors", with_meta("knn", models=json.dumps(models)))
    # "2" is a valid version since issue 21 (partial labels, onboarded models); "3" is not yet.
    for v in ["01", "+1", "2", "3", "", "1.0"]:
        write("router_file", f"zero_format_version_{v or 'empty'}.safetensors", with_meta("zero", format_version=v))
    good = (FIXTURES / "mf.safetensors").read_bytes()
    for n in [0, 7, 8, 9, 100, len(good) // 2, len(good) - 1]:
        write("router_file", f"mf_truncated_{n}.safetensors", good[:n])
    write("router_file", "header_longer_than_file.safetensors", struct.pack("<Q", 1 << 40) + b"{}")
    write("router_file", "not_a_router.safetensors", b"definitely not a router file")


def datasets() -> None:
    models = json.dumps(
        {
            "models": {
                "a": {"input_usd_per_mtok": 1.0, "output_usd_per_mtok": 2.0},
                "b": {"input_usd_per_mtok": 10.0, "output_usd_per_mtok": 20.0},
            },
            "default_output_tokens": 100,
        }
    ).encode()
    good = [
        '{"id": "q1", "split": "train", "task": "t", "prompt": "abcdefgh", "scores": {"a": 0, "b": 1}}',
        '{"id": "q2", "split": "test", "prompt": "abcd", "scores": {"a": 0.5, "b": 1}, "cost_usd": {"a": 0.25}, "output_chars": {"b": 40}}',
    ]
    cases = {
        "good": good,
        "cost_for_unknown_model": [good[0], '{"id": "x", "split": "test", "prompt": "p", "scores": {"a": 1, "b": 0}, "cost_usd": {"z": 0.1}}'],
        "fractional_output_chars": [good[0], '{"id": "x", "split": "test", "prompt": "p", "scores": {"a": 1, "b": 0}, "output_chars": {"a": 1.5}}'],
        "duplicate_key": [good[0], '{"id": "x", "split": "test", "prompt": "p", "scores": {"a": 1, "b": 0, "a": 0.2}}'],
        "nan_score": ['{"id": "x", "split": "train", "prompt": "p", "scores": {"a": NaN, "b": 0}}'],
        "score_out_of_range": ['{"id": "x", "split": "train", "prompt": "p", "scores": {"a": 1.7, "b": 0}}'],
        "huge_cost": [good[0], '{"id": "x", "split": "test", "prompt": "p", "scores": {"a": 1, "b": 0}, "cost_usd": {"a": 1e308}}'],
    }
    for name, lines in cases.items():
        write("dataset", f"{name}.bin", models + b"\0" + "\n".join(lines).encode())
    write("dataset", "price_1e308.bin", models.replace(b'"input_usd_per_mtok": 1.0', b'"input_usd_per_mtok": 1e308') + b"\0" + "\n".join(good).encode())


def npys() -> None:
    def npy(descr: str, shape: str, body: bytes) -> bytes:
        header = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}"
        header += " " * ((64 - (10 + len(header) + 1) % 64) % 64) + "\n"
        return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + body

    write("npy", "good_f16.npy", npy("<f2", "(2, 3)", struct.pack("<6e", *[0.5] * 6)))
    write("npy", "good_f4.npy", npy("<f4", "(1, 2)", struct.pack("<2f", 1.0, 2.0)))
    write("npy", "short_data.npy", npy("<f4", "(4, 4)", struct.pack("<2f", 1.0, 2.0)))
    write("npy", "huge_shape.npy", npy("<f4", "(18446744073709551615, 2)", b""))
    write("npy", "wrong_dtype.npy", npy("<i8", "(1, 1)", b"\0" * 8))
    write("npy", "three_d.npy", npy("<f4", "(1, 1, 1)", b"\0" * 4))
    write("npy", "truncated_header.npy", b"\x93NUMPY\x01\x00\xff\x7f{")


if __name__ == "__main__":
    router_files()
    datasets()
    npys()
