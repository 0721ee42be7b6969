"""Interpretable replacements over concept detectors: a sparse linear map and a CART tree.

Both read the world's concepts through a detector (one of :attr:`FitData.detectors`: trained on clean renders
of the world's vocabulary, never on the network) and then fit the network's outputs from the detected concepts:
a concept-bottleneck replacement (Koh et al. 2020, "Concept Bottleneck Models", fitted post hoc). The detector
is the widest that leaves the head ``head_share`` of the budget (or all it needs, if less); the head takes the
rest.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ...params import Interval
from ...registry import register_method
from ...trojans.measure import outputs
from .base import BudgetError, FitData, ReplacementMethod, ReplacementModel, count_nonzero_parameters

HEAD_SHARE = {"head_share": Interval(float, 0, 1, "neither")}


def concept_probabilities(detector, images: torch.Tensor) -> torch.Tensor:
    """``[n, concepts]``: the detector's probability that each image shows each concept."""
    return torch.sigmoid(outputs(detector, images))


class ConceptReplacement(ReplacementMethod):
    """Shared by the concept-based replacements: the budget split and the detector."""

    def _detector(self, data: FitData, budget: int, head_size: int):
        """The concept detector for ``budget`` and the parameters it leaves to a head of ``head_size``."""
        room = budget - min(head_size, int(self.head_share * budget))
        sizes = {width: count_nonzero_parameters(detector) for width, detector in data.detectors.items()}
        fitting = [width for width, size in sizes.items() if size <= room]
        if not fitting:
            raise BudgetError(f"{self.name}: no concept detector fits in {room} of the budget's {budget} parameters "
                              f"(detector sizes by width: {dict(sorted(sizes.items()))}).")
        width = max(fitting)
        return data.detectors[width], budget - sizes[width]


class ConceptLinearModel(ReplacementModel):
    """Detected concept probabilities times a sparse weight matrix, plus biases."""

    def __init__(self, detector, weight: torch.Tensor, bias: torch.Tensor, concept_names: tuple[str, ...]):
        self.detector, self.weight, self.bias, self.concept_names = detector, weight, bias, concept_names

    def predict(self, images):
        return (concept_probabilities(self.detector, images) @ self.weight + self.bias).argmax(1)

    def parameter_count(self):
        return count_nonzero_parameters(self.detector) + int((self.weight != 0).sum()) + int((self.bias != 0).sum())

    def concept_scores(self, class_index):
        """The weight of each concept's probability in the class's logit."""
        return dict(zip(self.concept_names, self.weight[:, class_index].tolist()))

    def details(self):
        return {"detector_width": getattr(self.detector, "width", None),
                "nonzero_weights": int((self.weight != 0).sum())}


@register_method
class ConceptLinear(ConceptReplacement):
    """Sparse linear map from detected concept probabilities to the network's class: L1-penalised softmax
    regression on the network's labels, then the largest weights the budget allows kept and refitted."""

    name = "concept_linear"
    paper = "Koh et al. 2020 (concept bottleneck), fitted post hoc with an L1 penalty (Wong et al. 2021)"
    parameter_constraints = {**HEAD_SHARE, "steps": Interval(int, 1, None), "l1": Interval(float, 0, None)}
    quick_params = {"steps": 200}

    def __init__(self, *, head_share: float = 0.25, steps: int = 400, l1: float = 0.001):
        self.head_share = head_share
        self.steps = steps
        self.l1 = l1

    def _replace(self, model, data, budget, seed):
        n_concepts, n_classes = len(data.concept_names), data.n_classes
        detector, left = self._detector(data, budget, n_concepts * n_classes + n_classes)
        n_weights = min(left - n_classes, n_concepts * n_classes)
        if n_weights < 1:
            raise BudgetError(f"concept_linear: {left} parameters left after the detector; the head needs at least "
                              f"{n_classes + 1}.")
        features, labels = concept_probabilities(detector, data.images), data.teacher_labels
        weight = torch.zeros(n_concepts, n_classes, requires_grad=True)
        bias = torch.zeros(n_classes, requires_grad=True)
        self._fit(features, labels, weight, bias, torch.ones(n_concepts, n_classes), self.l1)
        mask = torch.zeros(n_concepts * n_classes)
        mask[weight.detach().abs().flatten().topk(n_weights).indices] = 1
        mask = mask.view(n_concepts, n_classes)
        self._fit(features, labels, weight, bias, mask, 0.0)
        return ConceptLinearModel(detector, (weight * mask).detach(), bias.detach(), data.concept_names)

    def _fit(self, features, labels, weight, bias, mask, l1):
        optimizer = torch.optim.Adam([weight, bias], lr=0.05)
        for _ in range(self.steps):
            masked = weight * mask
            loss = F.cross_entropy(features @ masked + bias, labels) + l1 * masked.abs().sum()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()


class ConceptTreeModel(ReplacementModel):
    """A fitted CART tree on detected concept probabilities (its fit features kept for :meth:`concept_scores`)."""

    def __init__(self, detector, tree, features: np.ndarray, concept_names: tuple[str, ...]):
        self.detector, self.tree, self.concept_names = detector, tree, concept_names
        self._fit_features = features

    def _features(self, images):
        return concept_probabilities(self.detector, images).numpy()

    def predict(self, images):
        return torch.as_tensor(self.tree.predict(self._features(images)), dtype=torch.long)

    def parameter_count(self):
        return count_nonzero_parameters(self.detector) + int(self.tree.tree_.node_count)

    def concept_scores(self, class_index):
        """Each concept's contribution to the class's probability along the decision paths (Saabas 2014),
        averaged over the fit images the tree assigns to the class (all zero if it assigns none)."""
        structure, scores = self.tree.tree_, np.zeros(len(self.concept_names))
        column = np.flatnonzero(self.tree.classes_ == class_index)
        if len(column) == 0:
            return dict(zip(self.concept_names, scores.tolist()))
        assigned = self._fit_features[self.tree.predict(self._fit_features) == class_index]
        if len(assigned):
            value = structure.value[:, 0, :]
            share = value[:, column[0]] / value.sum(1)
            visits = np.asarray(self.tree.decision_path(assigned).sum(0)).ravel()
            for parent in np.flatnonzero(structure.children_left >= 0):
                for child in (structure.children_left[parent], structure.children_right[parent]):
                    scores[structure.feature[parent]] += visits[child] * (share[child] - share[parent])
            scores /= len(assigned)
        return dict(zip(self.concept_names, scores.tolist()))

    def details(self):
        return {"detector_width": getattr(self.detector, "width", None), "nodes": int(self.tree.tree_.node_count),
                "leaves": int(self.tree.get_n_leaves())}


@register_method
class ConceptTree(ConceptReplacement):
    """A CART decision tree (Breiman et al. 1984) on detected concept probabilities, distilled on the network's
    labels and grown best-first to as many leaves as the budget allows (each node counts as a parameter)."""

    name = "concept_tree"
    paper = "Breiman et al. 1984 (CART), distilled from the network as in Craven & Shavlik 1996"
    parameter_constraints = {**HEAD_SHARE, "max_leaves": Interval(int, 2, None),
                             "min_samples_leaf": Interval(int, 1, None)}

    def __init__(self, *, head_share: float = 0.25, max_leaves: int = 256, min_samples_leaf: int = 3):
        self.head_share = head_share
        self.max_leaves = max_leaves
        self.min_samples_leaf = min_samples_leaf

    def _replace(self, model, data, budget, seed):
        from sklearn.tree import DecisionTreeClassifier

        detector, left = self._detector(data, budget, 2 * self.max_leaves - 1)
        leaves = min(self.max_leaves, (left + 1) // 2)
        if leaves < 2:
            raise BudgetError(f"concept_tree: {left} parameters left after the detector; a tree needs at least 3.")
        features = concept_probabilities(detector, data.images).numpy()
        tree = DecisionTreeClassifier(max_leaf_nodes=leaves, min_samples_leaf=self.min_samples_leaf,
                                      random_state=seed).fit(features, data.teacher_labels.numpy())
        return ConceptTreeModel(detector, tree, features, data.concept_names)
