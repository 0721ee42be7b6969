"""Reports: the HTML page shell and the CSV/JSON/Markdown exports of a results folder; each task contributes its
section."""

from .build import markdown_summary, results_document, task_results, write_report

__all__ = ["markdown_summary", "results_document", "task_results", "write_report"]
