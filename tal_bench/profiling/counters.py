"""MAC counting with two independent counters and no silent gaps.

**What a MAC is here.** One multiply-accumulate of a matrix product: convolutions, linear
layers, ``mm/addmm/bmm/baddbmm/matmul/einsum``, attention (``Q K^T`` and ``P V``) and the gate
matrix products of recurrent layers (LSTM: ``T·B·4H·(I+H)`` per layer and direction), plus the
weighted taps of ``grid_sample`` (:func:`grid_sampler_macs`: 4 per sampled value, bilinear, as
fvcore's own handle): deformable attention's sampler (TadTR) is a sparse weighted sum of its
taps, real arithmetic that grows with the input. Biases, normalisation, activations, other
interpolation (the 1-D RoI-align's ``embedding_bag``), reductions and other elementwise ops
count **zero**, and every such op that ran is listed by name in ``zero_ops``. Pure data-movement
and tensor creation ops (:data:`MOVEMENT_OPS`: views, copies, cat, gather, ...) do no arithmetic
and are not listed.

**Primary counter** (:func:`count_macs_flop_counter`): ``torch.utils.flop_counter.
FlopCounterMode`` (FLOPs, one MAC = 2 FLOPs), preferably on the meta device where LSTMs
decompose into ``addmm`` and nothing really runs. On CPU/CUDA, ``nn.LSTM`` dispatches to
``aten.mkldnn_rnn_layer`` / ``aten._cudnn_rnn``, which the counter does not know; we add
formulas for those (and for the CPU flash-attention kernel and ``grid_sampler_2d``) and record
them in ``formula_ops``.

**Cross-check** (:func:`count_macs_fvcore`): fvcore ``FlopCountAnalysis`` (already MACs) with
handles we add for ``aten::lstm/gru/rnn_*``, ``aten::baddbmm``,
``aten::scaled_dot_product_attention`` and ``aten::grid_sampler`` (the same tap rule as the
primary counter). Its other non-matrix default handles (norms, upsampling, pooling) are replaced
by zero handles so both counters follow the same rule, and the ops fvcore would ignore silently
are routed through zero handles so that they are listed.
"""

from __future__ import annotations

import copy
import logging
import math
import warnings
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves, tree_map
from torch.utils.flop_counter import FlopCounterMode

log = logging.getLogger(__name__)

# Ops that only move, view, copy or create data: zero arithmetic by definition, never listed.
MOVEMENT_OPS = frozenset(
    [
        "Int",
        "ScalarImplicit",
        "_local_scalar_dense",
        "_reshape_alias",
        "_to_copy",
        "_unsafe_view",
        "alias",
        "arange",
        "as_strided",
        "cat",
        "chunk",
        "clone",
        "constant_pad_nd",
        "contiguous",
        "copy",
        "copy_",
        "detach",
        "dropout",
        "empty",
        "empty_like",
        "empty_strided",
        "expand",
        "expand_as",
        "fill",
        "fill_",
        "flatten",
        "flip",
        "full",
        "full_like",
        "gather",
        "index",
        "index_select",
        "item",
        "lift_fresh",
        "lift_fresh_copy",
        "meshgrid",
        "narrow",
        "new_empty",
        "new_empty_strided",
        "new_full",
        "new_ones",
        "new_zeros",
        "numel",
        "ones",
        "ones_like",
        "pad",
        "permute",
        "repeat",
        "reshape",
        "resize_",
        "roll",
        "scalar_tensor",
        "select",
        "set_",
        "size",
        "slice",
        "split",
        "split_with_sizes",
        "squeeze",
        "stack",
        "t",
        "to",
        "transpose",
        "type_as",
        "unbind",
        "unfold",
        "unsafe_split",
        "unsqueeze",
        "unsqueeze_",
        "view",
        "view_as",
        "zero_",
        "zeros",
        "zeros_like",
    ]
)

# fvcore default handles that count non-matrix work; replaced by zero handles (listed).
_FVCORE_NON_MATMUL = (
    "aten::batch_norm",
    "aten::group_norm",
    "aten::layer_norm",
    "aten::instance_norm",
    "aten::upsample_nearest2d",
    "aten::upsample_bilinear2d",
    "aten::adaptive_avg_pool2d",
)

# Weighted taps per sampled value of grid_sample, by interpolation mode (0 bilinear,
# 1 nearest: a pure gather, 2 bicubic).
GRID_SAMPLER_TAPS = {0: 4, 1: 0, 2: 16}


@dataclass
class MacCount:
    """Result of one counter over one call."""

    counter: str  # "flop_counter" | "fvcore"
    macs: int | None  # None when the counter failed (see ``error``)
    device: str  # device the call ran on while counting ("meta", "cpu", "cuda")
    zero_ops: list[str] = field(default_factory=list)  # ops with arithmetic counted as 0
    formula_ops: list[str] = field(default_factory=list)  # ops counted by our own formulas
    by_op: dict[str, int] = field(default_factory=dict)  # op -> MACs
    by_module: dict[str, int] = field(default_factory=dict)  # module path -> MACs
    error: str | None = None

    def scaled(self, factor: int) -> MacCount:
        """This count multiplied by ``factor`` (e.g. one window -> all windows)."""
        out = copy.deepcopy(self)
        if out.macs is not None:
            out.macs *= factor
        out.by_op = {k: v * factor for k, v in out.by_op.items()}
        out.by_module = {k: v * factor for k, v in out.by_module.items()}
        return out


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (shared tensors counted once).

    Args:
        model: any module.
        trainable_only: count only parameters with ``requires_grad``.
    """
    seen: dict[int, int] = {}
    for p in model.parameters():
        if trainable_only and not p.requires_grad:
            continue
        seen[id(p)] = p.numel()
    return sum(seen.values())


def op_name(op: Any) -> str:
    """``aten.addmm`` / ``aten::addmm`` / an OpOverload(Packet) -> ``"aten::addmm"``."""
    packet = getattr(op, "overloadpacket", op)
    text = str(packet)
    if "::" in text:
        return text
    namespace, _, name = text.partition(".")
    return f"{namespace}::{name}" if name else text


def _is_movement(name: str) -> bool:
    base = name.split("::", 1)[-1]
    return base in MOVEMENT_OPS or name.startswith("prim::") and "PythonOp" not in name


# ---------------------------------------------------------------------------------------------
# Formulas shared by both counters (all return MACs)
# ---------------------------------------------------------------------------------------------


def rnn_macs(input_shape: Any, weight_shapes: list[Any]) -> int:
    """MACs of a recurrent layer stack: every step multiplies each 2-D weight by a vector.

    ``T·B`` steps (or the total of a packed sequence) times the sum of rows × cols over the
    2-D weights (``W_ih``, ``W_hh`` and LSTM projections ``W_hr``) of all layers/directions.
    For one LSTM layer this is ``T·B·4H·(I+H)``; biases (1-D) count zero.

    Args:
        input_shape: shape of the input sequence; its last dim is the feature size.
        weight_shapes: shapes of all weights passed to the op.
    """
    steps = math.prod(input_shape) // input_shape[-1]
    return steps * sum(s[0] * s[1] for s in weight_shapes if s is not None and len(s) == 2)


def attention_macs(q_shape: Any, k_shape: Any, v_shape: Any) -> int:
    """MACs of ``softmax(Q K^T) V``: batch · L · S · (E + Ev)."""
    batch = math.prod(q_shape[:-2])
    length, e = q_shape[-2], q_shape[-1]
    return batch * length * k_shape[-2] * (e + v_shape[-1])


def grid_sampler_macs(input_shape: Any, grid_shape: Any, interpolation_mode: int) -> int:
    """MACs of a 2-D ``grid_sample``: every output value ``(n, c, h, w)`` sums its weighted taps.

    Output values = N · C · H_out · W_out (grid ``(N, H_out, W_out, 2)``); taps per value from
    :data:`GRID_SAMPLER_TAPS` (bilinear 4, as fvcore's default handle counts it).
    """
    n, h_out, w_out = grid_shape[0], grid_shape[1], grid_shape[2]
    taps = GRID_SAMPLER_TAPS.get(int(interpolation_mode), 4)
    return n * input_shape[1] * h_out * w_out * taps


def _shapes(x: Any) -> list[Any]:
    """Shapes in a (nested) list; a ``torch.Size`` is a tuple, so pytree would flatten it."""
    if isinstance(x, torch.Size):
        return [x]
    if isinstance(x, list | tuple):
        return [s for item in x for s in _shapes(item)]
    return []


def _mkldnn_rnn_flops(input_shape, w0, w1, *args, out_shape=None, **kwargs) -> int:
    # aten.mkldnn_rnn_layer(input, w_ih, w_hh, b_ih, b_hh, hx, cx, reverse, ...): one layer,
    # one direction per call.
    return 2 * rnn_macs(input_shape, [w0, w1])


def _cudnn_rnn_flops(input_shape, weights, *args, out_shape=None, **kwargs) -> int:
    # aten._cudnn_rnn(input, weight[], weight_stride0, ...): all layers and directions.
    return 2 * rnn_macs(input_shape, _shapes(weights))


def _sdpa_cpu_flops(q, k, v, *args, out_shape=None, **kwargs) -> int:
    return 2 * attention_macs(q, k, v)


def _grid_sampler_flops(inp, grid, mode, *args, out_shape=None, **kwargs) -> int:
    # aten.grid_sampler_2d(input, grid, interpolation_mode, padding_mode, align_corners)
    return 2 * grid_sampler_macs(inp, grid, mode)


def _extra_flop_formulas() -> dict[Any, Callable[..., int]]:
    """FlopCounterMode formulas for ops missing from its registry (FLOPs = 2 · MACs)."""
    aten = torch.ops.aten
    table = {
        "mkldnn_rnn_layer": _mkldnn_rnn_flops,
        "_cudnn_rnn": _cudnn_rnn_flops,
        "_scaled_dot_product_flash_attention_for_cpu": _sdpa_cpu_flops,
        "grid_sampler_2d": _grid_sampler_flops,
    }
    return {getattr(aten, k): f for k, f in table.items() if hasattr(aten, k)}


# ---------------------------------------------------------------------------------------------
# Primary counter: FlopCounterMode
# ---------------------------------------------------------------------------------------------


class _OpRecorder(TorchDispatchMode):
    """Records every op that reaches it. Entered *outside* FlopCounterMode, so it sees exactly
    the ops the counter executed after its own decompositions."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: Counter[str] = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.seen[op_name(func)] += 1
        return func(*args, **(kwargs or {}))


def count_macs_flop_counter(
    fn: Callable[[], Any],
    device: str = "cpu",
    extra_formulas: Mapping[Any, Callable[..., int]] | None = None,
) -> MacCount:
    """Run ``fn()`` under FlopCounterMode and return MACs (= FLOPs / 2) with its zero-op list.

    Args:
        fn: zero-argument callable running the computation (tensors already on ``device``).
        device: where ``fn`` runs (recorded only).
        extra_formulas: more ``{op_overload_packet: flops_fn(*shapes, out_shape)}`` formulas.

    Returns:
        A :class:`MacCount` with ``counter="flop_counter"``.
    """
    formulas = {**_extra_flop_formulas(), **dict(extra_formulas or {})}
    recorder = _OpRecorder()
    counter = FlopCounterMode(display=False, custom_mapping=formulas)
    with torch.no_grad(), recorder, counter:
        fn()
    registry = {op_name(k) for k in counter.flop_registry}
    per_module = counter.get_flop_counts()
    by_op = {op_name(k): int(v) // 2 for k, v in per_module.get("Global", {}).items()}
    formula_names = {op_name(k) for k in formulas}
    zero = sorted(n for n in recorder.seen if n not in registry and not _is_movement(n))
    return MacCount(
        counter="flop_counter",
        macs=int(counter.get_total_flops()) // 2,
        device=device,
        zero_ops=zero,
        formula_ops=sorted(n for n in recorder.seen if n in formula_names),
        by_op=by_op,
        by_module={m: sum(c.values()) // 2 for m, c in per_module.items() if m != "Global"},
    )


def to_meta(obj: Any) -> Any:
    """Deep copy of a module / tensor tree on the meta device (shapes only, no storage)."""
    if isinstance(obj, nn.Module):
        return copy.deepcopy(obj).to("meta")
    return tree_map(lambda t: t.to("meta") if isinstance(t, torch.Tensor) else t, obj)


def count_macs_primary(
    call: Callable[[nn.Module, Any], Any], model: nn.Module, inputs: Any
) -> MacCount:
    """FlopCounterMode count of ``call(model, inputs)``: on meta if possible, else for real.

    Args:
        call: ``(model, inputs) -> outputs``, e.g. ``lambda m, x: m.forward_dense(*x)``.
        model: the module (left untouched; a meta copy is used).
        inputs: tensors / containers of tensors that ``call`` needs.

    Returns:
        The :class:`MacCount`; ``device`` says where it was counted and ``error`` why meta
        was not possible (when it was not).
    """
    try:
        meta_model, meta_inputs = to_meta(model), to_meta(inputs)
        return count_macs_flop_counter(lambda: call(meta_model, meta_inputs), "meta")
    except Exception as exc:  # noqa: BLE001 - data-dependent code cannot run on meta
        why = f"meta device failed ({type(exc).__name__}: {str(exc).splitlines()[0][:160]})"
    device = str(next(iter(tensors_of(inputs)), torch.empty(0)).device)
    result = count_macs_flop_counter(lambda: call(model, inputs), device)
    result.error = why
    return result


def tensors_of(obj: Any) -> list[torch.Tensor]:
    """All tensors in a nested container."""
    return [t for t in tree_leaves(obj) if isinstance(t, torch.Tensor)]


# ---------------------------------------------------------------------------------------------
# Cross-check: fvcore
# ---------------------------------------------------------------------------------------------


class MethodAsModule(nn.Module):
    """Wraps ``model.<method>(*inputs)`` as a module whose outputs are a flat tuple of
    tensors, so that fvcore's tracer accepts methods like ``forward_dense``."""

    def __init__(self, model: nn.Module, method: str = "forward") -> None:
        super().__init__()
        self.model = model
        self.method = method

    def forward(self, *inputs: Any) -> tuple[torch.Tensor, ...]:
        return tuple(tensors_of(getattr(self.model, self.method)(*inputs)))


def _fvcore_rnn(inputs: list[Any], outputs: list[Any]) -> int:
    from fvcore.nn.jit_handles import get_shape

    # aten::lstm/gru/rnn_tanh(input, hx, params[], has_biases, num_layers, dropout, train,
    # bidirectional, batch_first): the params list is a prim::ListConstruct of the weights.
    weights = [get_shape(v) for v in inputs[2].node().inputs()]
    return rnn_macs(get_shape(inputs[0]), weights)


def _fvcore_sdpa(inputs: list[Any], outputs: list[Any]) -> int:
    from fvcore.nn.jit_handles import get_shape

    return attention_macs(*(get_shape(v) for v in inputs[:3]))


def _fvcore_baddbmm(inputs: list[Any], outputs: list[Any]) -> int:
    from fvcore.nn.jit_handles import get_shape

    b, n, k = get_shape(inputs[1])
    return b * n * k * get_shape(inputs[2])[-1]


def _fvcore_grid_sampler(inputs: list[Any], outputs: list[Any]) -> int:
    from fvcore.nn.jit_handles import get_shape

    # aten::grid_sampler(input, grid, interpolation_mode, padding_mode, align_corners)
    shape = get_shape(inputs[0])
    if len(shape) != 4:  # volumetric sampling: not used by any detector here
        return 0
    return grid_sampler_macs(shape, get_shape(inputs[1]), inputs[2].toIValue())


def count_macs_fvcore(
    module: nn.Module,
    inputs: tuple[Any, ...],
    extra_handles: Mapping[str, Callable[[list[Any], list[Any]], int]] | None = None,
) -> MacCount:
    """fvcore ``FlopCountAnalysis`` (MACs) of ``module(*inputs)`` with our handles.

    Traces with TorchScript, so the call runs once for real on the inputs' device. Every op
    it could not or would not count is listed in ``zero_ops``.

    Args:
        module: module whose ``forward`` returns tensors (wrap methods in
            :class:`MethodAsModule`).
        inputs: positional inputs.
        extra_handles: more ``{op_name: handle(inputs, outputs) -> MACs}``, e.g. for a model's
            custom autograd Function (``"prim::PythonOp.<ClassName>"``).

    Returns:
        A :class:`MacCount` with ``counter="fvcore"`` (``macs=None`` and ``error`` if the
        trace failed).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fvcore scripts helpers on import
        from fvcore.nn import FlopCountAnalysis, jit_analysis

    zero_seen: Counter[str] = Counter()

    def zero_handle(name: str) -> Callable[[list[Any], list[Any]], int]:
        def handle(inputs: list[Any], outputs: list[Any]) -> int:
            zero_seen[name] += 1
            return 0

        return handle

    ignored = getattr(jit_analysis, "_IGNORED_OPS", set())  # fvcore's silent-skip list
    zero_names = [n for n in (*ignored, *_FVCORE_NON_MATMUL) if not _is_movement(n)]
    handles: dict[str, Any] = {n: zero_handle(n) for n in zero_names}
    rnn_ops = ("aten::lstm", "aten::gru", "aten::rnn_tanh", "aten::rnn_relu")
    handles.update({n: _fvcore_rnn for n in rnn_ops})
    handles["aten::scaled_dot_product_attention"] = _fvcore_sdpa
    handles["aten::baddbmm"] = _fvcore_baddbmm
    handles["aten::grid_sampler"] = _fvcore_grid_sampler
    handles.update(extra_handles or {})
    formula_names = {*rnn_ops, "aten::scaled_dot_product_attention", "aten::baddbmm"}
    formula_names.add("aten::grid_sampler")
    formula_names |= set(extra_handles or {})
    device = str(next(iter(tensors_of(inputs)), torch.empty(0)).device)
    try:
        analysis = FlopCountAnalysis(module, inputs).set_op_handle(**handles)
        analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        analysis.tracer_warnings("none")
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit is deprecated
            total = int(analysis.total())
        unsupported = analysis.unsupported_ops()
        full = {n.split("::", 1)[-1]: n for n in handles}  # fvcore drops the namespace
        by_op = {full.get(k, f"aten::{k}"): int(v) for k, v in analysis.by_operator().items()}
        by_module = {k: int(v) for k, v in analysis.by_module().items() if k and v}
    except Exception as exc:  # noqa: BLE001 - TorchScript tracing fails on many models
        msg = f"fvcore trace failed ({type(exc).__name__}: {str(exc).splitlines()[0][:160]})"
        log.warning(msg)
        return MacCount(counter="fvcore", macs=None, device=device, error=msg)
    zero = {n for n in unsupported if not _is_movement(n)} | set(zero_seen)
    return MacCount(
        counter="fvcore",
        macs=total,
        device=device,
        zero_ops=sorted(zero),
        formula_ops=sorted(n for n in by_op if n in formula_names),
        by_op={k: v for k, v in by_op.items() if v},
        by_module={k: v for k, v in by_module.items() if k.count(".") < 2},
    )
