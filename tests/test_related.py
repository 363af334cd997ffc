"""Related passages beneath every answer: chosen from the real retrieval over the eval corpus (real model, real
Chroma), rendered for the terminal, JSON and Slack (a fake Slack Web API on 127.0.0.1, signed requests over HTTP).

The questions asked here are dev questions of tests/eval or written for these tests; no held-out question."""

from __future__ import annotations

import dataclasses
import json
import re
import threading

import pytest

import bot.related as related_module
from bot.related import FAR_BELOW, OFF_TOPIC_MATCH, RELATED_MAX, choose
from bot.render import answer_dict, answer_text, explain_text
from bot.serialise import answer_from_record, answer_record
from bot.slack.app import SlackSecrets, create_app
from bot.slack.blocks import SECTION_LIMIT, answer_message
from bot.slack.server import make_http_server
from bot.types import NOT_FOUND, QUOTE_CHARS, Answer, Citation, Hit, Related, Sentence, shorten
from conftest import EVAL_ARTICLES, SAMPLE, llm_pipeline, make_settings
from slack_fakes import FakeSlackAPI, app_mention, event_callback, post_event

CITATION_KEYS = {"n", "doc_id", "title", "outlet", "source", "url", "published", "quote", "quotes", "alternates"}


@pytest.fixture(scope="module")
def pipeline(eval_pipeline):
    return eval_pipeline


def article_text(doc_id: str) -> str:
    for folder in (SAMPLE, EVAL_ARTICLES):
        if (folder / doc_id).exists():
            return (folder / doc_id).read_text(encoding="utf-8")
    raise AssertionError(doc_id)


# Choosing


def test_related_passages_are_ranked_quoted_exactly_and_never_from_a_cited_article(pipeline):
    a = pipeline.ask("What did the London meeting produce?")
    assert a.answered and a.related
    assert len(a.related) <= RELATED_MAX
    cited = {c.doc_id for c in a.citations}
    docs = [r.doc_id for r in a.related]
    assert not cited & set(docs) and len(set(docs)) == len(docs)  # one per article, none cited
    assert [r.score for r in a.related] == sorted((r.score for r in a.related), reverse=True)
    hits = {h.id: h for h in a.hits}
    for r in a.related:
        hit = hits[r.passage_id]
        assert r.score == hit.fused and r.doc_id == hit.doc_id
        assert r.quote in [hit.text[s:e] for s, e in hit.sentences]  # a whole sentence of that passage
        assert r.quote in article_text(r.doc_id)  # exactly as in the article
        assert (r.title, r.outlet, r.published) == (hit.title, hit.outlet, hit.published)


def test_a_wrong_or_missing_answer_still_points_to_the_passage_that_holds_it(pipeline):
    # Dev questions whose accepted answer the composer does not give, but a related passage shows.
    a = pipeline.ask("the chip software curbs china complained about in london - did those ever get lifted?")
    assert not a.answered and a.text == NOT_FOUND
    assert any("could sell to Chinese customers again" in r.shown or "electronic design automation" in r.shown
               for r in a.related)
    b = pipeline.ask("did the soybean farmers end up getting what they asked for?")
    assert any("resume purchases of American soybeans" in r.shown for r in b.related)


def test_a_passage_far_below_the_answers_evidence_is_dropped_and_explain_says_why(pipeline):
    reasons = []
    for q in ("What is the price of dysprosium?", "Which US officials took part in the London talks?",
              "How have the two sides stayed in touch since the London meeting?"):
        a = pipeline.ask(q, explain=True)
        shown = {r.passage_id for r in a.related}
        assert {c.passage_id for c in a.related_choices if c.shown} == shown
        reference = a.evidence if a.answered else max(c.match for c in a.related_choices)
        for c in a.related_choices:
            reasons.append(c.why)
            if c.shown:
                assert c.match >= FAR_BELOW * reference and c.why.startswith("shown")
            elif c.doc_id in {x.doc_id for x in a.citations}:
                assert c.why == "not shown: the answer cites its article"
            elif c.match < FAR_BELOW * reference:
                assert "far below the answer's evidence" in c.why
        text = explain_text(a)
        assert "related passages" in text and all(c.why in text for c in a.related_choices)
        as_json = answer_dict(a, explain=True)["related_passages"]
        assert [x["why"] for x in as_json] == [c.why for c in a.related_choices]
        assert set(as_json[0]) == {"passage_id", "doc_id", "title", "fused", "match", "shown", "why"}
    assert any("far below" in w for w in reasons) and any("cites its article" in w for w in reasons)


def test_without_explain_no_choices_are_kept(pipeline):
    a = pipeline.ask("What did the London meeting produce?")
    assert a.related and a.related_choices == ()


def _hit(pid: str, doc_id: str, text: str, fused: float, url: str | None = None, alternates=()) -> Hit:
    spans, start = [], 0
    for sentence in re.findall(r"[^.]+\.", text):
        begin = text.index(sentence.strip(), start)
        spans.append((begin, begin + len(sentence.strip())))
        start = spans[-1][1]
    return Hit(pid, doc_id, f"Title of {doc_id}", f"/corpus/{doc_id}.md", text, 0, tuple(spans), 0.8,
               tuple(0.8 for _ in spans), url=url, outlet="Fixture Wire", published="2025-06-27", fused=fused,
               alternates=tuple(alternates))


def test_syndicated_copies_of_a_cited_article_and_repeated_text_are_not_shown_again(pipeline):
    quote = "The deal on rare earth exports was signed in London this week."
    cited_hit = _hit("a1", "story-a", quote, 0.033, url="https://a.example/story", alternates=["https://b.example/copy"])
    copy_by_url = _hit("b1", "https://b.example/copy", "The rare earth deal was signed in London on Tuesday.", 0.032,
                       url="https://b.example/copy")
    copy_naming_it = _hit("c1", "story-c", "Officials signed the rare earth deal in London.", 0.031,
                          url="https://c.example/c", alternates=["https://a.example/story"])
    repeat = _hit("d1", "story-d", quote, 0.030, url="https://d.example/d")
    other = _hit("e1", "story-e", "Rare earth magnets began to flow after the deal was signed.", 0.029)
    second_of_other = _hit("e2", "story-e", "The rare earth deal signed in London covers magnets.", 0.028)
    hits = [cited_hit, copy_by_url, copy_naming_it, repeat, other, second_of_other]
    answer = Answer("When was the rare earth deal signed?", True, (Sentence(quote, 1),),
                    (Citation.of(1, cited_hit, (quote,)),), tuple(hits), evidence=0.3)
    shown, choices = choose(pipeline.read(answer.question), answer, hits, pipeline.retriever.stats)
    assert [r.doc_id for r in shown] == ["story-e"]
    why = {c.doc_id: c.why for c in choices}
    assert why["story-a"] == "not shown: the answer cites its article"
    assert why["https://b.example/copy"] == why["story-c"] == "not shown: a syndicated copy of a cited article"
    assert why["story-d"] == "not shown: its sentence is already on screen"
    assert len(choices) == 5  # one choice per article: story-e's better passage stands for both of its passages


def test_at_most_three_are_shown_best_fused_first(pipeline):
    hits = [_hit(f"p{i}", f"story-{i}", "The rare earth deal was signed in London this week.", 0.03 - i / 1000,
                 url=f"https://x.example/{i}") for i in range(6)]
    # distinct sentences, so that none repeats another on screen
    hits = [dataclasses.replace(h, text=h.text.replace("this week", f"on day {i}")) for i, h in enumerate(hits)]
    hits = [_hit(h.id, h.doc_id, h.text, h.fused, h.url) for h in hits]
    answer = Answer("When was the rare earth deal signed?", False, hits=tuple(hits), evidence=0.1)
    shown, choices = choose(pipeline.read(answer.question), answer, hits, pipeline.retriever.stats)
    assert [r.doc_id for r in shown] == ["story-0", "story-1", "story-2"]
    assert all(c.why == "not shown: 3 related passages already shown" for c in choices[3:])


def test_an_off_topic_question_gets_the_plain_reply_and_no_passages(pipeline):
    for q in ("who painted the mona lisa", "what's a good topping for pizza?"):
        a = pipeline.ask(q, explain=True)
        assert not a.answered and a.text == NOT_FOUND and a.related == ()
        assert all("off-topic" in c.why for c in a.related_choices)
        assert answer_text(a) == NOT_FOUND
    # A question near the topic that no article answers still points to the closest passages.
    near = pipeline.ask("What did Greer say about the Busan meeting?")
    assert not near.answered and near.related
    assert answer_text(near).startswith(NOT_FOUND + "\n\nClosest passages:\n- ")


def test_the_off_topic_cut_is_applied_to_the_best_match(pipeline, monkeypatch):
    a = pipeline.ask("What did Greer say about the Busan meeting?")
    best = related_module.question_topicality(a.reading, a.hits, pipeline.retriever.stats)
    assert best >= OFF_TOPIC_MATCH and best >= max(c.match for c in choose(a.reading, a, a.hits, pipeline.retriever.stats)[1])
    monkeypatch.setattr(related_module, "OFF_TOPIC_MATCH", best + 0.001)
    assert choose(a.reading, a, a.hits, pipeline.retriever.stats)[0] == ()


def test_a_long_sentence_is_cut_at_a_word_boundary_past_220_characters(pipeline):
    a = pipeline.ask("What are rare earths used for?")
    long = [r for r in a.related if len(r.quote) > QUOTE_CHARS]
    assert long, [r.quote for r in a.related]
    for r in long:
        assert len(r.shown) <= QUOTE_CHARS and r.shown.endswith("…")
        head = r.shown[:-1]
        assert r.quote.startswith(head) and not r.quote[len(head)].isalnum()  # a whole word ends there
    short = [r for r in a.related if len(r.quote) <= QUOTE_CHARS]
    assert all(r.shown == r.quote for r in short)


def test_shorten():
    text = "Rare earth magnets " * 20  # 380 characters
    cut = shorten(text)
    assert len(cut) <= 220 and cut.endswith("…") and text.startswith(cut[:-1]) and text[len(cut) - 1] == " "
    assert shorten("Short sentence.") == "Short sentence."
    exactly = "x" * 215 + " done"
    assert shorten(exactly) == exactly  # 220 characters: shown whole
    assert shorten("y" * 300) == "y" * 219 + "…"  # one long word: cut inside it, no boundary to cut at
    assert shorten("Tariffs, " + "z" * 300) == "Tariffs…"  # no dangling comma before the ellipsis


# The surfaces


def test_json_related_has_the_citation_keys_and_n_is_null(pipeline):
    a = pipeline.ask("What did the London meeting produce?")
    out = json.loads(json.dumps(answer_dict(a)))
    assert out["related"] and out["citations"]
    for r, rel in zip(out["related"], a.related):
        assert set(r) == set(out["citations"][0]) == CITATION_KEYS
        assert r["n"] is None and r["quote"] == rel.quote and r["quotes"] == [rel.quote]
    assert out["answer"] == a.text  # the answer itself, without the related passages
    assert answer_dict(pipeline.ask("who painted the mona lisa"))["related"] == []


def test_terminal_shows_related_apart_under_the_sources(pipeline):
    a = pipeline.ask("What did the London meeting produce?")
    text = answer_text(a, width=100)
    body, sources, related = text.split("\n\n")
    assert body.replace("\n", " ") == a.text
    assert sources.startswith("[1] ")
    lines = related.split("\n")
    assert lines[0] == "Related, in other articles:"
    flat = " ".join(line[2:] for line in lines[1:])
    for r in a.related:
        assert f"  {r.title} — {r.outlet}, {r.published}" in lines
        assert r.shown in flat  # the sentence as shown, wrapped


def test_the_llm_answer_gets_related_passages_too(pipeline, fake_llm):
    llm = llm_pipeline(pipeline, fake_llm, "cooperative")
    a = llm.ask("What did the London meeting produce?")
    assert a.composer == "llm" and a.answered and a.related
    assert not {c.doc_id for c in a.citations} & {r.doc_id for r in a.related}


def _hostile_answer() -> Answer:
    evil = "<!channel> <!here> <@U123> <#C42> & <https://evil.example|click> " * 40
    related = tuple(
        Related(f"doc-{i}", evil + "title", f"/x/{i}.md", evil, url=url, outlet=evil, published="2025-06-27")
        for i, url in enumerate(("!channel", "https://ok.example/a?x=1&y=<2>", "https://e.example/" + "a" * 5000,
                                 "javascript:alert(1)"))
    )
    citation = Citation(1, "doc-c", evil, "/x/c.md", (evil,), url="@U999", outlet=evil, published="2025-06-27")
    return Answer("q <!everyone>", True, (Sentence(evil[:500], 1),), (citation,), related=related)


def test_slack_related_block_is_escaped_compact_and_within_block_kit_limits():
    message = answer_message(_hostile_answer(), answer_id=7)
    blocks = message["blocks"]
    assert len(blocks) <= 50
    context = [b for b in blocks if b["type"] == "context" and "Related" in b["elements"][0]["text"]]
    assert len(context) == 1 and len(context[0]["elements"]) == 1 + 4 <= 10
    for b in blocks:
        elements = b.get("elements", [])
        texts = [b["text"]["text"]] if b["type"] == "section" else [e["text"] for e in elements if isinstance(e.get("text"), str)]
        for t in texts:
            assert len(t) <= SECTION_LIMIT
            # The only Slack markup is a link to an http(s) URL: never a mention, a channel or a special mention.
            assert all(m.startswith(("http://", "https://")) for m in re.findall(r"<([^>]*)>", t)), t
    elements = [e["text"] for e in context[0]["elements"][1:]]
    assert "<https://ok.example/a?x=1&amp;y=%3C2%3E|" in elements[1]
    assert "<" not in elements[0] and "<" not in elements[2] and "<" not in elements[3]  # not linked
    assert blocks.index(context[0]) > [b["type"] for b in blocks].index("section")  # under the answer and sources


def test_a_shared_answer_keeps_its_related_passages(pipeline):
    a = pipeline.ask("What did the London meeting produce?")
    restored = answer_from_record(json.loads(json.dumps(answer_record(a))))
    assert [(r.doc_id, r.quote, r.title, r.url, r.outlet, r.published) for r in restored.related] == [
        (r.doc_id, r.quote, r.title, r.url, r.outlet, r.published) for r in a.related
    ]
    assert answer_message(restored)["blocks"] == answer_message(a)["blocks"]
    old = answer_record(a)
    del old["related"]  # an answer kept before related passages existed
    assert answer_from_record(old).related == ()


@pytest.fixture(scope="module")
def slack_bot(pipeline, tmp_path_factory):
    with FakeSlackAPI() as fake:
        slack = make_settings(tmp_path_factory.mktemp("related-slack"), slack_api_url=fake.base_url)
        settings = dataclasses.replace(pipeline.settings, data_dir=slack.data_dir, slack=slack.slack)
        secrets = SlackSecrets(bot_token="xoxb-test-token", signing_secret="related-secret-0123456789abcdef")
        server = make_http_server(create_app(settings, pipeline, secrets), "127.0.0.1", 0)
        threading.Thread(target=server.run, daemon=True).start()
        yield f"http://127.0.0.1:{server.effective_port}/slack/events", secrets.signing_secret, fake
        server.close()


def test_slack_answers_show_the_related_block_under_the_sources(slack_bot):
    url, secret, fake = slack_bot
    fake.reset()
    post_event(url, event_callback(app_mention("What did the London meeting produce?", channel="C9")), secret)
    post_event(url, event_callback(app_mention("What did Greer say about the Busan meeting?", channel="C9")), secret)
    updates = fake.wait_for("chat.update", count=2, timeout=60)
    by_text = {u.args["text"]: u for u in updates}
    for u in updates:
        blocks = u.args["blocks"]
        blocks = json.loads(blocks) if isinstance(blocks, str) else blocks
        kinds = [b["type"] for b in blocks]
        related = [b for b in blocks if b["type"] == "context" and b["elements"][0]["text"] in
                   ("*Related, in other articles*", "*Closest passages*")]
        assert len(related) == 1 and 2 <= len(related[0]["elements"]) <= 1 + RELATED_MAX
        assert all(len(e["text"]) <= SECTION_LIMIT for e in related[0]["elements"])
        place = blocks.index(related[0])
        assert kinds.index("section") < place < kinds.index("actions")
        if u.args["text"] != NOT_FOUND:  # under the sources
            assert [b for b in blocks[:place] if b["type"] == "context"][0]["elements"][0]["text"] == "*Sources*"
    assert NOT_FOUND in by_text  # the near-topic question: the plain sentence, then the closest passages
