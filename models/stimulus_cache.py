"""A stimulus set decoded once: a uint8 array (N, H, W, 3) on disk, memory-mapped by every model.

``models sweep`` runs many networks over one set. Decoding the PNGs again for each network
costs about as much as a small network's forward pass on a CPU, so the set is decoded
once into ``stimuli-<key>.npy`` and every model reads its pixels from the memory map. The
key is a SHA-256 over the manifest's (file, sha256) pairs in order, so a changed,
added or reordered stimulus gives another file; the images are checked against their
recorded sha256 before the cache is used (``read_stimulus_set``), so a cache can never
stand for pixels the set no longer has. Written to a temporary file and renamed into
place: an interrupted decode leaves no cache behind.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from models.preprocessing import load_rgb
from suite.errors import InputError

PREFIX = "stimuli-"


def set_key(stimuli: list[dict]) -> str:
    """SHA-256 (hex) over the set's (file, sha256) pairs in manifest order."""
    digest = hashlib.sha256()
    for s in stimuli:
        digest.update(f"{s['file']}\t{s['sha256'].strip().lower()}\n".encode())
    return digest.hexdigest()


def cache_path(cache_dir: str | Path, key: str) -> Path:
    return Path(cache_dir) / f"{PREFIX}{key[:24]}.npy"


def _decode_all(stimuli: list[dict], workers: int) -> list[np.ndarray]:
    with ThreadPoolExecutor(max_workers=workers) as pool:   # Pillow releases the GIL
        return list(pool.map(lambda s: load_rgb(s["path"]), stimuli))


def build_cache(stimuli: list[dict], path: Path, workers: int = 2, progress: bool = True) -> Path:
    """Decode every stimulus into ``path`` (.npy, uint8, N × H × W × 3), atomically."""
    from tqdm import tqdm

    first = load_rgb(stimuli[0]["path"])
    shape = (len(stimuli), *first.shape)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
        chunk = 64
        with tqdm(total=len(stimuli), desc="decoding the set (once)", unit="img",
                  disable=not progress) as bar:
            for i in range(0, len(stimuli), chunk):
                part = stimuli[i:i + chunk]
                for k, img in enumerate(_decode_all(part, workers)):
                    if img.shape != first.shape:
                        raise InputError(
                            f"{part[k]['path']}: {img.shape[1]}×{img.shape[0]} px, but "
                            f"{stimuli[0]['path'].name} is {first.shape[1]}×{first.shape[0]}; "
                            "a sweep needs every stimulus of a set at one size (the suite's "
                            "sets are 256×256) — rebuild the set")
                    arr[i + k] = img
                bar.update(len(part))
        arr.flush()
        del arr
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def open_cache(path: Path, n: int) -> np.ndarray | None:
    """The cached array, memory-mapped read-only, or None when absent or not (n, H, W, 3) uint8."""
    if not path.is_file():
        return None
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError):
        return None
    if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[0] != n or arr.shape[-1] != 3:
        return None
    return arr


def decoded_set(stimuli: list[dict], cache_dir: str | Path, build: bool = True,
                progress: bool = True) -> tuple[np.ndarray, Path, bool]:
    """(memory-mapped images, cache file, built now?) for verified ``stimuli``.

    ``build=False`` only opens an existing cache (a sharded sweep's other ranks, after
    rank 0 built it) and raises if there is none.
    """
    if not stimuli:
        raise InputError("the stimulus set is empty; nothing to sweep")
    path = cache_path(cache_dir, set_key(stimuli))
    arr = open_cache(path, len(stimuli))
    built = False
    if arr is None:
        if not build:
            raise InputError(f"{path}: the decoded set is missing (rank 0 should have written it)")
        build_cache(stimuli, path, progress=progress)
        arr, built = open_cache(path, len(stimuli)), True
    return arr, path, built
