"""The 16 attribution methods of Casper et al. (2023), each a thin wrapper around Captum.

Captum is an optional extra (``pip install 'trojanbench[captum]'``), imported only when a method runs.
Every method explains the target class's *logit* and returns Captum's attribution summed as absolute
values over the colour channels (done by :meth:`AttributionMethod.attribute`). Defaults:

============================  ================================================================================
method                        configuration
============================  ================================================================================
integrated_gradients          ``n_steps=32`` (Gauss-Legendre), from a ``baseline`` image (default black)
deep_lift                     Rescale rule, from a ``baseline`` image (default black)
guided_grad_cam               Grad-CAM of ``layer`` (default: the last named layer holding a Conv2d, i.e.
                              ``stage3`` of CompactResNet; else the last Conv2d), upsampled (nearest) and
                              multiplied by guided backprop
saliency                      absolute input gradient
gradient_shap                 ``n_samples=16`` gradient samples against ``n_baselines=8`` baselines
deep_lift_shap                DeepLift averaged over ``n_baselines=8`` baselines
guided_backprop               ReLU backward passes only positive gradients
deconvolution                 ReLU backward applied to the gradient
lrp                           epsilon rule (``epsilon=1e-9``, Captum's default) on every layer; batch norms
                              folded into their convolutions; residual sums split relevance by contribution
input_x_gradient              input times gradient
feature_ablation              each ``cell`` x ``cell`` superpixel (default 8) set to the ``baseline``
feature_permutation           each superpixel permuted across the images of the call (needs >= 2 images)
lime                          ``n_samples=256`` random superpixel subsets, weighted ridge regression
                              (alpha 1, as the LIME package), superpixels off = ``baseline``
occlusion                     a ``window=8`` square of the ``baseline`` slid with ``stride=4``
kernel_shap                   ``n_samples=256`` Shapley-kernel subsets of superpixels, weighted least squares
shapley_value_sampling        ``n_samples=8`` random permutations of the superpixels
============================  ================================================================================

Baselines: ``"black"`` (zeros, Captum's default), ``"grey"`` (0.5 everywhere, the mean the world models
normalise with) or ``"mean"`` (each image's mean colour). The SHAP methods draw their baseline
distribution from the seed: the black image plus ``n_baselines - 1`` uniform-noise images. Superpixels are
square cells of ``cell`` pixels (64 features on a 64x64 image) shared by the three colour channels.

Captum ships Lime and KernelShap with scikit-learn regressors; trojanbench does not depend on
scikit-learn, so both fit their surrogate with a closed-form weighted least-squares solver plugged into
Captum's own ``LinearModel``.

DeepLift, DeepLiftShap, GuidedBackprop, Deconvolution, GuidedGradCam and LRP change the backward pass of
``nn.ReLU`` modules; they run on a copy of the model whose ReLUs are rewritten into distinct,
non-in-place modules, with a copy of any other module called twice
(:func:`~trojanbench.methods.attribution._modules.hookable_copy`, which also restores DeepLift's
summation-to-delta across back-to-back modules such as ReLU then MaxPool). LRP needs a rule for every
module: its copy folds batch norms into convolutions, drops identity shortcuts and dropout, makes residual
sums :class:`~trojanbench.methods.attribution._modules.Sum` modules and puts a
:class:`~trojanbench.methods.attribution._modules.Branch` after each ReLU read by several layers, all with
the epsilon rule, so relevance is conserved through residual blocks (exactly, for bias-free layers); a
model with any other layer Captum has no rule for is refused with a :class:`MethodError`. Functional
linear operations pass relevance by their plain gradient: the models' internal input normalisation
``(x - mean) / std`` therefore scales each channel's relevance by ``1 / std`` (a constant factor of 4 for
CompactResNet, which leaves the map's ranking unchanged).
"""

from __future__ import annotations

import warnings
from typing import Any, ClassVar

import torch
import torch.nn as nn

from ...errors import ConfigError, MethodError, require_extra
from ...params import InstanceOf, Interval, Options
from ...registry import register_method
from ._modules import Branch, Sum, hookable_copy, module_path
from .base import AttributionMethod

BASELINES = Options({"black", "grey", "mean"})
_CAPTUM_NOISE = (  # Captum's routine notices, silenced while a method runs
    r"Setting forward, backward hooks", r"Setting backward hooks", r".*backward hook",
    r"You are providing multiple inputs", r"Input Tensor \d+ did not already require gradients")


def _captum_attr():
    return require_extra("captum.attr", "captum", "Captum attribution methods")


def baseline_images(images: torch.Tensor, kind: str) -> torch.Tensor:
    """The reference input each image is compared with: black, grey, or the image's mean colour."""
    if kind == "black":
        return torch.zeros_like(images)
    if kind == "grey":
        return torch.full_like(images, 0.5)
    return images.mean((2, 3), keepdim=True).expand_as(images).contiguous()


def superpixels(images: torch.Tensor, cell: int) -> torch.Tensor:
    """Feature ids ``[1, 1, H, W]`` of square ``cell`` x ``cell`` superpixels, numbered row by row."""
    height, width = images.shape[-2:]
    rows = torch.arange(height) // cell
    cols = torch.arange(width) // cell
    return (rows[:, None] * (-(-width // cell)) + cols[None, :])[None, None]


def shap_baselines(images: torch.Tensor, n_baselines: int, generator: torch.Generator) -> torch.Tensor:
    """The SHAP baseline distribution: the black image and ``n_baselines - 1`` uniform-noise images."""
    noise = torch.rand(n_baselines - 1, *images.shape[1:], generator=generator, dtype=images.dtype)
    return torch.cat([torch.zeros(1, *images.shape[1:], dtype=images.dtype), noise])


def _fit_least_squares(model, dataloader, construct_kwargs, **_: Any) -> None:
    """Captum ``LinearModel`` train function: weighted ridge regression with an unpenalised intercept,
    solved in closed form (``construct_kwargs["alpha"]``; 0 gives ordinary weighted least squares)."""
    xs, ys, ws = [], [], []
    for batch in dataloader:
        xs.append(batch[0])
        ys.append(batch[1])
        ws.append(batch[2] if len(batch) == 3 else torch.ones(len(batch[0])))
    x = torch.cat(xs).double().flatten(1)
    y = torch.cat(ys).double().reshape(len(x), -1)
    root_w = torch.cat(ws).double().clamp_min(0).sqrt()[:, None]
    design = torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], 1)
    rows, targets = [design * root_w], [y * root_w]
    alpha = float(construct_kwargs.get("alpha", 0.0))
    if alpha > 0:
        penalty = torch.eye(design.shape[1], dtype=x.dtype) * alpha ** 0.5
        penalty[-1, -1] = 0.0
        rows.append(penalty)
        targets.append(torch.zeros(design.shape[1], y.shape[1], dtype=x.dtype))
    solution = torch.linalg.lstsq(torch.cat(rows), torch.cat(targets), driver="gelsd").solution
    model._construct_model_params(norm_type=None, weight_values=solution[:-1].T.float().contiguous(),
                                  bias_value=solution[-1].float())


def _surrogate(alpha: float):
    from captum._utils.models.linear_model import LinearModel

    return LinearModel(train_fn=_fit_least_squares, alpha=alpha)


class CaptumAttribution(AttributionMethod):
    """A Captum attribution class run on the target logit; subclasses say which one and how."""

    captum_name: ClassVar[str] = ""
    hookable: ClassVar[bool] = False
    """Run on a copy whose ReLUs are distinct, non-in-place ``nn.ReLU`` modules."""

    def _network(self, model: nn.Module) -> nn.Module:
        return hookable_copy(model, method=type(self).__name__) if self.hookable else model

    def _explainer(self, captum_attr, model: nn.Module):
        return getattr(captum_attr, self.captum_name)(self._network(model))

    def _kwargs(self, images: torch.Tensor, generator: torch.Generator) -> dict[str, Any]:
        return {}

    def _attribute(self, model, images, target_class, generator):
        explainer = self._explainer(_captum_attr(), model)
        kwargs = self._kwargs(images, generator)
        with warnings.catch_warnings():
            for message in _CAPTUM_NOISE:
                warnings.filterwarnings("ignore", message=message)
            return explainer.attribute(images, target=target_class, **kwargs)


class _Superpixel(CaptumAttribution):
    """Perturbation over square superpixels, with ``cell`` and ``baseline`` hyperparameters."""

    parameter_constraints = {"cell": Interval(int, 1, None), "baseline": BASELINES}

    def _kwargs(self, images, generator):
        return {"feature_mask": superpixels(images, self.cell), "baselines": baseline_images(images, self.baseline)}


@register_method
class IntegratedGradients(CaptumAttribution):
    """Gradients integrated along the straight path from a baseline image to the input."""

    name = "integrated_gradients"
    paper = "Sundararajan et al. 2017, Axiomatic Attribution for Deep Networks"
    captum_name = "IntegratedGradients"
    parameter_constraints = {"n_steps": Interval(int, 1, None), "baseline": BASELINES}
    quick_params = {"n_steps": 4}

    def __init__(self, *, n_steps: int = 32, baseline: str = "black"):
        self.n_steps = n_steps
        self.baseline = baseline

    def _kwargs(self, images, generator):
        return {"baselines": baseline_images(images, self.baseline), "n_steps": self.n_steps,
                "internal_batch_size": max(64, self.n_steps)}


@register_method
class DeepLift(CaptumAttribution):
    """DeepLIFT's Rescale rule: contributions of input differences from a baseline."""

    name = "deep_lift"
    paper = "Shrikumar et al. 2017, DeepLIFT"
    captum_name = "DeepLift"
    hookable = True
    parameter_constraints = {"baseline": BASELINES}

    def __init__(self, *, baseline: str = "black"):
        self.baseline = baseline

    def _kwargs(self, images, generator):
        return {"baselines": baseline_images(images, self.baseline)}


@register_method
class GuidedGradCam(CaptumAttribution):
    """Grad-CAM of a convolutional layer, upsampled and multiplied by guided backpropagation.

    ``layer`` names one of the model's ``named_layers()`` or a dotted submodule path; by default the
    last named layer that contains a Conv2d (``stage3`` of CompactResNet), else the last Conv2d.
    """

    name = "guided_grad_cam"
    paper = "Selvaraju et al. 2017, Grad-CAM"
    captum_name = "GuidedGradCam"
    hookable = True
    parameter_constraints = {"layer": InstanceOf(str, optional=True)}

    def __init__(self, *, layer: str | None = None):
        self.layer = layer

    def _layer_path(self, model: nn.Module) -> str:
        named = getattr(model, "named_layers", None)
        layers = dict(named()) if callable(named) else {}
        if self.layer is not None:
            if self.layer in layers:
                return module_path(model, layers[self.layer])
            paths = dict(model.named_modules())
            if self.layer and self.layer in paths:
                return self.layer
            raise ConfigError(f"The 'layer' parameter of {type(self).__name__} must name a layer of the model "
                              f"({', '.join(layers) or 'a dotted submodule path'}). Got {self.layer!r} instead.")
        convolutional = [m for m in layers.values() if any(isinstance(s, nn.Conv2d) for s in m.modules())]
        if convolutional:
            return module_path(model, convolutional[-1])
        convs = [name for name, m in model.named_modules() if isinstance(m, nn.Conv2d)]
        if not convs:
            raise MethodError("GuidedGradCam needs a convolutional layer, but the model has no nn.Conv2d.")
        return convs[-1]

    def _explainer(self, captum_attr, model):
        path = self._layer_path(model)
        network = hookable_copy(model, keep=(path,), method=type(self).__name__)
        return captum_attr.GuidedGradCam(network, network.get_submodule(path))


@register_method
class Saliency(CaptumAttribution):
    """The absolute gradient of the target logit with respect to each pixel."""

    name = "saliency"
    paper = "Simonyan et al. 2014, Deep Inside Convolutional Networks"
    captum_name = "Saliency"

    def __init__(self):
        pass

    def _kwargs(self, images, generator):
        return {"abs": True}


@register_method
class GradientShap(CaptumAttribution):
    """Expected gradients: input-minus-baseline times the gradient at random points between the two, over
    ``n_samples`` draws against a seeded baseline distribution (black plus noise images)."""

    name = "gradient_shap"
    paper = "Lundberg & Lee 2017, SHAP"
    captum_name = "GradientShap"
    parameter_constraints = {"n_samples": Interval(int, 1, None), "n_baselines": Interval(int, 1, None)}
    quick_params = {"n_samples": 4, "n_baselines": 2}

    def __init__(self, *, n_samples: int = 16, n_baselines: int = 8):
        self.n_samples = n_samples
        self.n_baselines = n_baselines

    def _kwargs(self, images, generator):
        return {"baselines": shap_baselines(images, self.n_baselines, generator), "n_samples": self.n_samples}


@register_method
class DeepLiftShap(CaptumAttribution):
    """DeepLIFT averaged over a seeded baseline distribution (black plus noise images)."""

    name = "deep_lift_shap"
    paper = "Lundberg & Lee 2017, SHAP"
    captum_name = "DeepLiftShap"
    hookable = True
    parameter_constraints = {"n_baselines": Interval(int, 2, None)}
    quick_params = {"n_baselines": 2}

    def __init__(self, *, n_baselines: int = 8):
        self.n_baselines = n_baselines

    def _kwargs(self, images, generator):
        return {"baselines": shap_baselines(images, self.n_baselines, generator)}


@register_method
class GuidedBackprop(CaptumAttribution):
    """Backpropagation in which every ReLU passes only positive gradients."""

    name = "guided_backprop"
    paper = "Springenberg et al. 2015, Striving for Simplicity"
    captum_name = "GuidedBackprop"
    hookable = True

    def __init__(self):
        pass


@register_method
class Deconvolution(CaptumAttribution):
    """Backpropagation in which every ReLU is applied to the gradient instead of gated by the input."""

    name = "deconvolution"
    paper = "Zeiler & Fergus 2014, Visualizing and Understanding Convolutional Networks"
    captum_name = "Deconvolution"
    hookable = True

    def __init__(self):
        pass


_EPSILON_LAYERS = (nn.Conv2d, nn.Linear, nn.BatchNorm2d, nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool2d,
                   nn.AdaptiveAvgPool2d, Sum, Branch)
"""The layers Captum gives the epsilon rule by default, plus the sums and branch points trojanbench adds."""


@register_method
class LRP(CaptumAttribution):
    """Layer-wise relevance propagation, the epsilon rule on every layer (``epsilon`` 1e-9, Captum's default).

    Batch norms are folded into the convolutions they follow and residual sums split relevance between
    their branches (see :mod:`~trojanbench.methods.attribution._modules`); raise ``epsilon`` to damp the
    relevance blow-ups that near-zero pre-activations cause in untrained or bias-heavy networks.
    """

    name = "lrp"
    paper = "Bach et al. 2015, Layer-wise Relevance Propagation"
    captum_name = "LRP"
    parameter_constraints = {"epsilon": Interval(float, 0, None, closed="neither")}

    def __init__(self, *, epsilon: float = 1e-9):
        self.epsilon = epsilon

    def _explainer(self, captum_attr, model):
        from captum.attr._utils.lrp_rules import EpsilonRule

        network = hookable_copy(model, for_lrp=True, method=type(self).__name__)
        for module in network.modules():
            if isinstance(module, _EPSILON_LAYERS):
                module.rule = EpsilonRule(epsilon=self.epsilon)
        return captum_attr.LRP(network)

    def _attribute(self, model, images, target_class, generator):
        try:
            return super()._attribute(model, images, target_class, generator)
        except (TypeError, RuntimeError) as exc:
            if "rule" not in str(exc) and "more than once" not in str(exc):
                raise
            raise MethodError(f"LRP cannot explain this model: {exc}") from exc


@register_method
class InputXGradient(CaptumAttribution):
    """The input times the gradient of the target logit."""

    name = "input_x_gradient"
    paper = "Shrikumar et al. 2016, Not Just a Black Box"
    captum_name = "InputXGradient"

    def __init__(self):
        pass


@register_method
class FeatureAblation(_Superpixel):
    """The drop of the target logit when each superpixel is replaced by the baseline."""

    name = "feature_ablation"
    paper = "Zeiler & Fergus 2014 (ablation); Captum FeatureAblation"
    captum_name = "FeatureAblation"

    def __init__(self, *, cell: int = 8, baseline: str = "black"):
        self.cell = cell
        self.baseline = baseline

    def _kwargs(self, images, generator):
        return {**super()._kwargs(images, generator), "perturbations_per_eval": 16}


@register_method
class FeaturePermutation(CaptumAttribution):
    """The change of the target logit when each superpixel is permuted across the images of the call.

    It compares images with each other, so it needs at least two images per call, and its maps depend on
    which images are explained together.
    """

    name = "feature_permutation"
    paper = "Breiman 2001 (permutation importance); Captum FeaturePermutation"
    captum_name = "FeaturePermutation"
    parameter_constraints = {"cell": Interval(int, 1, None)}

    def __init__(self, *, cell: int = 8):
        self.cell = cell

    def _kwargs(self, images, generator):
        if len(images) < 2:
            raise MethodError("feature_permutation permutes superpixels across the images of one call, so it needs "
                              "at least 2 images; got 1.")
        return {"feature_mask": superpixels(images, self.cell), "perturbations_per_eval": 16}


@register_method
class Lime(_Superpixel):
    """A weighted ridge regression (alpha 1, as the LIME package) of the target logit on which superpixels
    are kept, fitted on ``n_samples`` random subsets near the image (Captum's cosine-distance kernel)."""

    name = "lime"
    paper = "Ribeiro et al. 2016, LIME"
    captum_name = "Lime"
    parameter_constraints = {**_Superpixel.parameter_constraints, "n_samples": Interval(int, 1, None)}
    quick_params = {"n_samples": 32}

    def __init__(self, *, n_samples: int = 256, cell: int = 8, baseline: str = "black"):
        self.n_samples = n_samples
        self.cell = cell
        self.baseline = baseline

    def _explainer(self, captum_attr, model):
        return captum_attr.Lime(model, interpretable_model=_surrogate(alpha=1.0))

    def _kwargs(self, images, generator):
        return {**super()._kwargs(images, generator), "n_samples": self.n_samples, "perturbations_per_eval": 32}


@register_method
class Occlusion(CaptumAttribution):
    """The drop of the target logit when a ``window`` square of the baseline slides over the image; each
    pixel gets the mean over the windows covering it."""

    name = "occlusion"
    paper = "Zeiler & Fergus 2014, Visualizing and Understanding Convolutional Networks"
    captum_name = "Occlusion"
    parameter_constraints = {"window": Interval(int, 1, None), "stride": Interval(int, 1, None),
                             "baseline": BASELINES}
    quick_params = {"stride": 8}

    def __init__(self, *, window: int = 8, stride: int = 4, baseline: str = "black"):
        self.window = window
        self.stride = stride
        self.baseline = baseline

    def _kwargs(self, images, generator):
        channels, height, width = images.shape[1:]
        if self.window > min(height, width):
            raise ConfigError(f"The 'window' parameter of {type(self).__name__} must be at most the image side "
                              f"{min(height, width)}. Got {self.window!r} instead.")
        return {"sliding_window_shapes": (channels, self.window, self.window),
                "strides": (channels, self.stride, self.stride),
                "baselines": baseline_images(images, self.baseline), "perturbations_per_eval": 16}


@register_method
class KernelShap(_Superpixel):
    """Shapley values of the superpixels estimated by a Shapley-kernel weighted linear regression over
    ``n_samples`` subsets (superpixels left out take the baseline)."""

    name = "kernel_shap"
    paper = "Lundberg & Lee 2017, SHAP"
    captum_name = "KernelShap"
    parameter_constraints = {**_Superpixel.parameter_constraints, "n_samples": Interval(int, 1, None)}
    quick_params = {"n_samples": 32}

    def __init__(self, *, n_samples: int = 256, cell: int = 8, baseline: str = "black"):
        self.n_samples = n_samples
        self.cell = cell
        self.baseline = baseline

    def _explainer(self, captum_attr, model):
        explainer = captum_attr.KernelShap(model)
        explainer.interpretable_model = _surrogate(alpha=0.0)  # Captum's default needs scikit-learn
        return explainer

    def _kwargs(self, images, generator):
        return {**super()._kwargs(images, generator), "n_samples": self.n_samples, "perturbations_per_eval": 32}


@register_method
class ShapleyValueSampling(_Superpixel):
    """Shapley values of the superpixels averaged over ``n_samples`` random orderings (each costs one
    forward pass per superpixel)."""

    name = "shapley_value_sampling"
    paper = "Castro et al. 2009, Polynomial Calculation of the Shapley Value Based on Sampling"
    captum_name = "ShapleyValueSampling"
    parameter_constraints = {**_Superpixel.parameter_constraints, "n_samples": Interval(int, 1, None)}
    quick_params = {"n_samples": 1}

    def __init__(self, *, n_samples: int = 8, cell: int = 8, baseline: str = "black"):
        self.n_samples = n_samples
        self.cell = cell
        self.baseline = baseline

    def _kwargs(self, images, generator):
        return {**super()._kwargs(images, generator), "n_samples": self.n_samples, "perturbations_per_eval": 32}


CAPTUM_METHODS = (IntegratedGradients, DeepLift, GuidedGradCam, Saliency, GradientShap, DeepLiftShap, GuidedBackprop,
                  Deconvolution, LRP, InputXGradient, FeatureAblation, FeaturePermutation, Lime, Occlusion,
                  KernelShap, ShapleyValueSampling)
"""In the order of Casper et al. (2023)."""
