"""Shared harness: a private JupyterLab server driven by Debian's headless Chromium.

Used by the browser tests (tests/browser/test_lab.py through conftest.py) and by
scripts/screenshot_lab.py, which regenerates docs/lab.png for the README.

Nothing here downloads a browser: Playwright is pointed at the system Chromium
(`apt-get install chromium`) with ``executable_path``.

The widget contract the harness relies on (the chapter notebooks and the fixture
notebook tests/browser/fixture_slider.ipynb both follow it):

* ``.labkit-panel``   ipywidgets box holding the fault controls;
* ``.labkit-latency`` its ``IntSlider`` (description ``latency (ms)``);
* ``.labkit-readout`` ``HTML`` whose text contains ``latency <N> ms``;
* ``.labkit-chart``   ``Output`` holding one PNG, redrawn by a background task;
* ``.labkit-stats``   ``HTML`` with ``p50 <N> ms`` (and more);
* kernel-side, an expression per notebook holds the fault setting
  (FAULT_PROBES: ``SERVICE.faults.latency_ms`` in the fixture,
  ``inventory.faults.latency_ms`` in the chapter).

The lab cell is the first code cell whose outputs hold both a ``.labkit-panel``
and a ``.labkit-chart``; every selector is scoped to it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

REPO_ROOT = Path(__file__).resolve().parents[2]
FIXTURE_NOTEBOOK = REPO_ROOT / "tests" / "browser" / "fixture_slider.ipynb"
CHAPTER_NOTEBOOK = REPO_ROOT / "notebooks" / "01_sync.ipynb"
OUTPUT_DIR = REPO_ROOT / "test-output"

# Kernel-side expression holding the latency fault, per notebook (the fixture's
# default; the chapter's service is `inventory`).
FAULT_PROBES = {
    FIXTURE_NOTEBOOK: "SERVICE.faults.latency_ms",
    CHAPTER_NOTEBOOK: "inventory.faults.latency_ms",
}


def fault_probe(notebook: Path) -> str:
    """Kernel expression of the notebook's latency fault (env LABKIT_BROWSER_PROBE wins)."""
    return os.environ.get("LABKIT_BROWSER_PROBE") or FAULT_PROBES.get(
        Path(notebook).resolve(), FAULT_PROBES[FIXTURE_NOTEBOOK])


CHROMIUM_CANDIDATES = ("/usr/bin/chromium",)
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
MISSING_CHROMIUM = "Chromium not installed: apt-get install chromium (CI installs it)"

# Bounded waits (seconds unless noted).
SERVER_START_TIMEOUT = 60
SERVER_STOP_TIMEOUT = 15
PAGE_TIMEOUT_MS = 30_000          # default for every Playwright wait/action
KERNEL_TIMEOUT_MS = 60_000        # kernel start and idle
RUN_ALL_TIMEOUT_MS = 240_000      # Run All Cells of a whole chapter
VIEWPORT = {"width": 1280, "height": 900}

# JupyterLab user settings for a quiet, deterministic lab: no news/update
# fetches (no network here), no extension manager (it queries PyPI), no
# autosave (never write back into the copied notebook), and no notebook
# windowing (every cell stays in the DOM, so locators never miss a cell).
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
    "@jupyterlab/extensionmanager-extension/plugin.jupyterlab-settings": {"enabled": False},
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
}

# Repository entries never mirrored into the server's temporary root.
_NOT_MIRRORED = {".git", ".venv", "test-output", "__pycache__", ".pytest_cache"}


# --------------------------------------------------------------------------- helpers


def find_chromium() -> str | None:
    """Path of Debian's Chromium, or None.

    ``LABKIT_CHROMIUM`` overrides the search (an empty or non-existent path
    means "missing", which is how the skip/CI-failure paths are exercised).
    """
    override = os.environ.get("LABKIT_CHROMIUM")
    if override is not None:
        return override if override and os.access(override, os.X_OK) else None
    for candidate in CHROMIUM_CANDIDATES:
        if os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("chromium")


def running_under_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() == "true"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def output_dir(name: str | None = None) -> Path:
    """test-output/[name]/, created; it ignores itself so git never sees it."""
    OUTPUT_DIR.mkdir(exist_ok=True)
    ignore = OUTPUT_DIR / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# generated by tests/browser/lab.py: screenshots and logs\n*\n")
    path = OUTPUT_DIR / name if name else OUTPUT_DIR
    path.mkdir(parents=True, exist_ok=True)
    return path


def _proc_start_time(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # field 22: starttime


def _descendants(root_pid: int) -> dict[int, str]:
    """pid -> start time of every live descendant of root_pid (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found: dict[int, str] = {}
    stack = [root_pid]
    while stack:
        for child in children.get(stack.pop(), []):
            start = _proc_start_time(child)
            if start is not None and child not in found:
                found[child] = start
                stack.append(child)
    return found


# --------------------------------------------------------------------------- server


@dataclass
class LabServer:
    """A JupyterLab server on 127.0.0.1 serving a temporary copy of one notebook."""

    notebook: Path
    workdir: Path
    log_path: Path
    port: int = field(default_factory=free_port)
    token: str = field(default_factory=lambda: secrets.token_hex(24))
    proc: subprocess.Popen | None = None

    # layout inside workdir
    @property
    def root_dir(self) -> Path:
        return self.workdir / "root"

    @property
    def runtime_dir(self) -> Path:
        return self.workdir / "jupyter-runtime"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def notebook_relpath(self) -> str:
        return self._relpath.as_posix()

    def notebook_url(self) -> str:
        return f"{self.base_url}/lab/tree/{self.notebook_relpath}?token={self.token}"

    # ------------------------------------------------------------------ setup
    def _prepare_root(self) -> None:
        """Mirror the repository: copy the notebook's folder, symlink the rest.

        The notebook's folder is copied (JupyterLab may write to it; autosave is
        off anyway); other top-level entries (data/, labkit/ ...) are symlinked
        so relative paths such as ``../data`` work as in the real repo.
        """
        notebook = self.notebook.resolve()
        try:
            self._relpath = notebook.relative_to(REPO_ROOT)
        except ValueError:  # a notebook outside the repo: serve its folder alone
            self._relpath = Path(notebook.name)
            shutil.copytree(notebook.parent, self.root_dir,
                            ignore=shutil.ignore_patterns(*_NOT_MIRRORED))
            return
        top = self._relpath.parts[0]
        self.root_dir.mkdir(parents=True)
        for entry in REPO_ROOT.iterdir():
            if entry.name in _NOT_MIRRORED or entry.name == top:
                continue
            (self.root_dir / entry.name).symlink_to(entry)
        shutil.copytree(notebook.parent, self.root_dir / self._relpath.parent,
                        ignore=shutil.ignore_patterns(*_NOT_MIRRORED), dirs_exist_ok=True)

    def _strip_outputs(self) -> None:
        """Start from a clean notebook: stored outputs, counts and widget state dropped."""
        import nbformat

        path = self.root_dir / self._relpath
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                cell.outputs = []
                cell.execution_count = None
        nb.metadata.pop("widgets", None)
        nbformat.write(nb, path)

    def _environment(self) -> dict[str, str]:
        env = dict(os.environ)
        private = {
            # private config/data/runtime: nothing from ~/.jupyter leaks in. The
            # venv's share/jupyter (labextensions incl. jupyterlab_widgets,
            # kernelspecs) is still found through sys.prefix, which we keep.
            "JUPYTER_CONFIG_DIR": "jupyter-config",
            "JUPYTER_DATA_DIR": "jupyter-data",
            "JUPYTER_RUNTIME_DIR": "jupyter-runtime",
            "IPYTHONDIR": "ipython",
            "MPLCONFIGDIR": "matplotlib",
            "HOME": "home",
        }
        for var, sub in private.items():
            path = self.workdir / sub
            path.mkdir(parents=True, exist_ok=True)
            env[var] = str(path)
        env["JUPYTER_PLATFORM_DIRS"] = "1"
        env.pop("JUPYTER_PATH", None)
        env.pop("JUPYTER_CONFIG_PATH", None)
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def _write_lab_settings(self) -> Path:
        settings = self.workdir / "lab-user-settings"
        for rel, content in LAB_SETTINGS.items():
            path = settings / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(content, indent=2))
        return settings

    # -------------------------------------------------------------- lifecycle
    def start(self) -> None:
        self._prepare_root()
        self._strip_outputs()
        settings = self._write_lab_settings()
        workspaces = self.workdir / "lab-workspaces"
        workspaces.mkdir()
        cmd = [
            sys.executable, "-m", "jupyter", "lab",
            "--no-browser",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={self.port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={self.root_dir}",
            f"--LabApp.user_settings_dir={settings}",
            f"--LabApp.workspaces_dir={workspaces}",
            "--LabApp.news_url=",
            "--LabApp.extension_manager=readonly",  # the default 'pypi' one polls PyPI
            "--ServerApp.allow_root=True",  # CI and this container run as root
            # safety net should this process die without running `stop`
            "--ServerApp.shutdown_no_activity_timeout=900",
        ]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        self._log.write("$ " + " ".join(cmd).replace(self.token, "<token>") + "\n")
        self._log.flush()
        self.proc = subprocess.Popen(
            cmd, cwd=self.root_dir, env=self._environment(), stdin=subprocess.DEVNULL,
            stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        last_error: object = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"JupyterLab exited with code {self.proc.returncode} before it was ready;"
                    f" log:\n{self.log_tail()}")
            try:
                status = self.api("/api/status", timeout=2)
                if isinstance(status, dict):
                    return
            except (OSError, urllib.error.URLError, ValueError) as exc:
                last_error = exc
            time.sleep(0.25)
        raise TimeoutError(
            f"JupyterLab not ready on {self.base_url} within {SERVER_START_TIMEOUT}s"
            f" (last error: {last_error}); log:\n{self.log_tail()}")

    def stop(self) -> None:
        """Shut everything down: politely, then SIGTERM, then SIGKILL.

        Kernels run in their own sessions (jupyter_client starts them with
        start_new_session), so the server's descendants are recorded first and
        any survivor is killed by pid afterwards.
        """
        proc, self.proc = self.proc, None
        if proc is None:
            return
        try:
            survivors = _descendants(proc.pid)
            if proc.poll() is None:
                with contextlib.suppress(Exception):
                    self.api("/api/shutdown", method="POST", timeout=3)
                try:
                    proc.wait(timeout=SERVER_STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
                        with contextlib.suppress(ProcessLookupError):
                            os.killpg(proc.pid, sig)
                        try:
                            proc.wait(timeout=wait)
                            break
                        except subprocess.TimeoutExpired:
                            continue
            deadline = time.monotonic() + 5
            for pid, started in survivors.items():
                while _proc_start_time(pid) == started and time.monotonic() < deadline:
                    time.sleep(0.1)
                if _proc_start_time(pid) == started:  # same process, still alive
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
        finally:
            with contextlib.suppress(Exception):
                self._log.close()

    # -------------------------------------------------------------------- API
    def api(self, path: str, method: str = "GET", timeout: float = 5) -> object:
        request = urllib.request.Request(
            self.base_url + path, method=method,
            headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read()
        return json.loads(body) if body else None

    def kernel_id(self) -> str:
        """Kernel id of the notebook's session (exactly one is expected)."""
        sessions = [s for s in self.api("/api/sessions")
                    if s.get("path", "").endswith(self._relpath.name) and s.get("kernel")]
        if len(sessions) != 1:
            raise AssertionError(f"expected one kernel session for {self._relpath}, got {sessions}")
        return sessions[0]["kernel"]["id"]

    def kernel_state(self) -> str | None:
        """execution_state of the notebook's kernel as the server sees it."""
        sessions = [s for s in self.api("/api/sessions")
                    if s.get("path", "").endswith(self._relpath.name) and s.get("kernel")]
        return sessions[0]["kernel"].get("execution_state") if len(sessions) == 1 else None

    def kernel_eval(self, expression: str, timeout: float = 20) -> str:
        """repr() of `expression` evaluated in the notebook's own kernel.

        Uses a second client on the kernel's connection file (the server's
        private runtime dir) and a silent execute with user_expressions: no
        cell is added to the notebook, nothing is typed into an editor, and the
        result travels on the kernel's shell channel, not through the page.
        """
        from jupyter_client import BlockingKernelClient

        connection_file = self.runtime_dir / f"kernel-{self.kernel_id()}.json"
        client = BlockingKernelClient(connection_file=str(connection_file))
        client.load_connection_file()
        client.start_channels()
        try:
            client.wait_for_ready(timeout=timeout)
            msg_id = client.execute("", silent=True, store_history=False,
                                    user_expressions={"value": expression})
            deadline = time.monotonic() + timeout
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"kernel did not evaluate {expression!r} within {timeout}s")
                reply = client.get_shell_msg(timeout=remaining)
                if reply["parent_header"].get("msg_id") == msg_id:
                    break
            result = reply["content"]["user_expressions"]["value"]
            if result.get("status") != "ok":
                raise AssertionError(
                    f"kernel could not evaluate {expression!r}: "
                    f"{result.get('ename')}: {result.get('evalue')}")
            return result["data"]["text/plain"]
        finally:
            client.stop_channels()

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "<no log>"
        return "\n".join(text.splitlines()[-lines:]).replace(self.token, "<token>")


@contextlib.contextmanager
def running_lab(notebook: Path, workdir: Path, log_path: Path) -> Iterator[LabServer]:
    server = LabServer(notebook=Path(notebook), workdir=Path(workdir), log_path=Path(log_path))
    try:
        server.start()
        yield server
    finally:
        server.stop()


# --------------------------------------------------------------------------- browser


@contextlib.contextmanager
def chromium_context(executable: str, user_data_dir: Path) -> Iterator[object]:
    """Playwright persistent context on the system Chromium; always closed."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(user_data_dir),
            executable_path=executable,
            args=CHROMIUM_ARGS,
            headless=True,
            viewport=VIEWPORT,
            timeout=PAGE_TIMEOUT_MS,
        )
        try:
            context.set_default_timeout(PAGE_TIMEOUT_MS)
            yield context
        finally:
            with contextlib.suppress(Exception):
                context.close()


# --------------------------------------------------------------------------- page

LATENCY_RE = re.compile(r"latency\D{0,20}?(-?\d+(?:\.\d+)?)\s*ms", re.IGNORECASE)
P50_RE = re.compile(r"p50\D{0,20}?(-?\d+(?:\.\d+)?)\s*ms", re.IGNORECASE)


def parse_number(pattern: re.Pattern, text: str) -> float | None:
    match = pattern.search(text or "")
    return float(match.group(1)) if match else None


class LabPage:
    """What a person does in JupyterLab, as Playwright calls with bounded waits."""

    # All relative to the lab cell: the first code cell whose outputs show both a
    # fault panel and a live chart (a chapter may have other panels elsewhere).
    PANEL = ".labkit-panel"
    HANDLE = ".labkit-panel .labkit-latency .noUi-handle"
    SLIDER_VALUE = ".labkit-panel .labkit-latency .widget-readout"
    READOUT = ".labkit-readout"
    CHART_IMG = ".labkit-chart img"
    STATS = ".labkit-stats"

    def __init__(self, page, server: LabServer):
        self.page = page
        self.server = server
        self.cell = (page.locator(".jp-Notebook .jp-CodeCell")
                     .filter(has=page.locator(".labkit-panel"))
                     .filter(has=page.locator(".labkit-chart"))
                     .first)

    def _in_cell(self, selector: str):
        return self.cell.locator(selector)

    def open_notebook(self) -> None:
        self.page.goto(self.server.notebook_url(), wait_until="domcontentloaded")
        self.page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=KERNEL_TIMEOUT_MS)
        self.wait_kernel_idle()

    def wait_kernel_idle(self, timeout_ms: int = KERNEL_TIMEOUT_MS) -> None:
        """The notebook's kernel is started, connected and idle.

        Checked on the page (status bar reads "<kernel name> | Idle" and the
        toolbar's execution indicator has data-status="idle"; the indicator
        alone briefly says idle before any kernel is attached) and then on the
        server (/api/sessions: execution_state == "idle").
        """
        self.page.wait_for_function(
            """() => {
                const indicator = document.querySelector(
                    '.jp-NotebookPanel-toolbar .jp-Notebook-ExecutionIndicator');
                const status = [...document.querySelectorAll('.jp-StatusBar-TextItem')]
                    .map(e => e.textContent.trim());
                return indicator && indicator.dataset.status === 'idle' &&
                    status.some(t => /\\|\\s*Idle$/.test(t) && !t.startsWith('No Kernel'));
            }""", timeout=timeout_ms)
        deadline = time.monotonic() + timeout_ms / 1000
        state = None
        while time.monotonic() < deadline:
            state = self.server.kernel_state()
            if state == "idle":
                return
            self.page.wait_for_timeout(250)
        raise TimeoutError(f"kernel not idle on the server after {timeout_ms} ms (state {state!r})")

    def run_all_cells(self, timeout_ms: int = RUN_ALL_TIMEOUT_MS, *,
                      before_last: bool = False) -> None:
        """Run > Run All Cells from the menu bar, then wait until the run is over.

        With `before_last`, Run > Run All Above Selected Cell with the last cell selected
        instead: every chapter ends with `await labkit.shutdown()`, and a learner plays with
        the sliders before running that cell, not after.

        Over means no cell is queued or running ("[*]") and either every
        non-empty code cell (but the last, with `before_last`) has an execution count or the
        run stopped at an error (a cell tagged raises-exception does not stop it, so its error
        output alone is not a failure). Stored outputs were stripped from the
        served copy, so no count predates the run.
        """
        if before_last:
            self.page.locator(".jp-Notebook .jp-Cell").last.click(position={"x": 5, "y": 5})
        else:
            self.page.locator(".jp-Notebook").first.click(position={"x": 5, "y": 5})
        self.page.locator("#jp-MainMenu").get_by_role("menuitem", name="Run", exact=True).click()
        # "Run All Cells" is runmenu:run-all; "Run All Above Selected Cell" notebook:run-all-above
        command = "notebook:run-all-above" if before_last else "runmenu:run-all"
        self.page.locator(f'.lm-Menu-item[data-command="{command}"]').click()
        skipped = 1 if before_last else 0
        state_js = """() => {
            const cells = [...document.querySelectorAll('.jp-Notebook .jp-CodeCell')].filter(
                c => (c.querySelector('.cm-content')?.textContent ?? 'x').trim() !== '');
            const prompts = cells.map(
                c => c.querySelector('.jp-InputArea-prompt')?.textContent ?? '');
            return {
                running: prompts.filter(p => p.includes('*')).length,
                numbered: prompts.filter(p => /\\[\\d+\\]/.test(p)).length,
                total: prompts.length,
                errors: document.querySelectorAll('.jp-Notebook .jp-OutputArea-output'
                    + '[data-mime-type="application/vnd.jupyter.error"]').length,
            };
        }"""
        self.page.wait_for_function(
            f"""() => {{ const s = ({state_js})();
                return s.running === 0 && s.total > 0
                    && (s.numbered === s.total - {skipped} || s.errors > 0); }}""",
            timeout=timeout_ms, polling=250)
        state = self.page.evaluate(state_js)
        if state["numbered"] != state["total"] - skipped:
            errors = self.page.locator('.jp-Notebook .jp-OutputArea-output'
                                       '[data-mime-type="application/vnd.jupyter.error"]')
            raise AssertionError(
                f"Run All stopped after {state['numbered']} of {state['total']} code cells;"
                f" a cell raised:\n" + errors.last.inner_text()[-2000:])

    def wait_panel(self) -> None:
        """Panel, slider handle, readout and a first chart image are on screen."""
        try:
            self.cell.wait_for(state="attached")
        except Exception as exc:
            raise AssertionError(
                "no code cell shows both a .labkit-panel and a .labkit-chart after Run All"
                f" ({self.page.locator('.labkit-panel').count()} panels,"
                f" {self.page.locator('.labkit-chart').count()} charts on the page)") from exc
        self._in_cell(self.HANDLE).wait_for(state="visible")
        self._in_cell(self.READOUT).wait_for(state="visible")
        self._in_cell(self.CHART_IMG).first.wait_for(state="visible", timeout=KERNEL_TIMEOUT_MS)
        self._in_cell(self.PANEL).scroll_into_view_if_needed()

    # ---------------------------------------------------------------- reading
    def readout_text(self) -> str:
        return self._in_cell(self.READOUT).inner_text()

    def readout_latency(self) -> float | None:
        return parse_number(LATENCY_RE, self.readout_text())

    def slider_value(self) -> float:
        """What the slider itself displays (its own readout next to the track)."""
        return float(self._in_cell(self.SLIDER_VALUE).inner_text().strip())

    def chart_src(self) -> str:
        return self._in_cell(self.CHART_IMG).first.get_attribute("src") or ""

    def stats_text(self) -> str:
        return self._in_cell(self.STATS).inner_text()

    def p50(self) -> float | None:
        return parse_number(P50_RE, self.stats_text())

    # ---------------------------------------------------------------- acting
    def move_slider_with_keyboard(self, keys: list[str]) -> None:
        """Click the slider handle (it takes focus) and press keys, like a person."""
        handle = self._in_cell(self.HANDLE)
        handle.click()
        for key in keys:
            handle.press(key)
            self.page.wait_for_timeout(80)

    def collapse_left_sidebar(self) -> None:
        """Give the notebook the width: close the file browser, as a person would."""
        current = self.page.locator(".jp-SideBar.jp-mod-left .lm-TabBar-tab.lm-mod-current")
        if current.count():
            current.first.click()
            self.page.locator("#jp-left-stack").wait_for(state="hidden")
        self._in_cell(self.PANEL).scroll_into_view_if_needed()

    def wait_first_stats(self, timeout: float = 30) -> float | None:
        """The background task has drawn at least once: p50 is a number."""
        return self.poll(self.p50, lambda v: v is not None, timeout)

    def wait_readout_latency(self, expected: float, timeout: float = 20) -> float | None:
        """Readout (rendered from kernel state) shows `expected`; returns what it shows."""
        return self.poll(self.readout_latency, lambda v: v == expected, timeout)

    def wait_chart_redrawn(self, old_src: str, min_p50: float,
                           timeout: float = 45) -> tuple[bool, float | None]:
        """Chart image replaced and p50 at least `min_p50`; returns (replaced, p50)."""
        value = self.poll(lambda: (self.chart_src() != old_src, self.p50()),
                          lambda v: v[0] and v[1] is not None and v[1] >= min_p50, timeout)
        return value

    def screenshot(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(path))
        return path

    def poll(self, probe, done, timeout: float, interval: float = 0.25):
        """Call probe() until done(value) or timeout; return the last value."""
        deadline = time.monotonic() + timeout
        value = probe()
        while not done(value) and time.monotonic() < deadline:
            self.page.wait_for_timeout(int(interval * 1000))
            value = probe()
        return value


@contextlib.contextmanager
def lab_session(notebook: Path, chromium: str, out_dir: Path) -> Iterator[LabPage]:
    """Server + browser + a page with the notebook open; everything torn down after."""
    with tempfile.TemporaryDirectory(prefix="labkit-browser-") as tmp:
        tmp = Path(tmp)
        with running_lab(notebook, tmp / "server", out_dir / "jupyter-server.log") as server:
            with chromium_context(chromium, tmp / "chromium-profile") as context:
                page = context.pages[0] if context.pages else context.new_page()
                lab = LabPage(page, server)
                lab.open_notebook()
                yield lab
