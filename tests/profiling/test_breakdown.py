"""Per-module and per-op time breakdown."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tal_bench.profiling import breakdown as bd


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 8))
        self.head = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.cumsum(self.body(x), dim=0))


def test_module_times_nest_and_cover_the_call() -> None:
    net, x = _Net(), torch.randn(256, 64)
    result = bd.module_times(net, lambda: net(x), max_depth=2)
    mods = result["modules"]
    assert {"body", "body.0", "body.2", "head"} <= set(mods)
    assert mods["body"]["calls"] == 1
    assert mods["body"]["ms"] >= mods["body.0"]["ms"]  # a parent holds its children
    outer = mods["body"]["ms"] + mods["head"]["ms"]
    assert result["unattributed_ms"] == pytest.approx(result["total_ms"] - outer)
    assert result["unattributed_ms"] >= 0  # the cumsum runs outside any submodule


def test_op_categories_and_summary() -> None:
    net, x = _Net(), torch.randn(256, 64)
    ops = bd.op_times(lambda: net(x))
    assert ops["top"] and sum(ops["by_category"].values()) == pytest.approx(1.0)
    assert ops["by_category"]["gemm"] > 0
    assert bd.op_category("aten::addmm") == "gemm"
    assert bd.op_category("aten::copy_") == "movement"
    assert bd.op_category("aten::cumsum") == "other"
    line = bd.summary_line({"modules": bd.module_times(net, lambda: net(x)), "ops": ops})
    assert line.startswith("gemm ") and "modules: body" in line and "ops: " in line
