"""Computing one rediscovery cell in a worker: build the method, run it within its time budget, check its images.

Any failure (an exception, NaN, wrong shape, values out of range, running past the budget) becomes a ``failed``
outcome with the reason; it never stops the run. Workers keep the audited :class:`~trojanbench.methods.Target`
(built once per model) between cells.
"""

from __future__ import annotations

from typing import Any

from ...engine.cells import trojan_from_payload
from ...engine.execute import Outcome, attempt, time_budget
from ...imaging import to_uint8
from ...registry import load_plugins
from .synthesis import make_method, synthesize_for_trojan

_targets: dict[str, Any] = {}
_shared: dict[str, Any] = {}


def share_model(model_ref: str, loaded: Any) -> None:
    """Hand the driver's loaded model to the cells computed in its own process (the local executor), so that
    it is not loaded again; the :class:`~trojanbench.methods.Target` freezes a copy of it."""
    if model_ref not in _targets:
        _shared[model_ref] = loaded


def get_target(model_ref: str):
    """The frozen audited model with the auditor's data, built once per worker and model."""
    if model_ref not in _targets:
        from ...methods import Target
        from ...models import load_model

        loaded = _shared.pop(model_ref, None)
        _targets[model_ref] = Target.from_model(loaded if loaded is not None else load_model(model_ref))
    return _targets[model_ref]


def compute_cell(key: str, payload: dict[str, Any], model_ref: str, timeout: float,
                 plugins: tuple[str, ...] = ()) -> Outcome:
    """Run one cell: its value is the images as ``[n, H, W, 3]`` uint8; never raises for a method's failure."""
    load_plugins(plugins)

    def work():
        target = get_target(model_ref)
        method = make_method(payload["method"], payload["params"])
        with time_budget(timeout):
            images = synthesize_for_trojan(method, target, trojan_from_payload(payload["trojan"]),
                                           n_images=payload["n_images"], seed=payload["seed"])
        return to_uint8(images)

    return attempt(work, timeout=None, what=f"cell {key} ({payload['method']}, {payload['trojan']['name']})", key=key)
