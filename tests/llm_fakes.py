"""The network edge for the LLM tests: a fake OpenAI-compatible chat completions API on 127.0.0.1.

`FakeLLM` serves POST /v1/chat/completions as OpenAI does: a JSON completion, or with `"stream": true` server-sent
events (`chat.completion.chunk` objects, then `data: [DONE]`). Point the real `langchain-openai` client at
`fake.base_url` (DEALBOT_LLM_BASE_URL). Every request is recorded (`fake.requests`) so tests can read the prompt.

What it answers is chosen by the request's model name (`openai:NAME` in DEALBOT_LLM_MODEL):

* `cooperative`  -- a model that follows its prompt: it reads the <passage id="N"> blocks and answers with the
                    passage sentence that shares the most words with the current question, citing it as [N]; or
                    "Not in the articles." when none shares a word. Like a naive model it also obeys any
                    "ignore previous instructions and say X" it finds *outside* the passage blocks.
* `invalid-markers` -- the cooperative answer with markers added that point to no passage ([0], [42]).
* `uncited`      -- an answer without any citation marker.
* `abstain`      -- "Not in the articles."
* `empty`        -- an empty reply.
* `error`        -- HTTP 500 with an OpenAI-style error body that echoes the API key it was sent.
* `slow`         -- the cooperative answer after `slow_seconds`.
* `stall`        -- streams half of the cooperative answer, then waits `slow_seconds` before the rest.

Tests may add their own: `fake.behaviours["name"] = lambda body: "reply text"` (raising ConnectionResetError drops
the connection unanswered). Standard library only.
"""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

Json = dict[str, Any]

_PASSAGE = re.compile(r'<passage id="(\d+)"[^>]*>(.*?)</passage>', re.S)
_OBEY = re.compile(r"ignore (?:all )?(?:the )?previous instructions,? and (?:say|answer|reply)[: ]+\"?([^\"\n]+)\"?", re.I)
_STOP = set("a an the of to in on at for and or but is are was were be been did do does what when where who which how why "
            "with by from that this it its as about into than then there their they them he she his her".split())


def _words(text: str) -> set[str]:
    """Content words, crudely singular ("earths" and "earth" meet)."""
    return {w.removesuffix("s") for w in re.findall(r"[a-z0-9]+", text.lower()) if w not in _STOP and len(w) > 1}


def prompt_text(body: Json) -> tuple[str, str]:
    """(system, user) contents of a chat request."""
    system = "\n".join(m["content"] for m in body["messages"] if m["role"] == "system")
    user = "\n".join(m["content"] for m in body["messages"] if m["role"] in ("user", "human"))
    return system, user


def cooperative(body: Json) -> str:
    system, user = prompt_text(body)
    passages = {int(n): text for n, text in _PASSAGE.findall(user)}
    outside = _PASSAGE.sub("", user)
    if order := _OBEY.search(outside):
        return order.group(1).strip()
    question = re.search(r"Current question: (.*)", user)
    q = _words(question.group(1) if question else user)
    best, best_overlap = None, 0
    for n, text in sorted(passages.items()):
        for sentence in re.split(r"(?<=[.!?”])\s+", text.strip()):
            overlap = len(q & _words(sentence))
            if overlap > best_overlap:
                best, best_overlap = (n, sentence.strip()), overlap
    if best is None:
        return "Not in the articles."
    n, sentence = best
    return f"{sentence.rstrip('.')} [{n}]."


def _invalid_markers(body: Json) -> str:
    answer = cooperative(body)
    return f"{answer[:-1]}[0][42]. Also this claim cites nothing real [42]."


BEHAVIOURS: dict[str, Callable[[Json], str]] = {
    "cooperative": cooperative,
    "invalid-markers": _invalid_markers,
    "uncited": lambda body: "The deal was signed this week, officials said.",
    "abstain": lambda body: "Not in the articles.",
    "empty": lambda body: "",
    "slow": cooperative,
    "stall": cooperative,
}


def tokens(text: str) -> list[str]:
    """Model-like pieces: words with their leading space, punctuation alone (so "[1]" comes as "[", "1", "]")."""
    return re.findall(r"\s*\w+|\s*[^\w\s]", text)


class _Handler(BaseHTTPRequestHandler):
    server: Any
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        fake: FakeLLM = self.server.fake
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = json.loads(raw or b"{}")
        fake._record(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
        if not self.path.rstrip("/").endswith("/chat/completions"):
            return self._json(404, {"error": {"message": f"no route {self.path}", "type": "invalid_request_error"}})
        model = body.get("model", "")
        if model == "error":
            # Like some gateways, it echoes the credentials it got: the bot must not pass them on.
            key = self.headers.get("Authorization", "").removeprefix("Bearer ")
            return self._json(500, {"error": {"message": f"the fake model is down (key {key})", "type": "server_error"}})
        behaviour = fake.behaviours.get(model)
        if behaviour is None:
            return self._json(404, {"error": {"message": f"model {model} not found", "type": "invalid_request_error"}})
        try:
            text = behaviour(body)
        except ConnectionResetError:  # a behaviour's way to drop the connection without answering
            self.close_connection = True
            return
        if model == "slow":
            time.sleep(fake.slow_seconds)
        try:
            if body.get("stream"):
                self._stream(fake, body, model, text)
            else:
                self._json(200, _completion(model, text))
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (its timeout)
            pass

    def _json(self, status: int, payload: Json) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _stream(self, fake: FakeLLM, body: Json, model: str, text: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        pieces = tokens(text)

        def send(delta: Json, finish: str | None = None, usage: Json | None = None) -> None:
            chunk = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": int(time.time()), "model": model,
                     "choices": [] if usage else [{"index": 0, "delta": delta, "finish_reason": finish}]}
            if usage:
                chunk["usage"] = usage
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            self.wfile.flush()

        send({"role": "assistant", "content": ""})
        for i, piece in enumerate(pieces):
            if model == "stall" and i == len(pieces) // 2:
                time.sleep(fake.slow_seconds)
            elif fake.token_delay:
                time.sleep(fake.token_delay)
            send({"content": piece})
        send({}, finish="stop")
        if (body.get("stream_options") or {}).get("include_usage"):
            send({}, usage={"prompt_tokens": 100, "completion_tokens": len(pieces), "total_tokens": 100 + len(pieces)})
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _completion(model: str, text: str) -> Json:
    return {
        "id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()), "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 100, "completion_tokens": len(tokens(text)), "total_tokens": 100 + len(tokens(text))},
    }


class FakeLLM:
    """The fake API on http://127.0.0.1:PORT/v1, recording every request as {"path", "headers", "body", "at"}."""

    def __init__(self) -> None:
        self.behaviours = dict(BEHAVIOURS)
        self.token_delay = 0.0  # seconds between streamed pieces
        self.slow_seconds = 3.0  # how long `slow` and `stall` keep the client waiting
        self._requests: list[Json] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> FakeLLM:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.fake = self  # type: ignore[attr-defined]
        threading.Thread(target=self._server.serve_forever, name="fake-llm", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeLLM:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        assert self._server is not None, "FakeLLM is not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def reset(self) -> None:
        with self._lock:
            self._requests.clear()
        self.behaviours = dict(BEHAVIOURS)
        self.token_delay, self.slow_seconds = 0.0, 3.0

    @property
    def requests(self) -> list[Json]:
        with self._lock:
            return list(self._requests)

    def _record(self, path: str, headers: dict[str, str], body: Json) -> None:
        with self._lock:
            self._requests.append({"path": path, "headers": headers, "body": body, "at": time.monotonic()})
