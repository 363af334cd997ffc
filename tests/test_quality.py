"""Issue 5 features on the real pipeline (real model, real Chroma): hybrid retrieval, filters, syndicated copies,
neighbours, refresh, answer types, recency, abstention checks, --explain, follow-ups, chat, eval --compare."""

import json

import pytest

import bot.retrieve as retrieve_module
from bot.pipeline import Pipeline
from bot.render import answer_dict, explain_text
from bot.answer import fits
from bot.question import read
from bot.retrieve import Filters
from bot.text import Lexicon, terms
from conftest import EVAL_ARTICLES, SAMPLE, make_settings, run_cli, write_article
from ingest.sync import run_ingest


@pytest.fixture(scope="module")
def pipeline(eval_pipeline):
    return eval_pipeline


def meets(reading, sentence: str, before: str = "") -> bool:
    """Whether `sentence` holds the kind of answer the question `reading` reads asks for."""
    return fits(reading, sentence, frozenset(terms(sentence)), before=before)


def kind(question: str) -> str:
    return read(question).expects.kind


# Retrieval


def test_hits_carry_dense_lexical_and_fused_scores_in_fused_order(pipeline):
    hits = pipeline.retriever.retrieve(pipeline.read("Where in London were the talks held?"))
    ranked = [h for h in hits if h.via != "neighbour"]
    assert [h.rank for h in ranked] == list(range(1, len(ranked) + 1))
    assert all(h.fused > 0 for h in hits)
    assert any(h.lexical > 0 for h in hits) and any(h.via == "both" for h in hits)
    # Each fused score is the sum of 1/(60 + rank) over the lists that found it: at most 2/61.
    assert max(h.fused for h in hits) <= 2 / 61 + 1 / 61 + 1e-9


def test_bm25_finds_an_exact_rare_term(pipeline):
    best_id, _ = pipeline.retriever.lexical("Lancaster House", 3)[0]
    assert "Lancaster House" in pipeline.retriever.passages[best_id].hit.text


def test_question_with_no_known_term_has_no_lexical_hits(pipeline):
    assert pipeline.retriever.lexical("sourdough bread baking", 5) == []


def test_results_are_diversified_across_articles(pipeline):
    hits = pipeline.retriever.retrieve(pipeline.read("rare earth tariffs China trade talks"))
    first = [h.doc_id for h in hits if h.via != "neighbour"]
    assert len(set(first)) >= 4
    assert max(first.count(d) for d in first) <= retrieve_module.MAX_PER_DOC


def test_caller_filters_restrict_articles(pipeline):
    a = pipeline.ask("What is the U.S. tariff on Chinese goods?", filters=Filters(since="2025-10-01"))
    assert a.hits and all(h.published >= "2025-10-01" for h in a.hits)
    assert a.answered and all(c.published >= "2025-10-01" for c in a.citations)
    b = pipeline.ask("What did Bessent say?", filters=Filters(sources=("The Hill",)))
    assert b.hits and {h.outlet for h in b.hits} == {"The Hill"}
    assert pipeline.ask("What is the tariff?", filters=Filters(until="2020-01-01")).hits == ()


def test_question_dates_filter_and_prefer(pipeline):
    a = pipeline.ask("What did China do about rare earth export controls since October?")
    assert a.filters == "since 2025-10-01"
    assert a.hits and all(h.published >= "2025-10-01" for h in a.hits)
    # "in <month>" prefers articles of that month and the next, without excluding the rest
    may = pipeline.read("tariffs in May")
    assert may.window.prefer == ("2025-05-01", "2025-06-30") and not (may.window.since or may.window.until)
    hits = pipeline.retriever.retrieve(may)
    assert hits[0].published.startswith(("2025-05", "2025-06"))


def test_syndicated_copies_never_fill_the_list_twice(tmp_path, embedder):
    body = (SAMPLE / "the-hill-2025-06-27.md").read_text(encoding="utf-8").split("---\n", 2)[2]
    folder = tmp_path / "articles"
    write_article(folder, "original.md", "White House announces trade deal", body, "2025-06-27", "The Hill")
    # A partial copy: the syndicate ran the opening paragraphs under its own story, so ingest keeps it as an
    # article of its own, yet its first passage reads exactly like the original's.
    opening = "\n".join(body.strip().splitlines()[:6])
    own = " ".join(f"Fixture Daily adds its own line {i} about freight schedules in the port of Fixtureville." for i in range(12))
    write_article(folder, "copy.md", "Trade deal with China announced", f"{opening}\n{own}\n", "2025-06-28", "Fixture Daily")
    settings = make_settings(tmp_path / "data")
    report = run_ingest(settings, [str(folder)], embedder=embedder)
    assert report.added == 2
    p = Pipeline(settings, embedder=embedder)
    first = {s.hit.doc_id: s.hit.text for s in p.retriever.passages.values() if s.hit.start == 0}
    assert len(first) == 2 and len({" ".join(t.split()).lower() for t in first.values()}) == 1
    hits = p.retriever.retrieve(p.read("What did Bessent say about trade talks in Geneva?"))
    texts = [" ".join(h.text.split()).lower() for h in hits]
    assert len(texts) == len(set(texts))


def test_neighbours_of_the_best_passages_are_pulled_in(tmp_path, embedder):
    sentences = [f"Fixture sentence {i} reports that the freight index moved by {i} points in week {i}." for i in range(40)]
    sentences[20] = "The port of Fixtureville reopened its rare earth terminal on Tuesday after a long strike."
    folder = tmp_path / "articles"
    write_article(folder, "long.md", "Freight fixture", " ".join(sentences))
    settings = make_settings(tmp_path / "data", chunking_max_tokens=60)
    run_ingest(settings, [str(folder)], embedder=embedder)
    p = Pipeline(settings, embedder=embedder)
    hits = p.retriever.retrieve(p.read("When did the Fixtureville rare earth terminal reopen?"), k=2)
    best = p.retriever.passages[hits[0].id]
    neighbours = [p.retriever.passages[h.id] for h in hits if h.via == "neighbour"]
    assert neighbours
    assert all(n.doc_key == best.doc_key for n in neighbours)
    assert {n.n for n in neighbours} & {best.n - 1, best.n + 1}


def test_refresh_rebuilds_bm25_after_an_in_process_ingest(tmp_path, embedder, monkeypatch):
    folder = tmp_path / "articles"
    write_article(folder, "a.md", "Fixture one", "The fixture harbour handled more grain this spring.")
    settings = make_settings(tmp_path / "data")
    run_ingest(settings, [str(folder)], embedder=embedder)
    p = Pipeline(settings, embedder=embedder)
    assert p.retriever.lexical("zirconium quota", 3) == []
    write_article(folder, "b.md", "Fixture two", "A zirconium quota was announced for fixture exporters.")
    run_ingest(settings, [str(folder)], embedder=embedder)
    p.refresh()
    assert p.retriever.lexical("zirconium quota", 3)
    # Another write not followed by refresh(): questions answer from the last complete snapshot, and the id Chroma
    # returns that the snapshot does not know starts a refresh in the background, which serves it once done.
    write_article(folder, "c.md", "Fixture three", "The vanadium levy doubled for fixture smelters.")
    run_ingest(settings, [str(folder)], embedder=embedder)
    assert not p.retriever.lexical("vanadium levy", 3)
    p.retriever.retrieve(p.read("What happened to the vanadium levy?"))
    assert p.retriever.caught_up(60)
    assert any("vanadium" in h.text for h in p.retriever.retrieve(p.read("What happened to the vanadium levy?")))


# Composing


@pytest.mark.parametrize(
    "question, kind_, good, bad",
    [
        ("Who led the talks?", "person", "Treasury Secretary Scott Bessent led the talks.", "The talks were led well."),
        ("How much did tariffs fall?", "number", "Tariffs fell to 30 percent.", "Tariffs fell sharply."),
        ("Where were the talks?", "place", "The talks were held in Geneva.", "The talks were held quietly."),
    ],
)
def test_answer_types_want_a_name_a_figure_a_place(question, kind_, good, bad):
    e = read(question)
    assert e.expects.kind == kind_
    assert meets(e, good)
    assert not meets(e, bad)


def test_a_role_and_a_speaker_must_be_named():
    e = read("Who is the commerce minister?")
    s = "Commerce Secretary Howard Lutnick spoke."
    assert not meets(e, s)
    say = read("What did Xi say after the meeting?")
    met = "President Trump and President Xi Jinping met in Busan."
    assert not meets(say, met)
    said = "Xi said the meeting went well."
    assert meets(say, said)


def test_a_person_question_may_qualify_the_role():
    assert kind("Which US officials took part in the London talks?") == "person"
    assert kind("What Chinese minister announced the rules?") == "person"
    assert kind("What did officials say about the deal?") != "person"
    # "the duties" here is what the alternative replaces, not a rate asked for
    assert kind("What alternative to the duties are Brussels and Beijing discussing?") == "other"
    assert kind("What duty does BYD face in the EU?") == "number"


def test_countries_are_not_people_and_weekdays_are_not_places():
    person_names = Lexicon.default().person_names
    assert person_names("The officials of the United States and the European Union agreed.") == []
    assert person_names("Commerce Secretary Howard Lutnick joined them.") == ["Secretary Howard Lutnick"]
    where = read("Where did they meet?")
    assert not meets(where, "They met on Monday and again in April.")
    assert meets(where, "They met in Busan on Thursday.")


def test_acronyms_are_read_as_the_words_they_stand_for_and_contractions_are_not_misspellings(pipeline):
    from bot.question import correct_spelling, expand_acronyms

    stats, lexicon = pipeline.retriever.stats, pipeline.lexicon
    assert expand_acronyms("what is EDA software?", stats) == "what is electronic design automation software?"
    assert expand_acronyms("did China go to the WTO?", stats) == "did China go to the World Trade Organization?"
    assert expand_acronyms("EU and US duties", stats) == "EU and US duties"  # the articles use these
    assert correct_spelling("the magnets weren't flowing", stats, lexicon) == "the magnets weren't flowing"
    assert correct_spelling("what did Lutnik's comerce ministry say", stats, lexicon) == "what did Lutnick's commerce ministry say"
    assert pipeline.read("what did Lutnik say about EDA").understood == "what did Lutnick say about electronic design automation"
    a = pipeline.ask("sorry - what's EDA?")
    assert a.answered and "design chips" in a.text
    assert pipeline.ask("the EU EV duties come on top of what?").answered


def test_who_may_be_answered_by_a_country_or_an_institution():
    agents = Lexicon.default().agents
    e = read("who's the biggest soybean buyer?")
    assert e.expects.kind == "person" and e.expects.agent
    country = "China is the world's largest buyer of soybeans."
    assert meets(e, country)
    adjective = "U.S. and Chinese negotiators ended two days of talks."
    assert agents(adjective) == frozenset() and not meets(e, adjective)
    assert agents("China’s Ministry of Commerce spokesperson said so.") >= {"ministri", "commerc"}
    assert not read("Which officials were at the talks?").expects.agent  # officials: a name is wanted


def test_points_per_and_decisions():
    points = read("By how many points did the tariff drop?")
    assert points.expects.percent and points.expects.unit is None
    rate = "The tariff fell from 57 percent to 47 percent."
    assert meets(points, rate) and not fits(points, "It fell by ten.", frozenset({"fell"}))
    assert read("per Bessent, what was held back?").expects.speaker == {"bessent"}
    assert read("What is the duty per car?").expects.speaker == frozenset()
    ruled = read("What did the WTO rule on the EU car duties?")
    challenged = "China has challenged the duties at the World Trade Organization."
    assert ruled.expects.decided and not meets(ruled, challenged)


def test_a_near_tie_lends_the_answer_its_evidence(pipeline):
    a = pipeline.ask("When had Washington put those export curbs on China in the first place?")
    assert a.answered and "in the spring" in a.text and a.evidence >= pipeline.settings.retrieval.min_score


def test_lower_case_names_are_read_as_names_and_real_words_are_not_respelt(pipeline):
    from bot.question import correct_spelling, truecase

    stats = pipeline.retriever.stats
    assert truecase("what did lutnick say about the geneva talks", stats) == "what did Lutnick say about the Geneva talks"
    assert truecase("which member states voted", stats) == "which member states voted"  # only "United States"
    assert correct_spelling("which member states", stats, pipeline.lexicon) == "which member states"  # not "remember"


def test_a_round_of_talks_is_told_apart_by_its_venue_and_how_long_wants_a_duration(pipeline):
    e = read("how long did the Geneva negotiations go on")
    assert e.expects.kind == "duration" and e.expects.venue == "geneva"
    london = "U.S. and Chinese negotiators ended two days of talks in London with a framework for the Geneva truce."
    geneva = "The two sides agreed on Monday to lower tariffs, after two days of talks in Geneva over the weekend."
    assert not meets(e, london)
    assert meets(e, geneva)
    assert not fits(e, "The deal was signed two days ago.", frozenset())  # a date, not a duration
    a = pipeline.ask("how long did the geneva negotiations go on")
    assert a.answered and "talks in Geneva" in a.text and "geneva" in a.citations[0].source


def test_tldr_gets_the_first_two_sentences_of_the_story(pipeline):
    a = pipeline.ask("busan tl;dr?")
    assert a.answered and len(a.sentences) == 2 and "busan" in a.citations[0].source
    assert a.text.startswith("President Trump and President Xi Jinping met in Busan") and "47 percent" in a.text


def test_names_offered_as_alternatives_need_not_both_be_in_one_article(pipeline):
    from bot.question import about_terms, alternatives

    assert alternatives("which was lower, the tariff after Geneva or the one after Busan?") == ["Geneva", "Busan"]
    assert alternatives("Did China or the US blink first?") == ["China", "US"]
    assert set(alternatives("How does the EU duty compare with the U.S. tariff after Busan?")) == {"EU", "Busan"}
    assert about_terms("what were both sides mad about going into London") == {"london"}
    a = pipeline.ask("which was lower, the tariff after geneva or the one after busan?")
    assert a.answered and ("30 percent" in a.text or "47 percent" in a.text)


def test_who_said_and_how_did_x_react():
    said = read("who said licence approvals were still lagging?")
    groups = "Industry groups said approvals were still running below the levels seen before April."
    assert said.expects.attributed and meets(said, groups)
    react = read("how did BYD react to the EU duties?")
    named = "Rates differ by manufacturer: BYD faces 17 percent."
    acted = "BYD said it would cut prices in Europe."
    assert react.expects.reacting == {"byd"}
    assert not meets(react, named) and meets(react, acted)
    china = "China has challenged the duties at the World Trade Organization."
    assert meets(read("How did Beijing respond to the duties?"), china)
    pushed = read("Has China pushed back on the EU car duties anywhere?")
    lead = "The European Union imposed extra duties on electric vehicles imported from China."
    assert pushed.expects.reacting == {"china"} and meets(pushed, china)
    assert not meets(pushed, lead)


def test_names_topics_and_places_read_as_a_reader_means_them(pipeline):
    from bot.text import named_entities

    # the first word of a later sentence is no name
    assert named_entities("What happened after the London talks? Did it get signed?") == ["London"]
    # "Washington's curbs": the article says "the United States"
    about = pipeline.ask("What was reported about Washington's curbs on ethane?")
    assert about.answered and "ethane" in about.text
    # "where": a place the question does not name itself ("to China" is not where the shippers are)
    assert not pipeline.ask("Where are the ethane shippers to China based?").answered


def test_the_speaker_is_named_outside_the_quotation():
    e = read("What did China's commerce ministry say Beijing will do under the deal?")
    attribution = "Commerce Secretary Howard Lutnick later told Bloomberg TV that the deal was signed."
    quote = "“The China deal, we inked the deal,” Lutnick said."
    assert not meets(e, quote, before=attribution)
    spokesperson = "China’s Ministry of Commerce spokesperson said in a statement the two sides agreed."
    answer = "“China will review and approve eligible export applications,” the spokesperson said."
    assert meets(e, answer, before=spokesperson)


def test_according_to_names_the_speaker_and_aliases_count():
    e = read("What will the US do once China delivers rare earths, according to Lutnick?")
    assert e.expects.speaker == {"lutnick"}
    by_bessent = "“The magnets will flow,” Bessent said."
    by_lutnick = "Lutnick said the U.S. will take down its countermeasures."
    assert not meets(e, by_bessent)
    assert meets(e, by_lutnick)
    beijing = read("According to Beijing, what does Washington do in return?")
    said = "“The United States will lift a series of restrictive measures,” the spokesperson said."
    assert meets(beijing, said, before="China’s Ministry of Commerce spokesperson said.")


@pytest.mark.parametrize(
    "question, without, with_",
    [
        # a count must count the thing asked about
        ("How many rare earth export licences did China approve in June?",
         "China added five more rare earth elements and said foreign firms would need a licence to export them.",
         "Beijing approved 140 export licences for magnet makers."),
        # "which companies" wants a company's name
        ("Which EDA companies got to resume sales to China?",
         "Makers of electronic design automation software said they could sell to Chinese customers again.",
         "BYD faces 17 percent and Geely 18.8 percent."),
        # "the European Union" is no carmaker
        ("Which Chinese carmaker got off lightest?",
         "The European Union on Tuesday imposed extra duties on electric vehicles imported from China.",
         "BYD faces 17 percent and Geely 18.8 percent."),
    ],
)
def test_a_sentence_must_hold_what_is_asked_for(question, without, with_):
    e = read(question)
    assert not meets(e, without) and meets(e, with_)


def test_what_was_agreed_is_answered_by_an_agreement():
    e = read("What did China agree to in the deal?")
    assert e.expects.agreed
    assert not meets(e, "China's exports of magnets to the United States rose in June.")
    assert meets(e, "The administration and Beijing agreed to an additional understanding.")


def test_a_summary_question_gets_the_lead_of_the_article_it_is_about(pipeline):
    assert "main" not in read("What is the deal mainly about?").terms
    a = pipeline.ask("What is the deal mainly about?", explain=True)
    assert a.answered and a.text.startswith("The Trump administration reached an agreement with China")
    assert a.citations[0].source.endswith("the-hill-2025-06-27.md")
    busan = pipeline.ask("What was the Busan meeting mainly about?")
    assert busan.answered and "busan" in busan.citations[0].source


def test_an_article_that_does_not_mention_the_names_asked_about_cannot_lead_the_answer(pipeline):
    a = pipeline.ask("What is the EU deal mainly about?", explain=True)
    assert a.answered and a.citations[0].source.endswith("test-wire-2024-10-30-eu-ev.md")
    uncovered = [c for c in a.considered if c.doc_id != a.citations[0].doc_id]
    assert uncovered and all(c.signals["shape"] == 0 for c in uncovered)


def test_a_question_about_a_topic_no_retrieved_article_covers_is_not_answered(pipeline):
    off = pipeline.ask("What did the European Commission say about rare earths?")
    assert not off.answered
    on = pipeline.ask("What did the European Commission say about minimum prices?")
    assert on.answered and "minimum prices" in on.text and "eu-ev" in on.citations[0].source


def test_names_count_through_their_aliases_and_month_names_are_not_unknown_terms(pipeline):
    from bot.answer import _mentioned

    stats = pipeline.retriever.stats
    # the EU article says "European Union", never "Brussels"
    assert _mentioned("Brussels", stats, pipeline.lexicon) and not _mentioned("India", stats, pipeline.lexicon)
    assert stats.known_share(frozenset(terms("tariff in August"))) == 1.0  # no article says "August"
    assert stats.known_share(frozenset(terms("tariff on Tesla"))) < 1.0
    a = pipeline.ask("What alternative to the duties are Brussels and Beijing discussing?")
    assert a.answered and "minimum prices" in a.text


def test_latest_question_prefers_the_newest_report_and_shows_dates(pipeline):
    a = pipeline.ask("What is the latest U.S. tariff rate on Chinese goods?", explain=True)
    assert a.answered and "47 percent" in a.text
    assert a.citations[0].published >= "2025-10-30"
    assert all(c.published for c in a.citations)
    top = a.considered[0]
    assert top.signals["recent"] == 1.0


@pytest.mark.parametrize(
    "question",
    ["What is the capital of Australia?", "Who is the US ambassador to China?", "What did the EU agree with China on rare earths?"],
)
def test_out_of_scope_and_near_topic_questions_get_the_honest_reply(pipeline, question):
    a = pipeline.ask(question)
    assert not a.answered and a.citations == () and a.reason


def test_quotes_stay_exact_and_cited(pipeline):
    texts = {p.stem: p.read_text(encoding="utf-8") for p in list(EVAL_ARTICLES.glob("*.md")) + list(SAMPLE.glob("*.md"))}
    for q in ["Where did Trump and Xi meet in October?", "What did China agree to in Busan about rare earths?"]:
        a = pipeline.ask(q)
        assert a.answered and len(a.sentences) <= 3
        for s in a.sentences:
            c = next(c for c in a.citations if c.n == s.n)
            assert s.text in texts[c.source.rsplit("/", 1)[-1].removesuffix(".md")]


def test_explain_shows_scores_and_reasons(pipeline):
    a = pipeline.ask("Where did Trump and Xi meet in October?", explain=True)
    text = explain_text(a)
    assert "dense" in text and "lexical" in text and "fused" in text
    assert "read as: expects place" in text  # the reading the composer used: a place is wanted
    assert any(c.why.startswith("chosen") for c in a.considered)
    assert any(c.why.startswith("not used") for c in a.considered)
    d = answer_dict(a, explain=True)
    assert {"passages", "sentences", "asked"} <= set(d)
    assert {"dense", "lexical", "fused", "via"} <= set(d["passages"][0])
    assert a.considered == () or pipeline.ask("Where did Trump and Xi meet in October?").considered == ()


# Follow-ups


def test_follow_up_is_resolved_against_the_earlier_turn(pipeline):
    first = pipeline.answer("Where did Trump and Xi meet in October?")
    assert "Busan" in first.text
    follow = pipeline.answer("and what did China agree to there?", [first])
    assert follow.answered and "suspend" in follow.text
    assert "Busan" in follow.asked
    # The reading keeps the earlier turn's words apart from the question: nothing rides inside its text.
    assert follow.reading.understood.startswith("and what did China agree to in Busan")
    assert {"Trump", "Xi", "meet"} <= set(follow.reading.context) and follow.asked == follow.reading.text
    assert follow.reading.earlier == ("Where did Trump and Xi meet in October?",)
    alone = pipeline.answer("and what did China agree to there?")
    assert alone.asked == "and what did China agree to there?"


def test_they_is_read_as_the_earlier_speaker(pipeline):
    a = pipeline.answer("what did they say about magnets?", ["What did Bessent say about the deal?"])
    assert a.asked.startswith("what did Bessent say about magnets?")
    assert a.answered and "magnets" in a.text and "Bessent" in a.text


# The command line


@pytest.fixture(scope="module")
def eval_env(tmp_path_factory):
    env = {"DEALBOT_DATA_DIR": str(tmp_path_factory.mktemp("cli-eval") / "data")}
    r = run_cli("ingest", "--json", "--source", str(SAMPLE), "--source", str(EVAL_ARTICLES), env=env)
    assert r.returncode == 0, r.stderr
    return env


def test_cli_explain(eval_env):
    r = run_cli("ask", "--explain", "Where were the London talks held?", env=eval_env)
    assert r.returncode == 0, r.stderr
    assert "Lancaster House" in r.stdout
    assert "passages (fused" in r.stdout and "sentences (score" in r.stdout and "chosen" in r.stdout


def test_cli_chat_keeps_the_conversation_over_a_pipe(eval_env):
    r = run_cli("ask", "--chat", "--json", env=eval_env, input="Where did Trump and Xi meet in October?\nand what did China agree to there?\n")
    assert r.returncode == 0, r.stderr
    first, follow = [json.loads(line) for line in r.stdout.splitlines()]
    assert "Busan" in first["answer"] and follow["answered"] and "suspend" in follow["answer"]
    r = run_cli("ask", "--json", env=eval_env, input="Where did Trump and Xi meet in October?\nand what did China agree to there?\n")
    assert [json.loads(line)["question"] for line in r.stdout.splitlines()][1] == "and what did China agree to there?"


def test_cli_filters(eval_env):
    r = run_cli("ask", "--json", "--since", "October 2025", "What is the U.S. tariff on Chinese goods?", env=eval_env)
    assert r.returncode == 0, r.stderr
    a = json.loads(r.stdout)
    assert a["answered"] and all(c["published"] >= "2025-10-01" for c in a["citations"])
    r = run_cli("ask", "--since", "someday", "x", env=eval_env)
    assert r.returncode != 0 and "not a date" in r.stderr


def test_cli_eval_compare_baseline(eval_env):
    r = run_cli("eval", "tests/eval", "--compare", "baseline", env=eval_env, timeout=300)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    for row in ("dealbot  dev", "dealbot  heldout", "baseline dev", "baseline heldout", "margin   heldout",
                "reader   dev", "reader   heldout"):
        assert row in out, out
    r = run_cli("eval", "tests/eval", "--compare", "baseline", "--json", env=eval_env, timeout=300)
    report = json.loads(r.stdout)
    assert report["baseline"]["heldout"]["abstention"] == 0.0
    # The answer and the related passages beneath it show the fact more often than the baseline's whole passage
    # (the answer alone no longer does on held-out: tests/test_eval.py, the baseline's expected failure).
    assert report["heldout"]["on_screen"] > report["baseline"]["heldout"]["on_screen"]
    heldout = report["heldout"]
    good, total = heldout["counts"]["accuracy"]
    assert total == heldout["answerable"] and round(good / total, 4) == heldout["accuracy"]
    low, high = heldout["ci95"]["accuracy"]
    assert low < heldout["accuracy"] < high
    assert f"accuracy={heldout['accuracy']:.2f} ({good}/{total})" in out and "95% intervals, dealbot heldout" in out
    seen, answerable = heldout["counts"]["on_screen"]
    assert answerable == heldout["answerable"] and f"on screen={heldout['on_screen']:.2f} ({seen}/{answerable})" in out
    assert {"confident_and_wrong", "off_topic_with_passages", "visible_chars_median"} <= set(heldout)


def test_cli_interactive_at_a_terminal_keeps_the_conversation(eval_env):
    import os
    import pty
    import subprocess
    import time

    from conftest import DEALBOT, ROOT

    master, slave = pty.openpty()
    environ = {k: v for k, v in os.environ.items() if not k.startswith("DEALBOT_")}
    proc = subprocess.Popen(
        [str(DEALBOT), "ask"], stdin=slave, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**environ, **eval_env}, cwd=ROOT,
    )
    os.close(slave)
    try:
        time.sleep(0.5)
        os.write(master, b"Where did Trump and Xi meet in October?\n")
        os.write(master, b"and what did China agree to there?\n")
        os.write(master, b"\n")  # an empty line ends the conversation
        out, err = proc.communicate(timeout=180)
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert out.startswith("Ask about the articles")
    assert "Busan" in out and "(read as: and what did China agree to in Busan" in out and "suspend" in out


def test_an_outlet_named_in_the_question_filters_the_sources(pipeline):
    assert pipeline.read("What did The Hill report about magnets?").outlets == ("The Hill",)
    a = pipeline.ask("What did The Hill report about magnets?")
    assert a.filters == "from The Hill"
    assert a.hits and {h.outlet for h in a.hits} == {"The Hill"}
    assert a.answered and "magnets" in a.text
    assert pipeline.read("What did the hills say?").outlets == ()



def test_questions_asked_while_ingest_runs_in_process_get_the_same_answers(tmp_path, articles, embedder):
    """`dealbot serve` ingests on its schedule and reloads while Slack questions are being answered: no question may
    see the passages of one snapshot with the BM25 index of another."""
    import threading

    from bot.pipeline import Pipeline
    from conftest import make_settings, write_article
    from ingest.sync import run_ingest

    settings = make_settings(tmp_path / "data")
    run_ingest(settings, [str(articles)], embedder=embedder)
    pipeline = Pipeline(settings, embedder=embedder)
    questions = ["When was the deal signed?", "Who is the commerce secretary?", "What did China agree to?"]
    expected = {q: pipeline.ask(q).text for q in questions}
    done = threading.Event()
    errors: list[BaseException] = []
    mismatches: list[tuple[str, str]] = []

    def ask_until_done():
        try:
            while not done.is_set():
                for q in questions:
                    text = pipeline.ask(q).text
                    if text != expected[q]:
                        mismatches.append((q, text))
        except BaseException as exc:  # noqa: BLE001 - any failure in a worker thread fails the test
            errors.append(exc)

    workers = [threading.Thread(target=ask_until_done) for _ in range(3)]
    for w in workers:
        w.start()
    try:
        for i in range(4):  # unrelated fixture notes: the snapshot changes, the answers must not
            write_article(articles, f"note-{i}.md", f"Fixture note {i}",
                          f"Fixture note {i} lists warehouse inventory codes {i}01 and {i}02 for an audit of pallets.")
            run_ingest(settings, [str(articles)], embedder=embedder, lock_held=True)
            pipeline.refresh()
    finally:
        done.set()
        for w in workers:
            w.join(timeout=120)
    assert len(pipeline.retriever.passages) > 5
    assert not errors and not mismatches, (errors, mismatches[:3])


def test_the_story_vocabulary_steers_the_reading(tmp_path):
    """The words are data: a story's own nouns, roles and aliases change how a question is read, with no code."""
    from ingest.settings import load_vocabulary

    story = tmp_path / "story.toml"
    story.write_text(
        "person_nouns = ['farmers']\nroles = ['commissioner']\naliases = [['mercosur', 'southern common market']]\n"
    )
    mine, shipped = Lexicon(load_vocabulary(story)), Lexicon.default()
    question = "Which farmers protested the Mercosur deal?"
    assert read(question, lexicon=mine).expects.kind == "person"
    assert read(question, lexicon=shipped).expects.kind != "person"
    who = read("Who is the trade commissioner?", lexicon=mine)
    assert who.expects.roles == {"commission"}
    assert not meets(who, "Trade chief Maria Rossi spoke on Monday.")
    assert mine.alias_forms_of("Mercosur") == {"mercosur", "southern common market"}
    assert shipped.alias_forms_of("Mercosur") == {"mercosur"}
