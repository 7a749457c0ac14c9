"""A preallocated KV cache: one buffer per layer, the state's cached tokens first, appended in place.

transformers' ``DynamicCache`` concatenates the whole cache on every decoded token (~80 ms per
token at 8k cached tokens on SmolLM2, more than dense attention itself). A :class:`KVStore`
copies a state's per-(layer, KV head) cache once into ``1 × Hkv × capacity × d`` buffers, in
the state's stored order; each decode writes its new tokens after the cached ones and a new
decode of the same state starts again at the cached length — no copy per step, no rebuild per
decode. Dense and paged attention read the same storage: the capacity is a whole number of
pages, so ``pages(layer)`` is a ``(Hkv · pages) × (page · d)`` view of each buffer and a
page-sparse kernel gathers whole pages with one ``index_select``.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

import attrs
import torch


@attrs.define(eq=False)
class KVStore:
    """``keys[layer]`` / ``values[layer]``: 1 × Hkv × capacity × d; ``length[layer]`` tokens
    filled (``cached`` from the state, then the tokens decoded since)."""

    keys: list[torch.Tensor]
    values: list[torch.Tensor]
    cached: int
    page: int
    length: list[int]
    summaries: dict[int, list] = attrs.Factory(dict)  # page size → per layer page summaries (paged.Summaries)

    @classmethod
    def of(cls, tensors: Mapping[str, torch.Tensor], layers: int, kv_heads: int, steps: int, page: int) -> KVStore:
        """Copy ``cache.<layer>.<head>.key`` / ``.value`` (1 × tokens × d each) into buffers
        with room for ``steps`` more tokens, the capacity rounded up to whole ``page``s."""
        first = tensors["cache.0.0.key"]
        cached, d = first.shape[1], first.shape[2]
        capacity = -(-(cached + steps) // page) * page
        keys, values = [], []
        for layer in range(layers):
            for kind, out in (("key", keys), ("value", values)):
                buffer = torch.zeros(1, kv_heads, capacity, d, dtype=first.dtype, device=first.device)
                for head in range(kv_heads):
                    buffer[0, head, :cached] = tensors[f"cache.{layer}.{head}.{kind}"][0]
                out.append(buffer)
        return cls(keys, values, cached, page, [cached] * layers)

    @property
    def capacity(self) -> int:
        return self.keys[0].shape[2]

    def rewind(self) -> None:
        """Forget the decoded tokens: the next decode appends after the cached ones again."""
        self.length = [self.cached] * len(self.keys)

    def append(self, layer: int, key: torch.Tensor, value: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Write ``key`` / ``value`` (1 × Hkv × n × d) after the filled tokens; return views of
        everything filled (1 × Hkv × length × d)."""
        start, n = self.length[layer], key.shape[2]
        if start + n > self.capacity:
            raise ValueError(f"KV store full: {start} + {n} tokens > capacity {self.capacity}")
        self.keys[layer][:, :, start:start + n] = key
        self.values[layer][:, :, start:start + n] = value
        self.length[layer] = start + n
        return self.keys[layer][:, :, :start + n], self.values[layer][:, :, :start + n]

    def pages(self, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values of ``layer`` as (Hkv · pages) × (page · d): row ``h · P + p`` is page
        ``p`` of KV head ``h`` (P = capacity / page), contiguous in memory."""
        rows = self.keys[layer].shape[1] * (self.capacity // self.page)
        return self.keys[layer].view(rows, -1), self.values[layer].view(rows, -1)

    def cache(self):
        """A transformers ``Cache`` whose layers append into this store."""
        from transformers.cache_utils import Cache

        layer_class = _store_layer_class()
        return Cache(layers=[layer_class(self, layer) for layer in range(len(self.keys))])


@functools.cache
def _store_layer_class() -> type:
    """transformers' cache-layer interface over one layer of a :class:`KVStore` (made on first
    use: transformers is imported inside hook bodies only)."""
    from transformers.cache_utils import DynamicLayer

    class StoreLayer(DynamicLayer):
        def __init__(self, store: KVStore, layer: int):
            super().__init__()
            self.store, self.layer = store, layer
            self.keys, self.values = store.keys[layer], store.values[layer]
            self.device, self.is_initialized = store.keys[layer].device, True

        def update(self, key_states, value_states, *args, **kwargs):
            return self.store.append(self.layer, key_states, value_states)

        def get_seq_length(self) -> int:
            return self.store.length[self.layer]

    return StoreLayer
