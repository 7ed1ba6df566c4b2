"""The HTTP layer: a Starlette application over a :class:`~audioapp.workspace.Workspace` (and an optional
:class:`~audioapp.l2i_explorer.L2IExplorer`), serving three pages, a JSON API, PNG images and WAV audio.

Routes (all ``GET`` unless said):

* pages: ``/`` (explore and edit), ``/train`` (retrain and evaluate), ``/l2i`` (L2I);
  ``/static/...`` their JS/CSS (from the package, nothing from a CDN);
* APNet: ``/api/status``, ``/api/map?method=pca|tsne``, ``/api/instance/<clip_id>``,
  ``/api/prototype/<index>``, ``POST /api/delete`` ``{"indices": [...]}``, ``POST /api/convert``
  ``{"clip_id": ...}``, ``POST /api/undo``, ``POST /api/evaluate`` ``{"version": N}``,
  ``POST /api/retrain`` ``{"epochs": N}`` (202; 409 while one runs), ``/api/retrain`` (progress),
  ``POST /api/retrain/cancel``, ``POST /api/save`` (507 past the session's save cap or when the
  disk is nearly full);
* APNet media: ``/audio/clip/<clip_id>`` (the dataset file), ``/audio/reconstruction/<clip_id>``,
  ``/audio/prototype/<index>`` (Griffin-Lim), ``/image/clip/<clip_id>``,
  ``/image/reconstruction/<clip_id>``, ``/image/prototype/<index>``; model-dependent ones take
  ``?version=`` (default: the current version), so their URLs never change meaning;
* L2I: ``/api/l2i/info``, ``/api/l2i/clips``, ``POST /api/l2i/upload`` (raw body, file name in
  ``X-Filename``), ``/api/l2i/explain?source=...&tau=...``, ``/audio/l2i/input|interpretation|component``,
  ``/image/l2i/input|interpretation``.

Errors are JSON ``{"error": message}`` with 400 (bad value), 404 (unknown clip, prototype,
version, upload; refused path), 409 (a retrain is running, nothing to undo), 413 (upload too
large, or an audio file longer than the L2I page decodes), 507 (save refused: cap or disk).

JSON bodies (:func:`_json_body`, :data:`JSON_FIELDS`) are objects with only the fields their
endpoint reads; numbers must be JSON integers (``2``, not ``2.0``, ``"2"`` or ``true``);
non-finite numbers (``1e400``, ``NaN``), duplicate keys and bodies nested too deeply are refused
with 400. Safety: the CLI binds 127.0.0.1; requests with another ``Host`` are refused (DNS
rebinding), state-changing requests from another origin are refused, JSON endpoints require
``Content-Type: application/json`` (so a foreign page cannot post without a CORS preflight,
which is never granted), and every response carries a Content-Security-Policy allowing only
this server's own scripts, styles, images and audio. Audio files are served only when their
real path (symbolic links resolved again at every request) lies under the real path of the
dataset folder or the app's cache folder; uploads are refused (413) when their header says they
last longer than the L2I page decodes (:data:`audioapp.l2i_explorer.MAX_DURATION_FACTOR`).
"""
import contextlib
import ipaddress
import json
import threading
import time
import traceback
from pathlib import Path
from urllib.parse import unquote

import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from audiodata.cli import positive_int, require
from audiodata.errors import AudioDataError, ParameterError

from audioapp.background_job import BackgroundJob
from audioapp.errors import Conflict, NotFound, PayloadTooLarge
from audioapp.rendering import LRUCache, spectrogram_png, wav_bytes
from audioapp.retraining import MAX_EPOCHS
from audioapp.saving import StorageLimit

#: The pages' HTML, JS and CSS.
STATIC_DIR = Path(__file__).resolve().parent / "static"
#: Default cap of an upload (bytes).
DEFAULT_MAX_UPLOAD = 20 * 2**20
#: Cap of a JSON request body (bytes).
MAX_JSON = 64 * 2**10
#: Deepest nesting of arrays and objects accepted in a JSON body (the API needs 2: ``{"indices": [...]}``).
MAX_JSON_DEPTH = 8
#: The fields each JSON endpoint reads; any other field is refused (a misspelt one would be ignored).
JSON_FIELDS = {
    "/api/delete": ("indices",),
    "/api/convert": ("clip_id",),
    "/api/undo": (),
    "/api/evaluate": ("version",),
    "/api/retrain": ("epochs",),
    "/api/retrain/cancel": (),
    "/api/save": (),
}
#: Hosts accepted in the ``Host`` header when serving on the loopback interface.
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")
_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; media-src 'self' blob:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'")
_MEDIA_TYPES = {".wav": "audio/wav", ".flac": "audio/flac", ".ogg": "audio/ogg"}


def _status_of(err):
    if isinstance(err, NotFound):
        return 404
    if isinstance(err, Conflict):
        return 409
    if isinstance(err, PayloadTooLarge):
        return 413
    if isinstance(err, StorageLimit):
        return 507
    if isinstance(err, (AudioDataError, ValueError, KeyError)):
        return 400
    return 500


def create_app(workspace, l2i=None, max_upload_bytes=DEFAULT_MAX_UPLOAD, allowed_hosts=LOCAL_HOSTS, job=None):
    """The Starlette application.

    Parameters
    ----------
    workspace : audioapp.workspace.Workspace
    l2i : audioapp.l2i_explorer.L2IExplorer, optional
        Without it the L2I page says how to enable it.
    max_upload_bytes : int
        Largest accepted upload (HTTP 413 above).
    allowed_hosts : sequence of str or "*"
        Accepted ``Host`` header names (without port).
    job : audioapp.background_job.BackgroundJob, optional
        The retrain runner (a new one by default).

    Returns
    -------
    starlette.applications.Starlette
        ``app.state.workspace``, ``app.state.l2i`` and ``app.state.job`` hold the back end.
    """
    max_upload_bytes = require(positive_int, max_upload_bytes, "max_upload_bytes", strict=True)
    job = job or BackgroundJob()
    media = LRUCache(512)

    def error_response(err):
        status = _status_of(err)
        if status == 500:
            traceback.print_exception(err)
            message = f"internal error ({type(err).__name__}: {err}); see the server log"
        else:
            message = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
        return JSONResponse({"error": message, "status": status}, status_code=status)

    def endpoint(kind="json", status_code=200):
        """Wrap ``work(request, body)`` (run in the thread pool) into a request handler.

        ``kind``: ``"json"`` (returns a dict), ``"bytes"`` (returns ``(bytes, media_type,
        cacheable)``) or ``"file"`` (returns a path).
        """
        def wrap(work):
            async def handler(request):
                try:
                    body = await _json_body(request) if request.method == "POST" else {}
                    result = await run_in_threadpool(work, request, body)
                except Exception as err:  # noqa: BLE001 -- every error becomes a JSON message
                    return error_response(err)
                if kind == "json":
                    return JSONResponse(result, status_code=status_code, headers={"Cache-Control": "no-store"})
                if kind == "file":
                    return FileResponse(result, media_type=_MEDIA_TYPES.get(result.suffix.lower()),
                                        headers={"Cache-Control": "private, max-age=3600"})
                content, media_type, cacheable = result
                cache = "private, max-age=3600" if cacheable else "no-store"
                return Response(content, media_type=media_type, headers={"Cache-Control": cache})
            handler.__name__ = work.__name__
            return handler
        return wrap

    # ------------------------------------------------------------------ query helpers
    def version_of(request):
        value = request.query_params.get("version")
        if value in (None, ""):
            return None
        if not (value.isascii() and value.isdigit() and len(value) <= 18):
            raise ParameterError(f"version must be a non-negative integer; received {value[:20]!r}")
        return int(value)

    def version_media(kind, param, mel, title="{}"):
        """The endpoint serving the PNG (``kind`` "png") or WAV ("wav") of ``mel(<path parameter>, version_id)``.

        Media of a version never change: they are cached, and browser-cacheable when the URL
        pins ``?version=``.
        """
        def work(request, body):
            value, pinned = request.path_params[param], version_of(request)
            version_id = workspace.version(pinned).id
            if kind == "png":
                lo, hi = workspace.value_range

                def compute():
                    return spectrogram_png(mel(value, version_id), title.format(value), lo, hi)
            else:
                def compute():
                    return wav_bytes(*workspace.mel_audio(mel(value, version_id)))
            data = media.get((kind, mel.__name__, value, version_id), compute)
            return data, "image/png" if kind == "png" else "audio/wav", pinned is not None
        work.__name__ = f"{mel.__name__}_{kind}"
        return endpoint("bytes")(work)

    # ------------------------------------------------------------------ APNet API
    @endpoint()
    def status(request, body):
        return {**workspace.status(), "job": job.status(), "l2i": l2i is not None,
                "max_upload_bytes": max_upload_bytes}

    @endpoint()
    def projection(request, body):
        return workspace.projection(request.query_params.get("method", "pca"), version_of(request))

    @endpoint()
    def instance(request, body):
        return workspace.instance(request.path_params["clip_id"], version_of(request))

    @endpoint()
    def prototype(request, body):
        return workspace.prototype(request.path_params["index"], version_of(request))

    @endpoint()
    def delete(request, body):
        indices = _required(body, "indices")
        listed = indices if isinstance(indices, list) else [indices]
        if not listed:
            raise ParameterError("indices must be a non-empty list of prototype indices")
        for index in listed:
            _integer(index, "indices", 0)
        if job.running:
            raise Conflict("a retrain is running: edits are locked until it finishes (or is cancelled)")
        return workspace.delete_prototypes(indices)

    @endpoint()
    def convert(request, body):
        clip_id = _required(body, "clip_id")
        if not isinstance(clip_id, str) or not clip_id:
            raise ParameterError(f"clip_id must be a non-empty string; received {_shown(clip_id)}")
        if job.running:
            raise Conflict("a retrain is running: edits are locked until it finishes (or is cancelled)")
        return workspace.convert_instance(clip_id)

    @endpoint()
    def undo(request, body):
        if job.running:
            raise Conflict("a retrain is running: edits are locked until it finishes (or is cancelled)")
        return workspace.undo()

    @endpoint()
    def evaluate(request, body):
        version = body.get("version")
        return workspace.evaluate(None if version is None else _integer(version, "version", 0))

    @endpoint(status_code=202)
    def retrain_start(request, body):
        epochs = _epochs(body.get("epochs", 1))
        if workspace.busy and not job.running:
            raise Conflict(f"{workspace.busy}; only one retrain at a time")
        return job.start("retrain", workspace.retrain, epochs=epochs)

    @endpoint()
    def retrain_status(request, body):
        return job.status()

    @endpoint()
    def retrain_cancel(request, body):
        return job.cancel()

    @endpoint()
    def save(request, body):
        return workspace.save()

    # ------------------------------------------------------------------ APNet media
    @endpoint("file")
    def clip_audio(request, body):
        return workspace.clip_path(request.path_params["clip_id"])

    @endpoint("bytes")
    def clip_image(request, body):
        clip_id = request.path_params["clip_id"]
        lo, hi = workspace.value_range
        data = media.get(("png_clip", clip_id), lambda: spectrogram_png(
            workspace.features(clip_id), f"{clip_id} (class {workspace.classes[workspace.clip(clip_id)['label']]})",
            lo, hi))
        return data, "image/png", True

    reconstruction_image = version_media("png", "clip_id", workspace.reconstruction_mel, "reconstruction of {}")
    reconstruction_audio = version_media("wav", "clip_id", workspace.reconstruction_mel)
    prototype_image = version_media("png", "index", workspace.prototype_mel, "prototype {} (decoded)")
    prototype_audio = version_media("wav", "index", workspace.prototype_mel)

    # ------------------------------------------------------------------ L2I
    def explorer():
        if l2i is None:
            raise NotFound("no L2I model loaded: start the app with --l2i-model RUN_FOLDER")
        return l2i

    def source_of(request):
        source = request.query_params.get("source")
        if not source:
            raise ParameterError("give ?source=clip:<clip_id> or ?source=upload:<token>")
        return source

    @endpoint()
    def l2i_info(request, body):
        return explorer().info()

    @endpoint()
    def l2i_clips(request, body):
        return {"clips": explorer().clips()}

    @endpoint()
    def l2i_explain(request, body):
        return explorer().explain(source_of(request), request.query_params.get("tau", "0.1"))

    @endpoint("bytes")
    def l2i_audio(request, body):
        which, source = request.path_params["which"], source_of(request)
        ex = explorer()
        if which == "input":
            key, compute = (source,), lambda: ex.input_audio(source)
        elif which == "interpretation":
            tau = request.query_params.get("tau", "0.1")
            key, compute = (source, tau), lambda: ex.interpretation_audio(source, tau)
        elif which == "component":
            k = request.query_params.get("k")
            key, compute = (source, k), lambda: ex.component_audio(source, k)
        else:
            raise NotFound(f"no L2I audio {which[:30]!r}; use input, interpretation or component")
        return media.get(("l2i_" + which,) + key, lambda: wav_bytes(*compute())), "audio/wav", True

    @endpoint("bytes")
    def l2i_image(request, body):
        which, source = request.path_params["which"], source_of(request)
        tau = request.query_params.get("tau", "0.1")
        if which not in ("input", "interpretation"):
            raise NotFound(f"no L2I image {which[:30]!r}; use input or interpretation")

        def compute():
            X, X_int = explorer().spectrograms(source, tau)
            S = X if which == "input" else X_int
            title = "input X" if which == "input" else f"interpretation X_int (tau = {float(tau):g})"
            return spectrogram_png(S, title, 0.0, float(X.max()) or 1.0, label="log(1 + |STFT|)", cmap="magma",
                                   size=(4.6, 2.6), ylabel="STFT bin")
        return media.get(("png_l2i", which, source, tau if which != "input" else None), compute), "image/png", True

    async def l2i_upload(request):
        try:
            ex = explorer()
            length = request.headers.get("content-length")
            if length is not None and length.isdigit() and int(length) > max_upload_bytes:
                raise PayloadTooLarge(_too_large(int(length), max_upload_bytes))
            chunks, size = [], 0
            async for chunk in request.stream():
                size += len(chunk)
                if size > max_upload_bytes:
                    raise PayloadTooLarge(_too_large(size, max_upload_bytes, at_least=True))
                chunks.append(chunk)
            name = unquote(request.headers.get("x-filename", "") or "upload")
            if size == 0:
                raise ParameterError(f"upload {name!r} is empty; choose a WAV, FLAC or OGG file")
            result = await run_in_threadpool(ex.add_upload, name, b"".join(chunks))
        except Exception as err:  # noqa: BLE001
            return error_response(err)
        return JSONResponse(result, status_code=201)

    # ------------------------------------------------------------------ pages
    def page(name):
        async def serve(request):
            return FileResponse(STATIC_DIR / name, media_type="text/html", headers={"Cache-Control": "no-store"})
        return serve

    async def favicon(request):
        return Response(status_code=204)

    async def not_found(request, exc):
        return JSONResponse({"error": f"no such page or resource: {request.url.path[:200]}", "status": 404},
                            status_code=404)

    class SecurityHeaders(BaseHTTPMiddleware):
        async def dispatch(self, request, call_next):
            if request.method not in ("GET", "HEAD"):
                origin = request.headers.get("origin")
                expected = f"{request.url.scheme}://{request.headers.get('host', '')}"
                if origin is not None and origin != expected:
                    return JSONResponse({"error": f"cross-origin request from {origin[:100]} refused", "status": 403},
                                        status_code=403)
            response = await call_next(request)
            response.headers["Content-Security-Policy"] = _CSP
            response.headers["X-Content-Type-Options"] = "nosniff"
            response.headers["Referrer-Policy"] = "no-referrer"
            response.headers["X-Frame-Options"] = "DENY"
            return response

    routes = [
        Route("/", page("index.html")),
        Route("/train", page("train.html")),
        Route("/l2i", page("l2i.html")),
        Route("/favicon.ico", favicon),
        Route("/api/status", status),
        Route("/api/map", projection),
        Route("/api/instance/{clip_id}", instance),
        Route("/api/prototype/{index}", prototype),
        Route("/api/delete", delete, methods=["POST"]),
        Route("/api/convert", convert, methods=["POST"]),
        Route("/api/undo", undo, methods=["POST"]),
        Route("/api/evaluate", evaluate, methods=["POST"]),
        Route("/api/retrain", retrain_start, methods=["POST"]),
        Route("/api/retrain", retrain_status, methods=["GET"]),
        Route("/api/retrain/cancel", retrain_cancel, methods=["POST"]),
        Route("/api/save", save, methods=["POST"]),
        Route("/audio/clip/{clip_id}", clip_audio),
        Route("/audio/reconstruction/{clip_id}", reconstruction_audio),
        Route("/audio/prototype/{index}", prototype_audio),
        Route("/image/clip/{clip_id}", clip_image),
        Route("/image/reconstruction/{clip_id}", reconstruction_image),
        Route("/image/prototype/{index}", prototype_image),
        Route("/api/l2i/info", l2i_info),
        Route("/api/l2i/clips", l2i_clips),
        Route("/api/l2i/explain", l2i_explain),
        Route("/api/l2i/upload", l2i_upload, methods=["POST"]),
        Route("/audio/l2i/{which}", l2i_audio),
        Route("/image/l2i/{which}", l2i_image),
        Mount("/static", StaticFiles(directory=STATIC_DIR, follow_symlink=False), name="static"),
    ]
    middleware = [Middleware(SecurityHeaders)]
    if allowed_hosts != "*":
        middleware.insert(0, Middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts)))
    app = Starlette(routes=routes, middleware=middleware, exception_handlers={404: not_found})
    app.state.workspace, app.state.l2i, app.state.job = workspace, l2i, job
    app.state.max_upload_bytes = max_upload_bytes
    return app


async def _json_body(request):
    """The JSON object of a POST (``{}`` when empty); 400 for another content type or bad JSON.

    Every POST must say ``Content-Type: application/json``, even with an empty body: a page
    of another site can only send that with a CORS preflight, which this server never grants.
    The body must be one object holding only the fields of :data:`JSON_FIELDS` for its path,
    no key twice, no number out of the float range (``1e400``) or ``NaN``/``Infinity``,
    nested at most :data:`MAX_JSON_DEPTH` deep.
    """
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
        raise ParameterError("POST requests must have Content-Type: application/json")
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_JSON:
            raise PayloadTooLarge(f"request body over {MAX_JSON} bytes")
    if not raw.strip():
        return {}
    depth = _nesting(raw)
    if depth > MAX_JSON_DEPTH:
        raise ParameterError(f"the request body nests arrays/objects {depth} deep; at most {MAX_JSON_DEPTH} allowed")
    try:
        body = json.loads(raw, parse_float=_finite_float, parse_constant=_no_constant, object_pairs_hook=_unique_keys)
    except ParameterError:
        raise
    except RecursionError:
        raise ParameterError("the request body is nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as err:
        raise ParameterError(f"the request body is not valid JSON: {err}") from None
    if not isinstance(body, dict):
        raise ParameterError(f"the request body must be a JSON object; received {type(body).__name__}")
    allowed = JSON_FIELDS.get(request.url.path)
    if allowed is not None:
        unknown = sorted(set(body) - set(allowed))
        if unknown:
            expected = ", ".join(allowed) if allowed else "none (send {})"
            raise ParameterError(f"{request.url.path}: unknown field(s) {', '.join(map(repr, unknown))[:200]}; "
                                 f"fields: {expected}")
    return body


def _nesting(raw):
    """Deepest nesting of ``[``/``{`` in JSON text, outside strings (linear scan, no recursion)."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return deepest


def _finite_float(text):
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ParameterError(f"the request body holds the number {text[:40]}, outside the range of a float")
    return value


def _no_constant(name):
    raise ParameterError(f"the request body holds {name}, which is not valid JSON")


def _unique_keys(pairs):
    seen = {}
    for key, value in pairs:
        if key in seen:
            raise ParameterError(f"the request body gives the key {key[:40]!r} twice")
        seen[key] = value
    return seen


def _shown(value):
    """A JSON value as the client wrote it (bounded), for messages."""
    try:
        return json.dumps(value)[:60]
    except (TypeError, ValueError):
        return repr(value)[:60]


def _integer(value, name, minimum=None, maximum=None):
    """``value`` when it is a JSON integer in ``[minimum, maximum]``: not a bool, a float (``2.0``) or a string."""
    if isinstance(value, bool) or not isinstance(value, int):
        kind = {bool: "a boolean", float: "a number with a fraction or exponent", str: "a string", list: "an array",
                dict: "an object", type(None): "null"}.get(type(value), type(value).__name__)
        raise ParameterError(f"{name} must be a JSON integer; received {kind}: {_shown(value)}")
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        bounds = f"[{minimum}, {maximum}]" if maximum is not None else f">= {minimum}"
        raise ParameterError(f"{name} must be an integer {bounds}; received {_shown(value)}")
    return value


def _required(body, key):
    if key not in body:
        raise ParameterError(f"the request body lacks {key!r}")
    return body[key]


def _epochs(value):
    return _integer(value, "epochs", 1, MAX_EPOCHS)


def _too_large(size, cap, at_least=False):
    return (f"upload of {'at least ' if at_least else ''}{size / 2**20:.1f} MB is over the limit of "
            f"{cap / 2**20:.1f} MB (start the app with --max-upload-mb to change it)")


def url_of(host, port):
    """``http://host:port/`` with IPv6 hosts bracketed."""
    shown = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return f"http://{shown}:{port}/"


def is_loopback(host):
    """True for 127.0.0.0/8, ::1 and localhost."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@contextlib.contextmanager
def serve_in_thread(app, host="127.0.0.1", timeout=60.0, name="audioapp-server"):
    """Serve ``app`` with uvicorn in a daemon thread on a free port of ``host``; yields its base URL.

    The URL has no trailing slash (``http://127.0.0.1:<port>``). For the screenshots and the
    tests; ``python -m audioapp`` serves in the main thread (:func:`audioapp.cli.main`).

    Raises
    ------
    RuntimeError
        The server did not start within ``timeout`` seconds.
    """
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, name=name, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + timeout
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError(f"the app server did not start on {host} within {timeout:g} s")
            time.sleep(0.05)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield url_of(host, port).rstrip("/")
    finally:
        server.should_exit = True
        thread.join(10)


__all__ = ["DEFAULT_MAX_UPLOAD", "STATIC_DIR", "create_app", "is_loopback", "serve_in_thread", "url_of"]
