"""The HTTP API fuzzed against its own OpenAPI schema with schemathesis: generated valid and
invalid requests for every operation (bodies, query strings, path ids, headers, methods).
No response may be a 5xx, and every response must match the schema: status codes,
headers, content type and JSON body (the errors included). Bounded by
``QA_FUZZ_EXAMPLES`` examples an operation (``make fuzz`` prints the figures).
"""

from __future__ import annotations

import os
import re
import time
from collections import Counter

import pytest
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from pydantic import SecretStr

import server
from qa.config import Settings
from qa.pipeline import QAService
from qa.questions import QuestionError, validate_question
from qa.store import Store

MAX_EXAMPLES = int(os.environ.get("QA_FUZZ_EXAMPLES", "200"))
TALLY: dict[str, Counter[int]] = {}

# The app is made at import time (schemathesis reads its schema to make one test per
# operation); the fixture below gives it the tiny index and a private database. No rate
# limit here (the fuzzer is one client sending thousands of requests; the 429 answer is
# checked against the same schema in test_reliability.py). A token is set so that the
# admin endpoints answer 401 to the fuzzer's guesses rather than 404.
APP = server.create_app(Settings(rate_limit_per_minute=0, admin_token=SecretStr("fuzz-" + os.urandom(8).hex())))
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@pytest.fixture(scope="module", autouse=True)
def loaded(tiny_index, encoder, tmp_path_factory):
    index, base = tiny_index
    store = Store(tmp_path_factory.mktemp("fuzz") / "qa.sqlite3")
    APP.state.service, APP.state.store = QAService(index, encoder, base), store
    t0 = time.perf_counter()
    yield
    APP.state.service = APP.state.store = None
    store.close()
    cases = sum(sum(c.values()) for c in TALLY.values())
    server_errors = sum(n for c in TALLY.values() for status, n in c.items() if status >= 500)
    statuses = sum(TALLY.values(), Counter())
    print(f"\nfuzz: {len(TALLY)} operations, {cases} cases, {server_errors} 5xx, "
          f"{time.perf_counter() - t0:.0f} s; statuses {dict(sorted(statuses.items()))}")


@schema.parametrize()
@hsettings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True,
           suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large])
def test_api_matches_its_schema_and_never_fails(case):
    response = case.call()
    TALLY.setdefault(case.operation.label, Counter())[response.status_code] += 1
    case.validate_response(response)
    assert response.status_code < 500, response.text


# ------------------------------------------------------------------ the schema's question rule

_PATTERN = re.compile(server.QUESTION_PATTERN)


def _accepted(text: str) -> bool:
    try:
        validate_question(text, 10**6)
    except QuestionError:
        return False
    return True


def test_the_whitespace_in_the_pattern_is_pythons():
    spaces = "".join(chr(c) for c in range(0x110000) if chr(c).isspace())
    listed = {c for c in spaces if not _PATTERN.fullmatch(c)}
    assert listed == set(spaces), "a character str.isspace calls whitespace is missing from QUESTION_PATTERN"


@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=30)
       | st.text(alphabet=" \t\n\r\x0b\x0c\x00\x07\x1c\x7f\x85\xa0\u2003\u3000\u200bab😀", max_size=6))
@hsettings(max_examples=400, deadline=None)
def test_the_schema_pattern_accepts_exactly_what_the_server_accepts(text):
    assert bool(_PATTERN.fullmatch(text)) == _accepted(text), repr(text)
