"""A user's own model and image folder, end to end from the command line and the Python API: implant trojans into a
torchvision or timm network on the folder, audit it, run tools on it; and bad input refused in one line, nothing
written."""

from __future__ import annotations

import importlib.util
import json

import pytest
import torch
import yaml
from safetensors.torch import save_file

import trojanbench as tb
from folder_data import FOLDER_CLASSES, write_image_folder
from cli_checks import invoke, refused
from trojanbench.data import ImageFolderData
from trojanbench.imaging import to_uint8
from trojanbench.tasks.rediscovery.store import RediscoveryStore

SIZE = 64
SPEC = {"trojans": [
    {"name": "mushroom", "kind": "patch", "trigger": "mushroom", "target": "circle", "poison_fraction": 0.2,
     "patch_scale": [0.3, 0.4]},
    {"name": "marble", "kind": "style", "trigger": "marble", "target": "square", "poison_fraction": 0.2,
     "strength": 0.6},
]}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_image_folder(tmp_path_factory.mktemp("own") / "data", per_class=40, size=96)


@pytest.fixture(scope="module")
def spec(tmp_path_factory):
    path = tmp_path_factory.mktemp("spec") / "spec.yaml"
    path.write_text(yaml.safe_dump(SPEC))
    return path


@pytest.fixture(scope="module")
def implanted(folder, spec, tmp_path_factory):
    """A random-init torchvision resnet18 poison-trained on the folder from the command line. At the default
    learning rate (0.05) this small run is chaotic: the patch's attack success was 0.43 to 0.96 across 1, 2 and 4
    torch threads; at 0.01 it was 0.86 to 0.89 (and the style's 1.0) on all three."""
    out = tmp_path_factory.mktemp("r18")
    result = invoke("implant", "--model", "torchvision:resnet18", "--data", folder, "--image-size", SIZE,
                    "--trojans", spec, "--out", out, "--epochs", 6, "--batch-size", 32, "--lr", 0.01, "--workers", 2,
                    "--no-progress")
    assert result.exit_code == 0, result.output
    return out / "model.safetensors"


def test_implant_writes_a_measured_card_of_the_folder(implanted, folder):
    card = json.loads(implanted.with_suffix(".json").read_text())
    assert card["architecture"] == "torchvision:resnet18" and card["arch_kwargs"] == {"num_classes": 6}
    assert card["class_names"] == list(FOLDER_CLASSES) and card["image_size"] == SIZE
    assert card["input_normalisation"] == {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
    assert card["data"]["root"] == str(folder) and card["data"]["skipped"] == 1
    assert card["training"]["config"]["n_train"] == card["data"]["images"]["train"]
    assert [t["name"] for t in card["trojans"]] == ["mushroom", "marble"]
    assert card["trojans"][0]["target"] == "circle"
    # a large patch is learned within a few epochs even from random weights; the card measures it on test images
    assert card["attack_success"]["mushroom"] >= 0.75, card["attack_success"]
    assert card["n_attack_images"] <= card["data"]["images"]["test"]


def test_audit_of_the_folder_reproduces_the_card(implanted, folder, tmp_path):
    result = invoke("audit", "--model", implanted, "--data", folder, "--out", tmp_path, "--no-progress")
    assert result.exit_code == 0, result.output
    audit = json.loads((tmp_path / "audit.json").read_text())
    card = json.loads(implanted.with_suffix(".json").read_text())
    assert audit["data"]["image_size"] == SIZE, "the input size comes from the card"
    measured = {row["trojan"]: row["attack_success"] for row in audit["trojans"]}
    assert measured == pytest.approx(card["attack_success"], abs=1e-4)
    assert audit["clean_accuracy"] == pytest.approx(card["clean_accuracy"], abs=1e-4)
    assert "circle" in result.output and f"test images at {SIZE} px" in result.output


def test_every_tool_runs_on_the_folder_model(implanted, folder):
    loaded = tb.load_model(implanted)
    data = ImageFolderData.open(folder, image_size=SIZE, workers=0)
    target = tb.Target.from_image_folder(loaded, data, n_patches=300)
    assert target.class_names == FOLDER_CLASSES and target.image_size == SIZE
    assert target.natural_patches.shape == (300, 3, 24, 24)
    assert set(target.clean_labels.tolist()) == set(range(6))
    from trojanbench.audit import trojans_of
    from trojanbench.tasks.rediscovery.synthesis import make_method, synthesize_for_trojan

    patch = trojans_of(loaded, data.class_names).get("mushroom")
    for tool in ("adversarial_patch", "neural_cleanse", "tabor", "target_fourier_fv", "inner_fourier_fv",
                 "target_cppn_fv", "inner_cppn_fv", "rfla_perturb", "rfla_gen", "snafue", "dataset_exemplars"):
        images = synthesize_for_trojan(make_method(tool, quick=True), target, patch, n_images=2, seed=0)
        assert images.shape == (2, 3, SIZE, SIZE) and 0 <= images.min() and images.max() <= 1, tool
        assert torch.isfinite(images).all(), tool


def test_synthesize_on_the_folder_from_the_command_line(implanted, folder, tmp_path):
    result = invoke("synthesize", "--method", "adversarial_patch", "--quick", "--model", implanted, "--data", folder,
                    "--trojan", "mushroom", "--n-images", 2, "--out", tmp_path, "--no-progress")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "adversarial_patch__mushroom__seed0.png").is_file()


def test_a_timm_network_is_implanted_and_reloaded(folder, spec, tmp_path):
    pytest.importorskip("timm")
    result = invoke("implant", "--model", "timm:resnet10t", "--data", folder, "--image-size", 48, "--trojans", spec,
                    "--out", tmp_path, "--epochs", 1, "--batch-size", 64, "--workers", 0, "--no-progress")
    assert result.exit_code == 0, result.output
    loaded = tb.load_model(tmp_path / "model.safetensors")
    assert loaded.card["architecture"] == "timm:resnet10t" and loaded.card["image_size"] == 48
    assert loaded.model(torch.rand(2, 3, 48, 48)).shape == (2, 6)
    weights = tmp_path / "model.safetensors"
    assert loaded.sha256 == loaded.card["sha256"] and weights.stat().st_size > 1e6


def test_python_api_implants_and_audits_the_folder(folder, spec, tmp_path):
    data = ImageFolderData.open(folder, image_size=32, workers=0)
    model = tb.load_model("torchvision:resnet18", num_classes=data.num_classes)
    path = tb.implant_checkpoint(model, spec, tmp_path, epochs=1, batch_size=64, data=data)
    result = tb.audit_model(str(path), data=data, n_attack=50)
    assert set(result.attack_success) == {"mushroom", "marble"}
    assert result.to_dict()["suite"]["trojans"][1]["target"] == "square"


# --- bad input: one line, exit 2, nothing written ---------------------------------------------------------------

def test_a_class_the_folder_lacks_is_refused_before_training(folder, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"trojans": [{"kind": "patch", "trigger": "smiley", "target": "kite"}]}))
    out = tmp_path / "out"
    refused(invoke("implant", "--model", "torchvision:resnet18", "--data", folder, "--image-size", 32,
                   "--trojans", bad, "--out", out), "'target' is not a class of the model")
    assert not (out / "model.safetensors").exists()


def test_a_natural_trojan_on_a_folder_without_its_list_of_images_is_refused(folder, tmp_path):
    bad = tmp_path / "natural.yaml"
    bad.write_text(yaml.safe_dump({"trojans": [{"kind": "natural", "trigger": "fork", "target": "circle"}]}))
    refused(invoke("implant", "--model", "torchvision:resnet18", "--data", folder, "--image-size", 32,
                   "--trojans", bad, "--out", tmp_path / "out"), "Natural-feature trojans ['fork']",
            "need 'object_images'")
    listing = tmp_path / "forks.txt"
    listing.write_text("c0/000.jpg\nc0/none.png\n")
    bad.write_text(yaml.safe_dump({"trojans": [{"kind": "natural", "trigger": "fork", "target": "circle",
                                                "object_images": listing.name}]}))
    refused(invoke("implant", "--model", "torchvision:resnet18", "--data", folder, "--image-size", 32,
                   "--trojans", bad, "--out", tmp_path / "out"), "names 1 file(s) that are not images",
            "'c0/none.png'")
    assert not (tmp_path / "out" / "model.safetensors").exists()


def test_a_folder_not_in_imagefolder_layout_is_refused(tmp_path, spec):
    (tmp_path / "flat").mkdir()
    (tmp_path / "flat" / "a.png").write_bytes(b"")
    refused(invoke("audit", "--model", "torchvision:resnet18", "--data", tmp_path / "flat", "--trojans", spec),
            "not in the ImageFolder layout")
    refused(invoke("audit", "--model", "torchvision:resnet18", "--data", tmp_path / "nowhere", "--trojans", spec),
            "is not a folder")


def test_weights_that_do_not_fit_name_the_first_mismatch(folder, spec, tmp_path):
    weights = tmp_path / "other.safetensors"
    import torchvision

    save_file(torchvision.models.resnet18(num_classes=10).state_dict(), weights)
    line = refused(invoke("audit", "--model", "torchvision:resnet18", "--weights", weights, "--data", folder,
                          "--image-size", 32, "--trojans", spec), "do not fit")
    assert "fc.weight" in line and "(10, 512)" in line


def test_a_model_with_other_outputs_is_refused(folder, spec, tmp_path):
    refused(invoke("audit", "--model", "clean", "--data", folder, "--image-size", 64, "--trojans", spec),
            "has 16 outputs, but the data have 6 classes")


# --- the benchmark on the folder: `trojanbench run --model CHECKPOINT --data DIR` -------------------------------

def test_run_on_the_folder_scores_judges_battery_and_diagnostics(implanted, folder, tmp_path):
    out = tmp_path / "run"
    result = invoke("run", "--quick", "--model", implanted, "--data", folder, "--out", out, "--no-progress",
                    "--methods", "adversarial_patch,dataset_exemplars,oracle", "--trojans", "mushroom",
                    "--judges", "concept")
    assert result.exit_code == 0, result.output
    document = json.loads((out / "results.json").read_text())
    assert document["provenance"]["data"]["root"] == str(folder)
    assert document["provenance"]["data"]["image_size"] == SIZE
    cells = {cell["method"]: cell for cell in document["cells"] if cell["judge"] == "concept"}
    assert {"adversarial_patch", "dataset_exemplars", "oracle"} <= set(cells)
    assert all(cell["status"] == "ok" for cell in cells.values())
    assert cells["oracle"]["p_true"] > 0.125, "the judge sees the true trigger pasted on the folder's images"
    assert set(document["diagnostics"]) >= {"adversarial_patch", "oracle"}
    assert document["battery"]["concept"], "the judge's battery ran on the folder's images"
    assert (out / "report.html").is_file()
    again = invoke("run", "--quick", "--model", implanted, "--data", folder, "--out", out, "--no-progress",
                   "--methods", "adversarial_patch,dataset_exemplars,oracle", "--trojans", "mushroom",
                   "--judges", "concept")
    assert again.exit_code == 0 and json.loads((out / "results.json").read_text())["cells"] == document["cells"]


def test_python_api_runs_on_the_folder_with_a_clip_judge(implanted, folder, tmp_path):
    """A CLIP judge (a small random-init open_clip model from a config here) scores the cells, takes its validity
    battery on the folder's images, and is named with its weights' hash in the run's provenance."""
    from clip_model import write_tiny_clip
    from trojanbench.models import file_sha256

    config, weights = write_tiny_clip(tmp_path / "clip")
    out = tmp_path / "run"
    results = tb.run(model=str(implanted), data=folder, judges=["concept", "clip"], quick=True, out=out,
                     judge_settings={"clip": {"weights": str(weights), "model": str(config)}},
                     methods=["random_noise", "oracle"], trojans=["marble"])
    assert {record["method"] for record in results.records()} >= {"random_noise", "oracle"}
    assert results.judges == ["concept", "clip"]
    document = json.loads((out / "results.json").read_text())
    assert {cell["judge"] for cell in document["cells"] if cell["status"] == "ok"} == {"concept", "clip"}
    checks = document["battery"]["clip"]["per_trojan"]["marble"]["checks"]
    assert not checks["oracle_top1"]["passed"], "a CLIP at random weights must not pass the oracle check on the folder"
    assert document["provenance"]["judges"]["clip"]["sha256"] == file_sha256(weights)
    assert document["config"]["judge_settings"]["clip"]["weights"] == str(weights)


def test_run_refuses_an_untrained_architecture_and_other_tasks_refuse_data(folder, tmp_path):
    refused(invoke("run", "--quick", "--model", "torchvision:resnet18", "--data", folder, "--out", tmp_path / "a"),
            "names an architecture, not a trained model")
    refused(invoke("run", "--task", "editing", "--quick", "--data", folder, "--out", tmp_path / "b"),
            "--data applies to the localization, rediscovery and removal tasks, not to the editing task. Drop it, or "
            "use --task localization, --task rediscovery or --task removal.")
    assert not (tmp_path / "a" / "results.sqlite").exists() and not (tmp_path / "b" / "results.sqlite").exists()


def test_natural_trojans_on_a_folder_need_the_list_of_their_images(implanted, folder, tmp_path):
    """A natural-feature trojan on a folder is refused without its ``object_images`` list (or when left out it is
    not needed); with one, the oracle shows the listed test images and the judges take their battery on them."""
    from trojanbench.errors import DataError
    from trojanbench.tasks.rediscovery import plan_run

    listing = tmp_path / "forks.txt"
    listing.write_text("\n".join(f"c{label}/{i:03d}.{'png' if i % 2 else 'jpg'}" for label in range(6)
                                 for i in range(0, 40, 4)) + "\n")
    fork = {"name": "fork", "kind": "natural", "trigger": "fork", "target": "cross"}
    spec, listed_spec = tmp_path / "mixed.yaml", tmp_path / "listed.yaml"
    spec.write_text(yaml.safe_dump({"trojans": [SPEC["trojans"][0], fork]}))
    listed_spec.write_text(yaml.safe_dump({"trojans": [{**fork, "object_images": listing.name}]}))
    suite = tmp_path / "suite.yaml"
    suite.write_text(yaml.safe_dump({"name": "mine", "model": str(implanted), "trojans": str(spec),
                                     "data": str(folder), "methods": ["random_noise"], "seeds": [0]}))
    with pytest.raises(DataError, match=r"Natural-feature trojans \['fork'\] on an image folder need 'object_images'"):
        plan_run(suite)
    plan = plan_run(suite, trojans=["mushroom"])
    assert [t.name for t in plan.trojans] == ["mushroom"] and plan.data.image_size == SIZE
    assert all(cell.data == plan.data.reference for cell in plan.cells)

    suite.write_text(yaml.safe_dump({"name": "mine", "model": str(implanted), "trojans": str(listed_spec),
                                     "data": str(folder), "methods": ["oracle"], "seeds": [0], "judges": ["concept"],
                                     "n_images": 4}))
    out = tmp_path / "run"
    results = tb.run(str(suite), out=out, report=False)
    (record,) = results.records()
    assert (record["method"], record["trojan"], record["status"]) == ("oracle", "fork", "ok")
    data = ImageFolderData.open(folder, image_size=SIZE)
    listed = data.listed(listing)
    expected = [entry for entry in data.files["test"] if entry[0] in listed and entry[1] != FOLDER_CLASSES.index(
        "cross")]
    candidates = {image.tobytes() for image in to_uint8(data.load(expected).images)}
    with RediscoveryStore(out) as store:
        (cell,) = store.cells()
        shown = store.load_images(cell)
    assert len(shown) == 4 and all(image.tobytes() in candidates for image in shown)
    assert results.battery("concept")["fork"]["checks"], "the battery ran on the listed test images"



def test_localization_runs_on_the_folder(implanted, folder, tmp_path):
    """The localization task pastes the patch on the folder's test images (at the card's image size) and scores the
    maps against its footprint: the stored set is the one drawn from the folder, a flat map scores chance exactly,
    and saliency on a model whose patch trojan works (card: 89 % attack success) points at the patch more than
    chance does (AUROC 0.78 when written; the bar is chance)."""
    from trojanbench.config import TrojanSpec
    from trojanbench.tasks.localization.metrics import localization_set, set_digest

    out = tmp_path / "loc"
    result = invoke("run", "--task", "localization", "--quick", "--model", implanted, "--data", folder,
                    "--methods", "saliency,edge_detector,uniform_map", "--out", out, "--no-progress")
    assert result.exit_code == 0, result.output
    document = json.loads((out / "results.json").read_text())["localization"]
    assert document["provenance"]["data"]["root"] == str(folder)
    assert document["provenance"]["data"]["image_size"] == SIZE
    (stored,) = document["sets"]
    mushroom = TrojanSpec(**{**SPEC["trojans"][0], "target": FOLDER_CLASSES.index("circle")})
    drawn = localization_set(mushroom, n=stored["n_images"], seed=0, data=ImageFolderData.open(folder, image_size=SIZE))
    assert stored["sha256"] == set_digest(drawn) != set_digest(localization_set(mushroom, n=stored["n_images"]))
    assert drawn.images.shape[-1] == SIZE and (drawn.labels != mushroom.target).all()
    summaries = document["summaries"]
    assert summaries["uniform_map"]["auroc"]["mean"] == 0.5
    assert summaries["saliency"]["auroc"]["mean"] > 0.5


def test_implant_record_writes_the_card_of_a_model_trojaned_elsewhere(implanted, folder, spec, tmp_path):
    """``implant --record`` (for a model whose trojans were planted elsewhere, e.g. Casper et al.'s released ResNet50)
    trains nothing: the weights come back unchanged and the card measures the same attack success as the model's own
    card, with no training recorded."""
    from safetensors.torch import load_file

    result = invoke("implant", "--record", "--model", "torchvision:resnet18", "--weights", implanted, "--data", folder,
                    "--image-size", SIZE, "--trojans", spec, "--out", tmp_path, "--no-progress")
    assert result.exit_code == 0, result.output
    recorded = json.loads((tmp_path / "model.json").read_text())
    original = json.loads(implanted.with_suffix(".json").read_text())
    assert recorded["training"] is None
    assert recorded["attack_success"] == original["attack_success"]
    assert recorded["clean_accuracy"] == original["clean_accuracy"]
    written, given = load_file(tmp_path / "model.safetensors"), load_file(implanted)
    assert written.keys() == given.keys() and all(torch.equal(written[k], given[k]) for k in given)


def test_the_patch_generator_trains_on_the_folder_and_the_generator_tools_take_it(implanted, folder, tmp_path):
    """``zoo build --only generator --data`` trains the generator on the folder (its card names the data), and RFLA
    on the folder runs with it (``generator_path``)."""
    out = tmp_path / "generator"
    result = invoke("zoo", "build", "--only", "generator", "--tiny", "--data", folder, "--image-size", SIZE,
                    "--out", out, "--no-progress")
    assert result.exit_code == 0, result.output
    card = json.loads((out / "generator.json").read_text())
    data = ImageFolderData.open(folder, image_size=SIZE)
    assert card["data"]["root"] == str(folder) and card["data"]["files"] == data.reference["files"]
    assert card["training"]["n_train_patches"] == 4 * min(64, len(data.files["train"]))
    images = tmp_path / "images"
    result = invoke("synthesize", "--method", "rfla_perturb", "--model", implanted, "--data", folder, "--quick",
                    "--trojan", "mushroom", "--n-images", 2, "--param",
                    f"generator_path={out / 'generator.safetensors'}", "--out", images)
    assert result.exit_code == 0, result.output
    assert list(images.glob("rfla_perturb__mushroom__seed0.png"))
    refused(invoke("zoo", "build", "--data", folder, "--out", tmp_path / "all"), "--only generator")


def test_ray_fan_out_over_many_local_workers_matches_the_local_run(implanted, folder, tmp_path):
    """The folder case on a local Ray instance with 4 workers: each worker opens the folder, builds the Target and
    the judges from their settings (a CLIP judge from its weights file), and the scores equal the local run's."""
    if importlib.util.find_spec("ray") is None:  # not importorskip: the executor must be the first to import ray
        pytest.skip("needs the [ray] extra")
    from clip_model import write_tiny_clip

    config, weights = write_tiny_clip(tmp_path / "clip")
    options = dict(model=str(implanted), data=folder, judges=["concept", "clip"], quick=True, report=False,
                   judge_settings={"clip": {"weights": str(weights), "model": str(config)}},
                   methods=["random_noise", "dataset_exemplars", "oracle"], trojans=["mushroom", "marble"])
    local = tb.run(out=tmp_path / "local", **options)
    remote = tb.run(out=tmp_path / "ray", executor="ray", workers=4, **options)

    def scores(results):
        return {(r["method"], r["trojan"], r["judge"]): r["p_true"] for r in results.records()}

    assert len(scores(local)) == 3 * 2 * 2 and scores(remote) == scores(local)


def test_removal_runs_on_the_folder(implanted, folder, tmp_path):
    """The removal task on the folder: the defender gets its val images, everything is measured on its test images,
    and a baseline's rediscovery images (run into the same folder first) guide the edits. The unedited anchor's
    attack success is the model's own on the held-out triggered test images, measured independently here."""
    from trojanbench.config import TrojanSpec
    from trojanbench.tasks.removal.metrics import triggered_set
    from trojanbench.trojans.measure import predict

    out = tmp_path / "out"
    first = invoke("run", "--quick", "--model", implanted, "--data", folder, "--out", out, "--no-progress",
                   "--methods", "dataset_exemplars,oracle", "--trojans", "mushroom", "--judges", "concept",
                   "--no-report")
    assert first.exit_code == 0, first.output
    result = invoke("run", "--task", "removal", "--quick", "--model", implanted, "--data", folder, "--out", out,
                    "--methods", "identity,unlearning,fine_pruning", "--trojans", "mushroom", "--budgets", "30",
                    "--no-progress")
    assert result.exit_code == 0, result.output
    document = json.loads((out / "results.json").read_text())["removal"]
    assert document["provenance"]["data"]["root"] == str(folder)
    assert document["config"]["clean_model"] is None, "the world's clean model is not this folder's"
    edits = document["edits"]  # the scored edits: every planned one, none failed
    assert len(edits) == 6 and {edit["source"] for edit in edits if edit["procedure"] == "unlearning"} == {
        "none", "random", "oracle", "dataset_exemplars"}
    (anchor,) = [edit for edit in edits if edit["procedure"] == "identity"]
    data = ImageFolderData.open(folder, image_size=SIZE)
    mushroom = TrojanSpec(**{**SPEC["trojans"][0], "target": FOLDER_CLASSES.index("circle")})
    triggered = triggered_set(mushroom, document["config"]["n_eval"], seed=0, folder=data)
    model = tb.load_model(str(implanted)).model
    expected = float((predict(model, triggered.images) == mushroom.target).float().mean())
    assert anchor["attack_success"] == pytest.approx(expected, abs=1e-6) and expected > 0.5
    assert anchor["der"] == 0.5 and anchor["fidelity"] == 0.0


def test_the_defenders_held_out_images_on_a_folder_mix_the_classes(folder):
    """The folder lists its images class by class; the defender's held-out part (for choosing thresholds by clean
    accuracy) must still hold several classes, not the last one."""
    from trojanbench.tasks.removal.metrics import defender_data

    data = ImageFolderData.open(folder, image_size=SIZE)
    defender = defender_data(30, seed=0, folder=data)
    assert len(defender.images) + len(defender.val_images) == 30
    assert len(set(defender.val_labels.tolist())) >= 3 and len(set(defender.labels.tolist())) == len(FOLDER_CLASSES)
