"""Closed-form MAC counts, per layer and for ETAD, to check the counters against.

Same rule as :mod:`tal_bench.profiling.counters`: one MAC per multiply-accumulate of a matrix
product; biases, norms and activations count zero.
"""

from __future__ import annotations

from typing import Any


def conv1d_macs(c_in: int, c_out: int, kernel: int, length_out: int, groups: int = 1) -> int:
    """``Conv1d``: every output element sums ``(c_in / groups) * kernel`` products."""
    return length_out * c_out * (c_in // groups) * kernel


def linear_macs(d_in: int, d_out: int, rows: int = 1) -> int:
    """``Linear`` applied to ``rows`` vectors."""
    return rows * d_in * d_out


def lstm_macs(d_in: int, hidden: int, steps: int, batch: int = 1, directions: int = 1) -> int:
    """One LSTM layer: ``T * B * D * 4H * (I + H)`` (the four gates' two matrix products)."""
    return steps * batch * directions * 4 * hidden * (d_in + hidden)


def mlp_head_macs(d_in: int, fc: int, d_out: int, rows: int = 1) -> int:
    """ETAD head: Linear(d_in->fc), two Linear(fc->fc), Linear(fc->d_out)."""
    return rows * (d_in * fc + 2 * fc * fc + fc * d_out)


def num_proposals(valid_len: int, max_duration: int) -> int:
    """Valid cells of ETAD's proposal map: ``sum_{d < min(D, L)} (L - d)``."""
    return sum(valid_len - d for d in range(min(max_duration, valid_len)))


def etad_macs(cfg: Any, input_dim: int, padded_len: int, valid_len: int) -> dict[str, int]:
    """MACs of ETAD's network on one item (all valid proposals, no sampling), per module.

    The modules follow ``tal_bench.models.etad_modules`` with ``feature_module="lstm"``. The
    RoI-align is interpolation (a weighted sum of at most 2G gathered steps per bin, done with
    ``embedding_bag``), not a matrix product, so it counts zero here as in the counters, which
    list it among their zero ops.

    Args:
        cfg: an ``EtadConfig`` (read: hidden_dim, roi_dim, ext_dim, fc_dim, groups,
            max_duration, roi_size, num_stages).
        input_dim: C_in.
        padded_len: T, the item's padded length (the window).
        valid_len: L, its valid steps (proposals live there).

    Returns:
        ``{"features", "tem", "stage_dense", "pem", "total"}`` (stage terms summed over stages).
    """
    h, r, e, f, g = cfg.hidden_dim, cfg.roi_dim, cfg.ext_dim, cfg.fc_dim, cfg.groups
    t, p, stages = padded_len, cfg.roi_size, cfg.num_stages
    features = (
        conv1d_macs(input_dim, h, 3, t, g)  # layer1
        + 2 * lstm_macs(h, h, t)  # forward and backward LSTM
        + 2 * conv1d_macs(h, h // 2, 3, t, g)  # branch_fwd, branch_bwd
        + conv1d_macs(h, h, 3, t, g)  # branch_mid
        + conv1d_macs(2 * h, h, 1, t, g)  # layer3
    )
    tem = conv1d_macs(h, h, 3, t, g) + conv1d_macs(h, 2, 1, t)
    stage_dense = stages * (conv1d_macs(h, h, 3, t, g) + conv1d_macs(h, r, 3, t))
    k = num_proposals(valid_len, cfg.max_duration)
    side = r * (p // 4)  # start / end context features
    per_proposal = (
        linear_macs(r * p, e)  # ext_fc
        + 3 * mlp_head_macs(e, f, 2)  # iou_fc, cls_se_fc, reg_cw_fc
        + 2 * (linear_macs(side, e) + mlp_head_macs(e, f, 1))  # reg_s_fc, reg_e_fc
    )
    pem = stages * k * per_proposal
    total = features + tem + stage_dense + pem
    return {
        "features": features,
        "tem": tem,
        "stage_dense": stage_dense,
        "pem": pem,
        "total": total,
    }
