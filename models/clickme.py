"""ClickMe TFRecord shards read without TensorFlow: record framing with CRC-32C, tf.train.Example.

A TFRecord file is a run of records, each ``uint64 length | uint32 masked_crc32c(length) |
data | uint32 masked_crc32c(data)`` (little-endian). Each ``data`` here is a serialized
``tf.train.Example``: ``Features{map<string, Feature>}``, a Feature holding one of
``bytes_list`` (1), ``float_list`` (2) or ``int64_list`` (3). The ClickMe release stores
``image`` (256×256 RGB JPEG), ``heatmap`` (256×256 8-bit JPEG) and ``label`` (int64), the
keys the authors' loader parses (serre-lab/Harmonization, common/clickme_dataset.py); other
keys can be given with :class:`ClickMeKeys`.
"""

from __future__ import annotations

import io
import os
import struct
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from models.human_maps import MODEL_RES, prepare_human_maps
from stimuli.atomic import atomic_write_bytes
from stimuli.errors import InputError

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


# ---- ClickMe -------------------------------------------------------------------------------

@dataclass(frozen=True)
class ClickMeKeys:
    """Feature keys of a ClickMe record; defaults are those of the authors' release."""

    image: str = "image"
    heatmap: str = "heatmap"
    label: str = "label"


def decode_clickme(data: bytes, keys: ClickMeKeys = ClickMeKeys(), where: str = "record"
                   ) -> tuple[np.ndarray, np.ndarray, int]:
    """One ClickMe record → image (H, W, 3) uint8, heatmap (H, W) float32 in 0–255, label."""
    try:
        ex = parse_example(data)
    except (ValueError, UnicodeDecodeError) as err:
        raise InputError(f"{where}: not a tf.train.Example ({err}); is this a ClickMe shard?") \
            from err
    for k in (keys.image, keys.heatmap, keys.label):
        if not ex.get(k):
            raise InputError(f"{where}: no feature {k!r} (found {sorted(ex)}); give the shard's "
                             "keys with --clickme-keys IMAGE,HEATMAP,LABEL")
    try:
        image = np.asarray(Image.open(io.BytesIO(ex[keys.image][0])).convert("RGB"))
        heat = np.asarray(Image.open(io.BytesIO(ex[keys.heatmap][0])).convert("L"), np.float32)
    except (OSError, TypeError) as err:
        raise InputError(f"{where}: image or heatmap is not a decodable JPEG/PNG ({err})") from err
    return image, heat, int(ex[keys.label][0])


def prepare_image(image: np.ndarray, size: int = MODEL_RES) -> torch.Tensor:
    """(H, W, 3) uint8 → (3, size, size) float32 in [0, 1], bilinear resize without a crop."""
    t = torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1)[None].float() / 255.0
    return F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False)[0]


class ClickMeShards(torch.utils.data.Dataset):
    """Random-access ClickMe records over TFRecord shards: (image (3,S,S) in [0,1], map (1,S,S), label)."""

    def __init__(self, paths: Sequence[str | os.PathLike], keys: ClickMeKeys = ClickMeKeys(),
                 size: int = MODEL_RES, verify: bool = True):
        self.paths = [Path(p) for p in paths]
        if not self.paths:
            raise InputError("no ClickMe shards given; pass --clickme FILE.tfrecords …")
        for p in self.paths:
            if not p.is_file():
                raise InputError(f"{p}: ClickMe shard not found; check the path")
        self.keys, self.size, self.verify = keys, size, verify
        self.index = [(i, off, n) for i, p in enumerate(self.paths)
                      for off, n in index_records(p, verify)]
        self._handles: dict[int, object] = {}

    def __len__(self) -> int:
        return len(self.index)

    def raw(self, i: int) -> bytes:
        """The serialized Example of record ``i``, CRC checked."""
        shard, off, n = self.index[i]
        # one open handle per shard and worker process: DataLoader workers fork after __init__
        key = (os.getpid(), shard)
        if key not in self._handles:
            self._handles[key] = open(self.paths[shard], "rb")
        return read_record(self._handles[key], self.paths[shard], off, n, self.verify)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        shard, off, _ = self.index[i]
        image, heat, label = decode_clickme(self.raw(i), self.keys,
                                            f"{self.paths[shard]} (record at byte {off - 12})")
        return prepare_image(image, self.size), prepare_human_maps(heat, self.size)[0], label

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_handles"] = {}
        return state
