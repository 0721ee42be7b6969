"""Reports: the HTML page, its figures, and CSV/JSON/Markdown exports, made from a results folder."""

from .build import export_json, leaderboard, markdown_summary, write_report

__all__ = ["export_json", "leaderboard", "markdown_summary", "write_report"]
