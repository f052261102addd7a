"""Model zoo: safe, self-describing checkpoints (building by name lives in :mod:`.registry`).

A checkpoint is one safetensors file. Its tensors are the network's state dict
(parameters and persistent buffers); its metadata holds a JSON *model card*
(:class:`.card.ModelCard`: architecture, hyper-parameters, scale, bands,
normalization, training recipe, metrics). The card alone rebuilds the exact
network, so a checkpoint needs no code or config beside it. Before anything is
allocated, the card is validated and the tensor shapes in the file's header are
compared with those of the network the card describes, built on the ``meta``
device (no memory): a wrong or hostile card is refused in milliseconds. safetensors cannot run code when opened, unlike
PyTorch pickles, which are refused (official HAT ``.pth`` files are converted
once with ``core.models.archs.hat.official.import_official_hat``, loading them with ``weights_only=True``).

Every refusal is a :class:`CheckpointError` naming the file and the problem.
``build``, ``arch_of``, ``ModelCard`` and ``CheckpointError`` are re-exported
here for callers that import them from the zoo.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
import os
import struct
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple, Union

import torch
import torch.nn as nn
from safetensors.torch import load_file, save_file

from .card import CheckpointError, ModelCard
from .meta_device import meta_device
from .registry import arch_of, build, spec, task_of, unwrap

__all__ = [
    "CheckpointError",
    "ModelCard",
    "build",
    "arch_of",
    "expected_shapes",
    "save_checkpoint",
    "load_checkpoint",
    "read_card",
    "read_header",
    "read_metadata",
    "file_sha256",
    "describe_mismatch",
    "shapes_of",
    "FORMAT",
    "FORMAT_VERSION",
]

FORMAT = "s2sr-checkpoint"
FORMAT_VERSION = "1"
PathLike = Union[str, "os.PathLike[str]"]

_MAX_HEADER = 100 * 1024 * 1024  # safetensors' own limit on the JSON header
_PICKLE_SUFFIXES = (".pth", ".pt", ".ckpt", ".pkl", ".bin")


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


# --------------------------------------------------------------------------- helpers


def file_sha256(path: PathLike) -> str:
    """Hex SHA-256 of a file, read in chunks (checkpoints can be large)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _looks_like_pickle(path: Path, head: bytes) -> bool:
    """torch.save writes zip archives (current) or raw pickles (legacy: PROTO opcode 0x80, protocol 2-5)."""
    raw_pickle = head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05")
    return head[:4] == b"PK\x03\x04" or raw_pickle or path.suffix.lower() in _PICKLE_SUFFIXES


def _pickle_refusal(path: Path) -> CheckpointError:
    hint = ""
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
        if isinstance(state, dict) and ("params_ema" in state or "params" in state or "conv_first.weight" in state):
            hint = (
                " It looks like an official HAT checkpoint: convert it once with "
                f"`python -m core.cli models import-hat {path} OUT.safetensors` "
                "(core.models.archs.hat.official.import_official_hat)."
            )
    except Exception:  # whatever it holds, we refuse it; the hint is best effort
        pass
    return CheckpointError(
        f"{path}: this is a PyTorch pickle (.pth/.pt), not a safetensors checkpoint of this plugin. "
        f"Pickles can run code when opened, so they are not loaded.{hint}"
    )


def read_header(path: PathLike) -> Tuple[Path, Dict[str, Any]]:
    """``(path, header)``: the safetensors header (tensor table + ``__metadata__``), sanity-checked.

    Nothing is trusted and no tensor is read; a pickle, a truncated or a
    garbled file is refused with a :class:`CheckpointError` saying which.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: checkpoint file not found")
    if not path.is_file():
        raise CheckpointError(f"{path}: is not a file")
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        n = struct.unpack("<Q", head)[0] if len(head) == 8 else 0
        raw = f.read(n) if 0 < n <= _MAX_HEADER and 8 + n <= size else b""
    header: Any = None
    if raw:
        try:
            header = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            header = None
    if not isinstance(header, dict):
        # Not a readable safetensors file: say what it most likely is.
        if _looks_like_pickle(path, head):
            raise _pickle_refusal(path)
        if size < 8 or not raw:
            raise CheckpointError(
                f"{path}: corrupted or truncated checkpoint (the safetensors header cannot be read; "
                f"the file is {size} bytes and may be incomplete or not a checkpoint at all)"
            )
        raise CheckpointError(f"{path}: corrupted checkpoint (unparsable safetensors header)")
    data_size = size - 8 - n
    try:
        end = max((int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"), default=0)
    except (TypeError, KeyError, IndexError, ValueError):
        raise CheckpointError(f"{path}: corrupted checkpoint (malformed tensor table in the header)") from None
    if end > data_size:
        raise CheckpointError(
            f"{path}: truncated checkpoint (tensor data needs {end} bytes, the file holds {data_size}); "
            "it was probably copied or downloaded incompletely"
        )
    return path, header


def read_metadata(path: PathLike) -> Dict[str, str]:
    """The safetensors metadata of one of our checkpoints (refuses foreign files)."""
    path, header = read_header(path)
    meta = header.get("__metadata__") or {}
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(
            f"{path}: foreign checkpoint: a safetensors file without this plugin's model card "
            f"(metadata 'format' is {meta.get('format') if isinstance(meta, dict) else None!r}, "
            f"expected {FORMAT!r}). Checkpoints come from training or `models import-hat`."
        )
    version = str(meta.get("format_version", ""))
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {version!r} is not supported by this plugin "
            f"(it reads version {FORMAT_VERSION}); update the plugin"
        )
    return meta


def _card_of(path: Path, meta: Mapping[str, str]) -> ModelCard:
    try:
        data = json.loads(meta.get("card", ""))
    except ValueError as exc:
        raise CheckpointError(f"{path}: corrupted model card in the checkpoint metadata (not JSON: {exc})") from None
    return ModelCard.from_dict(data, source=path)


def read_card(path: PathLike) -> ModelCard:
    """The model card of a checkpoint, validated field by field, without loading any tensor."""
    meta = read_metadata(path)
    return _card_of(Path(path), meta)


def _tensors_for_saving(model: nn.Module) -> Dict[str, torch.Tensor]:
    """State dict as CPU, contiguous tensors with no two sharing memory (safetensors' rules)."""
    out: Dict[str, torch.Tensor] = {}
    seen: set = set()
    for name, t in model.state_dict().items():
        t = t.detach().to("cpu")
        key = (t.untyped_storage().data_ptr(), t.untyped_storage().nbytes())
        if key in seen or not t.is_contiguous() or t.storage_offset() != 0 or t.numel() * t.element_size() != key[1]:
            t = t.clone(memory_format=torch.contiguous_format)
        seen.add((t.untyped_storage().data_ptr(), t.untyped_storage().nbytes()))
        out[name] = t
    return out


def save_checkpoint(path: PathLike, model: nn.Module, card: ModelCard) -> None:
    """Write ``model`` and its ``card`` to ``path`` atomically (temporary file + rename).

    The card's architecture and hyper-parameters are taken from the model
    itself, so the file always rebuilds the network it holds; the card is
    validated as a reader would, so a file that could not be read back is
    never written.
    """
    inner = unwrap(model)
    arch = arch_of(inner)
    if card.arch and card.arch != arch:
        raise ValueError(f"card.arch is {card.arch!r} but the model is a {arch!r} network")
    # The network is the truth about what the file holds; the card only adds what it cannot know.
    card = dataclasses.replace(card, arch=arch, hparams=dict(inner.hparams), task=task_of(arch),
                               created=card.created or _now())
    if card.task == "sr":
        card.scale, card.frames = int(inner.scale), int(inner.frames)
    else:
        card.scale, card.frames = 1, None
    try:
        card_json = card.to_json()
    except (TypeError, ValueError) as exc:
        raise ValueError(f"the model card cannot be written as JSON: {exc}") from None
    path = Path(path)
    ModelCard.from_dict(json.loads(card_json), source=path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    metadata = {"format": FORMAT, "format_version": FORMAT_VERSION, "card": card_json, "arch": arch}
    try:
        save_file(_tensors_for_saving(inner), str(tmp), metadata=metadata)
        os.chmod(tmp, 0o644)  # safetensors creates owner-only files; checkpoints are meant to be shared
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


Shapes = Dict[str, Tuple[int, ...]]


def shapes_of(tensors: Mapping[str, torch.Tensor]) -> Shapes:
    return {k: tuple(v.shape) for k, v in tensors.items()}


def describe_mismatch(path: Path, arch: str, expected: Shapes, got: Shapes) -> Optional[str]:
    missing = sorted(set(expected) - set(got))
    unexpected = sorted(set(got) - set(expected))
    wrong = sorted(k for k in set(expected) & set(got) if expected[k] != got[k])
    if not (missing or unexpected or wrong):
        return None
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing (e.g. {', '.join(missing[:3])})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected (e.g. {', '.join(unexpected[:3])})")
    if wrong:
        parts.append(f"{len(wrong)} with a wrong shape (e.g. " + ", ".join(
            f"{k}: file {list(got[k])} vs network {list(expected[k])}" for k in wrong[:3]) + ")")
    return (f"{path}: the tensors do not match the {arch!r} network its card describes: "
            + "; ".join(parts))


def _build_from_card(path: Path, card: ModelCard) -> nn.Module:
    try:
        return build(card.arch, **card.hparams)
    except (TypeError, ValueError, KeyError) as exc:
        raise CheckpointError(f"{path}: the model card's hyper-parameters do not build a {card.arch!r} network ({exc})") from None


def expected_shapes(card: ModelCard, path: Optional[PathLike] = None) -> Shapes:
    """State-dict shapes of the network ``card`` describes, without allocating it.

    A family may compute them itself (``state_shapes`` class method, e.g. RAMS);
    otherwise the network is built on the ``meta`` device. Either way a card
    describing a huge network costs no memory and milliseconds to check
    against a file's header. Modules the constructor imports on first use run
    on the real device (:func:`.meta_device.meta_device`), so the result does
    not depend on what the process imported before.
    """
    where = Path(path) if path is not None else Path("<card>")
    family_shapes = spec(card.arch).state_shapes
    if family_shapes is not None:
        try:
            return family_shapes(**card.hparams)
        except (TypeError, ValueError) as exc:
            raise CheckpointError(
                f"{where}: the model card's hyper-parameters do not build a {card.arch!r} network ({exc})") from None
    with meta_device():  # not torch.device("meta"): modules the constructor imports must not run on meta
        model = _build_from_card(where, card)
    return shapes_of(model.state_dict())


def _header_shapes(path: Path, header: Mapping[str, Any]) -> Shapes:
    try:
        return {k: tuple(int(d) for d in v["shape"]) for k, v in header.items() if k != "__metadata__"}
    except (TypeError, KeyError, ValueError):
        raise CheckpointError(f"{path}: corrupted checkpoint (malformed tensor shapes in the header)") from None


def load_checkpoint(path: PathLike, device: Union[str, torch.device] = "cpu") -> Tuple[nn.Module, ModelCard]:
    """Rebuild the network from the file alone, load its tensors strictly, return ``(model.eval(), card)``.

    Order of checks: header, card fields, tensor shapes against the card's
    network on the ``meta`` device; only then is the network built and the
    data read.
    """
    path = Path(path)
    _, header = read_header(path)
    card = _card_of(path, read_metadata(path))
    problem = describe_mismatch(path, card.arch, expected_shapes(card, path), _header_shapes(path, header))
    if problem:
        raise CheckpointError(problem)
    model = _build_from_card(path, card)
    try:
        tensors = load_file(str(path), device="cpu")
    except Exception as exc:  # safetensors raises its own error types on damaged data
        raise CheckpointError(f"{path}: corrupted checkpoint (tensor data unreadable: {exc})") from None
    model.load_state_dict(tensors, strict=True)
    if card.task == "sr" and int(card.scale) != int(model.scale):
        raise CheckpointError(f"{path}: the card says scale {card.scale} but the network is x{model.scale}")
    if card.task == "sr" and card.frames is not None and int(card.frames) != int(model.frames):
        raise CheckpointError(f"{path}: the card says {card.frames} frame(s) but the network takes {model.frames}")
    return model.to(device).eval(), card
