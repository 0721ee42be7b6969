"""Make a model fit for Captum's module-hook methods (DeepLift, LRP, guided backprop, deconvolution).

Those methods change the backward pass of ``nn.ReLU`` *modules* through hooks, so a ReLU written as a
function (``torch.relu(x)``, as in :class:`~trojanbench.models.BasicBlock`) would silently get the plain
gradient, an in-place ReLU breaks the hooks, and a ReLU module called twice confuses DeepLift.
:func:`hookable_copy` traces a deep copy of the model with ``torch.fx`` and rewrites every ReLU call —
function, method or module — into a call of its own fresh, non-in-place ``nn.ReLU`` module, and gives
any other module called more than once a copy per call (Captum's DeepLift and LRP both refuse reused
modules). The audited model is never touched. Submodules named in ``keep`` stay single modules (rewritten inside), so a layer
hook (Grad-CAM) still sees their output. Two further rewrites depend on the method:

* by default (DeepLift and the guided methods) a ``clone()`` goes between two modules that feed each
  other directly: Captum's module hooks lose DeepLift's summation-to-delta when one module's output
  tensor is the next one's input (a ReLU module feeding a MaxPool module, as in the CompactResNet stem);
* ``for_lrp=True`` instead folds each BatchNorm2d into the Conv2d it follows
  (``torch.nn.utils.fusion.fuse_conv_bn_eval``, the usual LRP treatment: one affine layer, one rule),
  drops no-op modules and copies (identity, dropout, ``clone()``) and makes ``nn.Flatten`` a function, since LRP needs a rule for every module, and turns each sum of two
  tensors (residual connections) into its own :class:`Sum` module, to which LRP gives the epsilon rule,
  so relevance is split between the two branches in proportion to their contributions instead of being
  copied into both. A ReLU whose output several layers read (the input of a residual block) gets a
  :class:`Branch` identity module after it, as Captum's ReLU handling only works with one consumer.
  Captum's LRP relies on the tensor a layer reads being the tensor its producer wrote, so no clones
  are inserted between other modules.
"""

from __future__ import annotations

import copy
import operator

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import fx
from torch.nn.utils.fusion import fuse_conv_bn_eval

from ...errors import MethodError

_RELU_FUNCTIONS = {torch.relu: False, torch.relu_: True, F.relu: None}
_RELU_METHODS = {"relu": False, "relu_": True}
_SUM_FUNCTIONS = {operator.add: False, torch.add: False, operator.iadd: True}
_SUM_METHODS = {"add": False, "add_": True}
_PASS_THROUGH = (nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout)


class Sum(nn.Module):
    """The sum of two tensors as a module (a residual connection), so LRP can give it a rule."""

    def forward(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        return first + second


class Branch(nn.Module):
    """An identity (a copy of its input) placed where a ReLU's output is read by several layers, so LRP's
    relevance for the ReLU arrives from one consumer, as Captum's ReLU handling expects."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.clone()


class _Tracer(fx.Tracer):
    def __init__(self, keep: tuple[str, ...]):
        super().__init__()
        self.keep = keep

    def is_leaf_module(self, module: nn.Module, qualified_name: str) -> bool:
        return qualified_name in self.keep or super().is_leaf_module(module, qualified_name)


def hookable_copy(model: nn.Module, *, keep: tuple[str, ...] = (), for_lrp: bool = False,
                  method: str = "this method") -> nn.Module:
    """A deep copy of ``model`` (eval mode) in which each ReLU call is its own non-in-place ``nn.ReLU``
    (see the module notes for ``keep`` and ``for_lrp``). Raises :class:`MethodError`, naming ``method``,
    if ``torch.fx`` cannot trace the model (data-dependent control flow)."""
    return _rewrite(copy.deepcopy(model).eval(), tuple(keep), for_lrp, method)


def _relu_call(node: fx.Node, modules: dict[str, nn.Module]) -> bool | None:
    """``None`` if ``node`` is no ReLU call, else whether it is in place."""
    if node.op == "call_function" and node.target in _RELU_FUNCTIONS:
        inplace = _RELU_FUNCTIONS[node.target]
        if inplace is None:  # F.relu(x, inplace=...)
            inplace = bool(node.kwargs.get("inplace", node.args[1] if len(node.args) > 1 else False))
        return inplace
    if node.op == "call_method" and node.target in _RELU_METHODS:
        return _RELU_METHODS[node.target]
    if node.op == "call_module" and type(modules.get(node.target)) is nn.ReLU:
        return bool(modules[node.target].inplace)
    return None


def _sum_call(node: fx.Node, from_input: set[fx.Node]) -> bool | None:
    """``None`` if ``node`` is no plain sum of two tensors computed from the input, else whether it is in
    place (a sum with a constant, such as a buffer, is a bias, not a branch point)."""
    if len(node.args) != 2 or node.kwargs or not all(a in from_input for a in node.args):
        return None
    if node.op == "call_function" and node.target in _SUM_FUNCTIONS:
        return _SUM_FUNCTIONS[node.target]
    if node.op == "call_method" and node.target in _SUM_METHODS:
        return _SUM_METHODS[node.target]
    return None


def _foldable(node: fx.Node, modules: dict[str, nn.Module], calls: dict[str, int]) -> bool:
    """Whether ``node`` is a BatchNorm2d call that only reads a Conv2d call used nowhere else."""
    if node.op != "call_module" or type(modules.get(node.target)) is not nn.BatchNorm2d:
        return False
    source = node.args[0]
    return (isinstance(source, fx.Node) and source.op == "call_module"
            and type(modules.get(source.target)) is nn.Conv2d and len(source.users) == 1
            and calls[source.target] == 1 and calls[node.target] == 1)


def _swap(graph: fx.Graph, node: fx.Node, replacement: fx.Node, inplace: bool, order: dict[fx.Node, int]) -> None:
    """Replace ``node`` by ``replacement``; for an in-place op, later readers of its first input too."""
    node.replace_all_uses_with(replacement)
    source = node.args[0]
    if inplace and isinstance(source, fx.Node):  # later readers of the input saw the op's result
        source.replace_all_uses_with(replacement, delete_user_cb=lambda user, at=order[node]: order.get(user, -1) > at)
    graph.erase_node(node)


def _rewrite(module: nn.Module, keep: tuple[str, ...], for_lrp: bool, method: str) -> nn.Module:
    if not list(module.children()) and type(module).__module__.startswith(("torch.nn.", "torch.ao.nn.")):
        return nn.ReLU() if type(module) is nn.ReLU else module  # a built-in leaf layer
    try:
        graph = _Tracer(keep).trace(module)
    except Exception as exc:  # noqa: BLE001 - fx raises many types; all mean "cannot trace"
        raise MethodError(f"{method} needs every ReLU of the model to be an nn.ReLU module; trojanbench "
                          f"rewrites the model with torch.fx to ensure that, but could not trace "
                          f"{type(module).__name__}: {exc}") from exc
    graph_module = fx.GraphModule(module, graph, class_name=type(module).__name__)
    seen: set[str] = set()
    for index, node in enumerate(graph.nodes):  # a module called twice gets a copy per call: hooks count calls
        if node.op == "call_module" and node.target in seen and node.target not in keep:
            name = f"attribution_copy_{index}"
            graph_module.add_submodule(name, copy.deepcopy(graph_module.get_submodule(node.target)))
            node.target = name
        seen.add(node.target)
    modules = dict(graph_module.named_modules())
    order = {node: i for i, node in enumerate(graph.nodes)}
    from_input = set()
    for node in graph.nodes:
        if node.op == "placeholder" or any(arg in from_input for arg in node.all_input_nodes):
            from_input.add(node)
    calls: dict[str, int] = {}
    for node in graph.nodes:
        if node.op == "call_module":
            calls[node.target] = calls.get(node.target, 0) + 1
    count = 0
    for node in list(graph.nodes):
        relu, total = _relu_call(node, modules), _sum_call(node, from_input) if for_lrp else None
        if relu is not None or total is not None:
            name = f"attribution_{'relu' if relu is not None else 'sum'}_{count}"
            count += 1
            graph_module.add_submodule(name, nn.ReLU() if relu is not None else Sum())
            with graph.inserting_after(node):
                replacement = graph.call_module(name, node.args[:1] if relu is not None else node.args[:2])
            if node in from_input:
                from_input.add(replacement)
            _swap(graph, node, replacement, relu if relu is not None else total, order)
        elif for_lrp and _foldable(node, modules, calls):
            convolution = node.args[0]
            graph_module.set_submodule(convolution.target, fuse_conv_bn_eval(modules[convolution.target],
                                                                             modules[node.target]))
            node.replace_all_uses_with(convolution)
            graph.erase_node(node)
        elif for_lrp and ((node.op == "call_module" and isinstance(modules.get(node.target), _PASS_THROUGH))
                          or (node.op == "call_method" and node.target in ("clone", "contiguous"))):
            node.replace_all_uses_with(node.args[0])
            graph.erase_node(node)
        elif for_lrp and node.op == "call_module" and type(modules.get(node.target)) is nn.Flatten:
            flatten = modules[node.target]
            with graph.inserting_after(node):
                replacement = graph.call_function(torch.flatten, (node.args[0], flatten.start_dim, flatten.end_dim))
            _swap(graph, node, replacement, False, order)
    if for_lrp:
        for node in list(graph.nodes):
            if node.op == "call_module" and isinstance(graph_module.get_submodule(node.target), nn.ReLU) \
                    and len(node.users) > 1:
                name = f"attribution_branch_{count}"
                count += 1
                graph_module.add_submodule(name, Branch())
                with graph.inserting_after(node):
                    branch = graph.call_module(name, (node,))
                node.replace_all_uses_with(branch, delete_user_cb=lambda user, at=branch: user is not at)
    else:
        for node in list(graph.nodes):
            if node.op == "call_module" and node.args and isinstance(node.args[0], fx.Node) \
                    and node.args[0].op == "call_module":
                with graph.inserting_before(node):
                    node.replace_input_with(node.args[0], graph.call_method("clone", (node.args[0],)))
    for path in keep:
        graph_module.set_submodule(path, _rewrite(graph_module.get_submodule(path), (), for_lrp, method))
    graph.lint()
    graph_module.recompile()
    graph_module.delete_all_unused_submodules()
    return graph_module


def module_path(model: nn.Module, layer: nn.Module) -> str:
    """The dotted path of ``layer`` inside ``model`` (``""`` if it is the model itself)."""
    for name, module in model.named_modules():
        if module is layer:
            return name
    raise MethodError(f"Layer {type(layer).__name__} is not a submodule of the model.")


__all__ = ["Branch", "Sum", "hookable_copy", "module_path"]
