"""Frame renderer of the synthetic THUMOS-like dataset (used by ``tal_bench.data.frames``).

The frames show the same signal the features are made from (``synth_features.render_latent``:
the class patterns of the annotated actions, distractors and background of one video), so a
video encoder can learn what the pre-extracted features hold, and more:

* every latent channel c owns two stationary textures, one for its positive and one for its
  negative part: an oriented sinusoidal grating (random orientation, 1.5-6 cycles per image,
  random phase) in a random RGB colour direction. A frame is mid-grey plus the textures
  weighted by ``relu(+z_c)`` and ``relu(-z_c)``: what a channel says is a local texture's
  energy, which convolutions followed by global average pooling can read (a signed or
  position-coded pattern would be lost in the pooling);
* the latent is sampled at each frame's own time (linear interpolation between the feature
  grid's steps, 4 frames apart), so a clip holds the signal's motion within the snippet;
* white noise on the latent of every frame (``noise``, as the features' frame noise) and on the
  pixels, then rounding to uint8.

Deterministic in (dataset params, clip geometry): the latent comes from the features' own
generator, the textures and the noise from generators keyed by the dataset seed and video id.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tal_bench.data.features import FeatureMeta

PIXEL_NOISE = 0.03  # std of the pixel noise, intensity in [0, 1]
TEXTURE_STD = 0.16  # target std of the texture sum (intensity) for a typical latent
# per-channel RMS of the latent plus its frame noise on the embedded dataset (measured: signal
# ~0.21, noise 0.2), so that TEXTURE_STD holds and few pixels clip
LATENT_RMS_REF = 0.29


@dataclass(frozen=True)
class ClipSpec:
    """Pixels of one snippet: ``frames`` frames of ``height`` x ``width`` RGB.

    The frames are spread evenly over the snippet's clip: frame j sits at frame
    ``floor((j + 0.5) * clip_len / frames)`` of the clip (the centres of ``frames`` equal parts).
    """

    frames: int = 4
    height: int = 32
    width: int = 32

    def offsets(self, clip_len: int) -> np.ndarray:
        """(frames,) frame offsets of the sampled frames within a clip of ``clip_len`` frames."""
        return np.floor((np.arange(self.frames) + 0.5) * clip_len / self.frames).astype(np.int64)

    def check(self) -> ClipSpec:
        """Return self; ValueError on sizes below 1 (below 8 pixels a stem cannot stride)."""
        if self.frames < 1 or self.height < 8 or self.width < 8:
            raise ValueError(f"clip needs >= 1 frame of >= 8 x 8 pixels, got {self}")
        return self


def make_textures(dim: int, spec: ClipSpec, rng: np.random.Generator) -> np.ndarray:
    """The dataset's 2 x ``dim`` textures (positive part of channel c at 2c, negative at 2c + 1).

    Returns:
        (2 * dim, 3, H, W) float32, each texture of unit RMS over its pixels and colours.
    """
    n = 2 * dim
    y, x = np.meshgrid(
        np.arange(spec.height) / spec.height, np.arange(spec.width) / spec.width, indexing="ij"
    )  # (H, W) each, in image units
    theta = rng.uniform(0.0, math.pi, n)
    cycles = rng.uniform(1.5, 6.0, n)
    phase = rng.uniform(0.0, 2 * math.pi, n)
    color = rng.normal(size=(n, 3))
    color /= np.linalg.norm(color, axis=1, keepdims=True)
    proj = np.cos(theta)[:, None, None] * x + np.sin(theta)[:, None, None] * y  # (n, H, W)
    grating = np.cos(2 * math.pi * cycles[:, None, None] * proj + phase[:, None, None])
    tex = color[:, :, None, None] * grating[:, None]  # (n, 3, H, W)
    tex /= np.sqrt((tex**2).mean(axis=(1, 2, 3), keepdims=True))
    return tex.astype(np.float32)


def _latent_at_frames(latent: np.ndarray, frames: np.ndarray, meta: FeatureMeta) -> np.ndarray:
    """Linear interpolation of the feature-grid signal (T, C) at frame indices -> (F, C)."""
    x = np.clip((frames - meta.offset_frames) / meta.feat_stride, 0, latent.shape[0] - 1)
    lo = np.floor(x).astype(np.int64)
    hi = np.minimum(lo + 1, latent.shape[0] - 1)
    w = (x - lo)[:, None]
    return (1 - w) * latent[lo] + w * latent[hi]


def render_clips(
    latent: np.ndarray,
    latent_meta: FeatureMeta,
    snippet_meta: FeatureMeta,
    num_snippets: int,
    spec: ClipSpec,
    textures: np.ndarray,
    noise: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """All snippet clips of one video.

    Args:
        latent: (T, C) noise-free signal on the feature grid (``render_latent``).
        latent_meta: geometry of that grid (synthetic features: stride 4, centre offset 8).
        snippet_meta: snippet geometry (snippet i covers frames ``i * feat_stride`` to
            ``i * feat_stride + clip_len - 1``).
        num_snippets: N.
        spec: frames per clip and their size.
        textures: (2C, 3, H, W) from :func:`make_textures`.
        noise: std of the white noise on every frame's latent.
        rng: this video's frame generator.

    Returns:
        (N, 3, t, H, W) uint8.
    """
    starts = np.arange(num_snippets) * snippet_meta.feat_stride  # (N,)
    frames = (starts[:, None] + spec.offsets(snippet_meta.clip_len)[None]).reshape(-1)  # (N*t,)
    z = _latent_at_frames(latent.astype(np.float64), frames, latent_meta)  # (N*t, C)
    z += noise * rng.standard_normal(z.shape)
    amps = np.stack([np.maximum(z, 0.0), np.maximum(-z, 0.0)], axis=2).reshape(len(z), -1)
    gain = TEXTURE_STD / (math.sqrt(latent.shape[1]) * LATENT_RMS_REF)  # sum of C z_c^2
    flat = textures.reshape(len(textures), -1)  # (2C, 3*H*W)
    img = 0.5 + gain * (amps.astype(np.float32) @ flat)  # (N*t, 3*H*W)
    img += PIXEL_NOISE * rng.standard_normal(img.shape, dtype=np.float32)
    pix = np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)
    pix = pix.reshape(num_snippets, spec.frames, 3, spec.height, spec.width)
    return np.ascontiguousarray(pix.transpose(0, 2, 1, 3, 4))  # (N, 3, t, H, W)
