"""The one exception tree of trojanbench.

Every error the package raises on purpose derives from :class:`TrojanbenchError`, and also from the
built-in exception it most resembles (``ValueError`` for bad input, ``ImportError`` for a missing extra),
so callers can catch either. Messages say what was wrong, what was got, and how to fix it.
"""

from __future__ import annotations


class TrojanbenchError(Exception):
    """Root of every error raised by trojanbench."""


class ConfigError(TrojanbenchError, ValueError):
    """A configuration (suite, trojan spec, hyperparameter) is invalid."""


class SpecError(ConfigError):
    """A trojan spec is invalid: unknown concept, unreadable image, target out of range, ..."""


class DataError(ConfigError):
    """A user's data (an image folder, its class names, its images) cannot be used as given."""


class UnknownNameError(TrojanbenchError, LookupError):
    """A name (concept, model, method, trojan) is not registered."""

    def __str__(self) -> str:  # LookupError/KeyError would otherwise quote the message
        return str(self.args[0]) if self.args else ""


class CheckpointError(TrojanbenchError, ValueError):
    """A checkpoint is missing, truncated, corrupted or does not fit the architecture."""


class UnsafeCheckpointError(CheckpointError):
    """A checkpoint is in a pickle-based format, which trojanbench refuses to load."""


class MethodError(TrojanbenchError, RuntimeError):
    """A method failed or returned invalid output (wrong shape, NaN, out of range)."""


class MissingExtraError(TrojanbenchError, ImportError):
    """An optional dependency is not installed; the message names the extra to install."""


def did_you_mean(name: str, available: list[str] | tuple[str, ...], what: str) -> UnknownNameError:
    """Build an :class:`UnknownNameError` with close matches and the full list of choices."""
    import difflib

    close = difflib.get_close_matches(name, list(available), n=3, cutoff=0.6)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    return UnknownNameError(
        f"Unknown {what} {name!r}.{hint} Available: {', '.join(sorted(available))}."
    )


def require_extra(module: str, extra: str, feature: str):
    """Import an optional dependency, or raise :class:`MissingExtraError` naming the extra to install."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(
            f"{feature} needs the optional dependency {module!r}, which is not installed ({exc}). "
            f"Install it with: pip install 'trojanbench[{extra}]'"
        ) from None


class SurveyError(TrojanbenchError, ValueError):
    """A survey request that cannot be honoured (an answer not among the options shown, an item that is not
    the participant's, a changed answer); ``status`` is the HTTP status the survey app answers with."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status
