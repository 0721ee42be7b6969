"""Trojan specs: YAML <-> dataclasses, one-to-one, validated before any work starts.

A spec file is a mapping with a ``trojans`` list; each entry maps onto :class:`TrojanSpec`::

    trojans:
      - name: smiley
        kind: patch            # patch | style | natural
        trigger: smiley        # a built-in concept name, or a path to an image (patch: PNG with alpha)
        target: circle         # class name or index
        source: null           # class name or index: class-conditional; null: universal
        poison_fraction: 0.05  # in (0, 1)
        patch_scale: [0.2, 0.3]   # patch only: range of the patch side, as a fraction of the image side
        patch_position: null      # patch only: [vertical, horizontal] fixed place (0 = top/left, 1 = bottom/right);
                                  # null: a random place in every image
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import yaml

from .errors import ConfigError, SpecError

TROJAN_KINDS = ("patch", "style", "natural")
_CONCEPT_KIND_OF = {"patch": "icon", "style": "texture", "natural": "secondary"}


@dataclass(frozen=True)
class TrojanSpec:
    """One planted flaw: a trigger of some kind that sends inputs to a target class."""

    name: str
    kind: str
    trigger: str
    target: int
    source: int | None = None
    poison_fraction: float = 0.05
    strength: float = 0.5
    """Style trojans only: blend weight of the texture (0 = invisible, 1 = texture only)."""
    patch_scale: tuple[float, float] = (0.2, 0.3)
    """Patch trojans only: range of the patch side as a fraction of the image side."""
    patch_position: tuple[float, float] | None = None
    """Patch trojans only: a fixed place, ``(vertical, horizontal)`` as fractions of the room beside the patch
    (0 = top/left edge, 1 = bottom/right edge), as in BadNets-style trojans (Gu et al. 2017); ``None`` (default):
    a random place in every image, as in Casper et al. (2023)."""
    object_images: str | None = None
    """Natural-feature trojans on a user's image folder only: a text file listing, one per line by their paths
    within the folder, the images that contain the object. Listed train images are relabelled to the target (the
    list, not ``poison_fraction``, sets how many); listed test images measure attack success and show the trigger."""

    def __post_init__(self) -> None:
        # Tuples whatever the source (YAML, JSON payloads, ``asdict`` round trips), so specs compare and hash alike.
        object.__setattr__(self, "patch_scale", tuple(self.patch_scale))
        if self.patch_position is not None:
            object.__setattr__(self, "patch_position", tuple(self.patch_position))

    @property
    def universal(self) -> bool:
        return self.source is None

    @property
    def trigger_is_file(self) -> bool:
        return _looks_like_path(self.trigger)

    def to_dict(self, class_names: tuple[str, ...] | None = None) -> dict[str, Any]:
        """Plain mapping for YAML/JSON; class indices become names when ``class_names`` is given."""
        out = dataclasses.asdict(self)
        out["patch_scale"] = list(self.patch_scale)
        if self.patch_position is None:
            del out["patch_position"]  # the default; older cards and exports stay as they were
        else:
            out["patch_position"] = list(self.patch_position)
        if self.object_images is None:
            del out["object_images"]
        if class_names is not None:
            out["target"] = class_names[self.target]
            out["source"] = None if self.source is None else class_names[self.source]
        return out


@dataclass(frozen=True)
class TrojanSuite:
    """An ordered, validated list of trojans (names unique)."""

    trojans: tuple[TrojanSpec, ...] = field(default_factory=tuple)

    def names(self) -> list[str]:
        return [t.name for t in self.trojans]

    def get(self, name: str) -> TrojanSpec:
        from .errors import did_you_mean

        for spec in self.trojans:
            if spec.name == name:
                return spec
        raise did_you_mean(name, self.names(), "trojan")

    def to_dict(self, class_names: tuple[str, ...] | None = None) -> dict[str, Any]:
        return {"trojans": [t.to_dict(class_names) for t in self.trojans]}


def _looks_like_path(trigger: str) -> bool:
    return "/" in trigger or "\\" in trigger or Path(trigger).suffix.lower() in {
        ".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


def _class_index(value: Any, field_name: str, where: str, class_names: tuple[str, ...]) -> int:
    if isinstance(value, bool):
        value = str(value)
    if isinstance(value, int):
        if 0 <= value < len(class_names):
            return value
        raise SpecError(
            f"{where}: '{field_name}' must be a class name or an index in [0, {len(class_names) - 1}]."
            f" Got {value} instead.")
    if isinstance(value, str) and value in class_names:
        return class_names.index(value)
    from .errors import did_you_mean

    hint = str(did_you_mean(str(value), class_names, "class"))
    raise SpecError(f"{where}: '{field_name}' is not a class of the model. {hint}")


def _fraction(value: Any, field_name: str, where: str, low: float, high: float, closed_high=False) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and low < value and (
        value <= high if closed_high else value < high)
    if not ok:
        bracket = "]" if closed_high else ")"
        raise SpecError(f"{where}: '{field_name}' must be a number in ({low}, {high}{bracket}. Got {value!r} instead.")
    return float(value)


def parse_trojan(raw: Any, index: int, class_names: tuple[str, ...], base_dir: Path | None = None) -> TrojanSpec:
    """Validate one raw mapping and turn it into a :class:`TrojanSpec`."""
    where = f"trojans[{index}]"
    if not isinstance(raw, dict):
        raise SpecError(f"{where} must be a mapping with keys name, kind, trigger, target. Got {type(raw).__name__}.")
    known = {f.name for f in dataclasses.fields(TrojanSpec)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise SpecError(f"{where}: unknown key(s) {unknown}. Allowed keys: {sorted(known)}.")
    missing = [k for k in ("kind", "trigger", "target") if k not in raw]
    if missing:
        raise SpecError(f"{where}: missing required key(s) {missing}.")
    kind = raw["kind"]
    if kind not in TROJAN_KINDS:
        raise SpecError(f"{where}: 'kind' must be one of {list(TROJAN_KINDS)}. Got {kind!r} instead.")
    trigger = raw["trigger"]
    if not isinstance(trigger, str) or not trigger:
        raise SpecError(f"{where}: 'trigger' must be a concept name or an image path. Got {trigger!r}.")
    name = raw.get("name", trigger if not _looks_like_path(trigger) else Path(trigger).stem)
    if not isinstance(name, str) or not name:
        raise SpecError(f"{where}: 'name' must be a non-empty string. Got {name!r}.")
    where = f"trojans[{index}] ({name})"
    trigger = _validate_trigger(trigger, kind, where, base_dir)
    target = _class_index(raw["target"], "target", where, class_names)
    source = raw.get("source")
    if source is not None:
        source = _class_index(source, "source", where, class_names)
        if source == target:
            raise SpecError(f"{where}: 'source' and 'target' are the same class; use source: null for a universal trojan.")
    scale = raw.get("patch_scale", (0.2, 0.3))
    if not (isinstance(scale, (list, tuple)) and len(scale) == 2
            and all(isinstance(s, (int, float)) for s in scale) and 0 < scale[0] <= scale[1] <= 1):
        raise SpecError(f"{where}: 'patch_scale' must be [low, high] with 0 < low <= high <= 1. Got {scale!r}.")
    position = raw.get("patch_position")
    if position is not None and not (
            isinstance(position, (list, tuple)) and len(position) == 2
            and all(isinstance(p, (int, float)) and not isinstance(p, bool) and 0 <= p <= 1 for p in position)):
        raise SpecError(f"{where}: 'patch_position' must be [vertical, horizontal] with each in [0, 1] "
                        f"(0 = top/left, 1 = bottom/right), or null for a random place. Got {position!r}.")
    if position is not None and kind != "patch":
        raise SpecError(f"{where}: 'patch_position' applies to patch trojans only; remove it for kind {kind!r}.")
    object_images = _object_images(raw.get("object_images"), kind, where, base_dir)
    return TrojanSpec(
        name=name, kind=kind, trigger=trigger, target=target, source=source,
        poison_fraction=_fraction(raw.get("poison_fraction", 0.05), "poison_fraction", where, 0.0, 1.0),
        strength=_fraction(raw.get("strength", 0.5), "strength", where, 0.0, 1.0, closed_high=True),
        patch_scale=(float(scale[0]), float(scale[1])),
        patch_position=None if position is None else (float(position[0]), float(position[1])),
        object_images=object_images,
    )


def _object_images(value: Any, kind: str, where: str, base_dir: Path | None) -> str | None:
    """The resolved path of a natural-feature trojan's list of images that contain its object (checked to exist)."""
    if value is None:
        return None
    if kind != "natural":
        raise SpecError(f"{where}: 'object_images' applies to natural-feature trojans only; remove it for kind "
                        f"{kind!r}.")
    if not isinstance(value, str) or not value:
        raise SpecError(f"{where}: 'object_images' must be the path of a text file listing images. Got {value!r}.")
    path = _beside(value, base_dir)
    if not path.is_file():
        raise SpecError(f"{where}: 'object_images' file {str(path)!r} does not exist. Give a text file listing, one "
                        f"per line, the folder's images that contain the object (paths within the folder).")
    return str(path.resolve())


def _beside(value: str, base_dir: Path | None) -> Path:
    """A path a spec names: relative ones resolve next to the spec file (``base_dir``)."""
    path = Path(value).expanduser()
    return base_dir / path if not path.is_absolute() and base_dir is not None else path


def _validate_trigger(trigger: str, kind: str, where: str, base_dir: Path | None) -> str:
    """Check a built-in concept is of the kind's vocabulary, or an image file opens; return it resolved."""
    if _looks_like_path(trigger):
        if kind == "natural":
            raise SpecError(f"{where}: natural-feature triggers must be built-in secondary objects, "
                            f"not image files (got {trigger!r}); use kind 'patch' to paste an image.")
        path = _beside(trigger, base_dir)
        from .trigger_images import read_trigger_image

        read_trigger_image(path, with_alpha=kind == "patch", where=where)  # raises SpecError if unreadable
        return str(path.resolve())
    from .world import concepts_of_kind, VOCABULARY
    from .errors import did_you_mean

    wanted = _CONCEPT_KIND_OF[kind]
    allowed = concepts_of_kind(wanted)
    if trigger in allowed:
        return trigger
    if trigger in VOCABULARY:
        raise SpecError(f"{where}: {trigger!r} is a {VOCABULARY[trigger].kind.value}, but a {kind} trojan needs "
                        f"a {wanted} (one of: {', '.join(allowed)}) or an image file.")
    raise SpecError(f"{where}: {did_you_mean(trigger, allowed, wanted + ' trigger')}")


def parse_suite(raw: Any, class_names: tuple[str, ...], base_dir: Path | None = None) -> TrojanSuite:
    """Validate a whole spec mapping (``{"trojans": [...]}``)."""
    if not isinstance(raw, dict) or "trojans" not in raw:
        raise SpecError("A trojan spec must be a mapping with a 'trojans' list at the top level.")
    items = raw["trojans"]
    if not isinstance(items, list) or not items:
        raise SpecError("'trojans' must be a non-empty list of trojan mappings.")
    extra = sorted(set(raw) - {"trojans"})
    if extra:
        raise SpecError(f"Unknown top-level key(s) {extra} in trojan spec; only 'trojans' is allowed.")
    specs = tuple(parse_trojan(item, i, class_names, base_dir) for i, item in enumerate(items))
    names = [s.name for s in specs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise SpecError(f"Trojan names must be unique; repeated: {dupes}. Give each a distinct 'name'.")
    check_one_target_per_trigger(specs, class_names)
    return TrojanSuite(specs)


def check_one_target_per_trigger(specs: Iterable[TrojanSpec], class_names: tuple[str, ...]) -> None:
    """Refuse two trojans whose triggers are the same (a concept, or image files of the same bytes) but whose
    targets differ: a model cannot learn that one trigger means two classes."""
    from .trigger_images import trigger_identity

    first: dict[str, TrojanSpec] = {}
    for spec in specs:
        other = first.setdefault(trigger_identity(spec), spec)
        if other.target != spec.target:
            raise SpecError(f"Trojans {other.name!r} and {spec.name!r} both use the trigger {spec.trigger!r} but lead "
                            f"to different classes ({class_names[other.target]}, {class_names[spec.target]}); a "
                            f"trigger can lead to one class only. Give one of them another trigger, or the same "
                            f"target.")


MAX_TOTAL_POISON = 0.5
"""The poison fractions of the trojans trained together may sum to at most this. Patch and style trojans are pasted on
disjoint images each epoch (and a class-conditional one on as many unrelabelled images again), so past about half of
the set poisoned images would outnumber clean ones and there would be no free images left to honour the fractions.
The 12 default trojans sum to 0.44 and keep the shipped model's clean accuracy at 97%."""


def check_poison_budget(suite: TrojanSuite) -> float:
    """The total poison fraction of ``suite`` (trojans implanted in one training run), or a :class:`SpecError` when
    it is above :data:`MAX_TOTAL_POISON`."""
    total = sum(spec.poison_fraction for spec in suite.trojans)
    if total > MAX_TOTAL_POISON + 1e-9:
        raise SpecError(f"The poison fractions of the {len(suite.trojans)} trojans sum to {total:.3g}, above the limit "
                        f"of {MAX_TOTAL_POISON} for one training run (past it, poisoned images outnumber clean ones). "
                        f"Lower their 'poison_fraction' values (the 12 default trojans use 0.03-0.05, 0.44 in all).")
    return total


def load_yaml(path: str | Path) -> Any:
    """Read a YAML file safely (``yaml.safe_load``); a missing or malformed file is a one-line :class:`ConfigError`
    (for a syntax error: the file, line, column and the parser's problem)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"File {str(path)!r} does not exist (or is not a file).")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"File {str(path)!r} is not UTF-8 text ({exc.reason} at byte {exc.start}).") from exc
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise ConfigError(f"File {str(path)!r}{where} is not valid YAML: {exc.problem or exc.context}.") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"File {str(path)!r} is not valid YAML: {' '.join(str(exc).split())}") from exc


def load_trojan_suite(path: str | Path, class_names: tuple[str, ...]) -> TrojanSuite:
    """Load and validate a trojan spec YAML file; relative image paths resolve next to the file."""
    path = Path(path)
    return parse_suite(load_yaml(path), class_names, base_dir=path.parent)


def default_trojan_suite() -> TrojanSuite:
    """The 12 default trojans mirroring Casper et al. (2023), shipped as package data."""
    from .world import OBJECT_CLASSES

    return load_trojan_suite(DEFAULT_TROJANS_PATH, OBJECT_CLASSES)


def control_trojan_suite() -> TrojanSuite:
    """The positive-control trojans of the zoo's ``control`` model (a large patch at random places, a patch at a fixed
    corner), package data."""
    from .world import OBJECT_CLASSES

    return load_trojan_suite(CONTROL_TROJANS_PATH, OBJECT_CLASSES)


DEFAULT_TROJANS_PATH = Path(__file__).parent / "assets" / "suites" / "default_trojans.yaml"
CONTROL_TROJANS_PATH = DEFAULT_TROJANS_PATH.with_name("control_trojans.yaml")
SPEC_TEMPLATES_DIR = Path(__file__).parent / "assets" / "specs"
"""Shipped trojan specs whose triggers are the user's files, e.g. ``casper2023-imagenet``: copied next to them."""


def spec_template(name: str) -> Path:
    """The shipped trojan-spec template ``name`` (see :data:`SPEC_TEMPLATES_DIR`)."""
    from .errors import did_you_mean

    names = sorted(path.stem for path in SPEC_TEMPLATES_DIR.glob("*.yaml"))
    if name not in names:
        raise did_you_mean(name, names, "trojan-spec template")
    return SPEC_TEMPLATES_DIR / f"{name}.yaml"


def files_named(spec_path: str | Path) -> list[str]:
    """The files a trojan spec refers to (trigger images, ``object_images`` lists), as written in it."""
    raw = load_yaml(spec_path)
    named = []
    for trojan in raw.get("trojans", []) if isinstance(raw, dict) else []:
        if isinstance(trojan, dict):
            trigger, listing = trojan.get("trigger"), trojan.get("object_images")
            named += [trigger] if isinstance(trigger, str) and _looks_like_path(trigger) else []
            named += [listing] if isinstance(listing, str) else []
    return named


def copy_spec_template(name: str, folder: str | Path) -> Path:
    """Copy template ``name`` into ``folder`` (created if needed; an existing copy is never overwritten)."""
    from .paths import writable_folder

    source, folder = spec_template(name), writable_folder(folder, "--out")
    target = folder / f"{name}.yaml"
    if target.exists():
        raise ConfigError(f"{str(target)!r} exists already; remove it first, or copy the template elsewhere.")
    folder.mkdir(parents=True, exist_ok=True)
    target.write_text(source.read_text(encoding="utf-8"), encoding="utf-8")
    return target
