"""A local server on 127.0.0.1 that answers as a flaky, misconfigured or hostile one would:
scripted answers (a 200 sign-in page, a 204, a redirect, an error object), a body that never
ends, or a certificate no client trusts (``self_signed_localhost.pem``, valid 2000-2100, for
127.0.0.1 and localhost). Never any other address."""

from __future__ import annotations

import http.server
import ssl
import threading
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

SELF_SIGNED = Path(__file__).with_name("self_signed_localhost.pem")
#: What an endless answer claims to hold: the 1.5 GB body of the report.
ENDLESS_LENGTH = 1_500_000_000
_CHUNK = b"\0" * 65536


@dataclass(frozen=True)
class Answer:
    """One scripted answer; ``endless`` streams zeros until the client hangs up."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    endless: bool = False


class FaultServer:
    """Answers request N with ``answers[N]`` (the last one again once they run out)."""

    def __init__(self, *answers: Answer, tls: bool = False) -> None:
        self.answers = list(answers) or [Answer()]
        self.requests: list[tuple[str, str]] = []
        #: The Authorization header of each request (None where it had none).
        self.authorizations: list[str | None] = []
        #: Bytes of an endless body written before the client went away.
        self.sent = 0
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            disable_nagle_algorithm = True  # no delayed-ACK wait between writes
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                self._answer()

            def do_POST(self) -> None:
                self._answer()

            def _answer(self) -> None:
                self._read_body()
                answer = server.answers[min(len(server.requests), len(server.answers) - 1)]
                server.requests.append((self.command, self.path))
                server.authorizations.append(self.headers.get("Authorization"))
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                length = ENDLESS_LENGTH if answer.endless else len(answer.body)
                if answer.status != 204:
                    self.send_header("Content-Length", str(length))
                self.end_headers()
                if not answer.endless:
                    self.wfile.write(answer.body)
                    return
                try:
                    while server.sent < ENDLESS_LENGTH:
                        self.wfile.write(_CHUNK)
                        server.sent += len(_CHUNK)
                except OSError:  # the client hung up: what it should do
                    self.close_connection = True

            def _read_body(self) -> None:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    while size := int(self.rfile.readline().split(b";")[0], 16):
                        self.rfile.read(size + 2)
                    self.rfile.readline()
                else:
                    self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def log_message(self, *_: object) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        if tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(SELF_SIGNED)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        scheme = "https" if tls else "http"
        self.url = f"{scheme}://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FaultServer:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
