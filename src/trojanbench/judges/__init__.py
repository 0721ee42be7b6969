"""Automatic judges of the multiple-choice test (Casper et al. 2023's protocol, without humans)."""

from .base import Judge, get_judge, judge_provenance, option_views, top1_hit, top1_hits
from .questions import N_OPTIONS, Question, build_question, option_picture

__all__ = ["N_OPTIONS", "Judge", "Question", "build_question", "get_judge", "judge_provenance",
           "option_picture", "option_views", "top1_hit", "top1_hits"]
