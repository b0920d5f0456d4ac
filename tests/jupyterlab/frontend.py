"""A real JupyterLab from the venv, driven by Playwright in Debian's chromium.

:class:`JupyterLabServer` starts ``jupyter lab`` on a free loopback port with its own
config, runtime, data and settings directories (nothing shared with another worktree
or a learner's own JupyterLab), serving a *copy* of the chapters, so that autosave never
touches ``notebooks/``. :class:`NotebookPage` is one opened notebook: Run All, wait
until every cell has run, read the outputs the way a learner sees them.

JupyterLab draws ``image/svg+xml`` as an ``<img>`` with a data URI; the tutorial's
diagram views do the same inside their scroll container. :meth:`NotebookPage.svgs`
decodes them back to SVG text, so a test reads the picture the learner sees.
"""

from __future__ import annotations

import base64
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
OUTPUT = ROOT / "test-output" / "jupyterlab"
JUPYTER = Path(sys.executable).parent / "jupyter"

#: What a learner's screen looks like in the issue: 1280x1000, file browser open.
VIEWPORT = {"width": 1280, "height": 1000}

#: User settings for the run: no news or update checks (no network here), no autosave
#: surprises, and the notebook keeps every cell in the DOM (content-visibility).
SETTINGS: dict[str, dict[str, Any]] = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {
        "windowingMode": "contentVisibility"
    },
}

OVERFLOW_JS = """() => {
    const root = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
    const bad = [];
    const scroller = (el, stop) => {
        for (let e = el; e && e !== stop; e = e.parentElement) {
            const s = getComputedStyle(e);
            if (['auto', 'scroll'].includes(s.overflowX)) return e;
        }
        return null;
    };
    for (const area of root.querySelectorAll('.jp-Cell-outputArea')) {
        const column = area.getBoundingClientRect();
        const inside = r => r.right <= column.right + 1 && r.left >= column.left - 1;
        for (const el of area.querySelectorAll('img, svg, table, pre, .widget-box')) {
            const r = el.getBoundingClientRect();
            if (r.width === 0 || inside(r)) continue;
            const picture = el.tagName === 'IMG' || el.tagName === 'svg';
            // A picture sits in a diagram box, or (the trace inspector's diagram) in a
            // scroll container of its own that fits the column.
            const box = (picture && el.closest('.tdg-box')) || scroller(el.parentElement, area);
            if (box && inside(box.getBoundingClientRect())) continue;
            const cell = el.closest('.jp-Cell');
            const index = [...root.querySelectorAll('.jp-Cell')].indexOf(cell);
            bad.push(`cell ${index}: ${el.tagName} ${Math.round(r.width)} px wide in a `
                + `${Math.round(column.width)} px column`
                + (picture ? ' outside a diagram box' : ' without a scroll container'));
        }
    }
    return bad;
}"""

URL_LINE = re.compile(r"(http://127\.0\.0\.1:\d+/lab)\b")


class JupyterLabServer:
    """``jupyter lab`` on 127.0.0.1, port 0, token off, in a private temporary world."""

    def __init__(
        self, notebooks: Path = NOTEBOOKS, frontend: str = "lab", jupyter: Path = JUPYTER
    ) -> None:
        self.frontend = frontend
        self.jupyter = jupyter
        self.dir = Path(tempfile.mkdtemp(prefix="tutorial-jupyterlab-"))
        self.root = self.dir / "notebooks"
        shutil.copytree(notebooks, self.root, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""
        self.log: list[str] = []

    def start(self, timeout: float = 60) -> JupyterLabServer:
        settings = self.dir / "settings"
        for name, values in SETTINGS.items():
            path = settings / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(values))
        env = {
            **os.environ,
            "JUPYTER_CONFIG_DIR": str(self.dir / "config"),
            "JUPYTER_RUNTIME_DIR": str(self.dir / "runtime"),
            "JUPYTER_DATA_DIR": str(self.dir / "data"),
            "IPYTHONDIR": str(self.dir / "ipython"),
            "JUPYTER_PLATFORM_DIRS": "1",
            "PYDEVD_DISABLE_FILE_VALIDATION": "1",
        }
        command = [
            str(self.jupyter),
            self.frontend,
            "--no-browser",
            "--ServerApp.ip=127.0.0.1",
            "--ServerApp.port=0",
            "--ServerApp.port_retries=0",
            "--IdentityProvider.token=",
            "--ServerApp.password=",
            f"--ServerApp.root_dir={self.root}",
            "--ServerApp.open_browser=False",
            "--ServerApp.allow_root=True",
            f"--LabServerApp.user_settings_dir={settings}",
            f"--LabServerApp.workspaces_dir={self.dir / 'workspaces'}",
        ]
        if self.frontend == "lab":
            command += [
                "--LabApp.expose_app_in_browser=True",
                "--LabApp.extension_manager=readonly",
            ]
        self.proc = subprocess.Popen(
            command,
            env=env,
            cwd=self.root,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        found: queue.Queue[str] = queue.Queue()

        def read() -> None:
            assert self.proc is not None and self.proc.stderr is not None
            for line in self.proc.stderr:
                self.log.append(line)
                match = URL_LINE.search(line.replace("/tree", "/lab"))
                if match:
                    found.put(match.group(1).removesuffix("/lab"))
            found.put("")

        threading.Thread(target=read, daemon=True).start()
        try:
            self.url = found.get(timeout=timeout)
        except queue.Empty:
            self.stop()
            raise RuntimeError("jupyter lab did not print its URL:\n" + "".join(self.log)) from None
        if not self.url:
            raise RuntimeError("jupyter lab exited:\n" + "".join(self.log))
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)

    def notebook_url(self, name: str) -> str:
        return f"{self.url}/{'lab' if self.frontend == 'lab' else 'notebooks'}/tree/{name}"

    def __enter__(self) -> JupyterLabServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def decode_data_uri(src: str) -> str:
    """The SVG text inside an ``<img src="data:image/svg+xml...">``."""
    head, _, body = src.partition(",")
    if ";base64" in head:
        return base64.b64decode(body).decode("utf-8")
    return urllib.parse.unquote(body)


@dataclass
class NotebookPage:
    """One notebook open in JupyterLab (one page, one kernel)."""

    page: Any
    name: str
    console_errors: list[str] = field(default_factory=list)
    seconds: float = 0.0  # how long Run All took
    _listener: Any = None

    @property
    def stem(self) -> str:
        return Path(self.name).stem

    def command(self, name: str, args: dict[str, Any] | None = None) -> Any:
        return self.page.evaluate(
            "async ([name, args]) => { await window.jupyterapp.commands.execute(name, args); }",
            [name, args or {}],
        )

    def wait_kernel_idle(self, timeout_ms: int = 60_000) -> None:
        self.page.wait_for_function(
            """() => {
                const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
                const k = w && w.sessionContext && w.sessionContext.session
                    && w.sessionContext.session.kernel;
                return !!k && k.status === 'idle';
            }""",
            timeout=timeout_ms,
        )

    def run_all(self, timeout_ms: int = 120_000) -> float:
        """Run All from the Run menu's command; seconds until every cell has run."""
        self.wait_kernel_idle()
        started = time.monotonic()
        self.command("notebook:run-all-cells")
        self.wait_all_ran(timeout_ms)
        return time.monotonic() - started

    def wait_all_ran(self, timeout_ms: int = 120_000) -> None:
        self.page.wait_for_function(
            """() => {
                const prompts = [...document.querySelectorAll(
                    '.jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell .jp-InputArea-prompt')];
                if (prompts.length === 0) return false;
                return prompts.every(p => /\\[\\d+\\]/.test(p.textContent));
            }""",
            timeout=timeout_ms,
        )
        self.wait_kernel_idle(timeout_ms)

    def cells(self) -> Any:
        return self.page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell")

    def code_cells(self) -> Any:
        return self.page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell")

    def errors(self) -> list[str]:
        """Error and stderr outputs, and widgets that failed to display."""
        return self.page.evaluate(
            """() => {
                const root = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
                const found = [];
                for (const el of root.querySelectorAll(
                    '[data-mime-type="application/vnd.jupyter.stderr"],'
                    + ' [data-mime-type="application/vnd.jupyter.error"]'))
                    found.push(el.innerText.slice(0, 2000));
                for (const el of root.querySelectorAll('.jp-OutputArea-output'))
                    if (/Error displaying widget/.test(el.innerText))
                        found.push(el.innerText.slice(0, 500));
                return found;
            }"""
        )

    def overflowing(self) -> list[str]:
        """Outputs wider than their column with no way to see all of them: a picture
        must sit in the tutorial's diagram box (scroll at 100 %, or fit), anything else
        in a scroll container that fits the column."""
        return self.page.evaluate(OVERFLOW_JS)  # type: ignore[no-any-return]

    def output_of(self, cell_index: int) -> Any:
        return self.code_cells().nth(cell_index).locator(".jp-Cell-outputArea")

    def svgs(self, scope: Any) -> list[str]:
        """Every SVG shown inside ``scope`` (a locator), decoded from ``<img>`` data URIs."""
        sources = scope.locator("img[src^='data:image/svg+xml']").evaluate_all(
            "els => els.map(e => e.getAttribute('src'))"
        )
        inline = scope.locator("svg").evaluate_all("els => els.map(e => e.outerHTML)")
        return [decode_data_uri(s) for s in sources] + [s for s in inline if "<g" in s]

    def shot(self, name: str) -> Path:
        OUTPUT.mkdir(parents=True, exist_ok=True)
        path = OUTPUT / name
        self.page.screenshot(path=str(path))
        return path


def open_lab(context: Any, lab: JupyterLabServer) -> Any:
    """One JupyterLab page (fresh workspace: the file browser open, no tabs)."""
    page = context.new_page()
    page.goto(f"{lab.url}/lab?reset", wait_until="domcontentloaded")
    page.wait_for_function("() => !!window.jupyterapp && window.jupyterapp.started !== undefined")
    page.evaluate("() => window.jupyterapp.started")
    page.locator(".jp-DirListing-item").first.wait_for(timeout=60_000)
    return page


def open_notebook(page: Any, name: str) -> NotebookPage:
    """Open ``name`` in the page's JupyterLab (its kernel starts) and wait for its cells."""
    nb = NotebookPage(page, name)

    def on_console(message: Any) -> None:
        if message.type == "error":
            nb.console_errors.append(message.text)

    nb._listener = on_console
    page.on("console", on_console)
    page.evaluate(
        "async (path) => { await window.jupyterapp.commands.execute('docmanager:open', {path}); }",
        name,
    )
    page.wait_for_function(
        """(name) => {
            const w = window.jupyterapp.shell.currentWidget;
            return !!w && !!w.context && w.context.path === name
                && w.node.querySelector('.jp-Cell') !== null;
        }""",
        arg=name,
        timeout=60_000,
    )
    return nb


def close_notebook(nb: NotebookPage) -> None:
    """Shut the kernel down and close the tab, discarding the edits the test made."""
    try:
        nb.page.evaluate(
            """async () => {
                const w = window.jupyterapp.shell.currentWidget;
                await w.sessionContext.shutdown();
                w.context.model.dirty = false;
                w.dispose();
            }"""
        )
    finally:
        nb.page.remove_listener("console", nb._listener)


def chapters() -> Iterator[str]:
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        yield path.name
