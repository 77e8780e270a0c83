"""Models as observers: decision rules, trial rows on a stimulus set, the command line."""

import csv
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from experiment.schema import TRIAL_COLUMNS, read_rows, validate_trial_row
from models import observe as observe_module
from models.__main__ import COMMANDS
from models.decision import decide, observer_name
from models.observe import cpu_has_native_bf16, model_logits, observe, read_stimulus_set
from models.zoo import create
from stimuli.schema import STIMULUS_MANIFEST_COLUMNS
from suite.command_line import dispatch
from suite.errors import InputError
from tests.support.data import IMAGENET_SAMPLE, require
from tests.support.permissions import unwritable


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
    sample = require(IMAGENET_SAMPLE)
    meta = {r["file"]: r for r in csv.DictReader(open(sample / "manifest.csv", encoding="utf-8"))}
    rows = []
    for i, f in enumerate(files):
        im = Image.open(sample / f).convert("RGB")
        s = 256 / min(im.size)
        im = im.resize((max(256, round(im.width * s)), max(256, round(im.height * s))),
                       Image.BICUBIC)
        left, top = (im.width - 256) // 2, (im.height - 256) // 2
        im.crop((left, top, left + 256, top + 256)).save(folder / f"s{i}.png")
        digest = hashlib.sha256((folder / f"s{i}.png").read_bytes()).hexdigest()
        rows.append({"stimulus_id": f"s{i}", "file": f"s{i}.png", "image_id": Path(f).stem,
                     "category": meta[f]["category"], "class_index": meta[f]["class_index"],
                     "level_index": str(i % 3), "level_percent": ["1.0", "10.0", "100.0"][i % 3],
                     "n_revealed": "", "budget": "", "centroid_dx": "0", "centroid_dy": "0",
                     "seed": "0", "sha256": digest})
    with open(folder / "manifest.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=STIMULUS_MANIFEST_COLUMNS)
        w.writeheader()
        w.writerows(rows)
    return folder


FILES = ["n01491361_tiger_shark.JPEG", "n01534433_junco.JPEG", "n01616318_vulture.JPEG"]


@pytest.fixture(scope="module")
def small_set(tmp_path_factory, imagenet_sample):
    meta = list(csv.DictReader(open(imagenet_sample / "manifest.csv", encoding="utf-8")))
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


def _bf16_cpu(monkeypatch, native: bool, flags=("fpu", "avx2")):
    """Pretend the CPU has (or lacks) native bfloat16, whatever this machine has."""
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: native)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: native)
    monkeypatch.setattr(observe_module, "_cpu_flags", lambda: set(flags))


def test_bf16_precision_is_close_to_fp32_and_must_be_named(lite0, small_set, monkeypatch):
    _bf16_cpu(monkeypatch, native=True)  # slow where emulated, but still computed in bf16
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


def test_native_bf16_is_read_from_the_cpu(monkeypatch):
    _bf16_cpu(monkeypatch, native=True)
    assert cpu_has_native_bf16()
    _bf16_cpu(monkeypatch, native=False)
    assert not cpu_has_native_bf16()
    for flag in ("avx512_bf16", "amx_bf16", "bf16"):  # flags alone (older torch, Arm)
        _bf16_cpu(monkeypatch, native=False, flags=("avx2", flag))
        assert cpu_has_native_bf16()


def test_bf16_is_refused_on_a_cpu_without_native_bf16(lite0, small_set, tmp_path, monkeypatch,
                                                      capsys):
    _bf16_cpu(monkeypatch, native=False)
    paths = [s["path"] for s in read_stimulus_set(small_set)]
    with pytest.raises(InputError, match="no native bfloat16.*--precision fp32"):
        model_logits(lite0, paths, progress=False, precision="bf16")
    out = tmp_path / "trials.csv"
    rc = dispatch("python -m models", COMMANDS,
                  ["observe", "--model", "efficientnet_lite0_imagenet", "--stimuli", str(small_set),
                   "--out", str(out), "--precision", "bf16", "--device", "cpu"])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: --precision bf16") and err.count("\n") == 1
    assert not out.exists()
    assert model_logits(lite0, paths[:1], progress=False).shape == (1, 1000)  # fp32 still runs


def _observe_cli(stimuli, out, *extra):
    return dispatch("python -m models", COMMANDS,
                    ["observe", "--model", "efficientnet_lite0_imagenet", "--stimuli", str(stimuli),
                     "--out", str(out), "--device", "cpu", *map(str, extra)])


@pytest.mark.parametrize("change", ["swapped", "shrunk"])
def test_a_changed_image_in_the_set_is_refused_by_name(small_set, tmp_path, capsys, change):
    folder = tmp_path / "set"
    shutil.copytree(small_set, folder)
    if change == "swapped":  # another stimulus of the set under this name
        (folder / "s1.png").write_bytes((folder / "s0.png").read_bytes())
    else:  # cut short, as by a failed copy
        data = (folder / "s1.png").read_bytes()
        (folder / "s1.png").write_bytes(data[: len(data) // 2])
    out = tmp_path / "trials.csv"
    assert _observe_cli(folder, out) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "s1.png" in err and "sha256" in err and "s0.png" not in err
    assert not out.exists() and not (tmp_path / "trials.csv.provenance.json").exists()
    with pytest.raises(InputError, match="s1.png: changed"):
        read_stimulus_set(folder)


def test_out_equal_to_an_input_is_refused_and_the_input_kept(small_set, tmp_path, capsys):
    folder = tmp_path / "set"
    shutil.copytree(small_set, folder)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    weights = tmp_path / "w.pth"
    weights.write_bytes(b"not really weights")
    for out, extra in ((folder / "manifest.csv", ()), (folder / "s2.png", ()),
                       (tmp_path / "." / "set" / ".." / "set" / "manifest.csv", ()),
                       (weights, ("--weights", weights))):
        assert _observe_cli(folder, out, *extra) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "is also an input" in err, err
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert weights.read_bytes() == b"not really weights"


@pytest.mark.parametrize("case", ["folder", "under-file", "unwritable"])
def test_bad_output_paths_are_one_clear_error(small_set, tmp_path, capsys, case):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file")
    locked = tmp_path / "locked"
    locked.mkdir()
    out = {"folder": locked, "under-file": blocker / "trials.csv",
           "unwritable": locked / "trials.csv"}[case]
    with unwritable(locked):
        assert _observe_cli(small_set, out) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and err.count("\n") == 1 and str(out) in err
    assert blocker.read_text() == "a file" and list(locked.iterdir()) == []


def test_an_unknown_or_absent_device_is_one_clear_error(small_set, tmp_path, capsys, monkeypatch):
    out = tmp_path / "trials.csv"
    with pytest.raises(SystemExit) as stop:  # refused while the command line is read
        _observe_cli(small_set, out, "--device", "tpu9")
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "--device: 'tpu9': not a device torch knows" in err
    assert "Traceback" not in err and not out.exists()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit) as stop:
        _observe_cli(small_set, out, "--device", "cuda")
    assert stop.value.code == 2 and "no CUDA GPU is usable here" in capsys.readouterr().err
    with pytest.raises(InputError, match="--device cuda:1: no CUDA GPU"):
        observe("efficientnet_lite0_imagenet", small_set, device="cuda:1", progress=False)
    with pytest.raises(InputError, match="--device 'tpu9'|--device tpu9"):
        create("efficientnet_lite0_imagenet", device="tpu9")
    assert not out.exists()
