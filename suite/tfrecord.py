"""TFRecord files read and written without TensorFlow: record framing with CRC-32C,
tf.train.Example.

A TFRecord file is a run of records, each ``uint64 length | uint32 masked_crc32c(length) |
data | uint32 masked_crc32c(data)`` (little-endian). Each ``data`` here is a serialized
``tf.train.Example``: ``Features{map<string, Feature>}``, a Feature holding one of
``bytes_list`` (1), ``float_list`` (2) or ``int64_list`` (3). Used by ``stimuli
import-clickme`` and by models/harmonizer/clickme.py (the ClickMe training reader); no torch here.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np

from suite.atomic import atomic_write_bytes
from suite.errors import InputError

_CASTAGNOLI = 0x82F63B78  # reflected CRC-32C polynomial
_MASK_DELTA = 0xA282EAD8


def _table() -> list[int]:
    out = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ _CASTAGNOLI if c & 1 else c >> 1
        out.append(c)
    return out


_TABLE = _table()


def crc32c_python(data: bytes) -> int:
    """CRC-32C (Castagnoli) of ``data``, pure Python: the reference, slow on large records."""
    crc = 0xFFFFFFFF
    table = _TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


try:  # the `crc32c` package computes the same checksum in C (hardware where there is one)
    from crc32c import crc32c as _crc32c_fast
except ImportError:  # pragma: no cover - depends on the environment
    _crc32c_fast = None

CRC32C_BACKEND = "crc32c package" if _crc32c_fast is not None else "pure Python"


def crc32c(data: bytes) -> int:
    """CRC-32C of ``data``; identical values from either backend (see CRC32C_BACKEND)."""
    return _crc32c_fast(data) if _crc32c_fast is not None else crc32c_python(data)


def masked_crc32c(data: bytes) -> int:
    """TFRecord's masked CRC: rotate right by 15 bits, add 0xa282ead8 (mod 2³²)."""
    crc = crc32c(data)
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + _MASK_DELTA) & 0xFFFFFFFF


# ---- record framing -------------------------------------------------------------------------

def _read_exact(fh, n: int, path: Path, offset: int) -> bytes:
    data = fh.read(n)
    if len(data) != n:
        raise InputError(f"{path}: truncated TFRecord at byte {offset} (wanted {n} bytes, got "
                         f"{len(data)}); the shard is incomplete: copy or download it again")
    return data


def _read_header(fh, path: Path, offset: int, verify: bool) -> int | None:
    head = fh.read(12)
    if not head:
        return None
    if len(head) != 12:
        raise InputError(f"{path}: truncated TFRecord header at byte {offset}; "
                         "the shard is incomplete: copy or download it again")
    length, crc = struct.unpack("<QI", head)
    if verify and masked_crc32c(head[:8]) != crc:
        raise InputError(f"{path}: bad length checksum at byte {offset}: not a TFRecord file, "
                         "or a corrupt one (GZIP-compressed shards must be decompressed first)")
    return length


def index_records(path: str | os.PathLike, verify: bool = True) -> list[tuple[int, int]]:
    """(offset of data, length) of every record in a TFRecord file, from the framing alone."""
    path = Path(path)
    out, offset = [], 0
    with open(path, "rb") as fh:
        while (length := _read_header(fh, path, offset, verify)) is not None:
            out.append((offset + 12, length))
            offset += 12 + length + 4
            fh.seek(offset)
    if offset != path.stat().st_size:
        raise InputError(f"{path}: truncated TFRecord (last record ends past the file); "
                         "copy or download the shard again")
    return out


def read_record(fh, path: Path, data_offset: int, length: int, verify: bool = True) -> bytes:
    """One record's data at a known offset in an open file, its data CRC checked."""
    fh.seek(data_offset)
    data = _read_exact(fh, length, path, data_offset)
    (crc,) = struct.unpack("<I", _read_exact(fh, 4, path, data_offset + length))
    if verify and masked_crc32c(data) != crc:
        raise InputError(f"{path}: bad data checksum in the record at byte {data_offset - 12}; "
                         "the shard is corrupt: copy or download it again")
    return data


def iter_records(path: str | os.PathLike, verify: bool = True) -> Iterator[bytes]:
    """Every record's data in file order, both CRCs checked unless ``verify`` is False."""
    path = Path(path)
    with open(path, "rb") as fh:
        offset = 0
        while (length := _read_header(fh, path, offset, verify)) is not None:
            yield read_record(fh, path, offset + 12, length, verify)
            offset += 12 + length + 4


def frame_record(data: bytes) -> bytes:
    """One TFRecord frame around ``data``."""
    head = struct.pack("<Q", len(data))
    return head + struct.pack("<I", masked_crc32c(head)) + data + \
        struct.pack("<I", masked_crc32c(data))


def write_records(path: str | os.PathLike, records: Iterable[bytes]) -> Path:
    """Write a TFRecord file atomically (uncompressed)."""
    return atomic_write_bytes(path, b"".join(frame_record(r) for r in records))


# ---- protobuf wire format: just enough for tf.train.Example ----------------------------------

def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("varint runs past the end of the message")
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint longer than 10 bytes")


def _fields(buf: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """(field number, wire type, value) of each field of a message; bytes for wire type 2."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = int.from_bytes(buf[pos:pos + 8], "little"), pos + 8
        elif wire == 2:
            n, pos = _varint(buf, pos)
            if pos + n > len(buf):
                raise ValueError("length-delimited field runs past the end of the message")
            value, pos = buf[pos:pos + n], pos + n
        elif wire == 5:
            value, pos = int.from_bytes(buf[pos:pos + 4], "little"), pos + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield field, wire, value


def _signed64(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def _decode_feature(buf: bytes) -> list:
    values: list = []
    for kind, _, payload in _fields(buf):
        if kind == 1:  # BytesList: repeated bytes value = 1
            values = [v for f, _, v in _fields(payload) if f == 1]
        elif kind == 2:  # FloatList: packed (wire 2) or one float per field (wire 5)
            values = []
            for f, wire, v in _fields(payload):
                if f == 1 and wire == 2:
                    values.extend(np.frombuffer(v, "<f4").tolist())
                elif f == 1:
                    values.append(struct.unpack("<f", struct.pack("<I", v))[0])
        elif kind == 3:  # Int64List: packed varints (wire 2) or one per field (wire 0)
            values = []
            for f, wire, v in _fields(payload):
                if f == 1 and wire == 2:
                    pos = 0
                    while pos < len(v):
                        n, pos = _varint(v, pos)
                        values.append(_signed64(n))
                elif f == 1:
                    values.append(_signed64(v))
    return values


def parse_example(data: bytes) -> dict[str, list]:
    """A serialized tf.train.Example → {key: list of bytes | float | int}."""
    out: dict[str, list] = {}
    for field, _, features in _fields(data):
        if field != 1:
            continue
        for f, _, entry in _fields(features):
            if f != 1:
                continue
            key, value = "", b""
            for ef, _, ev in _fields(entry):
                if ef == 1:
                    key = ev.decode("utf-8")
                elif ef == 2:
                    value = ev
            out[key] = _decode_feature(value)
    return out


def _enc_varint(v: int) -> bytes:
    v &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        out.append(b | (0x80 if v else 0))
        if not v:
            return bytes(out)


def _enc_field(field: int, payload: bytes) -> bytes:
    return _enc_varint(field << 3 | 2) + _enc_varint(len(payload)) + payload


def encode_example(features: Mapping[str, bytes | int | float | Sequence]) -> bytes:
    """{key: bytes | int | float or a list of one kind} → a serialized tf.train.Example."""
    entries = b""
    for key, value in features.items():
        vals = list(value) if isinstance(value, list | tuple) else [value]
        if all(isinstance(v, bytes) for v in vals):
            feat = _enc_field(1, b"".join(_enc_field(1, v) for v in vals))
        elif all(isinstance(v, int) for v in vals):
            feat = _enc_field(3, _enc_field(1, b"".join(_enc_varint(v) for v in vals)))
        elif all(isinstance(v, float | int) for v in vals):
            feat = _enc_field(2, _enc_field(1, np.asarray(vals, "<f4").tobytes()))
        else:
            raise ValueError(f"feature {key!r}: values must be all bytes, all int or all float")
        entries += _enc_field(1, _enc_field(1, key.encode("utf-8")) + _enc_field(2, feat))
    return _enc_field(1, entries)
