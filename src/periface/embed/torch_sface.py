"""SFace in PyTorch, rebuilt from the OpenCV Zoo int8 ONNX graph with its weights dequantised (training only).

The graph is a MobileFaceNet-like stack: (x - 127.5) / 128, then 27 Conv -> BatchNorm -> PReLU units named
``conv_1`` .. ``conv_14`` (``conv_k_dw`` depthwise, ``conv_k`` pointwise), then BatchNorm ``bn1``, a 50176 -> 128
Gemm ``pre_fc1`` and BatchNorm ``fc1``. Weights are int8 with per-block (64) scales; ``dequantised_weights`` turns
them into float32 exactly as ``DequantizeLinear`` does, so the float model matches the int8 one to ~1e-6.

    >>> from periface.embed.torch_sface import load_sface_torch          # doctest: +SKIP
    >>> net = load_sface_torch().eval()                                   # input (N, 3, 112, 112) RGB, 0..255
    >>> emb = net(torch.from_numpy(crops).permute(0, 3, 1, 2).float())    # (N, 128), not normalised

torch is imported lazily: this module is part of the training extra, never of inference.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

# The units in graph order: (name, stride, depthwise). Channels come from the weights.
UNITS: tuple[tuple[str, int, bool], ...] = (
    ("conv_1", 1, False),
    ("conv_2_dw", 1, True), ("conv_2", 1, False),
    ("conv_3_dw", 2, True), ("conv_3", 1, False),
    ("conv_4_dw", 1, True), ("conv_4", 1, False),
    ("conv_5_dw", 2, True), ("conv_5", 1, False),
    ("conv_6_dw", 1, True), ("conv_6", 1, False),
    ("conv_7_dw", 2, True), ("conv_7", 1, False),
    ("conv_8_dw", 1, True), ("conv_8", 1, False),
    ("conv_9_dw", 1, True), ("conv_9", 1, False),
    ("conv_10_dw", 1, True), ("conv_10", 1, False),
    ("conv_11_dw", 1, True), ("conv_11", 1, False),
    ("conv_12_dw", 1, True), ("conv_12", 1, False),
    ("conv_13_dw", 2, True), ("conv_13", 1, False),
    ("conv_14_dw", 1, True), ("conv_14", 1, False),
)
UNIT_EPS = 1e-3
HEAD_EPS = 2e-5


def dequantised_weights(onnx_path: Path | str) -> dict[str, np.ndarray]:
    """Every initializer of the graph as float32, int8 blocks dequantised (names without ``_quantized``)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(onnx_path))
    init = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    out: dict[str, np.ndarray] = {k: v.astype(np.float32) for k, v in init.items() if v.dtype == np.float32}
    for node in model.graph.node:
        if node.op_type == "DequantizeLinear":
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            q, scale, zero = (init[n] for n in node.input)
            out[node.output[0].removesuffix("_dequantized")] = _dequantise(q, scale, zero, attrs.get("axis", 1),
                                                                          attrs.get("block_size", 0))
        elif node.op_type == "Reshape" and node.input[0].endswith("_dequantized"):
            name = node.input[0].removesuffix("_dequantized")
            out[name] = out[name].reshape(init[node.input[1]])
    return out


def _dequantise(q: np.ndarray, scale: np.ndarray, zero: np.ndarray, axis: int, block: int) -> np.ndarray:
    q = q.astype(np.float32)
    if block and scale.ndim == q.ndim:  # blocked: scale has ceil(n / block) entries along `axis`
        n = q.shape[axis]
        scale = np.repeat(scale, block, axis=axis).take(np.arange(n), axis=axis)
        zero = np.repeat(zero, block, axis=axis).take(np.arange(n), axis=axis)
    elif scale.ndim == 1 and q.ndim > 1:  # per-axis
        shape = [1] * q.ndim
        shape[axis] = -1
        scale, zero = scale.reshape(shape), zero.reshape(shape)
    return ((q - zero.astype(np.float32)) * scale.astype(np.float32)).astype(np.float32)


def build_modules() -> Any:
    """The classes (built on first use so that importing this module needs no torch)."""
    import torch
    from torch import nn

    class Unit(nn.Sequential):
        def __init__(self, cin: int, cout: int, k: int, stride: int, groups: int) -> None:
            super().__init__(
                nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False),
                nn.BatchNorm2d(cout, eps=UNIT_EPS),
                nn.PReLU(cout),
            )

    class Head(nn.Module):
        """bn1 -> flatten -> pre_fc1 (Gemm) -> fc1 (BatchNorm1d): 1024x7x7 -> 128."""

        def __init__(self, channels: int = 1024, side: int = 7, dim: int = 128) -> None:
            super().__init__()
            self.bn1 = nn.BatchNorm2d(channels, eps=HEAD_EPS)
            self.pre_fc1 = nn.Linear(channels * side * side, dim)
            self.fc1 = nn.BatchNorm1d(dim, eps=HEAD_EPS)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc1(self.pre_fc1(torch.flatten(self.bn1(x), 1)))

    class SFaceTorch(nn.Module):
        """``forward(x)``: (N, 3, 112, 112) RGB 0..255 -> (N, 128). ``trunk(x, upto)`` stops after a unit."""

        def __init__(self, shapes: dict[str, tuple[int, ...]]) -> None:
            super().__init__()
            self.units = nn.ModuleDict()
            for name, stride, dw in UNITS:
                cout, cin_g, k, _ = shapes[f"{name}_conv2d_weight"]
                groups = cout if dw else 1
                self.units[name] = Unit(cin_g * groups, cout, k, stride, groups)
            self.head = Head()

        def trunk(self, x: torch.Tensor, upto: str | None = None) -> torch.Tensor:
            x = (x - 127.5) * 0.0078125
            for name, unit in self.units.items():
                x = unit(x)
                if name == upto:
                    break
            return x

        def tail(self, x: torch.Tensor, start_after: str) -> torch.Tensor:
            """The units after ``start_after``, then the head."""
            names = list(self.units)
            for name in names[names.index(start_after) + 1:]:
                x = self.units[name](x)
            return self.head(x)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.trunk(x))

    return SFaceTorch


def load_sface_torch(onnx_path: Path | str | None = None) -> Any:
    """The SFace network as a ``torch.nn.Module`` with the ONNX graph's dequantised weights (default: the
    verified OpenCV Zoo file)."""
    import torch

    if onnx_path is None:
        from ..models import model_path

        onnx_path = model_path("sface")
    w = dequantised_weights(onnx_path)
    net = build_modules()({k: v.shape for k, v in w.items()})
    state: dict[str, torch.Tensor] = {}
    for name, _, _ in UNITS:
        p = f"units.{name}."
        state[p + "0.weight"] = torch.from_numpy(w[f"{name}_conv2d_weight"])
        state[p + "1.weight"] = torch.from_numpy(w[f"{name}_batchnorm_gamma"])
        state[p + "1.bias"] = torch.from_numpy(w[f"{name}_batchnorm_beta"])
        state[p + "1.running_mean"] = torch.from_numpy(w[f"{name}_batchnorm_moving_mean"])
        state[p + "1.running_var"] = torch.from_numpy(w[f"{name}_batchnorm_moving_var"])
        state[p + "2.weight"] = torch.from_numpy(w[f"{name}_relu_gamma"].reshape(-1))
    for bn in ("bn1", "fc1"):
        state[f"head.{bn}.weight"] = torch.from_numpy(w[f"{bn}_gamma"])
        state[f"head.{bn}.bias"] = torch.from_numpy(w[f"{bn}_beta"])
        state[f"head.{bn}.running_mean"] = torch.from_numpy(w[f"{bn}_moving_mean"])
        state[f"head.{bn}.running_var"] = torch.from_numpy(w[f"{bn}_moving_var"])
    state["head.pre_fc1.weight"] = torch.from_numpy(w["pre_fc1_weight"])
    state["head.pre_fc1.bias"] = torch.from_numpy(w["pre_fc1_bias"])
    missing, unexpected = net.load_state_dict(state, strict=False)
    missing = [m for m in missing if not m.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise RuntimeError(f"SFace port: missing {missing}, unexpected {unexpected}")
    return net
