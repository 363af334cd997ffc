"""The `dealbot` command: parses arguments, calls the library, renders. Library errors become CLI errors here."""

from __future__ import annotations

import functools
import json
from contextlib import ExitStack, contextmanager
import sys
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
        from .logs import configure
        from .metrics import Readiness

        configure(settings.log_format, text_format="%(asctime)s %(message)s")

        with _probes(metrics_host, metrics_port, lambda: Readiness(None, schedule, settings.state_db)):
            _ingest_on_schedule(settings, chosen, schedule)
        return
    from ingest.sync import run_ingest

    report = run_ingest(settings, chosen, progress=not as_json and sys.stderr.isatty()).to_dict()
    from .render import report_text

    click.echo(json.dumps(report) if as_json else report_text(report))
    if report["per_source"] and all(s["error"] for s in report["per_source"].values()):
        sys.exit(1)


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
def _ingest_on_schedule(settings: Settings, sources: list[str] | None, expression: str) -> None:
    import logging
    import signal
    import threading
    from contextlib import nullcontext

    from croniter import croniter

    from ingest.embed import Embedder
    from ingest.lock import WriterLock
    from ingest.schedule import run_on_schedule
    from ingest.sync import run_ingest

    from .digest import announce_new_articles
    from .render import report_line

    if not croniter.is_valid(expression):
        raise click.ClickException(f"--schedule {expression!r} is not a cron expression (e.g. '*/30 * * * *')")
    stop = threading.Event()

    def on_signal(signum, frame):
        if stop.is_set():  # asked twice: stop now (the index stays consistent either way)
            raise SystemExit(130)
        logging.getLogger("dealbot.schedule").info("stopping after the current step (again to stop at once)")
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    embedder = Embedder(batch_size=settings.embedding.batch_size)
    # In embedded mode this process owns the store for as long as it runs: a second writer is refused at once.
    with nullcontext() if settings.server_mode else WriterLock(settings.data_dir):
        digest = None
        if settings.digest.channels:
            digest = _start_digest(settings, _digest_token(), _index_is_fresh(settings, embedder))

        def run() -> str:
            report = run_ingest(settings, sources, embedder=embedder, stop=stop, lock_held=True)
            return report_line(report.to_dict()) + announce_new_articles(digest)

        run_on_schedule(expression, run, stop)


def _digest_token() -> str | None:
    from .slack.app import SlackConfigError
    from .slack.digest import bot_token

    try:
        return bot_token()
    except SlackConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _index_is_fresh(settings: Settings, embedder) -> bool:
    from ingest.index import Index

    return Index(settings, embedder.name, embedder.dimensions).collection is None


def _start_digest(settings: Settings, token: str | None, fresh_index: bool):
    """The digest of new articles for this process's scheduled runs, or None when it is off (no digest channels,
    or no Slack token to post with)."""
    import logging

    log = logging.getLogger("dealbot.digest")
    if not settings.digest.channels:
        return None
    if not token:
        log.info("digest.channels is set but SLACK_BOT_TOKEN is not: no digest of new articles is posted")
        return None
    from .digest import Digest
    from .slack.digest import SlackDigestPoster

    digest = Digest(settings, SlackDigestPoster(token, settings))
    digest.start(fresh_index)
    log.info("after each run, new articles are posted to %s", ", ".join(settings.digest.channels))
    return digest


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
    from .metrics import observe_answer
    from .pipeline import Pipeline
    from .question import prepare
    from .render import answer_json, answer_text, explain_text
    from .retrieve import Filters
    from .types import Answer

    filters = Filters(since, until, tuple(sources))
    interactive = question is None and sys.stdin.isatty()
    conversation = chat or interactive
    pipeline = Pipeline(_with_model(settings, llm_model))
    live = pipeline.llm is not None and not as_json and sys.stdout.isatty()
    history: list = []

    if interactive:
        click.echo("Ask about the articles; follow-ups continue the conversation. Empty line to quit, /new to start over.")
    first = True
    for line in [question] if question is not None else _question_lines(interactive, history):
        asked = prepare(line, settings.ask.max_question_chars)
        q = asked.text
        if not q:
            if as_json:  # one output line per input line, so answers pair with the questions
                click.echo(answer_json(Answer(q, False, reason=asked.empty_reason)))
            continue
        if conversation and q == "/new":
            history.clear()
            continue
        if not first and not as_json:
            click.echo("")
        stream = _TerminalStream(sys.stdout) if live else None
        answer = pipeline.answer(
            q, history if conversation else (), filters=filters or None, explain=explain, on_text=stream
        )
        observe_answer("cli", answer)
        if stream is not None:
            stream.erase()
        if conversation:
            history.append(answer)
        if as_json:
            click.echo(answer_json(answer, explain, note=asked.note))
        else:
            text = answer_text(answer)
            if conversation and answer.asked and answer.asked != q:
                text = f"(read as: {answer.asked})\n{text}"
            if asked.note:
                text = f"({asked.note})\n{text}"
            if explain:
                text += "\n\n" + explain_text(answer)
            click.echo(text)
            if answer.model_failed:
                click.echo(f"dealbot: offline answer: {answer.fallback_reason}", err=True)
        sys.stdout.flush()
        first = False


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
    from .evaluate import calibrate as calibrate_threshold
    from .evaluate import calibrate_off_topic, evaluate, load_cases
    from .pipeline import Pipeline

    cases = load_cases(questions)
    pipeline = Pipeline(_with_model(settings, llm_model))
    report, outcomes = evaluate(pipeline, cases)
    if compare:
        report[compare], _ = evaluate(pipeline, cases, system=compare)
    if calibrate:
        threshold, detail = calibrate_threshold(pipeline, cases)
        report["calibrated_min_score"] = {"value": threshold, **detail}
        cut, detail = calibrate_off_topic(pipeline, cases)
        report["calibrated_off_topic_match"] = {"value": cut, **detail}
    if as_json:
        click.echo(json.dumps(report))
        return
    if verbose:
        for o in outcomes:
            mark = ("ok " if o.correct else "MISS") if o.case.answerable else ("ok " if not o.answer.answered else "FALSE")
            shown = f"; {len(o.answer.related)} related" + (", on screen" if o.case.answerable and o.on_screen else "")
            click.echo(f"{mark} [{o.case.split}] {o.case.question} -> {o.answer.text[:140]} ({o.answer.evidence:.3f}{shown})")
    for system, rep in [("dealbot", report)] + ([(compare, report[compare])] if compare else []):
        for part in [k for k in ("dev", "heldout", "overall") if isinstance(rep.get(k), dict)]:
            r = rep[part]
            click.echo(
                f"{system:8} {part:8} n={r['questions']:3}  hit@k={_f(r['hit_at_k'])}  "
                f"accuracy={_f(r['accuracy'])} ({_n(r, 'accuracy')})  citations={_f(r['citation_accuracy'])} "
                f"({_n(r, 'citation_accuracy')})  abstention={_f(r['abstention'])} ({_n(r, 'abstention')})  "
                f"p50={r['latency_ms_p50']}ms p95={r['latency_ms_p95']}ms  median answer={r['answer_chars_median']} chars"
                + (f"  llm answers={r['llm_answers']} fallbacks={r['fallbacks']}" if rep.get("llm_model") else "")
            )
    for part in [k for k in ("dev", "heldout", "overall") if isinstance(report.get(k), dict)]:
        r = report[part]
        click.echo(
            f"reader   {part:8} on screen={_f(r['on_screen'])} ({_n(r, 'on_screen')})  confident and wrong="
            f"{_f(r['confident_and_wrong'])} ({_n(r, 'confident_and_wrong')})  off-topic with passages="
            f"{_f(r['off_topic_with_passages'])} ({_n(r, 'off_topic_with_passages')})  "
            f"visible median={r['visible_chars_median']} chars"
        )
    for part in [k for k in ("dev", "heldout") if isinstance(report.get(k), dict)]:
        unseen = report[part]["unseen"]
        click.echo(
            f"unseen   {part:8} only in a cited article={unseen['in_cited_article']}  retrieved, not shown="
            f"{unseen['retrieved_not_shown']}  not retrieved={unseen['not_retrieved']}"
        )
    for part in [k for k in ("dev", "heldout") if isinstance(report.get(k), dict)]:
        misses = report[part]["misses"]
        click.echo(
            f"misses   {part:8} not retrieved={misses['not_retrieved']}  retrieved, other sentences chosen="
            f"{misses['other_sentence']}  retrieved, abstained={misses['abstained_retrieved']}  "
            f"unanswerable answered={misses['answered_unanswerable']}"
        )
    if compare:
        for part in [k for k in ("dev", "heldout", "overall") if isinstance(report.get(k), dict)]:
            ours, theirs = report[part], report[compare][part]
            margins = "  ".join(
                f"{name}={_margin(ours[key], theirs[key])}"
                for name, key in (("accuracy", "accuracy"), ("citations", "citation_accuracy"), ("abstention", "abstention"))
            )
            click.echo(f"margin   {part:8} dealbot - {compare}: {margins}")
    if isinstance(report.get("heldout"), dict):
        ci = report["heldout"]["ci95"]
        click.echo("95% intervals, dealbot heldout: " + "  ".join(
            f"{name}={_interval(ci[key])}"
            for name, key in (("accuracy", "accuracy"), ("citations", "citation_accuracy"), ("abstention", "abstention"),
                          ("on screen", "on_screen"))
        ))
    click.echo(f"min_score={report['min_score']}" + (f"  llm.model={report['llm_model']}" if report["llm_model"] else ""))
    if calibrate:
        click.echo(f"calibrated min_score={report['calibrated_min_score']['value']} (dev balanced score "
                   f"{report['calibrated_min_score']['balanced_score']})")
        off = report["calibrated_off_topic_match"]
        click.echo(f"calibrated off-topic cut={off['value']} ({off['wrong_side']} of {off['dev_questions']} dev "
                   f"questions on the wrong side, {off['off_topic']} of them off-topic)")


def _f(x: float | None) -> str:
    return "n/a " if x is None else f"{x:.2f}"


def _n(part: dict, key: str) -> str:
    good, total = part["counts"][key]
    return f"{good}/{total}"


def _interval(ci: list[float] | None) -> str:
    return "n/a" if ci is None else f"{ci[0]:.2f}-{ci[1]:.2f}"


def _margin(a: float | None, b: float | None) -> str:
    return "n/a" if a is None or b is None else f"{a - b:+.2f}"


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@click.pass_obj
@_errors_as_cli_errors
def status(settings: Settings, as_json: bool):
    """What the index holds: documents, passages, the model, the last run, and each source's last run and errors;
    and how many Slack replies are waiting to be delivered."""
    from .status import source_counts, status_info

    info = status_info(settings)
    sources = info["sources"]
    busy = info["busy"]
    if as_json:
        click.echo(json.dumps(info))
        return
    click.echo(f"index:     {info['index']}\nmodel:     {info['model']}")
    click.echo(f"answers:   {'written by ' + info['llm_model'] if info['llm_model'] else 'offline (extractive)'}")
    if busy:
        click.echo(f"documents: not counted now: {busy}")
    else:
        click.echo(f"documents: {info['documents']}\npassages:  {info['passages']}")
    click.echo(f"schedule:  {info['schedule'] or 'none (run `dealbot ingest` yourself)'}")
    click.echo(f"slack:     {info['slack_pending']} replies waiting to be delivered"
               + (f", {info['slack_undelivered']} given up" if info["slack_undelivered"] else ""))
    from .render import display_source, report_line

    run = info["last_run"]
    click.echo(f"last run:  {run['finished']}: {report_line(run)}" if run else "last run:  never")
    for src in sources:
        name = src["name"] if src["name"] != src["location"] else display_source(src["location"])
        note = "" if src["configured"] else ", not configured any more"
        counted = "" if src["documents"] is None else f": {src['documents']} documents"
        click.echo(f"\n{name} ({src['kind']}{note}){counted}")
        last = src["last_run"]
        if not last:
            click.echo("  never run")
            continue
        click.echo(f"  last run {last['finished']}: {source_counts(last)}")
        if last["error"]:
            click.echo(f"  error: {last['error']}")
        for f in [f for f in last["failures"] if f["location"] != src["location"]]:
            click.echo(f"  failed: {f['location']}: {f['reason']}")


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
    from ingest.embed import DIMENSIONS, MODEL_NAME
    from ingest.index import Index

    from .render_story import timeline_text
    from .story import timeline as story_timeline

    articles = story_timeline(Index(settings, MODEL_NAME, DIMENSIONS), since, until)
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
        previews = Digest(settings, None).preview()
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
    readiness at /readyz and Prometheus metrics at /metrics. Tokens come from the environment only: SLACK_BOT_TOKEN,
    SLACK_SIGNING_SECRET (HTTP mode), SLACK_APP_TOKEN (Socket Mode). The model and the index are loaded before the
    first request is accepted.
    """
    import logging
    import os
    import signal

    from .slack.app import SlackConfigError, context_of, create_app, secrets_from_env
    from .slack.server import make_http_server, serve_socket_mode

    from .logs import configure
    from .metrics import Readiness

    configure(settings.log_format)
    # Acks are short and wait on sockets; answers hold the interpreter for long stretches. A shorter switch interval
    # (default 5 ms) hands it back to a waiting ack sooner, so a burst is acknowledged in milliseconds.
    sys.setswitchinterval(0.0005)
    http_mode = http_mode or not os.environ.get("SLACK_APP_TOKEN")
    try:
        secrets = secrets_from_env(http=http_mode)
    except SlackConfigError as exc:
        raise click.ClickException(str(exc)) from None

    def on_sigterm(signum, frame):
        raise KeyboardInterrupt  # unwinds the server loop; the schedule then stops between two steps

    signal.signal(signal.SIGTERM, on_sigterm)
    probes = ExitStack()
    with _store_owner(settings, secrets.bot_token) as pipeline:
        app = create_app(settings, pipeline, secrets)
        # Ingest freshness counts where this process runs the schedule (the embedded store's owner).
        readiness = Readiness(pipeline, "" if settings.server_mode else settings.ingest.schedule, settings.state_db)
        try:
            probes.enter_context(_probes(metrics_host, metrics_port, lambda: readiness))
            if http_mode:
                server = make_http_server(app, host, port, readiness=readiness)
                _say(f"serving Slack at http://{host}:{server.effective_port}/slack/events")
                server.run()
            else:
                _say("connecting to Slack in Socket Mode")
                serve_socket_mode(app, secrets.app_token)
        except KeyboardInterrupt:
            _say("stopping")
        finally:
            context_of(app).courier.stop()  # what is undelivered stays in slack.sqlite for the next start
            probes.close()


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


@contextmanager
def _store_owner(settings: Settings, bot_token: str | None = None):
    """The Pipeline that `serve` answers from, with the configured ingest schedule running beside it.

    With the embedded store this process owns it for as long as it runs (the writer lock: a stand-alone
    `dealbot ingest` is refused) and runs the schedule in a background thread; after each run the bot answers
    from the new articles, and posts the digest of them (with `bot_token`). With a Chroma server, ingest runs
    elsewhere and the bot notices changes by itself.
    """
    import logging
    import threading

    from ingest.embed import Embedder
    from ingest.index import Index
    from ingest.lock import WriterLock
    from ingest.schedule import run_on_schedule
    from ingest.sync import run_ingest

    from .digest import announce_new_articles
    from .pipeline import Pipeline
    from .render import report_line

    log = logging.getLogger("dealbot.schedule")
    expression = settings.ingest.schedule
    if settings.server_mode:
        if expression:
            log.info("ingest.schedule is not run by `serve` with a Chroma server: run `dealbot ingest --schedule` "
                     "or a cron job against the server")
        yield Pipeline(settings)
        return
    lock = WriterLock(settings.data_dir).acquire()
    stop = threading.Event()
    thread = None
    try:
        embedder = Embedder(settings.embedding.batch_size, cache_dir=settings.data_dir / "models")
        first_done = False
        fresh = Index(settings, embedder.name, embedder.dimensions).collection is None
        digest = _start_digest(settings, bot_token, fresh) if expression else None
        if expression and fresh:
            log.info("the index is empty: ingesting before serving")
            report = run_ingest(settings, embedder=embedder, lock_held=True)
            log.info("ingest %s", report_line(report.to_dict()) + announce_new_articles(digest))
            first_done = True
        pipeline = Pipeline(settings, embedder)
        if expression:

            def run() -> str:
                report = run_ingest(settings, embedder=embedder, stop=stop, lock_held=True)
                if report.added or report.updated or report.removed or report.duplicates:
                    pipeline.refresh()
                return report_line(report.to_dict()) + announce_new_articles(digest)

            thread = threading.Thread(
                target=run_on_schedule, args=(expression, run, stop, not first_done), name="dealbot-ingest", daemon=True
            )
            thread.start()
            log.info("ingest schedule %r running in this process", expression)
        yield pipeline
    finally:
        stop.set()
        if thread is not None:
            thread.join(timeout=120)
        lock.release()


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Export every record as one JSON array.")
@click.pass_obj
@_errors_as_cli_errors
def feedback(settings: Settings, as_json: bool):
    """List the 👍/👎 feedback given on the bot's answers in Slack, with the question, answer and citations."""
    from .slack.store import SlackStore
    from .state import slack_state

    records = SlackStore.of(settings).feedback() if slack_state(settings).exists() else []
    if as_json:
        click.echo(json.dumps(records, ensure_ascii=False))
        return
    if not records:
        click.echo("no feedback yet")
    for r in records:
        sources = ", ".join(c["title"] for c in r["citations"]) or "no sources"
        click.echo(f"{r['at']}  {'+1' if r['vote'] == 'up' else '-1'}  {r['user']} in {r['channel']}: {r['question']}")
        click.echo(f"    {r['answer'][:200]}  [{sources}]")


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
