"""The tasks, one folder each: ``metrics`` (pure scoring against the planted ground truth), ``task`` (suite, plan
and compute), ``results`` (reading the store back), ``section`` and ``section.html.j2`` (the report), ``store`` (its
tables, where it needs its own), and the registered :class:`~trojanbench.engine.task.Task` in ``__init__``."""
