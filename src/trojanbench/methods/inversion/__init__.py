"""Trigger inversion for language models: from the model and a published target, guess the trigger (the
language-model tasks' tools, beside their baselines)."""

from . import autoprompt, baselines, beam_search, gbda, gcg, hotflip, pez
from .base import Budget, BudgetExhausted, Candidate, InversionProblem, TriggerInversion, prompt_frame

__all__ = ["Budget", "BudgetExhausted", "Candidate", "InversionProblem", "TriggerInversion", "autoprompt",
           "baselines", "beam_search", "gbda", "gcg", "hotflip", "pez", "prompt_frame"]
