"""Benchmark: dealbot at a year of news (10k, 30k, 100k passages by default).

For each size, an index is built the same way: the real articles (data/articles, tests/eval/articles) are embedded
once by the model; then copies of them are written as article files in 30 feed folders and a small one, with a
third of their words replaced by words drawn from a vocabulary that grows sub-linearly (bench.bench.Vocabulary),
their own outlet (one of 40) and date (within one year), and their vectors perturbed, and stored through the index
module (`Index.write`), so the model is not needed for the copies. The folders are the configured sources, so
`dealbot ingest` sees the copies as the documents it wrote. Then, per size:

- add_one_s: `dealbot ingest --source <small folder>` as a whole process, adding one new article (model load
  included);
- source_rerun_s / full_rerun_s: `dealbot ingest` with nothing changed, `--source` naming the small folder, and
  every configured source;
- disk_kb_per_passage: `du` of the data directory / passages;
- the query-side figures (`query_figures`).

`--compare DIR` runs the same with the code in DIR (a checkout of another commit) too, side by side in one run:
its index is built by its own index module, its `dealbot` run from its own tree with this .venv. Everything is
built under a temporary directory that is removed at the end.

The last line is machine-readable, for the largest size: scale_passages=N start_s=A refresh_s=B rss_mb=C
ask_p50_ms=D ask_p99_ms=E filtered_p50_ms=F stall_ms=X slowest_ms=Y add_one_s=Z disk_kb_per_passage=W
(a figure not measured shows as nan).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import pickle
import random
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CODE = Path(os.environ.get("DEALBOT_SCALE_CODE", str(ROOT)))  # whose ingest/ and bot/ a `build` uses
sys.path.insert(0, str(CODE))
sys.path.insert(1, str(ROOT / "bench"))

REAL_ARTICLES = (ROOT / "data" / "articles", ROOT / "tests" / "eval" / "articles")
FEEDS = 30
OUTLETS = [f"{a} {b}" for a in ("Harbor", "Metal", "Trade", "Summit", "Capital", "Pacific", "Atlas", "Northern")
           for b in ("Wire", "Post", "Ledger", "Review", "Daily")]
REPLACE_SHARE = 0.35  # of words: no 5-word run survives often, so copies are not near-duplicates of each other
NOISE = 0.03  # of a unit vector, per dimension-ish: copies stay near their original, not on top of it
LAST_LINE = ("scale_passages", "start_s", "refresh_s", "rss_mb", "ask_p50_ms", "ask_p99_ms", "filtered_p50_ms",
             "stall_ms", "slowest_ms", "add_one_s", "disk_kb_per_passage")
STORE_FIGURES = ("build_s", "add_one_s", "source_rerun_s", "full_rerun_s", "disk_kb_per_passage")


# ------------------------------------------------------------------------------------------------ the seed corpus

def prepare_seed(path: Path, articles: int = 16, per_article: int = 6) -> None:
    """The real articles' text, embedded by the model once: what every copy is made from. The fixture articles
    are short, so each seed article joins the bodies of several of them (a news article's usual dozen passages)."""
    from ingest.chunking import chunk
    from ingest.embed import Embedder
    from ingest.settings import load_settings
    from ingest.sources import list_files, parse, read_raw

    settings = load_settings(env={"DEALBOT_DATA_DIR": str(path.parent / "seed-data")})
    embedder = Embedder(settings.embedding.batch_size)
    real = [_split_front_matter(f.read_text(encoding="utf-8")) for folder in REAL_ARTICLES for f, _ in list_files(str(folder))]
    folder, rng = path.parent / "seed-articles", random.Random(1)
    folder.mkdir(parents=True, exist_ok=True)
    seeds = []
    for a in range(articles):
        parts = rng.sample(real, min(per_article, len(real)))
        front = parts[0][0]
        head = "".join(f"{k}: {json.dumps(front.get(k, ''))}\n" for k in ("title", "outlet", "published"))
        text = f"---\n{head}---\n" + "\n\n".join(body.strip() for _, body in parts) + "\n"
        file = folder / f"seed-{a:02d}.md"
        file.write_text(text, encoding="utf-8")
        article = parse(read_raw(str(folder), file, file.name))
        passages = chunk(article, embedder.count_tokens, settings.chunking.max_tokens, settings.chunking.overlap_sentences)
        vectors, svecs = embedder.encode_passages([p.embed_text for p in passages], [p.embed_spans for p in passages])
        seeds.append({"file": text, "name": file.name, "article": article, "passages": passages,
                      "vectors": vectors, "svecs": svecs})
    path.write_bytes(pickle.dumps(seeds))
    print(f"seed: {len(seeds)} articles from {len(real)} real ones, {sum(len(s['passages']) for s in seeds)} passages, "
          "embedded once", flush=True)


# ------------------------------------------------------------------------------------- building one index (child)

_WORD = re.compile(r"[A-Za-z]{3,}")


def _copy_text(text: str, rng: random.Random, vocabulary) -> str:
    """`text` with about REPLACE_SHARE of its words replaced by vocabulary words of the same length."""
    return _WORD.sub(lambda m: vocabulary.word(len(m.group())) if rng.random() < REPLACE_SHARE else m.group(), text)


def _copy_file(seed: dict, i: int, rng: random.Random, vocabulary) -> str:
    front, body = _split_front_matter(seed["file"])
    day = date(2025, 1, 1) + timedelta(days=(i * 7919) % 365)
    fields = {"title": _copy_text(front.get("title", "Untitled"), rng, vocabulary), "outlet": OUTLETS[i % len(OUTLETS)],
              "published": day.isoformat()}
    head = "".join(f"{k}: {json.dumps(v)}\n" for k, v in fields.items())
    return f"---\n{head}---\n{_copy_text(body, rng, vocabulary)}"


def _split_front_matter(text: str) -> tuple[dict, str]:
    if not text.startswith("---\n"):
        return {}, text
    head, _, body = text[4:].partition("\n---\n")
    front = {}
    for line in head.splitlines():
        key, _, value = line.partition(":")
        front[key.strip()] = value.strip().strip('"')
    return front, body


def build(data: Path, seed_path: Path, passages: int) -> None:
    """Write article files and their index entries until the index holds about `passages` passages."""
    import numpy as np

    from bench import Vocabulary
    from ingest.dedupe import signature
    from ingest.embed import DIMENSIONS, MODEL_NAME
    from ingest.index import Index
    from ingest.settings import load_settings
    from ingest.sources import parse, read_raw

    seeds = pickle.loads(seed_path.read_bytes())
    env = {"DEALBOT_DATA_DIR": str(data / "data")}
    if os.environ.get("DEALBOT_CHROMA_URL"):  # the server-mode run: through the server, from a data dir of its own
        env = {k: os.environ[k] for k in ("DEALBOT_CHROMA_URL", "DEALBOT_DATA_DIR")}
    settings = load_settings(env=env)
    index = Index(settings, MODEL_NAME, DIMENSIONS, create=True)
    rng, nprng, vocabulary = random.Random(3), np.random.default_rng(3), Vocabulary(seed=3)
    corpus = data / "corpus"
    folders = [corpus / f"feed-{f:02d}" for f in range(FEEDS)] + [corpus / "small"]
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
    started, stored, i, skipped = time.perf_counter(), 0, 0, 0
    batch: list = []

    def flush():
        if batch:
            flat = [p for b in batch for p in b[0]]
            vectors = np.concatenate([b[1] for b in batch])
            svecs = [s for b in batch for s in b[2]]
            index.write(flat, vectors, svecs, {b[0][0].article.location: {"minhash": b[3]} for b in batch})
            batch.clear()

    while stored < passages:
        seed = seeds[i % len(seeds)]
        folder = folders[-1] if i < 3 else folders[i % FEEDS]
        path = folder / f"{i:06d}-{seed['name']}"
        path.write_text(_copy_file(seed, i, rng, vocabulary), encoding="utf-8")
        i += 1
        article = parse(read_raw(str(folder), path, path.name))
        if len(article.text) != len(seed["article"].text):  # offsets would not carry over: not a faithful copy
            skipped += 1
            path.unlink()
            continue
        copies = [dataclasses.replace(p, article=article) for p in seed["passages"]]
        vectors = _perturbed(seed["vectors"], nprng)
        svecs = [_perturbed(s, nprng) for s in seed["svecs"]]
        batch.append((copies, vectors, svecs, signature(article.text)))
        stored += len(copies)
        if sum(len(b[0]) for b in batch) >= 2000:
            flush()
    flush()
    try:  # the lexical index the ingest keeps beside the data, as a run that had written these would have left it
        from ingest.lexical import LexicalStore, path_for
    except ImportError:  # code that has none
        LexicalStore = None
    if LexicalStore is not None and not settings.server_mode:  # with a server, each bot replica keeps its own
        from ingest.words import alias_forms

        store = LexicalStore(path_for(settings.data_dir, settings.collection), index.store_id)
        store.sync(index, alias_forms(settings.vocabulary))
    import ingest.index

    print(json.dumps({"code": ingest.index.__file__, "documents": i - skipped, "passages": stored, "skipped": skipped,
                      "vocabulary": vocabulary.size(), "seconds": round(time.perf_counter() - started, 1)}))


def _perturbed(vectors, rng):
    import numpy as np

    out = vectors + rng.normal(0.0, NOISE / math.sqrt(vectors.shape[-1]) * 4, size=vectors.shape).astype(np.float32)
    return (out / np.linalg.norm(out, axis=-1, keepdims=True)).astype(np.float32)


# ---------------------------------------------------------------------------------------------------- measuring

CPU: dict[str, float] = {}  # CPU seconds (user + system) of the last child run: steadier than wall time on a busy machine


def _run(code: Path, args: list[str], env: dict, timeout: float = 3600) -> tuple[subprocess.CompletedProcess, float]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("DEALBOT_") and "proxy" not in k.lower()}
    environ.update(env, PYTHONPATH=str(code), DEALBOT_SCALE_CODE=str(code))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, *args], env=environ, cwd=code, capture_output=True, text=True, timeout=timeout)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU["last"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args[:3])} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return done, seconds


def _dealbot(code: Path, env: dict, *args: str) -> tuple[dict, float]:
    """The run's report (its "seconds": the sync itself, without start-up) and the whole process's wall time."""
    done, seconds = _run(code, ["-c", "from bot.cli import main; main()", *args], env)
    report = json.loads(done.stdout.splitlines()[-1])
    report["cpu_s"] = CPU["last"]
    return report, seconds


def _du_kb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1024


def store_figures(code: Path, work: Path, seed: Path, passages: int) -> dict:
    """The ingest and disk figures for one size, with the code in `code`."""
    done, build_s = _run(code, [str(ROOT / "bench" / "scale.py"), "build", str(work), str(seed), str(passages)], {})
    built = json.loads(done.stdout.splitlines()[-1])
    assert Path(built["code"]).is_relative_to(code), f"built with {built['code']}, not the code in {code}"
    corpus = work / "corpus"
    small = str((corpus / "small").resolve())
    env = {"DEALBOT_DATA_DIR": str(work / "data"),
           "DEALBOT_SOURCES": ",".join(str(p.resolve()) for p in sorted(corpus.iterdir()))}
    disk = _du_kb(work / "data") / built["passages"]
    full, full_s = _dealbot(code, env, "ingest", "--json")
    source, source_s = _dealbot(code, env, "ingest", "--json", "--source", small)
    source2, source_s2 = _dealbot(code, env, "ingest", "--json", "--source", small)
    new = corpus / "small" / "zz-new-article.md"
    new.write_text(_new_article(), encoding="utf-8")
    added, add_s = _dealbot(code, env, "ingest", "--json", "--source", small)
    assert full["failed"] == 0 and full["added"] == 0 and full["updated"] == 0, full
    assert added["added"] == 1, added
    return {"passages": built["passages"], "documents": built["documents"], "vocabulary": built["vocabulary"],
            "build_s": build_s, "add_one_s": add_s, "source_rerun_s": min(source_s, source_s2),
            "full_rerun_s": full_s, "disk_kb_per_passage": disk,
            # Where the time goes: CPU seconds of each whole process, and the sync alone (no start-up, no model).
            "add_one_cpu_s": added["cpu_s"], "source_rerun_cpu_s": min(source["cpu_s"], source2["cpu_s"]),
            "full_rerun_cpu_s": full["cpu_s"], "add_one_sync_s": added["seconds"],
            "source_rerun_sync_s": min(source["seconds"], source2["seconds"]), "full_rerun_sync_s": full["seconds"],
            "env": env}


def _new_article(seed: int = 99) -> str:
    """A fixture article no copy resembles (its own words throughout): what `add_one_s` adds (others, with other
    seeds, for the query side)."""
    from bench import Vocabulary

    # Invented words picked at random from ten million (the copies' vocabulary draws the first few thousand), so
    # that two of these articles share almost no word either and are no near-duplicates of each other.
    speller, rng = Vocabulary(), random.Random(seed)
    words = [speller._spell(rng.randrange(10**7), rng.randint(4, 9)) for _ in range(300)]
    sentences = [" ".join(rng.choice(words) for _ in range(rng.randint(12, 20))).capitalize() + "." for _ in range(60)]
    return ('---\ntitle: "Benchmark fixture, a new article"\noutlet: Fixture Wire\npublished: 2025-12-30\n---\n'
            + " ".join(sentences) + "\n")


def server_figures(code: Path, work: Path, seed: Path, passages: int) -> dict:
    """The query-side figures against a `chroma run` server on loopback, prefixed `server_`: the index built through
    the server, a bot replica with a data directory of its own. `server_first_start_s` is a replica's first start
    (its lexical copy built from the server); `server_start_s` a restart."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    chroma = Path(sys.executable).parent / "chroma"
    server = subprocess.Popen([str(chroma), "run", "--path", str(work / "server"), "--host", "127.0.0.1", "--port",
                               str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env={**os.environ, "ANONYMIZED_TELEMETRY": "False"})
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("chroma run did not start") from None
                time.sleep(0.1)
        url = f"http://127.0.0.1:{port}"
        _run(code, [str(ROOT / "bench" / "scale.py"), "build", str(work), str(seed), str(passages)],
             {"DEALBOT_CHROMA_URL": url, "DEALBOT_DATA_DIR": str(work / "builder")})
        corpus = work / "corpus"
        env = {"DEALBOT_CHROMA_URL": url, "DEALBOT_DATA_DIR": str(work / "replica"),
               "DEALBOT_SOURCES": ",".join(str(p.resolve()) for p in sorted(corpus.iterdir()))}
        code_ = "import time; t = time.perf_counter(); from bot.pipeline import Pipeline; from ingest.settings import " \
                "load_settings; Pipeline(load_settings()); print(time.perf_counter() - t)"
        done, _ = _run(code, ["-c", code_], env)
        figures = {"first_start_s": float(done.stdout.split()[-1]), **query_figures(code, work, env, passages)}
        return {f"server_{k}": v for k, v in figures.items() if k != "questions"}
    finally:
        server.terminate()
        server.wait(timeout=30)


def query_figures(code: Path, work: Path, env: dict, passages: int) -> dict:
    """The query-side figures for one size, measured in a fresh process with the code in `code`: start_s (a cold
    `Pipeline()`, model load included), rss_mb after the warm-up, ask p50/p99 over the eval questions asked twice
    (the second round counted), filtered_p50_ms / outlet_p50_ms over the same questions with a date filter and an
    outlet filter, export_s (the question encoder's one-time ONNX export in a new data directory, before start_s
    is measured), slowest_ms (the slowest eval question, warm), stall_ms (the most any question asked while an
    article is added and taken in waited over its own warm time), refresh_s (`Pipeline.refresh()` after an
    ingest added one article)."""
    # The question encoder is exported to ONNX once per data directory (seconds, with torch loaded): done first, so
    # that start_s is a bot process's start as it is every time after the first (export_s is that first time).
    export = ("import time; from ingest.settings import load_settings; from ingest.store import open_embedder; "
              "t = time.perf_counter(); open_embedder(load_settings(), questions=True).encode_query('x'); "
              "print(time.perf_counter() - t)")
    done, _ = _run(code, ["-c", export], env)
    export_s = float(done.stdout.split()[-1])
    done, _ = _run(code, [str(ROOT / "bench" / "scale.py"), "query", str(work)], env)
    return {"export_s": export_s, **json.loads(done.stdout.splitlines()[-1])}


QUESTIONS = ROOT / "tests" / "eval"


def query(work: Path) -> None:
    """The child of query_figures: prints its figures as one JSON line."""
    import threading

    import numpy as np

    from bot.pipeline import Pipeline
    from bot.retrieve import Filters
    from ingest.settings import load_settings
    from ingest.sync import run_ingest

    questions = [json.loads(line)["question"] for f in sorted(QUESTIONS.glob("*.jsonl"))
                 for line in f.read_text(encoding="utf-8").splitlines() if line.strip()]
    settings = load_settings()
    start = time.perf_counter()
    pipeline = Pipeline(settings)
    start_s = time.perf_counter() - start

    def timed(filters=None) -> list[float]:
        out = []
        for q in questions:
            t = time.perf_counter()
            pipeline.ask(q, filters=filters)
            out.append((time.perf_counter() - t) * 1000)
        return out

    timed()  # warm-up
    plain = timed()
    dated, outlet = Filters(since="2025-07-01"), Filters(sources=(OUTLETS[7],))
    timed(dated)
    filtered = timed(dated)
    timed(outlet)
    by_outlet = timed(outlet)
    rss = int(re.search(r"VmRSS:\s+(\d+)", Path("/proc/self/status").read_text())[1]) / 1024
    own = dict(zip(questions, plain))
    small = work / "corpus" / "small"

    run = time.time_ns()  # the query side may be measured again over a kept index: new articles each time

    def add_article(name: str, day: str, seed: int) -> str:
        """One new article in the small folder, added by an ingest: in this process (embedded, as `serve` runs
        its schedule), or by a `dealbot ingest` process of its own (server mode, as another host would). Returns
        its first sentence."""
        text = _new_article(seed + run % 1000).replace("a new article", f"an article {name}")
        (small / f"{name}-{run}.md").write_text(text.replace("published: 2025-12-30", f"published: {day}"), encoding="utf-8")
        if settings.server_mode:
            env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
            subprocess.run([sys.executable, "-c", "from bot.cli import main; main()", "ingest", "--source", str(small)],
                           env=env, check=True, capture_output=True, timeout=600)
        else:
            report = run_ingest(settings, [str(small)], embedder=pipeline.embedder)
            assert report.added == 1, report.to_dict()
        return text.split("---\n", 2)[2].split(".")[0]

    # stall: questions asked one after another while an article is added and the bot takes it in; each one's time
    # over its own warm time (the most any question waited). Embedded, the ingest runs in this process as `serve`
    # runs its schedule, with the passage model loaded as it is after the first scheduled run (the import of
    # torch and sentence-transformers happens once in a process's life, not at each run).
    if not settings.server_mode:
        pipeline.embedder.model  # noqa: B018
    done, waits = threading.Event(), []

    def writer() -> None:
        try:
            add_article("zz-stall-article", "2025-12-29", 101)
            if not settings.server_mode:
                pipeline.refresh()  # what `serve` does after each scheduled run
            else:
                pipeline.retriever.caught_up(120)  # the background refresh
        finally:
            done.set()

    thread = threading.Thread(target=writer)
    thread.start()
    i = 0
    while not done.is_set() or i < 10:
        q = questions[i % len(questions)]
        i += 1
        t = time.perf_counter()
        pipeline.ask(q)
        waits.append((time.perf_counter() - t) * 1000 - own[q])
    thread.join()
    # refresh_s: `Pipeline.refresh()` alone, after another article was added.
    sentence = add_article("zz-refresh-article", "2025-12-31", 102)
    start = time.perf_counter()
    pipeline.refresh()
    refresh_s = time.perf_counter() - start
    seen = pipeline.retrieve(sentence)[2]  # the new article's own first sentence as the question
    print(json.dumps({"start_s": start_s, "refresh_s": refresh_s, "rss_mb": rss,
                      "ask_p50_ms": float(np.percentile(plain, 50)), "ask_p95_ms": float(np.percentile(plain, 95)),
                      "ask_p99_ms": float(np.percentile(plain, 99)),
                      "filtered_p50_ms": float(np.percentile(filtered, 50)),
                      "filtered_p99_ms": float(np.percentile(filtered, 99)),
                      "outlet_p50_ms": float(np.percentile(by_outlet, 50)),
                      "outlet_p99_ms": float(np.percentile(by_outlet, 99)),
                      "stall_ms": max(waits), "stall_questions": len(waits), "slowest_ms": max(plain),
                      "new_article_found": any(f"zz-refresh-article-{run}" in h.source for h in seen),
                      "questions": len(questions)}))


# ------------------------------------------------------------------------------------------------------- report

def _fmt(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "nan"
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "build":
        return build(Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4]))
    if len(sys.argv) > 1 and sys.argv[1] == "query":
        return query(Path(sys.argv[2]))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("passages", nargs="*", type=int, default=[10000, 30000, 100000])
    parser.add_argument("--compare", type=Path, help="also measure the code in this directory (another checkout)")
    parser.add_argument("--no-server", dest="server", action="store_false",
                        help="skip the run against a `chroma run` server")
    parser.add_argument("--keep", type=Path, help="build under this directory and keep it (default: a temp dir)")
    args = parser.parse_args()
    trees = [("this", ROOT)] + ([("compare", args.compare.resolve())] if args.compare else [])
    tmp = Path(tempfile.mkdtemp(prefix="dealbot-scale-", dir=args.keep))
    results: dict[tuple[str, int], dict] = {}
    try:
        seed = tmp / "seed.pkl"
        prepare_seed(seed)
        for n in args.passages:
            for label, code in trees:
                work = tmp / f"{label}-{n}"
                figures = store_figures(code, work, seed, n)
                figures.update(query_figures(code, work, figures.pop("env"), n))
                print(f"{label:>8} {n:>7} passages: " + " ".join(f"{k}={_fmt(v)}" for k, v in figures.items()), flush=True)
                if args.server:
                    shutil.rmtree(work / "corpus", ignore_errors=True)
                    shutil.rmtree(work / "data", ignore_errors=True)
                    server = server_figures(code, work, seed, n)
                    print(f"{label:>8} {n:>7} passages, server: " + " ".join(f"{k}={_fmt(v)}" for k, v in server.items()),
                          flush=True)
                    figures.update(server)
                results[(label, n)] = figures
                if args.keep is None:
                    shutil.rmtree(work, ignore_errors=True)
    finally:
        if args.keep is None:
            shutil.rmtree(tmp, ignore_errors=True)
    _table(results, trees, args.passages)
    last = results[("this", args.passages[-1])]
    values = {"scale_passages": args.passages[-1], **last}
    print(" ".join(f"{k}={_fmt(values.get(k, float('nan')))}" for k in LAST_LINE))


def _table(results: dict, trees: list, sizes: list[int]) -> None:
    keys = [k for k in STORE_FIGURES] + sorted({k for r in results.values() for k in r} - set(STORE_FIGURES)
                                                - {"passages", "documents", "vocabulary"})
    print("\n| figure | " + " | ".join(f"{label} {n}" for n in sizes for label, _ in trees) + " |")
    print("| --- |" + " --- |" * (len(sizes) * len(trees)))
    for k in ["documents", "vocabulary", *keys]:
        print(f"| {k} | " + " | ".join(_fmt(results[(label, n)].get(k)) for n in sizes for label, _ in trees) + " |")
    print()


if __name__ == "__main__":
    main()
