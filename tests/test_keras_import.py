"""Keras → PyTorch import: random-weight Keras networks built in .venv-keras, converted with h5py
alone."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from models.__main__ import COMMANDS
from models.keras_import.convert import convert_keras
from models.zoo import create
from suite.command_line import dispatch
from suite.errors import InputError

ROOT = Path(__file__).resolve().parent.parent
KERAS_PYTHON = ROOT / ".venv-keras" / "bin" / "python"
ARCHS = ("vgg16", "resnet50v2", "efficientnetb0", "vit-b16")
ZOO_NAMES = {"vgg16": "harmonized_vgg16", "resnet50v2": "harmonized_resnet50v2",
             "efficientnetb0": "harmonized_efficientnetb0", "vit-b16": "harmonized_vit_b16"}
TOLERANCE = 1e-4


@pytest.fixture(scope="session")
def keras_dir(tmp_path_factory) -> Path:
    """All four Keras networks with random weights, saved as released, with reference logits."""
    if not KERAS_PYTHON.exists():
        pytest.fail(f"{KERAS_PYTHON} is missing: run 'make keras-env' (make test builds it)")
    out = tmp_path_factory.mktemp("keras")
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run([str(KERAS_PYTHON), str(ROOT / "tests/keras_side/build_reference.py"),
                           str(out), *ARCHS], capture_output=True, text=True, env=env,
                          timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]
    return out


@pytest.fixture(scope="session")
def converted(keras_dir, tmp_path_factory) -> dict[str, Path]:
    """Each .h5 converted through the command line front door: arch → .safetensors."""
    out_dir = tmp_path_factory.mktemp("converted")
    paths = {}
    for arch in ARCHS:
        out = out_dir / f"{arch}.safetensors"
        status = dispatch("python -m models", COMMANDS,
                          ["import-keras", str(keras_dir / f"{arch}.h5"), "--arch", arch,
                           "--out", str(out)])
        assert status == 0
        paths[arch] = out
    return paths


def relative_errors(ours: np.ndarray, keras: np.ndarray) -> tuple[float, float]:
    """max|Δ| / max|keras logits|, and max|Δ| / max|keras logits − their mean over images|."""
    delta = float(np.abs(ours - keras).max())
    spread = float(np.abs(keras - keras.mean(axis=0)).max())
    return delta / float(np.abs(keras).max()), delta / spread


@pytest.mark.slow
@pytest.mark.parametrize("arch", ARCHS)
def test_zoo_model_matches_keras_logits(arch, keras_dir, converted):
    """The converted file, loaded through the zoo, gives the Keras logits to 1e-4 relative."""
    inputs = np.load(keras_dir / f"{arch}_inputs.npy")      # NHWC, /255 and mean/std done
    keras_logits = np.load(keras_dir / f"{arch}_logits.npy")
    # The test only means something if the logits depend on the image.
    assert np.abs(keras_logits - keras_logits.mean(0)).max() > 0.01 * np.abs(keras_logits).max()
    model = create(ZOO_NAMES[arch], weights=converted[arch])
    assert model.preprocessing.mean == (0.485, 0.456, 0.406)
    assert model.preprocessing.std == (0.229, 0.224, 0.225)
    with torch.inference_mode():
        ours = model.module(torch.from_numpy(inputs).permute(0, 3, 1, 2)).numpy()
    assert ours.shape == keras_logits.shape == (3, 1000)
    of_max, of_spread = relative_errors(ours, keras_logits)
    print(f"{arch}: max|Δ|/max|keras| = {of_max:.2e}, max|Δ|/max|keras − mean| = {of_spread:.2e}")
    assert of_max < TOLERANCE
    assert of_spread < TOLERANCE
    np.testing.assert_array_equal(ours.argmax(1), keras_logits.argmax(1))


@pytest.mark.slow
def test_card_records_arch_and_source_hash(keras_dir, converted):
    """The JSON card beside the weights names the architecture and the source file's SHA-256."""
    card = json.loads(converted["efficientnetb0"].with_suffix(".json").read_text())
    source = keras_dir / "efficientnetb0.h5"
    assert card["arch"] == "efficientnetb0"
    assert card["zoo_name"] == "harmonized_efficientnetb0"
    assert card["source_sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
    # The efficientnet package's head is a softmax; the module returns the logits before it.
    assert card["keras_head_activation"] == "softmax"


@pytest.mark.slow
def test_file_of_another_architecture_is_refused_with_a_guess(keras_dir):
    """A ResNet50V2 file given as EfficientNetB0 lists what is missing and names the real arch."""
    with pytest.raises(InputError) as err:
        convert_keras(keras_dir / "resnet50v2.h5", "efficientnetb0")
    message = str(err.value)
    assert "resnet50v2.h5" in message
    assert "layer stem_conv" in message
    assert "--arch resnet50v2" in message


@pytest.mark.slow
def test_weights_only_file_for_a_whole_model_arch_is_refused(keras_dir):
    """The ViT weights-only file cannot pass as the whole-model VGG16."""
    with pytest.raises(InputError, match=r"vit-b16\.h5 is a weights-only file.*check --arch"):
        convert_keras(keras_dir / "vit-b16.h5", "vgg16")


@pytest.mark.slow
def test_missing_layers_are_listed(keras_dir, tmp_path):
    """Removing two layers from a saved model gives an error naming both."""
    damaged = tmp_path / "efficientnetb0_damaged.h5"
    shutil.copy(keras_dir / "efficientnetb0.h5", damaged)
    with h5py.File(damaged, "r+") as fh:
        group = fh["model_weights"]
        dropped = ("block3b_dwconv", "top_bn")
        for name in dropped:
            del group[name]
        names = [n.decode() if isinstance(n, bytes) else n for n in group.attrs["layer_names"]]
        group.attrs["layer_names"] = [n.encode() for n in names if n not in dropped]
    with pytest.raises(InputError) as err:
        convert_keras(damaged, "efficientnetb0")
    message = str(err.value)
    assert "efficientnetb0_damaged.h5 does not match the Keras efficientnetb0" in message
    assert "layer block3b_dwconv" in message
    assert "layer top_bn" in message


@pytest.mark.slow
def test_zoo_refuses_a_converted_file_of_another_arch(converted):
    """Loading the converted ResNet50V2 as harmonized_efficientnetb0 names the right zoo model."""
    with pytest.raises(InputError, match="holds a converted resnet50v2.*harmonized_resnet50v2"):
        create("harmonized_efficientnetb0", weights=converted["resnet50v2"])


def test_zoo_model_without_a_file_says_how_to_convert():
    """harmonized_vit_b16 with no weights explains where the file comes from and how to convert."""
    with pytest.raises(InputError, match=r"vit-b16_harmonized\.h5.*import-keras.*--arch vit-b16"):
        create("harmonized_vit_b16")


def test_a_file_that_is_not_hdf5_is_refused(tmp_path):
    """A text file given as .h5 raises an InputError naming it."""
    bogus = tmp_path / "vgg16_harmonized.h5"
    bogus.write_text("not a model")
    with pytest.raises(InputError, match=r"vgg16_harmonized\.h5: not an HDF5 file"):
        convert_keras(bogus, "vgg16")


def test_unknown_arch_is_refused_by_the_command_line(tmp_path, capsys):
    """An unknown --arch stops argparse with the list of choices."""
    with pytest.raises(SystemExit):
        dispatch("python -m models", COMMANDS,
                 ["import-keras", str(tmp_path / "x.h5"), "--arch", "levit",
                  "--out", "x.safetensors"])
    assert "efficientnetb0" in capsys.readouterr().err
