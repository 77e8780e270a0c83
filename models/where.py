"""Where a network looks versus where people look: the ClickMe alignment of paradigm §3.

Per image, Spearman's ρ between the model's saliency (|∂ logit_y/∂x| max over RGB, not
blurred) and the blurred human map (models.human_maps), both flattened at 224×224; the
mean over images divided by the human ceiling (0.65753, the authors' ClickMe value, or
split halves of participants when per-participant maps are given); a percentile
bootstrap over images; Dice and IoU of each map's top 10 % of pixels.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from scipy.stats import rankdata
from tqdm import tqdm

from experiment.schema import read_rows
from models.cli_options import add_model_options, model_names, models_from_args, weights_inputs
from models.human_maps import MODEL_RES, prepare_human_maps
from models.preprocessing import load_rgb, to_model_input, whole_image
from models.saliency import saliency_maps
from models.zoo import ZooModel
from suite.atomic import atomic_write_text
from suite.cli_types import float_in, int_at_least
from suite.errors import InputError
from suite.outputs import check_not_input, check_output_file
from suite.provenance import provenance

CLICKME_CEILING = 0.65753   # the authors' code; the paper reports ρ = 0.66 from split halves
MAP_SIZE = 256              # ClickMe maps and images are stored at 256×256
MAP_SUFFIXES = (".npy", ".npz", ".png", ".jpg", ".jpeg")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
TOP_FRACTION = 0.10


def load_map(path: str | Path, size: int = MAP_SIZE) -> np.ndarray:
    """An importance map file (.npy/.npz/.png/.jpg) → (size, size) float32; wrong size or NaN
    raises."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: map not found; check the path")
    if path.suffix.lower() not in MAP_SUFFIXES:
        raise InputError(f"{path}: unknown map format; use one of {', '.join(MAP_SUFFIXES)}")
    try:
        if path.suffix.lower() == ".npy":
            m = np.load(path, allow_pickle=False)
        elif path.suffix.lower() == ".npz":
            with np.load(path, allow_pickle=False) as z:
                if len(z.files) != 1:
                    raise InputError(f"{path}: holds {len(z.files)} arrays; save one map per .npz")
                m = z[z.files[0]]
        else:
            with Image.open(path) as im:
                m = np.asarray(im.convert("L"))
    except (OSError, ValueError) as err:
        raise InputError(f"{path}: cannot read the map ({err}); replace the file") from err
    m = np.squeeze(np.asarray(m, dtype=np.float32))
    if m.shape != (size, size):
        raise InputError(f"{path}: map is {m.shape}, expected ({size}, {size}) "
                         "as ClickMe stores them; "
                         f"resize the map (and its image) to {size}×{size} first")
    if not np.isfinite(m).all():
        raise InputError(f"{path}: map has NaN or infinite values; replace them (e.g. with 0)")
    return m


def spearman_rows(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor) -> np.ndarray:
    """Spearman's ρ of each row pair: (N, D), (N, D) → (N,); ties take average ranks."""
    a = np.asarray(a, dtype=np.float64).reshape(len(a), -1)
    b = np.asarray(b, dtype=np.float64).reshape(len(b), -1)
    ra = rankdata(a, axis=1)
    rb = rankdata(b, axis=1)
    ra -= ra.mean(axis=1, keepdims=True)
    rb -= rb.mean(axis=1, keepdims=True)
    denom = np.sqrt((ra**2).sum(axis=1) * (rb**2).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return (ra * rb).sum(axis=1) / denom   # a constant row gives NaN, as scipy does


def top_fraction_overlap(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor,
                         fraction: float = TOP_FRACTION) -> tuple[np.ndarray, np.ndarray]:
    """Dice and IoU (each (N,)) of the top ``fraction`` of pixels of each row pair (N, D)."""
    a = np.asarray(a, dtype=np.float64).reshape(len(a), -1)
    b = np.asarray(b, dtype=np.float64).reshape(len(b), -1)
    k = max(1, round(fraction * a.shape[1]))

    def mask(x: np.ndarray) -> np.ndarray:
        # exactly k pixels per map, so Dice and IoU compare sets of equal size
        # (ties: arbitrary order)
        m = np.zeros(x.shape, bool)
        np.put_along_axis(m, np.argpartition(-x, k - 1, axis=1)[:, :k], True, axis=1)
        return m

    inter = (mask(a) & mask(b)).sum(axis=1)
    return 2.0 * inter / (2 * k), inter / (2 * k - inter)


@dataclass
class WhereResult:
    """Alignment of one model with human maps; rho per image, score = mean rho / ceiling."""

    model: str
    n_images: int
    mean_rho: float
    ceiling: float
    ceiling_source: str
    score: float
    score_ci: tuple[float, float]
    dice: float
    iou: float
    per_image_rho: list[float] = field(repr=False)
    image_ids: list[str] = field(repr=False)


def alignment(saliency: np.ndarray | torch.Tensor, human: np.ndarray | torch.Tensor,
              ceiling: float = CLICKME_CEILING, ceiling_source: str = "ClickMe (authors' code)",
              n_boot: int = 1000, seed: int = 0, model: str = "",
              image_ids: list[str] | None = None) -> WhereResult:
    """Score (N, 224, 224) saliency against (N, 224, 224) blurred human maps."""
    rho = spearman_rows(saliency, human)
    ids = image_ids or [str(i) for i in range(len(rho))]
    if np.isnan(rho).any():
        bad = [ids[i] for i in np.flatnonzero(np.isnan(rho))[:5]]
        raise InputError(f"Spearman's ρ is undefined for image(s) {', '.join(bad)}: a constant map "
                         "(e.g. all zero); remove those images or give maps with some importance")
    dice, iou = top_fraction_overlap(saliency, human)
    boot = rho[np.random.default_rng(seed).integers(0, len(rho), (n_boot, len(rho)))].mean(axis=1)
    lo, hi = np.percentile(boot / ceiling, [2.5, 97.5])
    return WhereResult(model=model, n_images=len(rho), mean_rho=float(rho.mean()),
                       ceiling=float(ceiling),
                       ceiling_source=ceiling_source, score=float(rho.mean() / ceiling),
                       score_ci=(float(lo), float(hi)), dice=float(dice.mean()),
                       iou=float(iou.mean()),
                       per_image_rho=rho.tolist(), image_ids=list(ids))


def split_half_ceiling(participant_maps: list[np.ndarray], n_splits: int = 1000, seed: int = 0,
                       spearman_brown: bool = False, progress: bool = True) -> float:
    """Human ceiling: mean over random participant splits of the mean per-image ρ between
    half-means.

    ``participant_maps``: one (P_i, H, W) array per image, P_i ≥ 2. Each half's mean map is
    blurred like any human map; odd P_i leaves one participant out per split. With
    ``spearman_brown`` the split-half ρ is stepped up to full length, 2ρ/(1+ρ).
    """
    for i, m in enumerate(participant_maps):
        if m.ndim != 3 or m.shape[0] < 2:
            raise InputError(f"participant maps of image #{i}: need (participants ≥ 2, H, W), "
                             f"got {m.shape}")
    rng = np.random.default_rng(seed)
    # The ClickMe preparation (resize, blur, resize) is linear, so the prepared mean of a half
    # is the mean of its participants' prepared maps: prepare each participant's map once.
    prepared = [prepare_human_maps(m)[:, 0].numpy().reshape(m.shape[0], -1).astype(np.float64)
                for m in participant_maps]
    means = []
    for _ in tqdm(range(n_splits), desc="split halves", disable=not progress):
        halves_a, halves_b = [], []
        for m in prepared:
            order = rng.permutation(m.shape[0])
            half = m.shape[0] // 2
            halves_a.append(m[order[:half]].mean(axis=0))
            halves_b.append(m[order[half:2 * half]].mean(axis=0))
        means.append(np.nanmean(spearman_rows(np.stack(halves_a), np.stack(halves_b))))
    rho = float(np.mean(means))
    return 2 * rho / (1 + rho) if spearman_brown else rho


def read_where_set(images: str | Path, maps: str | Path | None) -> list[dict]:
    """Items {image, map, image_id, class_index|None} from a build manifest CSV or image + map
    folders."""
    images = Path(images)
    if images.is_file():
        rows = read_rows(images, required=("image", "map", "image_id"))
        items = [{"image": images.parent / r["image"], "map": images.parent / r["map"],
                  "image_id": r["image_id"],
                  "class_index": int(r["class_index"]) if r.get("class_index", "") != "" else None}
                 for r in rows]
    elif images.is_dir():
        if maps is None:
            raise InputError(f"{images}: a folder of images needs --maps FOLDER "
                             "(maps named like the images)")
        by_stem = {p.stem: p for p in Path(maps).iterdir() if p.suffix.lower() in MAP_SUFFIXES}
        files = sorted(p for p in images.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        missing = [p.name for p in files if p.stem not in by_stem]
        if missing:
            raise InputError(f"{maps}: no map for {len(missing)} image(s), e.g. {missing[0]}; "
                             "name each map like its image (same stem, .npy/.npz/.png/.jpg)")
        items = [{"image": p, "map": by_stem[p.stem], "image_id": p.stem, "class_index": None}
                 for p in files]
    else:
        raise InputError(f"{images}: not found; give a build manifest CSV (image, map, image_id, "
                         "class_index) or a folder of images with --maps")
    if not items:
        raise InputError(f"{images}: no images found")
    return items


def model_saliency(model: ZooModel, items: list[dict], batch_size: int = 16,
                   progress: bool = True) -> np.ndarray:
    """(N, 224, 224) |∂ logit_y/∂x| max-over-RGB saliency;
    y = class_index when known, else top-1."""
    # the ClickMe loader resizes the whole 256×256 image (bilinear, no crop); so do we, to the
    # model's size
    prep = replace(whole_image(model.preprocessing), interpolation="bilinear")
    out = []
    for i in tqdm(range(0, len(items), batch_size), desc=f"saliency {model.name}",
                  disable=not progress):
        chunk = items[i:i + batch_size]
        imgs = []
        for it in chunk:
            img = load_rgb(it["image"])
            if img.shape[:2] != (MAP_SIZE, MAP_SIZE):
                raise InputError(f"{it['image']}: image is {img.shape[1]}×{img.shape[0]}, "
                                 "its map is "
                                 f"{MAP_SIZE}×{MAP_SIZE}; "
                                 f"resize the image to {MAP_SIZE}×{MAP_SIZE} like its map")
            imgs.append(img)
        x = to_model_input(imgs, prep)
        known = [it["class_index"] for it in chunk]
        target = torch.tensor(known) if all(k is not None for k in known) else None
        sal, _ = saliency_maps(model, x, target)
        if sal.shape[-1] != MODEL_RES:  # compare at 224×224 whatever the model's input size
            sal = F.interpolate(sal[:, None], size=(MODEL_RES, MODEL_RES), mode="bilinear",
                                align_corners=False)[:, 0]
        out.append(sal.numpy())
    return np.concatenate(out)


def blurred_human_maps(items: list[dict]) -> np.ndarray:
    """(N, 224, 224) human maps of ``items``, prepared as the ClickMe loader does (paradigm §3)."""
    return prepare_human_maps(np.stack([load_map(it["map"]) for it in items]))[:, 0].numpy()


def evaluate(model: ZooModel, items: list[dict], ceiling: float = CLICKME_CEILING,
             ceiling_source: str = "ClickMe (authors' code)", n_boot: int = 1000, seed: int = 0,
             batch_size: int = 16, progress: bool = True,
             human: np.ndarray | None = None) -> WhereResult:
    """The "where" alignment of ``model`` on ``items`` (see read_where_set); ``human`` reuses
    prepared maps."""
    human = blurred_human_maps(items) if human is None else human
    sal = model_saliency(model, items, batch_size, progress)
    return alignment(sal, human, ceiling, ceiling_source, n_boot, seed, model.name,
                     [it["image_id"] for it in items])


#: The model name of the centre-bias control's result (its JSON entry also has
#: ``"control": "centre_bias"``).
CENTRE_BIAS_MODEL = "centre-bias control"


def centre_bias_control(human: np.ndarray, ceiling: float = CLICKME_CEILING,
                        ceiling_source: str = "ClickMe (authors' code)", n_boot: int = 1000,
                        seed: int = 0, image_ids: list[str] | None = None) -> WhereResult:
    """The centre-bias control (†): each image's blurred human map scored, like a model's
    saliency, against the mean of the other images' maps (docs/maps.md). Needs ≥ 2 images."""
    human = np.asarray(human, dtype=np.float64)
    if len(human) < 2:
        raise InputError("--centre-bias: the control needs at least 2 images (each image's map "
                         "against the mean of the others')")
    others = (human.sum(axis=0, keepdims=True) - human) / (len(human) - 1)
    return alignment(others, human, ceiling, ceiling_source, n_boot, seed, CENTRE_BIAS_MODEL,
                     image_ids)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_options(parser, several=True, batch_size_default=16,
                      batch_size_help="images per saliency pass (default 16)")
    parser.add_argument("--images", required=True, type=Path,
                        help="build manifest CSV (image, map, image_id, class_index) "
                             "or a folder of 256×256 images")
    parser.add_argument("--maps", type=Path, default=None,
                        help="folder of 256×256 maps (.npy/.npz/.png/.jpg) named like the images")
    parser.add_argument("--participant-maps", type=Path, default=None,
                        help=".npz with one (participants, 256, 256) array per image_id: "
                             "split-half ceiling")
    parser.add_argument("--ceiling", type=float_in(0, 1, low_open=True), default=CLICKME_CEILING,
                        help="human ceiling when no participant maps are given "
                             f"(default {CLICKME_CEILING})")
    parser.add_argument("--spearman-brown", action="store_true",
                        help="step the split-half ceiling up to full length, 2ρ/(1+ρ)")
    parser.add_argument("--n-splits", type=int_at_least(1), default=1000,
                        help="random participant splits for the split-half ceiling (default 1000)")
    parser.add_argument("--n-boot", type=int_at_least(1), default=1000,
                        help="bootstrap resamples over images (default 1000)")
    parser.add_argument("--seed", type=int_at_least(0), default=0, help="random seed (default 0)")
    parser.add_argument("--out", type=Path, default=None,
                        help="output file (optional): the results as JSON, with per-image ρ")
    parser.add_argument("--centre-bias", action="store_true",
                        help="add the centre-bias control (†): each image's human map against "
                             "the mean of the other images' maps, scored like a model")


def main(args: argparse.Namespace) -> int:
    names = model_names(args)
    inputs = [args.images, args.maps, args.participant_maps, *weights_inputs(args)]
    if args.out is not None:
        check_output_file(args.out, inputs=[p for p in inputs if p is not None])
    items = read_where_set(args.images, args.maps)
    if args.out is not None:
        check_not_input(args.out, [p for it in items for p in (it["image"], it["map"])])
    human = blurred_human_maps(items)  # every map checked before any model is built
    ceiling, source = args.ceiling, ("given" if args.ceiling != CLICKME_CEILING
                                     else "ClickMe (authors' code)")
    if args.participant_maps is not None:
        with np.load(args.participant_maps, allow_pickle=False) as z:
            missing = [it["image_id"] for it in items if it["image_id"] not in z.files]
            if missing:
                raise InputError(f"{args.participant_maps}: no participant maps for image_id "
                                 f"{missing[0]} "
                                 f"({len(missing)} missing); store one array per image_id")
            per_image = [np.asarray(z[it["image_id"]], dtype=np.float32) for it in items]
        ceiling = split_half_ceiling(per_image, args.n_splits, args.seed, args.spearman_brown)
        source = (f"split halves, {args.n_splits} splits"
                  + (", Spearman-Brown" if args.spearman_brown else ""))
    control = centre_bias_control(human, ceiling, source, args.n_boot, args.seed,
                                  [it["image_id"] for it in items]) if args.centre_bias else None
    results = []
    for model in models_from_args(args):
        r = evaluate(model, items, ceiling, source, args.n_boot, args.seed, args.batch_size,
                     human=human)
        results.append(asdict(r))
        print(f"{r.model}: mean ρ {r.mean_rho:.4f}, score {r.score:.4f} "
              f"[{r.score_ci[0]:.4f}, {r.score_ci[1]:.4f}] "
              f"(ceiling {r.ceiling:.4f}, {r.ceiling_source}); "
              f"Dice {r.dice:.4f}, IoU {r.iou:.4f}; n={r.n_images}")
    if control is not None:
        c = control
        results.append({**asdict(c), "control": "centre_bias"})
        print(f"{c.model} †: mean ρ {c.mean_rho:.4f}, score {c.score:.4f} "
              f"[{c.score_ci[0]:.4f}, {c.score_ci[1]:.4f}]")
    if args.out:
        record = {"results": results, "provenance": provenance(
            models=names, images=str(args.images), maps=str(args.maps), ceiling=ceiling,
            ceiling_source=source, n_boot=args.n_boot, seed=args.seed)}
        atomic_write_text(args.out, json.dumps(record, indent=2))
    return 0
