"""A model directory checked before anything is built from it.

config.json and shard indexes are read through the core's bounded readers; every shard must lie
inside the directory; the checkpoint's tensor headers (names, shapes, dtypes — no tensor data)
are read first, and config.json's numbers are checked against them: positive dimensions, as many
layers as the weights hold, and a model whose float32 size stays within what the checkpoint
holds (``ICD_LIMIT_MODEL_EXCESS_BYTES`` more, measured on the meta device, where building costs
no memory). Tokenizer files are size-checked before a tokenizer reads them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

import attrs

from icd_core import InputDataError
from icd_core.toolkit import limit, read_json, regular_file

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
INDEX_FILES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json", "tokenizer.model")
TOKENIZER_SIDE_FILES = ("merges.txt", "special_tokens_map.json", "added_tokens.json", "spiece.model")
# config.json numbers that size a model: each, when present and not null, a positive integer
DIMENSIONS = ("hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "intermediate_size",
              "vocab_size", "max_position_embeddings", "head_dim", "n_embd", "n_layer", "n_head", "n_positions",
              "n_inner", "d_model", "state_size", "expand", "conv_kernel", "time_step_rank")
LAYER_INDEX = re.compile(r"(?:^|\.)(?:layers|layer|h|blocks|block)\.(\d+)\.")
PACKED = 8  # an integer tensor may pack up to 8 int4 values per element (compressed checkpoints)


@attrs.frozen
class Checkpoint:
    """The tensor headers of a checkpoint: name → (shape, dtype), read without the data."""

    tensors: Mapping[str, tuple[tuple[int, ...], str]]

    def layers(self) -> set[int]:
        """The layer indices the tensor names carry (``model.layers.3.…`` → 3)."""
        return {int(m.group(1)) for name in self.tensors if (m := LAYER_INDEX.search(name))}

    def float32_bytes(self) -> int:
        """What the checkpoint's tensors take in float32 (an integer tensor counted as packed)."""
        total = 0
        for shape, dtype in self.tensors.values():
            count = 1
            for size in shape:
                count *= size
            total += count * 4 * (PACKED if _integer(dtype) else 1)
        return total


def _integer(dtype: str) -> bool:
    """An integer dtype, in safetensors' spelling (``I32``, ``U8``) or torch's (``torch.int8``)."""
    name = dtype.lower().removeprefix("torch.")
    return name.startswith(("i", "u")) or "int" in name


def check_directory(path: str | None, label: str = "model") -> tuple[Path, dict]:
    """The directory and its parsed config.json, or one line saying what is wrong."""
    if not path:
        raise InputDataError(f"{label}.path: no model directory given (icd run --model DIR)")
    p = Path(path).expanduser()
    if not p.is_dir():
        raise InputDataError(f"{label} {p}: no such directory")
    config_file = p / "config.json"
    if not config_file.exists():
        raise InputDataError(f"{label} {p}: no config.json (a transformers model directory is expected)")
    config = read_json(config_file, "config.json", "config_bytes")
    if not isinstance(config, dict):
        raise InputDataError(f"{config_file}: expected a JSON object")
    check_dimensions(config, config_file)
    return p, config


def check_dimensions(config: Mapping[str, Any], config_file: Path) -> None:
    """Every sizing number of config.json (top level and ``text_config``) a positive integer."""
    for scope, values in (("", config), ("text_config.", config.get("text_config"))):
        if not isinstance(values, Mapping):
            continue
        for key in DIMENSIONS:
            value = values.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise InputDataError(f"{config_file}: {scope}{key} is {value!r}; expected a positive integer")
        heads, hidden = values.get("num_attention_heads"), values.get("hidden_size")
        if heads and hidden and values.get("head_dim") is None and hidden % heads:
            raise InputDataError(f"{config_file}: {scope}hidden_size {hidden} is not a multiple of "
                                 f"num_attention_heads {heads} (and no head_dim is given)")


def _inside(shard: Any) -> bool:
    """A shard name that stays inside the model directory: relative, no ``..``, no drive."""
    if not isinstance(shard, str) or not shard or "\x00" in shard:
        return False
    posix, windows = PurePosixPath(shard), PureWindowsPath(shard)
    return not (posix.is_absolute() or windows.is_absolute() or windows.drive or ".." in posix.parts
                or ".." in windows.parts)


def check_weights(p: Path) -> list[Path]:
    """The weight files: every shard an index names (each inside the directory and there), or
    the one weights file."""
    for index in INDEX_FILES:
        if (p / index).exists():
            document = read_json(p / index, "shard index", "config_bytes")
            weight_map = document.get("weight_map") if isinstance(document, dict) else None
            if not isinstance(weight_map, dict) or not weight_map:
                raise InputDataError(f"{p / index}: no weight_map (a shard index is expected)")
            if not all(isinstance(s, str) for s in weight_map.values()):
                raise InputDataError(f"{p / index}: weight_map values must be shard file names (strings)")
            shards = sorted(set(weight_map.values()))
            outside = [s for s in shards if not _inside(s)]
            if outside:
                raise InputDataError(f"{p / index}: weight_map names {outside[0]!r}, which is not a file inside the "
                                     f"model directory (shards must be relative names without '..')")
            missing = [s for s in shards if not (p / s).is_file()]
            if missing:
                raise InputDataError(f"model {p}: shard {missing[0]} named in {index} is missing "
                                     f"({len(missing)} of {len(shards)} missing)")
            return [p / s for s in shards]
    found = [p / name for name in WEIGHT_FILES if (p / name).exists()]
    if not found:
        raise InputDataError(f"model {p}: no weights ({', '.join(WEIGHT_FILES + INDEX_FILES)})")
    return [regular_file(found[0], "weights file")]


def read_checkpoint(files: list[Path]) -> Checkpoint:
    """The tensor headers of the weight files (safetensors: the header only; a torch ``.bin``:
    memory-mapped, never read whole, never unpickled beyond tensors)."""
    tensors: dict[str, tuple[tuple[int, ...], str]] = {}
    for file in files:
        regular_file(file, "weights file")
        tensors.update(_safetensors_headers(file) if file.suffix == ".safetensors" else _torch_headers(file))
    return Checkpoint(tensors)


def _safetensors_headers(file: Path) -> dict[str, tuple[tuple[int, ...], str]]:
    from safetensors import safe_open

    try:
        with safe_open(str(file), framework="pt") as handle:
            return {name: (tuple(handle.get_slice(name).get_shape()), handle.get_slice(name).get_dtype())
                    for name in handle.keys()}
    except Exception as exc:  # safetensors raises its own error type for every malformed header
        raise InputDataError(f"{file}: not a readable safetensors file ({_first_line(exc)})") from None


def _torch_headers(file: Path) -> dict[str, tuple[tuple[int, ...], str]]:
    import torch

    try:
        state = torch.load(file, map_location="cpu", mmap=True, weights_only=True)
    except Exception as exc:  # pickle, zip and mmap errors alike: the file is not a tensor checkpoint
        raise InputDataError(f"{file}: not a loadable torch checkpoint of tensors ({_first_line(exc)})") from None
    if not isinstance(state, Mapping) or not all(isinstance(t, torch.Tensor) for t in state.values()):
        raise InputDataError(f"{file}: expected a mapping of tensor names to tensors")
    return {str(name): (tuple(t.shape), str(t.dtype)) for name, t in state.items()}


def _first_line(exc: BaseException) -> str:
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return (lines[0] if lines else type(exc).__name__)[:300]


def check_against_checkpoint(cls: Any, config: Any, checkpoint: Checkpoint, label: str, path: Path) -> None:
    """config.json's layer count and the float32 size of the model it describes, against the
    checkpoint — before the model is built (a meta-device build allocates nothing)."""
    layers = checkpoint.layers()
    wanted = getattr(config, "num_hidden_layers", None)
    if layers and isinstance(wanted, int) and wanted > len(layers):
        raise InputDataError(f"{label} {path}: config.json and the weights disagree: num_hidden_layers is {wanted:,}, "
                             f"the weights hold {len(layers)} layers; nothing would be left but randomly initialised "
                             f"tensors, so nothing runs")
    need = model_float32_bytes(cls, config, label, path)
    allowed = checkpoint.float32_bytes() + limit("model_excess_bytes")
    if need > allowed:
        raise InputDataError(f"{label} {path}: config.json describes a model of {need / 2**20:,.0f} MiB in float32, "
                             f"but the weights hold {checkpoint.float32_bytes() / 2**20:,.1f} MiB (over the "
                             f"{limit('model_excess_bytes'):,}-byte allowance, ICD_LIMIT_MODEL_EXCESS_BYTES): "
                             f"its dimensions do not match the checkpoint")


def model_float32_bytes(cls: Any, config: Any, label: str, path: Path) -> int:
    """The float32 bytes of every parameter and buffer of ``cls`` built from ``config``, on the
    meta device (nothing allocated)."""
    import torch

    try:
        with torch.device("meta"):
            module = cls.from_config(config) if hasattr(cls, "from_config") else cls(config)
    except Exception as exc:  # an architecture's own constructor refusing its config
        raise InputDataError(f"{label} {path}: config.json does not build a model ({_first_line(exc)})") from None
    tensors = {id(t): t for t in [*module.parameters(), *module.buffers()]}
    return sum(t.numel() * 4 for t in tensors.values())


def check_tokenizer_files(p: Path) -> None:
    """Every tokenizer file present a regular file within ``ICD_LIMIT_TOKENIZER_BYTES``."""
    cap = limit("tokenizer_bytes")
    for name in TOKENIZER_FILES + TOKENIZER_SIDE_FILES:
        file = p / name
        if file.exists() or file.is_symlink():
            size = regular_file(file, "tokenizer file").stat().st_size
            if size > cap:
                raise InputDataError(f"{file}: tokenizer file is {size:,} bytes, over the {cap:,}-byte limit "
                                     f"(ICD_LIMIT_TOKENIZER_BYTES)")


def has_tokenizer(path: Path) -> bool:
    return any((path / name).is_file() for name in TOKENIZER_FILES)


def check_positions(config: Mapping[str, Any], tokens: Mapping[str, int], label: str) -> None:
    """Workload options that set a sequence length stay within the model's positions."""
    positions = config.get("max_position_embeddings") or config.get("n_positions")
    if not isinstance(positions, int):
        return
    for option, count in tokens.items():
        if count > positions:
            raise InputDataError(f"{label}.{option} {count:,}: over the model's max_position_embeddings "
                                 f"{positions:,}")
