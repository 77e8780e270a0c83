"""The report page as a person reads it: sections in the issue's order, no horizontal scroll
at 1280×800 in Chromium, the "where" half from ``models where`` JSON, and a methods
paragraph whose numbers are the inputs'.

``python tests/test_report_page.py REPORT_DIR docs/img/report.png`` writes the screenshot
docs/analysis.md shows (the top of make demo's report at 1280×800)."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.report import render_report
from suite.errors import InputError
from tests.support.chromium import launch as launch_chromium
from tests.support.synthetic_trials import synthetic_trials

MODELS = {"net-a": (10.0, 0.25), "net-b": (30.0, 0.3), "net-harm": (11.0, 0.22)}
ORDER = ["run", "alignment", "curves", "pareto", "where", "statistics", "detail", "methods",
         "exclusions", "provenance"]
N_PEOPLE, N_IMAGES, EXCLUDED = 12, 110, "synthetic-03"


def _lab_trials(path: Path) -> pd.DataFrame:
    """12 lab participants with measured timing, one of them wrong on every 100 % trial."""
    df = synthetic_trials(n_humans=N_PEOPLE, n_images=N_IMAGES, models=MODELS, seed=2)
    people = df["observer_type"] == "human"
    df.loc[people, "runner"] = "lab"
    df.loc[people, "refresh_hz"] = 60.0
    df.loc[people & (df["observer_id"] == "synthetic-07"), "refresh_hz"] = 59.94
    df.loc[people, "frames_intended"] = 24
    df.loc[people, "frames_shown"] = 24
    df.loc[people, "dropped_frames"] = 0
    idx = df.index[people]
    df.loc[idx[[5, 40, 77, 300, 901]], "dropped_frames"] = [1, 2, 1, 1, 3]
    df.loc[idx[[6, 41]], "frames_shown"] = 25
    bad = people & (df["observer_id"] == EXCLUDED) & (df["level_percent"] == 100)
    df.loc[bad, "correct"] = 0
    df.loc[bad, "response"] = np.where(df.loc[bad, "category"] == "animal", "non-animal",
                                       "animal")
    df.to_csv(path, index=False)
    return df


def _where_json(path: Path, manifest: Path, names, seed=0) -> Path:
    """A ``models where --centre-bias`` file in its exact format (the real scoring code on
    made-up saliency), on NOT HUMAN maps named in a build manifest."""
    from models.where import alignment, centre_bias_control
    from suite.provenance import provenance

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:32, :32]
    human = np.stack([np.exp(-((yy - 16 - rng.normal(0, 3)) ** 2 + (xx - 16) ** 2) / 60)
                      + 0.2 * rng.random((32, 32)) for _ in range(10)])
    ids = [f"img{i}" for i in range(10)]
    results = [asdict(alignment(human + noise * rng.random(human.shape), human,
                                n_boot=200, model=name, image_ids=ids))
               for name, noise in zip(names, (0.5, 2.0, 0.3), strict=True)]
    control = centre_bias_control(human, n_boot=200, image_ids=ids)
    results.append({**asdict(control), "control": "centre_bias"})
    record = {"results": results, "provenance": provenance(
        models=list(names), images=str(manifest), maps="None", ceiling=0.65753,
        ceiling_source="ClickMe (authors' code)", n_boot=200, seed=0)}
    path.write_text(json.dumps(record), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("page")
    trials = tmp / "trials.csv"
    df = _lab_trials(trials)
    acc = tmp / "acc.csv"
    pd.DataFrame({"model_name": list(MODELS), "top1": [0.76, 0.81, 0.74],
                  "harmonized": [0, 0, 1]}).to_csv(acc, index=False)
    manifest = tmp / "build_manifest.csv"
    manifest.write_text("image,map,image_id,category,class_index,map_source\n"
                        "a.png,a.npy,img0,animal,1,NOT HUMAN: centre Gaussian (test)\n",
                        encoding="utf-8")
    where = _where_json(tmp / "where.json", manifest, list(MODELS))
    out = tmp / "report"
    render_report([trials], out, acc, n_boot=40, where=[where], highlight=["net-b"])
    return out, df


def test_page_is_in_order_and_fits_1280_px(report):
    from playwright.sync_api import sync_playwright

    out, _ = report
    with sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto((out / "index.html").as_uri())
        page.wait_for_load_state("load")
        width = page.evaluate("document.documentElement.scrollWidth")
        tops = page.evaluate("ids => ids.map(i => document.getElementById(i)"
                             ".getBoundingClientRect().top)", ORDER)
        images = page.evaluate("[...document.images].map(i => [i.naturalWidth, i.width])")
        browser.close()
    assert width <= 1280
    assert tops == sorted(tops), dict(zip(ORDER, tops, strict=True))
    assert len(images) == 5 and all(natural > 0 and shown <= 1000 for natural, shown in images)


def test_where_half_is_in_the_page(report):
    out, _ = report
    html = (out / "index.html").read_text(encoding="utf-8")
    table = pd.read_csv(out / "feature_alignment.csv")
    assert list(table["model_name"]) == list(MODELS)        # the control is not a model
    assert (table["score_sd"] > 0).all()
    control = json.loads(next(out.parent.glob("where.json")).read_text())["results"][-1]
    beats = int((table["score_low"] > control["score"]).sum())
    assert f"{beats} of 3 model(s) beat the centre-bias control †" in html
    assert "NOT HUMAN: centre Gaussian (test)" in html
    for ext in ("png", "svg", "pdf"):
        assert (out / f"feature_alignment.{ext}").stat().st_size > 1000


def test_methods_numbers_are_the_inputs(report):
    out, df = report
    text = (out / "methods.md").read_text(encoding="utf-8")
    people = df[df["observer_type"] == "human"]
    assert f"{N_PEOPLE} participants took part; 1 was excluded" in text
    assert f"leaving {N_PEOPLE - 1} for analysis" in text
    assert f"a median of {N_IMAGES} trials (range {N_IMAGES}–{N_IMAGES})" in text
    assert "11 levels from 1 to 100 %" in text
    assert "Displays in the lab refreshed at a median of 60 Hz (range 59.94–60)" in text
    assert "scheduled for a median of 400 ms" in text            # 24 frames at 60 Hz
    drops = int((people["dropped_frames"] > 0).sum())
    assert drops == 5
    assert (f"Dropped frames were recorded on 5 of {len(people):,} trials "
            f"({100 * 5 / len(people):.1f} %; 8 frames in all)") in text
    assert "2 trial(s) showed a different number of frames than intended" in text
    assert "3 networks (net-a, net-b, net-harm)" in text
    assert "40 bootstrap resamples" in text
    assert f"Of {len(df):,} trials" in text
    import statsmodels
    assert f"statsmodels {statsmodels.__version__}" in text
    html = (out / "index.html").read_text(encoding="utf-8")
    assert "leaving 11 for analysis" in html


def test_unknown_highlight_is_refused_before_any_work(tmp_path, report):
    out, _ = report
    trials = next(out.parent.glob("trials.csv"))
    with pytest.raises(InputError, match="--highlight: no model named 'nope'"):
        render_report([trials], tmp_path / "r", n_boot=5, highlight=["nope"])
    assert not (tmp_path / "r").exists()


def test_a_where_file_of_another_format_is_one_error(tmp_path, report):
    out, _ = report
    trials = next(out.parent.glob("trials.csv"))
    bad = tmp_path / "w.json"
    bad.write_text('{"models": []}', encoding="utf-8")
    with pytest.raises(InputError, match="no \"results\" list"):
        render_report([trials], tmp_path / "r", n_boot=5, where=[bad])
    assert not (tmp_path / "r").exists()


def test_centre_bias_control_is_each_map_against_the_mean_of_the_others():
    from scipy.stats import spearmanr

    from models.where import CENTRE_BIAS_MODEL, centre_bias_control

    rng = np.random.default_rng(3)
    maps = rng.random((3, 8, 8))
    c = centre_bias_control(maps, ceiling=0.5, n_boot=10)
    by_hand = [spearmanr((maps.sum(0) - maps[i]).ravel() / 2, maps[i].ravel())[0]
               for i in range(3)]
    assert c.per_image_rho == pytest.approx(by_hand)
    assert c.score == pytest.approx(np.mean(by_hand) / 0.5) and c.model == CENTRE_BIAS_MODEL
    with pytest.raises(InputError, match="at least 2 images"):
        centre_bias_control(maps[:1])


def screenshot(page_path: Path, png: Path, height: int = 1600) -> int:
    """The top ``height`` px of a report page laid out at 1280×800, as PNG; returns the
    page's scroll width."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(Path(page_path).resolve().as_uri())
        page.wait_for_load_state("load")
        width = page.evaluate("document.documentElement.scrollWidth")
        page.screenshot(path=str(png), full_page=True,
                        clip={"x": 0, "y": 0, "width": 1280, "height": height})
        browser.close()
    return width


if __name__ == "__main__":
    print("scrollWidth", screenshot(Path(sys.argv[1]) / "index.html", Path(sys.argv[2])))
