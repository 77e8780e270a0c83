"""ClickMe TFRecord shards: CRC-32C, framing, tf.train.Example decoding, a written fixture read
back."""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
import torch
from PIL import Image

from models.harmonizer import clickme
from models.human_maps import prepare_human_maps
from stimuli.clickme_import import ClickMeKeys, decode_clickme
from suite import tfrecord
from suite.errors import InputError


def _jpeg(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def _fixture(tmp_path, n=5, keys=None):
    keys = keys or ClickMeKeys()
    rng = np.random.default_rng(3)
    images, heats, labels = [], [], []
    for i in range(n):
        img = rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)
        yy, xx = np.mgrid[:256, :256]
        heat = (255 * np.exp(-((yy - 40 * i - 30) ** 2 + (xx - 128) ** 2) / 800)).astype(np.uint8)
        images.append(img)
        heats.append(heat)
        labels.append(int(rng.integers(0, 1000)))
    records = [tfrecord.encode_example({keys.image: _jpeg(a), keys.heatmap: _jpeg(h),
                                      keys.label: y, "click_count": 7})
               for a, h, y in zip(images, heats, labels, strict=True)]
    path = tfrecord.write_records(tmp_path / "train-0.tfrecords", records)
    return path, images, heats, labels


def test_crc32c_known_values_and_backends_agree():
    # RFC 3720 / iSCSI check value and the all-zero 32-byte vector
    assert tfrecord.crc32c_python(b"123456789") == 0xE3069283
    assert tfrecord.crc32c_python(bytes(32)) == 0x8A9136AA
    blob = np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes()
    assert tfrecord.crc32c(blob) == tfrecord.crc32c_python(blob)


def test_masked_crc_of_an_empty_record_header():
    # the length field of an empty record is 8 zero bytes
    crc = tfrecord.crc32c_python(bytes(8))
    rot = ((crc >> 15) | (crc << 17)) & 0xFFFFFFFF
    assert tfrecord.masked_crc32c(bytes(8)) == (rot + 0xA282EAD8) & 0xFFFFFFFF
    frame = tfrecord.frame_record(b"")
    assert len(frame) == 16 and frame[:8] == bytes(8)


def test_example_round_trip_all_kinds():
    feats = {"b": [b"x", b"", b"\x00\xff"], "i": [0, -1, 2**40, -(2**63)],
             "f": [0.5, -2.25, 1e-3], "one": 7}
    got = tfrecord.parse_example(tfrecord.encode_example(feats))
    assert got["b"] == feats["b"] and got["i"] == feats["i"] and got["one"] == [7]
    np.testing.assert_allclose(got["f"], np.float32(feats["f"]))


def test_unpacked_repeated_scalars_are_read():
    # proto2 writers may emit one field per value instead of a packed run
    int_list = b"".join(tfrecord._enc_varint(1 << 3 | 0) + tfrecord._enc_varint(v) for v in (3, 5))
    flt_list = b"".join(tfrecord._enc_varint(1 << 3 | 5) + struct.pack("<f", v) for v in (1.5, 2.5))
    feat_i = tfrecord._enc_field(3, int_list)
    feat_f = tfrecord._enc_field(2, flt_list)
    entries = b"".join(tfrecord._enc_field(1, tfrecord._enc_field(1, k) + tfrecord._enc_field(2, f))
                       for k, f in ((b"i", feat_i), (b"f", feat_f)))
    got = tfrecord.parse_example(tfrecord._enc_field(1, entries))
    assert got == {"i": [3, 5], "f": [1.5, 2.5]}


def test_fixture_round_trips_through_the_reader(tmp_path):
    path, images, heats, labels = _fixture(tmp_path)
    raw = list(tfrecord.iter_records(path))
    assert len(raw) == 5
    for data, img, heat, label in zip(raw, images, heats, labels, strict=True):
        got_img, got_heat, got_label = decode_clickme(data)
        assert got_label == label
        # JPEG is lossy: the decode must equal PIL's decode of the very bytes we wrote
        assert np.array_equal(got_img, np.asarray(Image.open(io.BytesIO(_jpeg(img)))))
        assert np.abs(got_heat - heat.astype(np.float32)).mean() < 2.0

    ds = clickme.ClickMeShards([path, path])
    assert len(ds) == 10
    x, m, y = ds[7]
    assert x.shape == (3, 224, 224) and m.shape == (1, 224, 224) and y == labels[2]
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    _, ref_heat, _ = decode_clickme(raw[2])
    torch.testing.assert_close(m, prepare_human_maps(ref_heat)[0])
    # the blurred map still peaks near the drawn blob (row 40·2 + 30 = 110 of 256)
    peak_row = int(m[0].amax(dim=1).argmax()) * 256 / 224
    assert abs(peak_row - 110) < 8


def test_custom_keys(tmp_path):
    keys = ClickMeKeys(image="image/encoded", heatmap="map", label="y")
    path, _, _, labels = _fixture(tmp_path, n=2, keys=keys)
    assert clickme.ClickMeShards([path], keys=keys)[1][2] == labels[1]
    with pytest.raises(InputError, match="--clickme-keys"):
        clickme.ClickMeShards([path])[0]


def test_corrupt_data_names_the_file(tmp_path):
    path, *_ = _fixture(tmp_path, n=2)
    blob = bytearray(path.read_bytes())
    blob[100] ^= 0xFF  # inside the first record's data
    bad = tmp_path / "bad.tfrecords"
    bad.write_bytes(bytes(blob))
    with pytest.raises(InputError, match="bad.tfrecords.*checksum"):
        list(tfrecord.iter_records(bad))
    assert len(list(tfrecord.iter_records(bad, verify=False))) == 2


def test_truncated_and_foreign_files_are_refused(tmp_path):
    path, *_ = _fixture(tmp_path, n=2)
    cut = tmp_path / "cut.tfrecords"
    cut.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(InputError, match="cut.tfrecords.*truncated"):
        tfrecord.index_records(cut)
    junk = tmp_path / "junk.tfrecords"
    junk.write_bytes(b"this is a text file, not a TFRecord shard")
    with pytest.raises(InputError, match="junk.tfrecords"):
        clickme.ClickMeShards([junk])
