"""Feature renderer of the synthetic THUMOS-like dataset (used by ``tal_bench.data.synthetic``).

One video's (T, C) features on the 30 fps / stride 4 / 16-frame-clip grid:

* every class has a main direction (shared in part with its family: confusable classes), a
  direction modulated at a class-specific rate, and onset / offset signatures that mix a
  class-specific part with a boundary direction shared by all classes (detectable boundaries);
* every video perturbs all class patterns (``video_style``); every instance varies in amplitude
  (lognormal, sd 0.3), speed (x0.8-1.25) and mixing (30 % of a random direction);
* unannotated distractors (``distractor_rate`` per instance): fragments of an own-class body
  without boundaries, false starts, and generic bursts blending two classes;
* a smooth low-rank background process plus a per-video scene offset (``background``);
* white frame noise, then the average over each 16-frame clip (weights [.5, 1, 1, 1, .5] / 4 on
  the feature grid), scaled so ``noise`` is the per-channel std after that averaging.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from tal_bench.data.features import FeatureMeta

if TYPE_CHECKING:
    from tal_bench.data.synthetic import SynthParams


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


@dataclass
class ClassBank:
    """Dataset-level patterns, one row per class: unit vectors in R^C and a modulation rate."""

    mid: np.ndarray  # (K, C) main direction during the action
    mod: np.ndarray  # (K, C) direction of the class's periodic modulation
    onset: np.ndarray  # (K, C) signature at the start boundary
    offset: np.ndarray  # (K, C) signature at the end boundary
    freq_hz: np.ndarray  # (K,) modulation cycles per second
    generic: np.ndarray  # (2, C) boundary directions shared by all classes (on, off)
    bg_basis: np.ndarray  # (R, C) the background process lives in this subspace


def make_class_bank(
    families: list[str], dim: int, class_sep: float, rng: np.random.Generator
) -> ClassBank:
    """Class patterns; classes of one family share ``1 - class_sep`` of their main direction.

    Args:
        families: family name of every class (index = class id).
        dim: feature channels C.
        class_sep: 0 = a family's classes share their main direction, 1 = unrelated.
        rng: the dataset-level generator.

    Returns:
        The ``ClassBank``.
    """
    k = len(families)
    fam_vec = {f: _unit(rng.normal(size=dim)) for f in sorted(set(families))}
    own = _unit(rng.normal(size=(k, dim)))
    shared = np.stack([fam_vec[f] for f in families])
    mid = _unit(math.sqrt(1 - class_sep) * shared + math.sqrt(class_sep) * own)
    generic = _unit(rng.normal(size=(2, dim)))
    onset = _unit(generic[0] + _unit(rng.normal(size=(k, dim))))
    offset = _unit(generic[1] + _unit(rng.normal(size=(k, dim))))
    mod = _unit(rng.normal(size=(k, dim)))
    freq = rng.uniform(0.3, 1.5, size=k)
    bg_basis = _unit(rng.normal(size=(min(8, dim), dim)))
    return ClassBank(mid, mod, onset, offset, freq, generic, bg_basis)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _add_event(
    out: np.ndarray,
    x_s: float,
    x_e: float,
    step_s: float,
    vecs: dict[str, np.ndarray],
    amp: float,
    freq_hz: float,
    rng: np.random.Generator,
) -> None:
    """Add one event's profile to ``out`` (T, C) between grid coordinates x_s and x_e.

    ``vecs`` holds the directions to draw: "mid", "mod" (modulated body), "onset", "offset";
    a missing key leaves that part out (fragments and false starts).
    """
    length = max(x_e - x_s, 0.5)
    width = max(1.0, 0.08 * length)  # boundary signature width, grid steps
    lo = max(0, int(math.floor(x_s - 4 * width)))
    hi = min(out.shape[0], int(math.ceil(x_e + 4 * width)) + 1)
    if hi <= lo:
        return
    x = np.arange(lo, hi, dtype=np.float64)  # (m,)
    body = _sigmoid((x - x_s) / 0.6) * _sigmoid((x_e - x) / 0.6)
    phase = 2 * math.pi * freq_hz * rng.uniform(0.8, 1.25) * (x - x_s) * step_s
    profile = np.zeros((len(x), out.shape[1]))
    if "mid" in vecs:
        profile += body[:, None] * vecs["mid"]
    if "mod" in vecs:
        profile += 0.6 * (body * np.sin(phase + rng.uniform(0, 2 * math.pi)))[:, None] * vecs["mod"]
    for key, centre in (("onset", x_s), ("offset", x_e)):
        if key in vecs:
            profile += 0.9 * np.exp(-0.5 * ((x - centre) / width) ** 2)[:, None] * vecs[key]
    out[lo:hi] += amp * profile


def _style(bank: ClassBank, params: SynthParams, rng: np.random.Generator) -> ClassBank:
    """This video's version of every class pattern (camera, venue, athlete...)."""

    def jitter(v: np.ndarray) -> np.ndarray:
        return _unit(v + params.video_style * _unit(rng.normal(size=v.shape)))

    return dataclasses.replace(
        bank,
        mid=jitter(bank.mid),
        mod=jitter(bank.mod),
        onset=jitter(bank.onset),
        offset=jitter(bank.offset),
    )


def _distractor(
    out: np.ndarray, bank: ClassBank, own: list[int], step_s: float, rng: np.random.Generator
) -> None:
    """One unannotated burst: a fragment of an own class, a false start, or a generic burst."""
    num = out.shape[0]
    k = own[rng.integers(len(own))] if rng.random() < 0.7 else int(rng.integers(len(bank.mid)))
    length = float(np.clip(rng.lognormal(math.log(2.5 / step_s), 0.5), 2, num / 2))
    x_s = float(rng.uniform(0, max(1.0, num - length)))
    kind = rng.random()
    if kind < 0.4:  # fragment: the body of an action without its boundaries
        vecs, length = {"mid": bank.mid[k], "mod": bank.mod[k]}, 0.5 * length
    elif kind < 0.7:  # false start: onset signature and a short body that fades
        vecs, length = {"onset": bank.onset[k], "mid": bank.mid[k]}, 0.3 * length
    else:  # generic burst: a blend of two classes with the shared boundary signatures
        j = int(rng.integers(len(bank.mid)))
        blend = _unit(bank.mid[k] + bank.mid[j])
        vecs = {"mid": blend, "onset": bank.generic[0], "offset": bank.generic[1]}
    amp = rng.uniform(0.4, 0.9)
    _add_event(out, x_s, x_s + length, step_s, vecs, amp, bank.freq_hz[k], rng)


def _group_events(segments_s: np.ndarray, label_ids: np.ndarray) -> list[tuple[float, float, list]]:
    """Merge exact duplicate segments (multi-label instances) into one rendered event."""
    events: dict[tuple[float, float], list[int]] = {}
    for (s, e), k in zip(segments_s.tolist(), label_ids.tolist(), strict=True):
        events.setdefault((s, e), []).append(int(k))
    return [(s, e, ks) for (s, e), ks in events.items()]


def render_latent(
    num_feats: int,
    fps: float,
    segments_s: np.ndarray,
    label_ids: np.ndarray,
    bank: ClassBank,
    params: SynthParams,
    rng: np.random.Generator,
    meta: FeatureMeta,
) -> np.ndarray:
    """The noise-free signal of one video on the feature grid: actions, distractors, background.

    ``add_frame_noise`` turns it into the features; the frames renderer
    (``tal_bench.data.synth_frames``) draws frames from it.

    Args:
        num_feats: T.
        fps: the video's frame rate (feature i is centred at frame i * stride + offset).
        segments_s: (N, 2) annotated instances in seconds.
        label_ids: (N,) class index of each instance (rows of ``bank``).
        bank: dataset-level class patterns.
        params: noise / distractor / style knobs.
        rng: this video's generator (advanced past everything the signal draws).
        meta: feature geometry.

    Returns:
        (T, C) float32.
    """
    from scipy.ndimage import gaussian_filter1d  # generating only: CLI starts fast

    step_s, t0_s = meta.feat_stride / fps, meta.offset_frames / fps
    bank_v = _style(bank, params, rng)
    out = np.zeros((num_feats, params.dim), dtype=np.float32)  # (T, C)
    events = _group_events(np.asarray(segments_s).reshape(-1, 2), np.asarray(label_ids))
    for s, e, ks in events:
        vecs = {
            name: _unit(getattr(bank_v, name)[ks].sum(0))
            for name in ("mid", "mod", "onset", "offset")
        }
        mix = _unit(rng.normal(size=params.dim))  # within-class mixing
        vecs["mid"] = _unit(vecs["mid"] + 0.3 * mix)
        amp = float(rng.lognormal(0.0, 0.3))
        _add_event(
            out,
            (s - t0_s) / step_s,
            (e - t0_s) / step_s,
            step_s,
            vecs,
            amp,
            float(bank.freq_hz[ks[0]]),
            rng,
        )
    own = sorted({k for _, _, ks in events for k in ks}) or [0]
    for _ in range(rng.poisson(params.distractor_rate * max(1, len(events)))):
        _distractor(out, bank_v, own, step_s, rng)
    smooth = rng.standard_normal((num_feats, bank.bg_basis.shape[0]))
    smooth = gaussian_filter1d(smooth, sigma=6.0, axis=0, mode="nearest")
    smooth /= smooth.std(axis=0, keepdims=True) + 1e-12
    out += params.background * (smooth @ bank.bg_basis + 0.7 * _unit(rng.normal(size=params.dim)))
    return out


def add_frame_noise(
    latent: np.ndarray, params: SynthParams, rng: np.random.Generator
) -> np.ndarray:
    """Features of one video from its ``render_latent`` signal: frame noise, then the clip average.

    Args:
        latent: (T, C) float32 signal (modified in place).
        params: ``noise`` knob.
        rng: the generator ``render_latent`` advanced.

    Returns:
        (T, C) float32.
    """
    from scipy.ndimage import convolve1d  # generating only: CLI starts fast

    out = latent
    # frame noise, then the average over each 16-frame clip (4 steps at stride 4, centred);
    # the box of weights [.5, 1, 1, 1, .5] / 4 shrinks white noise by sqrt(3.5) / 4
    kernel = np.array([0.5, 1.0, 1.0, 1.0, 0.5], dtype=np.float32) / 4.0
    noise = rng.standard_normal(out.shape, dtype=np.float32)  # (T, C)
    noise *= np.float32(params.noise * 4.0 / math.sqrt(3.5))
    out += noise
    return convolve1d(out, kernel, axis=0, mode="nearest")
