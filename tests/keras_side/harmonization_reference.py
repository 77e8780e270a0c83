"""Run inside .venv-keras: the authors' `harmonization` 0.0.9 code on inputs written by the \
suite's test.

Usage: harmonization_reference.py DIR
Reads DIR/in_*.npy (written by tests/test_harmonization_parity.py with fixed seeds), runs the
authors' pyramid, blur, ClickMe parsing, harmonization term, total loss with gradients and
Spearman / alignment score on them, and writes DIR/out_*.npy, DIR/tiny_weights.npz (the tiny
Keras network's variables as built, before any step) and DIR/result.json (scalars, names).

The package is installed with --no-deps: its top-level __init__ imports every submodule,
including evaluation/clickme.py (which imports xplique, used only as the default explainer)
and models/ (keras_cv_attention_models). Neither is installed, so the package object is made
without running that __init__, and `xplique.attributions` is a placeholder whose Saliency
refuses to run: every call below passes its own explainer. The authors' functions themselves
are imported from their files unchanged.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import sys
import types
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

N_CLASSES = 10


def import_authors() -> types.SimpleNamespace:
    """The authors' modules, loaded from the installed wheel without its top-level __init__."""
    spec = importlib.util.find_spec("harmonization")
    if spec is None or spec.origin is None:
        raise SystemExit("harmonization is not installed in this environment: run 'make keras-env'")
    root = Path(spec.origin).parent
    package = types.ModuleType("harmonization")
    package.__path__ = [str(root)]
    sys.modules["harmonization"] = package

    class _NoDefaultExplainer:
        def __init__(self, *args, **kwargs):
            raise RuntimeError("xplique is not installed; pass an explainer to evaluate_clickme")

    xplique = types.ModuleType("xplique")
    attributions = types.ModuleType("xplique.attributions")
    attributions.Saliency = _NoDefaultExplainer
    xplique.attributions = attributions
    sys.modules.setdefault("xplique", xplique)
    sys.modules.setdefault("xplique.attributions", attributions)

    import harmonization.common.blur as blur
    import harmonization.common.clickme_dataset as clickme_dataset
    import harmonization.evaluation.clickme as clickme
    import harmonization.evaluation.metrics as metrics
    import harmonization.training.loss as loss
    import harmonization.training.pyramid as pyramid

    return types.SimpleNamespace(root=root, blur=blur, clickme_dataset=clickme_dataset,
                                 clickme=clickme, metrics=metrics, loss=loss, pyramid=pyramid)


def tiny_model(seed: int) -> tf.keras.Model:
    """A small network whose layer names exercise the authors' weight-decay filter.

    stem_bn ("bn/") and patch_embed ("embed") are skipped by their filter; subnet_conv contains
    "bn" without the slash and is decayed by it.
    """
    tf.keras.utils.set_random_seed(seed)
    x_in = tf.keras.Input((64, 64, 3))
    # no bias before the batch norm: its gradient would be zero but for round-off
    x = tf.keras.layers.Conv2D(8, 3, padding="same", use_bias=False, name="stem_conv")(x_in)
    x = tf.keras.layers.BatchNormalization(name="stem_bn")(x)
    x = tf.keras.layers.Activation("swish")(x)
    x = tf.keras.layers.Conv2D(16, 3, strides=2, padding="same", activation="relu",
                               name="subnet_conv")(x)
    x = tf.keras.layers.DepthwiseConv2D(3, padding="same", activation="tanh", name="dw_conv")(x)
    x = tf.keras.layers.Conv2D(16, 1, name="patch_embed")(x)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    out = tf.keras.layers.Dense(N_CLASSES, name="head")(x)
    model = tf.keras.Model(x_in, out)
    rng = np.random.default_rng(seed)
    for var in model.weights:
        name, shape = var.name.split("/")[-1].split(":")[0], tuple(var.shape)
        if name == "gamma":
            value = rng.uniform(0.7, 1.3, shape)
        elif name in ("beta", "bias"):
            value = rng.normal(0.0, 0.1, shape)
        elif name == "moving_mean":
            value = rng.normal(0.0, 0.1, shape)
        elif name == "moving_variance":
            value = rng.uniform(0.5, 1.5, shape)
        else:
            fan_in = shape[0] * shape[1] if name == "depthwise_kernel" else int(np.prod(shape[:-1]))
            value = rng.normal(0.0, np.sqrt(2.0 / fan_in), shape)
        var.assign(value.astype(np.float32))
    return model


def run(d: Path) -> None:
    au = import_authors()
    load = lambda name: np.load(d / f"in_{name}.npy")  # noqa: E731
    save = lambda name, a: np.save(d / f"out_{name}.npy", np.asarray(a))  # noqa: E731
    result: dict = {"version": importlib.metadata.version("harmonization"),
                    "package_dir": str(au.root)}

    # 1. the pyramid, each level, at 224 (the paper's size), 64 and an odd 37
    for size in (224, 64, 37):
        maps = tf.constant(load(f"pyramid_{size}"))[..., None]
        levels = au.pyramid.pyramidal_representation(maps, 5)
        result[f"pyramid_{size}_levels"] = len(levels)
        for i, level in enumerate(levels):
            save(f"pyramid_{size}_{i}", level.numpy()[..., 0])

    # 2. the blur kernel and the blur of 64 × 64 maps
    kernel = au.blur.gaussian_kernel()
    save("blur_kernel", kernel.numpy()[:, :, 0, 0])
    blur_in = load("blur")
    save("blur", np.stack([au.blur.gaussian_blur(tf.constant(m[..., None]), kernel).numpy()[..., 0]
                           for m in blur_in]))

    # 3. ClickMe records parsed by the authors' loader (JPEG image and heatmap as released)
    images, heats, labels = load("clickme_image"), load("clickme_heat"), load("clickme_label")
    parsed_img, parsed_heat, decoded_img, decoded_heat, parsed_label = [], [], [], [], []
    for image, heat, label in zip(images, heats, labels, strict=True):
        img_jpeg = tf.io.encode_jpeg(image, quality=95).numpy()
        heat_jpeg = tf.io.encode_jpeg(heat[..., None], quality=95).numpy()
        example = tf.train.Example(features=tf.train.Features(feature={
            "image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[img_jpeg])),
            "heatmap": tf.train.Feature(bytes_list=tf.train.BytesList(value=[heat_jpeg])),
            "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(label)])),
        }))
        im, hm, lab = au.clickme_dataset.parse_clickme_prototype(example.SerializeToString())
        parsed_img.append(im.numpy())
        parsed_heat.append(hm.numpy()[..., 0])
        parsed_label.append(int(np.argmax(lab.numpy())))
        decoded_img.append(tf.io.decode_jpeg(img_jpeg).numpy())
        decoded_heat.append(tf.io.decode_jpeg(heat_jpeg).numpy()[..., 0])
    save("clickme_image", np.stack(parsed_img))
    save("clickme_heat", np.stack(parsed_heat))
    save("clickme_decoded_image", np.stack(decoded_img))
    save("clickme_decoded_heat", np.stack(decoded_heat))
    result["clickme_labels"] = parsed_label

    # 4. standardize-cut and the pyramidal MSE with tokens (per level and the mean)
    sal, human, tokens = (tf.constant(load(n)) for n in ("term_sal", "term_human", "term_tokens"))
    s_cut, h_cut = au.loss.standardize_cut(sal), au.loss.standardize_cut(human)
    save("term_sal_cut", s_cut.numpy())
    save("term_human_cut", h_cut.numpy())
    result["term"] = float(au.loss.pyramidal_mse_with_tokens(s_cut, h_cut, tokens).numpy())
    ps = au.pyramid.pyramidal_representation(s_cut[..., None], 5)
    ph = au.pyramid.pyramidal_representation(h_cut[..., None], 5)
    result["term_levels"] = [float(au.loss._mse_with_tokens(a, b, tokens).numpy())
                             for a, b in zip(ps, ph, strict=True)]

    # 5. the whole loss and its gradients on the tiny network; the authors' harmonizer_loss
    # returns only the gradients, so its parts are recorded on their way through
    model = tiny_model(seed=int(load("seed")))
    np.savez(d / "tiny_weights.npz", **{v.name: v.numpy() for v in model.weights})
    result["tiny_trainable"] = [v.name for v in model.trainable_variables]

    # 5a. evaluation first (inference mode: the BN moving statistics as saved)
    e_images = tf.constant(load("eval_images"))
    e_maps = tf.constant(load("eval_maps"))[..., None]
    e_labels = tf.one_hot(load("eval_labels"), N_CLASSES)

    def explainer(x, y):
        # |∂ logit_y / ∂ x| max over channels, the Saliency the authors' evaluation uses
        with tf.GradientTape() as tape:
            tape.watch(x)
            score = tf.reduce_sum(model(x, training=False) * y, -1)
        return tf.reduce_max(tf.abs(tape.gradient(score, x)), -1)

    dataset = tf.data.Dataset.from_tensor_slices((e_images, e_maps, e_labels)).batch(3)
    scores = au.clickme.evaluate_clickme(model, explainer=explainer, clickme_val_dataset=dataset)
    save("eval_saliency", np.concatenate([explainer(x, y).numpy() for x, _, y in dataset]))
    result["eval_spearman"] = [float(v) for v in scores["spearman"]]
    result["eval_dice"] = [float(v) for v in scores["dice"]]
    result["eval_iou"] = [float(v) for v in scores["iou"]]
    result["eval_alignment_score"] = float(scores["alignment_score"])
    result["human_spearman_ceiling"] = float(au.clickme.HUMAN_SPEARMAN_CEILING)

    # 5b. the training loss (training=True inside the authors' function: BN batch statistics)
    images = tf.constant(load("e2e_images"))
    labels = tf.one_hot(load("e2e_labels"), N_CLASSES)
    maps, tokens = tf.constant(load("e2e_maps")), tf.constant(load("e2e_tokens"))
    seen: dict = {"l2_names": [], "l2": []}

    def recording_cross_entropy(y_true, y_pred):
        value = au.loss.Cross_entropy(y_true, y_pred)
        seen["cce"] = float(tf.reduce_mean(value).numpy())
        return value

    authors_pmse, authors_cut, authors_l2 = (au.loss.pyramidal_mse_with_tokens,
                                             au.loss.standardize_cut, tf.nn.l2_loss)

    def recording_pmse(a, b, t, nb_levels=5):
        seen["pmse_inputs"] = (a.numpy(), b.numpy())
        value = authors_pmse(a, b, t, nb_levels)
        seen["harmonization"] = float(value.numpy())
        return value

    def recording_cut(h, *args, **kwargs):
        seen.setdefault("cut_inputs", []).append(h.numpy())
        return authors_cut(h, *args, **kwargs)

    def recording_l2(v, *args, **kwargs):
        value = authors_l2(v, *args, **kwargs)
        seen["l2_names"].append(v.name)
        seen["l2"].append(float(value.numpy()))
        return value

    au.loss.pyramidal_mse_with_tokens, au.loss.standardize_cut = recording_pmse, recording_cut
    tf.nn.l2_loss = recording_l2
    try:
        grads = au.loss.harmonizer_loss(model, images, tokens, labels, maps,
                                        cross_entropy=recording_cross_entropy)
    finally:
        au.loss.pyramidal_mse_with_tokens, au.loss.standardize_cut = authors_pmse, authors_cut
        tf.nn.l2_loss = authors_l2
    np.savez(d / "out_e2e_grads.npz",
             **{v.name: g.numpy() for v, g in zip(model.trainable_variables, grads, strict=True)})
    save("e2e_saliency", seen["cut_inputs"][0])
    save("e2e_sal_cut", seen["pmse_inputs"][0])
    save("e2e_human_rescaled", seen["pmse_inputs"][1])
    weight = float(np.sum(seen["l2"]))
    result.update(e2e_cce=seen["cce"], e2e_harmonization=seen["harmonization"],
                  e2e_weight=weight, e2e_l2_names=seen["l2_names"],
                  # the total as harmonizer_loss forms it (its defaults λ_w = 1e-5, λ_h = 1)
                  e2e_total=seen["cce"] + weight * 1e-5 + seen["harmonization"] * 1.0)

    # 6. Spearman, Dice, IoU on their own (continuous maps, and maps with large tied regions)
    for name in ("spearman", "ties"):
        a, b = load(f"{name}_a"), load(f"{name}_b")
        result[f"{name}_rho"] = [float(v) for v in au.metrics.spearman_correlation(a, b)]
        result[f"{name}_dice"] = [float(v) for v in au.metrics.dice(a, b)]
        result[f"{name}_iou"] = [float(v) for v in au.metrics.intersection_over_union(a, b)]

    (d / "result.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    run(Path(sys.argv[1]))
