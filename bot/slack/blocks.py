"""Block Kit for Slack: every message the bot sends is built here, from an Answer or a short notice.

Article and question text is escaped (`&`, `<`, `>`), so nothing quoted from them can become a link, a user or
channel mention, or `<!channel>`/`<!here>`/`<!everyone>`: Slack only parses those from the `<...>` syntax.
"""

from __future__ import annotations

import json

from ..types import Answer, Citation

SECTION_LIMIT = 3000
FEEDBACK_UP, FEEDBACK_DOWN, SHARE = "feedback_up", "feedback_down", "share_answer"
WORKING = "Looking through the articles…"
USAGE = "Ask me about the U.S.–China rare earth deal, e.g. `/dealbot When was the deal signed?` or mention me with a question."


def escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _section(text: str) -> dict:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _split(text: str, limit: int = SECTION_LIMIT) -> list[str]:
    """Pieces of at most `limit` characters, cut at sentence or word boundaries where possible."""
    pieces = []
    while len(text) > limit:
        cut = max(text.rfind(". ", 0, limit), text.rfind(" ", 0, limit))
        cut = cut + 1 if cut > 0 else limit
        pieces.append(text[:cut].rstrip())
        text = text[cut:].lstrip()
    return pieces + [text] if text else pieces


def source_line(c: Citation) -> str:
    title = escape(c.title)
    link = f"<{escape(c.url)}|{title}>" if c.url else title
    details = ", ".join(escape(x) for x in (c.outlet, c.published) if x)
    return f"[{c.n}] {link}" + (f" — {details}" if details else "")


def answer_text(answer: Answer) -> str:
    return escape(answer.text)


def answer_message(answer: Answer, answer_id: int | None = None, note: str = "", share: bool = False) -> dict:
    """chat.postMessage/chat.update arguments (text, blocks) for an answer or for "not in the articles"."""
    body = answer_text(answer)
    blocks = [_section(piece) for piece in _split(body)]
    if answer.answered:
        sources = "\n".join(source_line(c) for c in answer.citations)
        blocks += [{"type": "context", "elements": [{"type": "mrkdwn", "text": "*Sources*"}]}]
        blocks += [_section(piece) for piece in _split(sources)]
    if note:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": escape(note)}]})
    if answer_id is not None:
        blocks.append(_buttons(answer_id, share))
    return {"text": body[:SECTION_LIMIT], "blocks": blocks}


def partial_message(text: str) -> dict:
    """chat.update arguments for an answer still being written (no sources or buttons yet)."""
    body = escape(text) + " …"
    return {"text": body[:SECTION_LIMIT], "blocks": [_section(piece) for piece in _split(body)]}


def _buttons(answer_id: int, share: bool) -> dict:
    value = json.dumps({"answer_id": answer_id})
    elements = [
        {"type": "button", "action_id": FEEDBACK_UP, "text": {"type": "plain_text", "text": "👍"}, "value": value},
        {"type": "button", "action_id": FEEDBACK_DOWN, "text": {"type": "plain_text", "text": "👎"}, "value": value},
    ]
    if share:
        elements.append(
            {"type": "button", "action_id": SHARE, "text": {"type": "plain_text", "text": "Share in channel"}, "value": value}
        )
    return {"type": "actions", "block_id": "dealbot_answer_actions", "elements": elements}


def notice(text: str) -> dict:
    """A one-line message (help, errors, "not enabled here")."""
    return {"text": text, "blocks": [_section(text)]}
