"""Trojans: trigger kinds, data poisoning, implanting, and measuring attack success."""

from .implant import implant, measure_model
from .measure import AttackSuccess, attack_success, clean_accuracy, predict
from .poison import PoisonedTrainingSet
from .training import TrainConfig, train
from .triggers import NaturalTrigger, PatchTrigger, StyleTrigger, Trigger, make_trigger

__all__ = [
    "AttackSuccess", "NaturalTrigger", "PatchTrigger", "PoisonedTrainingSet", "StyleTrigger", "TrainConfig",
    "Trigger", "attack_success", "clean_accuracy", "implant", "make_trigger", "measure_model", "predict", "train",
]
