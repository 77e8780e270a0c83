"""The whole chain on the real ImageNet photographs at reduced size: stimuli → lists →
simulated observers → model observers (real offline weights) → report tables.

The importance maps here are SYNTHETIC (centre-surround colour contrast computed by the
suite from each photograph), not human maps; the observers are SIMULATED.
"""

import csv
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from analysis.pipeline import load_config, run_pipeline
from stimuli.derived_maps import contrast_saliency
from suite.errors import InputError
from tests.support.data import IMAGENET_SAMPLE, require

MODELS = ("efficientnet_lite0_imagenet", "efficientnet_lite1_imagenet")


def _inputs(folder: Path, per_category: int = 6) -> Path:
    sample = require(IMAGENET_SAMPLE)
    with open(sample / "manifest.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    picked = [r for r in rows if r["category"] == "animal"][:per_category] + \
             [r for r in rows if r["category"] == "non-animal"][:per_category]
    (folder / "maps").mkdir(parents=True)
    lines = ["image,map,image_id,category,class_index"]
    for r in picked:
        image_id = Path(r["file"]).stem
        rgb = np.asarray(Image.open(sample / r["file"]).convert("RGB"))
        np.save(folder / "maps" / f"{image_id}.npy", contrast_saliency(rgb))  # synthetic map
        lines.append(f"{sample / r['file']},maps/{image_id}.npy,{image_id},{r['category']},"
                     f"{r['class_index']}")
    (folder / "build_manifest.csv").write_text("\n".join(lines) + "\n")
    return folder / "build_manifest.csv"


def _config(tmp: Path, **extra) -> Path:
    sample = require(IMAGENET_SAMPLE)
    manifest = _inputs(tmp / "inputs")
    text = f"""
[study]
name = "integration"
out = "study"
[stimuli]
source = "{manifest}"
levels = 5
full = true
[lists]
blocks = 1
[simulated_humans]
n = 30
threshold = 8.0
[models]
names = {json.dumps(list(MODELS))}
batch_size = 16
accuracy_images = "{sample}"
[report]
n_boot = 200
"""
    path = tmp / "study.toml"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pipeline")
    cfg = load_config(_config(tmp))
    record = run_pipeline(cfg)
    return cfg, record


@pytest.mark.slow  # the whole pipeline once (the study fixture): ~30-50 s
def test_every_model_has_a_finite_alignment_score_with_an_interval(study):
    cfg, record = study
    scores = pd.read_csv(cfg.out / "report" / "alignment.csv")
    assert sorted(scores["model_name"]) == sorted(MODELS)
    for metric in ("neg_log_mse", "correlation", "error_consistency"):
        assert np.isfinite(scores[metric]).all(), metric
        assert (scores[f"{metric}_low"] <= scores[metric] + 1e-9).all()
        assert (scores[metric] <= scores[f"{metric}_high"] + 1e-9).all()
        assert (scores[f"{metric}_high"] > scores[f"{metric}_low"]).all()
    assert set(scores["reference"]) == {"simulated"}


@pytest.mark.slow  # the whole pipeline once (the study fixture): ~30-50 s
def test_human_and_model_curves_rise_with_the_level(study):
    cfg, _ = study
    curves = pd.read_csv(cfg.out / "report" / "curves.csv")
    assert {"simulated", "model"} <= set(curves["observer_type"])
    pooled = (curves.dropna(subset=["level"])
              .groupby(["observer_type", "level"])[["n_correct", "n_trials"]].sum())
    acc = (pooled["n_correct"] / pooled["n_trials"]).unstack("level")
    levels = sorted(acc.columns)
    for kind in ("simulated", "model"):
        low, high = acc.loc[kind, levels[:2]].mean(), acc.loc[kind, levels[-2:]].mean()
        assert high > low + 0.1, (kind, acc.loc[kind].round(2).to_dict())


@pytest.mark.slow  # the whole pipeline once (the study fixture): ~30-50 s
def test_report_page_and_provenance(study):
    cfg, record = study
    page = Path(record["report"])
    html = page.read_text()
    assert "SIMULATED" in html
    for png in (page.parent).glob("*.png"):
        assert png.name in html
    acc = pd.read_csv(cfg.out / "model_accuracy.csv")
    assert sorted(acc["model_name"]) == sorted(MODELS)
    assert (acc["n_images"] == 80).all() and (acc["top1"] > 0.6).all()
    saved = json.loads((cfg.out / "pipeline.json").read_text())
    assert set(saved["steps_seconds"]) == {"stimuli", "trial lists", "simulated observers",
                                           "model observers", "report"}
    assert saved["versions"]["torch"]


def test_refuses_a_folder_it_did_not_make(tmp_path):
    cfg_path = _config(tmp_path)
    out = tmp_path / "study"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="not empty"):
        run_pipeline(load_config(cfg_path))
    with pytest.raises(InputError, match="pipeline.json"):
        run_pipeline(load_config(cfg_path), overwrite=True)
    assert (out / "notes.txt").read_text() == "mine"


def test_config_errors_name_the_key(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[study]\nout = "x"\n[models]\nnmaes = ["a"]\n')
    with pytest.raises(InputError, match=r"unknown key\(s\) \['nmaes'\]"):
        load_config(bad)
    bad.write_text('[study]\nout = "x"\n[simulated_humans]\nn = "many"\n')
    with pytest.raises(InputError, match="n must be a whole number, got 'many'"):
        load_config(bad)


@pytest.mark.parametrize("section, line, message", [
    ("stimuli", "source = 5", r"bad\.toml \[stimuli\]: source must be text in quotes, got 5"),
    ("stimuli", "budget = true", r"\[stimuli\]: budget must be a whole number, got True "
                                 r"\(true/false\)"),
    ("stimuli", "budget = 100.5", r"\[stimuli\]: budget must be a whole number, got 100\.5"),
    ("stimuli", "full = 1", r"\[stimuli\]: full must be true or false, got 1"),
    ("models", "names = [1, 2]", r"\[models\]: names must be a list of text in quotes; "
                                 r"element 1 is not text"),
    ("models", 'names = "efficientnet"', r"\[models\]: names must be a list of text"),
    ("models", "precision = false", r"\[models\]: precision must be text in quotes"),
    ("simulated_humans", "lapse = true", r"\[simulated_humans\]: lapse must be a number, got "
                                         r"True"),
    ("humans", "sessions = [\"a.csv\", 3]", r"\[humans\]: sessions must be a list of text"),
    ("study", "name = 7", r"\[study\]: name must be text in quotes, got 7"),
])
def test_config_types_are_strict(tmp_path, section, line, message):
    bad = tmp_path / "bad.toml"
    body = f"{line}\n" if section == "study" else f"[{section}]\n{line}\n"
    bad.write_text('[study]\nout = "x"\n' + body)
    with pytest.raises(InputError, match=message):
        load_config(bad)


def test_config_numbers_keep_their_types(tmp_path):
    good = tmp_path / "good.toml"
    good.write_text('[study]\nout = "x"\n[simulated_humans]\nthreshold = 8\nn = 4\n'
                    '[models]\nnames = ["a", "b"]\n')
    cfg = load_config(good)
    assert cfg.simulated.threshold == 8.0 and isinstance(cfg.simulated.threshold, float)
    assert cfg.simulated.n == 4 and cfg.models.names == ("a", "b")
