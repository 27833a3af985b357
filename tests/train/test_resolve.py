"""Config resolution: dataclass defaults <- preset table <- --set overrides."""

from __future__ import annotations

import pytest

from tal_bench.config import DataConfig, EvalConfig, TrainConfig
from tal_bench.errors import TalBenchError
from tal_bench.models.dummy import DummyConfig
from tal_bench.pipelines.resolve import available_presets, resolve_run_config


def test_preset_diff_applied_over_defaults():
    cfg = resolve_run_config("dummy", "cpu")
    # presets/dummy.toml [cpu.train]: epochs 4, lr 1e-2, milestones [3], batch_size 8
    assert (cfg.train.epochs, cfg.train.lr, cfg.train.batch_size) == (4, 1e-2, 8)
    assert cfg.train.milestones == (3,)
    # everything not in the preset keeps the dataclass default, "auto" values resolved: the
    # default dataset's protocol (THUMOS-like) and the dummy detector's post-processing
    assert cfg.train.optimizer == TrainConfig().optimizer
    resolved = {"mode": "window", "train_subset": "val", "test_subset": "test"}
    assert cfg.data == DataConfig(**resolved)
    assert cfg.eval == EvalConfig(
        tiou="thumos",
        classifier="none",
        max_dets_per_video=200,
        window_merge="soft_nms",
        merge_params={"sigma": 0.3},
    )
    assert cfg.model == DummyConfig()
    assert (cfg.model_name, cfg.preset) == ("dummy", "cpu")


def test_overrides_win_and_are_typed():
    cfg = resolve_run_config(
        "dummy", "cpu", ["train.epochs=2", "train.lr=1", "model.init_width=4", "data.slice=3"]
    )
    assert cfg.train.epochs == 2
    assert cfg.train.lr == 1.0 and isinstance(cfg.train.lr, float)
    assert cfg.model.init_width == 4.0
    assert cfg.data.slice == 3
    assert cfg.train.batch_size == 8  # untouched preset value survives
    as_dict = resolve_run_config("dummy", "cpu", {"train": {"milestones": [1, 2]}})
    assert as_dict.train.milestones == (1, 2)


def test_wrong_type_is_one_line_error():
    with pytest.raises(TalBenchError, match=r"train\.epochs: expected an integer") as err:
        resolve_run_config("dummy", "cpu", ["train.epochs=many"])
    assert "\n" not in str(err.value)


def test_unknown_key_suggests():
    with pytest.raises(TalBenchError, match=r"did you mean 'epochs'"):
        resolve_run_config("dummy", "cpu", ["train.epoch=3"])
    with pytest.raises(TalBenchError, match="unknown config section"):
        resolve_run_config("dummy", "cpu", ["trian.epochs=3"])


def test_unknown_preset_lists_available():
    assert available_presets("dummy") == ["cpu", "paper"]
    with pytest.raises(TalBenchError, match="available: cpu, paper"):
        resolve_run_config("dummy", "laptop")


def test_unknown_model_did_you_mean():
    with pytest.raises(TalBenchError, match="did you mean 'dummy'"):
        resolve_run_config("dumy", "cpu")


def test_etad_paper_preset_is_the_papers_recipe():
    # ETAD paper section 4.2: AdamW, weight decay 1e-4, LR 1e-3, batch 16, 6 epochs, x0.1
    # after 5 epochs; the official code clips no gradients
    cfg = resolve_run_config("etad", "paper")
    t = cfg.train
    assert (t.optimizer, t.lr, t.weight_decay, t.batch_size, t.epochs) == (
        "adamw", 1e-3, 1e-4, 16, 6
    )  # fmt: skip
    assert (t.schedule, t.milestones, t.gamma, t.clip_grad_norm) == ("multistep", (5,), 0.1, None)
    # OpenTAD's THUMOS recipe keeps its own name: Adam 1e-4, 8 epochs, clip 1
    t = resolve_run_config("etad", "opentad").train
    assert (t.optimizer, t.lr, t.epochs, t.milestones, t.clip_grad_norm) == (
        "adam", 1e-4, 8, (5,), 1.0
    )  # fmt: skip
    # every preset of a class-agnostic detector names its video-level classifier
    from tal_bench.pipelines.resolve import preset_table

    for preset in available_presets("etad"):
        assert preset_table("etad", preset)["eval"]["classifier"] == "internal"


def test_none_in_a_preset_or_override_clears_an_optional_number():
    cfg = resolve_run_config("dummy", "cpu", {"train": {"clip_grad_norm": "none"}})
    assert cfg.train.clip_grad_norm is None
    assert (
        resolve_run_config("dummy", "cpu", ["train.clip_grad_norm=none"]).train.clip_grad_norm
        is None
    )
    with pytest.raises(TalBenchError, match="clip_grad_norm: expected a number"):
        resolve_run_config("dummy", "cpu", ["train.clip_grad_norm=off"])
