"""Sequence passes per second of every language-model trigger-inversion tool against the model's raw rates, and
our GCG against nanogcg (a measurement, not a test).

Each tool inverts the ``token_dax`` trojan of the shipped ``lm_trojaned`` (the empty prompt and two clean val
prompts as contexts, all non-special tokens allowed) within ``--budget`` sequence passes, with its default
settings (``--quick``: its quick ones). Printed per tool: the sequence passes it spent per second (the budget's
unit: forward 1, forward and backward 3); the model's raw rates measured in the same process right before, on
sequences of the problem's length: batched forward of ``--batch`` sequences, and forward+backward (gradient with
respect to the input embeddings) of as many sequences as one gradient call of the tool sends (counted as 3 passes
each); and *model share*: the seconds the same model calls take alone (every forward the tool made, grouped by
shape and grad mode, replayed on the bare model) over the seconds the tool took; 1 means the tool spends all its
time in the model.

With ``nanogcg`` importable (``pip install --no-deps nanogcg==0.3.0``: it pins transformers<=4.47.1 and is no
dependency of trojanbench), our GCG search and nanogcg's run the same number of steps on the same model, target,
initial trigger, search width, top-k and allowed tokens, on the empty prompt alone (nanogcg takes one prompt):
the best loss each reached and its wall time. The text world's tokenizer adds no BOS of its own, and nanogcg
strips the chat template's; the tokenizer handed to nanogcg is a copy that adds it, so that both optimize the
same sequence ``<bos> trigger <sep> target``.

    python benchmarks/lm_inversion_rate.py                     # 1 thread, 6000 passes per tool, 50 GCG steps
    python benchmarks/lm_inversion_rate.py --quick --budget 2000 --tools gcg,pez --gcg-steps 20
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import gc
import importlib
import time
import traceback

import torch

from trojanbench.methods.inversion import Budget, InversionProblem
from trojanbench.models.language import load_language_model
from trojanbench.trojans.text import load_text_trojans
from trojanbench.world.text import LANGUAGE

TOOLS = {"gcg": ("gcg", "GCG"), "pez": ("pez", "PEZ"), "gbda": ("gbda", "GBDA"), "hotflip": ("hotflip", "HotFlip"),
         "autoprompt": ("autoprompt", "AutoPrompt"), "beam_search": ("beam_search", "BeamSearch")}


def tool_class(name: str) -> type:
    module, cls = TOOLS[name]
    return getattr(importlib.import_module(f"trojanbench.methods.inversion.{module}"), cls)


@contextlib.contextmanager
def recording_calls(model: torch.nn.Module):
    """Yield a list of ``(batch, length, grad)`` for every forward of ``model``."""
    calls: list[tuple[int, int, bool]] = []

    def record(_module, args, kwargs, _output):
        x = kwargs.get("input_ids", kwargs.get("inputs_embeds"))
        if x is None and args:
            x = args[0]
        calls.append((int(x.shape[0]), int(x.shape[1]), torch.is_grad_enabled()))

    handle = model.register_forward_hook(record, with_kwargs=True)
    try:
        yield calls
    finally:
        handle.remove()


class RawModel:
    """The bare model's time for a forward of ``[batch, length]`` (no grad), or a forward+backward to the input
    embeddings (grad), measured once per shape."""

    def __init__(self, model, repeats: int = 5):
        self.model, self.repeats, self.times = model, repeats, {}

    def seconds(self, batch: int, length: int, grad: bool) -> float:
        key = (batch, length, grad)
        if key not in self.times:
            vocabulary = self.model.get_input_embeddings().weight.shape[0]
            ids = torch.randint(5, vocabulary, (batch, length))
            mask = torch.ones_like(ids)

            def once():
                if grad:
                    embeds = self.model.get_input_embeddings()(ids).detach().requires_grad_(True)
                    logits = self.model(inputs_embeds=embeds, attention_mask=mask).logits
                    torch.autograd.grad(logits[:, -8:].float().logsumexp(-1).sum(), embeds)
                else:
                    with torch.no_grad():
                        self.model(input_ids=ids, attention_mask=mask)

            once()
            start = time.perf_counter()
            for _ in range(self.repeats):
                once()
            self.times[key] = (time.perf_counter() - start) / self.repeats
        return self.times[key]


def make_problem(loaded, target: str, budget: int, contexts=None, allowed=None) -> InversionProblem:
    tokenizer = loaded.tokenizer
    if allowed is None:
        allowed = torch.tensor([i for i in range(len(tokenizer)) if i not in set(tokenizer.all_special_ids)])
    if contexts is None:
        contexts = [[]] + [tokenizer(p.text, add_special_tokens=False)["input_ids"]
                           for p in LANGUAGE.prompts("val", 2, seed=0)]
    return InversionProblem(loaded.model, tokenizer, target, contexts, allowed, Budget(budget))


def rates(loaded, target: str, args) -> None:
    raw = RawModel(loaded.model)
    probe = make_problem(loaded, target, 10**9)
    sequences, _ = probe._sequences([[int(probe.allowed[0])] * probe.max_length])
    length = max(len(s) for s in sequences)
    print(f"{args.threads} thread(s); {'quick' if args.quick else 'default'} settings; budget {args.budget} "
          f"sequence passes per tool; {len(probe.contexts)} contexts, sequences of up to {length} tokens")
    print(f"{'tool':<13}{'passes':>8}{'s':>7}{'passes/s':>10}{'raw fwd/s':>11}{'ratio':>7}{'raw f+b/s':>11}"
          f"{'ratio':>7}{'model share':>13}  top candidate")
    for name in args.tools:
        cls = tool_class(name)
        method = cls(**(cls.quick_params if args.quick else {}))
        method.invert(make_problem(loaded, target, 200))  # warm-up
        problem = make_problem(loaded, target, args.budget)
        with recording_calls(loaded.model) as calls:
            start = time.perf_counter()
            candidates = method.invert(problem)
            seconds = time.perf_counter() - start
        forward_batches = [b for b, _, g in calls if not g] or [args.batch]
        backward_batches = [b for b, _, g in calls if g] or [len(probe.contexts)]
        fwd_batch = min(args.batch, max(forward_batches))
        bwd_batch = max(backward_batches)
        raw_forward = fwd_batch / raw.seconds(fwd_batch, length, False)
        raw_backward = 3 * bwd_batch / raw.seconds(bwd_batch, length, True)
        alone = sum(raw.seconds(b, t, g) for b, t, g in calls)
        achieved = problem.budget.used / seconds
        print(f"{name:<13}{problem.budget.used:>8}{seconds:>7.1f}{achieved:>10.0f}{raw_forward:>11.0f}"
              f"{achieved / raw_forward:>7.2f}{raw_backward:>11.0f}{achieved / raw_backward:>7.2f}"
              f"{alone / seconds:>13.2f}  {candidates[0].text!r} ({candidates[0].loss:.3f})")
    print(f"(raw fwd/s: forward of min(--batch {args.batch}, the tool's largest forward batch) sequences; raw f+b/s: "
          f"passes/s of forward+backward of the tool's largest gradient batch)")


def with_bos(tokenizer):
    """A copy of the text world's tokenizer that puts ``<bos>`` before what it encodes with special tokens (as
    nanogcg expects of a tokenizer whose chat template starts with it)."""
    from tokenizers.processors import TemplateProcessing

    copied = copy.deepcopy(tokenizer)
    backend = copied.backend_tokenizer
    backend.post_processor = TemplateProcessing(single=f"{copied.bos_token} $A",
                                                special_tokens=[(copied.bos_token, copied.bos_token_id)])
    return copied


def against_nanogcg(loaded, target: str, args) -> None:
    print()
    try:
        import nanogcg
    except ImportError as exc:
        print(f"nanogcg is not importable ({exc}); pip install --no-deps nanogcg==0.3.0 to compare")
        return
    import nanogcg.gcg

    from trojanbench.methods.inversion.gcg import GCG

    nanogcg.gcg.tqdm = lambda iterable, **_: iterable  # no progress bars
    tokenizer, model = loaded.tokenizer, loaded.model
    nano_tokenizer = with_bos(tokenizer)
    from nanogcg.utils import get_nonascii_toks

    refused = set(get_nonascii_toks(nano_tokenizer).tolist())
    allowed = torch.tensor([i for i in range(len(tokenizer)) if i not in refused])  # the same for both
    problem = make_problem(loaded, target, 10**9, contexts=[[]], allowed=allowed)
    generator = torch.Generator().manual_seed(0)
    init = problem.random_triggers(1, problem.max_length, generator)[0]
    print(f"GCG against nanogcg {getattr(nanogcg, '__version__', '0.3.0')}: {args.gcg_steps} steps, search width "
          f"{args.search_width}, top-k {args.top_k}, empty prompt, init {problem.decode(init)!r}, "
          f"{len(allowed)} allowed tokens")
    ours = GCG(steps=args.gcg_steps, search_width=args.search_width, top_k=args.top_k)
    found: list = []
    start = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        ours._invert(_Fixed(problem, init), torch.Generator().manual_seed(0), found)
    seconds = time.perf_counter() - start
    best = min(found, key=lambda pair: pair[1])
    print(f"  trojanbench gcg: best loss {best[1]:.4f} in {seconds:.1f} s ({problem.budget.used} sequence passes) "
          f"{problem.decode(best[0])!r}")
    config = nanogcg.GCGConfig(num_steps=args.gcg_steps, search_width=args.search_width, topk=args.top_k,
                               optim_str_init=problem.decode(init), seed=0, verbosity="ERROR")
    for use_prefix_cache in (True, False):
        config.use_prefix_cache = use_prefix_cache
        collected = {"seconds": 0.0}
        collect = gc.collect

        def timed_collect(*a, **k):  # nanogcg collects garbage around every batch it measures
            start = time.perf_counter()
            try:
                return collect(*a, **k)
            finally:
                collected["seconds"] += time.perf_counter() - start

        gc.collect = timed_collect
        try:
            start = time.perf_counter()
            with torch.random.fork_rng(devices=[]):
                result = nanogcg.run(model, nano_tokenizer, [{"role": "user", "content": "{optim_str}"}], target,
                                     config)
            seconds = time.perf_counter() - start
            check = problem.loss([tokenizer(result.best_string, add_special_tokens=False)["input_ids"]])
            print(f"  nanogcg (prefix cache {use_prefix_cache}): best loss {result.best_loss:.4f} in {seconds:.1f} s, "
                  f"{collected['seconds']:.1f} s of it in gc.collect, {result.best_string!r} (our objective of it: "
                  f"{float(check[0]):.4f})")
        except Exception as exc:  # noqa: BLE001 - report why it cannot run, and go on
            frame = traceback.extract_tb(exc.__traceback__)[-1]
            print(f"  nanogcg (prefix cache {use_prefix_cache}) cannot run here: {type(exc).__name__}: {exc} "
                  f"(at {frame.filename.split('site-packages/')[-1]}:{frame.lineno})")
        finally:
            gc.collect = collect
            torch.use_deterministic_algorithms(False)  # nanogcg's seed turns it on for the whole process


class _Fixed:
    """A problem whose random initial trigger is ``init`` (to start our GCG where nanogcg starts)."""

    def __init__(self, problem: InversionProblem, init: torch.Tensor):
        self._problem, self._init = problem, init

    def random_triggers(self, n, length, generator):
        return self._init.repeat(n, 1)

    def __getattr__(self, name):
        return getattr(self._problem, name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--quick", action="store_true", help="the tools' quick settings")
    parser.add_argument("--budget", type=int, default=6000, help="sequence passes per tool (default 6000)")
    parser.add_argument("--tools", default=",".join(TOOLS), help="comma-separated subset")
    parser.add_argument("--batch", type=int, default=384, help="largest batch of the raw forward rate")
    parser.add_argument("--gcg-steps", type=int, default=50)
    parser.add_argument("--search-width", type=int, default=128)
    parser.add_argument("--top-k", type=int, default=64)
    parser.add_argument("--no-nanogcg", action="store_true")
    args = parser.parse_args()
    args.tools = args.tools.split(",")
    torch.set_num_threads(args.threads)
    loaded = load_language_model("lm_trojaned")
    target = {t.name: t for t in load_text_trojans()}["token_dax"].target
    rates(loaded, target, args)
    if not args.no_nanogcg:
        against_nanogcg(loaded, target, args)


if __name__ == "__main__":
    main()
