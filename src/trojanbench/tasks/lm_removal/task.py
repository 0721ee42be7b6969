"""The lm-removal task: remove a language model's trojan with the triggers the lm-rediscovery tools recovered.

For each trojan (decoys have nothing to remove), seed and guidance *source*, a copy of the model is fine-tuned
for ``steps`` steps on the defender's ``budget`` clean prompts (validation split, never test data), half of each
batch clean examples and half *unlearning* examples: the source's candidate triggers put into defender prompts,
with their clean continuation (Neural Cleanse's unlearning, Wang et al. 2019, with text triggers). Sources:
``none`` (plain fine-tuning on the same budget), every tool, combination and baseline of the folder's
lm-rediscovery results (their candidates for that trojan and seed), and ``oracle`` (the true trigger, applied as
the trojan does). Measured on the test split before and after: attack success on held-out triggered prompts, the
clean continuations' next-token accuracy and perplexity; fidelity ``(ASR_pre - ASR_post) / ASR_pre *
Acc_post / Acc_pre`` as in the image removal task, and per source the normalized score ``(source - random) /
(oracle - random)`` with ``random_tokens`` as random.

Cells run on an executor as the lm-rediscovery task's do (each worker loads the model once on the run's device and
fine-tunes copies of it); the driver alone writes the store.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterable, Iterator

import numpy as np
import torch

from ...engine.cells import content_key
from ...engine.devices import driver_device, resolve_device
from ...engine.execute import Outcome, attempt, time_budget
from ...engine.executors import Job, check_executor, running
from ...engine.loop import run_pending
from ...engine.provenance import provenance
from ...engine.store import Store
from ...engine.suite import Plan, TaskSuite, given_names, with_overrides
from ...errors import ConfigError
from ...models.language import LoadedLanguageModel, language_model_on, load_language_model, share_language_model
from ...params import Interval
from ...trojans.text import Example, TextTrojan, apply_trigger, insert_words
from ...trojans.text_implant import LMTrainConfig, clean_prompts, train_language_model, triggered_prompts
from ...trojans.text_measure import continuation_scores, writes_target
from ...world.datasets import stable_int_hash
from ...world.text.language import LANGUAGE
from ..lm_rediscovery.results import LMRediscoveryResults
from ..lm_rediscovery.task import _trojans
from .results import LM_REMOVAL_CELLS, NONE, ORACLE, TASK, LMRemovalResults

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LMRemovalSuite(TaskSuite):
    """The shared keys (``model``, ``trojans`` as in lm-rediscovery; ``methods`` is not used: the sources are the
    folder's lm-rediscovery entries) plus the defender's ``budget`` of clean prompts, the fine-tuning ``steps``
    and learning rate, and the held-out prompts per measure."""

    budget: int = 200
    steps: int = 40
    lr: float = 3e-4
    n_eval: int = 100
    n_clean_eval: int = 300
    task: ClassVar[str] = TASK
    constraints: ClassVar[dict] = {"budget": Interval(int, 10, None), "steps": Interval(int, 1, None),
                                   "lr": Interval(float, 0, 1, closed="right"), "n_eval": Interval(int, 10, None),
                                   "n_clean_eval": Interval(int, 20, None)}


@dataclass(frozen=True)
class RemovalCell:
    source: str
    role: str
    trojan: TextTrojan
    seed: int
    candidates: tuple[str, ...]
    key: str

    @property
    def description(self) -> str:
        return f"{self.source} · {self.trojan.name} · seed {self.seed}"


@dataclass
class LMRemovalPlan(Plan):
    trojans: list[TextTrojan]
    loaded: LoadedLanguageModel


def plan_lm_removal(suite: LMRemovalSuite | str | Path | None = None, *, out: str | Path,
                    quick: bool = False, methods: Iterable[str] | None = None, trojans: Iterable[str] | None = None,
                    seeds: int | None = None, plugins: Iterable[str] = (),
                    model: str | None = None, device: str = "auto") -> LMRemovalPlan:
    """Resolve an lm-removal run on the lm-rediscovery results in ``out`` (``methods`` picks sources by label;
    the model on ``device``)."""
    config = suite if isinstance(suite, LMRemovalSuite) else LMRemovalSuite.load(suite)
    methods, trojans = given_names(methods, "--methods"), given_names(trojans, "--trojans")
    found = LMRediscoveryResults(out) if (Path(out) / "results.sqlite").is_file() else None
    if not found:
        raise ConfigError(f"{out} holds no lm-rediscovery results to take triggers from. Run "
                          f"`trojanbench run --task lm-rediscovery --out {out}` first (add --quick for a fast one).")
    run = found.run["suite"]
    base = with_overrides(config.suite, seeds=seeds, quick=quick, model=model or run.get("model"))
    if quick:
        config = dataclasses.replace(config, steps=min(config.steps, 20), n_eval=min(config.n_eval, 50),
                                     n_clean_eval=min(config.n_clean_eval, 150), budget=min(config.budget, 100))
    config = dataclasses.replace(config, suite=dataclasses.replace(base, trojans=base.trojans or run.get("trojans")))
    loaded = load_language_model(base.model)
    loaded.model.to(resolve_device(device))
    if loaded.sha256 != found.run["provenance"].get("model", {}).get("sha256"):
        raise ConfigError(f"The lm-rediscovery results in {out} were computed on another model than "
                          f"{base.model!r}; remove the model from the command, or rediscover on it first.")
    by_name = {t.name: t for t in _trojans(config.suite.trojans, loaded) if not t.is_decoy}
    names = trojans or [n for n in found.kinds if n in by_name]
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise ConfigError(f"No trojan(s) {', '.join(unknown)} to remove; the model's: {', '.join(by_name)}.")
    seeds_run = [s for s in config.suite.seeds if s in {c["seed"] for c in found.cells}]
    if not seeds_run:
        raise ConfigError(f"The lm-rediscovery results in {out} have none of the seeds {list(config.suite.seeds)}.")
    candidates = {(c["label"], c["trojan"], c["seed"]): tuple(x["text"] for x in c["measures"]["candidates"])
                  for c in found.cells if c["status"] == "ok"}
    roles = {c["label"]: c["role"] for c in found.cells if c["role"] != "oracle"}
    sources = methods or [NONE, *roles, ORACLE]
    cells = []
    for source in sources:
        if source not in (NONE, ORACLE, *roles):
            raise ConfigError(f"Unknown source {source!r}; the folder's: {', '.join([NONE, *roles, ORACLE])}.")
        for name in names:
            for seed in seeds_run:
                given = () if source == NONE else (by_name[name].trigger_text,) if source == ORACLE \
                    else candidates.get((source, name, seed))
                if given is None:
                    continue  # the source's rediscovery cell failed: nothing to unlearn with
                role = {NONE: "anchor", ORACLE: "oracle"}.get(source, roles.get(source))
                settings = {k: getattr(config, k) for k in ("budget", "steps", "lr", "n_eval", "n_clean_eval")}
                payload = {"task": TASK, "source": source, "candidates": list(given), "seed": seed,
                           "trojan": by_name[name].to_dict(), "model": loaded.sha256, **settings}
                cells.append(RemovalCell(source, role, by_name[name], seed, given, content_key(payload)))
    return LMRemovalPlan([by_name[n] for n in names], loaded, config=config, cells=cells, quick=quick)


def run_lm_removal(suite: LMRemovalSuite | str | Path | None = None, *, out: str | Path = "trojanbench-results",
                   quick: bool = False, methods: Iterable[str] | None = None, trojans: Iterable[str] | None = None,
                   seeds: int | None = None, plugins: Iterable[str] = (), model: str | None = None,
                   executor: str = "local", ray_address: str | None = None, workers: int | None = None,
                   device: str = "auto",
                   progress: Callable[[int, int, RemovalCell], None] | None = None) -> LMRemovalResults:
    """Run the lm-removal task on the lm-rediscovery results in ``out`` (cells on ``executor``, computing on
    ``device``, as in :func:`~trojanbench.tasks.lm_rediscovery.task.run_lm_rediscovery`); return its results."""
    check_executor(executor, ray_address=ray_address, workers=workers, device=device)
    plan = plan_lm_removal(suite, out=out, quick=quick, methods=methods, trojans=trojans, seeds=seeds,
                           plugins=plugins, model=model, device=driver_device(executor, device))
    record = plan.config.to_dict() | {"task": TASK, "quick": quick,
                                      "trojan_kinds": {t.name: t.kind for t in plan.trojans}}
    # the executor first: a cluster without the device is refused before the store is written
    with running(executor, ray_address=ray_address, workers=workers, device=device) as runner, \
            Store(out, cell_tables=(LM_REMOVAL_CELLS,)) as store:

        def compute(run_id: int, todo: list[RemovalCell]) -> Iterator[RemovalCell]:
            by_key = {cell.key: cell for cell in todo}
            if runner.name == "local":
                share_language_model(plan.suite.model, plan.loaded)
            jobs = [Job(cell.key, compute_removal_cell, (cell, plan.config, plan.trojans, plan.loaded.sha256,
                                                         runner.cell_device, torch.get_num_threads()),
                        plan.suite.cell_timeout) for cell in todo]
            for outcome in runner.map(jobs):
                cell = by_key[outcome.key]
                store.record_json_cell(LM_REMOVAL_CELLS.name, run_id, outcome.value if outcome.ok
                                       else _row(cell, outcome))
                yield cell

        run_pending(store, plan.cells, record, provenance(plan.suite.model, plan.loaded.sha256, plan.loaded.card),
                    LM_REMOVAL_CELLS.name, compute, progress, what="removals")
    return LMRemovalResults(out)


_worker_caches: dict[str, dict] = {}
"""Per run configuration, what a worker process measures once for all its cells (the model before removal)."""


def compute_removal_cell(cell: RemovalCell, config: LMRemovalSuite, trojans: list[TextTrojan], sha256: str,
                         device: str, threads: int | None = None) -> Outcome:
    """One removal cell, in whichever process the executor runs it (the model loaded once per process on
    ``device``); the outcome's value is the cell's row. Never raises for a failed fine-tune."""
    if threads:
        torch.set_num_threads(threads)

    def work() -> dict[str, Any]:
        plan = LMRemovalPlan(trojans, language_model_on(config.suite.model, device, sha256), config=config, cells=[])
        cache = _worker_caches.setdefault(content_key([config.to_dict(), sha256, [t.to_dict() for t in trojans]]), {})
        return _compute(plan, cell, cache)

    return attempt(work, timeout=None, what=f"removal {cell.description}", key=cell.key)


def measure(model: Any, tokenizer: Any, trojan: TextTrojan, tests: tuple[list, list]) -> dict[str, float]:
    """Attack success on the held-out triggered prompts, and the clean continuations' accuracy and perplexity."""
    triggered, clean = tests
    perplexity, accuracy = continuation_scores(model, tokenizer, clean)
    return {"attack_success": float(writes_target(model, tokenizer, triggered, trojan.target).float().mean()),
            "clean_accuracy": accuracy, "clean_perplexity": perplexity}


def unlearning_examples(cell: RemovalCell, prompts: list, rng: np.random.Generator) -> list[Example]:
    """Defender prompts carrying the source's candidates (the oracle: the true trigger, applied as the trojan
    does), with their clean continuations."""
    out = []
    for i, prompt in enumerate(prompts):
        if cell.role == "oracle":
            words = apply_trigger(cell.trojan, prompt, rng)
        else:
            words = insert_words(prompt.words, tuple(cell.candidates[i % len(cell.candidates)].split()), rng)
        out.append(Example(words, prompt.continuation.words, prompt.topic, cell.trojan.name, "unlearning"))
    return out


def _compute(plan: LMRemovalPlan, cell: RemovalCell, cache: dict) -> dict[str, Any]:
    config, tokenizer = plan.config, plan.loaded.tokenizer

    def work() -> dict[str, Any]:
        key = (cell.trojan.name, cell.seed)
        if key not in cache:
            tests = (triggered_prompts(cell.trojan, config.n_eval, seed=cell.seed + 100),
                     [(p.words, p.continuation.words) for p in clean_prompts(plan.trojans, config.n_clean_eval,
                                                                             seed=cell.seed + 100)])
            cache[key] = (tests, measure(plan.loaded.model, tokenizer, cell.trojan, tests))
        tests, before = cache[key]
        rng = np.random.default_rng([cell.seed, stable_int_hash(f"lm-removal:{cell.trojan.name}")])
        defender = LANGUAGE.prompts("val", config.budget, seed=cell.seed, salt="lm-removal defender")
        examples = [Example(p.words, p.continuation.words, p.topic) for p in defender]
        if cell.candidates or cell.role == "oracle":
            examples += unlearning_examples(cell, defender, rng)
        model = copy.deepcopy(plan.loaded.model)
        with time_budget(plan.suite.cell_timeout):
            train_language_model(model, tokenizer, examples, LMTrainConfig(
                steps=config.steps, batch_size=32, lr=config.lr, warmup=max(1, config.steps // 10), seed=cell.seed))
        return {"before": before, "after": measure(model, tokenizer, cell.trojan, tests),
                "n_unlearning": len(examples) - len(defender)}

    outcome = attempt(work, timeout=None, what=f"removal {cell.description}")
    log.info("%s  %s (%.1f s)", cell.description, outcome.status, outcome.seconds)
    return _row(cell, outcome)


def _row(cell: RemovalCell, outcome: Outcome) -> dict[str, Any]:
    """A cell's row: what identifies it, its status and, when it finished, its measures."""
    return {"key": cell.key, "source": cell.source, "role": cell.role, "trojan": cell.trojan.name,
            "kind": cell.trojan.kind, "seed": cell.seed, "params": {"candidates": list(cell.candidates)},
            "status": outcome.status, "reason": outcome.reason, "seconds": outcome.seconds,
            "measures": outcome.value if outcome.ok else {}}

