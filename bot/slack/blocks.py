"""Block Kit for Slack: every message the bot sends is built here, from an Answer or a short notice.

Article and question text is escaped (`&`, `<`, `>`), so nothing quoted from them can become a link, a user or
channel mention, or `<!channel>`/`<!here>`/`<!everyone>`: Slack only parses those from the `<...>` syntax. An
article's URL becomes a link only when it is http(s), with `|` and spaces percent-encoded, so it cannot change the
link's label. Every message stays within Slack's limits (`slack.max_blocks`, `slack.max_section_chars`, titles
within `slack.max_title_chars`): what does not fit is cut, with a note saying how much.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import quote

from ..types import Answer, Citation, Related, shorten

SECTION_LIMIT = 3000  # Slack's limits: characters in a section's text, blocks in a message
BLOCK_LIMIT = 50
FEEDBACK_UP, FEEDBACK_DOWN, SHARE = "feedback_up", "feedback_down", "share_answer"
WORKING = "Looking through the articles…"
USAGE = "Ask me about the U.S.–China rare earth deal, e.g. `/dealbot When was the deal signed?` or mention me with a question."


@dataclass(frozen=True)
class BlockLimits:
    blocks: int = BLOCK_LIMIT
    section_chars: int = SECTION_LIMIT
    title_chars: int = 200

    @classmethod
    def of(cls, slack) -> "BlockLimits":
        """The limits in settings, kept within what Slack accepts (and what leaves room for an answer)."""
        return cls(min(max(slack.max_blocks, 6), BLOCK_LIMIT), min(max(slack.max_section_chars, 200), SECTION_LIMIT),
                   max(slack.max_title_chars, 10))


def escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def link_target(url: str | None, limit: int = 2000) -> str | None:
    """The URL as a link target, or None when it should not be a link (not http(s), absurdly long). Characters
    that would end the target or start its label (`|`, `<`, `>`, spaces) are percent-encoded."""
    if not url or not url.lower().startswith(("http://", "https://")):
        return None
    target = quote(url, safe="/:?#[]@!$&'()*+,;=%~-._")
    return escape(target) if len(target) <= limit else None


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


def source_line(c: Citation, limits: BlockLimits = BlockLimits()) -> str:
    """"[n] <url|title> — outlet, date", within half a section whatever the article's metadata holds."""
    most = min(limits.title_chars, limits.section_chars // 8)
    title = escape(shorten(" ".join(c.title.split()) or "(untitled)", most))
    target = link_target(c.url, limits.section_chars // 4)
    link = f"<{target}|{title}>" if target else title
    details = ", ".join(escape(shorten(" ".join(x.split()), most)) for x in (c.outlet, c.published) if x)
    return f"[{c.n}] {link}" + (f" — {details}" if details else "")


# A related passage's line names its article. The title, outlet and link are bounded (a link too long is left out),
# so that a line, escaped, stays within a context element's SECTION_LIMIT whatever an article's metadata holds:
# 5 x (QUOTE_CHARS + TITLE_CHARS + 2 x DETAIL_CHARS) + URL_CHARS < SECTION_LIMIT.
TITLE_CHARS, DETAIL_CHARS, URL_CHARS = 120, 40, 700


def related_line(r: Related) -> str:
    """One related passage, for a context block: the sentence as shown, then the article, linked, outlet and date."""
    label = escape(shorten(" ".join(r.title.split()) or "(untitled)", TITLE_CHARS))
    target = link_target(r.url, URL_CHARS)
    title = f"<{target}|{label}>" if target else label
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


def answer_message(answer: Answer, answer_id: int | None = None, note: str = "", share: bool = False,
                   limits: BlockLimits = BlockLimits()) -> dict:
    """chat.postMessage/chat.update arguments (text, blocks) for an answer or for "not in the articles"."""
    body = answer_text(answer)
    room = limits.blocks - 5  # the sources heading, a source section at least, the related passages, the note, the buttons
    blocks = _sections(body, limits.section_chars, max(1, room // 2), "(cut: the answer is longer than Slack shows)")
    if answer.answered:
        blocks += [{"type": "context", "elements": [{"type": "mrkdwn", "text": "*Sources*"}]}]
        blocks += _source_sections(answer.citations, limits, room - len(blocks) + 1)
    if answer.related:
        blocks.append(related_block(answer))
    if note:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": escape(shorten(note, limits.section_chars))}]})
    if answer_id is not None:
        blocks.append(_buttons(answer_id, share))
    return {"text": shorten(body, limits.section_chars), "blocks": blocks}


def _sections(text: str, limit: int, most: int, cut_note: str) -> list[dict]:
    """Sections of `text` within `limit` characters each; at most `most` of them, the last saying what was cut."""
    pieces = _split(text, limit)
    if len(pieces) > most:
        pieces = pieces[:most]
        pieces[-1] = shorten(pieces[-1], limit - len(cut_note) - 2) + " " + cut_note
    return [_section(piece) for piece in pieces]


def _source_sections(citations, limits: BlockLimits, most: int) -> list[dict]:
    """One line per source, packed into sections; the sources that do not fit in `most` sections are counted."""
    sections, lines = [], []
    for i, c in enumerate(citations):
        line = source_line(c, limits)
        if lines and len("\n".join(lines + [line])) > limits.section_chars - 40:
            sections.append(lines)
            lines = []
        if len(sections) == max(1, most):
            sections[-1].append(f"… (cut: {len(citations) - i} more sources)")
            break
        lines.append(line)
    else:
        sections.append(lines)
    return [_section("\n".join(lines)) for lines in sections if lines]


def partial_message(text: str, limits: BlockLimits = BlockLimits()) -> dict:
    """chat.update arguments for an answer still being written (no sources or buttons yet)."""
    body = escape(text) + " …"
    blocks = _sections(body, limits.section_chars, limits.blocks, "(cut)")
    return {"text": shorten(body, limits.section_chars), "blocks": blocks}


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
    text = shorten(text, SECTION_LIMIT)
    return {"text": text, "blocks": [_section(text)]}
