"""The fault campaign (`accs-lsp bench faults`): its reference document, its framing reader,
that it can report each kind of failure (against a fake server that commits them), and a
quick run of the cheap classes against the real server."""

from __future__ import annotations

import hashlib
import json
import random
import re
import sys
import textwrap
from pathlib import Path

import pytest

from accs_lsp.bench import faults
from accs_lsp.bench.faults import FrameReader, Reference, frame, state_difference

SUMMARY = re.compile(r"^faults: inputs (\d+), crashes (\d+), unanswered (\d+), lost (\d+), desyncs (\d+), stale (\d+) \((\d+) s\)$")


def edit(reference: Reference, start: tuple[int, int], end: tuple[int, int], text: str, version: int | None = None) -> Reference:
    change = {"range": {"start": {"line": start[0], "character": start[1]}, "end": {"line": end[0], "character": end[1]}}, "text": text}
    reference.apply([change], reference.version + 1 if version is None else version)
    return reference


# -- the reference document --------------------------------------------------------------------


def test_ascii_insert_and_replace():
    reference = edit(Reference("abc\ndef", 1), (1, 1), (1, 2), "X")
    assert reference.text == "abc\ndXf" and reference.version == 2 and reference.line_count == 2
    assert edit(reference, (0, 0), (0, 0), "> ").text == "> abc\ndXf"


def test_crlf_ends_lines_and_a_character_past_the_end_stops_before_it():
    reference = Reference("a\r\nb", 1)
    assert reference.line_count == 2 and reference.lines() == ["a", "b"]
    assert edit(reference, (0, 5), (0, 5), "X").text == "aX\r\nb"


def test_a_lone_cr_ends_a_line():
    reference = Reference("a\rb\nc", 1)
    assert reference.line_count == 3
    assert edit(reference, (1, 0), (1, 1), "B").text == "a\rB\nc"


def test_joining_cr_and_lf_makes_one_line_break():
    reference = edit(Reference("a\rb", 1), (1, 0), (1, 0), "\n")
    assert reference.text == "a\r\nb" and reference.line_count == 2


def test_other_unicode_breaks_are_not_lsp_line_ends():
    assert Reference("a\x0cb\u2028c\x85d", 1).line_count == 1


def test_positions_count_utf16_units():
    reference = edit(Reference("😀x\né", 1), (0, 2), (0, 2), "Y")
    assert reference.text == "😀Yx\né"
    assert edit(reference, (0, 3), (0, 4), "").text == "😀Y\né"
    assert edit(reference, (1, 1), (1, 1), "!").text == "😀Y\né!"


def test_clamping_and_a_range_reaching_past_the_line_end():
    reference = edit(Reference("ab\ncd", 1), (0, 1), (0, 99), "")
    assert reference.text == "a\ncd"
    assert edit(reference, (0, 2**31 - 1), (1, 0), "").text == "acd"


def test_a_line_past_the_end_closes_the_document():
    reference = edit(Reference("ab\ncd", 3), (2, 0), (2, 0), "x")
    assert not reference.open
    assert reference.state("file:///x.py") == {"uri": "file:///x.py", "open": False}
    edit(reference, (0, 0), (0, 0), "y")
    assert not reference.open


def test_lone_surrogates_become_replacement_characters_but_a_pair_over_json_is_one_character():
    assert Reference("a\ud800b", 1).text == "a\ufffdb"
    assert edit(Reference("ab", 1), (0, 1), (0, 1), "\udfff").text == "a\ufffdb"
    assert Reference("\ud83d\ude00", 1).text == "😀"  # JSON's "\ud83d\ude00" is one emoji
    assert faults.encode("\ud800") == b'"\\ud800"'


def test_a_full_replacement_and_the_state():
    reference = Reference("old", 1)
    reference.apply([{"text": "new\r\ntext\r"}], 4)
    text = "new\r\ntext\r"
    expected = {"uri": "u", "open": True, "version": 4, "lineCount": 3, "sha256": hashlib.sha256(text.encode()).hexdigest()}
    assert reference.state("u") == expected
    assert state_difference(expected, dict(expected)) is None
    assert state_difference(expected, {**expected, "lineCount": 2}) == "lineCount: server 2, reference 3"
    assert state_difference({"uri": "u", "open": False}, expected) is not None


def test_random_edits_keep_the_reference_consistent_with_itself():
    rng = random.Random(7)
    for _ in range(50):
        reference = Reference(faults.random_text(rng, 30), 0)
        for message in faults.random_edits(rng, reference, "u", past_end=0.05):
            assert message["params"]["textDocument"]["version"] >= 1
        if reference.open:
            assert not faults.LONE_SURROGATE.search(reference.text)
            assert reference.line_count == len(re.split(r"\r\n|\r|\n", reference.text))


# -- framing -------------------------------------------------------------------------------------


def test_frame_reader_handles_split_reads():
    messages = [{"jsonrpc": "2.0", "id": 1, "result": {"text": "é😀"}}, {"jsonrpc": "2.0", "method": "m", "params": [1]}]
    stream = b"".join(frame(json.dumps(message).encode()) for message in messages)
    for size in (1, 2, 3, 7, 64, len(stream)):
        reader = FrameReader()
        got = [m for start in range(0, len(stream), size) for m in reader.feed(stream[start : start + size])]
        assert got == messages, size


def test_frame_reader_skips_what_it_cannot_read_and_takes_other_headers():
    reader = FrameReader()
    data = b"Content-Type: x\r\n\r\n" + frame(b"not json") + b"Content-Type: a\r\ncontent-length: 2\r\n\r\n{}"
    assert reader.feed(data) == [{}]
    assert len(reader.garbage) == 2


# -- each kind can be reported ------------------------------------------------------------------

# A server that commits every fault: it dies on a frame it cannot parse, answers invalid
# requests with results, answers everything before initialize, never answers shutdown,
# exits 0 without shutdown, reports a wrong document state, completes closed documents,
# and keeps 200 MB for each large document it saw.
FAKE_SERVER = textwrap.dedent(
    r'''
    import json, sys
    kept = []
    def send(message):
        body = json.dumps(message).encode()
        sys.stdout.buffer.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        sys.stdout.buffer.flush()
    while True:
        length = None
        while True:
            line = sys.stdin.buffer.readline()
            if not line:
                sys.exit(0)
            if line == b"\r\n":
                break
            name, _, value = line.partition(b":")
            length = int(value)  # dies on a header it does not expect
        message = json.loads(sys.stdin.buffer.read(length))
        method, params = message.get("method"), message.get("params")
        if method == "exit":
            sys.exit(0)
        if method == "initialized":
            send({"jsonrpc": "2.0", "method": "accs/status", "params": {"state": "ready"}})
        if method == "textDocument/didOpen" and len(params["textDocument"]["text"]) > 1 << 20:
            kept.append(b"x" * (200 << 20))
        if "id" not in message or method == "shutdown":
            continue
        if method == "accs/ping":
            send({"jsonrpc": "2.0", "id": message["id"], "error": {"code": -32601, "message": "no"}})
        elif method == "accs/documentState":
            send({"jsonrpc": "2.0", "id": message["id"], "result": {"open": True, "version": 0, "lineCount": 1, "sha256": "0"}})
        else:
            send({"jsonrpc": "2.0", "id": message["id"], "result": {"capabilities": {}, "items": [{"insertText": "x"}]}})
    '''
)


@pytest.fixture
def fake_campaign(tmp_path: Path) -> faults.Campaign:
    script = tmp_path / "fake_server.py"
    script.write_text(FAKE_SERVER)
    return faults.Campaign(quick=True, command=(sys.executable, str(script)), startup_s=10, sentinel_s=1, request_s=1, completion_s=5, grace_s=0.2)


def test_each_kind_of_failure_is_reported(fake_campaign: faults.Campaign):
    text, status = faults.run(classes="frames,params,lifecycle,edits,stale,documents", campaign=fake_campaign)
    summary = SUMMARY.match(text.splitlines()[0])
    assert summary, text
    inputs, crashes, unanswered, lost, desyncs, stale, _ = map(int, summary.groups())
    assert inputs > 0 and status == 1
    assert crashes and unanswered and lost and desyncs and stale, text
    assert "exit without shutdown: exit status 0, expected 1" in text
    assert re.search(r"^  memory +documents +5 MB document opened and closed: resident memory", text, re.MULTILINE), text
    assert not fake_campaign.clients


# -- the real server, cheap classes ---------------------------------------------------------------


def test_quick_campaign_against_the_real_server():
    """The server holds: every count zero on the cheap classes and on edits against the
    reference document (the full campaign, `accs-lsp bench faults`, plays all ten)."""
    text, status = faults.run(seed=0, quick=True, classes=["frames", "params", "lifecycle", "edits", "stale"])
    lines = text.splitlines()
    summary = SUMMARY.match(lines[0])
    assert summary, text
    inputs, crashes, unanswered, lost, desyncs, stale, _ = map(int, summary.groups())
    assert inputs > 0
    failures = crashes + unanswered + lost + desyncs + stale
    assert len(lines) - 1 == failures and status == (1 if failures else 0), text
    assert all(re.match(r"^  (crash|unanswered|lost|desync|stale|memory) +(frames|params|lifecycle|edits|stale) +\S", line) for line in lines[1:]), text
    assert failures == 0 and status == 0, text


def test_unknown_classes_are_refused():
    with pytest.raises(ValueError, match="unknown fault classes: nope"):
        faults.parse_classes("frames,nope")
