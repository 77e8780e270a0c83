"""Models as observers: decision rules, trial rows on a stimulus set, the command line."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from experiment.schema import TRIAL_COLUMNS, read_rows, validate_trial_row
from models.__main__ import COMMANDS
from models.decision import decide, observer_name
from models.observe import model_logits, observe, read_stimulus_set
from models.zoo import create
from stimuli.command_line import dispatch
from stimuli.errors import InputError
from stimuli.schema import STIMULUS_MANIFEST_COLUMNS

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SAMPLE = DATA / "imagenet-sample"


def test_top1_rule_follows_the_argmax_class():
    logits = torch.zeros(3, 1000)
    logits[0, 397] = 5.0   # last animal class
    logits[1, 398] = 5.0   # first non-animal class
    logits[2, 0] = 5.0
    d = decide(logits, "top1")
    assert d.top1.tolist() == [397, 398, 0]
    assert d.animal.tolist() == [True, False, True]


def test_mass_rule_sums_softmax_over_animal_classes_and_can_disagree_with_top1():
    logits = torch.zeros(1, 1000)
    logits[0, 500] = 6.0            # one confident non-animal class wins the argmax …
    logits[0, :398] = 3.0           # … but 398 animal classes carry most of the mass
    e6, e3 = np.exp(6.0), np.exp(3.0)
    expected = 398 * e3 / (398 * e3 + e6 + 601 * 1.0)
    top1, mass = decide(logits, "top1"), decide(logits, "mass")
    assert top1.p_animal.item() == pytest.approx(expected, rel=1e-5)
    assert expected > 0.5
    assert top1.animal.item() is False and mass.animal.item() is True


def test_rule_errors_and_labels():
    with pytest.raises(InputError, match="unknown decision rule"):
        decide(torch.zeros(1, 1000), "vote")
    with pytest.raises(InputError, match="ImageNet logits"):
        decide(torch.zeros(2, 10))
    assert observer_name("m", "top1") == "m"
    assert observer_name("m", "mass") == "m[mass]"


def _stimulus_set(folder: Path, files: list[str]) -> Path:
    """A small set: real photos shorter-side-resized to 256, center-cropped, saved as PNG."""
    folder.mkdir(parents=True, exist_ok=True)
    meta = {r["file"]: r for r in csv.DictReader(open(SAMPLE / "manifest.csv", encoding="utf-8"))}
    rows = []
    for i, f in enumerate(files):
        im = Image.open(SAMPLE / f).convert("RGB")
        s = 256 / min(im.size)
        im = im.resize((max(256, round(im.width * s)), max(256, round(im.height * s))), Image.BICUBIC)
        left, top = (im.width - 256) // 2, (im.height - 256) // 2
        im.crop((left, top, left + 256, top + 256)).save(folder / f"s{i}.png")
        rows.append({"stimulus_id": f"s{i}", "file": f"s{i}.png", "image_id": Path(f).stem,
                     "category": meta[f]["category"], "class_index": meta[f]["class_index"],
                     "level_index": str(i % 3), "level_percent": ["1.0", "10.0", "100.0"][i % 3],
                     "n_revealed": "", "budget": "", "centroid_dx": "0", "centroid_dy": "0",
                     "seed": "0", "sha256": ""})
    with open(folder / "manifest.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=STIMULUS_MANIFEST_COLUMNS)
        w.writeheader()
        w.writerows(rows)
    return folder


FILES = ["n01491361_tiger_shark.JPEG", "n01534433_junco.JPEG", "n01616318_vulture.JPEG"]


@pytest.fixture(scope="module")
def lite0():
    return create("efficientnet_lite0_imagenet")


@pytest.fixture(scope="module")
def small_set(tmp_path_factory):
    meta = list(csv.DictReader(open(SAMPLE / "manifest.csv", encoding="utf-8")))
    non_animals = [r["file"] for r in meta if r["category"] == "non-animal"][:3]
    return _stimulus_set(tmp_path_factory.mktemp("set"), FILES + non_animals)


def test_observe_writes_schema_rows_for_each_rule(lite0, small_set):
    rows = observe([lite0], small_set, rule=["top1", "mass"], batch_size=4, progress=False)
    assert len(rows) == 12
    for r in rows:
        validate_trial_row(r)
        assert set(r) <= set(TRIAL_COLUMNS)
        assert r["observer_type"] == "model" and r["runner"] == "model"
        assert r["observer_id"] == r["model_name"]
        assert r["correct"] == int(r["response"] == r["category"])
        assert 0.0 <= r["p_animal"] <= 1.0
    top1 = [r for r in rows if r["model_name"] == "efficientnet_lite0_imagenet"]
    mass = [r for r in rows if r["model_name"] == "efficientnet_lite0_imagenet[mass]"]
    assert len(top1) == len(mass) == 6
    for a, b in zip(top1, mass, strict=True):
        assert (a["response"] == "animal") == (a["top1_class"] <= 397)
        assert (b["response"] == "animal") == (b["p_animal"] > 0.5)
    # clear photographs: the network gets nearly all of them right
    assert sum(r["correct"] for r in top1) >= 5


def test_batching_does_not_change_logits(lite0, small_set):
    paths = [s["path"] for s in read_stimulus_set(small_set)]
    one = model_logits(lite0, paths, batch_size=1, progress=False)
    many = model_logits(lite0, paths, batch_size=6, progress=False)
    assert one.shape == (6, 1000)
    torch.testing.assert_close(one, many, rtol=1e-3, atol=1e-3)


def test_bf16_precision_is_close_to_fp32_and_must_be_named(lite0, small_set):
    paths = [s["path"] for s in read_stimulus_set(small_set)]
    fp32 = model_logits(lite0, paths, progress=False)
    bf16 = model_logits(lite0, paths, progress=False, precision="bf16")
    assert bf16.dtype == torch.float32 and not torch.equal(fp32, bf16)  # it really ran in bf16
    assert (fp32 - bf16).abs().max() < 0.1 * fp32.abs().max()
    assert (fp32.argmax(1) == bf16.argmax(1)).all()  # clear photographs: no near ties
    with pytest.raises(InputError, match="precision 'fp16'"):
        model_logits(lite0, paths, progress=False, precision="fp16")


def test_missing_manifest_is_one_clear_error(tmp_path):
    with pytest.raises(InputError, match="no manifest.csv"):
        read_stimulus_set(tmp_path)


def test_listed_file_missing_is_reported(tmp_path):
    folder = _stimulus_set(tmp_path / "set", FILES[:1])
    (folder / "s0.png").unlink()
    with pytest.raises(InputError, match="s0.png"):
        read_stimulus_set(folder)


def test_command_line_writes_trial_table_and_provenance(small_set, tmp_path, capsys):
    out = tmp_path / "trials.csv"
    rc = dispatch("python -m models", COMMANDS,
                  ["observe", "--model", "efficientnet_lite0_imagenet", "--stimuli", str(small_set),
                   "--out", str(out), "--batch-size", "3"])
    assert rc == 0
    rows = read_rows(out)
    assert len(rows) == 6
    assert {r["stimulus_id"] for r in rows} == {f"s{i}" for i in range(6)}
    assert all(r["rt_ms"] == "" and r["frames_shown"] == "" and r["timeout"] == "0" for r in rows)
    prov = json.loads((tmp_path / "trials.csv.provenance.json").read_text())
    assert prov["parameters"]["models"] == ["efficientnet_lite0_imagenet"]
    rc = dispatch("python -m models", COMMANDS,
                  ["observe", "--model", "efficientnet_lite0_imagenet", "--stimuli", str(tmp_path),
                   "--out", str(tmp_path / "x.csv")])
    assert rc == 2 and not (tmp_path / "x.csv").exists()
    assert "no manifest.csv" in capsys.readouterr().err
