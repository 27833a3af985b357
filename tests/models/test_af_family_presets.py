"""The `paper` presets are the official THUMOS-14 I3D configs of the three repositories
(configs/thumos_i3d.yaml of actionformer_release and TriDet, temporalmaxer_thumos_i3d.yaml of
TemporalMaxer, over their libs/core/config.py defaults)."""

from __future__ import annotations

import pytest

from tal_bench.pipelines.resolve import resolve_run_config

# (total epochs incl. warm-up, warm-up epochs, weight decay, detections per video)
OFFICIAL = {
    "actionformer": (35, 5, 0.05, 200),
    "tridet": (40, 20, 0.025, 2000),
    "temporalmaxer": (65, 5, 0.05, 200),
}


@pytest.mark.parametrize("name", sorted(OFFICIAL))
def test_paper_preset_is_the_official_recipe(name):
    cfg = resolve_run_config(name, "paper")
    epochs, warmup, wd, max_seg = OFFICIAL[name]
    t = cfg.train
    assert (t.epochs, t.warmup_epochs, t.weight_decay) == (epochs, warmup, wd)
    assert (t.optimizer, t.lr, t.batch_size, t.schedule) == ("adamw", 1e-4, 2, "cosine")
    assert t.lr_min == 1e-8 and t.clip_grad_norm == 1.0
    assert t.ema and t.ema_decay == 0.999
    # whole videos: the detector's native mode on a THUMOS-like dataset
    assert (cfg.data.mode, cfg.data.max_len, cfg.data.downsample) == ("full", 2304, 1)
    assert cfg.eval.dedup  # the official evaluator removes duplicate ground truth
    m = cfg.model
    assert (m.max_seq_len, m.embd_dim, m.head_dim, m.head_num_layers) == (2304, 512, 512, 3)
    assert m.regression_range[0] == (0.0, 4.0) and m.regression_range[-1] == (64.0, 10000.0)
    assert (m.center_sample_radius, m.init_loss_norm, m.cls_prior_prob) == (1.5, 100.0, 0.01)
    assert (m.pre_nms_thresh, m.pre_nms_topk, m.duration_thresh) == (0.001, 2000, 0.05)
    assert (m.nms_sigma, m.min_score, m.max_seg_num) == (0.5, 0.001, max_seg)
    assert m.multiclass_nms and m.voting_thresh == 0.7
    assert m.max_buffer_len_factor * m.max_seq_len >= 30528  # the study's L = 30000 fits


def test_detector_specific_official_values():
    af = resolve_run_config("actionformer", "paper").model
    assert (af.backbone_arch, af.n_head, af.n_mha_win_size, af.droppath) == ((2, 2, 5), 4, 19, 0.1)
    td = resolve_run_config("tridet", "paper").model
    assert (td.sgp_mlp_dim, td.n_sgp_win_size, td.k, td.init_conv_vars) == (768, 1, 5.0, 0.0)
    assert (td.num_bins, td.iou_weight_power, td.input_noise) == (16, 0.2, 0.0005)
    tm = resolve_run_config("temporalmaxer", "paper").model
    assert (tm.backbone_arch, tm.neck_gn_groups) == ((2, 5), 4)
    assert (tm.assign_cls_weight, tm.assign_iou_weight) == (1.0, 2.0)
