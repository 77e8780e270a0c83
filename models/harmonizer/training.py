"""Fine-tune any zoo/timm model with the neural harmonizer loss: ``python -m models harmonize``.

Each batch mixes images with human maps (a build manifest, category folders or ClickMe
TFRecord shards) and images without (an ImageNet-style folder) at 0.2 : 0.8 by default;
SGD or AdamW with linear warm-up and cosine decay; bf16/fp16 autocast on a GPU; several
processes under ``torchrun`` (gradients averaged by all-reduce); an atomic checkpoint to
resume from; one JSON line of metrics per step; the result saved as a zoo model
(``harmonized_ft:<run>``, see models/harmonizer/runs.py).
"""

from __future__ import annotations

import io
import json
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.distributed as torch_dist
import torch.nn as nn

from models.cli_options import add_model_options
from models.harmonizer.data import MappedImages, PlainImages, StepBatches, WithToken
from models.harmonizer.loss import harmonizer_loss
from models.saliency import input_gradients, max_abs_saliency
from models.where import CLICKME_CEILING, spearman_rows
from suite.atomic import atomic_write_bytes, atomic_write_text
from suite.cli_types import exactly, int_at_least, list_item
from suite.errors import InputError

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.jsonl"


@dataclass(frozen=True)
class HarmonizeConfig:
    """Training settings; saved in every checkpoint and in the model card."""

    steps: int = 1000
    batch_size: int = 32            # per process
    map_fraction: float = 0.2       # share of each batch drawn from images with maps
    optimizer: str = "sgd"          # "sgd" (momentum 0.9, nesterov) or "adamw"
    lr: float = 0.01
    warmup_steps: int = 100
    min_lr: float = 0.0
    lambda_harmonization: float = 1.0
    lambda_weights: float = 1e-5
    label_smoothing: float = 0.1
    # "auto" (bf16 on GPUs that have it, else fp16), "bf16", "fp16", "none"
    amp: str = "auto"
    seed: int = 0
    eval_every: int = 100
    eval_images: int = 256
    checkpoint_every: int = 100
    alignment_ceiling: float = CLICKME_CEILING
    workers: int = 2


# ---- pieces of the loop ----------------------------------------------------------------------

class Normalizer:
    """Maps images in [0, 1] to the model's input: (x − mean) / std per channel, on ``device``."""

    def __init__(self, mean, std, device):
        self.mean = torch.tensor(mean, dtype=torch.float32, device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32, device=device).view(1, 3, 1, 1)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def lr_factor(step: int, cfg: HarmonizeConfig) -> float:
    """Learning-rate multiplier: linear warm-up over warmup_steps, then cosine to min_lr/lr."""
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    span = max(cfg.steps - cfg.warmup_steps, 1)
    cos = 0.5 * (1 + math.cos(math.pi * min(step - cfg.warmup_steps, span) / span))
    floor = cfg.min_lr / cfg.lr if cfg.lr else 0.0
    return floor + (1 - floor) * cos


def amp_dtype(cfg: HarmonizeConfig, device: torch.device) -> torch.dtype | None:
    """The autocast dtype: None on CPU under "auto", bf16 where the GPU supports it."""
    if cfg.amp == "none" or (cfg.amp == "auto" and device.type != "cuda"):
        return None
    if cfg.amp == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"bf16": torch.bfloat16, "fp16": torch.float16}[cfg.amp]


def make_optimizer(params, cfg: HarmonizeConfig) -> torch.optim.Optimizer:
    """SGD or AdamW without their own decay: the loss carries the 1e-5 L2 term (paradigm §3)."""
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, nesterov=True)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
    raise InputError(f"optimizer {cfg.optimizer!r} is unknown; use sgd or adamw")


@dataclass
class Dist:
    """This process's place in a torchrun job (rank 0 of 1 without one)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls) -> Dist:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world > 1 and torch.cuda.is_available():  # NCCL needs each rank on its own GPU first
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        if world > 1 and not torch_dist.is_initialized():
            torch_dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        return cls(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")))

    def broadcast(self, module: nn.Module) -> None:
        if self.world > 1:
            for t in [*module.parameters(), *module.buffers()]:
                torch_dist.broadcast(t.data, 0)

    def average_grads(self, module: nn.Module) -> None:
        # a hand all-reduce, not DDP: DDP's hooks do not support the double backward the loss needs
        if self.world == 1:
            return
        grads = [p.grad for p in module.parameters() if p.grad is not None]
        flat = torch.cat([g.reshape(-1) for g in grads])
        torch_dist.all_reduce(flat)
        flat /= self.world
        for g, chunk in zip(grads, flat.split([g.numel() for g in grads]), strict=True):
            g.copy_(chunk.view_as(g))


def saliency_alignment(model: nn.Module, images: torch.Tensor, maps: torch.Tensor,
                       labels: torch.Tensor) -> np.ndarray:
    """Per-image Spearman ρ of |∂logit_y/∂x| (max over RGB) with the human map; (N,) floats."""
    was = model.training
    model.eval()
    sal = max_abs_saliency(input_gradients(model, images, labels))
    model.train(was)
    return spearman_rows(sal.detach().cpu(), maps[:, 0].cpu())


def evaluate(model: nn.Module, data, cfg: HarmonizeConfig, norm: Normalizer, device) -> dict:
    """Held-out accuracy and ClickMe-style alignment (mean ρ, and ρ / ceiling)."""
    loader = torch.utils.data.DataLoader(
        torch.utils.data.Subset(data, range(min(len(data), cfg.eval_images))),
        batch_size=cfg.batch_size, num_workers=0)
    correct, rhos = 0, []
    for x, m, y, _ in loader:
        x, m, y = norm(x.to(device)), m.to(device), y.to(device)
        with torch.no_grad():
            was = model.training
            model.eval()
            correct += int((model(x).argmax(1) == y).sum())
            model.train(was)
        rhos.append(saliency_alignment(model, x, m, y))
    rho = np.concatenate(rhos)
    # a constant saliency map has no ρ; it is left out (reported as null if all are)
    mean = float(np.nanmean(rho)) if np.isfinite(rho).any() else None
    return {"val_accuracy": correct / len(rho), "val_spearman": mean,
            "val_alignment": None if mean is None else mean / cfg.alignment_ceiling,
            "val_images": len(rho), "val_undefined_rho": int((~np.isfinite(rho)).sum())}


def _save_checkpoint(path: Path, model, opt, sched, scaler, step: int, cfg) -> None:
    buf = io.BytesIO()
    torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(), "scaler": scaler.state_dict(), "step": step,
                "config": asdict(cfg), "torch_rng": torch.get_rng_state()}, buf)
    atomic_write_bytes(path, buf.getvalue())


def _batches(data, per_rank, start, stop, cfg, dist, salt) -> Iterator:
    if per_rank == 0:
        return iter(lambda: None, 0)  # endless Nones: no images of this kind in the batch
    sampler = StepBatches(len(data), per_rank, start, stop, cfg.seed + salt, dist.rank, dist.world)
    return iter(torch.utils.data.DataLoader(data, batch_sampler=sampler,
                                            num_workers=cfg.workers, persistent_workers=False))


def _step_of(line: str) -> float:
    try:
        return json.loads(line)["step"]
    except (ValueError, KeyError):  # a line torn by a crash mid-write: not a finished step
        return math.inf


def _join(a, b):
    if a is None or b is None:
        return a if b is None else b
    return [torch.cat([u, v]) if isinstance(u, torch.Tensor) else u + v
            for u, v in zip(a, b, strict=True)]


def _num_outputs(model: nn.Module, x: torch.Tensor) -> int:
    n = getattr(model, "num_classes", None)
    if isinstance(n, int) and n > 0:
        return n
    with torch.no_grad():
        return int(model(x[:1]).shape[-1])


def fine_tune(model: nn.Module, mean, std, maps, plain, cfg: HarmonizeConfig, out_dir,
              val=None, resume: bool = False, stop_after: int | None = None,
              on_done: Callable[[nn.Module, dict], None] | None = None,
              log: Callable[[str], None] = print) -> dict:
    """Train ``model`` (taking images normalized by mean/std) in place; returns the last metrics.

    ``maps``/``plain``/``val`` yield (image (3,S,S) in [0,1], map (1,S,S), label, token);
    ``stop_after`` ends this call after that many steps (checkpointed; resume later).
    """
    out_dir = Path(out_dir)
    dist = Dist.from_env()
    device = torch.device(f"cuda:{dist.local_rank}" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(cfg.seed)
    # saliency is taken w.r.t. the normalized input tensor, as models/saliency.py does
    net, norm = model.to(device).train(), Normalizer(mean, std, device)
    opt = make_optimizer(net.parameters(), cfg)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, cfg))
    dtype = amp_dtype(cfg, device)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    ckpt, metrics_path, start = out_dir / CHECKPOINT, out_dir / METRICS, 0
    if ckpt.exists() and not resume:
        raise InputError(f"{out_dir}: already holds a run; pass --resume to continue it or "
                         "choose another --out")
    if resume and ckpt.exists():
        state = torch.load(ckpt, map_location=device, weights_only=True)
        net.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["torch_rng"].cpu())
        start = int(state["step"])
        log(f"resumed {out_dir} at step {start}")
    dist.broadcast(net)

    k_map = cfg.batch_size if plain is None else round(cfg.map_fraction * cfg.batch_size)
    if plain is None and cfg.map_fraction < 1.0:
        log(f"no images without maps given: every batch is all {cfg.batch_size} mapped images")
    k_map = k_map if maps is not None else 0
    if k_map == 0 and maps is not None:
        raise InputError(f"batch size {cfg.batch_size} × map fraction {cfg.map_fraction} leaves "
                         "no image with a map per batch; raise --batch-size or --map-fraction")
    it_map = _batches(maps, k_map, start, cfg.steps, cfg, dist, 0)
    it_plain = _batches(plain, cfg.batch_size - k_map, start, cfg.steps, cfg, dist, 7919) \
        if plain is not None else _batches(None, 0, 0, 0, cfg, dist, 0)

    rows = []
    # drop rows a crashed run wrote past the checkpoint
    if dist.rank == 0 and metrics_path.exists():
        rows = [r for r in metrics_path.read_text().splitlines() if _step_of(r) <= start]
    if dist.rank == 0:
        atomic_write_text(metrics_path, "".join(r + "\n" for r in rows))
    last: dict = {}
    with open(metrics_path, "a", encoding="utf-8") if dist.rank == 0 else io.StringIO() as mlog:
        stop = cfg.steps if stop_after is None else min(cfg.steps, start + stop_after)
        for step in range(start, stop):
            t0 = time.perf_counter()
            x, m, y, tok = _join(next(it_map), next(it_plain))
            x, m, y = norm(x.to(device, non_blocking=True)), m.to(device), y.to(device)
            tok = tok.to(device).float()
            if step == start and int(y.max()) >= _num_outputs(net, x):
                raise InputError(f"label {int(y.max())} is beyond the model's classes; use "
                                 "ImageNet class indices or --labels category")
            with torch.autocast(device.type, dtype=dtype or torch.float32,
                                enabled=dtype is not None):
                out = harmonizer_loss(net, x, y, m, tok, cfg.lambda_harmonization,
                                      cfg.lambda_weights, cfg.label_smoothing)
            opt.zero_grad(set_to_none=True)
            scaler.scale(out.total).backward()
            dist.average_grads(net)
            scaler.step(opt)
            scaler.update()
            sched.step()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            dt = time.perf_counter() - t0
            last = {"step": step + 1, "lr": opt.param_groups[0]["lr"],
                    "loss": float(out.total.detach()), "task_loss": float(out.task.detach()),
                    "harmonization_loss": float(out.harmonization.detach()),
                    "weight_loss": float(out.weights.detach()),
                    "accuracy": float((out.logits.argmax(1) == y).float().mean()),
                    "maps_in_batch": int(tok.sum()), "images_per_s": len(y) * dist.world / dt}
            done = step + 1 == stop
            if val is not None and dist.rank == 0 and ((step + 1) % cfg.eval_every == 0 or done):
                last.update(evaluate(net, val, cfg, norm, device))
            if dist.rank == 0:
                mlog.write(json.dumps(last) + "\n")
                mlog.flush()
                if (step + 1) % cfg.checkpoint_every == 0 or done:
                    os.fsync(mlog.fileno())
                    _save_checkpoint(ckpt, net, opt, sched, scaler, step + 1, cfg)
    if dist.rank == 0 and on_done is not None and stop == cfg.steps:
        on_done(model, last)
    return last


# ---- command line ----------------------------------------------------------------------------

def add_arguments(parser) -> None:
    """Options of ``python -m models harmonize``."""
    from stimuli.clickme_import import CLICKME_KEYS

    d = HarmonizeConfig()
    a = parser.add_argument
    clickme_keys = list(CLICKME_KEYS)
    add_model_options(parser, several=False, device=False, batch_size_default=d.batch_size,
                      batch_size_help="images per training step and process "
                                      f"(default {d.batch_size})")
    a("--out", required=True, type=Path,
      help="output folder: the run (checkpoint, metrics, final model); continued with --resume")
    a("--manifest", type=Path, help="build manifest of images with maps (paradigm §4)")
    a("--images-with-maps", nargs="+", action=exactly(2), metavar="FOLDER", type=list_item(Path),
      help="two folders: category folders of images, then maps matched by file stem")
    a("--clickme", nargs="+", type=list_item(Path), default=[], metavar="SHARD",
      help="ClickMe TFRecord training shards")
    a("--clickme-val", nargs="+", type=list_item(Path), default=[], metavar="SHARD",
      help="ClickMe shards for evaluation")
    a("--clickme-keys", nargs="+", action=exactly(3), type=list_item(), default=clickme_keys,
      metavar="KEY", help="the shards' three feature keys IMAGE HEATMAP LABEL "
                          f"(default {' '.join(clickme_keys)})")
    a("--images", type=Path, help="folder of images without maps, one sub-folder per class")
    a("--labels", choices=("class_index", "category"), default="class_index",
      help="train on ImageNet class_index, or on animal/non-animal (a new 2-way head)")
    a("--val-fraction", type=float, default=0.05,
      help="mapped images held out when no --clickme-val")
    a("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    a("--stop-after", type=int, default=None, help="stop after this many steps (resume later)")
    a("--input-size", type=int, default=None,
      help="training resolution, px (default: the model's)")
    for f in ("steps", "map_fraction", "lr", "warmup_steps", "min_lr",
              "lambda_harmonization", "lambda_weights", "label_smoothing", "eval_every",
              "eval_images", "checkpoint_every", "alignment_ceiling"):
        a("--" + f.replace("_", "-"), type=type(getattr(d, f)), default=getattr(d, f))
    a("--seed", type=int_at_least(0), default=d.seed, help=f"random seed (default {d.seed})")
    a("--loader-workers", dest="workers", type=int_at_least(0), default=d.workers,
      help=f"data-loading processes besides the training one (default {d.workers}; "
           "0: load in the training process)")
    a("--optimizer", choices=("sgd", "adamw"), default=d.optimizer)
    a("--amp", choices=("auto", "bf16", "fp16", "none"), default=d.amp)


def main(args) -> int:
    """Build the data, fine-tune, save the zoo model; 0 on success."""
    from models.harmonizer import runs as hf
    from models.harmonizer.clickme import ClickMeShards
    from models.zoo import create
    from stimuli.clickme_import import ClickMeKeys
    from stimuli.io import items_from_folders, read_build_manifest

    torch.manual_seed(args.seed)  # a new head (or 'random' weights) starts the same every time
    zm = create(args.model, weights=args.weights)
    size = args.input_size or zm.preprocessing.input_size
    if args.labels == "category":
        zm.module.reset_classifier(2)
    items = read_build_manifest(args.manifest) if args.manifest else \
        items_from_folders(*args.images_with_maps) if args.images_with_maps else []
    keys = ClickMeKeys(*args.clickme_keys)
    maps = val = None
    if items:
        g = np.random.default_rng(args.seed).permutation(len(items))
        n_val = int(round(args.val_fraction * len(items))) if not args.clickme_val else 0
        maps = MappedImages([items[i] for i in g[n_val:]], size, args.labels)
        val = MappedImages([items[i] for i in g[:n_val]], size, args.labels) if n_val else None
    if args.clickme:
        shards = WithToken(ClickMeShards(args.clickme, keys, size))
        maps = shards if maps is None else torch.utils.data.ConcatDataset([maps, shards])
    if args.clickme_val:
        val = WithToken(ClickMeShards(args.clickme_val, keys, size))
    if maps is None:
        raise InputError("no images with maps: give --manifest, --images-with-maps or --clickme")
    if args.labels == "category" and (args.images or args.clickme or args.clickme_val):
        raise InputError("--labels category trains a 2-way animal/non-animal head; ClickMe and "
                         "--images folders carry ImageNet classes: drop them or use class_index")
    plain = PlainImages(args.images, size) if args.images else None
    cfg = HarmonizeConfig(**{f: getattr(args, f) for f in asdict(HarmonizeConfig())})
    base = zm.preprocessing
    prep = replace(base, input_size=size,
                   resize=max(size, round(base.resize * size / base.input_size)))
    last = fine_tune(zm.module, prep.mean, prep.std, maps, plain, cfg, args.out, val=val,
                     resume=args.resume, stop_after=args.stop_after,
                     on_done=lambda model, metrics: hf.save_run(
                         args.out, model, prep, base=args.model, weights=zm.weights, config=cfg,
                         metrics=metrics))
    print(json.dumps(last))
    return 0
