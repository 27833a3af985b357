"""data-scaling protocol options: part of the run key and the record; the default is the study's."""

from __future__ import annotations

import pytest

from tal_bench.config import RunConfig
from tal_bench.data import create_dataset
from tal_bench.errors import TalBenchError
from tal_bench.pipelines.data_scaling import Protocol, build_data_scaling
from tal_bench.pipelines.train import classifier_videos


def _spec(protocol: Protocol | None = None, model: str = "dummy"):
    return build_data_scaling(model, "10,100", 1, preset="cpu", protocol=protocol)


def test_default_protocol_sets_nothing() -> None:
    assert Protocol().overrides() == {}
    assert [c.key for c in _spec(Protocol()).cells] == [c.key for c in _spec().cells]


def test_protocol_options_change_run_keys_and_the_record() -> None:
    base = _spec()
    keys = {c.key for c in base.cells}
    for protocol in (Protocol(budget="steps"), Protocol(draw="stratified"), Protocol(nested=True)):
        spec = _spec(protocol)
        assert not keys & {c.key for c in spec.cells}, protocol
    spec = _spec(Protocol(budget="steps", draw="stratified", nested=True))
    assert spec.config["overrides"] == {
        "train": {"budget": "steps"}, "data": {"draw": "stratified", "nested": True}
    }  # fmt: skip
    assert spec.config["base"]["train"]["budget"] == "steps"
    assert (
        spec.config["base"]["data"] | {"draw": "stratified", "nested": True}
        == (spec.config["base"]["data"])
    )
    etad = build_data_scaling("etad", "100", 1, protocol=Protocol(classifier_data="all"))
    assert etad.config["base"]["eval"]["classifier_data"] == "all"


@pytest.mark.parametrize(
    ("protocol", "message"),
    [
        (Protocol(budget="iters"), "train.budget must be one of epochs, steps"),
        (Protocol(draw="balanced"), "data.draw must be one of uniform, stratified"),
        (Protocol(classifier_data="half"), "eval.classifier_data must be one of fraction, all"),
        (Protocol(classifier_data="all"), "eval.classifier_data=all trains the internal"),
    ],
)
def test_bad_protocol_fails_before_any_cell(protocol: Protocol, message: str) -> None:
    # the dummy detector is class-aware: it has no video-level classifier to feed
    with pytest.raises(TalBenchError, match=message):
        _spec(protocol)


def test_classifier_videos() -> None:
    ds = create_dataset("synthetic-thumos14")
    cfg = RunConfig()
    cfg.data.train_subset = "val"
    draw = ds.video_ids("val")[:5]
    assert classifier_videos(cfg, ds, draw) == draw
    cfg.eval.classifier_data = "all"
    assert classifier_videos(cfg, ds, draw) == ds.video_ids("val") and len(draw) < 200
