"""``talbench profile``: MACs, latency, peak memory, utilisation and roofline against input length.

Inputs follow the study (seed 004 §3.3): random features of shape ``[B, C, L]``. Each detector
runs the long input its own native way, as its preset's ``DataConfig`` says:

* ``window``: sliding windows of ``data.window`` steps at the evaluation stride
  (``data.test_window_stride``, else ``data.window_stride``), the last one right-aligned
  (``tal_bench.data.items.window_starts``), batched ``window_batch`` at a time;
* ``resize``: the whole input resampled to ``data.resize_len`` steps (one item per video);
* ``full``: one item of all L steps.

Several detectors can be profiled in one call (``--model etad,tadtr`` or ``--model all``,
:func:`parse_models`): one run record, one timeline, every row tagged by ``model``; each model is
built once (``build_s``: constructor, weight initialisation and the move to the device, the
study's "creating the model") and profiled at every length before the next is built. TadTR's
study figure (seed 004 Fig. 4) is one pass over the whole, not downsampled, input:
``--preset paper --set data.mode=full --set data.downsample=1``.

Every input length gives one row (:func:`profile_length`). The dense network and the
post-processing are timed separately when the detector exposes ``forward_dense(feats, mask)``
and ``postprocess(dense_out, mask)`` (ETAD does); otherwise
``predict`` is timed whole and the row says so. MACs count the
dense network (all windows) when split, else the whole ``predict``.

Length grids (:func:`parse_lengths`): ``30000`` (one length), ``100,1000,5000`` (as given),
``A..B`` (the 1-3 decade grid 1·10^k and 3·10^k inside [A, B], plus A and B: ``100..30000`` ->
100, 300, 1000, 3000, 10000, 30000) and ``A..B:N`` (N log-spaced integers from A to B).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import re
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from typing import Any

import torch
from torch import nn

from tal_bench.config import RunConfig, to_dict
from tal_bench.errors import TalBenchError
from tal_bench.pipelines import resolve
from tal_bench.pipelines.checks import check_device, check_out_dir, check_run
from tal_bench.pipelines.profile_runners import Runner, count_items, make_items, make_runner
from tal_bench.profiling import breakdown as bd
from tal_bench.profiling.counters import MacCount, count_params
from tal_bench.profiling.memory import PeakMemory, reset_peak_rss
from tal_bench.profiling.nvml import Nvml
from tal_bench.profiling.roofline import (
    GemmPeak,
    control_ms,
    measure_gemm_peak,
    roofline_fraction,
)
from tal_bench.profiling.samplers import UtilizationSampler
from tal_bench.profiling.timers import Timing, time_call, time_laps

log = logging.getLogger(__name__)

NUM_CLASSES = 20  # class count the detectors are built with for random inputs (THUMOS-14)
ROOFLINE_TARGET = 0.5  # below this fraction of the GEMM peak, a time breakdown is written
DRIFT_NOTE_FRAC = 0.03  # a control matmul changing more than this makes the run say so


# ---------------------------------------------------------------------------- options


def parse_lengths(text: str) -> list[int]:
    """``"30000"``, ``"100,300"``, ``"100..30000"`` or ``"100..30000:8"`` -> sorted lengths.

    Raises:
        TalBenchError: malformed text or a length < 1.
    """
    text = text.replace(" ", "")
    m = re.fullmatch(r"(\d+)\.\.(\d+)(?::(\d+))?", text)
    if m:
        lo, hi = int(m.group(1)), int(m.group(2))
        if not 1 <= lo <= hi:
            raise TalBenchError(f"bad length range {text!r}: write A..B with 1 <= A <= B")
        if m.group(3) is None:
            grid = {lo, hi}
            for k in range(int(math.log10(hi)) + 1):
                grid |= {v for v in (10**k, 3 * 10**k) if lo <= v <= hi}
            return sorted(grid)
        n = int(m.group(3))
        if n < 1:
            raise TalBenchError(f"bad length range {text!r}: N in A..B:N must be >= 1")
        if n == 1:
            return [lo]
        ratio = (hi / lo) ** (1 / (n - 1))
        return sorted({round(lo * ratio**i) for i in range(n)} | {hi})
    try:
        values = [int(v) for v in text.split(",") if v]
    except ValueError:
        raise TalBenchError(
            f"bad --lengths {text!r}: write 30000, 100,1000 or 100..30000[:N]"
        ) from None
    if not values or min(values) < 1:
        raise TalBenchError(f"bad --lengths {text!r}: lengths must be integers >= 1")
    return sorted(set(values))


def parse_models(text: str) -> list[str]:
    """``--model`` of ``talbench profile``: one name, a comma list or ``all``
    (:func:`tal_bench.pipelines.resolve.parse_models` with ``allow_all``)."""
    return resolve.parse_models(text, allow_all=True)


@dataclass
class ProfileOptions:
    """What ``talbench profile`` measures (one field per CLI option)."""

    model: str = "etad"  # one name, a comma list or "all" (parse_models)
    preset: str = "cpu"
    overrides: list[str] = field(default_factory=list)
    lengths: list[int] = field(default_factory=lambda: [30000])
    input_dim: int = 2048
    batch: int = 1
    device: str = "cpu"
    threads: int | None = None  # None = torch's current default
    mode: str = "infer"  # "infer" | "train"
    interval_s: float = 0.5  # utilisation sampling interval
    rounds: int | None = None  # None = blocked_autorange with >= min_rounds calls
    warmup: int = 1
    min_run_time_s: float = 1.0
    min_rounds: int = 5
    window_batch: int | None = None  # items per predict call; None = train.batch_size
    seed: int = 0
    fvcore: bool = True
    breakdown: str = "auto"  # "auto" (roofline < ROOFLINE_TARGET) | "always" | "never"
    isolate: bool = False  # one fresh process per length (clean peak RSS)
    eval_every_epoch: bool = True  # --mode train: evaluate after every epoch (TadTR's practice)

    def check(self) -> None:
        """Raise TalBenchError on inconsistent options."""
        if self.mode not in ("infer", "train"):
            raise TalBenchError(f"--mode must be infer or train, got {self.mode!r}")
        if not self.lengths or min(self.lengths) < 1:
            raise TalBenchError(
                f"input lengths must be >= 1 feature step, got {self.lengths}; e.g. --length 1000"
            )
        if self.breakdown not in ("auto", "always", "never"):
            raise TalBenchError(
                f"--breakdown must be auto, always or never, not {self.breakdown!r}"
            )
        counts = {"--batch": self.batch, "--input-dim": self.input_dim, "--rounds": self.rounds}
        counts |= {"--threads": self.threads, "--window-batch": self.window_batch}
        for flag, value in counts.items():
            if value is not None and value < 1:
                raise TalBenchError(f"{flag} must be >= 1, got {value}")
        if self.warmup < 0 or self.interval_s <= 0:
            raise TalBenchError("--warmup must be >= 0 and --interval > 0")
        check_device(self.device, "--device")


@dataclass
class Session:
    """What all lengths of one run share."""

    opts: ProfileOptions
    cfg: RunConfig
    threads: int
    sampler: UtilizationSampler
    nvml: Nvml
    gemm: GemmPeak | None = None
    model: nn.Module | None = None
    runner: Runner | None = None
    side: dict[str, Any] = field(default_factory=dict)  # per-length side files to write
    build_s: float | None = None  # seconds to build the model (build_model)
    tag: str = ""  # "<model> " in a run of several models: phases and side files say which

    @property
    def file_tag(self) -> str:
        return self.tag.strip() + "_" if self.tag else ""


def build_model(opts: ProfileOptions, cfg: RunConfig) -> tuple[nn.Module, float]:
    """The detector with seeded random weights, on the device, in eval mode, and the seconds
    its constructor, weight initialisation and move to the device took (a CUDA device is
    synchronised before the clock is read)."""
    from tal_bench.models import create_model

    if getattr(getattr(cfg.model, "encoder", None), "kind", "none") != "none":
        raise TalBenchError(
            "talbench profile measures detectors on feature inputs; set model.encoder.kind=none "
            "(the encoder's end-to-end step is measured by experiments/bench_egs.py)"
        )
    torch.manual_seed(opts.seed)
    start = time.perf_counter()
    model = create_model(cfg.model_name, cfg.model, opts.input_dim, NUM_CLASSES)
    model = model.to(opts.device).eval()
    if torch.device(opts.device).type == "cuda":
        torch.cuda.synchronize(opts.device)
    return model, time.perf_counter() - start


def _build(s: Session) -> None:
    """Build ``s``'s model and runner, recording the build time."""
    s.model, s.build_s = build_model(s.opts, s.cfg)
    s.runner = make_runner(s.cfg.model_name, s.model, s.opts.device)


# ---------------------------------------------------------------------------- one length


def _timing_cols(prefix: str, t: Timing | None) -> dict[str, Any]:
    if t is None:
        return {f"{prefix}_ms_median": None, f"{prefix}_ms_iqr": None}
    return {f"{prefix}_ms_median": t.stats.median, f"{prefix}_ms_iqr": t.stats.iqr}


def _time(s: Session, fn: Any) -> Timing:
    o = s.opts
    return time_call(fn, o.device, s.threads, o.rounds, o.warmup, o.min_run_time_s, o.min_rounds)


def _timings(s: Session, chunks: list) -> dict[str, Timing]:
    """``total`` (and ``stack``/``dense``/``post`` when the runner splits) over all chunks.

    Split runners are timed in one pass per round, chunk by chunk as ``predict`` runs:
    stack (+ host->device copy), dense network, post-processing; the parts add up to the
    round's total. Other models: ``predict`` per chunk under :func:`time_call`.
    """
    runner, o = s.runner, s.opts
    if not runner.split:
        fn = lambda: [runner.predict(c) for c in chunks]  # noqa: E731
        return {"total": _time(s, fn)}

    def one_round(lap: Any) -> None:
        for chunk in chunks:
            feats, mask = runner.stack(chunk)
            lap("stack")
            out = runner.dense(feats, mask)
            lap("dense")
            runner.post(out, mask)
            lap("post")

    return time_laps(
        one_round, o.device, s.threads, o.rounds, o.warmup, o.min_run_time_s, o.min_rounds
    )


def _mac_cols(primary: MacCount, cross: MacCount | None, scope: str) -> dict[str, Any]:
    return {
        "macs": primary.macs,
        "macs_fvcore": cross.macs if cross else None,
        "macs_scope": scope,
        "mac_device": primary.device,
        "mac_device_note": primary.error,
        "macs_formula_ops": primary.formula_ops,
        "zero_ops_flop_counter": primary.zero_ops,
        "zero_ops_fvcore": cross.zero_ops if cross else None,
        "macs_fvcore_error": cross.error if cross else "fvcore cross-check disabled",
    }


def profile_length(s: Session, length: int) -> dict[str, Any]:
    """Measure one input length: MACs, latency (total / dense / post), peaks, utilisation.

    Returns:
        The flat row (see results/README.md, "profile rows").
    """
    o, cfg, runner = s.opts, s.cfg, s.runner
    gen = torch.Generator().manual_seed(o.seed)
    feats = torch.randn(o.batch, o.input_dim, length, generator=gen)  # (B, C, L)
    items, per_video = make_items(feats, cfg.data)
    bs = o.window_batch or cfg.train.batch_size
    chunks = [items[i : i + bs] for i in range(0, len(items), bs)]
    primary, cross = count_items(runner, items, o.fvcore)
    phase = f"{s.tag}L={length}"
    control_before_ms = control_ms(o.device, s.threads)
    with s.sampler.phase(phase), PeakMemory(o.device, s.nvml) as pm:
        timings = _timings(s, chunks)
    control_after_ms = control_ms(o.device, s.threads)
    util = s.sampler.summary(phase)
    total, dense, post = timings["total"], timings.get("dense"), timings.get("post")
    seconds = (dense or total).stats.median / 1e3
    frac = roofline_fraction(primary.macs, seconds, s.gemm.gmacs)
    row = {
        **_row_head(s, length, "ok"),
        "input_dim": o.input_dim,
        "data_mode": cfg.data.mode,
        "num_windows": per_video,
        "num_items": len(items),
        "window_batch": bs,
        "params": count_params(s.model),
        "build_s": s.build_s,
        **_mac_cols(primary, cross, "dense" if runner.split else "predict"),
        **_timing_cols("latency", total),
        "latency_ms_cold": total.cold_ms,
        "latency_ms_mean": total.stats.mean,
        "latency_ms_min": total.stats.min,
        "rounds": total.stats.rounds,
        "calls_per_round": total.calls_per_round,
        "timer": total.method,
        "warmup": total.warmup,
        **_timing_cols("dense", dense),
        **_timing_cols("post", post),
        **_timing_cols("stack", timings.get("stack")),
        "split_note": runner.note,
        **pm.result.as_row(),
        "peak_rss_delta_mib": pm.result.peak_rss_mib - pm.result.rss_before_mib,
        **{k: v for k, v in util.items() if k != "rss_max_mib"},
        "util_interval_s": o.interval_s,
        "loadavg_1m": _loadavg(),
        "achieved_gmacs": primary.macs / seconds / 1e9 if primary.macs else None,
        "roofline_fraction": frac,
        "gemm_peak_gmacs": s.gemm.gmacs,
        "gemm_size": s.gemm.best_size,
        "control_ms_before": control_before_ms,
        "control_ms_after": control_after_ms,
        "machine_drift_frac": control_after_ms / control_before_ms - 1.0,
        "seed": o.seed,
    }
    macs_side = {"flop_counter": asdict(primary), "fvcore": cross and asdict(cross)}
    s.side[f"{s.file_tag}macs_L{length}"] = macs_side
    if o.breakdown == "always" or (o.breakdown == "auto" and (frac or 0) < ROOFLINE_TARGET):
        row.update(_breakdown(s, chunks[0], length))
    return row


def _loadavg() -> float | None:
    """1-minute system load average (other processes competing for the CPUs), if known."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def _breakdown(s: Session, chunk: list, length: int) -> dict[str, Any]:
    """Per-module and per-op time of one chunk; stored as a side file, summarised in the row."""
    runner = s.runner
    if runner.split:
        feats, mask = runner.stack(chunk)
        fn = lambda: runner.dense(feats, mask)  # noqa: E731
    else:
        fn = lambda: runner.predict(chunk)  # noqa: E731
    result = {
        "scope": "dense" if runner.split else "predict",
        "chunk_items": len(chunk),
        "modules": bd.module_times(s.model, fn, s.opts.device),
        "ops": bd.op_times(fn, s.opts.device),
    }
    name = f"{s.file_tag}breakdown_L{length}"
    s.side[name] = result
    return {"breakdown_file": f"{name}.json", "breakdown_top": bd.summary_line(result)}


def _row_head(s: Session, length: int, status: str) -> dict[str, Any]:
    return {
        "kind": "profile",
        "status": status,
        "model": s.cfg.model_name,
        "preset": s.cfg.preset,
        "mode": "infer",
        "device": s.opts.device,
        "threads": s.threads,
        "batch": s.opts.batch,
        "length": length,
    }


def _safe_length(s: Session, length: int) -> dict[str, Any]:
    """A failed length is a row with ``status="failed"`` and the error; the sweep goes on."""
    try:
        return profile_length(s, length)
    except (RuntimeError, MemoryError, ValueError, TalBenchError) as exc:
        log.warning("profile L=%d failed: %s", length, exc)
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return {**_row_head(s, length, "failed"), "error": f"{type(exc).__name__}: {msg}"[:300]}


# ---------------------------------------------------------------------------- isolation


def _child_length(
    opts: ProfileOptions, gemm: GemmPeak, length: int, tag: str = ""
) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
    """Profile one length in this (fresh) process; returns (row, side files, samples)."""
    cfg = _resolve(opts)
    threads = _set_threads(opts)
    with Nvml(_cuda_index(opts.device)) as nvml, UtilizationSampler(opts.interval_s, nvml) as smp:
        s = Session(opts, cfg, threads, smp, nvml, gemm, tag=tag)
        _build(s)
        row = _safe_length(s, length)
    row["isolated"] = True
    return row, s.side, smp.samples


def _isolated_length(s: Session, length: int) -> dict[str, Any]:
    ctx = get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        row, side, samples = pool.submit(_child_length, s.opts, s.gemm, length, s.tag).result()
    s.side.update(side)
    # several models: "<model>_timeline_L<n>.json" (listed in the rows; the report joins only
    # the unprefixed per-length timelines of a one-model run)
    name = f"{s.file_tag}timeline_L{length}"
    s.side[name] = samples
    row["timeline_file"] = f"{name}.json"
    return row


# ---------------------------------------------------------------------------- the run


def models_rows(s: Session, cfgs: dict[str, RunConfig], on_row: Any = None) -> list[dict[str, Any]]:
    """:func:`infer_rows` for each model of ``cfgs`` in turn, sharing ``s``'s sampler, GEMM
    peak and side files; each model is freed before the next is built."""
    rows: list[dict[str, Any]] = []
    tagged = len(cfgs) > 1
    for name, cfg in cfgs.items():
        opts = dataclasses.replace(s.opts, model=name)
        one = dataclasses.replace(s, opts=opts, cfg=cfg, model=None, runner=None, build_s=None,
                                  tag=f"{name} " if tagged else "")  # fmt: skip
        rows += infer_rows(one, on_row)
        s.gemm = one.gemm
    return rows


def _resolve(opts: ProfileOptions) -> RunConfig:
    extra = [f"train.device={opts.device}"]
    if opts.threads is not None:
        extra.append(f"train.threads={opts.threads}")
    return resolve.resolve_run_config(opts.model, opts.preset, [*opts.overrides, *extra])


def _set_threads(opts: ProfileOptions) -> int:
    if opts.threads is not None:
        torch.set_num_threads(opts.threads)
    return torch.get_num_threads()


def _cuda_index(device: str) -> int:
    dev = torch.device(device)
    return (dev.index or 0) if dev.type == "cuda" else 0


def infer_rows(s: Session, on_row: Any = None) -> list[dict[str, Any]]:
    """Profile every length of ``s.opts.lengths`` for ``s``'s model (:func:`profile_length`);
    ``s.gemm`` is measured first when the session has none yet."""
    o = s.opts
    if s.gemm is None:
        with s.sampler.phase("gemm peak"):
            s.gemm = measure_gemm_peak(o.device, s.threads)
    isolate = o.isolate or not reset_peak_rss()
    if not isolate:
        with s.sampler.phase(f"{s.tag}build"):
            _build(s)
    rows = []
    for length in o.lengths:
        row = _isolated_length(s, length) if isolate else _safe_length(s, length)
        rows.append(row)
        if on_row is not None:
            on_row(row)
    return rows


def drift_notices(rows: list[dict[str, Any]]) -> list[str]:
    """One line per length whose control matmul changed speed by more than DRIFT_NOTE_FRAC."""
    notes = []
    for r in rows:
        drift = r.get("machine_drift_frac")
        if drift is not None and abs(drift) > DRIFT_NOTE_FRAC:
            notes.append(
                f"L={r['length']}: the machine's own speed changed during the measurement (a "
                f"fixed matmul took {r['control_ms_before']:.2f} ms before, "
                f"{r['control_ms_after']:.2f} ms after, {100 * drift:+.0f} %); its latency is "
                "not repeatable to better than that here (a shared or throttled CPU)"
            )
    return notes


def run_profile(
    opts: ProfileOptions, out_dir: str | None = None, on_row: Any = None
) -> dict[str, Any]:
    """Run ``talbench profile``: rows into a run record, the timeline next to them.

    Args:
        opts: the options (checked here).
        out_dir: run directory (None = ``runs/profile/<stamp>_<sha>``).
        on_row: called with each row as soon as it is written.

    Returns:
        ``{"run_dir", "rows", "notices", "timeline_file"}``; each row also carries the nested
        ``zero_ops`` {"flop_counter": [...], "fvcore": [...]}.
    """
    from tal_bench.records import create_run

    opts.check()
    names = parse_models(opts.model)
    if opts.mode == "train" and len(names) > 1:
        raise TalBenchError(
            f"--mode train profiles one training run; give one --model (got {', '.join(names)})"
        )
    cfgs = {name: _resolve(dataclasses.replace(opts, model=name)) for name in names}
    cfg = cfgs[names[0]]
    notices: list[str] = []
    if opts.mode == "train":  # a real training run: its data is checked as train's
        check_run(cfg, out_dir, notices.append)
    else:
        check_out_dir(out_dir)
    threads = _set_threads(opts)
    config: dict[str, Any] = {"profile": asdict(opts), "models": names}
    if len(names) == 1:
        config["run"] = to_dict(cfg)
    else:
        config["runs"] = {name: to_dict(c) for name, c in cfgs.items()}
    run = create_run(out_dir, "profile", config, {"inputs": opts.seed, "model_init": opts.seed})
    nvml = Nvml(_cuda_index(opts.device))
    notices += [nvml.note] if nvml.note else []
    timeline = run.path / "timeline.jsonl"
    sampler = UtilizationSampler(opts.interval_s, nvml, stream_to=timeline).start()
    s = Session(opts, cfg, threads, sampler, nvml)
    status = "failed"
    try:

        def write(row: dict[str, Any]) -> None:
            run.append_row(row)
            if on_row is not None:
                on_row(row)

        if opts.mode == "train":
            from tal_bench.pipelines.profile_train import train_rows

            rows = train_rows(s, write)
        else:
            rows = models_rows(s, cfgs, write)
        status = "ok"
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        sampler.stop()
        nvml.close()
        for name, obj in s.side.items():
            run.write_json(name, obj)
        run.finish(status)
    notices += drift_notices(rows)
    for row in rows:
        row["zero_ops"] = {
            "flop_counter": row.get("zero_ops_flop_counter"),
            "fvcore": row.get("zero_ops_fvcore"),
        }
    return {
        "run_dir": str(run.path),
        "rows": rows,
        "notices": notices,
        "timeline_file": str(timeline),
    }
