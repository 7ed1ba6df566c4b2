"""One background task at a time (the retrain), with a status the pages poll."""
import threading
import time
import traceback

from audioapp.errors import Conflict


class BackgroundJob:
    """Runs one long task in a daemon thread and refuses a second one while it runs.

    The task is a callable taking ``report`` (call it with keyword arguments to update the
    status: ``progress`` in [0, 1], ``epoch``, ...) and ``cancelled`` (a
    :class:`threading.Event` it should poll). Its return value (a JSON-ready dict) becomes
    the status's ``result``; an exception becomes ``status: "failed"`` with its message.

    Example:

    >>> job = BackgroundJob()
    >>> _ = job.start("count", lambda report, cancelled: {"n": 3})
    >>> job.wait(5)["result"]
    {'n': 3}
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._thread = None
        self._cancel = threading.Event()
        self._state = {"id": 0, "status": "idle"}

    @property
    def running(self):
        return self._thread is not None and self._thread.is_alive()

    def start(self, name, task, **kwargs):
        """Start ``task(report=..., cancelled=..., **kwargs)`` in a thread.

        Raises
        ------
        Conflict
            A task is already running; the message says which and how far it is.
        """
        with self._lock:
            if self.running:
                state = self._state
                raise Conflict(f"{state['name']} is already running ({100 * state.get('progress', 0.0):.0f} % done, "
                               f"started {time.time() - state['started']:.0f} s ago): only one at a time; wait for it "
                               "to finish or cancel it")
            self._cancel = threading.Event()
            self._state = {"id": self._state["id"] + 1, "name": name, "status": "running", "started": time.time(),
                           "finished": None, "progress": 0.0, "params": dict(kwargs), "result": None, "error": None}
            self._thread = threading.Thread(target=self._run, args=(task, kwargs, self._cancel),
                                            name=f"apnet-app-{name}", daemon=True)
            self._thread.start()
        return self.status()

    def _run(self, task, kwargs, cancelled):
        try:
            result = task(report=self._report, cancelled=cancelled, **kwargs)
            status = "cancelled" if isinstance(result, dict) and result.get("cancelled") else "done"
            self._report(status=status, result=result, finished=time.time())
        except Exception as err:  # noqa: BLE001 -- any failure is shown on the page
            traceback.print_exc()
            self._report(status="failed", error=f"{type(err).__name__}: {err}", finished=time.time())

    def _report(self, **fields):
        with self._lock:
            self._state.update(fields)

    def status(self):
        """A copy of the current status (``status``: idle, running, done, failed or cancelled)."""
        with self._lock:
            state = dict(self._state)
        if state.get("started"):
            state["elapsed"] = (state.get("finished") or time.time()) - state["started"]
        state["cancel_requested"] = self._cancel.is_set()
        return state

    def cancel(self):
        """Ask the running task to stop (:class:`Conflict` when none runs)."""
        with self._lock:
            if not self.running:
                raise Conflict("no background job is running")
            self._cancel.set()
        return self.status()

    def wait(self, timeout=None):
        """Wait for the running task (if any) to end; returns :meth:`status`."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return self.status()
