"""The report renders: every figure the HTML references exists and is a real PNG."""

import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from analysis.report import render_report
from suite.errors import InputError
from tests.support.synthetic_trials import write_synthetic

ROOT = Path(__file__).resolve().parents[1]
MODELS = {"net-a": (10.0, 0.25), "net-b": (30.0, 0.3), "net-harm": (11.0, 0.22)}


def _check_images(page: Path) -> list[str]:
    html = page.read_text(encoding="utf-8")
    refs = re.findall(r'<img src="([^"]+)"', html)
    for ref in refs:
        path = page.parent / ref
        assert path.is_file(), ref
        with Image.open(path) as im:
            assert im.format == "PNG" and im.size[0] > 300 and im.size[1] > 200
        assert path.stat().st_size > 10_000
    return refs


def test_cli_report_with_simulated_humans_and_models(tmp_path):
    trials = write_synthetic(tmp_path / "trials.csv", n_humans=12, n_images=110,
                             models=MODELS, observer_type="simulated")
    acc = tmp_path / "accuracy.csv"
    pd.DataFrame({"model_name": list(MODELS), "top1": [0.76, 0.81, 0.74],
                  "harmonized": [0, 0, 1]}).to_csv(acc, index=False)
    out = tmp_path / "report"
    run = subprocess.run([sys.executable, "-m", "analysis", "report", "--trials", str(trials),
                          "--out", str(out), "--model-accuracy", str(acc), "--n-boot", "100"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    refs = _check_images(out / "index.html")
    assert set(refs) == {"observer_curves.png", "thresholds.png", "accuracy_vs_alignment.png",
                         "decision_curves_animal-vs-non-animal.png"}
    for ref in refs:  # every figure also as SVG and PDF for a paper
        stem = (out / ref).with_suffix("")
        assert stem.with_suffix(".svg").read_text(encoding="utf-8").lstrip().startswith("<?xml")
        assert stem.with_suffix(".pdf").read_bytes()[:5] == b"%PDF-"
    html = (out / "index.html").read_text(encoding="utf-8")
    assert "SIMULATED" in html and "(simulated)" in html
    assert "sha256" in html and str(trials) in html
    scores = pd.read_csv(out / "alignment.csv")
    assert scores["reference_label"].eq("SIMULATED humans").all()
    assert scores["neg_log_mse"].nunique() == 3
    fits = pd.read_csv(out / "fits.csv")
    assert fits.loc[fits["observer_type"] == "simulated", "label"].str.endswith(
        "(simulated)").all()


def test_report_on_real_model_vs_human_data_without_models(tmp_path, mvh_raw):
    page = render_report([mvh_raw / "contrast", mvh_raw / "uniform-noise"], tmp_path, n_boot=50)
    refs = _check_images(page)
    assert refs == ["observer_curves.png", "thresholds.png"]  # per-observer detail only
    assert "No model observers" in page.read_text(encoding="utf-8")
    fits = pd.read_csv(tmp_path / "fits.csv")
    assert len(fits) == 8 and fits["converged"].all()


def test_bad_model_accuracy_file_is_an_input_error(tmp_path):
    trials = write_synthetic(tmp_path / "t.csv", n_humans=3, n_images=22,
                             models={"m": (10, 0.2)})
    bad = tmp_path / "acc.csv"
    bad.write_text("model_name,top1,harmonized\nm,81.2,0\n", encoding="utf-8")
    with pytest.raises(InputError, match="fraction"):
        render_report([trials], tmp_path / "r", bad, n_boot=20)


def test_per_observer_panel_leaves_out_only_sparse_people():
    from analysis.figures_detail import MIN_TRIALS_PER_LEVEL, too_sparse

    def curve(kind, trials):
        return pd.DataFrame({"observer_type": kind, "n_trials": trials})

    thin = [1, 1, 2, 1, 1]          # a demo-sized participant: one trial or two per level
    thick = [MIN_TRIALS_PER_LEVEL] * 5
    assert too_sparse(curve("simulated", thin)) and too_sparse(curve("human", thin))
    assert not too_sparse(curve("human", thick))
    assert not too_sparse(curve("model", thin))  # a model's curve is always drawn


def test_the_page_says_when_per_pair_kappa_has_too_few_shared_trials():
    import pandas as pd

    from analysis import report

    def people(n_per_level):
        return pd.DataFrame({"dataset": "d", "observer_type": "human", "observer_id": "p",
                             "level": [1.0] * n_per_level + [10.0] * n_per_level})

    assert report._shared_per_pair(people(1)) == 1.0
    assert report._shared_per_pair(people(18)) == 18.0
    scores = pd.DataFrame({"model_name": ["m"], "dataset": ["d"], "reference_label": ["humans"],
                           "neg_log_mse": [1.0], "neg_log_mse_low": [0.5],
                           "neg_log_mse_high": [1.5]})
    sparse = report._alignment_summary(scores, 100, report._shared_per_pair(people(1)))
    dense = report._alignment_summary(scores, 100, report._shared_per_pair(people(18)))
    assert "too few for a κ per pair" in sparse["caption"]
    assert "κ per pair" not in dense["caption"].split("Best −log MSE first.")[1]
