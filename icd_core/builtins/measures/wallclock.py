"""Built-in measure ``wallclock``: latency and throughput of the workload's forward.

``warmup_iter`` runs are excluded, then ``repeats`` timed runs on the same fixed batch
(:mod:`icd_core.run.timing`). Reports ``lat_ms`` (median, p95, outlier count, the per-run
samples) and ``toks_per_s``. In a run, the pipeline times the pre-run, linear and iterative
states together in shuffled interleaved rounds instead.
"""

from __future__ import annotations

from icd_core.contract.hookmarkers import hookimpl
from icd_core.run.timing import figures_from, pin_threads, time_forward, unpin_threads

NAME = "wallclock"


@hookimpl
def icd_register(registry):
    registry.add("measure", NAME, summary="latency (median, p95, 95% CI) and tokens/s by wall clock",
                 provides=("lat_ms", "toks_per_s"))


@hookimpl
def icd_measure(ctx, measure, state):
    cfg = ctx.config.pipeline
    threads = pin_threads(ctx.config.measure.threads)
    try:
        samples = time_forward(state, cfg.warmup_iter, cfg.repeats)
    finally:
        threads = unpin_threads(threads)
    return figures_from(samples, state.workload.tokens, cfg.warmup_iter, ctx.seed, state.workload.device, threads)
