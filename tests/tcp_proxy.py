"""A small threaded TCP proxy for fault injection (import as ``from tcp_proxy import TcpProxy``).

Put it between a client and a real server (PostgreSQL, Redis...) to make the server "go away"
and come back while the test runs::

    with TcpProxy("127.0.0.1", 6379) as proxy:
        client = redis.Redis(port=proxy.port)
        proxy.pause()   # open connections are cut, new ones are reset at once
        proxy.resume()  # connections go through again

While paused the proxy keeps its port (so it cannot be lost to another process) and answers every
new connection with a TCP reset: the client sees the server as down straight away rather than
after a timeout. It listens on 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import struct
import threading
from collections.abc import Callable
from types import TracebackType

__all__ = ["TcpProxy"]

_POLL = 0.05  # seconds between checks of the stop flag
_CHUNK = 65536


def _abort(sock: socket.socket) -> None:
    """Close *sock* with a reset (SO_LINGER 0) so that the peer fails at once."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()


class _Pipe:
    """One proxied connection: the client's socket, the server's socket, one pumping thread."""

    def __init__(self, client: socket.socket, upstream: socket.socket, on_exit: Callable[[_Pipe], None]) -> None:
        self.client = client
        self.upstream = upstream
        self._cut = threading.Event()
        self._on_exit = on_exit
        self.thread = threading.Thread(target=self._run, name="TcpProxy-pipe", daemon=True)

    def cut(self) -> None:
        """Drop the connection on both sides (the pumping thread notices within _POLL)."""
        self._cut.set()
        for sock in (self.client, self.upstream):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def _run(self) -> None:
        peers = {self.client: self.upstream, self.upstream: self.client}
        clean = False
        try:
            with selectors.DefaultSelector() as selector:
                for sock in peers:
                    selector.register(sock, selectors.EVENT_READ)
                while not self._cut.is_set():
                    for key, _ in selector.select(_POLL):
                        source: socket.socket = key.fileobj  # type: ignore[assignment]
                        data = source.recv(_CHUNK)
                        if not data:
                            clean = True  # one side closed: close the other normally
                            return
                        peers[source].sendall(data)
        except OSError:
            pass
        finally:
            for sock in (self.client, self.upstream):
                if clean and not self._cut.is_set():
                    with contextlib.suppress(OSError):
                        sock.close()
                else:
                    _abort(sock)
            self._on_exit(self)


class TcpProxy:
    """Forward connections from ``127.0.0.1:<port>`` to ``target_host:target_port``.

    :param target_host: the real server's host.
    :param target_port: the real server's port.
    :param connect_timeout: seconds to wait for the real server when a client connects.
    """

    def __init__(self, target_host: str, target_port: int, *, connect_timeout: float = 2.0) -> None:
        self.target = (target_host, target_port)
        self.connect_timeout = connect_timeout
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._paused = threading.Event()
        self._guard = threading.Lock()
        self._pipes: set[_Pipe] = set()
        self.accepted = 0  # connections forwarded so far
        self.refused = 0  # connections reset while paused

    # -- lifecycle ------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The port the proxy listens on (127.0.0.1)."""
        if self._listener is None:
            raise RuntimeError("the proxy is not started")
        port: int = self._listener.getsockname()[1]
        return port

    @property
    def paused(self) -> bool:
        return self._paused.is_set()

    def start(self) -> TcpProxy:
        """Listen on an ephemeral port of 127.0.0.1 and start forwarding."""
        if self._listener is not None:
            raise RuntimeError("the proxy is already started")
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(128)
        listener.settimeout(_POLL)
        self._listener = listener
        self._stopping.clear()
        self._thread = threading.Thread(target=self._accept_loop, name=f"TcpProxy-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening, cut every open connection and join the threads. Idempotent."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        self._cut_all(join=True)

    def pause(self) -> None:
        """Behave like a server that went down: cut open connections, reset new ones."""
        self._paused.set()
        self._cut_all(join=True)

    def resume(self) -> None:
        """Forward connections again (clients must reconnect: the old ones are gone)."""
        self._paused.clear()

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "paused" if self.paused else "stopped" if self._listener is None else "running"
        return f"<TcpProxy 127.0.0.1:{self._listener and self.port} -> {self.target[0]}:{self.target[1]} {state}>"

    # -- plumbing -------------------------------------------------------------------------------

    def _accept_loop(self) -> None:
        assert self._listener is not None
        listener = self._listener
        while not self._stopping.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # the listener was closed
            if self._paused.is_set():
                self.refused += 1
                _abort(client)
                continue
            client.settimeout(None)
            try:
                upstream = socket.create_connection(self.target, timeout=self.connect_timeout)
            except OSError:
                _abort(client)  # the real server is down: so are we
                continue
            upstream.settimeout(None)
            pipe = _Pipe(client, upstream, self._forget)
            with self._guard:
                if self._paused.is_set() or self._stopping.is_set():  # paused meanwhile
                    _abort(client)
                    _abort(upstream)
                    continue
                self._pipes.add(pipe)
                self.accepted += 1
                pipe.thread.start()  # under the guard: _cut_all never joins an unstarted thread

    def _forget(self, pipe: _Pipe) -> None:
        with self._guard:
            self._pipes.discard(pipe)

    def _cut_all(self, *, join: bool) -> None:
        with self._guard:
            pipes = list(self._pipes)
        for pipe in pipes:
            pipe.cut()
        if join:
            for pipe in pipes:
                if pipe.thread is not threading.current_thread():
                    pipe.thread.join(timeout=5)
