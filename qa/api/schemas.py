"""The API's request and response models, the question pattern its schema states, and the
documented error responses: what every router declares, so the OpenAPI schema is one."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

MAX_HISTORY_TURNS = 10
MAX_COMMENT_CHARS = 2000
# A generous cap that only stops abuse (earlier answers sent back as history); questions
# have their own limit, Settings.max_question_chars.
MAX_TEXT_CHARS = 20_000
MAX_SEARCH_K = 50

_COMMENT_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# What qa.questions.validate_question accepts, as a JSON-schema pattern: no control
# characters (tab and newlines allowed) and at least one character that is not whitespace
# (Python's str.isspace, listed). The limit on length is Settings.max_question_chars, put
# into the schema per app (``limit_questions``). tests/test_fuzz.py checks the two agree.
_NOT_CONTROL = r"[^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]"
_NOT_SPACE = r"[^\u0000-\u0020\u007f\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
QUESTION_PATTERN = f"^{_NOT_CONTROL}*{_NOT_SPACE}{_NOT_CONTROL}*$"
COMMENT_PATTERN = f"^{_NOT_CONTROL}*$"


def _plain_comment(value: str) -> str:
    if _COMMENT_CONTROL.search(value):
        raise ValueError("contains control characters")
    return value


# A question (or search query): checked by validate_question in the handler, which says
# what is wrong in words; the schema states the same rule. The hard cap also makes pydantic
# refuse unpaired surrogates (not text; the encoder cannot take them).
QuestionText = Annotated[str, Field(max_length=MAX_TEXT_CHARS, json_schema_extra={"pattern": QUESTION_PATTERN})]


class Turn(BaseModel):
    """An earlier turn of the conversation; only its question is used (for follow-ups)."""

    model_config = ConfigDict(extra="forbid")
    question: QuestionText
    answer: str | None = Field(default=None, max_length=MAX_TEXT_CHARS)


class AskRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    question: QuestionText = Field(examples=["When was Technopolis Moscow founded?"])
    lang: Literal["en", "ru", "auto"] = Field(
        default="auto", description="language of the reply's messages; auto: the question's language")
    history: list[Turn | QuestionText] = Field(
        default_factory=list, max_length=MAX_HISTORY_TURNS,
        description="earlier turns, oldest first: {question, answer?} objects or plain question strings")


class ErrorItem(BaseModel):
    loc: list[str | int] = Field(description="where: body, question, history, 0, …")
    msg: str
    type: str


class ErrorOut(BaseModel):
    """Every 4xx and 503: what went wrong, in words (a list for malformed requests)."""

    detail: str | list[ErrorItem]


class ReadyOut(BaseModel):
    status: Literal["ready", "starting", "failed"]
    docs: int | None = None
    chunks: int | None = None
    detail: str | None = Field(default=None, description="why not ready, when loading the index failed")


class ServingOut(BaseModel):
    docs: int
    chunks: int
    built_at: str | None


class ReindexOut(BaseModel):
    state: Literal["idle", "running", "succeeded", "failed"]
    started_at: str | None
    finished_at: str | None
    seconds: float | None
    docs: int | None = Field(description="documents in the index this rebuild made")
    chunks: int | None
    error: str | None = Field(description="why the last rebuild failed (the previous index kept serving)")
    serving: ServingOut | None = Field(description="the index answering now")


class CitationOut(BaseModel):
    n: int
    doc_id: str
    title: str
    url: str | None
    lang: str
    date: str | None = Field(default=None, description="the source's publication date (ISO), when known")
    page: int | None = Field(default=None, description="the page the quote starts on (sources imported from a PDF)")
    start: int = Field(description="character offset into the source text (GET /api/sources/{doc_id})")
    end: int
    quote: str = Field(description="== source text[start:end]")


class AnswerOut(BaseModel):
    answer_id: str = Field(description="pass to POST /api/feedback")
    question: str
    lang: Literal["en", "ru"]
    abstained: bool
    answer: str | None
    short_answer: str | None
    confidence: float
    citations: list[CitationOut]
    message: str | None = Field(description="the decline, in the reply's language, when abstained")
    see_also: list[CitationOut]


class PassageOut(BaseModel):
    doc_id: str
    chunk_id: str
    title: str
    url: str | None
    lang: str
    start: int
    end: int
    text: str
    score: float


class SearchOut(BaseModel):
    query: str
    results: list[PassageOut]


class SourceOut(BaseModel):
    doc_id: str
    title: str
    url: str | None
    lang: str
    date: str | None
    text: str = Field(description="the source file's text exactly as stored; citation offsets index into it")


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    answer_id: str = Field(min_length=1, max_length=64)
    rating: Literal["up", "down"]
    comment: Annotated[str, AfterValidator(_plain_comment), Field(json_schema_extra={"pattern": COMMENT_PATTERN})] | None = \
        Field(default=None, max_length=MAX_COMMENT_CHARS)


class FeedbackOut(BaseModel):
    answer_id: str
    rating: Literal["up", "down"]
    stored: bool


# ------------------------------------------------------------------ documented errors

RETRY_AFTER = {"Retry-After": {"description": "seconds to wait before trying again", "schema": {"type": "string"}}}
_ERRORS: dict[int, dict[str, Any]] = {
    401: {"description": "no valid admin token (Authorization: Bearer QA_ADMIN_TOKEN)"},
    404: {"description": "not found"},
    408: {"description": "the request body did not arrive in time (Settings.request_timeout_s)"},
    409: {"description": "a reindex is already running, or a source with this id exists"},
    413: {"description": "the request body is too large (Settings.max_body_bytes; an upload: max_upload_bytes)"},
    415: {"description": "the file's type is not one that can be added"},
    422: {"description": "invalid request: what is wrong, in words"},
    429: {"description": "too many requests from this client (Settings.rate_limit_per_minute)", "headers": RETRY_AFTER},
    503: {"description": "not ready yet, or no answer in time (Settings.request_timeout_s)", "headers": RETRY_AFTER},
}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for these error statuses, all with the ErrorOut body."""
    return {code: {"model": ErrorOut, **_ERRORS[code]} for code in codes}


def limit_questions(node: Any, max_chars: int) -> None:
    """Every question-text schema of an OpenAPI document gets this app's length limit
    (Settings.max_question_chars is per app, the models are not)."""
    if isinstance(node, dict):
        if node.get("pattern") == QUESTION_PATTERN:
            node["maxLength"] = min(max_chars, MAX_TEXT_CHARS)
        for v in node.values():
            limit_questions(v, max_chars)
    elif isinstance(node, list):
        for v in node:
            limit_questions(v, max_chars)
