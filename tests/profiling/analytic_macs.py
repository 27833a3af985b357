"""Closed-form MAC counts, per layer and for ETAD, TadTR and BMN: the tests check the counters
against them.

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


def deform_attn_macs(queries: int, dim: int, heads: int, points: int, values: int) -> int:
    """One temporal deformable attention: value projection over the ``values`` steps; offsets,
    weights and output projection per query; the sampler (``grid_sample``, 4 weighted taps per
    sampled value) and the weighted sum over the points (1 per sampled value)."""
    sampled = queries * heads * points * (dim // heads)  # values read, all heads
    return (
        linear_macs(dim, dim, values)  # value_proj
        + linear_macs(dim, 2 * heads * points, queries)  # sampling_offsets + attention_weights
        + linear_macs(dim, dim, queries)  # output_proj
        + 4 * sampled  # interpolation taps
        + sampled  # attention-weighted sum
    )


def tadtr_macs(cfg: Any, input_dim: int, length: int, num_classes: int) -> dict[str, int]:
    """MACs of TadTR's network (``Tadtr.forward_dense``) on one item of ``length`` steps.

    Follows ``tal_bench.models.tadtr``: the segment MLP runs ``2L - 1`` times (once per layer in
    the head, once per layer but the last to refine the next reference); the RoI-align of the
    actionness head is interpolation by ``embedding_bag`` and counts zero (listed among the
    counters' zero ops).

    Args:
        cfg: a ``TadtrConfig``.
        input_dim: C_in.
        length: T, steps of the item.
        num_classes: K.

    Returns:
        ``{"input_proj", "encoder", "decoder", "heads", "actionness", "total"}``.
    """
    d, f, q, h = cfg.hidden_dim, cfg.ffn_dim, cfg.num_queries, cfg.heads
    layers = cfg.dec_layers
    input_proj = conv1d_macs(input_dim, d, 1, length)
    ffn = linear_macs(d, f) + linear_macs(f, d)  # per row
    encoder = cfg.enc_layers * (
        deform_attn_macs(length, d, h, cfg.enc_points, length) + length * ffn
    )
    self_attn = 4 * linear_macs(d, d, q) + q * q * 2 * d  # in/out projections, QK^T and PV
    decoder = layers * (deform_attn_macs(q, d, h, cfg.dec_points, length) + self_attn + q * ffn)
    seg_mlp = linear_macs(d, d, q) * 2 + linear_macs(d, 2, q)
    heads = (
        linear_macs(d, 1, q)  # reference points
        + (2 * layers - 1) * seg_mlp
        + layers * linear_macs(d, num_classes, q)
    )
    actionness = 0
    if cfg.actionness:
        actionness = (
            linear_macs(cfg.roi_bins * d, d, q) + linear_macs(d, d, q) + linear_macs(d, 1, q)
        )
    total = input_proj + encoder + decoder + heads + actionness
    return {
        "input_proj": input_proj,
        "encoder": encoder,
        "decoder": decoder,
        "heads": heads,
        "actionness": actionness,
        "total": total,
    }


def conv2d_macs(c_in: int, c_out: int, kernel_cells: int, cells_out: int) -> int:
    """``Conv2d``: every output cell sums ``c_in * kernel_cells`` products per output channel."""
    return cells_out * c_out * c_in * kernel_cells


def bmn_macs(cfg: Any, input_dim: int) -> dict[str, int]:
    """MACs of BMN's network (``Bmn.forward_dense``) on one window of ``cfg.tscale`` steps.

    The boundary-matching layer is one dense matrix product with the (T, N·D·T) sampling mask,
    over every map cell, valid or not, as BMN computes it; every 2-D conv runs on all D x T
    cells.

    Args:
        cfg: a ``BmnConfig``.
        input_dim: C_in.

    Returns:
        ``{"projection", "tem", "bm_layer", "pem", "total"}``.
    """
    t, d, h, g = cfg.tscale, cfg.dscale, cfg.hidden_dim, cfg.groups
    r, cells = cfg.bm_dim, cfg.dscale * cfg.tscale
    projection = conv1d_macs(input_dim, h, 3, t, g) + conv1d_macs(h, h, 3, t, g)
    tem = 2 * (conv1d_macs(h, h, 3, t, g) + conv1d_macs(h, 1, 1, t))
    bm_layer = (
        conv1d_macs(h, r, 3, t)  # reduce conv
        + r * t * (cfg.num_samples * d * t)  # features (R, T) @ mask (T, N·D·T)
        + conv2d_macs(r, cfg.roi_dim, cfg.num_samples, cells)  # (N, 1) conv over the points
        + conv2d_macs(cfg.roi_dim, cfg.pem_dim, 1, cells)  # 1x1 conv
    )
    pem = cfg.pem_convs * conv2d_macs(cfg.pem_dim, cfg.pem_dim, 9, cells) + conv2d_macs(
        cfg.pem_dim, 2, 1, cells
    )
    total = projection + tem + bm_layer + pem
    return {"projection": projection, "tem": tem, "bm_layer": bm_layer, "pem": pem, "total": total}
