"""Every kind of bad input, per command: one ``error:`` line naming the problem, exit code 2,
no traceback, nothing written (no run directory, no file touched under the test folder).

Each row is (command line, a fragment of the expected message, how to break the dataset
folder). ``{ds}`` is a copy of a healthy folder dataset (``datahelpers.write_folder``) after the
row's breakage, ``{tmp}`` the test folder, ``{file}`` an existing file, ``{full}`` a folder
that holds something else, ``{gt}`` / ``{pred}`` a ground truth / prediction file (and
broken ones).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from datahelpers import FOLDER_TOML  # tests/cli/conftest.py puts tests/data on the path
from typer.testing import CliRunner

from tal_bench.cli import app

runner = CliRunner()
Break = Callable[[Path], None] | None


# ---------------------------------------------------------------- breakages of the folder


def _npy(name: str, arr: np.ndarray) -> Break:
    return lambda ds: np.save(ds / "feats" / f"{name}.npy", arr)


def _bytes(name: str, data: bytes) -> Break:
    return lambda ds: (ds / "feats" / f"{name}.npy").write_bytes(data)


def _truncate(name: str) -> Break:
    def go(ds: Path) -> None:
        path = ds / "feats" / f"{name}.npy"
        path.write_bytes(path.read_bytes()[:150])  # header intact, data cut

    return go


def _nan(name: str) -> Break:
    def go(ds: Path) -> None:
        arr = np.load(ds / "feats" / f"{name}.npy")
        arr[5, 2] = np.nan
        np.save(ds / "feats" / f"{name}.npy", arr)

    return go


def _annotation(edit: Callable[[dict], None]) -> Break:
    def go(ds: Path) -> None:
        path = ds / "annotations" / "anno.json"
        data = json.loads(path.read_text())
        edit(data)
        path.write_text(json.dumps(data))

    return go


def _reverse(data: dict) -> None:
    data["database"]["v1"]["annotations"][0]["segment"] = [2.5, 1.0]


def _frames(data: dict) -> None:  # segments written in frames (x 8)
    for entry in data["database"].values():
        for ann in entry["annotations"]:
            ann["segment"] = [8 * x + 100 for x in ann["segment"]]


def _toml(text: str) -> Break:
    return lambda ds: (ds / "dataset.toml").write_text(text)


def _remove(rel: str) -> Break:
    return lambda ds: (ds / rel).unlink()


def _as_pt(broken: str) -> Break:
    """Every feature file as a .pt tensor file, ``broken`` one not a tensor file at all."""

    def go(ds: Path) -> None:
        for path in sorted((ds / "feats").glob("*.npy")):
            torch.save(torch.from_numpy(np.load(path)), path.with_suffix(".pt"))
            path.unlink()
        (ds / "feats" / f"{broken}.pt").write_bytes(b"PK\x03\x04 not a zip")

    return go


def _as_h5(ds: Path) -> None:
    shutil.rmtree(ds / "feats")
    (ds / "feats.h5").write_bytes(b"\x89HDF\r\n cut short")
    (ds / "dataset.toml").write_text(
        'fps = 8.0\nfeat_stride = 1\nclip_len = 1\nfeatures = "feats.h5"\n'
    )


def _nothing(ds: Path) -> None:
    shutil.rmtree(ds / "feats")
    (ds / "feats").mkdir()


@dataclass(frozen=True)
class Case:
    argv: str  # placeholders: see the module docstring
    message: str  # a fragment of the one error line
    breakage: Break = None


TRAIN = "train --model dummy --dataset {ds} --no-progress"
GRID = "data-scaling --model dummy --dataset {ds} --fractions 50,100 --slices 1"
RATIO = "sampling-ratio --model etad --dataset {ds} --ratios 0.06,1.0 --seeds 1"

CASES: dict[str, Case] = {
    # train: options and ranges
    "train/model": Case("train --model nosuch --dataset {ds}", "unknown model 'nosuch'"),
    "train/preset": Case(TRAIN + " --preset nosuch", "unknown preset 'nosuch'"),
    "train/dataset-name": Case("train --model dummy --dataset thumos15", "unknown dataset"),
    "train/fraction-0": Case(TRAIN + " --fraction 0", "must be 1-100"),
    "train/fraction-150": Case(TRAIN + " --fraction 150", "must be 1-100"),
    "train/fraction-negative": Case(TRAIN + " --fraction -5", "must be 1-100"),
    "train/slice": Case(TRAIN + " --slice -1", "data.slice must be >= 0"),
    "train/epochs": Case(TRAIN + " --set train.epochs=0", "train.epochs"),
    "train/batch": Case(TRAIN + " --set train.batch_size=0", "train.batch_size"),
    "train/lr": Case(TRAIN + " --set train.lr=-1", "train.lr must be > 0"),
    "train/optimizer": Case(TRAIN + " --set train.optimizer=adamm", "unknown train.optimizer"),
    "train/threads": Case(TRAIN + " --threads 0", "train.threads"),
    "train/device-name": Case(TRAIN + " --device gpu", "must be cpu, cuda or cuda:N"),
    "train/set-key": Case(TRAIN + " --set train.epoch=2", "unknown config key 'train.epoch'"),
    "train/set-type": Case(TRAIN + " --set train.epochs=two", "expected an integer"),
    "train/set-syntax": Case(TRAIN + " --set train.epochs", "write KEY=VALUE"),
    "train/mode": Case(TRAIN + " --set data.mode=windows", "unknown data.mode"),
    "train/tiou": Case(TRAIN + " --set eval.tiou=0.3,x", "bad tIoU"),
    "train/subset": Case(TRAIN + " --set data.train_subset=training", "unknown subset"),
    "train/root-with-folder": Case(TRAIN + " --set data.root={tmp}", "data.root applies"),
    # train: --out
    "train/out-file": Case(TRAIN + " --out {file}", "is a file"),
    "train/out-under-file": Case(TRAIN + " --out {file}/run", "is a file"),
    "train/out-other": Case(TRAIN + " --out {full}", "not a run directory"),
    # train: the folder and its files
    "train/no-folder": Case("train --model dummy --dataset {tmp}/nosuch", "unknown dataset"),
    "train/no-annotations": Case(TRAIN, "no annotation JSON", _remove("annotations/anno.json")),
    "train/bad-json": Case(
        TRAIN, "not valid JSON", lambda ds: (ds / "annotations" / "anno.json").write_text("{")
    ),
    "train/no-features": Case(TRAIN, "holds no .npy or .pt files", _nothing),
    "train/missing-feature": Case(TRAIN, "have no feature file", _remove("feats/t2.npy")),
    "train/corrupt-npy": Case(TRAIN, "cannot read feature file", _bytes("v0", b"not numpy")),
    "train/truncated-npy": Case(TRAIN, "cannot read feature file", _truncate("t1")),
    "train/pickled-npy": Case(
        TRAIN, "cannot read feature file", _npy("v2", np.array([{"a": 1}], dtype=object))
    ),
    "train/3d-npy": Case(TRAIN, "expected a 2-D (T, C)", _npy("v3", np.zeros((4, 8, 2)))),
    "train/1d-npy": Case(TRAIN, "expected a 2-D (T, C)", _npy("v3", np.zeros(48))),
    "train/empty-npy": Case(TRAIN, "T, C >= 1", _npy("v3", np.zeros((0, 8), np.float32))),
    "train/text-npy": Case(TRAIN, "expected float", _npy("v1", np.full((48, 8), "x"))),
    "train/width": Case(TRAIN, "feature widths differ", _npy("t0", np.zeros((48, 4), np.float32))),
    "train/nan": Case(TRAIN, "NaN/inf", _nan("t1")),
    "train/corrupt-pt": Case(TRAIN, "cannot read tensor file", _as_pt("v1")),
    "train/corrupt-h5": Case(TRAIN, "cannot read feature file", _as_h5),
    "train/reversed-segment": Case(TRAIN, "ends before it starts", _annotation(_reverse)),
    "train/segments-in-frames": Case(TRAIN, "in frames instead of seconds", _annotation(_frames)),
    "train/toml-key": Case(TRAIN, "unknown config key", _toml("fps = 8.0\nstrde = 1\n")),
    "train/toml-syntax": Case(TRAIN, "is not valid TOML", _toml("fps = = 8\n")),
    "train/toml-geometry": Case(TRAIN, "does not say its features'", _toml('features = "feats"\n')),
    "train/toml-items": Case(TRAIN, "items must be", _toml("items = 'sliding'\n")),
    "train/toml-subset": Case(
        TRAIN, "is not in the annotations", _toml(FOLDER_TOML + 'train_subset = "training"\n')
    ),
    # evaluate
    "evaluate/gt-missing": Case("evaluate --gt {tmp}/no.json --pred {pred}", "does not exist"),
    "evaluate/pred-missing": Case("evaluate --gt {gt} --pred {tmp}/no.json", "does not exist"),
    "evaluate/gt-json": Case("evaluate --gt {file} --pred {pred}", "not valid JSON"),
    "evaluate/gt-layout": Case("evaluate --gt {pred} --pred {pred}", "no 'database' key"),
    "evaluate/pred-layout": Case("evaluate --gt {gt} --pred {other}", "no 'results' object"),
    "evaluate/pred-binary": Case("evaluate --gt {gt} --pred {binary}", "not UTF-8"),
    "evaluate/subset": Case("evaluate --gt {gt} --pred {pred} --subset train", "not in"),
    "evaluate/tiou": Case("evaluate --gt {gt} --pred {pred} --tiou 0.3,x", "bad tIoU"),
    "evaluate/pred-nan": Case("evaluate --gt {gt} --pred {pred_nan}", "non-finite"),
    "evaluate/pred-reversed": Case("evaluate --gt {gt} --pred {pred_rev}", "end <= start"),
    "evaluate/csv-columns": Case("evaluate --gt {gt} --pred {csv}", "lacks column"),
    "evaluate/csv-binary": Case("evaluate --gt {gt} --pred {binary_csv}", "not a readable CSV"),
    # data-scaling / sampling-ratio
    "data-scaling/fractions-range": Case(GRID.replace("50,100", "0,50"), "outside 1-100"),
    "data-scaling/fractions-text": Case(GRID.replace("50,100", "ten"), "is not a number"),
    "data-scaling/slices": Case(GRID.replace("--slices 1", "--slices 0"), "--slices must be"),
    "data-scaling/executor": Case(GRID + " --executor mpi", "unknown executor"),
    "data-scaling/jobs": Case(GRID + " --jobs 0", "jobs"),
    "data-scaling/threads": Case(GRID + " --threads 0", "--threads must be >= 1"),
    "data-scaling/axis-set": Case(GRID + " --set data.fraction=5", "conflicts with the grid"),
    "data-scaling/epochs": Case(GRID + " --set train.epochs=0", "train.epochs"),
    "data-scaling/out-file": Case(GRID + " --out {file}", "is a file"),
    "data-scaling/corrupt-npy": Case(GRID, "cannot read feature file", _bytes("t0", b"\x93NUMPY")),
    "data-scaling/reversed": Case(GRID, "ends before it starts", _annotation(_reverse)),
    "data-scaling/unknown-model": Case(GRID.replace("dummy", "dummy,etadd"), "'etadd'"),
    "data-scaling/model-twice": Case(GRID.replace("dummy", "dummy,dummy"), "given twice"),
    "data-scaling/model-empty": Case(GRID.replace("dummy", "dummy,"), "empty name"),
    "data-scaling/preset-missing": Case(
        GRID.replace("dummy", "etad,dummy") + " --preset egs",
        "unknown preset 'egs' for model 'dummy'",
    ),
    "sampling-ratio/ratios": Case(RATIO.replace("0.06,1.0", "0,0.5"), "outside (0, 1]"),
    "sampling-ratio/strategies": Case(RATIO + " --strategies grid,spiral", "unknown 'spiral'"),
    "sampling-ratio/kind": Case(RATIO + " --kind xyz", "--kind"),
    "sampling-ratio/seeds": Case(RATIO.replace("--seeds 1", "--seeds 0"), "--seeds must be"),
    "sampling-ratio/nan": Case(RATIO, "NaN/inf", _nan("v0")),
    "sampling-ratio/no-dps": Case(
        RATIO.replace("etad", "actionformer"), "'actionformer' has no detector proposal sampling"
    ),
    "sampling-ratio/no-dps-tridet": Case(RATIO.replace("etad", "tridet"), "use --model etad"),
    "sampling-ratio/no-egs": Case(
        RATIO.replace("etad", "temporalmaxer") + " --kind egs", "no encoder gradient sampling"
    ),
    # profile
    "profile/length-0": Case("profile --model dummy --length 0", "lengths must be >= 1"),
    "profile/length-negative": Case("profile --model dummy --length -5", "lengths must be >= 1"),
    "profile/lengths-text": Case("profile --model dummy --lengths 1e3", "bad --lengths"),
    "profile/lengths-range": Case("profile --model dummy --lengths 300..100", "bad length range"),
    "profile/both": Case("profile --model dummy --length 5 --lengths 9", "not both"),
    "profile/batch": Case("profile --model dummy --length 64 --batch 0", "--batch must be"),
    "profile/device": Case("profile --model dummy --length 64 --device tpu", "--device must be"),
    "profile/dataset-infer": Case("profile --model dummy --dataset {ds}", "--mode train"),
    "profile/out-file": Case("profile --model dummy --length 64 --out {file}", "is a file"),
    "profile/models-unknown": Case("profile --model all,nope --length 64", "unknown model 'nope'"),
    "profile/models-empty": Case("profile --model , --length 64", "bad --model"),
    "profile/models-train": Case(
        "profile --model etad,tadtr --mode train --out {tmp}/p", "give one --model"
    ),
    "profile/eval-every-epoch-infer": Case(
        "profile --model dummy --length 64 --eval-every-epoch", "applies to --mode train"
    ),
    "profile/train-corrupt": Case(
        "profile --model dummy --mode train --dataset {ds}",
        "cannot read feature file",
        _bytes("v1", b""),
    ),
    # fit (behaviour owned by talbench fit's own checks)
    "fit/missing": Case("fit {tmp}/nosuch", "does not exist"),
    "fit/families": Case("fit {csv_fit} --families exp,nope", "unknown curve famil"),
    # report
    "report/missing": Case("report {tmp}/nosuch --out {tmp}/rep", "does not exist"),
    "report/format": Case("report {run} --out {tmp}/rep --format gif", "unknown figure format"),
    "report/out-file": Case("report {run} --out {file}", "is a file"),
    # datasets
    "datasets-synth/out-file": Case("datasets synth --out {file}", "is a file"),
    "datasets-synth/out-full": Case("datasets synth --out {full}", "not empty"),
    "datasets-synth/classes": Case("datasets synth --out {tmp}/s --num-classes 0", "num_classes"),
    "datasets-synth/scale": Case("datasets synth --out {tmp}/s --scale 0", "scale must be > 0"),
    "datasets-synth/annotations": Case(
        "datasets synth --out {tmp}/s --annotations {tmp}/no.json", "does not exist"
    ),
    "datasets-info/name": Case("datasets info thumos15", "unknown dataset"),
    "datasets-info/root": Case("datasets info thumos14 --root {file}", "is not a folder"),
    "datasets-check/not-folder": Case("datasets check {file}", "is not a folder"),
    "datasets-check/corrupt": Case(
        "datasets check {ds}", "cannot read feature file", _truncate("v2")
    ),
    "datasets-check/reversed": Case(
        "datasets check {ds}", "ends before it starts", _annotation(_reverse)
    ),
    "datasets-check/nan": Case("datasets check {ds}", "NaN/inf", _nan("t0")),
    "datasets-check/geometry": Case("datasets check {ds}", "feat_stride", _toml("fps = 8.0\n")),
    # ls
    "ls/model": Case("ls models etadd", "did you mean 'etad'"),
    "ls/dataset": Case("ls datasets thumos", "unknown dataset"),
}


def _files(root: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
    }


def _inputs(tmp: Path, good: Path, case: Case) -> dict[str, str]:
    """Copy the healthy folder, break it, and write the other inputs the rows name."""
    ds = tmp / "ds"
    shutil.copytree(good, ds)
    if case.breakage is not None:
        case.breakage(ds)
    (tmp / "file.txt").write_text("just a file\n")
    (tmp / "full").mkdir()
    (tmp / "full" / "notes.txt").write_text("something else\n")
    (tmp / "binary.json").write_bytes(bytes(range(128, 256)))
    (tmp / "binary.csv").write_bytes(bytes(range(128, 256)))
    (tmp / "other.json").write_text(json.dumps({"version": "1", "predictions": []}))
    good = {"label": "A", "score": 0.9, "segment": [1.0, 2.0]}
    preds = {
        "pred": good,
        "pred_nan": {**good, "score": float("nan")},  # json writes NaN, Python reads it back
        "pred_rev": {**good, "segment": [2.0, 1.0]},
    }
    for name, row in preds.items():
        (tmp / f"{name}.json").write_text(json.dumps({"results": {"t0": [row]}}))
    (tmp / "pred.csv").write_text("video-id,t-start,label\nt0,1.0,A\n")
    (tmp / "fit.csv").write_text("fraction,mAP\n10,20\n50,30\n100,33\n")
    run = tmp / "run"
    run.mkdir()
    (run / "meta.json").write_text(json.dumps({"schema_version": 1, "command": "train"}))
    return {
        "ds": str(ds),
        "tmp": str(tmp),
        "file": str(tmp / "file.txt"),
        "full": str(tmp / "full"),
        "gt": str(ds / "annotations" / "anno.json"),
        "pred": str(tmp / "pred.json"),
        "pred_nan": str(tmp / "pred_nan.json"),
        "pred_rev": str(tmp / "pred_rev.json"),
        "binary": str(tmp / "binary.json"),
        "binary_csv": str(tmp / "binary.csv"),
        "other": str(tmp / "other.json"),
        "csv": str(tmp / "pred.csv"),
        "csv_fit": str(tmp / "fit.csv"),
        "run": str(run),
    }


def test_every_command_has_rows():
    commands = {name.split("/")[0].split("-")[0] for name in CASES}
    assert commands == {
        "train", "evaluate", "data", "sampling", "profile", "fit", "report", "datasets", "ls"
    }  # fmt: skip


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_one_line_exit_2_nothing_written(
    name: str, good_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    case = CASES[name]
    values = _inputs(tmp_path, good_folder, case)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)  # a default run directory would appear here
    before = _files(tmp_path)
    result = runner.invoke(app, case.argv.format(**values).split(), env={"COLUMNS": "200"})
    output = result.output
    assert result.exit_code == 2, f"{name}: exit {result.exit_code}\n{output}"
    assert "Traceback" not in output, output
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, output
    assert case.message in errors[0], errors[0]
    assert _files(tmp_path) == before, f"{name} wrote something"


@pytest.mark.skipif(torch.cuda.is_available(), reason="the machine has a CUDA device")
def test_cuda_without_a_device_is_refused_before_writing(good_folder, tmp_path):
    out = tmp_path / "run"
    argv = [*TRAIN.format(ds=good_folder).split(), "--device", "cuda", "--out", str(out)]
    result = runner.invoke(app, argv)
    assert result.exit_code == 2 and "torch sees no CUDA device" in result.output
    assert not out.exists()
