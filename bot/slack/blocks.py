"""Block Kit for Slack: every message the bot sends is built here, from an Answer or a short notice.

Article and question text is escaped (`&`, `<`, `>`), so nothing quoted from them can become a link, a user or
channel mention, or `<!channel>`/`<!here>`/`<!everyone>`: Slack only parses those from the `<...>` syntax.
"""

from __future__ import annotations

import json

from ..types import Answer, Citation, Related, shorten

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


def link(url: str | None, label: str, limit: int | None = None) -> str:
    """`<url|label>` for an http(s) URL (within `limit` characters, escaped), else the label alone: an article's
    URL is its own metadata, and one such as "!channel" must not become a mention."""
    if not url or not url.lower().startswith(("http://", "https://")) or any(ch.isspace() for ch in url):
        return label
    url = escape(url)
    return label if limit is not None and len(url) > limit else f"<{url}|{label}>"


def source_line(c: Citation) -> str:
    title = escape(c.title)
    link_ = link(c.url, title)
    details = ", ".join(escape(x) for x in (c.outlet, c.published) if x)
    return f"[{c.n}] {link_}" + (f" — {details}" if details else "")


# A related passage's line names its article. The title, outlet and link are bounded (a link too long is left out),
# so that a line, escaped, stays within a context element's SECTION_LIMIT whatever an article's metadata holds:
# 5 x (QUOTE_CHARS + TITLE_CHARS + 2 x DETAIL_CHARS) + URL_CHARS < SECTION_LIMIT.
TITLE_CHARS, DETAIL_CHARS, URL_CHARS = 120, 40, 700


def related_line(r: Related) -> str:
    """One related passage, for a context block: the sentence as shown, then the article, linked, outlet and date."""
    title = link(r.url, escape(shorten(r.title, TITLE_CHARS)), URL_CHARS)
    details = ", ".join(escape(shorten(x, DETAIL_CHARS)) for x in (r.outlet, r.published) if x)
    return f"{escape(r.shown)} — {title}" + (f", {details}" if details else "")


def related_block(answer: Answer) -> dict:
    """The related passages in small text under the sources (or under "not found"): a context block, its heading
    and one element per passage (a context block takes at most 10 elements)."""
    heading = "*Related, in other articles*" if answer.answered else "*Closest passages*"
    elements = [{"type": "mrkdwn", "text": heading}]
    elements += [{"type": "mrkdwn", "text": related_line(r)} for r in answer.related[:9]]
    return {"type": "context", "elements": elements}


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
    if answer.related:
        blocks.append(related_block(answer))
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
