"""``trojanbench survey``: serve a study, back it up while it serves, export its answers, plan its size, run
simulated respondents on a copy of it, or withdraw a participant's answers."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import click

log = logging.getLogger(__name__)

ADMIN_TOKEN_ENV = "TROJANBENCH_SURVEY_ADMIN_TOKEN"


def _methods(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


@click.group()
def survey() -> None:
    """Human evaluation: a multiple-choice survey over a finished run (extra [survey])."""


@survey.command()
@click.argument("results_dir", type=click.Path(file_okay=False))
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (behind a proxy, keep the loopback default).")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535),
              help="Port to listen on.")
@click.option("--admin-token", envvar=ADMIN_TOKEN_ENV, show_envvar=True,
              help="Token for the admin pages (at least 16 characters); default: a random one, logged once.")
@click.option("--methods", help="Comma-separated methods whose cells are shown (default: every tool, baseline "
                                "and the oracle).")
@click.option("--items-per-participant", type=int, help="Cell items per participant (default: one per trojan).")
@click.option("--answers-per-cell", type=int, help="Admit no new participant once every cell has this many answers.")
@click.option("--completion-code", help="The crowd platform's completion code (default: a random code per person).")
@click.option("--seed", type=int, help="Draws the attention checks and the participants' seeds (default 0).")
@click.option("--lease-minutes", default=20.0, show_default=True, type=float,
              help="How long an unanswered item holds its cell's slot.")
@click.option("--consent", "consent_file", type=click.Path(dir_okay=False, exists=True),
              help="Your own consent text (plain text; paragraphs separated by blank lines).")
@click.option("--trusted-proxy", "trusted_proxies", multiple=True, metavar="ADDR",
              help="A reverse proxy whose X-Forwarded-For/-Proto headers are believed (an address or network; "
                   "repeat for several; default: 127.0.0.1 and ::1). Rate limits then count the address it names.")
@click.option("--rate-per-participant", type=click.IntRange(1), metavar="N",
              help="Pages and answers a minute per participant (default: 120).")
@click.option("--rate-per-address", type=click.IntRange(1), metavar="N",
              help="Pages and answers a minute per client address, shared by everyone behind it (default: 6000).")
@click.option("--image-rate-per-participant", type=click.IntRange(1), metavar="N",
              help="Pictures a minute per participant (default: 1200; a page shows nine).")
@click.option("--image-rate-per-address", type=click.IntRange(1), metavar="N",
              help="Pictures a minute per client address (default: 30000).")
def serve(results_dir: str, host: str, port: int, admin_token: str | None, methods: str | None,
          items_per_participant: int | None, answers_per_cell: int | None, completion_code: str | None,
          seed: int | None, lease_minutes: float, consent_file: str | None, trusted_proxies: tuple[str, ...],
          rate_per_participant: int | None, rate_per_address: int | None, image_rate_per_participant: int | None,
          image_rate_per_address: int | None) -> None:
    """Serve a finished run as a study: consent, instructions, one page per item, completion code.

    Answers go to RESULTS_DIR/survey.sqlite; serving the same folder again resumes the study. Share
    http://HOST:PORT/ (crowd platforms may append ?PROLIFIC_PID=...&STUDY_ID=...&SESSION_ID=...).
    The live summary and the CSV/JSON export are at /admin.

    \b
    Examples:
      trojanbench survey serve trojanbench-results
      TROJANBENCH_SURVEY_ADMIN_TOKEN=... trojanbench survey serve results --host 0.0.0.0 --answers-per-cell 30
      trojanbench survey serve results --trusted-proxy 10.0.0.5 --rate-per-address 20000
    """
    import dataclasses

    from .app import DEFAULT_CONSENT, DEFAULT_LIMITS, DEFAULT_TRUSTED_PROXIES, create_app
    from .app import serve as run_server
    from .security import new_token
    from .study import Study

    study = Study.open(results_dir, lease_seconds=lease_minutes * 60, methods=_methods(methods),
                       items_per_participant=items_per_participant, answers_per_cell=answers_per_cell,
                       completion_code=completion_code, seed=seed)
    if admin_token is None:
        admin_token = new_token()
        log.warning("admin token for this server (shown once; set %s to choose your own): %s", ADMIN_TOKEN_ENV,
                    admin_token)
    consent = DEFAULT_CONSENT
    if consent_file:
        consent = tuple(p.strip() for p in Path(consent_file).read_text(encoding="utf-8").split("\n\n") if p.strip())
    rates = {"per_participant_per_minute": rate_per_participant, "per_address_per_minute": rate_per_address,
             "images_per_participant_per_minute": image_rate_per_participant,
             "images_per_address_per_minute": image_rate_per_address}
    limits = dataclasses.replace(DEFAULT_LIMITS, **{k: v for k, v in rates.items() if v is not None})
    app = create_app(study, admin_token, consent=consent, limits=limits)
    click.echo(f"Serving {len(study.items)} items ({len(study.cells)} cells) at http://{host}:{port}/ "
               f"(admin: http://{host}:{port}/admin). Ctrl+C stops; serving again resumes.")
    run_server(app, host=host, port=port, trusted_proxies=trusted_proxies or DEFAULT_TRUSTED_PROXIES)


@survey.command()
@click.argument("results_dir", type=click.Path(file_okay=False, exists=True))
@click.argument("out", type=click.Path(dir_okay=False))
def backup(results_dir: str, out: str) -> None:
    """Copy the study's database (RESULTS_DIR/survey.sqlite) to OUT while the server keeps running: SQLite's online
    backup, a consistent snapshot checked for integrity. OUT is replaced if it exists.

    \b
    Examples:
      trojanbench survey backup trojanbench-results backups/survey-$(date +%F-%H%M).sqlite
    """
    from .backup import backup_study

    click.echo(f"Backed up {backup_study(results_dir, out)} answers to {out}.")


@survey.command()
@click.argument("results_dir", type=click.Path(file_okay=False, exists=True))
@click.option("--format", "form", type=click.Choice(["csv", "json"]), default="csv", show_default=True,
              help="One row per answer (csv), or the design, items, participants and answers (json).")
@click.option("--out", type=click.Path(dir_okay=False, allow_dash=True), default="-", show_default=True,
              help="File to write ('-': standard output).")
def export(results_dir: str, form: str, out: str) -> None:
    """Export the study's answers, as the admin pages' /admin/export.csv and /admin/export.json do (no server
    needed; safe while one runs).

    \b
    Examples:
      trojanbench survey export trojanbench-results --format csv --out answers.csv
    """
    from ..errors import ConfigError
    from .export import export_csv, export_json
    from .store import SURVEY_FILE, SurveyStore

    database = Path(results_dir) / SURVEY_FILE
    if not database.is_file():
        raise ConfigError(f"No study database at {str(database)!r}; serve the folder first "
                          "(trojanbench survey serve RESULTS_DIR).")
    store = SurveyStore(database)
    try:
        text = (export_csv if form == "csv" else export_json)(store)
    finally:
        store.close()
    if out == "-":
        click.echo(text, nl=False)
    else:
        Path(out).write_text(text, encoding="utf-8", newline="")
        log.info("exported %s answers to %s", form, out)


@survey.command()
@click.option("--accuracy", default=0.125, show_default=True, type=float,
              help="People's accuracy on the weaker cell (default: chance, 1/8).")
@click.option("--difference", required=True, type=float, help="The accuracy difference to detect, e.g. 0.15.")
@click.option("--alpha", default=0.05, show_default=True, type=float, help="Two-sided significance level.")
@click.option("--power", default=0.8, show_default=True, type=float, help="Chance of detecting the difference.")
@click.option("--cells", type=click.IntRange(1), help="Number of (tool, trojan) cells, to also size the study.")
@click.option("--items-per-participant", default=12, show_default=True, type=click.IntRange(1),
              help="Questions each participant answers, to size the study.")
@click.option("--judge-rate", type=float,
              help="A judge's top-1 rate on the study's cells (the report's leaderboard): size the study to detect a "
                   "judge-vs-people gap of DIFFERENCE instead.")
def plan(accuracy: float, difference: float, alpha: float, power: float, cells: int | None,
         items_per_participant: int, judge_rate: float | None) -> None:
    """How many answers per cell tell two accuracies apart (two-proportion test, normal approximation).

    n = (z(1-alpha/2) sqrt(2 p(1-p)) + z(power) sqrt(p1(1-p1) + p2(1-p2)))^2 / (p1 - p2)^2, with p1 = ACCURACY,
    p2 = ACCURACY + DIFFERENCE and p their mean. Each participant answers each cell at most once, so this is
    also the number of participants who must see each cell.

    With --judge-rate R: how many answers, pooled over the cells, tell people's accuracy from a judge's top-1 rate R
    on the same cells when they differ by DIFFERENCE (a one-sample test: the judge's rate is fixed, not sampled).

    \b
    Examples:
      trojanbench survey plan --difference 0.15
      trojanbench survey plan --accuracy 0.3 --difference 0.1 --power 0.9 --cells 156
      trojanbench survey plan --judge-rate 0.4 --difference 0.1
    """
    from .scores import answers_for_judge_gap, answers_per_cell

    if judge_rate is not None:
        n = answers_for_judge_gap(judge_rate, difference, alpha=alpha, power=power)
        click.echo(f"{n} answers in all (pooled over the cells) detect people at {judge_rate + difference:.3f} "
                   f"against a judge at {judge_rate:.3f} (two-sided alpha {alpha}, power {power}): at least "
                   f"{math.ceil(n / items_per_participant)} participants answering {items_per_participant} cell "
                   f"items each (plus 2 attention checks).")
        return

    n = answers_per_cell(accuracy, difference, alpha=alpha, power=power)
    click.echo(f"{n} participants per cell detect {accuracy:.3f} vs {accuracy + difference:.3f} "
               f"(two-sided alpha {alpha}, power {power}).")
    if cells:
        total = n * cells
        click.echo(f"{cells} cells x {n} = {total} answers: at least {math.ceil(total / items_per_participant)} "
                   f"participants answering {items_per_participant} cell items each (plus 2 attention checks).")


@survey.command()
@click.argument("results_dir", type=click.Path(file_okay=False))
@click.option("--participants", default=20, show_default=True, type=click.IntRange(1, 1000),
              help="Scripted participants to run.")
@click.option("--judge", default="concept", show_default=True, help="The judge whose probabilities they answer by.")
@click.option("--noise", default=0.3, show_default=True, type=click.FloatRange(0, 1),
              help="Chance of answering at random instead.")
@click.option("--inattentive", default=0.0, show_default=True, type=click.FloatRange(0, 1),
              help="Fraction of participants answering everything at random.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the participants' answers.")
def simulate(results_dir: str, participants: int, judge: str, noise: float, inattentive: float, seed: int) -> None:
    """Simulated respondents: scripted participants answer over HTTP by a judge's probabilities plus noise,
    then their scores are compared with the judges'. They take a copy of the study served in this process, stored
    in RESULTS_DIR/survey-simulation.sqlite (replaced each run, marked as a simulation); the people's study
    (survey.sqlite) and the report's Humans section are left as they are.

    \b
    Examples:
      trojanbench survey simulate trojanbench-results --participants 40
    """
    from .simulate import simulate_study

    report, scores = simulate_study(results_dir, participants, judge=judge, noise=noise, inattentive=inattentive,
                                    seed=seed)
    click.echo(f"{report.participants} participants, {report.completed} completed, {len(report.answers)} answers "
               f"acknowledged, {len(report.failures)} failed, {report.retries} retried requests, "
               f"{report.seconds:.1f} s.")
    for failure in report.failures:
        click.echo(f"  failed: {failure}")
    people = scores["participants"]
    click.echo(f"scored simulated participants {people['scored']} of {people['started']} ({people['excluded']} "
               f"excluded), {scores['n_answers']} scored answers; Krippendorff's alpha "
               f"{scores['krippendorff_alpha']:.3f}")
    for name, agreement in scores["agreement"].items():
        click.echo(f"simulated people vs {name}: Spearman over tools {agreement['spearman_tools']:.2f}, over cells "
                   f"{agreement['spearman_cells']:.2f}; calibration gap {agreement['gap_tools']:.3f} over tools, "
                   f"{agreement['gap_cells']:.3f} over cells; picked the judge's top option "
                   f"{agreement['picked_judge_top']:.2f}")


@survey.command()
@click.argument("results_dir", type=click.Path(file_okay=False))
@click.argument("participant_id")
@click.option("--reason", required=True, help="Why, for the audit trail (e.g. 'asked by email on 2026-12-03').")
@click.option("--operator", help="Who records the withdrawal (default: your login name).")
def delete(results_dir: str, participant_id: str, reason: str, operator: str | None) -> None:
    """Withdraw a participant's answers on their request: PARTICIPANT_ID is the id shown at the foot of their pages
    (e.g. 7-3F9A2C) or the participant_id of the export. A tombstone in RESULTS_DIR/survey.sqlite records when, by
    whom and why; the answers then leave every export, summary and score (their rows stay: answers are append-only).
    Works while the study is being served.

    \b
    Examples:
      trojanbench survey delete trojanbench-results 7-3F9A2C --reason "asked by email on 2026-12-03"
    """
    from .study import withdraw

    n_answers = withdraw(results_dir, participant_id, reason=reason, operator=operator)
    click.echo(f"Withdrew participant {participant_id.split('-')[0]}'s {n_answers} answers from exports and scores.")
