"""The ``trojanbench`` command line: a thin layer over the Python API.

Every error the package raises on purpose is shown as one readable line and exits with code 2.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import click

from . import __version__
from .errors import TrojanbenchError

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
@click.option("-q", "--quiet", is_flag=True, help="Only errors.")
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


@main.command()
@click.option("--model", default="trojaned", show_default=True,
              help="Zoo name, .safetensors path (card beside it), torchvision:NAME or module:factory.")
@click.option("--weights", type=click.Path(dir_okay=False),
              help="Safetensors weights for a torchvision:NAME or module:factory model.")
@click.option("--trojans", "trojan_spec", type=click.Path(dir_okay=False),
              help="Trojan spec YAML; default: the trojans recorded in the model's card.")
@click.option("--out", type=click.Path(file_okay=False), default="trojanbench-results", show_default=True)
@click.option("--quick", is_flag=True, help="Fewer held-out images (fast smoke run).")
@click.option("--seed", default=0, show_default=True, type=int)
def run(model: str, weights: str | None, trojan_spec: str | None, out: str, quick: bool, seed: int) -> None:
    """Run the benchmark on a model (default: the shipped trojaned model).

    Measures the audited model on held-out images of the built-in world: clean accuracy and each
    planted trojan's attack success, then writes OUT/audit.json and prints a table.

    \b
    Examples:
      trojanbench run
      trojanbench run --quick --out /tmp/results
      trojanbench run --model path/to/model.safetensors --trojans trojans.yaml
      trojanbench run --model torchvision:resnet18 --weights r18.safetensors --trojans trojans.yaml
    """
    from .audit import audit_model
    from .config import load_trojan_suite
    from .models import load_model
    from .world import OBJECT_CLASSES

    suite = load_trojan_suite(trojan_spec, OBJECT_CLASSES) if trojan_spec else None
    num_classes = len(OBJECT_CLASSES) if model.startswith("torchvision:") else None
    loaded = load_model(model, weights=weights, num_classes=num_classes)
    sizes = {"n_clean": 400, "n_attack": 100} if quick else {"n_clean": 2000, "n_attack": 500}
    result = audit_model(loaded, suite=suite, seed=seed, **sizes)
    path = result.save(out)
    click.echo(result.table())
    click.echo(f"\nWrote {path}. (Feature-synthesis tools are not in this release yet: the benchmark "
               f"measures the audited model and its trojans.)")


@main.command(name="ls")
@click.argument("what", type=click.Choice(["trojans", "concepts", "models", "classes"]))
@click.option("--kind", help="For concepts: object, icon, texture or secondary.")
@click.option("--measure", is_flag=True, help="For trojans: recompute attack success instead of reading the card.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def ls(what: str, kind: str | None, measure: bool, as_json: bool) -> None:
    """List trojans, world concepts, zoo models or object classes.

    \b
    Examples:
      trojanbench ls trojans
      trojanbench ls trojans --measure
      trojanbench ls concepts --kind icon
      trojanbench ls models
    """
    rows = _LISTERS[what](kind=kind, measure=measure)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo(f"No {what}.")
        return
    columns = list(rows[0])
    widths = {c: max(len(c), *(len(_cell(r[c])) for r in rows)) for c in columns}
    click.echo("  ".join(c.ljust(widths[c]) for c in columns))
    for row in rows:
        click.echo("  ".join(_cell(row[c]).ljust(widths[c]) for c in columns))


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


_LISTERS = {"trojans": _list_trojans, "concepts": _list_concepts, "models": _list_models,
            "classes": _list_classes}


@main.command()
@click.argument("spec", type=click.Path(dir_okay=False))
def validate(spec: str) -> None:
    """Check a trojan spec YAML without training anything.

    \b
    Examples:
      trojanbench validate my_trojans.yaml
    """
    from .config import load_trojan_suite
    from .world import OBJECT_CLASSES

    suite = load_trojan_suite(spec, OBJECT_CLASSES)
    click.echo(f"OK: {spec} defines {len(suite.trojans)} trojan(s): {', '.join(suite.names())}.")


@main.group()
def zoo() -> None:
    """Build the shipped models (clean, trojaned, observer)."""


@zoo.command(name="build")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Output folder (default: the package's own zoo folder).")
@click.option("--tiny", is_flag=True, help="A tiny, fast build for tests (under a minute).")
@click.option("--only", type=click.Choice(["all", "classifiers", "observer"]), default="all", show_default=True)
def zoo_build(out: str | None, tiny: bool, only: str) -> None:
    """Rebuild the zoo deterministically from its seeds.

    The default build takes up to about 30 minutes on a 2-core laptop; --tiny takes under a minute.

    \b
    Examples:
      trojanbench zoo build
      trojanbench zoo build --tiny --out /tmp/tiny-zoo
    """
    from .models import ZOO_DIR
    from .zoo import build_zoo

    parts = ("classifiers", "observer") if only == "all" else (only,)
    paths = build_zoo(Path(out) if out else ZOO_DIR, profile="tiny" if tiny else "default", only=parts)
    for name, path in paths.items():
        click.echo(f"{name}: {path}")


@main.command()
@click.option("--model", required=True, help="Zoo name or checkpoint to implant into (a copy is trained).")
@click.option("--trojans", "trojan_spec", required=True, type=click.Path(dir_okay=False),
              help="Trojan spec YAML.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Folder for weights + card.")
@click.option("--epochs", default=4, show_default=True, type=int)
@click.option("--n-train", default=20000, show_default=True, type=int)
@click.option("--lr", default=0.05, show_default=True, type=float)
@click.option("--seed", default=0, show_default=True, type=int)
def implant(model: str, trojan_spec: str, out: str, epochs: int, n_train: int, lr: float, seed: int) -> None:
    """Implant trojans into a copy of a model by poisoned fine-tuning; write weights and a measured card.

    \b
    Examples:
      trojanbench implant --model clean --trojans my_trojans.yaml --out my_model/
      trojanbench implant --model my.safetensors --trojans spec.yaml --out out/ --epochs 2
    """
    from .trojans.implant import implant_checkpoint

    path = implant_checkpoint(model, trojan_spec, out, epochs=epochs, n_train=n_train, lr=lr, seed=seed)
    click.echo(f"Wrote {path} and its card {path.with_suffix('.json')}.")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
