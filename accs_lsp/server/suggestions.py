"""What the editor was shown, and which request is the newest: the server's side of typing into
a suggestion.

- `SuggestionCache` keeps each suggestion with a fingerprint of the document it was computed
  for (digests of the text before and after the cursor). When the user types the start of a
  suggestion, the document is the old one with those characters inserted at the old cursor:
  the text before the old cursor and after the new one are unchanged, and what lies between
  is the start of the suggestion. Then the rest of it is served as it was, with no model
  call. Any other edit (a diverging character, an edit elsewhere) fails the comparison, and
  a settings change clears the cache. Bounded by entries and (estimated) bytes, LRU.
- `LatestOnly` numbers the requests of each (kind, document): a request that is no longer the
  newest answers at once with nothing, and its job on the model thread is skipped.
- `BackgroundSlot` holds the one piece of low-priority model work (a prefetch or a KV-cache
  warm-up) that a real request stops at once.

Everything here runs on the event loop, except `LatestOnly.is_newest` and the stop events,
which the model thread reads.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Coroutine, Hashable

log = logging.getLogger(__name__)

# Entries of the suggestion cache: enough for the suggestions and prefetches of the documents
# a user works on; a byte bound (from memoryLimitMb) applies as well.
MAX_SUGGESTIONS = 256
# What an entry costs besides its text (the entry, its digests, the served completion with its
# layers): an estimate, so that the byte bound errs on the safe side.
ENTRY_OVERHEAD_BYTES = 2048
DIGEST_BYTES = 16


def digest(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=DIGEST_BYTES).digest()


@dataclass(frozen=True)
class Fingerprint:
    """A document and a cursor, without keeping the text: its length and the digests of the
    text before and after the cursor."""

    length: int
    offset: int
    before: bytes
    after: bytes

    @classmethod
    def of(cls, text: str, offset: int) -> "Fingerprint":
        return cls(len(text), offset, digest(text[:offset]), digest(text[offset:]))


@dataclass(frozen=True)
class Suggestion:
    uri: str
    at: Fingerprint
    text: str
    # The settings the suggestion was computed under (a change invalidates it).
    key: Hashable
    # What the server answered with (its Served: id and completion), handed back on a hit.
    payload: Any
    origin: str  # "fresh" (a request's generation) or "prefetch"
    size: int = 0


@dataclass(frozen=True)
class Hit:
    suggestion: Suggestion
    typed: str  # what the user typed since the suggestion was computed
    rest: str  # the rest of the suggestion, to serve as it is
    first: bool = False  # the first time this suggestion is served from the cache

    @property
    def origin(self) -> str:
        return self.suggestion.origin


@dataclass
class CacheCounters:
    lookups: int = 0
    hits: int = 0
    prefetch_hits: int = 0
    stored: int = 0
    evicted: int = 0
    invalidated: int = 0


class SuggestionCache:
    def __init__(self, max_entries: int = MAX_SUGGESTIONS, max_bytes: int = 64 * 2**20) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._entries: OrderedDict[int, Suggestion] = OrderedDict()
        self._numbers = itertools.count(1)
        self._served: set[int] = set()  # entries served from the cache at least once
        self.bytes = 0
        self.counters = CacheCounters()

    def __len__(self) -> int:
        return len(self._entries)

    def put(self, uri: str, at: Fingerprint, text: str, key: Hashable, payload: Any, origin: str = "fresh") -> Suggestion:
        """Keep a suggestion; one for the same document, cursor and settings is replaced."""
        for number, entry in list(self._entries.items()):
            if entry.uri == uri and entry.at == at and entry.key == key:
                self._remove(number)
        size = len(text.encode("utf-8", "surrogatepass")) + len(uri) + ENTRY_OVERHEAD_BYTES
        suggestion = Suggestion(uri, at, text, key, payload, origin, size)
        self._entries[next(self._numbers)] = suggestion
        self.bytes += size
        self.counters.stored += 1
        self._shrink(self.max_entries, self.max_bytes)
        return suggestion

    def lookup(self, uri: str, text: str, offset: int, key: Hashable) -> Hit | None:
        """The suggestion the user is typing into (or is back at), newest first, and its rest.
        At the very cursor a suggestion was computed for, in the same document, it is served
        whole (even when empty: the model would say the same); further on, only while some of
        it is left."""
        self.counters.lookups += 1
        for number in reversed(self._entries):
            entry = self._entries[number]
            if entry.uri != uri or entry.key != key:
                continue
            typed = typed_into(entry, text, offset)
            if typed is None:
                continue
            self._entries.move_to_end(number)
            self.counters.hits += 1
            first = number not in self._served
            self._served.add(number)
            if entry.origin == "prefetch" and first:
                self.counters.prefetch_hits += 1  # a prefetched suggestion shown (once)
            return Hit(entry, typed, entry.text[len(typed) :], first)
        return None

    def contains(self, uri: str, at: Fingerprint, key: Hashable) -> bool:
        return any(entry.uri == uri and entry.at == at and entry.key == key for entry in self._entries.values())

    def drop(self, uri: str) -> None:
        """Forget a document's suggestions (closed)."""
        for number in [number for number, entry in self._entries.items() if entry.uri == uri]:
            self._remove(number)
            self.counters.invalidated += 1

    def clear(self) -> None:
        self.counters.invalidated += len(self._entries)
        self._entries.clear()
        self._served.clear()
        self.bytes = 0

    def resize(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._shrink(self.max_entries, self.max_bytes)

    def shrink_to(self, max_bytes: int) -> int:
        """Evict least recently used entries until at most `max_bytes` remain; bytes freed."""
        before = self.bytes
        self._shrink(self.max_entries, max_bytes)
        return before - self.bytes

    def _shrink(self, max_entries: int, max_bytes: int) -> None:
        while self._entries and (len(self._entries) > max_entries or self.bytes > max_bytes):
            number = next(iter(self._entries))
            self._remove(number)
            self.counters.evicted += 1

    def _remove(self, number: int) -> None:
        entry = self._entries.pop(number)
        self._served.discard(number)
        self.bytes -= entry.size

    def to_json(self) -> dict[str, Any]:
        return {"entries": len(self._entries), "bytes": self.bytes, "maxEntries": self.max_entries, "maxBytes": self.max_bytes}


def typed_into(entry: Suggestion, text: str, offset: int) -> str | None:
    """What was typed into `entry` to give `text` with the cursor at `offset`, or None when
    `text` is not the entry's document with the start of its suggestion typed at its cursor."""
    at = entry.at
    typed_length = offset - at.offset
    if typed_length < 0 or len(text) != at.length + typed_length:
        return None
    if typed_length > 0 and typed_length >= len(entry.text):
        return None  # typed all of it: nothing left to serve (the prefetch answers there)
    typed = text[at.offset : offset]
    if not entry.text.startswith(typed):
        return None
    # Cheap checks first; the digests read the whole document.
    if digest(text[: at.offset]) != at.before or digest(text[offset:]) != at.after:
        return None
    return typed


# -- latest only ----------------------------------------------------------------------------


@dataclass(eq=False)
class Ticket:
    key: str
    number: int
    superseded: "asyncio.Future[None]"


class LatestOnly:
    """The newest request of each key (kind and document). `begin` supersedes the one before:
    its `superseded` future resolves, so it answers at once instead of waiting for the model."""

    def __init__(self) -> None:
        self._newest: dict[str, Ticket] = {}
        self._numbers = itertools.count(1)
        self.superseded = 0

    def begin(self, key: str) -> Ticket:
        previous = self._newest.get(key)
        if previous is not None and not previous.superseded.done():
            previous.superseded.set_result(None)
        ticket = Ticket(key, next(self._numbers), asyncio.get_running_loop().create_future())
        self._newest[key] = ticket
        return ticket

    def is_newest(self, ticket: Ticket) -> bool:
        """Callable from any thread."""
        return self._newest.get(ticket.key) is ticket

    def forget(self, key: str) -> None:
        """Drop a key (its document was closed); a request still waiting answers empty."""
        ticket = self._newest.pop(key, None)
        if ticket is not None and not ticket.superseded.done():
            ticket.superseded.set_result(None)


# -- background work ------------------------------------------------------------------------


@dataclass
class BackgroundCounters:
    started: int = 0
    completed: int = 0
    cancelled: int = 0
    skipped: int = 0


class BackgroundSlot:
    """One low-priority job at a time (a prefetch or a warm-up): a newer one replaces it, and
    `cancel` (a real request) stops it at once: the asyncio task if it is still waiting for
    the editor to be idle, the stop event if its job runs on the model thread."""

    def __init__(self) -> None:
        self.task: asyncio.Task[Any] | None = None
        self.stop = threading.Event()
        self.label: str | None = None
        self.target: Hashable = None
        self.running = False  # its job is on the model thread

    def start(self, label: str, target: Hashable, work: Callable[[threading.Event], "Coroutine[Any, Any, Any]"]) -> None:
        """Replace the current job with `work(stop)`, a coroutine that calls `mark_running(stop)`
        before it hands a job to the model thread, and whose job ends when `stop` is set."""
        self.cancel()
        stop = threading.Event()
        self.stop, self.label, self.target, self.running = stop, label, target, False
        self.task = asyncio.ensure_future(self._guarded(work(stop), stop, label))

    def mark_running(self, stop: threading.Event) -> bool:
        """Its job goes to the model thread: from now on only the stop event ends it. False
        when it was replaced or cancelled meanwhile."""
        if stop is not self.stop or stop.is_set():
            return False
        self.running = True
        return True

    async def _guarded(self, work: "Coroutine[Any, Any, Any]", stop: threading.Event, label: str) -> None:
        try:
            await work
        except asyncio.CancelledError:
            pass
        except Exception:  # background work must never break anything
            log.exception("background %s failed", label)
        finally:
            if stop is self.stop:
                self.running = False
                self.target = None

    def busy_with(self, target: Hashable) -> bool:
        return self.task is not None and not self.task.done() and self.target == target

    def cancel(self) -> bool:
        """Stop the current job; whether there was one."""
        if self.task is None or self.task.done():
            return False
        self.stop.set()
        if not self.running:
            self.task.cancel()
        return True


@dataclass
class SeenIds:
    """A bounded set of ids, oldest forgotten first."""

    limit: int = 4096
    _ids: OrderedDict[str, None] = field(default_factory=OrderedDict)

    def add(self, value: str) -> bool:
        """Whether it was new."""
        if value in self._ids:
            return False
        self._ids[value] = None
        while len(self._ids) > self.limit:
            self._ids.popitem(last=False)
        return True


# -- warming llama.cpp's KV cache -----------------------------------------------------------

WARM_UP_CHUNK_TOKENS = 128
MIN_WARM_UP_TOKENS = 64


def warm_kv_cache(engine: Any, text: str, max_tokens: int, should_stop: Callable[[], bool]) -> int:
    """Evaluate the start of a document's prompt so that the first completion in it reuses
    llama.cpp's KV cache; the tokens evaluated. Runs on the model thread, in chunks, checking
    `should_stop` between them (a real request waits at most one chunk).

    The engine has no prefill-only call, so this lays out the prompt as `PromptBuilder` does
    for a prefix-only model (begin tokens, then the document from its start): any cursor
    whose prompt keeps the document's start reuses it. A fill-in-the-middle prompt begins
    with the text after the cursor, which is not known yet: nothing is warmed then."""
    model = engine.model
    if getattr(engine, "remote", None) is not None or not all(
        hasattr(model, name) for name in ("fim", "prefill", "tokenize", "begin_tokens", "n_ctx")
    ):
        return 0  # decoding happens elsewhere (a remote engine): no KV cache here to warm
    if model.fim is not None:
        log.debug("KV warm-up skipped: a fill-in-the-middle prompt depends on the cursor")
        return 0
    budget = min(engine.context_tokens, model.n_ctx - max_tokens - 8)
    if budget < MIN_WARM_UP_TOKENS or not text.strip():
        return 0
    # A token is rarely shorter than 2 characters of code: 8 per token is ample.
    tokens = (model.begin_tokens() + model.tokenize(text[: 8 * budget]))[:budget]
    if len(tokens) < 2:
        return 0
    evaluated = 0
    for end in [*range(WARM_UP_CHUNK_TOKENS, len(tokens), WARM_UP_CHUNK_TOKENS), len(tokens)]:
        if should_stop():
            break
        evaluated += model.prefill(tokens[:end]).evaluated_tokens
    return evaluated
