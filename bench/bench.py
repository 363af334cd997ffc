"""Benchmark: ingest throughput against the model's raw encode speed, re-ingest speed-up, and warm ask latency.

Everything is measured in one run on one machine, side by side, so the ratios hold even when the machine is noisy:

- raw encode: the model alone encoding the corpus's passages (passages/s);
- ingest: the same corpus through `run_ingest`, the function `dealbot ingest` calls, model already loaded
  (passages/s); R = ingest / raw encode, measured in alternating rounds (see below);
- `dealbot ingest` as a whole process on a fresh index, then again with nothing changed; S = first / second;
- warm `ask` latency over 200 distinct questions in one process (p50, p95).

The last line is machine-readable: ingest_vs_encode=R reingest_speedup=S ask_p50_ms=X ask_p95_ms=Y
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.append(str(ROOT))  # after any code tree put first (bench/scale.py builds with another checkout)

from bot.dates import MONTHS  # noqa: E402
from bot.pipeline import Pipeline  # noqa: E402
from ingest.chunking import chunk  # noqa: E402
from ingest.settings import load_settings  # noqa: E402
from ingest.sources import list_files, parse, read_raw  # noqa: E402
from ingest.store import open_embedder  # noqa: E402
from ingest.sync import run_ingest  # noqa: E402

SUBJECTS = "exporters regulators officials buyers smelters analysts negotiators shippers ministries refiners".split()
VERBS = "approved delayed reviewed expanded restricted licensed shipped audited priced rerouted".split()
OBJECTS = (
    "magnet cargoes|gallium permits|germanium licences|refinery output|tariff schedules|port inspections|"
    "battery contracts|mining quotas|customs filings|export applications"
).split("|")
PLACES = "Shanghai Rotterdam Baotou Houston Geneva London Busan Antwerp Ganzhou Oakland".split()


class Vocabulary:
    """Invented words drawn so that the vocabulary grows like a real news corpus's: sub-linearly (Heaps' law).

    A Pitman-Yor draw: the n-th word is a new one with probability (theta + d * V) / (theta + n) (V words so far),
    otherwise a repeat of an earlier occurrence (so frequent words get more frequent: a Zipf-like tail). The
    vocabulary then grows about as n^d. Words are pronounceable and of a chosen length (`word(length)`), each
    length with its own draw, so a word can stand in for another of the same length without moving any offset.
    """

    CONSONANTS = "bdfgklmnprstvz"
    VOWELS = "aeiou"

    def __init__(self, seed: int = 5, discount: float = 0.5, theta: float = 20.0):
        self.rng = random.Random(seed)
        self.discount, self.theta = discount, theta
        self._history: dict[int, list[int]] = {}
        self._sizes: dict[int, int] = {}

    def word(self, length: int) -> str:
        history = self._history.setdefault(length, [])
        size = self._sizes.get(length, 0)
        if self.rng.random() < (self.theta + self.discount * size) / (self.theta + len(history)):
            ident = size
            self._sizes[length] = size + 1
        else:
            ident = self.rng.choice(history)
        history.append(ident)
        return self._spell(ident, length)

    def size(self) -> int:
        return sum(self._sizes.values())

    def _spell(self, ident: int, length: int) -> str:
        letters, n = [], ident + 1
        for i in range(length):
            alphabet = self.CONSONANTS if i % 2 == 0 else self.VOWELS
            n, r = divmod(n, len(alphabet))
            letters.append(alphabet[r])
        return "".join(letters).capitalize() if ident % 7 == 0 else "".join(letters)  # some read as names


def synthetic_corpus(folder: Path, documents: int, seed: int = 7) -> None:
    """Plain-text fixture articles of invented trade news, each with a front-matter header. Every sentence names
    a shipper from a vocabulary that grows sub-linearly, as names do in real news (see Vocabulary)."""
    rng = random.Random(seed)
    vocabulary = Vocabulary(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for d in range(documents):
        sentences = []
        for s in range(48):
            sentences.append(
                f"In {rng.choice(MONTHS)} {rng.randint(2019, 2026)}, {rng.choice(SUBJECTS)} in {rng.choice(PLACES)} "
                f"{rng.choice(VERBS)} {rng.randint(2, 990)} {rng.choice(OBJECTS)} after {rng.choice(SUBJECTS)} "
                f"{rng.choice(VERBS)} {rng.choice(OBJECTS)} for {vocabulary.word(rng.randint(5, 9)).capitalize()} "
                f"(benchmark fixture)."
            )
        body = " ".join(sentences)
        (folder / f"fixture-{d:04d}.md").write_text(
            f"---\ntitle: Benchmark fixture {d}\noutlet: Fixture Wire\npublished: 2025-07-{1 + d % 28:02d}\n---\n{body}\n",
            encoding="utf-8",
        )


def questions(n: int, seed: int = 11) -> list[str]:
    rng = random.Random(seed)
    out: set[str] = set()
    while len(out) < n:
        out.add(
            f"How many {rng.choice(OBJECTS)} did {rng.choice(SUBJECTS)} in {rng.choice(PLACES)} "
            f"{rng.choice(VERBS)} in {rng.choice(MONTHS)}?"
        )
    return sorted(out)


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--documents", type=int, default=210, help="synthetic articles to generate (default 210)")
    parser.add_argument("--questions", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3, help="alternations of raw encode and ingest (default 3)")
    parser.add_argument("--ask-only", action="store_true", help="ingest the corpus once and measure warm ask only")
    args = parser.parse_args()
    if args.ask_only:
        return ask_only(args)

    with tempfile.TemporaryDirectory(prefix="dealbot-bench-") as tmp:
        tmp = Path(tmp)
        corpus = tmp / "corpus"
        synthetic_corpus(corpus, args.documents)
        settings = load_settings(env={"DEALBOT_DATA_DIR": str(tmp / "in-process")})

        embedder = open_embedder(settings, questions=True)
        _, load_s = timed(lambda: embedder.encode_query("warm up"))
        articles = [parse(read_raw(str(corpus), p, rel)) for p, rel in list_files(str(corpus))]
        passages = [
            p
            for a in articles
            for p in chunk(a, embedder.count_tokens, settings.chunking.max_tokens, settings.chunking.overlap_sentences)
        ]
        texts = [p.embed_text for p in passages]
        print(f"corpus: {len(articles)} articles, {len(passages)} passages; model loaded in {load_s:.1f}s")
        embedder.model.encode(texts[:128], batch_size=settings.embedding.batch_size)  # warm both paths alike

        def raw_encode() -> float:
            _, seconds = timed(
                lambda: embedder.model.encode(texts, batch_size=settings.embedding.batch_size, normalize_embeddings=True)
            )
            return len(texts) / seconds

        # This machine's speed drifts by several percent from minute to minute, so raw encodes and ingests
        # alternate (raw, ingest, raw, ingest, ..., raw); each ingest, into a fresh index, is compared with the mean
        # of the raw encodes on either side of it, and R is the median of those ratios.
        raws = [raw_encode()]
        ratios = []
        for round_ in range(args.rounds):
            fresh = load_settings(env={"DEALBOT_DATA_DIR": str(tmp / f"in-process-{round_}")})
            report, ingest_s = timed(lambda: run_ingest(fresh, [str(corpus)], embedder=embedder))
            raws.append(raw_encode())
            ingest_pps = report.passages_embedded / ingest_s
            ratios.append(ingest_pps / ((raws[-2] + raws[-1]) / 2))
            print(
                f"round {round_ + 1}: raw encode {raws[-2]:.1f} -> {raws[-1]:.1f} passages/s, "
                f"ingest {ingest_pps:.1f} passages/s ({report.passages_embedded} passages), ratio {ratios[-1]:.3f}"
            )
        r = statistics.median(ratios)
        settings = fresh

        env = {**os.environ, "DEALBOT_DATA_DIR": str(tmp / "cli")}
        cli = [str(Path(sys.executable).parent / "dealbot"), "ingest", "--json", "--source", str(corpus)]
        _, first_s = timed(lambda: subprocess.run(cli, env=env, check=True, capture_output=True))
        _, second_s = timed(lambda: subprocess.run(cli, env=env, check=True, capture_output=True))
        s = first_s / second_s
        print(f"dealbot ingest:    first {first_s:.1f}s, unchanged re-run {second_s:.2f}s")

        p50, p95 = warm_ask(Pipeline(settings, embedder=embedder), args.questions)
        print(f"ingest_vs_encode={r:.2f} reingest_speedup={s:.1f} ask_p50_ms={p50:.1f} ask_p95_ms={p95:.1f}")


def warm_ask(pipeline: Pipeline, n: int) -> tuple[float, float]:
    latencies = []
    for q in questions(n):
        _, seconds = timed(lambda: pipeline.ask(q))
        latencies.append(seconds * 1000)
    latencies.sort()
    p50 = statistics.median(latencies)
    p95 = latencies[int(0.95 * (len(latencies) - 1))]
    passages = len(pipeline.retriever.passages)
    print(f"warm ask:          p50 {p50:.1f} ms, p95 {p95:.1f} ms over {len(latencies)} questions, {passages} passages")
    return p50, p95


def ask_only(args) -> None:
    """The corpus ingested once, then warm ask latency alone (a few minutes instead of the whole benchmark)."""
    with tempfile.TemporaryDirectory(prefix="dealbot-bench-") as tmp:
        tmp = Path(tmp)
        synthetic_corpus(tmp / "corpus", args.documents)
        settings = load_settings(env={"DEALBOT_DATA_DIR": str(tmp / "data")})
        embedder = open_embedder(settings, questions=True)
        _, ingest_s = timed(lambda: run_ingest(settings, [str(tmp / "corpus")], embedder=embedder))
        print(f"ingest:            {ingest_s:.1f}s")
        p50, p95 = warm_ask(Pipeline(settings, embedder=embedder), args.questions)
        print(f"ask_p50_ms={p50:.1f} ask_p95_ms={p95:.1f}")


if __name__ == "__main__":
    main()
