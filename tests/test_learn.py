"""The project store: real SQLite, real tree-sitter, a throwaway cache under tmp_path."""

from __future__ import annotations

import io
import logging
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from accs_lsp.learn import ProjectStore, Style, forget, nearest_learned_root, stderr_progress_bar, store_path
from accs_lsp.learn.miner import Miner
from accs_lsp.learn.snippets import identifier_parts, search_tokens
from accs_lsp.learn.store import FEEDBACK_HALF_LIFE_S

SHOP = {
    "shop/cart.py": """\
        import numpy as np
        import os.path
        from collections import OrderedDict as OD


        class Cart:
          def __init__(self, owner):
            self.items = OD()
            self.owner = owner

          def add_item(self, name, price):
            self.items[name] = np.array([price])
            return os.path.join(self.owner, 'cart')
        """,
    "shop/checkout.py": """\
        import numpy as np


        def checkout_total(cart: Cart, discount):
          total = np.sum(list(cart.items.values()))
          cart.add_item('fee', 1)
          cart.add_item('tax', 2)
          return total - discount
        """,
    "shop/broken.py": "def half_written(x:\n  return x.strip(\n",
    ".venv/lib/hidden_dependency.py": "venv_only_name = 1\n",
    "build/generated.py": "build_only_name = 1\n",
    "node_modules/pkg/x.py": "node_only_name = 1\n",
    ".hidden/secret.py": "hidden_only_name = 1\n",
    "notes.txt": "not python\n",
}


def write_tree(root: Path, files: dict[str, str]) -> None:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


@pytest.fixture
def project(tmp_path: Path, cache: Path) -> Path:
    root = tmp_path / "project"
    write_tree(root, SHOP)
    (root / "huge.py").write_text("huge_only_name = 1\n" * 60_000)
    return root


@pytest.fixture
def store(project: Path):
    opened = ProjectStore.open(project)
    assert opened is not None
    yield opened
    opened.close()


def test_store_path_is_under_the_cache_and_per_root(project: Path, cache: Path, tmp_path: Path) -> None:
    path = store_path(project)
    assert path.parent == cache / "accs-lsp" / "projects"
    assert path.name.endswith("-project.sqlite")
    assert store_path(project / ".." / "project") == path
    assert store_path(tmp_path / "other" / "project") != path


def test_mining_gives_identifier_attribute_alias_and_style_facts(store: ProjectStore) -> None:
    report = store.learn()
    assert (report.files_seen, report.files_read, report.files_removed) == (3, 3, 0)
    weights = store.identifier_weights()
    assert weights["np"] == 4 and weights["cart"] == 4
    assert list(weights) == sorted(weights, key=lambda name: -weights[name])
    assert not {"venv_only_name", "build_only_name", "node_only_name", "hidden_only_name", "huge_only_name"} & set(weights)
    assert not {"def", "return", "import", "class"} & set(weights)
    assert "half_written" in weights, "a file that does not parse is still mined"
    assert set(store.attribute_weights("self")) == {"items", "owner"}
    assert store.attribute_weights("np") == {"array": 1.0, "sum": 1.0}
    assert store.attribute_weights("os.path") == {"join": 1.0}
    assert store.attribute_weights("cart") == {"add_item": 2.0, "items": 1.0}
    assert store.attribute_weights("Cart") == {"items": 3.0, "add_item": 2.0, "owner": 2.0}, "self in Cart, cart: Cart"
    assert store.import_aliases() == {"numpy": "np", "collections.OrderedDict": "OD"}
    assert store.style() == Style(quote="'", indent="  ")
    assert store.call_patterns("cart.add_item") == {2: 2}


def test_miner_details() -> None:
    facts = Miner().mine(
        b'import json\nfrom . import util as u\ns = "a" + \'b\' + """doc""" + f"{x}"\n'
        b"def f(x: Optional[Node] = None, *rest):\n\treturn g(x, *rest, key=1) + g(y for y in x)\n"
    )
    assert (facts.double_quotes, facts.single_quotes) == (2, 1), "triple-quoted strings are not counted"
    assert facts.indents == {"\t": 1}
    assert facts.aliases == {("json", "json"): 1, (".util", "u"): 1}
    assert facts.calls == {("g", 3): 1, ("g", 1): 1}
    assert facts.snippets == [(4, "def f(x: Optional[Node] = None, *rest):\n\treturn g(x, *rest, key=1) + g(y for y in x)")]
    assert identifier_parts("parseHTTPResponse_v2") == ["parse", "http", "response", "v2"]
    assert search_tokens("get_url(x)") == ["get_url", "get", "url"]


def test_long_functions_are_chunked() -> None:
    body = "".join(f"    step_{i} = {i}\n" for i in range(100))
    facts = Miner().mine(f"def long():\n{body}".encode())
    assert [start for start, _ in facts.snippets] == [1, 41, 81]
    assert all(len(text.splitlines()) <= 40 for _, text in facts.snippets)


def test_learning_is_incremental(store: ProjectStore, project: Path) -> None:
    store.learn()
    assert store.learn().files_read == 0
    cart = project / "shop/cart.py"
    cart.write_text(cart.read_text() + "\nextra_name = 1\n")
    report = store.learn()
    assert (report.files_read, report.files_removed) == (1, 0)
    assert store.identifier_weights()["extra_name"] == 1
    (project / "shop/checkout.py").unlink()
    report = store.learn()
    assert (report.files_seen, report.files_read, report.files_removed) == (2, 0, 1)
    weights = store.identifier_weights()
    assert "checkout_total" not in weights and weights["np"] == 2
    assert store.attribute_weights("cart") == {}


def test_learning_given_paths_touches_only_those(store: ProjectStore, project: Path) -> None:
    store.learn()
    new = project / "shop/new.py"
    new.write_text("fresh_name = 1\n")
    (project / "shop/cart.py").write_text("replaced_name = 1\n")
    report = store.learn([new])
    assert (report.files_seen, report.files_read, report.files_removed) == (1, 1, 0)
    weights = store.identifier_weights()
    assert "fresh_name" in weights and "replaced_name" not in weights
    new.unlink()
    assert store.learn([new]).files_removed == 1
    assert store.learn([project / ".venv/lib/hidden_dependency.py"]).files_read == 0
    assert store.learn([project / "shop"]).files_read == 1


def test_a_killed_writer_leaves_a_consistent_store(project: Path) -> None:
    big = project.parent / "big"
    count = 300
    for i in range(count):
        write_tree(big, {f"pkg{i % 10}/module_{i}.py": f"def function_{i}(shared_name):\n    return shared_name + {i}\n"})
    child = textwrap.dedent(
        """\
        import sys, time
        from pathlib import Path
        from accs_lsp.learn import ProjectStore

        def progress(done, total, path):
            print(done, flush=True)
            time.sleep(0.004)

        ProjectStore.open(Path(sys.argv[1])).learn(progress=progress)
        print("finished", flush=True)
        """
    )
    writer = subprocess.Popen([sys.executable, "-c", child, str(big)], stdout=subprocess.PIPE, text=True)
    assert writer.stdout is not None
    line = ""
    for line in writer.stdout:
        if line.strip() == "finished" or int(line) >= 100:
            break
    writer.send_signal(signal.SIGKILL)
    writer.wait(timeout=10)
    assert line.strip() != "finished", "the writer ended before it could be killed"

    store = ProjectStore.open(big)
    assert store is not None
    report = store.learn()
    assert 0 < report.files_read <= count - 32, "batches committed before the kill are kept"
    assert store.identifier_weights()["shared_name"] == 2 * count
    assert len(store.similar_snippets("function_7(shared_name)", limit=count)) == count
    store.close()
    db = sqlite3.connect(store_path(big))
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    mismatched = db.execute(
        """SELECT count(*) FROM (SELECT name, sum(count) AS total FROM identifiers GROUP BY name) AS summed
           LEFT JOIN identifier_totals AS kept USING (name) WHERE kept.count IS NOT summed.total"""
    ).fetchone()[0]
    assert mismatched == 0
    assert db.execute("SELECT count(*) FROM snippet_index").fetchone() == db.execute("SELECT count(*) FROM snippets").fetchone()
    db.close()


@pytest.mark.parametrize("damage", ["garbage", "damaged pages"])
def test_a_corrupt_store_is_moved_aside_and_rebuilt(project: Path, damage: str, caplog: pytest.LogCaptureFixture) -> None:
    path = store_path(project)
    if damage == "garbage":
        path.parent.mkdir(parents=True)
        path.write_bytes(os.urandom(8192))
    else:
        learned = ProjectStore.open(project)
        assert learned is not None
        learned.learn()
        learned.close()
        with path.open("r+b") as file:
            file.seek(2 * 4096)
            file.write(os.urandom(3 * 4096))
    with caplog.at_level(logging.WARNING):
        store = ProjectStore.open(project)
    assert store is not None
    assert [record.levelno for record in caplog.records] == [logging.WARNING]
    assert "unusable" in caplog.text
    assert path.with_name(path.name + ".corrupt").exists()
    assert store.learn().files_read == 3
    assert store.identifier_weights()["np"] == 4
    store.close()


def test_a_store_of_another_schema_version_is_rebuilt(project: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = store_path(project)
    path.parent.mkdir(parents=True)
    old = sqlite3.connect(path)
    old.executescript("CREATE TABLE files(path TEXT); PRAGMA user_version = 99;")
    old.close()
    with caplog.at_level(logging.WARNING):
        store = ProjectStore.open(project)
    assert store is not None and "schema version 99" in caplog.text
    assert store.learn().files_read == 3
    store.close()


def test_a_read_only_cache_dir_gives_no_store(project: Path, cache: Path) -> None:
    """In a process of its own, so that as root it can run without the capabilities that
    let root ignore permissions (setpriv drops them)."""
    cache.mkdir()
    cache.chmod(0o500)
    check = (
        "import logging, sys\n"
        "from pathlib import Path\n"
        "from accs_lsp.learn.store import ProjectStore\n"
        "logging.basicConfig(level=logging.WARNING, format='%(levelname)s %(message)s')\n"
        "sys.exit(0 if ProjectStore.open(Path(sys.argv[1])) is None else 3)\n"
    )
    command = [sys.executable, "-c", check, str(project)]
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        assert setpriv, "as root this test needs setpriv (util-linux) to drop CAP_DAC_OVERRIDE"
        command = [setpriv, "--inh-caps=-all", "--bounding-set=-all", *command]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    finally:
        cache.chmod(0o700)
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("WARNING") == 1, result.stderr


def test_an_uncreatable_cache_dir_gives_no_store(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("ACCS_CACHE_DIR", str(blocker))
    with caplog.at_level(logging.WARNING):
        assert ProjectStore.open(project) is None
    assert [record.levelno for record in caplog.records] == [logging.WARNING]


def test_open_without_create_finds_only_existing_stores(project: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        assert ProjectStore.open(project, create=False) is None
    assert not caplog.records and not store_path(project).exists()


def test_store_files_are_private(store: ProjectStore) -> None:
    store.learn()
    store.record_feedback("np", accepted=True)
    files = [store.path, *(store.path.with_name(store.path.name + suffix) for suffix in ("-wal", "-shm"))]
    assert all(path.exists() for path in files)
    assert {oct(path.stat().st_mode & 0o777) for path in files} == {"0o600"}


def test_feedback_reorders_identifier_weights(store: ProjectStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store, "clock", lambda: 1_000_000.0)
    store.learn()

    def rank(name: str) -> int:
        return list(store.identifier_weights()).index(name)

    assert rank("checkout_total") > rank("np")
    for _ in range(3):
        store.record_feedback("checkout_total(cart, 0)", accepted=True)
    assert rank("checkout_total") < rank("np")
    assert store.identifier_weights()["checkout_total"] == 10, "1 occurrence, three acceptances"
    store.record_feedback("np.sum(x)", accepted=False)
    assert store.identifier_weights()["np"] == 3, "4 occurrences, one dismissal"
    store.record_feedback("brand_new_name", accepted=True)
    assert store.identifier_weights()["brand_new_name"] > 0
    monkeypatch.setattr(store, "clock", lambda: 1_000_000.0 + FEEDBACK_HALF_LIFE_S)
    assert store.identifier_weights()["checkout_total"] == pytest.approx(5.5), "feedback halves, the count stays"
    assert store.identifier_weights()["np"] == pytest.approx(3.5)


def test_similar_snippets_come_from_other_files(store: ProjectStore, project: Path) -> None:
    store.learn()
    query = "def pay(cart):\n    cart.add_item('x', 1)\n    total = np.sum("
    found = store.similar_snippets(query, limit=3)
    assert [snippet.path for snippet in found] == ["shop/checkout.py", "shop/cart.py"]
    assert found[0].score > found[1].score
    for excluded in ("shop/checkout.py", str(project / "shop/checkout.py")):
        others = store.similar_snippets("checkout_total(cart, discount)", exclude_path=excluded)
        assert others and all(snippet.path != "shop/checkout.py" for snippet in others)
    best = store.similar_snippets("checkout_total(cart, discount)", limit=1)[0]
    assert (best.path, best.start_line) == ("shop/checkout.py", 4)
    assert best.text.startswith("def checkout_total(cart: Cart, discount):") and best.score > 0
    assert store.similar_snippets("") == [] and store.similar_snippets("x = (") == []


def test_reset_and_forget(store: ProjectStore, project: Path) -> None:
    store.learn()
    store.reset()
    assert store.identifier_weights() == {}
    assert store.learn().files_read == 3
    store.close()
    assert forget(project) is True
    assert not store_path(project).exists()
    assert forget(project) is False


def test_nearest_learned_root(store: ProjectStore, project: Path) -> None:
    assert nearest_learned_root(project / "shop" / "cart.py") == project
    assert nearest_learned_root(project / "shop") == project
    assert nearest_learned_root(project.parent) is None


def test_a_locked_store_skips_instead_of_raising(
    project: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(ProjectStore, "BUSY_TIMEOUT_S", 0.1)
    store = ProjectStore.open(project)
    assert store is not None
    other = sqlite3.connect(store.path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    with caplog.at_level(logging.WARNING):
        store.record_feedback("np", accepted=True)
        store.record_feedback("np", accepted=True)
        report = store.learn()
    assert len(caplog.records) == 2, "one warning per kind of skipped operation"
    assert report.files_read == 3 and store.identifier_weights() == {}
    other.execute("ROLLBACK")
    other.close()
    assert store.learn().files_read == 3
    assert store.identifier_weights()["np"] == 4
    store.close()


def test_reads_while_learning_in_another_thread(store: ProjectStore) -> None:
    errors: list[BaseException] = []

    def learn() -> None:
        try:
            store.learn()
        except BaseException as error:
            errors.append(error)

    worker = threading.Thread(target=learn)
    worker.start()
    while worker.is_alive():
        store.identifier_weights()
        store.similar_snippets("cart.add_item")
    worker.join()
    assert not errors and store.identifier_weights()["np"] == 4


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_draws_on_a_terminal_only() -> None:
    piped = io.StringIO()
    bar = stderr_progress_bar(piped)
    for done in range(1, 4):
        bar(done, 3, f"pkg/file_{done}.py")
    assert piped.getvalue() == "[####################] 3/3 pkg/file_3.py\n"
    terminal = Terminal()
    bar = stderr_progress_bar(terminal)
    bar(1, 4, "a.py")
    bar(4, 4, "d.py")
    assert terminal.getvalue().startswith("\r[#####...............] 1/4 a.py")
    assert terminal.getvalue().endswith("\r[####################] 4/4 d.py\x1b[K\n")
