"""The super-resolution job the plugin and the CLI run: SR, then (when asked) its trust map, as one job.

Why a job of its own: the trust map is judged against the very file the SR
step wrote, and a job stopped half-way (error or cancel) must leave neither
file, as a cancelled SR run leaves nothing. The result lists every file the
job wrote, so callers never predict side-car names.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Optional, Sequence, Union

from ..io.writer import check_output_path
from ..jobs import CancelToken, Progress, sub_progress, trust_path_for
from ..options import SuperResolveOptions, TrustOptions
from .sr import ModelLike, SRResult, super_resolve
from .trust import trust_map

__all__ = ["run_super_resolve"]

PathLike = Union[str, os.PathLike]


def _remove(paths: Sequence[Path]) -> None:
    for path in paths:
        for p in (path, Path(f"{path}.aux.xml")):
            try:
                p.unlink()
            except FileNotFoundError:
                pass


def run_super_resolve(inputs: Union[PathLike, Sequence[PathLike]], out_path: PathLike, checkpoint: ModelLike,
                      options: Optional[SuperResolveOptions] = None, progress: Optional[Progress] = None,
                      cancel: Optional[CancelToken] = None) -> SRResult:
    """Super-resolve; with ``options.trust`` also write ``<out>_trust.tif`` (and its classes) beside the output."""
    options = options or SuperResolveOptions()
    if not options.trust:
        return super_resolve(inputs, out_path, checkpoint, options, progress=progress, cancel=cancel)
    paths = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    trust_out = check_output_path(trust_path_for(out_path), paths)
    result = super_resolve(inputs, out_path, checkpoint, options, progress=sub_progress(progress, 0.0, 0.8),
                           cancel=cancel)
    try:
        summary = trust_map(result.path, paths, trust_out, TrustOptions(band=options.band, device=options.device),
                            progress=sub_progress(progress, 0.8, 1.0, "trust map: "), cancel=cancel)
    except BaseException:
        _remove(result.written)  # the output and its style: a stopped job leaves nothing
        raise
    return dataclasses.replace(result, trust_path=summary.path, trust=summary,
                               messages=[*result.messages, *summary.messages])
