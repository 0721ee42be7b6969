"""Attribution methods: the contract (shape, determinism, validation) and known answers on hand-built models."""

from __future__ import annotations

import copy
import importlib
import importlib.util
import sys
import warnings

import numpy as np
import pytest
import torch
import torch.nn as nn

from trojanbench.errors import ConfigError, MethodError, MissingExtraError
from trojanbench.methods.attribution import CAPTUM_METHODS, AttributionMethod
from trojanbench.methods.attribution._modules import Sum, hookable_copy
from trojanbench.methods.attribution.captum_methods import GuidedGradCam, superpixels
from trojanbench.params import Boolean, InstanceOf, Interval, Options
from trojanbench.models import CompactResNet
from trojanbench.registry import get_method, method_names
from trojanbench.tasks.localization.metrics import localization_metrics

needs_captum = pytest.mark.skipif(importlib.util.find_spec("captum") is None,
                                  reason="needs the optional extra trojanbench[captum]")
ATTRIBUTION = method_names("attribution")
CAPTUM_NAMES = [cls.name for cls in CAPTUM_METHODS]


def _runs(name):
    """A parametrize entry, skipped without Captum for the Captum methods."""
    return pytest.param(name, marks=needs_captum) if name in CAPTUM_NAMES else name


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def red_detector() -> nn.Module:
    """Class 0's logit is the mean over pixels of ReLU(red - green - blue - 0.2); class 1's is its negative.

    Only strongly red pixels drive class 0, so a faithful attribution of class 0 lights the red patch.
    """
    conv, head = nn.Conv2d(3, 1, 1), nn.Linear(1, 2)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([1.0, -1.0, -1.0]).view(1, 3, 1, 1))
        conv.bias.fill_(-0.2)
        head.weight.copy_(torch.tensor([[1.0], [-1.0]]))
        head.bias.zero_()
    return nn.Sequential(conv, nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), head).eval()


def red_patch_images(n: int = 4, size: int = 32, side: int = 8, seed: int = 0):
    """Grey noise scenes with an 8x8 red square at a random place; returns ``(images, masks)``."""
    generator = torch.Generator().manual_seed(seed)
    grey = 0.3 + 0.4 * torch.rand(n, 1, size, size, generator=generator)
    images = (grey + 0.05 * torch.rand(n, 3, size, size, generator=generator)).clamp(0, 1)
    masks = torch.zeros(n, size, size)
    for i in range(n):
        top, left = torch.randint(0, size - side + 1, (2,), generator=generator).tolist()
        images[i, :, top:top + side, left:left + side] = torch.tensor([0.9, 0.1, 0.1]).view(3, 1, 1)
        masks[i, top:top + side, left:left + side] = 1
    return images, masks


@pytest.fixture(scope="module")
def tiny_resnet():
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return CompactResNet(num_classes=16, width=4).eval()


@pytest.fixture(scope="module")
def tiny_images():
    return torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))


def test_the_family_is_registered_with_casper_methods_and_baselines():
    assert set(CAPTUM_NAMES) <= set(ATTRIBUTION) and len(CAPTUM_NAMES) == 16
    assert {"edge_detector", "uniform_map", "random_map"} <= set(ATTRIBUTION)
    for name in ATTRIBUTION:
        cls = get_method(name)
        assert issubclass(cls, AttributionMethod) and cls.family == "attribution" and cls.paper
        assert cls.is_baseline == (name not in CAPTUM_NAMES)


@pytest.mark.parametrize("name", [_runs(n) for n in ATTRIBUTION])
def test_every_method_gives_a_finite_seeded_map_and_leaves_the_model_alone(name, tiny_resnet, tiny_images):
    cls = get_method(name)
    default = cls()
    assert cls(**default.get_params()).get_params() == default.get_params()  # inert constructor
    method = cls(**cls.quick_params)
    state = {k: v.clone() for k, v in tiny_resnet.state_dict().items()}
    rng_before, np_before = torch.get_rng_state(), np.random.get_state()[1].copy()
    images = tiny_images.clone()
    first = method.attribute(tiny_resnet, images, 3, seed=5)
    second = method.attribute(tiny_resnet, images, 3, seed=5)
    assert first.shape == (3, 32, 32) and first.dtype == torch.float32
    assert torch.isfinite(first).all()
    assert torch.equal(first, second), "not deterministic under a seed"
    assert torch.equal(images, tiny_images) and not images.requires_grad
    assert torch.equal(torch.get_rng_state(), rng_before) and np.array_equal(np.random.get_state()[1], np_before)
    assert all(torch.equal(v, state[k]) for k, v in tiny_resnet.state_dict().items())
    assert not tiny_resnet.training and all(p.grad is None for p in tiny_resnet.parameters())


def test_random_map_changes_with_the_seed(tiny_resnet, tiny_images):
    method = get_method("random_map")()
    assert not torch.equal(method.attribute(tiny_resnet, tiny_images, 0, seed=0),
                           method.attribute(tiny_resnet, tiny_images, 0, seed=1))


def test_a_model_in_train_mode_is_run_in_eval_and_restored(tiny_images):
    model = CompactResNet(num_classes=16, width=4).train()
    state = copy.deepcopy(model.state_dict())
    get_method("edge_detector")().attribute(model, tiny_images, 0)
    assert model.training
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())  # BN running stats untouched


# --- known answers on a hand-built model ---------------------------------------------------------------------

EXACT = ["saliency", "integrated_gradients", "input_x_gradient", "deep_lift", "guided_backprop", "guided_grad_cam",
         "lrp"]
COARSE = ["gradient_shap", "deep_lift_shap", "feature_ablation", "occlusion", "lime", "kernel_shap",
          "shapley_value_sampling"]


@needs_captum
@pytest.mark.parametrize("name", EXACT)
def test_gradient_methods_find_the_red_patch_exactly(name):
    images, masks = red_patch_images()
    cls = get_method(name)
    maps = cls(**cls.quick_params).attribute(red_detector(), images, 0, seed=0)
    scores = localization_metrics(maps, masks)
    assert (scores["auroc"] > 0.99).all(), scores
    assert (scores["pointing_game"] == 1).all(), scores
    assert (scores["rank_correlation"] > 0.9).all(), scores


@needs_captum
@pytest.mark.parametrize("name", COARSE)
def test_sampling_and_superpixel_methods_find_the_red_patch(name):
    images, masks = red_patch_images()
    cls = get_method(name)
    maps = cls(**cls.quick_params).attribute(red_detector(), images, 0, seed=0)
    scores = localization_metrics(maps, masks)
    assert scores["auroc"].mean() > 0.9, scores
    assert scores["rank_correlation"].mean() > 0.3, scores


@needs_captum
def test_deconvolution_ignores_the_forward_gate():
    """Deconvolution applies the ReLU to the backward signal, not the forward mask: on a one-layer
    detector whose class gradient is positive everywhere, its map is flat (no localization)."""
    images, masks = red_patch_images()
    maps = get_method("deconvolution")().attribute(red_detector(), images, 0)
    assert torch.allclose(maps, maps[:, :1, :1].expand_as(maps))
    assert torch.allclose(localization_metrics(maps, masks)["auroc"], torch.full((4,), 0.5, dtype=torch.float64))


def test_random_map_is_at_chance_on_the_red_patch():
    images, masks = red_patch_images()
    scores = localization_metrics(get_method("random_map")().attribute(red_detector(), images, 0, seed=3), masks)
    assert abs(float(scores["auroc"].mean()) - 0.5) < 0.1
    assert abs(float(scores["rank_correlation"].mean())) < 0.1


def test_edge_detector_is_sobel_magnitude():
    image = torch.zeros(1, 3, 16, 16)
    image[..., :, 8:] = 1.0  # a vertical edge between columns 7 and 8, in all three channels
    edges = get_method("edge_detector")().attribute(red_detector(), image, 0)
    assert torch.allclose(edges[0, :, 7:9], torch.full((16, 2), 12.0))  # |gx| = 4 per channel, 3 channels
    assert edges[0, :, :7].abs().max() == 0 and edges[0, :, 9:].abs().max() == 0


# --- validation ---------------------------------------------------------------------------------------------


def _bad_value(constraint):
    if isinstance(constraint, Interval):
        return constraint.low - 1 if constraint.kind is int else constraint.low - 1.0
    if isinstance(constraint, Options):
        return "__not_an_option__"
    if isinstance(constraint, InstanceOf):
        return 3
    assert isinstance(constraint, Boolean)
    return "yes"


@pytest.mark.parametrize("name", [_runs(n) for n in ATTRIBUTION if get_method(n).parameter_constraints])
def test_bad_hyperparameters_are_rejected_with_a_clear_message(name, tiny_images):
    cls = get_method(name)
    for parameter, constraint in cls.parameter_constraints.items():
        method = cls(**{parameter: _bad_value(constraint)})  # inert: accepted until used
        with pytest.raises(ConfigError, match=f"The '{parameter}' parameter of {cls.__name__} must be"):
            method.attribute(red_detector(), tiny_images, 0)


def test_bad_arguments_are_rejected(tiny_images):
    method = get_method("uniform_map")()
    model = red_detector()
    with pytest.raises(ConfigError, match=r"target_class must be an int in \[0, 1\]. Got 2 instead"):
        method.attribute(model, tiny_images, 2)
    with pytest.raises(ConfigError, match="seed must be an int"):
        method.attribute(model, tiny_images, 0, seed=-1)
    with pytest.raises(ConfigError, match=r"shape \[n, C, H, W\]"):
        method.attribute(model, tiny_images[0], 0)
    with pytest.raises(ConfigError, match=r"pixel values in \[0, 1\]"):
        method.attribute(model, tiny_images * 2, 0)
    with pytest.raises(ConfigError, match="torch.nn.Module"):
        method.attribute(lambda x: x, tiny_images, 0)


@needs_captum
def test_guided_grad_cam_layer_choice(tiny_resnet, tiny_images):
    assert GuidedGradCam()._layer_path(tiny_resnet) == "stage3"
    assert GuidedGradCam()._layer_path(red_detector()) == "0"  # no named_layers(): the last Conv2d
    assert GuidedGradCam(layer="stage2")._layer_path(tiny_resnet) == "stage2"
    assert GuidedGradCam(layer="stage2.conv1")._layer_path(tiny_resnet) == "stage2.conv1"
    with pytest.raises(ConfigError, match="The 'layer' parameter of GuidedGradCam must name a layer"):
        GuidedGradCam(layer="stage9").attribute(tiny_resnet, tiny_images, 0)
    with pytest.raises(ConfigError, match="The 'layer' parameter of GuidedGradCam must be None or a str"):
        GuidedGradCam(layer=3).attribute(tiny_resnet, tiny_images, 0)


@needs_captum
def test_feature_permutation_needs_two_images(tiny_resnet, tiny_images):
    with pytest.raises(MethodError, match="at least 2 images"):
        get_method("feature_permutation")().attribute(tiny_resnet, tiny_images[:1], 0)


@needs_captum
def test_lrp_refuses_layers_captum_has_no_rule_for(tiny_images):
    model = nn.Sequential(nn.Conv2d(3, 2, 3), nn.GELU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2, 2))
    with pytest.raises(MethodError, match="LRP cannot explain this model"):
        get_method("lrp")().attribute(model, tiny_images, 0)


class _DataDependent(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 1)

    def forward(self, x):
        x = self.conv(x)
        if x.sum() > 0:  # control flow on data: torch.fx cannot trace it
            x = torch.relu(x)
        return x.mean((2, 3))


@needs_captum
def test_untraceable_models_get_a_clear_error_from_module_hook_methods(tiny_images):
    with pytest.raises(MethodError, match="could not trace"):
        get_method("deep_lift")().attribute(_DataDependent(), tiny_images, 0)
    assert get_method("saliency")().attribute(_DataDependent(), tiny_images, 0).shape == (3, 32, 32)


def test_missing_captum_names_the_extra(monkeypatch, tiny_images):
    monkeypatch.setitem(sys.modules, "captum.attr", None)
    with pytest.raises(MissingExtraError, match=r"pip install 'trojanbench\[captum\]'"):
        get_method("saliency")().attribute(red_detector(), tiny_images, 0)


# --- making models hookable ---------------------------------------------------------------------------------


class _FunctionalNet(nn.Module):
    """Functional and in-place ReLUs, a reused ReLU module and an identity shortcut: all rewritten."""

    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1)
        self.act = nn.ReLU(inplace=True)
        self.skip = nn.Identity()
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        h = self.act(self.conv1(x))
        h = torch.nn.functional.relu(self.conv2(h) + self.skip(h), inplace=True)
        return self.fc(self.act(h).mean((2, 3)))


class _ReusedPool(nn.Module):
    """One MaxPool module called twice, bias-free layers (so LRP's relevance must sum to the logit)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1, bias=False)
        self.pool = nn.MaxPool2d(2)
        self.average = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4, 2, bias=False)

    def forward(self, x):
        h = self.pool(torch.relu(self.conv1(x)))
        h = self.pool(torch.relu(self.conv2(h)))
        return self.fc(torch.flatten(self.average(h), 1))


@pytest.mark.parametrize("for_lrp", [False, True])
def test_hookable_copy_rewrites_every_relu_and_keeps_the_function(for_lrp):
    model = _FunctionalNet().eval()
    x = torch.rand(2, 3, 8, 8)
    copy_ = hookable_copy(model, for_lrp=for_lrp)
    with torch.no_grad():
        assert torch.allclose(copy_(x), model(x), atol=1e-6)
    relus = [m for m in copy_.modules() if isinstance(m, nn.ReLU)]
    assert len(relus) == 3 and not any(r.inplace for r in relus)  # one per call, none in place
    assert any(isinstance(m, nn.Identity) for m in copy_.modules()) != for_lrp
    assert sum(isinstance(m, Sum) for m in copy_.modules()) == (1 if for_lrp else 0)  # the residual sum
    assert model.act.inplace and isinstance(model.skip, nn.Identity)  # the original is untouched


def test_the_lrp_copy_folds_batch_norms_into_convolutions():
    model = CompactResNet(num_classes=4, width=4).eval()
    for module in model.modules():  # non-trivial statistics, so folding is really exercised
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    copy_ = hookable_copy(model, for_lrp=True)
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(copy_(x), model(x), atol=1e-5)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in copy_.modules())
    assert sum(isinstance(m, Sum) for m in copy_.modules()) == 3  # one per residual block


class _BiasFreeResidual(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(6, 6, 3, padding=1, bias=False)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(6, 2, bias=False)

    def forward(self, x):
        h = torch.relu(self.conv1(x))
        h = torch.relu(self.conv2(h) + h)
        return self.fc(torch.flatten(self.pool(h), 1))


@needs_captum
@pytest.mark.parametrize("model", [_BiasFreeResidual, _ReusedPool])
def test_lrp_conserves_relevance_across_residual_sums_and_reused_modules(model):
    """Without biases, epsilon-LRP's input relevances sum to the logit; Captum alone copies the relevance
    of a residual sum into both branches, and refuses a module called twice."""
    from captum.attr import LRP

    torch.manual_seed(0)
    model = model().eval()
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        logits = model(x)[:, 0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        relevance = get_method("lrp")()._explainer(importlib.import_module("captum.attr"), model).attribute(
            x.clone(), target=0)
    assert torch.allclose(relevance.sum((1, 2, 3)), logits, rtol=1e-3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            plain = LRP(model).attribute(x.clone(), target=0)  # functional ReLUs and sums: relevance is copied
        except RuntimeError as exc:
            assert "more than once" in str(exc)  # Captum refuses a reused module
            return
    assert not torch.allclose(plain.sum((1, 2, 3)), logits, rtol=1e-2)


@needs_captum
@pytest.mark.parametrize("model", [_FunctionalNet, _ReusedPool, lambda: CompactResNet(num_classes=4, width=4)],
                         ids=["functional_relus", "reused_pool", "compact_resnet"])
def test_deep_lift_sums_to_the_output_difference_on_the_rewritten_model(model):
    """DeepLift's summation-to-delta, which Captum loses on functional ReLUs and on back-to-back modules
    (ReLU then ReLU, ReLU then MaxPool), holds on the hookable copy."""
    from captum.attr import DeepLift

    torch.manual_seed(0)
    model = model().eval()
    x, baseline = torch.rand(2, 3, 32, 32), torch.zeros(2, 3, 32, 32)
    with torch.no_grad():
        delta = model(x)[:, 0] - model(baseline)[:, 0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        attributions = DeepLift(hookable_copy(model)).attribute(x, baseline, target=0)
    assert torch.allclose(attributions.sum((1, 2, 3)), delta, rtol=1e-4, atol=1e-6)


def test_superpixels_are_square_cells():
    ids = superpixels(torch.zeros(1, 3, 64, 64), 8)
    assert ids.shape == (1, 1, 64, 64) and ids.max() == 63
    assert torch.equal(ids[0, 0, :8, :8], torch.zeros(8, 8, dtype=ids.dtype))
    assert ids[0, 0, 8, 0] == 8 and ids[0, 0, 0, 8] == 1
    assert superpixels(torch.zeros(1, 3, 30, 30), 8).max() == 15  # partial cells at the border
