"""Run inside .venv-keras: build a random-weight Keras network, save it as released, write
reference logits.

Usage: build_reference.py OUT_DIR ARCH [ARCH …] [--images N] [--seed S]
For each ARCH, writes OUT_DIR/ARCH.h5 (whole model, or weights only for vit-b16), ARCH_inputs.npy
(N, 224, 224, 3) float32 already /255 and mean/std normalized, and ARCH_logits.npy (N, 1000).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def build(arch: str) -> tuple[tf.keras.Model, str]:
    """The Keras network the authors released for ``arch``, untrained, and its head layer name."""
    if arch == "vgg16":
        return tf.keras.applications.VGG16(weights=None, classifier_activation=None), "predictions"
    if arch == "resnet50v2":
        return (tf.keras.applications.ResNet50V2(weights=None, classifier_activation=None),
                "predictions")
    if arch == "efficientnetb0":
        import efficientnet.tfkeras as efn

        # The package's head is a softmax; it stays in the saved file so that the converter's
        # handling of it is exercised, and the reference logits are taken before it.
        return efn.EfficientNetB0(weights=None), "probs"
    if arch == "vit-b16":
        from vit_keras import vit

        return vit.vit_b16(image_size=224, activation="linear", include_top=True,
                           pretrained=False, pretrained_top=False), "head"
    raise SystemExit(f"unknown arch {arch}")


def randomize(model: tf.keras.Model, rng: np.random.Generator) -> None:
    """Give every variable non-trivial values, so that a mis-mapped one changes the logits."""
    for var in model.weights:
        name, shape = var.name.split("/")[-1].split(":")[0], tuple(var.shape)
        if name in ("gamma",):
            value = rng.uniform(0.7, 1.3, shape)
        elif name in ("beta", "bias"):
            value = rng.normal(0.0, 0.05, shape)
        elif name == "moving_mean":
            value = rng.normal(0.0, 0.1, shape)
        elif name == "moving_variance":
            value = rng.uniform(0.5, 1.5, shape)
        elif name in ("cls", "pos_embedding"):
            value = rng.normal(0.0, 0.5, shape)
        else:  # kernels keep their Keras initialization (fan-scaled), re-drawn from our seed
            fan_in = int(np.prod(shape[:-1])) if len(shape) > 1 else 1
            if "depthwise_kernel" in var.name:
                fan_in = shape[0] * shape[1]
            value = rng.normal(0.0, np.sqrt(2.0 / max(fan_in, 1)), shape)
        var.assign(value.astype(np.float32))


def random_images(rng: np.random.Generator, count: int) -> np.ndarray:
    """(count, 224, 224, 3) in [0, 255]: a brightness, coarse 7×7 structure and pixel noise per
    image.

    Plain uniform noise makes every image look alike to a random network; varied images
    make the image-dependent part of the logits large enough to test.
    """
    base = rng.uniform(40, 215, (count, 1, 1, 3))
    coarse = np.repeat(np.repeat(rng.normal(0, 60, (count, 7, 7, 3)), 32, axis=1), 32, axis=2)
    fine = rng.normal(0, 30, (count, 224, 224, 3))
    return np.clip(base + coarse + fine, 0, 255).astype(np.float32)


def write_reference(arch: str, out: Path, rng: np.random.Generator, images: int) -> None:
    """Build, randomize and save one network; write its inputs and logits beside it."""
    model, head = build(arch)
    randomize(model, rng)
    h5 = out / f"{arch}.h5"
    if arch == "vit-b16":
        model.save_weights(str(h5))          # the authors released ViT-B16 weights only
    else:
        model.save(str(h5), save_format="h5")  # whole model: model_config + model_weights
    model.get_layer(head).activation = tf.keras.activations.linear
    pixels = random_images(rng, images)
    inputs = ((pixels / 255.0 - MEAN) / STD).astype(np.float32)
    logits = model(inputs, training=False).numpy()
    np.save(out / f"{arch}_inputs.npy", inputs)
    np.save(out / f"{arch}_logits.npy", logits)
    (out / f"{arch}_info.json").write_text(json.dumps(
        {"tensorflow": tf.__version__, "arch": arch}))
    print(json.dumps({"arch": arch, "logit_absmax": float(np.abs(logits).max()),
                      "logit_std_over_images": float(logits.std(axis=0).mean())}))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("out_dir")
    parser.add_argument("archs", nargs="+")
    parser.add_argument("--images", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    tf.config.threading.set_intra_op_parallelism_threads(2)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for arch in args.archs:
        write_reference(arch, out, np.random.default_rng(args.seed), args.images)
    return 0


if __name__ == "__main__":
    sys.exit(main())
