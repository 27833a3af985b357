"""ETAD trained end to end from frames: the two EGS variants through the detector's loss, the
encoder's pretraining cache, its parameter group, and one run of the train pipeline."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from tal_bench.errors import TalBenchError
from tal_bench.models.encoders.pretrain import (
    PretrainConfig,
    ensure_pretrained,
    load_weights,
    snippet_targets,
)
from tal_bench.models.encoders.resnet import EncoderConfig, VideoEncoder
from tal_bench.models.etad import Etad, EtadConfig

pytestmark = pytest.mark.usefixtures("one_thread")
TINY_ENC = EncoderConfig(kind="tsm", depth=10, width=8, stem_stride=2, frozen_stages=1,
                         pretrained="none")  # fmt: skip
SMALL = dict(hidden_dim=32, roi_dim=16, ext_dim=32, fc_dim=16, roi_size=4, max_duration=8,
             gn_groups=8, encoder=TINY_ENC)  # fmt: skip


def _items(n_items: int = 2, window: int = 16) -> list[dict]:
    gen = torch.Generator().manual_seed(0)
    return [
        {
            "video_id": f"v{i}", "window_start": 0, "duration_s": float(window),
            "frames": torch.randint(0, 256, (window, 3, 2, 16, 16), generator=gen,
                                    dtype=torch.uint8),
            "feats": torch.zeros(0, window), "mask": torch.ones(window, dtype=torch.bool),
            "segments": torch.tensor([[2.0, 6.0], [9.0, 13.0]]), "labels": torch.zeros(2).long(),
            "t0_s": 0.0, "step_s": 1.0,
        }
        for i in range(n_items)
    ]  # fmt: skip


def _encoder_grads(variant: str) -> tuple[list[torch.Tensor], float]:
    torch.manual_seed(0)
    model = Etad(EtadConfig(**SMALL, egs_ratio=0.25, egs_variant=variant, egs_chunk=4), 0)
    model.train()
    model.encoder.generator = torch.Generator().manual_seed(3)
    torch.manual_seed(1)  # DPS and the loss's sampling draw from the global RNG
    loss = model.training_step(_items())["loss"]
    loss.backward()
    assert int(model.encoder.last_grad_snippets) == 8  # 4 of 16 per item, either way
    return [p.grad for p in model.encoder.trainable()], float(loss.detach())


def test_chunked_reforward_gives_the_single_pass_update_through_etad() -> None:
    single, loss_single = _encoder_grads("single")
    chunked, loss_chunked = _encoder_grads("chunked")
    assert loss_single == pytest.approx(loss_chunked, rel=1e-6)
    assert single and all(g is not None and g.abs().sum() > 0 for g in single)
    for a, b in zip(single, chunked, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-7)


def test_param_groups_split_encoder_and_detector() -> None:
    model = Etad(EtadConfig(**SMALL, egs_ratio=0.1), 0)
    det, enc_group = model.optimizer_groups()
    assert enc_group["name"] == "encoder" and "name" not in det
    enc = {id(p) for p in model.encoder.encoder.parameters() if p.requires_grad}
    assert {id(p) for p in enc_group["params"]} == enc and enc
    assert not enc & {id(p) for p in det["params"]}
    n_all = sum(p.requires_grad for p in model.parameters())
    assert len(enc_group["params"]) + len(det["params"]) == n_all
    frozen = Etad(EtadConfig(**SMALL, egs_ratio=0.0), 0)
    assert frozen.optimizer_groups()[1]["params"] == []  # ratio 0: the encoder is frozen


def test_config_errors_are_one_line() -> None:
    with pytest.raises(TalBenchError, match="randomly only"):
        EtadConfig(encoder=TINY_ENC, egs_variant="chunked", egs_strategy="grid")
    with pytest.raises(TalBenchError, match=r"egs_ratio must be in \[0, 1\]"):
        EtadConfig(egs_ratio=1.5)
    with pytest.raises(TalBenchError, match="encoder.kind"):
        EtadConfig(encoder=replace(TINY_ENC, kind="vit"))
    with pytest.raises(TalBenchError, match="gives frames"):
        Etad(EtadConfig(), 0)  # a frames dataset (input_dim 0) without an encoder


@pytest.fixture(scope="module")
def tiny_frames(tmp_path_factory: pytest.TempPathFactory):
    cache = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TALBENCH_CACHE", str(cache))
        from tal_bench.data import create_dataset

        yield create_dataset("synthetic-thumos14-frames-tiny"), cache


def test_snippet_targets_follow_the_annotations(tiny_frames) -> None:
    ds, _ = tiny_frames
    vid = ds.video_ids("val")[0]
    rec = ds.annotations.videos[vid]
    targets = snippet_targets(ds, vid)  # (N, K)
    s, e = rec.segments_s[0]
    k = ds.classes.index(rec.labels[0])
    centres = (np.arange(len(targets)) * 32 + 16) / 30.0  # snippet centres in seconds
    inside = (centres >= s) & (centres <= e)
    assert targets[inside, k].min() == 1.0
    covered = np.zeros(len(targets), dtype=bool)
    for (a, b), label in zip(rec.segments_s, rec.labels, strict=True):
        covered |= (centres >= a) & (centres <= b) & (label == rec.labels[0])
    assert np.array_equal(targets[:, k] == 1.0, covered)


def test_pretraining_is_cached_and_loads(tiny_frames, monkeypatch: pytest.MonkeyPatch) -> None:
    ds, cache = tiny_frames
    monkeypatch.setenv("TALBENCH_CACHE", str(cache))
    enc_cfg, pre = replace(TINY_ENC, pretrained="auto"), PretrainConfig(epochs=1)
    path = ensure_pretrained(enc_cfg, ds, "val", pre)
    mtime = path.stat().st_mtime_ns
    assert ensure_pretrained(enc_cfg, ds, "val", pre) == path  # no second training
    assert path.stat().st_mtime_ns == mtime
    encoder = VideoEncoder(enc_cfg)
    load_weights(encoder, path)
    saved = torch.load(path, map_location="cpu", weights_only=True)
    assert all(torch.equal(v, encoder.state_dict()[k]) for k, v in saved.items())
    with pytest.raises(TalBenchError, match="cannot load encoder weights"):
        load_weights(VideoEncoder(replace(enc_cfg, width=16)), path)


def test_egs_training_runs_through_the_pipeline(tiny_frames, monkeypatch) -> None:
    from tal_bench.pipelines.resolve import resolve_run_config
    from tal_bench.pipelines.train import train_and_evaluate

    _, cache = tiny_frames
    monkeypatch.setenv("TALBENCH_CACHE", str(cache))
    cfg = resolve_run_config("etad", "egs", [
        "data.dataset=synthetic-thumos14-frames-tiny", "train.epochs=1", "train.threads=1",
        "model.encoder.width=8", "model.egs_ratio=0.3", "model.egs_variant=chunked",
    ])  # fmt: skip
    summary = train_and_evaluate(cfg, progress=False)
    assert summary["step_mem_kind"] == "cpu_tensor_peak" and summary["step_mem_mib"] > 0
    assert summary["train_cpu_s"] > 0
    assert 0.0 <= summary["map_avg_pct"] <= 100.0 and summary["num_test_videos"] == 13
    assert list(Path(cache, "encoders").glob("tsm-*.pt"))  # pretrained on first use


def test_profile_refuses_encoder_models() -> None:
    from tal_bench.pipelines.profile import ProfileOptions, build_model
    from tal_bench.pipelines.resolve import resolve_run_config

    with pytest.raises(TalBenchError, match="bench_egs"):
        build_model(ProfileOptions(), resolve_run_config("etad", "egs"))
