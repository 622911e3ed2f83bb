"""A quiet, stoppable loopback HTTP server for :class:`~.FakeProvider`.

This module runs a WSGI application with Werkzeug's development server in a
daemon thread. It differs from ``run_simple`` in three ways that matter for
tests:

* it never prints or logs request lines (they could contain authorization
  codes or tokens in a query string);
* a port that is already taken raises :class:`OSError` instead of printing to
  stderr and calling ``sys.exit``;
* :meth:`ServerThread.stop` also shuts down the connections of requests still
  in progress (say, sleeping in a fault's delay): their clients see the
  connection drop, as they would if a real server went away.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import TYPE_CHECKING
from typing import Any
from typing import ClassVar

from werkzeug.serving import BaseWSGIServer
from werkzeug.serving import WSGIRequestHandler
from werkzeug.serving import make_server

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

#: How often the serve loop checks for a shutdown request, in seconds.
#: Small, so that ``stop()`` returns quickly.
_POLL_INTERVAL = 0.02


class _ConnectionTracker:
    """The set of client connections a server currently holds open."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()

    def add(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.add(sock)

    def discard(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.discard(sock)

    def shutdown_all(self) -> None:
        """Shut down every open connection; their handler threads then exit."""
        with self._lock:
            sockets = list(self._sockets)
            self._sockets.clear()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class _QuietHandler(WSGIRequestHandler):
    """A request handler that logs nothing and registers its connection."""

    protocol_version = "HTTP/1.1"
    tracker: ClassVar[_ConnectionTracker]

    def setup(self) -> None:
        super().setup()
        self.tracker.add(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.tracker.discard(self.connection)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Do not log request lines: they may carry codes or tokens."""

    def log(self, type: str, message: str, *args: Any) -> None:
        """Do not log anything from the handler (bad request lines included)."""


def _handler_class(tracker: _ConnectionTracker) -> type[_QuietHandler]:
    class Handler(_QuietHandler):
        pass

    Handler.tracker = tracker
    return Handler


class ServerThread:
    """Serve a WSGI application on a loopback address in a daemon thread."""

    def __init__(self, app: WSGIApplication, host: str, bind_host: str) -> None:
        self._app = app
        self._host = host
        self._bind_host = bind_host
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._tracker = _ConnectionTracker()

    @property
    def running(self) -> bool:
        """Whether the server is currently accepting connections."""
        return self._server is not None

    def start(self, port: int) -> int:
        """Bind ``port`` (0: an ephemeral port), start serving, return the port.

        Returns once the socket is listening: connections made afterwards are
        queued until the serving thread accepts them.
        """
        if self._server is not None:
            raise RuntimeError("the server is already running")
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((self._bind_host, port))
            listener.listen(128)
            bound_port: int = listener.getsockname()[1]
            # Werkzeug duplicates the descriptor; ours is closed below.
            server = make_server(
                self._bind_host,
                bound_port,
                self._app,
                threaded=True,
                request_handler=_handler_class(self._tracker),
                fd=listener.fileno(),
            )
        finally:
            listener.close()
        thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": _POLL_INTERVAL},
            name=f"FakeProvider-{self._host}:{bound_port}",
            daemon=True,
        )
        self._server = server
        self._thread = thread
        thread.start()
        return bound_port

    def stop(self) -> None:
        """Stop serving, close open connections and join the serving thread."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        self._server = None
        self._thread = None
        server.shutdown()
        thread.join()
        server.server_close()
        self._tracker.shutdown_all()
