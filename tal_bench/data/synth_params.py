"""The knobs of the synthetic dataset (``SynthParams``), apart from its numpy generator.

``talbench datasets synth --help`` shows these defaults; keeping them in a module that imports
no numpy lets every ``--help`` start without it. ``tal_bench.data.synthetic`` re-exports them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass

from tal_bench.errors import TalBenchError

GENERATOR_VERSION = 2  # bump whenever the output bytes change (it keys the cache)


@dataclass(frozen=True)
class SynthParams:
    """Everything the generated dataset depends on (with GENERATOR_VERSION, its cache key).

    Attributes:
        scale: fraction of THUMOS's 200 / 212 videos; below 1 durations shrink by sqrt(scale).
        dim: feature channels C.
        seed: dataset seed.
        num_classes: classes kept (1-20, THUMOS names, see CLASS_PRIORITY).
        noise: per-channel std of the white feature noise (after clip averaging).
        distractor_rate: unannotated distractor bursts per action instance.
        class_sep: 0 = classes of a family share their pattern, 1 = unrelated patterns.
        video_style: per-video perturbation of every class pattern (cross-video variation).
        background: amplitude of the smooth background process.
    """

    scale: float = 1.0
    dim: int = 64
    seed: int = 0
    num_classes: int = 20
    noise: float = 0.2
    distractor_rate: float = 0.3
    class_sep: float = 0.5
    video_style: float = 0.5
    background: float = 0.5

    def check(self) -> SynthParams:
        """Return self, or raise a TalBenchError naming the bad knob."""
        bad = [
            (self.scale > 0, f"scale must be > 0, got {self.scale}"),
            (self.dim >= 4, f"dim must be >= 4, got {self.dim}"),
            (1 <= self.num_classes <= 20, f"num_classes must be 1-20, got {self.num_classes}"),
            (self.noise >= 0 and self.background >= 0, "noise and background must be >= 0"),
            (self.distractor_rate >= 0, "distractor_rate must be >= 0"),
            (0 <= self.class_sep <= 1, f"class_sep must be in [0, 1], got {self.class_sep}"),
            (self.video_style >= 0, "video_style must be >= 0"),
        ]
        for ok, msg in bad:
            if not ok:
                raise TalBenchError(f"synthetic dataset: {msg}")
        return self

    def key(self) -> str:
        """Hash of (params, generator version): the cache folder suffix."""
        blob = json.dumps({"v": GENERATOR_VERSION, **dataclasses.asdict(self)}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


TINY_PARAMS = SynthParams(scale=0.06, dim=32, num_classes=5)
