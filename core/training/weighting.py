"""How several losses are combined into one: fixed weights or per-epoch dynamic weights.

Dynamic weighting (our reading of the study): the reference loss (e.g. cL1) keeps
weight 1 and every other loss ``i`` gets a target proportion ``p_i``. At the end of
each epoch ``w_i = p_i * mean(L_ref) / mean(L_i)``, means of the *unweighted*
losses over that epoch, so that in the next epoch each weighted loss is about
``p_i`` times the reference. This keeps, e.g., a Dice loss of ~0.5 from swamping
a cL1 of ~0.02 without hand-tuning a weight per experiment.

Terms whose optimum is zero (the phantom-object penalties ``fp_*``: the mean
probability the frozen networks give object-free land) must not be re-weighted
that way: as the network learns to keep land clean the term shrinks, ``1 /
mean(L_i)`` explodes (0.1 -> 42 within eight epochs of the first starter run),
and the term ends up erasing every object, true ones included (validation Dice
0). Such terms keep a *fixed* weight beside the dynamic ones (``fixed=``).

Both classes keep only plain Python numbers in their state, so ``state_dict()``
is JSON-serialisable and a resumed run continues with exactly the same weights.
"""

from __future__ import annotations

import math
from typing import Dict, List, Mapping, Optional, Union

import torch
from torch import Tensor

__all__ = ["StaticWeighting", "DynamicWeighting", "make_weighting", "LossValue", "MIN_MEAN_LOSS"]

LossValue = Union[Tensor, float]

# Below this epoch mean a loss is treated as zero: dividing by it would blow the weight up.
MIN_MEAN_LOSS = 1e-12


def _check_names(losses: Mapping[str, LossValue], known: Mapping[str, float], what: str) -> None:
    unknown = [k for k in losses if k not in known]
    if unknown:
        raise ValueError(
            f"{what}: loss {', '.join(map(repr, unknown))} has no weight; configured losses: {', '.join(known)}"
        )


def _weighted_sum(losses: Mapping[str, LossValue], weights: Mapping[str, float]) -> Tensor:
    _check_names(losses, weights, "combine")
    if not losses:
        raise ValueError("combine: no losses given")
    total: Optional[Tensor] = None
    for name, value in losses.items():
        term = torch.as_tensor(value) * weights[name]
        total = term if total is None else total + term
    assert total is not None
    return total


class StaticWeighting:
    """``L = sum_i w_i L_i`` with fixed weights; ``observe``/``end_epoch`` only log."""

    kind = "static"

    def __init__(self, weights: Mapping[str, float]):
        if not weights:
            raise ValueError("static weighting needs at least one loss weight")
        self._weights: Dict[str, float] = {str(k): float(v) for k, v in weights.items()}
        self.epoch = 0
        self.history: List[Dict[str, object]] = []

    @property
    def weights(self) -> Dict[str, float]:
        return dict(self._weights)

    def observe(self, losses: Mapping[str, LossValue]) -> None:
        _check_names(losses, self._weights, "observe")

    def combine(self, losses: Mapping[str, LossValue]) -> Tensor:
        return _weighted_sum(losses, self._weights)

    def end_epoch(self, sync: bool = True) -> Dict[str, float]:
        self.epoch += 1
        self.history.append({"epoch": self.epoch, "weights": self.weights})
        return self.weights

    def state_dict(self) -> Dict[str, object]:
        return {"kind": self.kind, "weights": self.weights, "epoch": self.epoch, "history": list(self.history)}

    def load_state_dict(self, state: Mapping[str, object]) -> None:
        if state.get("kind") != self.kind:
            raise ValueError(f"cannot resume static weighting from a {state.get('kind')!r} weighting state")
        if set(state["weights"]) != set(self._weights):  # type: ignore[arg-type]
            raise ValueError(
                f"the checkpoint weights losses {sorted(state['weights'])} but the config has {sorted(self._weights)}"  # type: ignore[arg-type]
            )
        self._weights = {k: float(v) for k, v in state["weights"].items()}  # type: ignore[union-attr]
        self.epoch = int(state["epoch"])  # type: ignore[arg-type]
        self.history = [dict(h) for h in state["history"]]  # type: ignore[union-attr]


class DynamicWeighting:
    """Reference loss at weight 1; other losses re-weighted each epoch to proportion ``p_i``.

    ``initial`` sets the weights used before the first epoch ends (default ``p_i``).
    Call ``observe(losses)`` every training step with the unweighted losses,
    ``combine(losses)`` for the total to back-propagate, and ``end_epoch()`` once per
    epoch. Under ``torch.distributed`` the epoch sums are all-reduced in
    ``end_epoch`` (``sync=True``) so every rank sets the same weights.
    """

    kind = "dynamic"

    def __init__(
        self,
        reference: str,
        proportions: Mapping[str, float],
        initial: Optional[Mapping[str, float]] = None,
        fixed: Optional[Mapping[str, float]] = None,
    ):
        if not proportions:
            raise ValueError("dynamic weighting needs at least one loss besides the reference")
        fixed = {str(k): float(v) for k, v in (fixed or {}).items()}
        if reference in proportions or reference in fixed:
            raise ValueError(f"the reference loss {reference!r} keeps weight 1; give it no proportion")
        both = sorted(set(proportions) & set(fixed))
        if both:
            raise ValueError(f"a loss has a proportion or a fixed weight, not both: {', '.join(both)}")
        bad = [k for k, p in {**proportions, **fixed}.items() if not (math.isfinite(float(p)) and float(p) >= 0)]
        if bad:
            raise ValueError(f"proportions and fixed weights must be finite and >= 0: {', '.join(bad)}")
        self.reference = str(reference)
        self.proportions: Dict[str, float] = {str(k): float(v) for k, v in proportions.items()}
        self.fixed: Dict[str, float] = fixed
        initial = dict(initial or {})
        unknown = [k for k in initial if k not in self.proportions and k != self.reference]
        if unknown:
            raise ValueError(f"initial weights for unknown losses: {', '.join(unknown)}")
        self._weights: Dict[str, float] = {self.reference: 1.0}
        for name, p in self.proportions.items():
            self._weights[name] = float(initial.get(name, p))
        self._weights.update(self.fixed)
        self.epoch = 0
        self.history: List[Dict[str, object]] = []
        self._reset_epoch()

    def _reset_epoch(self) -> None:
        self._sums: Dict[str, Union[Tensor, float]] = {k: 0.0 for k in self._weights}
        self._counts: Dict[str, int] = {k: 0 for k in self._weights}

    @property
    def weights(self) -> Dict[str, float]:
        return dict(self._weights)

    def observe(self, losses: Mapping[str, LossValue]) -> None:
        """Accumulate the unweighted losses of one step (kept on device: no sync per step)."""
        _check_names(losses, self._weights, "observe")
        for name, value in losses.items():
            v = value.detach().to(torch.float64).sum() if isinstance(value, Tensor) else float(value)
            self._sums[name] = self._sums[name] + v
            self._counts[name] += 1

    def combine(self, losses: Mapping[str, LossValue]) -> Tensor:
        return _weighted_sum(losses, self._weights)

    def _epoch_means(self, sync: bool) -> Dict[str, Optional[float]]:
        names = list(self._weights)
        sums = [float(self._sums[k]) for k in names]
        counts = [float(self._counts[k]) for k in names]
        if sync and torch.distributed.is_available() and torch.distributed.is_initialized():
            device = next((s.device for s in self._sums.values() if isinstance(s, Tensor)), torch.device("cpu"))
            if torch.distributed.get_backend() == "nccl" and device.type != "cuda":
                device = torch.device("cuda", torch.cuda.current_device())
            packed = torch.tensor(sums + counts, dtype=torch.float64, device=device)
            torch.distributed.all_reduce(packed)
            vals = packed.tolist()
            sums, counts = vals[: len(names)], vals[len(names) :]
        return {k: (s / c if c > 0 else None) for k, s, c in zip(names, sums, counts)}

    def end_epoch(self, sync: bool = True) -> Dict[str, float]:
        """Set ``w_i = p_i * mean(L_ref) / mean(L_i)`` from this epoch; record and return the weights.

        A loss whose epoch mean is missing, non-finite or below ``MIN_MEAN_LOSS``
        keeps its previous weight (so does every loss when the reference is missing).
        """
        means = self._epoch_means(sync)
        ref = means[self.reference]
        if ref is not None and math.isfinite(ref):
            for name, p in self.proportions.items():
                m = means[name]
                if m is not None and math.isfinite(m) and m > MIN_MEAN_LOSS:
                    self._weights[name] = p * ref / m
        self.epoch += 1
        self.history.append({"epoch": self.epoch, "weights": self.weights, "means": means})
        self._reset_epoch()
        return self.weights

    def state_dict(self) -> Dict[str, object]:
        return {
            "kind": self.kind,
            "reference": self.reference,
            "proportions": dict(self.proportions),
            "fixed": dict(self.fixed),
            "weights": self.weights,
            "epoch": self.epoch,
            "history": [dict(h) for h in self.history],
            "sums": {k: float(v) for k, v in self._sums.items()},
            "counts": dict(self._counts),
        }

    def load_state_dict(self, state: Mapping[str, object]) -> None:
        if state.get("kind") != self.kind:
            raise ValueError(f"cannot resume dynamic weighting from a {state.get('kind')!r} weighting state")
        if (state["reference"] != self.reference or dict(state["proportions"]) != self.proportions  # type: ignore[call-overload]
                or dict(state.get("fixed") or {}) != self.fixed):  # type: ignore[call-overload]
            raise ValueError(
                "the checkpoint's dynamic weighting (reference "
                f"{state['reference']!r}, proportions {state['proportions']}) differs from the config "
                f"(reference {self.reference!r}, proportions {self.proportions})"
            )
        self._weights = {k: float(v) for k, v in state["weights"].items()}  # type: ignore[union-attr]
        self.epoch = int(state["epoch"])  # type: ignore[arg-type]
        self.history = [dict(h) for h in state["history"]]  # type: ignore[union-attr]
        self._sums = {k: float(v) for k, v in state["sums"].items()}  # type: ignore[union-attr]
        self._counts = {k: int(v) for k, v in state["counts"].items()}  # type: ignore[union-attr]


def make_weighting(
    kind: str,
    weights: Optional[Mapping[str, float]] = None,
    reference: Optional[str] = None,
    proportions: Optional[Mapping[str, float]] = None,
    initial: Optional[Mapping[str, float]] = None,
    fixed: Optional[Mapping[str, float]] = None,
) -> Union[StaticWeighting, DynamicWeighting]:
    """``make_weighting("static", weights={...})`` or ``make_weighting("dynamic", reference=..., proportions={...})``."""
    if kind == "static":
        if weights is None:
            raise ValueError("static weighting needs weights={loss name: weight}")
        return StaticWeighting(weights)
    if kind == "dynamic":
        if reference is None or proportions is None:
            raise ValueError("dynamic weighting needs reference=<loss name> and proportions={loss name: p}")
        return DynamicWeighting(reference, proportions, initial, fixed)
    raise ValueError(f"loss weighting must be 'static' or 'dynamic', got {kind!r}")
