"""Runs ONNX models in a real headless Chromium through ONNX Runtime Web.

The web deployment path of issue #14 ("Trax offers easier deployment on ... web"): the model
exported by a framework's documented path is loaded in the browser by onnxruntime-web, the
way a web page would, and its outputs come back to be compared with the framework's own.

How it runs, and why so:
- onnxruntime-web is the npm package pinned by ``web/package.json`` + ``package-lock.json``
  and installed by ``scripts/setup_web.sh`` into ``web/node_modules`` (git-ignored).
- A page, the model and ORT Web's wasm files are served by a local HTTP server bound to
  127.0.0.1 on a free port (a thread in this process, stopped afterwards): browsers load
  WebAssembly and ES modules over http, not from file://.
- The wasm execution provider, single-threaded (``ort.env.wasm.numThreads = 1``): threads
  need SharedArrayBuffer, so a cross-origin isolated page; one thread keeps the page plain.
- Chromium is Debian's ``chromium`` driven by ``chromium-driver`` through Selenium, as in
  tests/test_browser.py; every host but 127.0.0.1 fails to resolve inside it.
- Latency is measured in the page with ``performance.now()`` around ``session.run``. Without
  cross-origin isolation Chromium coarsens that clock to 100 microseconds, so latencies of a
  tiny model are quantized to 0.1 ms.

Nothing here raises for an environment problem (no npm package, no Chromium, no Selenium, a
model that does not load): the ``WebRun`` carries the error text, which is the evidence.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np

WEB_DIR = Path(__file__).parent / "web"
NODE_MODULES = WEB_DIR / "node_modules"
ORT_DIST = Path("onnxruntime-web") / "dist"
ORT_SCRIPT = "ort.wasm.min.js"  # the wasm-only build: no WebGL/WebGPU code to load
UNAVAILABLE = "unavailable: "
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--disable-extensions", "--disable-dev-shm-usage",
    "--no-default-browser-check",
    # Only the local server: every other host fails to resolve.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
)
SCRIPT_TIMEOUT_S = 120  # one model: fetch, session creation, 1 + repeats runs
CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript",
                 ".mjs": "text/javascript", ".wasm": "application/wasm",
                 ".onnx": "application/octet-stream"}
# numpy dtype name -> ONNX Runtime Web tensor type (the same names, bool aside).
ORT_TYPES = {"float32": "float32", "float64": "float64", "int32": "int32", "int64": "int64",
             "uint8": "uint8", "int8": "int8", "bool": "bool", "float16": "float16"}


@dataclass
class WebRun:
    """What one model did in the browser.

    ``outputs`` are those of the first ``session.run`` in ``output_names`` order (None when it
    did not run); ``latency_ms`` has one entry per timed repeat after it. ``error`` says why it
    did not run, starting with "unavailable: " when the environment lacks a piece (npm
    package, Chromium, Selenium) rather than the model failing.
    """

    outputs: list[np.ndarray] | None = None
    latency_ms: list[float] = field(default_factory=list)
    error: str | None = None
    versions: dict[str, str] = field(default_factory=dict)
    output_names: list[str] = field(default_factory=list)
    session_ms: float | None = None  # InferenceSession.create in the page
    first_run_ms: float | None = None  # the first run, one-time preparation included
    browser_start_ms: float | None = None  # Chromium + page load, shared by one call's models
    runtime_init_ms: float | None = None  # ORT Web's wasm start (a warm-up model), shared too


def run_onnx(model_path: Path, inputs: dict[str, np.ndarray], repeats: int = 5, *,
             node_modules: Path = NODE_MODULES) -> WebRun:
    """Run one ONNX model in headless Chromium; see ``run_onnx_many``."""
    return run_onnx_many([(model_path, inputs)], repeats, node_modules=node_modules)[0]


def run_onnx_many(models: Sequence[tuple[Path, dict[str, np.ndarray]]], repeats: int = 5, *,
                  node_modules: Path = NODE_MODULES) -> list[WebRun]:
    """Run each (model path, inputs) in one headless Chromium, one page, in order.

    One browser for all models, because starting Chromium is most of the cost. Inputs are keyed
    by the model's input names and must have the dtypes the model declares (no conversion:
    a mismatch is the model's error). Returns one ``WebRun`` per model, never raises for the
    environment or a model.
    """
    runs = [WebRun() for _ in models]
    todo = []
    for i, (path, _) in enumerate(models):
        if not Path(path).is_file():
            runs[i].error = f"model not found: {path}"
        else:
            todo.append(i)
    versions, reason = _environment(node_modules)
    for run in runs:
        run.versions.update(versions)
    if reason:
        for i in todo:
            runs[i].error = UNAVAILABLE + reason
        return runs
    if not todo:
        return runs
    try:
        with _serving(node_modules, [Path(models[i][0]) for i in todo]) as base, \
                _browser() as driver:
            t0 = time.perf_counter()
            driver.get(f"{base}/index.html")
            loaded = driver.execute_script(
                "return typeof ort !== 'undefined' && typeof fwsurveyInit !== 'undefined'")
            started_ms = (time.perf_counter() - t0) * 1000 + driver.fwsurvey_start_ms
            caps = driver.capabilities
            versions = {"chromium": str(caps.get("browserVersion", "")),
                        "chromedriver": str(caps.get("chrome", {})
                                            .get("chromedriverVersion", "")).split(" ")[0]}
            for run in runs:
                run.versions.update(versions)
                run.browser_start_ms = started_ms
            if not loaded:
                raise _Unavailable(f"the page did not load ORT Web ({ORT_SCRIPT}) or its runner")
            init = driver.execute_async_script(
                "const done = arguments[arguments.length - 1];"
                "fwsurveyInit().then(done, (e) => done({error: String(e)}));")
            if not isinstance(init, dict) or init.get("error"):
                raise _Unavailable("ORT Web's wasm runtime did not start: "
                                   f"{init.get('error') if isinstance(init, dict) else init}")
            for run in runs:
                run.runtime_init_ms = init.get("init_ms")
                run.versions["onnxruntime-web(page)"] = str(init.get("version", ""))
            for slot, i in enumerate(todo):
                try:
                    _run_one(driver, f"{base}/model/{slot}", models[i][1], repeats, runs[i])
                except Exception as exc:  # noqa: BLE001 - one model's failure; the next may run
                    runs[i].error = f"browser: {type(exc).__name__}: {_first_line(exc)}"
    except _Unavailable as exc:
        for i in todo:
            if runs[i].error is None and runs[i].outputs is None:
                runs[i].error = UNAVAILABLE + str(exc)
    except Exception as exc:  # noqa: BLE001 - the browser's failure is the evidence
        for i in todo:
            if runs[i].error is None and runs[i].outputs is None:
                runs[i].error = f"browser: {type(exc).__name__}: {_first_line(exc)}"
    return runs


class _Unavailable(Exception):
    """A piece of the environment is missing: the run records it as 'unavailable: ...'."""


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "msg", None) or exc).strip()
    return text.splitlines()[0] if text else ""


def _environment(node_modules: Path) -> tuple[dict[str, str], str | None]:
    """The installed versions, and why the web path cannot run (None when it can)."""
    versions = {"execution_provider": "wasm", "wasm_threads": "1"}
    pkg = node_modules / "onnxruntime-web" / "package.json"
    if not (node_modules / ORT_DIST / ORT_SCRIPT).is_file() or not pkg.is_file():
        failed = node_modules / ".setup-failed"
        why = failed.read_text().strip() if failed.is_file() else "not installed"
        return versions, (f"onnxruntime-web is missing from {node_modules} ({why}); "
                          "scripts/setup_web.sh installs it")
    versions["onnxruntime-web"] = str(json.loads(pkg.read_text()).get("version", ""))
    try:
        import selenium  # noqa: F401 - only whether it is there
    except ImportError:
        return versions, "selenium is not installed (the dev extra)"
    if not _chromium() or not shutil.which("chromedriver"):
        return versions, ("Chromium or chromedriver is not on PATH "
                          "(apt-get install chromium chromium-driver; scripts/setup_web.sh)")
    return versions, None


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _encode(array: np.ndarray) -> dict[str, Any]:
    array = np.ascontiguousarray(array)
    kind = ORT_TYPES.get(array.dtype.name)
    if kind is None:
        raise ValueError(f"dtype {array.dtype} has no ONNX Runtime Web tensor type")
    data = array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
    return {"type": kind, "dims": list(array.shape), "b64": base64.b64encode(data).decode()}


def _decode(tensor: dict[str, Any]) -> np.ndarray:
    dtype = np.dtype("bool" if tensor["type"] == "bool" else tensor["type"]).newbyteorder("<")
    data = base64.b64decode(tensor["b64"])
    return np.frombuffer(data, dtype=dtype).reshape(tensor["dims"]).astype(dtype.newbyteorder("="))


def _run_one(driver: Any, url: str, inputs: dict[str, np.ndarray], repeats: int,
             run: WebRun) -> None:
    try:
        spec = {"model": url, "repeats": int(repeats),
                "inputs": {name: _encode(np.asarray(a)) for name, a in inputs.items()}}
    except ValueError as exc:
        run.error = f"inputs: {exc}"
        return
    result = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fwsurveyRun(arguments[0]).then(done, (e) => done({stage: 'call', error: String(e)}));",
        spec)
    if not isinstance(result, dict):
        run.error = f"the page returned {type(result).__name__}, not a result"
        return
    if result.get("error"):
        run.error = f"{result.get('stage', '?')}: {result['error']}"
    run.session_ms = result.get("session_ms")
    run.first_run_ms = result.get("first_run_ms")
    run.latency_ms = [float(x) for x in result.get("latency_ms") or []]
    run.output_names = list(result.get("output_names") or [])
    if result.get("outputs") is not None:
        run.outputs = [_decode(t) for t in result["outputs"]]


@contextmanager
def _serving(node_modules: Path, models: list[Path]) -> Iterator[str]:
    """Serve the page, ORT Web's dist files and ``models`` (as /model/<i>) on 127.0.0.1."""
    dist = (node_modules / ORT_DIST).resolve()
    routes = {"/index.html": WEB_DIR / "index.html", "/runner.js": WEB_DIR / "runner.js"}
    routes.update({f"/model/{i}": path for i, path in enumerate(models)})

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server hook's name
            path = self.path.split("?", 1)[0]
            target = routes.get(path)
            if target is None and path.startswith("/ort/") and "/" not in path[5:]:
                target = dist / path[5:]
            if target is None or not target.is_file():
                self.send_error(HTTPStatus.NOT_FOUND)
                return
            body = target.read_bytes()
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type",
                             CONTENT_TYPES.get(target.suffix, "application/octet-stream"))
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass  # quiet: the run's result says what went wrong

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="fwsurvey-web", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@contextmanager
def _browser() -> Iterator[Any]:
    """A headless Chromium under chromedriver, with a throw-away profile; quit afterwards."""
    from selenium import webdriver
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.chrome.service import Service

    with tempfile.TemporaryDirectory(prefix="fwsurvey-chromium-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = _chromium() or "chromium"
        for flag in CHROMIUM_FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={profile}")
        # An explicit driver path: Selenium Manager (which would download one) never runs.
        service = Service(executable_path=shutil.which("chromedriver") or "chromedriver",
                          log_output=subprocess.DEVNULL)
        t0 = time.perf_counter()
        try:
            driver = webdriver.Chrome(options=options, service=service)
        except WebDriverException as exc:
            raise _Unavailable(f"Chromium did not start: {_first_line(exc)}") from exc
        driver.fwsurvey_start_ms = (time.perf_counter() - t0) * 1000
        try:
            driver.set_page_load_timeout(30)
            driver.set_script_timeout(SCRIPT_TIMEOUT_S)
            yield driver
        finally:
            driver.quit()
