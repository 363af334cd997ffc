from conftest import ROOT, SAMPLE
from ingest.chunking import chunk, split_sentences
from ingest.sources import parse, read_raw


def article():
    path = SAMPLE / "the-hill-2025-06-27.md"
    return parse(read_raw(str(SAMPLE), path, path.name))


def test_sentences_are_exact_slices_of_the_text():
    a = article()
    spans = split_sentences(a.text)
    assert len(spans) >= 15
    assert a.text[spans[0][0] : spans[0][1]].startswith("The Trump administration")
    for s, e in spans:
        piece = a.text[s:e]
        assert piece == piece.strip() and piece
    assert all(e1 <= s2 for (_, e1), (s2, _) in zip(spans, spans[1:]))


def test_passages_fit_the_model_and_overlap_by_one_sentence(embedder):
    a = article()
    for max_tokens in (60, 120, 200):
        passages = chunk(a, embedder.count_tokens, max_tokens, overlap_sentences=1)
        assert len(passages) > 1
        for p in passages:
            assert p.total == len(passages)
            assert p.text == a.text[p.start : p.end]
            assert embedder.count_tokens([p.embed_text])[0] <= max_tokens + 1  # over-long sentences are cut too
        for prev, nxt in zip(passages, passages[1:]):
            assert nxt.sentences[0] == prev.sentences[-1] or len(prev.sentences) == 1
        covered = sorted({s for p in passages for s in p.sentences})
        squeeze = lambda spans: "".join(a.text[s:e] for s, e in spans).replace(" ", "").replace("\n", "")  # noqa: E731
        assert squeeze(covered) == squeeze(split_sentences(a.text)), "every word is in some passage, once per piece"


def test_smaller_budget_means_more_passages(embedder):
    a = article()
    assert len(chunk(a, embedder.count_tokens, 80)) > len(chunk(a, embedder.count_tokens, 250))


def test_fast_paths_compute_what_sentence_transformers_computes(embedder):
    """encode_query and encode_passages skip sentence-transformers' wrapper; their vectors must not change."""
    import numpy as np

    texts = ["When was the deal signed?", "Rare earth magnets are flowing again. Officials said so on Friday."]
    reference = embedder.model.encode(texts, normalize_embeddings=True)
    assert embedder._query_session is not None, "questions should go through the exported ONNX encoder"
    for text, expected in zip(texts, reference):
        assert np.allclose(embedder.encode_query(text), expected, atol=1e-5)
    passages, sentences = embedder.encode_passages(texts, [[(0, 25)], [(0, 37), (38, 66)]])
    assert np.allclose(passages, reference, atol=1e-5)
    assert [s.shape for s in sentences] == [(1, 384), (2, 384)]
    assert np.allclose(np.linalg.norm(sentences[1], axis=1), 1.0, atol=1e-5)
    # In-context sentence vectors differ from each other and lean towards their own words.
    own = embedder.model.encode(["Rare earth magnets are flowing again."], normalize_embeddings=True)[0]
    assert sentences[1][0] @ own > sentences[1][1] @ own


def test_questions_are_tokenised_as_sentence_transformers_tokenises_them(embedder):
    import numpy as np

    long = "Rare earth magnets, gallium and germanium: " + "export licences again and again " * 80
    for text in ("When was the deal signed?", long, "Qu'a dit Pékin — 稀土 — about the truce?", ""):
        ours = embedder._tokenizer_for_queries(text)
        theirs = embedder.model[0].tokenizer([text], truncation=True, max_length=embedder.model.max_seq_length,
                                             return_tensors="np")
        for key in ours:
            assert np.array_equal(ours[key], theirs[key]), (key, text[:30])
    assert ours["input_ids"].shape[1] <= embedder.model.max_seq_length


def test_a_process_answering_questions_never_imports_torch_once_the_encoder_is_exported(embedder):
    import json
    import subprocess
    import sys

    code = ("import json, sys; from pathlib import Path; from ingest.embed import Embedder; "
            f"v = Embedder(cache_dir=Path({str(embedder.cache_dir)!r})).encode_query('When was the deal signed?'); "
            "print(json.dumps([len(v), sorted(m for m in ('torch', 'sentence_transformers') if m in sys.modules)]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.splitlines()[-1]) == [384, []]
