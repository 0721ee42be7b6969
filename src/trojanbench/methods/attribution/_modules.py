"""Make a model fit for Captum's module-hook methods (DeepLift, LRP, guided backprop, deconvolution).

Those methods change the backward pass of ``nn.ReLU`` *modules* through hooks, so a ReLU written as a
function (``torch.relu(x)``, as in :class:`~trojanbench.models.BasicBlock`) would silently get the plain
gradient, an in-place ReLU breaks the hooks, and a ReLU module called twice confuses DeepLift.
:func:`hookable_copy` traces a deep copy of the model with ``torch.fx`` and rewrites every ReLU call —
function, method or module — into a call of its own fresh, non-in-place ``nn.ReLU`` module. The
audited model is never touched. Submodules named in ``keep`` stay single modules (rewritten inside), so
a layer hook (Grad-CAM) still sees their output.
"""

from __future__ import annotations

import copy

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import fx

from ...errors import MethodError

_RELU_FUNCTIONS = {torch.relu: False, torch.relu_: True, F.relu: None}
_RELU_METHODS = {"relu": False, "relu_": True}
_PASS_THROUGH = (nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout)


class _Tracer(fx.Tracer):
    def __init__(self, keep: tuple[str, ...]):
        super().__init__()
        self.keep = keep

    def is_leaf_module(self, module: nn.Module, qualified_name: str) -> bool:
        return qualified_name in self.keep or super().is_leaf_module(module, qualified_name)


def hookable_copy(model: nn.Module, *, keep: tuple[str, ...] = (), simplify: bool = False,
                  method: str = "this method") -> nn.Module:
    """A deep copy of ``model`` (eval mode) in which each ReLU call is its own non-in-place ``nn.ReLU``.

    ``keep`` lists dotted submodule paths to keep as single modules. With ``simplify``, shape-only
    modules (``nn.Identity``, dropout, ``nn.Flatten``) become plain functions, as LRP needs a
    propagation rule for every module it meets. Raises :class:`MethodError` if ``torch.fx`` cannot
    trace the model (data-dependent control flow), naming ``method``.
    """
    return _rewrite(copy.deepcopy(model).eval(), tuple(keep), simplify, method)


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


def _rewrite(module: nn.Module, keep: tuple[str, ...], simplify: bool, method: str) -> nn.Module:
    if not list(module.children()) and type(module).__module__.startswith(("torch.nn.", "torch.ao.nn.")):
        return nn.ReLU() if type(module) is nn.ReLU else module  # a built-in leaf layer
    try:
        graph = _Tracer(keep).trace(module)
    except Exception as exc:  # noqa: BLE001 - fx raises many types; all mean "cannot trace"
        raise MethodError(f"{method} needs every ReLU of the model to be an nn.ReLU module; trojanbench "
                          f"rewrites the model with torch.fx to ensure that, but could not trace "
                          f"{type(module).__name__}: {exc}") from exc
    graph_module = fx.GraphModule(module, graph, class_name=type(module).__name__)
    modules = dict(graph_module.named_modules())
    order = {node: i for i, node in enumerate(graph.nodes)}
    count = 0
    for node in list(graph.nodes):
        inplace = _relu_call(node, modules)
        if inplace is not None:
            name = f"attribution_relu_{count}"
            count += 1
            graph_module.add_submodule(name, nn.ReLU())
            source = node.args[0]
            with graph.inserting_after(node):
                replacement = graph.call_module(name, (source,))
            node.replace_all_uses_with(replacement)
            if inplace and isinstance(source, fx.Node):  # later readers of the input saw the ReLU's output
                source.replace_all_uses_with(
                    replacement, delete_user_cb=lambda user, at=order[node]: order.get(user, -1) > at)
            graph.erase_node(node)
        elif simplify and node.op == "call_module" and isinstance(modules.get(node.target), _PASS_THROUGH):
            node.replace_all_uses_with(node.args[0])
            graph.erase_node(node)
        elif simplify and node.op == "call_module" and type(modules.get(node.target)) is nn.Flatten:
            flatten = modules[node.target]
            with graph.inserting_after(node):
                replacement = graph.call_function(torch.flatten, (node.args[0], flatten.start_dim, flatten.end_dim))
            node.replace_all_uses_with(replacement)
            graph.erase_node(node)
    for path in keep:
        graph_module.set_submodule(path, _rewrite(graph_module.get_submodule(path), (), simplify, method))
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


__all__ = ["hookable_copy", "module_path"]
