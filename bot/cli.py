"""The `dealbot` command: parses arguments, calls the library, renders. Library errors become CLI errors here."""

from __future__ import annotations

import functools
import json
import sys
from contextlib import ExitStack, contextmanager
from pathlib import Path

import click

from ingest.index import IndexAccessError
from ingest.lock import LockHeld
from ingest.settings import Settings, SettingsError, load_settings, source_spec

from .evaluate import EvalFileError
from .state import StateError


def _errors_as_cli_errors(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (SettingsError, IndexAccessError, LockHeld, EvalFileError, StateError) as exc:
            raise click.ClickException(str(exc)) from None

    return wrapper


@click.group()
@click.option("--config", type=click.Path(dir_okay=False, path_type=Path), help="Configuration file (default: config/dealbot.toml, or DEALBOT_CONFIG).")
@click.option("--log-format", type=click.Choice(["text", "json"]), help="Log lines of serve and ingest --schedule as "
              "text or one JSON object per line (default: log_format, DEALBOT_LOG_FORMAT).")
@click.version_option(package_name="dealbot")
@click.pass_context
def cli(ctx: click.Context, config: Path | None, log_format: str | None):
    """Answers questions about a news story from its articles, every sentence cited."""
    try:
        ctx.obj = load_settings(config)
    except SettingsError as exc:
        if ctx.invoked_subcommand == "doctor":  # the doctor reports a bad configuration as its first check
            ctx.obj = exc
            return
        raise click.ClickException(str(exc)) from None
    if log_format:
        import dataclasses

        ctx.obj = dataclasses.replace(ctx.obj, log_format=log_format)


_METRICS_HOST = click.option("--metrics-host", default="0.0.0.0", show_default=True,
                             help="Address the --metrics-port server binds.")


@cli.command()
@click.option("--source", "sources", multiple=True, help="File, folder, page URL or feed URL to sync instead of the configured sources (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print the run report as one JSON object on the last line.")
@click.option("--schedule", metavar="CRON", help='Run now and then on this cron expression, e.g. "*/30 * * * *", until stopped.')
@click.option("--metrics-port", type=int, help="With --schedule: serve /metrics, /readyz and /healthz on this port.")
@_METRICS_HOST
@click.pass_obj
@_errors_as_cli_errors
def ingest(settings: Settings, sources: tuple[str, ...], as_json: bool, schedule: str | None, metrics_port: int | None,
           metrics_host: str):
    """Sync sources into the index and print a run report.

    Unchanged documents are skipped without embedding (web pages are asked for conditionally, so an unchanged one
    costs a 304), changed ones replaced, files gone from a folder removed (only from the source being synced). A
    document that cannot be read or fetched is reported and skipped. Exits non-zero when every source failed.

    With --schedule, runs forever, logging one line per run; Ctrl-C or SIGTERM stops it between two steps.
    """
    chosen = [s if "://" in s else str(Path(s).resolve()) for s in sources] or None
    if chosen is None and not settings.sources:
        raise click.ClickException("no sources configured: pass --source PATH or set `sources` in the configuration")
    for location in chosen or ():
        source_spec(location, Path.cwd(), "--source")  # only http(s) URLs; a clear error otherwise
    if schedule is not None:
        _ingest_on_schedule(settings, chosen, schedule, metrics_host, metrics_port)
        return
    from ingest.sync import run_ingest

    from .render import report_text

    report = run_ingest(settings, chosen, progress=not as_json and sys.stderr.isatty())
    click.echo(json.dumps(report.to_dict()) if as_json else report_text(report))
    if report.all_sources_failed:
        sys.exit(1)


def _ingest_on_schedule(settings: Settings, sources: list[str] | None, expression: str, metrics_host: str,
                        metrics_port: int | None) -> None:
    from ingest.schedule import check_expression
    from ingest.service import stop_on_signals

    from .logs import configure
    from .metrics import Readiness
    from .service import ingest_on_schedule

    check_expression(expression)
    configure(settings.log_format, text_format="%(asctime)s %(message)s")
    stop = stop_on_signals()
    with _probes(metrics_host, metrics_port, lambda: Readiness(None, expression, settings.state_db)):
        ingest_on_schedule(settings, sources, expression, _digest_token() if settings.digest.channels else None, stop)


def _digest_token() -> str | None:
    from .slack.app import SlackConfigError
    from .slack.digest import bot_token

    try:
        return bot_token()
    except SlackConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _date_option(end: bool):
    def convert(ctx, param, value):
        if value is None:
            return None
        from .dates import parse_date

        try:
            return parse_date(value, end=end)
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None

    return convert


_MODEL_OPTION = click.option(
    "--model", "llm_model", metavar="PROVIDER:MODEL",
    help="Answer with this chat model (overrides llm.model, e.g. openai:gpt-4o-mini); '' for the offline answer.",
)


def _with_model(settings: Settings, llm_model: str | None) -> Settings:
    if llm_model is None:
        return settings
    import dataclasses

    return dataclasses.replace(settings, llm=dataclasses.replace(settings.llm, model=llm_model))


class _TerminalStream:
    """Prints the answer as the model writes it, then erases it so the final answer (checked citations, sources)
    takes its place."""

    def __init__(self, out):
        self.out, self.printed = out, ""

    def __call__(self, text: str) -> None:
        if text.startswith(self.printed) and len(text) > len(self.printed):
            self.out.write(text[len(self.printed):])
            self.out.flush()
            self.printed = text

    def erase(self) -> None:
        if not self.printed:
            return
        import shutil

        width = max(1, shutil.get_terminal_size().columns)
        rows = sum(max(1, -(-len(line) // width)) for line in self.printed.split("\n"))
        self.out.write("\r" + (f"\x1b[{rows - 1}A" if rows > 1 else "") + "\x1b[J")
        self.out.flush()
        self.printed = ""


@cli.command()
@click.argument("question", required=False)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per answer, one line each.")
@click.option("--explain", is_flag=True, help="Also show the retrieved passages with their dense, lexical and fused "
              "scores, and why each candidate sentence was chosen or not.")
@click.option("--chat", is_flag=True, help="Read stdin as one conversation: follow-ups such as 'and when was it "
              "signed?' are read in the light of the earlier questions (the default when stdin is a terminal).")
@click.option("--since", callback=_date_option(False), help="Only articles published on or after this date "
              "(2025-06-27, 2025-06 or 'June 2025').")
@click.option("--until", callback=_date_option(True), help="Only articles published on or before this date.")
@click.option("--source", "sources", multiple=True, help="Only articles from this outlet, file or URL (matched by "
              "substring; repeatable).")
@_MODEL_OPTION
@click.pass_obj
@_errors_as_cli_errors
def ask(
    settings: Settings, question: str | None, as_json: bool, explain: bool, chat: bool, since, until, sources,
    llm_model: str | None,
):
    """Answer QUESTION from the indexed articles, with citations.

    Without QUESTION: at a terminal, an interactive conversation (type a question, then follow-ups; an empty
    line or Ctrl-D ends it, /new starts over). From a pipe, one question per line, each answered on its own,
    unless --chat makes the lines one conversation. The model and the index are loaded once.

    A question longer than ask.max_question_chars is cut at a word, with a note. With --json every input line gets
    exactly one output line, a blank one too (answered: false, with the reason); bytes that are not UTF-8 are
    replaced.

    With an LLM configured (llm.model or --model) the answer is printed as it is written when stdout is a terminal;
    when the model fails, the offline answer is given and the reason goes to stderr.
    """
    from .pipeline import Pipeline
    from .retrieve import Filters

    interactive = question is None and sys.stdin.isatty()
    pipeline = Pipeline(_with_model(settings, llm_model))
    asker = _Asker(pipeline, Filters(since, until, tuple(sources)) or None, as_json, explain, chat or interactive)
    if interactive:
        click.echo("Ask about the articles; follow-ups continue the conversation. Empty line to quit, /new to start over.")
    for line in [question] if question is not None else _question_lines(interactive, asker.history):
        asker.ask(line)


class _Asker:
    """One `dealbot ask` session: each line asked (in the conversation, when it is one) and its answer printed."""

    def __init__(self, pipeline, filters, as_json: bool, explain: bool, conversation: bool):
        self.pipeline, self.filters, self.as_json, self.explain = pipeline, filters, as_json, explain
        self.conversation = conversation
        self.live = pipeline.llm is not None and not as_json and sys.stdout.isatty()
        self.history: list = []
        self.first = True

    def ask(self, line: str) -> None:
        from .question import prepare
        from .render import answer_json
        from .types import Answer

        asked = prepare(line, self.pipeline.settings.ask.max_question_chars)
        if not asked.text:
            if self.as_json:  # one output line per input line, so answers pair with the questions
                click.echo(answer_json(Answer(asked.text, False, reason=asked.empty_reason)))
            return
        if self.conversation and asked.text == "/new":
            self.history.clear()
            return
        if not self.first and not self.as_json:
            click.echo("")
        self._answer(asked.text, asked.note)
        sys.stdout.flush()
        self.first = False

    def _answer(self, question: str, note: str) -> None:
        from .metrics import observe_answer
        from .render import answer_json, ask_text

        stream = _TerminalStream(sys.stdout) if self.live else None
        answer = self.pipeline.answer(question, self.history if self.conversation else (), filters=self.filters,
                                      explain=self.explain, on_text=stream)
        observe_answer("cli", answer)
        if stream is not None:
            stream.erase()
        if self.conversation:
            self.history.append(answer)
        if self.as_json:
            click.echo(answer_json(answer, self.explain, note=note))
            return
        click.echo(ask_text(answer, self.explain, note, read_as=self.conversation))
        if answer.model_failed:
            click.echo(f"dealbot: offline answer: {answer.fallback_reason}", err=True)


def _question_lines(interactive: bool, history: list):
    """The questions typed at the terminal (until an empty line or Ctrl-D), or the lines of stdin, blank ones
    included. Bytes that are not UTF-8 are replaced rather than fatal."""
    if hasattr(sys.stdin, "reconfigure"):
        sys.stdin.reconfigure(errors="replace", newline="\n")  # a lone \r is no line break
    while True:
        if interactive:
            try:
                line = input("> " if not history else "… ")
            except EOFError:
                click.echo()
                return
            if not line.strip():
                return
        else:
            line = sys.stdin.readline()
            if not line:
                return
        yield line


@cli.command("eval")
@click.argument("questions", type=click.Path(exists=True))
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--compare", type=click.Choice(["baseline"]), help="Also score a naive baseline on the same questions "
              "(the passage nearest the question as the answer) and show the margin.")
@click.option("--calibrate", is_flag=True, help="Also compute the abstention threshold that fits the dev split best.")
@click.option("--verbose", "-v", is_flag=True, help="List every question with its outcome.")
@_MODEL_OPTION
@click.pass_obj
@_errors_as_cli_errors
def eval_(
    settings: Settings, questions: str, as_json: bool, compare: str | None, calibrate: bool, verbose: bool,
    llm_model: str | None,
):
    """Score the pipeline on a JSONL question set (or a folder of them): hit@k, accuracy, citation accuracy,
    abstention, answer length and latency, for the dev and held-out splits separately; and what the reader sees
    with the related passages: on screen, confident and wrong, off-topic with passages, visible length.

    With an LLM configured (llm.model or --model) the LLM's answers are scored, so models can be compared on the
    same questions; the report counts the answers the LLM wrote and the fallbacks to the offline answer.
    """
    from .evaluate import load_cases, full_report
    from .pipeline import Pipeline
    from .render import eval_text

    cases = load_cases(questions)
    report, outcomes = full_report(Pipeline(_with_model(settings, llm_model)), cases, compare, calibrate)
    click.echo(json.dumps(report.to_dict()) if as_json else eval_text(report, outcomes, verbose))


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@click.pass_obj
@_errors_as_cli_errors
def status(settings: Settings, as_json: bool):
    """What the index holds: documents, passages, the model, the last run, and each source's last run and errors;
    and how many Slack replies are waiting to be delivered."""
    from .render import status_text
    from .status import read_status

    info = read_status(settings)
    click.echo(json.dumps(info.to_dict()) if as_json else status_text(info))


@cli.command()
@click.option("--since", callback=_date_option(False), help="Only articles published on or after this date "
              "(2025-06-27, 2025-06 or 'June 2025').")
@click.option("--until", callback=_date_option(True), help="Only articles published on or before this date.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of {published, title, outlet, url, source, "
              "doc_id, lead, alternates}.")
@click.pass_obj
@_errors_as_cli_errors
def timeline(settings: Settings, since, until, as_json: bool):
    """The story's articles in date order, oldest first, grouped by month: date, title, outlet, link and first
    sentence. Syndicated copies are listed once, with where else they appeared. Undated articles come last (and
    are left out when --since or --until is given)."""
    from ingest.store import reading

    from .render_story import timeline_text
    from .story import timeline as story_timeline

    with reading(settings) as index:
        articles = story_timeline(index, since, until)
    click.echo(json.dumps([a.to_dict() for a in articles], ensure_ascii=False) if as_json else timeline_text(articles))


@cli.command()
@click.option("--dry-run", is_flag=True, help="Print what the next digest would post to each channel; post nothing.")
@click.option("--json", "as_json", is_flag=True, help="As JSON: every article announced (or waiting to be), with "
              "channel, status and time; with --dry-run, what the next digest would post.")
@click.pass_obj
@_errors_as_cli_errors
def digest(settings: Settings, dry_run: bool, as_json: bool):
    """The digest of new articles posted to the digest channels (digest.channels) after each scheduled ingest run.

    Lists what was announced where and when, and what waits for the next digest (a post that failed is retried
    then). With --dry-run, what the next digest would post.
    """
    from .digest import Digest
    from .render_story import announcements_text, preview_text
    from .state import slack_state

    if dry_run:
        if not settings.digest.channels:
            raise click.ClickException("the digest is off: set digest.channels (DEALBOT_DIGEST_CHANNELS) to channel ids")
        from ingest.store import reading

        with reading(settings) as index:
            previews = Digest(settings, None, index).preview()
        click.echo(json.dumps([p.to_dict() for p in previews], ensure_ascii=False) if as_json else preview_text(previews))
        return
    rows = Digest(settings, None).outbox.announcements() if slack_state(settings).exists() else []
    click.echo(json.dumps(rows, ensure_ascii=False) if as_json else announcements_text(rows))


@cli.command()
@click.option("--http", "http_mode", is_flag=True, help="Serve the Events API over HTTP instead of Socket Mode.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind in HTTP mode.")
@click.option("--port", default=3000, show_default=True, help="Port in HTTP mode.")
@click.option("--metrics-port", type=int, help="Also serve /metrics, /readyz and /healthz on this port (Socket Mode "
              "has no other HTTP port; in HTTP mode they are on --port too).")
@_METRICS_HOST
@click.pass_obj
@_errors_as_cli_errors
def serve(settings: Settings, http_mode: bool, host: str, port: int, metrics_port: int | None, metrics_host: str):
    """Run the Slack bot: Socket Mode when SLACK_APP_TOKEN is set, else (or with --http) HTTP mode.

    HTTP mode serves Slack's events, slash commands and interactivity at /slack/events, a health check at /healthz,
    readiness at /readyz and Prometheus metrics at /metrics, through a front process of its own that checks and
    acknowledges requests while this one answers. Tokens come from the environment only: SLACK_BOT_TOKEN,
    SLACK_SIGNING_SECRET (HTTP mode), SLACK_APP_TOKEN (Socket Mode). The model and the index are loaded before the
    first request is accepted.
    """
    import os
    import signal

    from .logs import configure
    from .service import serving
    from .slack.app import SlackConfigError, create_app, secrets_from_env

    configure(settings.log_format)
    http_mode = http_mode or not os.environ.get("SLACK_APP_TOKEN")
    if not http_mode:
        # Socket Mode acks in this process: they are short and wait on sockets, while answers hold the interpreter
        # for long stretches. A shorter switch interval (default 5 ms) hands it back to a waiting ack sooner.
        sys.setswitchinterval(0.0005)
    try:
        secrets = secrets_from_env(http=http_mode)
    except SlackConfigError as exc:
        raise click.ClickException(str(exc)) from None
    signal.signal(signal.SIGTERM, _interrupt)
    with serving(settings, secrets.bot_token) as pipeline, ExitStack() as probes:
        from .metrics import Readiness

        # Ingest freshness counts where this process runs the schedule (the embedded store's owner).
        readiness = Readiness(pipeline, "" if settings.server_mode else settings.ingest.schedule, settings.state_db)
        probes.enter_context(_probes(metrics_host, metrics_port, lambda: readiness))
        # In HTTP mode the front (bot/slack/front.py) checks every request and acknowledges; answers are background work.
        app = create_app(settings, pipeline, secrets, verify=not http_mode, background=http_mode)
        _run_slack(app, secrets, http_mode, host, port, readiness)


def _interrupt(signum, frame):
    raise KeyboardInterrupt  # unwinds the server loop; the schedule then stops between two steps


def _run_slack(app, secrets, http_mode: bool, host: str, port: int, readiness) -> None:
    """Serve `app` until interrupted; what is undelivered stays in the state database for the next start."""
    from .slack.app import context_of
    from .slack.relay import Front
    from .slack.server import serve_socket_mode

    front = None
    try:
        if http_mode:
            front = Front(app, readiness, host, port).start()
            _say(f"serving Slack at http://{host}:{front.port}/slack/events")
            front.run()
        else:
            _say("connecting to Slack in Socket Mode")
            serve_socket_mode(app, secrets.app_token)
    except KeyboardInterrupt:
        _say("stopping")
    finally:
        if front is not None:
            front.stop()
        context_of(app).courier.stop()


def _say(text: str) -> None:
    """A line about the server itself (listening, stopping), on stderr through the log, so that it takes the log's
    format (one JSON object per line with --log-format json)."""
    import logging

    logging.getLogger("dealbot").info(text)


@contextmanager
def _probes(host: str, port: int | None, readiness):
    """/metrics, /readyz and /healthz on host:port for as long as the block runs (nothing when port is None)."""
    if port is None:
        yield
        return
    from .metrics import serve_probes

    server = serve_probes(host, port, readiness())
    _say(f"metrics at http://{host}:{server.effective_port}/metrics")
    try:
        yield
    finally:
        server.close()


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Export every record as one JSON array.")
@click.pass_obj
@_errors_as_cli_errors
def feedback(settings: Settings, as_json: bool):
    """List the 👍/👎 feedback given on the bot's answers in Slack, with the question, answer and citations."""
    from .render import feedback_text
    from .slack.store import SlackStore
    from .state import slack_state

    records = SlackStore.of(settings).feedback() if slack_state(settings).exists() else []
    click.echo(json.dumps(records, ensure_ascii=False) if as_json else feedback_text(records))


@cli.command()
@click.option("--json", "as_json", is_flag=True, help='One JSON object: {"ok", "checked_at", "checks": [{"name", '
              '"ok", "detail", "fix"}]} ("ok": null for a check that does not apply).')
@click.pass_obj
def doctor(settings, as_json: bool):
    """Check that this deployment can run: the configuration, the Slack tokens (accepted by slack.api_url) and the
    signing secret, the state database, Chroma and the collection's model, the index (not empty, how fresh), each
    source (reachable within the fetch limits), the LLM (one tiny prompt) when configured.

    One line per check, ✓ or ✗ with the fix (– when a check does not apply). Exits 0 only when no check failed.
    Secrets are never printed.
    """
    from .doctor import all_passed, render, report, run_checks

    checks = run_checks(settings)
    click.echo(json.dumps(report(checks), ensure_ascii=False) if as_json else render(checks))
    if not all_passed(checks):
        sys.exit(1)


def main():
    cli(prog_name="dealbot")
