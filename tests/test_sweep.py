"""models sweep: one decode per set, observe's rows, resume, failures, torchrun ranks, SIGKILL."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from experiment.schema import read_rows, write_table
from models.observe import observe
from models.stimulus_cache import cache_path, set_key
from models.sweep import SweepOptions, folder_name, sweep
from models.zoo import create
from stimuli.build import build_stimulus_set
from stimuli.config import BuildConfig
from stimuli.demo import write_demo_inputs
from stimuli.manifest import read_stimulus_rows
from suite.errors import InputError
from tests.support.data import IMAGENET_SAMPLE, REPO, require

LITES = [
    "efficientnet_lite0_imagenet", "efficientnet_lite1_imagenet", "efficientnet_lite2_imagenet",
]
RANDOM = ["resnet18", "mobilenetv3_small_100"]
MODELS = LITES + RANDOM
PY = str(Path(sys.executable))


def _quiet(*_):
    pass


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Every sweep here, in-process or not, computes with one thread: the same thread count
    gives bit-identical logits; another count may change a p_animal's 6th decimal."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _files(folder: Path) -> dict[str, bytes]:
    """A model folder's deterministic files (provenance.json holds times and the command)."""
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.name != "provenance.json"}


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    """The demo stimulus set (8 sample photographs × 12 levels = 96 stimuli)."""
    root = tmp_path_factory.mktemp("demo")
    manifest = write_demo_inputs(root / "inputs")
    return build_stimulus_set(manifest, root / "set", BuildConfig(), workers=1)


@pytest.fixture(scope="module")
def reference(demo, tmp_path_factory) -> Path:
    """An uninterrupted one-process sweep of the done-when models."""
    out = tmp_path_factory.mktemp("ref") / "sweep"
    result = sweep(MODELS, SweepOptions(stimuli=demo, out=out, weights="random", progress=False,
                                        log=_quiet))
    assert [s["status"] for s in result["summary"]] == ["ran"] * 5
    return out


def _run_cli(args: list[str], **kw) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([PY, "-m", "models", "sweep", *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def test_sweep_rows_equal_observe_rows_for_a_bundled_and_a_random_model(demo, reference, tmp_path):
    """Same rows as `models observe` (the sweep leaves timestamp_utc empty: a model has no trial
    time; observe stamps when it ran), for offline weights and for seeded random weights."""
    torch.manual_seed(0)
    random_net = create("resnet18", weights="random")
    rows = observe(["efficientnet_lite0_imagenet", random_net], demo, progress=False)
    write_table(tmp_path / "observe.csv", rows)
    want = read_rows(tmp_path / "observe.csv")
    got = [r for name in ("efficientnet_lite0_imagenet", "resnet18")
           for r in read_rows(reference / "models" / name / "trials.csv")]
    assert len(got) == len(want) == 2 * 96
    assert all(g["timestamp_utc"] == "" and w["timestamp_utc"]
               for g, w in zip(got, want, strict=True))
    strip = [{k: v for k, v in r.items() if k != "timestamp_utc"} for r in want]
    assert [{k: v for k, v in r.items() if k != "timestamp_utc"} for r in got] == strip
    # the merged table holds every model's rows in --model order
    merged = read_rows(reference / "trials.csv")
    assert [r["model_name"] for r in merged[::96]] == MODELS


def test_the_set_is_decoded_once_into_a_memory_mapped_cache_keyed_by_the_sha256s(demo, reference):
    _, stimuli = read_stimulus_rows(demo)
    path = cache_path(reference / "cache", set_key(stimuli))
    arr = np.load(path, mmap_mode="r")
    assert isinstance(arr, np.memmap) and arr.shape == (96, 256, 256, 3) and arr.dtype == np.uint8
    first = np.asarray(Image.open(demo / stimuli[0]["file"]).convert("RGB"))
    np.testing.assert_array_equal(arr[0], first)
    assert list((reference / "cache").iterdir()) == [path]
    changed = [dict(stimuli[0], sha256="0" * 64), *stimuli[1:]]
    assert set_key(changed) != set_key(stimuli)
    summary = list(csv.DictReader(open(reference / "summary.csv", encoding="utf-8")))
    assert ([(s["model"], s["status"], s["rows"]) for s in summary]
            == [(m, "ran", "96") for m in MODELS])
    assert summary[0]["class"] == "imagenet_cnn"


def test_a_failing_model_is_recorded_and_the_others_finish(demo, tmp_path):
    wd = tmp_path / "weights"
    wd.mkdir()
    torch.save({"nonsense.weight": torch.zeros(3)}, wd / "resnet18.pth")   # does not fit resnet18
    out = tmp_path / "sweep"
    proc = _run_cli(["--model", "resnet18", "resnet50_l2_eps3", "mobilenetv3_small_100",
                     "--stimuli", str(demo), "--out", str(out), "--weights", "random",
                     "--weights-dir", str(wd)])
    text = proc.communicate(timeout=300)[0]
    assert proc.returncode == 1, text
    failures = list(csv.DictReader(open(out / "failures.csv", encoding="utf-8")))
    assert [f["model"] for f in failures] == ["resnet18", "resnet50_l2_eps3"]
    assert "do not fit resnet18" in failures[0]["error"]
    assert "Salman et al. 2020" in failures[1]["error"] and "--weights-dir" in failures[1]["error"]
    assert (out / "models" / "mobilenetv3_small_100" / "trials.csv").is_file()
    assert not (out / "models" / "resnet18").exists()
    assert "3 models: 1 ran, 0 skipped (output already matching), 2 failed" in text


def test_changed_options_redo_a_model_and_bad_input_is_one_error(demo, reference, tmp_path):
    out = tmp_path / "sweep"
    opts = dict(stimuli=demo, out=out, weights="random", progress=False, log=_quiet)
    sweep(["mobilenetv3_small_100"], SweepOptions(**opts))
    again = sweep(["mobilenetv3_small_100"], SweepOptions(**opts))
    assert again["summary"][0]["status"] == "skipped"
    other = sweep(["mobilenetv3_small_100"], SweepOptions(**opts, rules=("top1", "mass")))
    assert other["summary"][0]["status"] == "ran" and other["summary"][0]["rows"] == 192
    assert _files(out / "models" / "mobilenetv3_small_100")["trials.csv"].count(b"[mass]") == 192
    with pytest.raises(InputError, match="unknown model 'resnet19'"):
        sweep(["resnet19"], SweepOptions(**opts))
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="not empty"):
        sweep(["resnet18"], SweepOptions(**{**opts, "out": foreign}))
    with pytest.raises(InputError, match="also an input|holds the input"):
        sweep(["resnet18"], SweepOptions(**{**opts, "out": demo}))


def _where_manifest(root: Path) -> Path:
    """Four real photos at 256×256 with SYNTHETIC blob maps (not human), as a build manifest."""
    (root / "images").mkdir(parents=True)
    (root / "maps").mkdir()
    sample = require(IMAGENET_SAMPLE)
    rows = list(csv.DictReader(open(sample / "manifest.csv", encoding="utf-8")))[:4]
    yy, xx = np.mgrid[:256, :256]
    with open(root / "build_manifest.csv", "w", encoding="utf-8", newline="") as fh:
        fh.write("image,map,image_id,class_index\n")
        for i, r in enumerate(rows):
            im = Image.open(sample / r["file"]).convert("RGB").resize((256, 256))
            im.save(root / "images" / f"im{i}.png")
            blob = np.exp(-((yy - 100 - 12 * i) ** 2 + (xx - 128) ** 2) / (2 * 40.0**2))
            np.save(root / "maps" / f"im{i}.npy", blob.astype(np.float32))
            fh.write(f"images/im{i}.png,maps/im{i}.npy,im{i},{r['class_index']}\n")
    return root / "build_manifest.csv"


def test_where_and_accuracy_outputs_per_model_and_merged(demo, tmp_path):
    where = _where_manifest(tmp_path / "where")
    out = tmp_path / "sweep"
    result = sweep(["efficientnet_lite0_imagenet", "mobilenetv3_small_100"], SweepOptions(
        stimuli=demo, out=out, weights="random", where=where, accuracy=require(IMAGENET_SAMPLE),
        n_boot=50, progress=False, log=_quiet))
    lite = result["summary"][0]
    assert lite["status"] == "ran" and float(lite["top1"]) > 0.75     # the real ImageNet weights
    assert float(result["summary"][1]["top1"]) < 0.1                  # random weights
    w = json.loads((out / "models" / "efficientnet_lite0_imagenet" / "where.json").read_text())
    assert w["n_images"] == 4 and len(w["per_image_rho"]) == 4 and -1 <= w["mean_rho"] <= 1
    acc = list(csv.DictReader(open(out / "model_accuracy.csv", encoding="utf-8")))
    assert [a["model_name"] for a in acc] == ["efficientnet_lite0_imagenet",
                                              "mobilenetv3_small_100"]
    assert [r["model"] for r in json.loads((out / "where.json").read_text())["results"]] == \
        ["efficientnet_lite0_imagenet", "mobilenetv3_small_100"]


def test_two_gloo_processes_give_byte_identical_outputs_to_one(demo, reference, tmp_path):
    """torchrun, 2 processes on the CPU (gloo): models dealt by rank, each writes its own,
    rank 0 merges; every per-model file and the merged table equal the one-process sweep's
    (one thread per process in both, see one_thread)."""
    out = tmp_path / "sweep"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [PY, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", "29533",
         "-m", "models", "sweep", "--model", *MODELS, "--stimuli", str(demo), "--out", str(out),
         "--weights", "random"], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    for name in MODELS:
        assert _files(out / "models" / name) == _files(reference / "models" / name), name
        rank = json.loads((out / "models" / name / "provenance.json").read_text())["parameters"]
        assert rank["rank"] == MODELS.index(name) % 2 and rank["world"] == 2
    assert (out / "trials.csv").read_bytes() == (reference / "trials.csv").read_bytes()
    assert not (out / ".ranks").exists()


def test_done_when_a_sigkilled_sweep_resumes_without_redoing_finished_models(demo, reference,
                                                                               tmp_path):
    out = tmp_path / "sweep"
    args = ["--model", *MODELS, "--stimuli", str(demo), "--out", str(out), "--weights", "random"]
    proc = _run_cli(args)
    first = out / "models" / MODELS[0] / "record.json"
    deadline = time.monotonic() + 300
    while not first.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert first.exists() and proc.poll() is None, "the first model should finish first"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished = [m for m in MODELS if (out / "models" / m / "record.json").exists()]
    assert finished and finished == MODELS[:len(finished)] and len(finished) < len(MODELS)
    before = {m: {p.name: (p.stat().st_ino, p.stat().st_mtime_ns)
                  for p in (out / "models" / m).iterdir()} for m in finished}
    rerun = _run_cli(args)
    text = rerun.communicate(timeout=600)[0]
    assert rerun.returncode == 0, text
    for m in finished:
        assert f"skipped {m}: its output matches" in text
        after = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns)
                 for p in (out / "models" / m).iterdir()}
        assert after == before[m], m
    for m in MODELS[len(finished):]:
        assert f"ran {m}:" in text
    assert not list((out / "models").glob(".*"))        # the killed run's temporary folder is gone
    for m in MODELS:
        assert _files(out / "models" / m) == _files(reference / "models" / m), m
    assert (out / "trials.csv").read_bytes() == (reference / "trials.csv").read_bytes()
    assert folder_name("harmonized_ft:run/1") != folder_name("harmonized_ft_run_1")
