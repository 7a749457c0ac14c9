"""Entry point of ``icd-adapter-sparsity``: ``sparsity:2:4`` (N:M), ``sparsity:unstructured:0.75``,
``sparsity:block:64:0.75``; and the ``tiles`` measure (non-zero tiles of pruned weights)."""

from __future__ import annotations

from typing import Any, Literal

import attrs

from icd_core import AUTO, Knob, hookimpl
from icd_core.toolkit import DEFAULT_TARGETS, check_widths, ignore_patterns, patterns, positive

NAME = "sparsity"


@attrs.frozen
class SparsityOptions:
    """``mode nm``: keep ``n`` of every ``m`` weights along the input dim; ``unstructured``:
    drop the ``rate`` smallest; ``block``: drop the ``rate`` weakest ``block``×``block`` tiles
    (``rate auto``: the most that keeps quality, searched per arm).
    ``score``: magnitude, Wanda (|w|·‖x‖ over calibration tokens) or RIA (relative importance
    × ‖x‖^0.5; :mod:`.scores`). ``permute`` (N:M): search
    the channel grouping that keeps most score ``global``ly, only ``blocks``-internally (keeps
    π₀'s cache lines), or ``none``; ``rounds`` of search (default by size: 160 for 64 channels,
    3 for 1536) within ``search_work`` pair-gain evaluations per weight (counted, flagged
    ``work_cut`` when spent; default :data:`.efficacy.DEFAULT_WORK`) keep it deterministic;
    ``search_s`` is a wall-clock safety cap per weight (flagged ``timed_out`` when hit: only then
    does the result follow the machine's load). ``targets`` / ``ignore``: which weights, as
    llm-compressor names them (``Linear``, ``re:.*mlp.*``, a module name; a list or
    comma-separated); weights no group runs along are pruned in natural order."""

    mode: Literal["nm", "unstructured", "block"] = "nm"
    n: int = attrs.field(default=2, validator=positive())
    m: int = attrs.field(default=4, validator=positive())
    rate: Any = 0.5
    block: int = attrs.field(default=64, validator=positive())
    score: Literal["magnitude", "wanda", "ria"] = "magnitude"
    permute: Literal["global", "blocks", "none"] = "global"
    rounds: int | None = attrs.field(default=None, validator=positive())
    search_work: float | None = attrs.field(default=None, validator=positive())
    search_s: float = attrs.field(default=600.0, validator=positive())
    targets: Any = attrs.field(default=DEFAULT_TARGETS, converter=patterns)
    ignore: Any = attrs.field(default=(), converter=ignore_patterns)

    def __attrs_post_init__(self) -> None:
        if self.mode == "nm" and self.n >= self.m:
            raise ValueError(f"n ({self.n}) must be < m ({self.m})")
        if self.mode == "nm" and self.rate == AUTO:
            raise ValueError("N:M has no rate to search (the rate is 1 − n/m); use sparsity:unstructured:auto "
                             "or sparsity:block:<tile>:auto")
        if self.rate != AUTO and (isinstance(self.rate, bool) or not isinstance(self.rate, (int, float))
                                  or not 0.0 <= self.rate < 1.0):
            raise ValueError(f"rate must be in [0, 1) or auto (got {self.rate!r})")

    def check_state(self, state) -> None:
        """N:M: every targeted weight's input width is a multiple of ``m``, or one line before
        any work (a weight it does not divide would stay dense)."""
        if self.mode == "nm":
            check_widths(state, self.targets, self.ignore, self.m, NAME, "m")

    def auto_knob(self, state) -> Knob | None:
        """``rate auto``: the share pruned, from none up to 95 %."""
        return Knob("rate", gentle=0.0, aggressive=0.95, resolution=0.02) if self.rate == AUTO else None

    @classmethod
    def from_spec_args(cls, args: list[Any]) -> dict[str, Any]:
        """``[2, 4]`` → N:M; ``["unstructured", 0.75]``; ``["block", 64, 0.75]``."""
        head, rest = args[0], list(args[1:])
        if head == "unstructured":
            if len(rest) != 1:
                raise ValueError("expected sparsity:unstructured:<rate>")
            return {"mode": "unstructured", "rate": rest[0]}
        if head == "block":
            if len(rest) != 2:
                raise ValueError("expected sparsity:block:<tile>:<rate>")
            return {"mode": "block", "block": rest[0], "rate": rest[1]}
        if len(args) != 2:
            raise ValueError("expected sparsity:<n>:<m>, sparsity:unstructured:<rate> or sparsity:block:<tile>:<rate>")
        return {"mode": "nm", "n": args[0], "m": args[1]}


@hookimpl
def icd_register(registry):
    registry.add("adapter", NAME, summary="N:M (2:4) with channel search, unstructured or block pruning",
                 options=SparsityOptions, positional=("n", "m"), abilities=("transform:sparsity",))
    registry.add("measure", "tiles", summary="non-zero 32×32 / 64×64 tiles of every input-dim weight (BSR cost)",
                 provides=("tiles32", "tiles64", "weight_density", "bsr_tiles"))


@hookimpl
def icd_apply_transform(ctx, adapter, state, layout):
    from .apply import apply_sparsity

    return apply_sparsity(ctx, state, layout, adapter.options, adapter.text)


@hookimpl
def icd_measure(ctx, measure, state):
    from .tiles import tile_figures

    return tile_figures(state)
