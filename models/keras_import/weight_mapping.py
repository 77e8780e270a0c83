"""Keras → PyTorch weight layouts, and a collector that reports every mismatch at once."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from models.keras_import.h5file import KerasFile
from suite.errors import InputError


def conv_kernel(kernel: np.ndarray) -> np.ndarray:
    """Keras Conv2D kernel (kh, kw, in, out) → PyTorch (out, in, kh, kw)."""
    return np.ascontiguousarray(kernel.transpose(3, 2, 0, 1))


def depthwise_kernel(kernel: np.ndarray) -> np.ndarray:
    """Keras DepthwiseConv2D kernel (kh, kw, in, multiplier) → PyTorch
    (in·multiplier, 1, kh, kw)."""
    kh, kw, cin, mult = kernel.shape
    # Keras orders the outputs channel-major (c0m0, c0m1, …), as PyTorch groups=in does.
    return np.ascontiguousarray(kernel.reshape(kh, kw, cin * mult).transpose(2, 0, 1)[:, None])


def dense_kernel(kernel: np.ndarray) -> np.ndarray:
    """Keras Dense kernel (in, out) → PyTorch Linear weight (out, in)."""
    return np.ascontiguousarray(kernel.T)


class WeightMap:
    """Builds a PyTorch state dict from a KerasFile, noting what is missing, misshapen or left
    over."""

    def __init__(self, keras: KerasFile, arch: str,
                 hint: Callable[[KerasFile, str], str] | None = None):
        self.keras = keras
        self.arch = arch
        #: Adds to a mismatch error what the file looks like instead (architectures.guess_hint).
        self.hint = hint
        self.state: dict[str, torch.Tensor] = {}
        self.missing: list[str] = []
        self.used: set[str] = set()

    def get(self, layer: str, variable: str) -> np.ndarray | None:
        """The array of ``layer/variable`` (matched on the variable's trailing path), or None if
        absent."""
        variables = self.keras.weights.get(layer)
        if variables is None:
            self.missing.append(f"layer {layer}")
            return None
        hits = [k for k in variables if k == variable or k.endswith("/" + variable)]
        if len(hits) != 1:
            self.missing.append(f"{layer}/{variable}" + (" (ambiguous)" if hits else ""))
            return None
        self.used.add(layer)
        return variables[hits[0]]

    def put(self, key: str, value: np.ndarray | None) -> None:
        """Store one PyTorch tensor (skipped when its Keras source was missing)."""
        if value is not None:
            self.state[key] = torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32))

    def conv(self, layer: str, prefix: str, bias: bool) -> None:
        """Conv2D → ``prefix.weight`` (and ``prefix.bias``)."""
        kernel = self.get(layer, "kernel")
        self.put(f"{prefix}.weight", None if kernel is None else conv_kernel(kernel))
        if bias:
            self.put(f"{prefix}.bias", self.get(layer, "bias"))

    def depthwise(self, layer: str, prefix: str) -> None:
        """DepthwiseConv2D without bias → ``prefix.weight``."""
        kernel = self.get(layer, "depthwise_kernel")
        self.put(f"{prefix}.weight", None if kernel is None else depthwise_kernel(kernel))

    def dense(self, layer: str, prefix: str, inner: str = "") -> None:
        """Dense (or a Dense nested at ``inner`` inside ``layer``) → ``prefix.weight``/``.bias``."""
        at = f"{inner}/" if inner else ""
        kernel = self.get(layer, f"{at}kernel")
        self.put(f"{prefix}.weight", None if kernel is None else dense_kernel(kernel))
        self.put(f"{prefix}.bias", self.get(layer, f"{at}bias"))

    def batch_norm(self, layer: str, prefix: str) -> None:
        """BatchNormalization (gamma, beta, moving mean/variance) → a BatchNorm2d's four tensors."""
        for keras_name, torch_name in (("gamma", "weight"), ("beta", "bias"),
                                       ("moving_mean", "running_mean"),
                                       ("moving_variance", "running_var")):
            self.put(f"{prefix}.{torch_name}", self.get(layer, keras_name))

    def layer_norm(self, layer: str, prefix: str, inner: str = "") -> None:
        """LayerNormalization (gamma, beta; nested at ``inner``) → ``prefix.weight``/``.bias``."""
        at = f"{inner}/" if inner else ""
        self.put(f"{prefix}.weight", self.get(layer, f"{at}gamma"))
        self.put(f"{prefix}.bias", self.get(layer, f"{at}beta"))

    def check_epsilon(self, layer: str, expected: float) -> None:
        """Whole-model files state each normalization's epsilon; it must be the one the module
        uses."""
        eps = self.keras.layer_config(layer).get("epsilon")
        if eps is not None and not np.isclose(eps, expected, rtol=1e-6, atol=0):
            self.missing.append(f"{layer} has epsilon {eps}, "
                                f"the {self.arch} module uses {expected}")

    def finish(self, module: torch.nn.Module) -> dict[str, torch.Tensor]:
        """The complete state dict for ``module``, or an InputError listing every mismatch."""
        problems = list(self.missing)
        target = {k: v for k, v in module.state_dict().items()
                  if not k.endswith("num_batches_tracked")}
        for key, value in self.state.items():
            if key in target and tuple(value.shape) != tuple(target[key].shape):
                problems.append(f"{key}: file gives shape {tuple(value.shape)}, "
                                f"{self.arch} needs {tuple(target[key].shape)}")
        unused = sorted(set(self.keras.weights) - self.used)
        if unused:
            problems.append(f"{len(unused)} layer(s) in the file that {self.arch} has no place "
                            f"for: {_listing(unused)}")
        absent = sorted(set(target) - set(self.state))
        if absent and not problems:  # a mapping gap of our own, not the user's file
            problems.append(f"no source for {_listing(absent)}")
        if problems:
            raise InputError(f"{self.keras.path} does not match the Keras {self.arch} "
                             f"({len(problems)} problem(s)): {_listing(problems, 12)}"
                             f"{self.hint(self.keras, self.arch) if self.hint else ''}")
        for key in module.state_dict():
            if key.endswith("num_batches_tracked"):  # unused in eval mode; Keras has no counterpart
                self.state[key] = torch.zeros((), dtype=torch.long)
        return self.state


def _listing(items: list[str], limit: int = 8) -> str:
    shown = "; ".join(items[:limit])
    return shown + (f"; … and {len(items) - limit} more" if len(items) > limit else "")
