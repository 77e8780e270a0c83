"""Training data for the harmonizer: images with maps, images without, and the step-indexed order.

Every dataset yields (image (3, S, S) float32 in [0, 1], map (1, S, S), label, token): token 1
with a human map, 0 without (map all zero). Images are resized whole to S (bilinear, no crop,
as the authors' ClickMe loader); maps are prepared as ClickMe maps (models.human_maps).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from models.human_maps import prepare_human_maps
from suite.errors import InputError


def load_resized(path, size: int) -> torch.Tensor:
    """A photograph → (3, size, size) float32 in [0, 1], bilinear, no crop (the ClickMe framing)."""
    from stimuli.io import load_image

    t = torch.from_numpy(np.array(load_image(path))).permute(2, 0, 1)[None].float() / 255.0
    return F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False)[0]


class MappedImages(torch.utils.data.Dataset):
    """Build-manifest items → (image (3,S,S), blurred map (1,S,S), label, token 1)."""

    def __init__(self, items, size: int, labels: str = "class_index"):
        self.items, self.size, self.labels = list(items), size, labels
        for it in self.items:
            if labels == "class_index" and it.class_index is None:
                raise InputError(f"{it.source}: image {it.image_id!r} has no class_index; fill the "
                                 "column or train on --labels category")

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i):
        from stimuli.io import load_map

        it = self.items[i]
        label = it.class_index if self.labels == "class_index" else int(it.category != "animal")
        heat = prepare_human_maps(load_map(it.map), self.size)[0]
        return load_resized(it.image, self.size), heat, label, 1.0


def imagenet_wnids() -> list[str]:
    """The 1,000 ImageNet-1k synset ids (wnids) in class-index order (timm's ImageNetInfo)."""
    from timm.data import ImageNetInfo

    return list(ImageNetInfo().label_names())


def class_folder_labels(root: Path, classes: list[str]) -> dict[str, int]:
    """ImageNet class index of each class folder: a wnid (``n01440764``) or a number 0–999.

    A folder's label never depends on which other folders are present, so a subset of the
    1,000 synsets keeps ImageNet's labels; a name that is neither is refused by name.
    """
    index = {w: k for k, w in enumerate(imagenet_wnids())}
    labels, bad = {}, []
    for c in classes:
        if c.isdigit() and int(c) < len(index):
            labels[c] = int(c)
        elif c in index:
            labels[c] = index[c]
        else:
            bad.append(c)
    if bad:
        raise InputError(f"{root}: class folder(s) {', '.join(repr(b) for b in bad[:5])}"
                         f"{f' (and {len(bad) - 5} more)' if len(bad) > 5 else ''}"
                         " are not ImageNet-1k "
                         "synset ids (like n01440764) or class indices 0–999; rename them so each "
                         "folder's label is known")
    return labels


class PlainImages(torch.utils.data.Dataset):
    """An ImageFolder tree (one sub-folder per class) → (image, zero map, label, token 0).

    Sub-folders are named by ImageNet wnid (``n01440764``) or class index (``0``–``999``);
    either gives the ImageNet class index as the label.
    """

    SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")

    def __init__(self, root, size: int):
        root = Path(root)
        if not root.is_dir():
            raise InputError(f"{root}: not a folder; --images wants one sub-folder per class")
        classes = sorted(p.name for p in root.iterdir()
                         if p.is_dir() and not p.name.startswith("."))
        index = class_folder_labels(root, classes)
        self.files = [(f, index[c]) for c in classes for f in sorted((root / c).iterdir())
                      if f.suffix.lower() in self.SUFFIXES and not f.name.startswith(".")]
        if not self.files:
            raise InputError(f"{root}: no images in class sub-folders; put images in ROOT/CLASS/")
        self.size = size

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i):
        path, label = self.files[i]
        return load_resized(path, self.size), torch.zeros(1, self.size, self.size), label, 0.0


class WithToken(torch.utils.data.Dataset):
    """(image, map, label) items, e.g. ClickMe shards → (image, map, label, token 1)."""

    def __init__(self, base):
        self.base = base

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i):
        return (*self.base[i], 1.0)


class StepBatches(torch.utils.data.Sampler):
    """Index lists for steps start…stop: epoch-wise seeded permutations, each rank its slice."""

    def __init__(self, n: int, per_rank: int, start: int, stop: int, seed: int, rank: int = 0,
                 world: int = 1):
        self.n, self.k, self.start, self.stop = n, per_rank, start, stop
        self.seed, self.rank, self.world = seed, rank, world

    def __len__(self) -> int:
        return self.stop - self.start

    def __iter__(self) -> Iterator[list[int]]:
        # the data order is a function of the step alone, so a resumed run sees what it would have
        glob, perms = self.k * self.world, {}
        for step in range(self.start, self.stop):
            first = step * glob + self.rank * self.k
            out = []
            for pos in range(first, first + self.k):
                epoch, j = divmod(pos, self.n)
                if epoch not in perms:
                    g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
                    perms = {epoch: torch.randperm(self.n, generator=g).tolist(), **{
                        e: p for e, p in perms.items() if e == epoch - 1}}
                out.append(perms[epoch][j])
            yield out
