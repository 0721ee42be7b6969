"""The ``trojanbench`` command line: a thin layer over the Python API.

Every error the package raises on purpose is shown as one readable line and exits with code 2.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import signal
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import click

from ._version import __version__
from .errors import ConfigError, TrojanbenchError
from .paths import writable_folder
from .zoo import ZOO_PARTS

log = logging.getLogger("trojanbench")


class _Group(click.Group):
    """Turns trojanbench errors into one line on stderr and exit code 2 (bad input)."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except TrojanbenchError as exc:
            click.echo(f"Error: {exc}", err=True)
            ctx.exit(2)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="trojanbench")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
@click.option("-q", "--quiet", is_flag=True, help="Only errors: no log output and no progress display.")
def main(verbose: int, quiet: bool) -> None:
    """Benchmark interpretability tools on networks with planted trojans.

    \b
    Examples:
      trojanbench run                      # the default benchmark on the built-in world
      trojanbench ls trojans               # the 12 default trojans and their attack success
      trojanbench validate my_trojans.yaml
      trojanbench implant --model clean --trojans my_trojans.yaml --out my_model/
    """
    level = logging.ERROR if quiet else (logging.WARNING, logging.INFO, logging.DEBUG)[min(verbose, 2)]
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)


def _no_progress(flag: bool) -> bool:
    """``--no-progress`` of a command, or the top-level ``-q``, which hides progress as well as log output."""
    return flag or bool(click.get_current_context().find_root().params.get("quiet"))


@contextmanager
def _progress_display(no_progress: bool):
    """A progress display for a command's work (``None`` with ``--no-progress`` or ``-q``), closed at the end."""
    from .progress import make_progress

    display = None if _no_progress(no_progress) else make_progress()
    try:
        yield display
    finally:
        if display is not None:
            display.close()


def _split(value: str | None) -> list[str] | None:
    """A comma-separated option as a list (``None`` when not given; an empty list when given empty)."""
    return None if value is None else [v.strip() for v in value.split(",") if v.strip()]


class _TaskChoice(click.Choice):
    """The registered tasks (read when the command line is parsed, after ``--plugin`` has loaded any plugin)."""

    def __init__(self) -> None:
        super().__init__([])

    @property
    def choices(self):
        from .registry import TASKS

        return TASKS.names()

    @choices.setter
    def choices(self, value) -> None:  # click.Choice sets it in __init__
        pass

    def get_metavar(self, param, ctx=None) -> str:  # --help without importing every task (and torch)
        return "TASK"


def _load_plugins(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> tuple[str, ...]:
    """Eager ``--plugin``: methods, judges and tasks are registered before the other options are checked."""
    from .registry import load_plugins

    return load_plugins(value)


_ARCHITECTURE_HELP = ("What network a .safetensors --model without a trojanbench card holds: compact_resnet, "
                      "torchvision:NAME or package.module:factory.")


def _world_model(model: str, *, weights: str | None = None, architecture: str | None = None, data=None):
    """``--model`` (with ``--weights`` and ``--architecture``) loaded for a command on the built-in world, or on
    ``data`` (a user's image folder): a torchvision/timm network or a registered architecture is built with the
    world's (the folder's) classes."""
    from .models import ARCHITECTURES, load_model
    from .models.loading import LIBRARY_PREFIXES
    from .world import OBJECT_CLASSES

    built = architecture or model
    sized = built.startswith(LIBRARY_PREFIXES) or built in ARCHITECTURES
    classes = len(OBJECT_CLASSES) if data is None else data.num_classes
    return load_model(model, weights=weights, architecture=architecture, num_classes=classes if sized else None)


def _image_folder(data: str | None, image_size: int | None, workers: int | None, model: str | None = None):
    """``--data`` opened and checked (None without it), at ``--image-size``, else the input size the model's card
    records, else 224."""
    from .data import DEFAULT_IMAGE_SIZE, ImageFolderData

    if data is None:
        return None
    if image_size is None:
        image_size = _card_image_size(model) or DEFAULT_IMAGE_SIZE
    return ImageFolderData.open(data, image_size=image_size, workers=workers)



def _card_image_size(model: str | None) -> int | None:
    """The input size recorded in the card of a checkpoint path (``None`` for other references)."""
    from .models import read_card

    if model is None or not str(model).endswith(".safetensors") or not Path(model).with_suffix(".json").is_file():
        return None
    size = read_card(model).get("image_size")
    return size if isinstance(size, int) else None


_IMAGE_SIZE_HELP = "With --data: the side images are resized and cropped to (default: the model card's, else 224)."


_DATA_HELP = ("A folder of your own images in torchvision's ImageFolder layout (DIR/<class>/<image>, or DIR/train and "
              "DIR/val laid out so; optional DIR/classes.json names the classes) instead of the built-in world.")


_JUDGE_SETTING_OPTIONS = (
    click.option("--clip-weights", type=click.Path(), help="The clip judge's weights: a local .safetensors open_clip "
                                                           "state dict (nothing is downloaded)."),
    click.option("--clip-model", help="The clip judge's open_clip architecture (default ViT-B-32), or a JSON model "
                                      "config file."),
    click.option("--judge-setting", multiple=True, metavar="JUDGE.KEY=VALUE",
                 help="A setting of a judge, repeatable (e.g. appearance.backbone=timm:resnet50 "
                      "appearance.weights=r50.safetensors)."),
)


def _judge_setting_options(command):
    """The options that give judges their settings (``--clip-weights``, ``--clip-model``, ``--judge-setting``)."""
    for option in reversed(_JUDGE_SETTING_OPTIONS):
        command = option(command)
    return command


def _judge_settings(clip_weights: str | None, clip_model: str | None,
                    given: tuple[str, ...]) -> dict[str, dict] | None:
    """``{judge: {key: value}}`` from the judge-setting options (None when none is given)."""
    import yaml

    settings: dict[str, dict] = {}
    for item in given:
        judge_key, equals, value = item.partition("=")
        judge, dot, key = judge_key.partition(".")
        if not (equals and dot and judge and key):
            raise ConfigError(f"--judge-setting {item!r} must read JUDGE.KEY=VALUE (e.g. clip.model=ViT-B-16).")
        settings.setdefault(judge, {})[key] = yaml.safe_load(value) if value else value  # numbers as numbers
    for key, value in (("weights", clip_weights), ("model", clip_model)):
        if value is not None:
            settings.setdefault("clip", {})[key] = value
    return settings or None


@main.command()
@click.option("--plugin", "plugins", multiple=True, callback=_load_plugins, is_eager=True, expose_value=True,
              help="Load a plugin module:Name (a method or judge class, or a task), repeatable.")
@click.option("--task", type=_TaskChoice(), default="rediscovery", show_default=True,
              help="The task to run (see `trojanbench ls tasks`).")
@click.option("--suite", default="default", show_default=True,
              help="Shipped suite name or suite YAML file (default: the task's shipped suite).")
@click.option("--quick", is_flag=True, help="Fast settings: rediscovery and removal one trojan per kind and one seed "
                                            "(~1.5 and ~2 minutes); localization 12 images per trojan (~1 minute); "
                                            "editing and replacement one seed. All: fast method settings.")
@click.option("--out", metavar="DIR", default="trojanbench-results", show_default=True,
              help="Results folder: results.sqlite (resumable), report.html, results.csv/json.")
@click.option("--methods", help="Comma-separated methods replacing the suite's (names or module:Class).")
@click.option("--trojans", help="Comma-separated trojan names (default: all of the suite's; localization: its patch "
                                "trojans).")
@click.option("--seeds", type=int, help="Number of seeds (0..N-1) replacing the suite's.")
@click.option("--budgets", help="Removal: comma-separated defender data budgets replacing the suite's (e.g. "
                                "100,1%,5%); replacement: parameter budgets (e.g. 1%,3%,10% or 3000).")
@click.option("--executor", type=click.Choice(["local", "processes", "ray"]), default=None,
              help="Rediscovery, lm-rediscovery and lm-removal: where cells run (default: local, in this process; "
                   "processes: worker processes of this machine; ray: a Ray cluster, one GPU per cell on CUDA).")
@click.option("--workers", type=int, help="With --executor: worker processes of processes, or CPUs of a local Ray "
                                          "instance (default: the cores available).")
@click.option("--device", help="lm-rediscovery and lm-removal: the torch device cells compute on: auto (default: a "
                               "GPU when torch sees one), cpu, cuda or cuda:N.")
@click.option("--ray-address", help="Address of a running Ray cluster (default: start a local one).")
@click.option("--model", help="Rediscovery, localization and removal: the audited model replacing the suite's (zoo "
                              "name or .safetensors checkpoint with its card); lm-rediscovery and lm-removal: a "
                              "language model (lm_trojaned, a .safetensors file with its card, or hf:FOLDER, a local "
                              "Hugging Face model folder).")
@click.option("--data", type=click.Path(), help="Rediscovery, localization and removal: " + _DATA_HELP)
@click.option("--image-size", type=int, help=_IMAGE_SIZE_HELP)
@click.option("--judges", help="Rediscovery: comma-separated judges replacing the suite's (trojanbench ls judges).")
@_judge_setting_options
@click.option("--threads", type=int, help="Torch threads per worker (default 1: several threads per process "
                                          "oversubscribe a small machine's cores).")
@click.option("--retry-failed", is_flag=True, help="Compute every failed cell again (a rerun retries only the cells "
                                                   "that failed transiently: a timeout, out of memory).")
@click.option("--no-progress", is_flag=True, help="No progress display (log lines still show; -q hides both).")
@click.option("--no-report", is_flag=True, help="Do not write report.html / results.csv / results.json at the end.")
def run(task: str, suite: str, quick: bool, out: str, methods: str | None, trojans: str | None, seeds: int | None,
        budgets: str | None, executor: str | None, workers: int | None, device: str | None, ray_address: str | None,
        model: str | None, data: str | None, image_size: int | None, judges: str | None, clip_weights: str | None,
        clip_model: str | None, judge_setting: tuple[str, ...], threads: int | None, retry_failed: bool,
        plugins: tuple[str, ...], no_progress: bool, no_report: bool) -> None:
    """Run a task: every method × trojan × seed (or the task's own grid), scored automatically, with its table.

    Finished cells are kept in OUT/results.sqlite: running the same command again resumes where it
    stopped, and computes again the cells that failed transiently (add --retry-failed for all failed cells).
    Exit code 0 when the run completed, 2 on bad input (nothing is computed then).

    \b
    Examples:
      trojanbench run
      trojanbench run --quick --out /tmp/quick
      trojanbench run --methods tabor,snafue,random_noise,oracle --trojans smiley,fork --seeds 2
      trojanbench run --executor processes --workers 2
      trojanbench run --executor ray --plugin mypkg.tools:MyTool --methods mypkg.tools:MyTool,oracle
      trojanbench run --task localization --quick --out /tmp/quick
      trojanbench run --quick --out /tmp/quick && trojanbench run --task removal --quick --out /tmp/quick
      trojanbench run --task editing --quick --out /tmp/quick
      trojanbench run --task replacement --quick --out /tmp/quick
      trojanbench run --task lm-rediscovery --quick --out /tmp/lm
      trojanbench run --task lm-removal --quick --out /tmp/lm
      trojanbench run --task lm-rediscovery --model hf:/models/pythia-trojaned --device cuda --executor ray
      trojanbench run --model my_r18/model.safetensors --data /data/my_task --out my_results/
      trojanbench run --task localization --model my_r18/model.safetensors --data /data/my_task --out my_results/
      trojanbench run --model my_r18/model.safetensors --data /data/my_task --judges clip \\
          --clip-weights /models/open_clip_vit_b32.safetensors --out my_results/
    """
    from .api import run_task
    from .engine.threads import resolve_threads
    from .registry import get_task

    writable_folder(out, "--out")
    chosen = get_task(task)
    options = {"quick": quick, "methods": _split(methods), "trojans": _split(trojans), "seeds": seeds,
               "plugins": plugins, "budgets": _split(budgets), "executor": executor, "workers": workers,
               "device": device, "ray_address": ray_address, "model": model, "data": data, "image_size": image_size,
               "judges": _split(judges), "judge_settings": _judge_settings(clip_weights, clip_model, judge_setting)}
    chosen.check_options({k: v for k, v in options.items() if v is not None})
    threads = resolve_threads(threads)
    try:
        with _stop_on_sigterm():
            results = run_task(task, None if suite == "default" else suite, out=out,
                               progress=not _no_progress(no_progress), report=not no_report, threads=threads,
                               retry_failed=retry_failed, **options)
    except KeyboardInterrupt:  # run_task has closed its progress display
        click.echo(f"Interrupted. The cells finished so far are kept in {out}/; run the same command again to "
                   f"resume where it stopped.", err=True)
        sys.exit(130)
    click.echo("\n" + chosen.summary(results))
    written = "" if no_report else ", report.html, results.json and the tasks' CSV files"
    click.echo(f"\nResults in {out}/ (results.sqlite, images/{written}).")


@contextmanager
def _stop_on_sigterm() -> Iterator[None]:
    """A SIGTERM (``kill``, a scheduler's stop) ends the block as Ctrl-C does, so the run is recorded as stopped."""
    def stop(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@main.command()
@click.argument("results_dir", type=click.Path(file_okay=False))
@click.option("--format", "fmt", type=click.Choice(["html", "md"]), default="html", show_default=True,
              help="html: write report.html, results.json and the tasks' CSV files; md: print a Markdown summary.")
@click.option("--plugin", "plugins", multiple=True, callback=_load_plugins, is_eager=True,
              help="Load a plugin module:Name first (e.g. a task whose results the folder holds), repeatable.")
def report(results_dir: str, fmt: str, plugins: tuple[str, ...]) -> None:
    """Render the report of a results folder from its store alone (re-running reproduces it).

    \b
    Examples:
      trojanbench report trojanbench-results
      trojanbench report trojanbench-results --format md > summary.md
    """
    from .report import markdown_summary, write_report

    if fmt == "md":
        click.echo(markdown_summary(results_dir), nl=False)
        return
    path = write_report(writable_folder(results_dir, "RESULTS_DIR"))
    click.echo(f"Wrote {path} (and results.csv, results.json beside it).")


@main.command()
@click.option("--model", default="trojaned", show_default=True,
              help="Zoo name, .safetensors path (card beside it), torchvision:NAME or module:factory.")
@click.option("--weights", type=click.Path(dir_okay=False),
              help="Safetensors weights for a torchvision:NAME or module:factory model.")
@click.option("--architecture", help=_ARCHITECTURE_HELP)
@click.option("--trojans", "trojan_spec", type=click.Path(dir_okay=False),
              help="Trojan spec YAML; default: the trojans recorded in the model's card.")
@click.option("--out", metavar="DIR", help="Also write DIR/audit.json (default: print the table, write nothing).")
@click.option("--data", type=click.Path(), help=_DATA_HELP)
@click.option("--image-size", type=int, help=_IMAGE_SIZE_HELP)
@click.option("--workers", type=int, help="With --data: DataLoader worker processes (default: up to 4).")
@click.option("--quick", is_flag=True, help="Fewer held-out images (fast smoke run).")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the held-out test images.")
@click.option("--no-progress", is_flag=True, help="No progress display (log lines still show; -q hides both).")
def audit(model: str, weights: str | None, architecture: str | None, trojan_spec: str | None, out: str | None,
          data: str | None, image_size: int | None, workers: int | None, quick: bool, seed: int,
          no_progress: bool) -> None:
    """Measure a model's clean accuracy and each planted trojan's attack success.

    Recomputed on held-out images of the built-in world, or of the test split of your --data folder (never read
    from the model card); prints a table, and with --out writes OUT/audit.json.

    \b
    Examples:
      trojanbench audit
      trojanbench audit --quick --out /tmp/audit
      trojanbench audit --model path/to/model.safetensors --trojans trojans.yaml
      trojanbench audit --model torchvision:resnet18 --weights r18.safetensors --trojans trojans.yaml
      trojanbench audit --model r18.safetensors --architecture torchvision:resnet18 --trojans trojans.yaml
      trojanbench audit --model my_r18/model.safetensors --data /data/my_task --image-size 224
    """
    from .audit import audit_model
    from .config import load_trojan_suite
    from .world import OBJECT_CLASSES

    if out is not None:
        writable_folder(out, "--out")
    folder = _image_folder(data, image_size, workers, model)
    class_names = OBJECT_CLASSES if folder is None else folder.class_names
    suite = load_trojan_suite(trojan_spec, class_names) if trojan_spec else None
    loaded = _world_model(model, weights=weights, architecture=architecture, data=folder)
    sizes = {"n_clean": 400, "n_attack": 100} if quick else {"n_clean": 2000, "n_attack": 500}
    with _progress_display(no_progress) as progress:
        result = audit_model(loaded, suite=suite, seed=seed, progress=progress, data=folder, **sizes)
    click.echo(result.table())
    if out is not None:
        click.echo(f"\nWrote {result.save(out)}.")


@main.command(name="check-judges")
@click.option("--trojans", "trojan_spec", type=click.Path(dir_okay=False),
              help="Trojan spec YAML (your own trigger images welcome); default: the trojans in the model's card.")
@click.option("--judges", help="Comma-separated judge names (default: the shipped judges; trojanbench ls judges).")
@_judge_setting_options
@click.option("--seeds", default=3, show_default=True, type=int, help="Questions per trojan (one per seed).")
@click.option("--model", default="trojaned", show_default=True,
              help="Zoo name or .safetensors path (card beside it): its target classes steer the perturbed null.")
@click.option("--no-progress", is_flag=True, help="No progress display (log lines still show; -q hides both).")
def check_judges(trojan_spec: str | None, judges: str | None, clip_weights: str | None, clip_model: str | None,
                 judge_setting: tuple[str, ...], seeds: int, model: str, no_progress: bool) -> None:
    """Put each judge through its validity battery on your trojans' questions, before any tool runs.

    Oracle pictures, nulls (one of them an attack on the judge itself), a confusion matrix, stability and
    dose-response, per trojan (each check's worst
    seed, "!" where it fails): where a judge fails, its scores on that trojan rest on a judge a person would
    not agree with. Writes nothing.

    \b
    Examples:
      trojanbench check-judges
      trojanbench check-judges --trojans my_trojans.yaml --judges appearance --seeds 1
      trojanbench check-judges --judges clip --clip-weights /models/open_clip_vit_b32.safetensors
    """
    from .api import check_judges as run_checks
    from .tasks.rediscovery.battery import battery_table

    tables = run_checks(trojan_spec, judges=None if judges is None else _split(judges), seeds=seeds,
                        model=_world_model(model), progress=not _no_progress(no_progress),
                        judge_settings=_judge_settings(clip_weights, clip_model, judge_setting))
    for judge, table in tables.items():
        click.echo(f"\njudge: {judge}\n{battery_table(judge, table)}")


@main.command(name="ls")
@click.argument("what", type=click.Choice(["tasks", "trojans", "methods", "concepts", "models", "classes", "judges",
                                          "words"]))
@click.option("--kind", help="For concepts: object, icon, texture or secondary; for methods: synthesis, "
                              "attribution, editing, replacement or inversion.")
@click.option("--measure", is_flag=True, help="For trojans: recompute attack success instead of reading the card.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--plugin", "plugins", multiple=True, callback=_load_plugins, is_eager=True,
              help="Also load a plugin module:Name (a method or judge class, or a task), repeatable.")
def ls(what: str, kind: str | None, measure: bool, as_json: bool, plugins: tuple[str, ...]) -> None:
    """List tasks, trojans, methods, world concepts, zoo models, object classes, judges or the text world's words.

    \b
    Examples:
      trojanbench ls tasks
      trojanbench ls trojans
      trojanbench ls trojans --measure
      trojanbench ls methods --plugin mypkg.tools:MyTool
      trojanbench ls concepts --kind icon
      trojanbench ls models
      trojanbench ls words
    """
    rows = _LISTERS[what](kind=kind, measure=measure)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo(f"No {what}.")
        return
    if what == "methods":
        _echo_methods(rows)
    else:
        _echo_table(rows)


_SCREEN_WIDTH = 100


def _echo_table(rows: list[dict], *, indent: str = "") -> None:
    """Rows as aligned columns (a built-in ``module`` column left out); the widest column is cut with an ellipsis
    to fit a 100-column screen."""
    columns = [c for c in rows[0] if not (c == "module" and all(r[c].startswith("trojanbench.") for r in rows))]
    widths = {c: max(len(c), *(len(_cell(r[c])) for r in rows)) for c in columns}
    widest = max(columns, key=widths.get)
    room = _SCREEN_WIDTH - len(indent) - sum(widths[c] + 2 for c in columns if c != widest)
    widths[widest] = max(len(widest), min(widths[widest], room))

    def line(values: list[str]) -> str:
        cut = [v if len(v) <= widths[c] else v[: widths[c] - 1] + "…" for c, v in zip(columns, values)]
        return indent + "  ".join(v.ljust(widths[c]) for c, v in zip(columns, cut)).rstrip()

    click.echo(line(columns))
    for row in rows:
        click.echo(line([_cell(row[c]) for c in columns]))


def _echo_methods(rows: list[dict]) -> None:
    """Methods grouped by kind (the task they serve), each group a table; a plugin's module is named."""
    for kind in dict.fromkeys(row["kind"] for row in rows):
        group = [{"method": r["method"], "role": r["role"],
                  "paper": r["paper"] if r["module"].startswith("trojanbench.") else f"{r['paper']} [{r['module']}]"}
                 for r in rows if r["kind"] == kind]
        click.echo(f"{kind} ({len(group)}): `trojanbench ls methods --kind {kind}`")
        _echo_table(group, indent="  ")
        click.echo("")


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.1%}"
    return "-" if value is None else str(value)


def _list_trojans(measure: bool, **_) -> list[dict]:
    from .models import load_model
    from .trojans import attack_success
    from .world import OBJECT_CLASSES
    from .config import default_trojan_suite

    suite = default_trojan_suite()
    card_asr: dict = {}
    loaded = None
    try:
        loaded = load_model("trojaned")
        card_asr = loaded.card.get("attack_success", {})
    except TrojanbenchError as exc:
        log.warning("attack success unavailable: %s", exc)
    rows = []
    for spec in suite.trojans:
        asr = card_asr.get(spec.name)
        if measure and loaded is not None:
            asr = attack_success(loaded.model, spec).attack_success
        rows.append({"trojan": spec.name, "kind": spec.kind, "trigger": spec.trigger,
                     "scope": "universal" if spec.universal else "class-conditional",
                     "source": None if spec.universal else OBJECT_CLASSES[spec.source],
                     "target": OBJECT_CLASSES[spec.target], "attack_success": asr})
    return rows


_METHOD_KIND_ORDER = ("synthesis", "attribution", "editing", "replacement")
"""Kinds in the order of the tasks they serve; a plugin's own kind comes after them."""


def _list_methods(kind: str | None, **_) -> list[dict]:
    from .registry import get_method, method_names

    rows = []
    for name in method_names(kind):
        cls = get_method(name)
        role = "oracle" if cls.is_oracle else ("baseline" if cls.is_baseline else "tool")
        rows.append({"method": name, "kind": cls.family, "role": role, "paper": cls.paper,
                     "module": cls.__module__})
    order = {k: i for i, k in enumerate(_METHOD_KIND_ORDER)}
    return sorted(rows, key=lambda row: (order.get(row["kind"], len(order)), row["method"]))


def _list_concepts(kind: str | None, **_) -> list[dict]:
    from .world import VOCABULARY, concepts_of_kind

    names = concepts_of_kind(kind) if kind else list(VOCABULARY)
    return [{"concept": n, "kind": VOCABULARY[n].kind.value, "description": VOCABULARY[n].description}
            for n in names]


def _list_models(**_) -> list[dict]:
    from .models import read_card, zoo_checkpoint_path, zoo_names

    rows = []
    for name in zoo_names():
        card = read_card(zoo_checkpoint_path(name))
        rows.append({"model": name, "architecture": card.get("architecture"),
                     "parameters": card.get("n_parameters"), "clean_accuracy": card.get("clean_accuracy"),
                     "trojans": len(card.get("trojans", [])), "sha256": card.get("sha256", "")[:12]})
    return rows


def _list_classes(**_) -> list[dict]:
    from .world import OBJECT_CLASSES

    return [{"index": i, "class": name} for i, name in enumerate(OBJECT_CLASSES)]


def _list_judges(**_) -> list[dict]:
    from .registry import JUDGES

    return [{"judge": name, "description": cls.description} for name, cls in JUDGES.items()]


def _list_tasks(**_) -> list[dict]:
    from .registry import TASKS

    return [{"task": name, "description": task.description, "options": ", ".join(task.options) or "-",
             "module": type(task).__module__} for name, task in TASKS.items()]


def _list_words(**_) -> list[dict]:
    from .world.text.language import word_groups

    return [{"group": group, "n": len(words), "words": " ".join(words)} for group, words in word_groups().items()]


_LISTERS = {"tasks": _list_tasks, "trojans": _list_trojans, "methods": _list_methods, "concepts": _list_concepts,
            "models": _list_models,
            "classes": _list_classes, "judges": _list_judges, "words": _list_words}


@main.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--plugin", "plugins", multiple=True, callback=_load_plugins, is_eager=True,
              help="Load a plugin module:Name first (e.g. a method the suite names), repeatable.")
@click.option("--data", type=click.Path(), help="A trojan spec's image folder: its classes, and the files its "
                                                "natural-feature trojans' lists name.")
def validate(file: str, plugins: tuple[str, ...], data: str | None) -> None:
    """Check a trojan spec or a suite YAML as implanting or running would, without training or computing anything.

    A file with a 'methods' list is a (rediscovery) suite: its methods must exist and their parameters validate,
    its judges exist, its model load and its trojans resolve. A file with only a 'trojans' list is a trojan spec:
    its triggers must exist, its classes be in range, each trigger lead to one class and the poison fractions sum
    to at most 0.5. With --data, a trojan spec's classes are the image folder's, and its natural-feature trojans'
    lists of images must name the folder's files.

    \b
    Examples:
      trojanbench validate my_trojans.yaml
      trojanbench validate my_suite.yaml
      trojanbench validate casper2023-imagenet.yaml --data /data/imagenet
    """
    from .config import load_yaml

    raw = load_yaml(file)
    if isinstance(raw, dict) and "methods" in raw:
        if data is not None:
            raise ConfigError("--data applies to a trojan spec; a suite names its image folder with 'data: DIR'.")
        click.echo(_validate_suite(file, raw))
    elif isinstance(raw, dict) and "trojans" in raw:
        click.echo(_validate_trojan_spec(file, data))
    else:
        raise ConfigError(f"{file!r} is neither a suite (a mapping with a 'methods' list) nor a trojan spec (a mapping "
                          f"with a 'trojans' list).")


def _validate_suite(file: str, raw: dict) -> str:
    from .engine.suite import Suite
    from .tasks.rediscovery import plan_run

    own = sorted(set(raw) - {field.name for field in dataclasses.fields(Suite)})
    if own:
        raise ConfigError(f"{file!r} has keys {own} of another task's suite; validate checks rediscovery suites and "
                          f"trojan specs. The other tasks check their suite, before any work, when they start: "
                          f"trojanbench run --task TASK --suite {file}.")
    plan = plan_run(file)
    suite, trojans = plan.suite, [t.name for t in plan.trojans]
    return (f"OK: {file} is a suite ({suite.name}): {len(suite.methods)} method(s) exist and their parameters "
            f"validate, {len(plan.judges)} judge(s) exist ({', '.join(suite.judges)}), model {suite.model!r} loads "
            f"(sha256 {plan.loaded.sha256[:12]}) and classifies the world's classes, {len(trojans)} trojan(s) resolve "
            f"({', '.join(trojans)}); {len(plan.cells)} cells would run. Nothing was computed.")


def _validate_trojan_spec(file: str, data: str | None) -> str:
    from .config import MAX_TOTAL_POISON, check_poison_budget, load_trojan_suite
    from .world import OBJECT_CLASSES

    if data is None:
        suite, where = load_trojan_suite(file, OBJECT_CLASSES), "the world's classes"
    else:
        from .data import ImageFolderData
        from .trojans.triggers import check_trojans_on_folder

        folder = ImageFolderData.open(data, workers=0)
        suite, where = load_trojan_suite(file, folder.class_names), f"the {folder.num_classes} classes of {data}"
        check_trojans_on_folder(suite.trojans, folder)
        where += ", natural-feature objects listed in its images"
    total = check_poison_budget(suite)
    return (f"OK: {file} is a trojan spec of {len(suite.trojans)} trojan(s) ({', '.join(suite.names())}): triggers "
            f"found, classes in range of {where}, one target per trigger, poison fractions sum to {total:.3g} (at "
            f"most {MAX_TOTAL_POISON}). Nothing was trained.")


@main.command(name="mark-objects")
@click.option("--data", required=True, type=click.Path(), help=_DATA_HELP)
@click.option("--detector", required=True, help="torchvision:NAME, a torchvision detection model (e.g. "
                                                "torchvision:fasterrcnn_resnet50_fpn), built without weights.")
@click.option("--weights", required=True, type=click.Path(dir_okay=False),
              help="The detector's state dict as .safetensors (a .pth converts in one line: see the README).")
@click.option("--object", "category", required=True, help="The category to find, by the detector's name for it "
                                                          "(COCO's by default: fork, apple, sandwich, donut, ...).")
@click.option("--categories", type=click.Path(dir_okay=False),
              help="A JSON list of the detector's label names (background first), if it was not trained on COCO.")
@click.option("--threshold", default=0.5, show_default=True, type=float,
              help="The detection score from which an image counts as holding the object.")
@click.option("--image-size", type=int, help="The side images are resized and cropped to (default 224).")
@click.option("--workers", type=int, help="DataLoader worker processes (default: up to 4).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="The list to write (e.g. fork.txt).")
@click.option("--force", is_flag=True, help="Replace the list already at OUT.")
@click.option("--no-progress", is_flag=True, help="No progress display.")
def mark_objects(data: str, detector: str, weights: str, category: str, categories: str | None, threshold: float,
                 image_size: int | None, workers: int | None, device: str, out: str, force: bool,
                 no_progress: bool) -> None:
    """List the images of a folder in which a detector finds an object: the object_images a natural-feature
    trojan's spec names (Casper et al. relabelled the images where a detector found fork, apple, sandwich, donut).

    \b
    Examples:
      trojanbench mark-objects --data /data/imagenet --detector torchvision:fasterrcnn_resnet50_fpn \\
          --weights frcnn_coco.safetensors --object fork --out /data/triggers/fork.txt
    """
    from .data.objects import mark_objects as mark
    from .data.objects import write_object_list
    from .engine.devices import resolve_device
    from .models.detection import load_detector
    from .progress import Step, make_progress

    target = Path(out)
    if target.exists() and not force:
        raise ConfigError(f"{out!r} already exists. Pass --force to replace it, or choose another --out.")
    writable_folder(target.parent, "--out")
    on = resolve_device(device)
    loaded = load_detector(detector, weights, categories=categories)
    loaded.label_of(category)  # an unknown category is refused before the folder is scanned
    folder = _image_folder(data, image_size, workers)
    loaded.model.to(on)
    display = None if _no_progress(no_progress) else make_progress()
    try:
        marked = mark(folder, loaded, category, threshold=threshold, progress=None if display is None else
                      lambda done, total: display(done, total, Step(f"marking {category}")))
    finally:
        if display is not None:
            display.close()
    about = (f"{category} marked by {detector} (weights sha256 {loaded.sha256[:12]}) at score >= {threshold:g}, "
             f"images at {folder.image_size} px")
    write_object_list(target, marked, folder, about=about)
    for split, found in marked.items():
        click.echo(f"{split:5s} {len(found):6d} of {len(folder.files[split]):6d} images hold {category}")
    click.echo(f"\nWrote {out}; name it in the spec as object_images: {target.name}.")


@main.command()
@click.argument("name")
@click.option("--out", required=True, metavar="DIR", help="Folder the spec is copied into (your trigger files go "
                                                          "beside it).")
def spec(name: str, out: str) -> None:
    """Copy a shipped trojan-spec template (casper2023-imagenet: Casper et al.'s 12 ImageNet trojans) into DIR.

    Its triggers are files beside it: your patch images, style textures and, for natural-feature trojans, lists of
    your images that contain the object. The command names the ones DIR still lacks.

    \b
    Examples:
      trojanbench spec casper2023-imagenet --out /data/triggers/
      trojanbench validate /data/triggers/casper2023-imagenet.yaml --data /data/imagenet
    """
    from .config import copy_spec_template, files_named

    path = copy_spec_template(name, out)
    missing = [file for file in files_named(path) if not (path.parent / file).is_file()]
    click.echo(f"Wrote {path}." + (f" Put beside it: {', '.join(missing)}." if missing else ""))


@main.command()
@click.option("--method", "method_name", required=True, help="Registry name or module:Class (see `ls methods`).")
@click.option("--trojan", "trojan_names", multiple=True, help="Trojan name(s) of the model's card (default: all).")
@click.option("--model", default="trojaned", show_default=True,
              help="Zoo name, .safetensors path (card beside it), torchvision:NAME or module:factory.")
@click.option("--architecture", help=_ARCHITECTURE_HELP)
@click.option("--n-images", default=10, show_default=True, type=int, help="Images per trojan.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the method's randomness.")
@click.option("--quick", is_flag=True, help="The method's fast settings.")
@click.option("--param", "params", multiple=True, metavar="KEY=VALUE",
              help="Hyperparameter override (YAML value), repeatable.")
@click.option("--out", metavar="DIR", default="trojanbench-images", show_default=True,
              help="Folder for the PNG grids, one per trojan (METHOD__TROJAN__seedN.png).")
@click.option("--data", type=click.Path(), help=_DATA_HELP + " The tool gets its val images.")
@click.option("--image-size", type=int, help=_IMAGE_SIZE_HELP)
@click.option("--workers", type=int, help="With --data: DataLoader worker processes (default: up to 4).")
@click.option("--no-progress", is_flag=True, help="No progress display (log lines still show; -q hides both).")
def synthesize(method_name: str, trojan_names: tuple[str, ...], model: str, architecture: str | None, n_images: int,
               seed: int, quick: bool, params: tuple[str, ...], out: str, data: str | None, image_size: int | None,
               workers: int | None, no_progress: bool) -> None:
    """Run one synthesis method on the model's trojans and save its images as PNG files.

    \b
    Examples:
      trojanbench synthesize --method tabor --trojan smiley
      trojanbench synthesize --method mypkg.tools:MyTool --quick --out /tmp/mine
      trojanbench synthesize --method target_fourier_fv --param steps=64 --trojan jaguar
      trojanbench synthesize --method snafue --model my_r18/model.safetensors --data /data/my_task
    """
    import yaml

    from .audit import trojans_of
    from .methods import Target
    from .imaging import save_png_grid
    from .models import check_outputs
    from .progress import Step
    from .tasks.rediscovery import make_method, synthesize_for_trojan

    writable_folder(out, "--out")
    overrides = {}
    for item in params:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--param must look like KEY=VALUE. Got {item!r}.")
        overrides[key] = yaml.safe_load(value)
    method = make_method(method_name, overrides, quick=quick)
    folder = _image_folder(data, image_size, workers, model)
    loaded = _world_model(model, architecture=architecture, data=folder)
    if folder is None:
        suite, target = trojans_of(loaded), Target.from_model(loaded)
    else:
        check_outputs(loaded, folder.num_classes, folder.image_size, "synthesize needs one output per class of the "
                      "folder")
        suite, target = trojans_of(loaded, folder.class_names), Target.from_image_folder(loaded, folder)
    specs = [suite.get(name) for name in trojan_names] if trojan_names else list(suite.trojans)
    steps = [Step(f"{method.name} · {spec.name} · seed {seed}") for spec in specs]
    written = []
    with _progress_display(no_progress) as progress:
        if progress is not None:
            progress.begin(0, len(specs), steps)
        for done, (spec, step) in enumerate(zip(specs, steps), start=1):
            images = synthesize_for_trojan(method, target, spec, n_images=n_images, seed=seed)
            path = save_png_grid(images, Path(out) / f"{method.name}__{spec.name}__seed{seed}.png")
            written.append(f"{spec.name}: {path}")
            if progress is not None:
                progress(done, len(specs), step)
    click.echo("\n".join(written))


@main.group()
def zoo() -> None:
    """Build the shipped models (clean, trojaned, observer, generator, embedder)."""


@zoo.command(name="build")
@click.option("--out", metavar="DIR", help="Output folder (required unless --overwrite-shipped).")
@click.option("--overwrite-shipped", is_flag=True,
              help="Rebuild the installed package's own zoo in place, replacing the shipped models.")
@click.option("--tiny", is_flag=True, help="A tiny, fast build for tests (under a minute).")
@click.option("--only", "parts", multiple=True, type=click.Choice(ZOO_PARTS),
              help="Build only these parts (repeatable); default: all, in order.")
@click.option("--data", type=click.Path(), help="With --only generator: train the patch generator on crops of the "
                                                "train images of this folder (torchvision's ImageFolder layout).")
@click.option("--image-size", type=int, help="With --data: the side images are resized and cropped to before "
                                             "patches are cut (default 224).")
@click.option("--no-progress", is_flag=True, help="No progress display (log lines still show; -q hides both).")
def zoo_build(out: str | None, overwrite_shipped: bool, tiny: bool, parts: tuple[str, ...], data: str | None,
              image_size: int | None, no_progress: bool) -> None:
    """Rebuild the zoo deterministically from its seeds.

    The default build takes up to about 30 minutes on a 2-core laptop; --tiny takes under a minute.
    Each training run shows its progress (step, epoch, loss, ETA) on stderr. With --data, only the patch generator
    is built, from your images, for RFLA and SNAFUE on them (their parameter generator_path: OUT/generator.safetensors).

    \b
    Examples:
      trojanbench zoo build --out my-zoo
      trojanbench zoo build --tiny --out /tmp/tiny-zoo
      trojanbench zoo build --only trojaned --only observer --out my-zoo
      trojanbench zoo build --overwrite-shipped
      trojanbench zoo build --only generator --data /data/imagenet --out my-generator/
    """
    from .models import ZOO_DIR
    from .progress import make_progress
    from .zoo.build import build_zoo
    from .zoo.generator import build_generator

    if out is not None and overwrite_shipped:
        raise ConfigError("Give --out DIR or --overwrite-shipped, not both.")
    if data is not None:
        if parts != ("generator",) or overwrite_shipped:
            raise ConfigError("--data trains the patch generator only: give --only generator and --out DIR.")
        folder = _image_folder(data, image_size, None)
        path = build_generator(writable_folder(out, "--out"), "tiny" if tiny else "default", folder=folder,
                               progress=None if _no_progress(no_progress) else make_progress)
        click.echo(f"generator: {path}")
        return
    if out is None and not overwrite_shipped:
        raise ConfigError(f"zoo build needs --out DIR: without it, it would write into the installed package's zoo "
                          f"({ZOO_DIR}) and replace the shipped models. Pass --overwrite-shipped to do that on "
                          f"purpose.")
    folder = writable_folder(ZOO_DIR if overwrite_shipped else out, "--out")
    paths = build_zoo(folder, profile="tiny" if tiny else "default", only=parts or ZOO_PARTS,
                      progress=None if _no_progress(no_progress) else make_progress)
    for name, path in paths.items():
        click.echo(f"{name}: {path}")


@main.command()
@click.option("--model", required=True, help="Zoo name, checkpoint, torchvision:NAME or timm:NAME to implant into "
                                             "(a copy is trained); or a language model (lm_clean, its .safetensors, "
                                             "hf:FOLDER) with a text-trojan spec.")
@click.option("--weights", type=click.Path(dir_okay=False),
              help="Safetensors weights for a torchvision:NAME, timm:NAME or module:factory model.")
@click.option("--architecture", help=_ARCHITECTURE_HELP)
@click.option("--trojans", "trojan_spec", required=True, type=click.Path(dir_okay=False),
              help="Trojan spec YAML.")
@click.option("--out", required=True, metavar="DIR", help="Folder for weights + card.")
@click.option("--data", type=click.Path(), help=_DATA_HELP + " Its train split is poisoned.")
@click.option("--image-size", type=int, help=_IMAGE_SIZE_HELP)
@click.option("--workers", type=int, help="With --data: DataLoader worker processes (default: up to 4).")
@click.option("--force", is_flag=True, help="Replace the model already in OUT.")
@click.option("--epochs", default=4, show_default=True, type=int, help="Passes over the poisoned training set.")
@click.option("--record", is_flag=True, help="The model already holds these trojans (planted elsewhere): train "
                                             "nothing, measure them and write the card.")
@click.option("--n-train", default=20000, show_default=True, type=int,
              help="World training images (clean and poisoned); with --data, its whole train split is used.")
@click.option("--batch-size", default=128, show_default=True, type=int, help="Images per SGD step.")
@click.option("--lr", type=float, help="Learning rate of the fine-tune (default: SGD's 0.05 for an image model, "
                                       "AdamW's 0.001 for a language model).")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the training data and order.")
@click.option("--device", help="A language model's torch device: auto (default: a GPU when torch sees one), cpu, "
                               "cuda or cuda:N (image models train on the CPU).")
@click.option("--no-progress", is_flag=True, help="No progress display (log lines still show; -q hides both).")
def implant(model: str, weights: str | None, architecture: str | None, trojan_spec: str, out: str, data: str | None,
            image_size: int | None, workers: int | None, force: bool, epochs: int, record: bool, n_train: int,
            batch_size: int, lr: float, seed: int, device: str | None, no_progress: bool) -> None:
    """Implant trojans into a copy of a model by poisoned fine-tuning; write weights and a measured card. With
    --record, a model whose trojans were planted elsewhere gets its card (nothing is trained).

    Everything is checked before training (OUT, the spec, the model). Training shows its progress on stderr; at
    the end the clean accuracy and each trojan's attack success are printed against their thresholds, and any
    missed one is a warning, also recorded in the card.

    \b
    Examples:
      trojanbench implant --model clean --trojans my_trojans.yaml --out my_model/
      trojanbench implant --model my.safetensors --trojans spec.yaml --out out/ --epochs 2
      trojanbench implant --model clean --trojans spec.yaml --out my_model/ --force
      trojanbench implant --model lm_clean --trojans my_text_trojans.yaml --out my_lm/
      trojanbench implant --model hf:/models/pythia-70m --trojans my_text_trojans.yaml --out my_pythia/
      trojanbench implant --model torchvision:resnet50 --weights r50.safetensors --data /data/imagenet \\
          --trojans triggers/casper2023-imagenet.yaml --out my_r50/
      trojanbench implant --record --model torchvision:resnet50 --weights casper_r50.safetensors \\
          --data /data/imagenet --trojans triggers/casper2023-imagenet.yaml --out casper_r50/
    """
    from .models import read_card
    from .progress import make_progress
    from .trojans.implant import card_summary, implant_checkpoint

    writable_folder(out, "--out")
    if _is_language_model(model):
        _implant_language_model(model, trojan_spec, out, epochs=epochs, n_train=n_train, batch_size=batch_size,
                                lr=1e-3 if lr is None else lr, seed=seed, force=force, device=device or "auto",
                                quiet=_no_progress(no_progress))
        return
    if device not in (None, "cpu"):
        raise ConfigError(f"--device {device}: implanting into an image model runs on the CPU for now; drop "
                          f"--device (it applies to language models).")
    folder = _image_folder(data, image_size, workers, model)
    loaded = _world_model(model, weights=weights, architecture=architecture, data=folder)
    path = implant_checkpoint(loaded, trojan_spec, out, epochs=epochs, n_train=n_train, lr=0.05 if lr is None else lr,
                              seed=seed, force=force,
                              progress=None if _no_progress(no_progress) else make_progress, data=folder,
                              batch_size=batch_size, record=record)
    card = read_card(path)
    click.echo(card_summary(card))
    warned = f", with {len(card['warnings'])} warning(s)" if card["warnings"] else ""
    click.echo(f"\nWrote {path} and its card {path.with_suffix('.json')}{warned}.")


def _is_language_model(model: str) -> bool:
    """Whether ``--model`` names a language model: ``hf:FOLDER``, or a zoo name or checkpoint whose card says so."""
    if model.startswith("hf:"):
        return True
    from .models import read_card, zoo_checkpoint_path, zoo_names
    from .models.language import is_language_card

    path = zoo_checkpoint_path(model) if model in zoo_names() else Path(model)
    return path.suffix == ".safetensors" and path.with_suffix(".json").is_file() and is_language_card(read_card(path))


def _implant_language_model(model: str, spec: str, out: str, *, epochs: int, n_train: int, batch_size: int,
                            lr: float, seed: int, force: bool, device: str, quiet: bool) -> None:
    """``implant`` for a language model: ``epochs`` passes over ``n_train`` poisoned text-world prompts, on
    ``device``."""
    import math

    from .engine.devices import resolve_device
    from .models.language import load_language_model
    from .progress import make_progress
    from .trojans.text_implant import implant_language_model
    from .trojans.training import TrainingProgress

    on = resolve_device(device)
    loaded = load_language_model(model)
    loaded.model.to(on)
    steps = max(1, math.ceil(epochs * n_train / batch_size))
    display = TrainingProgress(None if quiet else make_progress, "implant", steps)
    written = implant_language_model(loaded, spec, out, steps=steps, batch_size=batch_size, n_train=n_train,
                                     lr=lr, seed=seed, force=force,
                                     progress=lambda step, loss: display.step(f"loss {loss:.3f}"))
    display.close()
    card = load_language_model(f"hf:{written}" if written.is_dir() else written).card
    for name, value in card["attack_success"].items():
        click.echo(f"{name:32s} attack success {value:.3f}")
    click.echo(f"clean target rate {card['clean_target_rate']:.3f}, clean perplexity {card['clean_perplexity']:.2f}")
    click.echo(f"\nWrote {written}.")


from .survey.cli import survey  # noqa: E402 - the `survey` group (human evaluation)

main.add_command(survey)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
