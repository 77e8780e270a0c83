"""ClickMe TFRecord shards as a torch Dataset for harmonizer training.

The codec (framing, CRC-32C, tf.train.Example) is suite/tfrecord.py and the ClickMe
record decoding (``image`` 256×256 RGB JPEG, ``heatmap`` 256×256 8-bit JPEG, ``label``
int64, the keys the authors' loader parses: serre-lab/Harmonization,
common/clickme_dataset.py) is stimuli/clickme_import.py; other keys can be given with
``stimuli.clickme_import.ClickMeKeys``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from models.human_maps import MODEL_RES, prepare_human_maps
from stimuli.clickme_import import ClickMeKeys, decode_clickme
from suite.errors import InputError
from suite.tfrecord import index_records, read_record

DEFAULT_KEYS = ClickMeKeys()


def prepare_image(image: np.ndarray, size: int = MODEL_RES) -> torch.Tensor:
    """(H, W, 3) uint8 → (3, size, size) float32 in [0, 1], bilinear resize without a crop."""
    t = torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1)[None].float() / 255.0
    return F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False)[0]


class ClickMeShards(torch.utils.data.Dataset):
    """Random-access ClickMe records over TFRecord shards: (image (3,S,S) in [0,1], map (1,S,S),
    label)."""

    def __init__(self, paths: Sequence[str | os.PathLike], keys: ClickMeKeys = DEFAULT_KEYS,
                 size: int = MODEL_RES, verify: bool = True):
        self.paths = [Path(p) for p in paths]
        if not self.paths:
            raise InputError("no ClickMe shards given; pass --clickme FILE.tfrecords …")
        for p in self.paths:
            if not p.is_file():
                raise InputError(f"{p}: ClickMe shard not found; check the path")
        self.keys, self.size, self.verify = keys, size, verify
        self.index = [(i, off, n) for i, p in enumerate(self.paths)
                      for off, n in index_records(p, verify)]
        self._handles: dict[int, object] = {}

    def __len__(self) -> int:
        return len(self.index)

    def raw(self, i: int) -> bytes:
        """The serialized Example of record ``i``, CRC checked."""
        shard, off, n = self.index[i]
        # one open handle per shard and worker process: DataLoader workers fork after __init__
        key = (os.getpid(), shard)
        if key not in self._handles:
            self._handles[key] = open(self.paths[shard], "rb")
        return read_record(self._handles[key], self.paths[shard], off, n, self.verify)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        shard, off, _ = self.index[i]
        image, heat, label = decode_clickme(self.raw(i), self.keys,
                                            f"{self.paths[shard]} (record at byte {off - 12})")
        return prepare_image(image, self.size), prepare_human_maps(heat, self.size)[0], label

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_handles"] = {}
        return state
