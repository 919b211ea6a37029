"""Git's smart HTTP protocol over HTTPS, for the e2e's GitOps test: Git's own server side (`git http-backend`,
a CGI program) behind Python's HTTP server, one CGI run per request.

    python harness/e2e/git_https.py PROJECT_ROOT ADDRESS PORT CERTIFICATE KEY

Serves every repository under PROJECT_ROOT read-only (no push: the test commits into the repository
directly), at https://ADDRESS:PORT/<repository>.git. Runs until it is stopped.
"""

from __future__ import annotations

import ssl
import subprocess
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


class GitHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    project_root = ""

    def do_GET(self) -> None:
        self._backend()

    def do_POST(self) -> None:
        self._backend()

    def _backend(self) -> None:
        url = urlsplit(self.path)
        if url.query == "service=git-receive-pack" or url.path.endswith("/git-receive-pack"):
            self._answer(403, [("Content-Type", "text/plain")], b"this server is read-only\n")
            return
        length = self.headers.get("Content-Length")
        if self.command == "POST" and length is None:
            self._answer(411, [("Content-Type", "text/plain")], b"a request body needs a Content-Length\n")
            return
        body = self.rfile.read(int(length)) if length else b""
        # The CGI variables http-backend reads (git-http-backend(1)); Git-Protocol carries protocol v2.
        env = {
            "GIT_PROJECT_ROOT": self.project_root,
            "GIT_HTTP_EXPORT_ALL": "1",
            "REQUEST_METHOD": self.command,
            "PATH_INFO": url.path,
            "QUERY_STRING": url.query,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_ADDR": self.client_address[0],
        }
        for header, variable in (
            ("Git-Protocol", "GIT_PROTOCOL"),
            ("Content-Encoding", "HTTP_CONTENT_ENCODING"),
        ):
            if header in self.headers:
                env[variable] = self.headers[header]
        run = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True, timeout=60)
        head, _, payload = run.stdout.partition(b"\r\n\r\n")
        status, headers = 200, []
        for line in head.decode("latin-1").split("\r\n"):
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.split()[0])
            elif name:
                headers.append((name, value.strip()))
        if run.returncode and not run.stdout:
            status, headers, payload = 500, [("Content-Type", "text/plain")], run.stderr
        self._answer(status, headers, payload)

    def _answer(self, status: int, headers: list[tuple[str, str]], payload: bytes) -> None:
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


def main() -> None:
    root, address, port, certificate, key = sys.argv[1:6]
    GitHandler.project_root = root
    server = ThreadingHTTPServer((address, int(port)), GitHandler)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certificate, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
