"""The index as a LangChain retriever: the passages `dealbot ask` answers from, as Documents a chain can use."""

from pathlib import Path

from langchain_core.runnables import RunnableLambda

from bot.langchain_retriever import DealbotRetriever


def _stem(doc) -> str:
    return Path(doc.metadata["source"]).stem


def test_returns_the_passages_ask_answers_from(eval_pipeline):
    question = "Who led the American delegation at the Geneva meeting?"
    docs = DealbotRetriever(pipeline=eval_pipeline).invoke(question)
    assert [d.id for d in docs] == [h.id for h in eval_pipeline.ask(question).hits]
    geneva = next(d for d in docs if _stem(d) == "test-wire-2025-05-12-geneva")
    assert "Bessent" in geneva.page_content
    meta = geneva.metadata
    assert meta["title"] == "U.S. and China cut tariffs for 90 days after Geneva talks"
    assert meta["outlet"] == "Test Wire (fixture)" and meta["published"] == "2025-05-12"
    assert [d.metadata["rank"] for d in docs] == list(range(1, len(docs) + 1))


def test_k_and_date_filters(eval_pipeline):
    docs = DealbotRetriever(pipeline=eval_pipeline, k=3, since="2025-10-01").invoke("rare earth export controls")
    assert docs and len([d for d in docs if d.metadata["via"] != "neighbour"]) == 3
    assert all(d.metadata["published"] >= "2025-10-01" for d in docs)
    assert all(d.metadata["filters"] == "since 2025-10-01" for d in docs)


def test_an_outlet_the_question_names_becomes_a_filter(eval_pipeline):
    docs = DealbotRetriever(pipeline=eval_pipeline).invoke("what did the Commerce Secretary say, according to The Hill?")
    assert docs and {d.metadata["outlet"] for d in docs} == {"The Hill"}
    assert "The Hill" not in docs[0].metadata["asked"]


def test_composes_into_a_chain(eval_pipeline):
    chain = DealbotRetriever(pipeline=eval_pipeline, k=2) | RunnableLambda(lambda docs: _stem(docs[0]))
    assert chain.batch(["When did Trump and Xi meet in Busan?", "What did the EU impose on Chinese electric cars?"]) == [
        "test-wire-2025-10-30-busan", "test-wire-2024-10-30-eu-ev",
    ]
