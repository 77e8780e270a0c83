"""stimuli import-clickme: ClickMe shards written by TensorFlow itself, and Clicktionary .npz
files."""

from __future__ import annotations

import csv
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from stimuli.__main__ import COMMANDS
from stimuli.io import load_image, load_map, read_build_manifest
from suite.command_line import dispatch

ROOT = Path(__file__).resolve().parent.parent
KERAS_PYTHON = ROOT / ".venv-keras" / "bin" / "python"


def _cli(*argv) -> int:
    return dispatch("python -m stimuli", COMMANDS, [str(a) for a in argv])


@pytest.fixture(scope="module")
def tf_shard(tmp_path_factory) -> Path:
    """A shard of 4 records written by tf.io.TFRecordWriter, with TensorFlow's decodings beside
    it."""
    if not KERAS_PYTHON.exists():
        pytest.fail(f"{KERAS_PYTHON} is missing: run 'make keras-env' (make test builds it)")
    out = tmp_path_factory.mktemp("tf") / "clickme-train-0.tfrecords"
    done = subprocess.run([str(KERAS_PYTHON), str(ROOT / "tests/keras_side/write_clickme_shard.py"),
                           str(out), "4", "0"], capture_output=True, text=True,
                          env={**os.environ, "CUDA_VISIBLE_DEVICES": ""}, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def test_import_reads_a_tensorflow_shard(tf_shard, tmp_path):
    out = tmp_path / "imported"
    assert _cli("import-clickme", tf_shard, "--out", out) == 0
    ref = np.load(tf_shard.with_suffix(".npz"))
    items = read_build_manifest(out / "build_manifest.csv")
    assert [it.image_id for it in items] == [f"clickme-train-0-{k:06d}" for k in range(4)]
    # labels 3, 500, 397, 398: animal = ImageNet 0-397
    assert [it.class_index for it in items] == [3, 500, 397, 398]
    assert [it.category for it in items] == ["animal", "non-animal", "animal", "non-animal"]
    for k, it in enumerate(items):
        # the image is the shard's JPEG as stored; Pillow's and TensorFlow's JPEG decoders
        # differ by rounding (chroma upsampling) on these noise images, not by content
        assert it.image.suffix == ".jpg"
        diff = np.abs(load_image(it.image).astype(int) - ref["images"][k])
        assert diff.mean() < 1.5 and diff.max() <= 12
        heat_diff = np.abs(load_map(it.map) - ref["heats"][k])
        assert heat_diff.max() <= 4 and heat_diff.mean() < 0.5
    with open(out / "build_manifest.csv", newline="") as fh:
        sources = {r["map_source"] for r in csv.DictReader(fh)}
    assert sources == {"human clicks: ClickMe release (Linsley et al. 2019)"}


def test_limit_and_models_reader_agree(tf_shard, tmp_path):
    from models.harmonizer.clickme import ClickMeShards
    from models.where import read_where_set

    out = tmp_path / "two"
    assert _cli("import-clickme", tf_shard, "--out", out, "--limit", "2") == 0
    items = read_where_set(out / "build_manifest.csv", None)
    assert [it["class_index"] for it in items] == [3, 500]
    # the torch reader (models/harmonizer/clickme.py, codec now in suite/tfrecord.py) reads TF's
    # shard too
    assert [ClickMeShards([tf_shard])[k][2] for k in range(4)] == [3, 500, 397, 398]


def test_clicktionary_npz(tmp_path):
    rng = np.random.default_rng(0)
    files = []
    for name, label in (("cat_1", 281), ("car_2", 817)):
        heat = np.zeros((100, 120))
        heat[30:60, 40:90] = rng.random((30, 50))
        p = tmp_path / f"{name}.npz"
        np.savez(p, image=rng.integers(0, 256, (100, 120, 3), dtype=np.uint8), heatmap=heat,
                 label=np.array(label))
        files.append(p)
    out = tmp_path / "ct"
    assert _cli("import-clickme", "--clicktionary", *files, "--out", out) == 0
    items = read_build_manifest(out / "build_manifest.csv")
    assert [(it.image_id, it.category, it.class_index) for it in items] == \
        [("cat_1", "animal", 281), ("car_2", "non-animal", 817)]
    m = load_map(items[0].map)
    assert m.shape == (100, 120) and m.max() == pytest.approx(1.0) and m[:30].max() == 0


def test_clicktionary_other_key_names_need_the_option(tmp_path, capsys):
    p = tmp_path / "x.npz"
    np.savez(p, photo=np.zeros((8, 8, 3), np.uint8), clicks=np.ones((8, 8)))
    assert _cli("import-clickme", "--clicktionary", p, "--out", tmp_path / "a") == 2
    assert "--clicktionary-keys" in capsys.readouterr().err
    assert not (tmp_path / "a").exists()
    assert _cli("import-clickme", "--clicktionary", p, "--clicktionary-keys", "photo", "clicks",
                "--category", "animal", "--out", tmp_path / "b") == 0
    assert read_build_manifest(tmp_path / "b" / "build_manifest.csv")[0].category == "animal"


def test_corrupt_shard_leaves_nothing(tf_shard, tmp_path, capsys):
    bad = tmp_path / "bad.tfrecords"
    data = bytearray(tf_shard.read_bytes())
    data[5000] ^= 0xFF
    bad.write_bytes(bytes(data))
    assert _cli("import-clickme", bad, "--out", tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "checksum" in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["bad.tfrecords"]
    Image.init()
