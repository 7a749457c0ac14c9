"""Entry point of ``icd-adapter-quant``: ``quant:int8``, ``quant:int4:g32``, ``quant:fp8``."""

from __future__ import annotations

from typing import Any, Literal

import attrs

from icd_core import hookimpl
from icd_core.toolkit import DEFAULT_TARGETS, check_widths, ignore_patterns, non_negative, patterns

NAME = "quant"


@attrs.frozen
class QuantOptions:
    """``dtype``; ``group``: input channels sharing a scale (0 = one scale per output row);
    ``per_tensor``: one scale for the whole weight; ``symmetric``: zero-point 0 (else
    asymmetric min-max; integer dtypes only); ``permute`` (with groups): order channels so
    each group shares a range — ``cluster`` (k-means on (min, max)), ``sort``, ``act`` (by
    activation energy Σx² over calibration tokens, decreasing: GPTQ's act-order made a
    function-preserving model permutation, so groups stay contiguous and need no ``g_idx``;
    kept only when it lowers the activation-weighted error) or ``none``. ``targets`` /
    ``ignore``: which weights, as llm-compressor names them (``Linear``, ``re:.*mlp.*``, a
    module name; a list or comma-separated); weights no group runs along are quantized in
    natural order."""

    dtype: Literal["int8", "int4", "fp8"] = "int8"
    group: int = attrs.field(default=0, validator=non_negative())
    symmetric: bool = True
    per_tensor: bool = False
    permute: Literal["cluster", "sort", "act", "none"] = "cluster"
    targets: Any = attrs.field(default=DEFAULT_TARGETS, converter=patterns)
    ignore: Any = attrs.field(default=(), converter=ignore_patterns)

    def __attrs_post_init__(self) -> None:
        if self.dtype == "fp8" and not self.symmetric:
            raise ValueError("fp8 is symmetric only (symmetric must be true)")

    def check_state(self, state) -> None:
        """Every targeted weight's input width is a multiple of ``group`` (as llm-compressor
        requires), or one line before any work: a weight it does not divide would stay in full
        precision."""
        check_widths(state, self.targets, self.ignore, self.group, NAME, "group")

    @classmethod
    def from_spec_args(cls, args: list[Any]) -> dict[str, Any]:
        """``["int4", "g32"]`` → dtype int4, group 32; ``"asym"`` → symmetric false."""
        out: dict[str, Any] = {}
        for arg in args:
            text = str(arg)
            if text in ("int8", "int4", "fp8"):
                out["dtype"] = text
            elif text.startswith("g") and text[1:].isdigit():
                out["group"] = int(text[1:])
            elif text in ("sym", "asym"):
                out["symmetric"] = text == "sym"
            elif text == "tensor":
                out["per_tensor"] = True
            elif text in ("cluster", "sort", "act", "none"):
                out["permute"] = text
            else:
                raise ValueError(f"unknown option {text!r} (expected int8|int4|fp8, g<N>, tensor, sym|asym, "
                                 f"cluster|sort|act|none)")
        return out


@hookimpl
def icd_register(registry):
    registry.add("adapter", NAME, summary="min-max PTQ of weights along the input dim: int8, int4:g32, fp8",
                 options=QuantOptions, positional=("dtype",), abilities=("transform:quant",))


@hookimpl
def icd_apply_transform(ctx, adapter, state, layout):
    from .minmax import apply_quant

    return apply_quant(state, adapter.options, adapter.text, seed=ctx.seed, ctx=ctx)
