"""What a stack needs outside its cluster, run on this machine for the e2e's real node.

- `DnsZone`: Knot DNS (Debian's `knot`), authoritative for one zone and taking RFC 2136 updates signed with a
  TSIG key: what external-dns and cert-manager write where a cloud has Route 53, Cloud DNS or Azure DNS.
- `AcmeServer`: Pebble (harness/go/pebble), Let's Encrypt's ACME test server, a STAND-IN for Let's Encrypt:
  it validates DNS-01 challenges by asking the zone's server, and signs with a root it makes at start.
- `GitServer`: a Git repository over HTTPS (Git's own http-backend), where a GitOps stack's Argo CD syncs from.

Each listens on the host's end of the node's link (node.HOST_ADDRESS), which the node and its pods reach too;
each is one process, started with the test and stopped by its PID.
"""

from __future__ import annotations

import base64
import os
import secrets
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from control_plane import TOOLS, die_with_parent, terminate

DNS_PORT = 5353
ACME_PORT, ACME_MANAGEMENT_PORT = 14000, 15000
GIT_PORT = 443  # the port the platform lets Argo CD's repo server reach over HTTPS
TSIG_KEY = "platform-e2e"
TSIG_ALGORITHM = "hmac-sha256"


class _Process:
    """One server process for the length of a `with`, its output in `log`, stopped by its PID."""

    log: Path

    def _start(self, command: list[str], env: dict[str, str] | None = None) -> None:
        self._output = self.log.open("w")
        self._process = subprocess.Popen(
            command, stdout=self._output, stderr=subprocess.STDOUT, env=env, preexec_fn=die_with_parent
        )

    def _wait_ready(self, probe: Callable[[], object], what: str, seconds: float = 30) -> None:
        """Until `probe` returns without an error, polled, for at most `seconds` (the server's start)."""
        deadline = time.monotonic() + seconds
        while True:
            try:
                probe()
                return
            except (OSError, subprocess.SubprocessError) as error:
                if self._process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"{what} did not start: {error}; {self.log.read_text()[-2000:]}"
                    ) from error
                time.sleep(0.1)

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        terminate(self._process.pid)
        self._output.close()


class DnsZone(_Process):
    """`zone` served by knotd on address:DNS_PORT, updatable (and transferable) with the TSIG key only."""

    def __init__(self, root: Path, zone: str, address: str) -> None:
        self.root, self.zone, self.address = root, zone, address
        self.log = root / "knotd.log"
        self.tsig_secret = base64.b64encode(secrets.token_bytes(32)).decode()

    @property
    def endpoint(self) -> str:
        return f"{self.address}:{DNS_PORT}"

    def __enter__(self) -> DnsZone:
        self.root.mkdir(parents=True, exist_ok=True)
        # A record of the zone no external-dns owns: a sync must leave it.
        (self.root / f"{self.zone}.zone").write_text(
            f"$ORIGIN {self.zone}.\n$TTL 60\n"
            f"@ SOA ns hostmaster 1 3600 600 86400 60\n@ NS ns\nns A {self.address}\nmail A 192.0.2.25\n"
        )
        config = self.root / "knot.conf"
        config.write_text(
            f'server:\n  rundir: "{self.root}"\n  listen: {self.address}@{DNS_PORT}\n'
            f'database:\n  storage: "{self.root}"\n'
            "log:\n  - target: stderr\n    any: info\n"
            f"key:\n  - id: {TSIG_KEY}\n    algorithm: {TSIG_ALGORITHM}\n    secret: {self.tsig_secret}\n"
            f"acl:\n  - id: writers\n    key: {TSIG_KEY}\n    action: [update, transfer]\n"
            f'zone:\n  - domain: {self.zone}\n    file: "{self.root}/{self.zone}.zone"\n    acl: writers\n'
        )
        self._start(["knotd", "--config", str(config)])
        self._wait_ready(self._serves_the_zone, "knotd")
        return self

    def _serves_the_zone(self) -> None:
        if not self.query(self.zone, "SOA"):
            raise OSError(f"no SOA for {self.zone} yet")

    def query(self, name: str, kind: str = "A") -> list[str]:
        """What the zone's server answers for `name` (kdig, +short, no retry)."""
        answer = subprocess.run(
            ["kdig", f"@{self.address}", "-p", str(DNS_PORT), name, kind, "+short", "+retry=0", "+timeout=2"],
            capture_output=True, text=True, timeout=30, check=True,
        )  # fmt: skip
        return answer.stdout.split()


class AcmeServer(_Process):
    """Pebble at https://address:ACME_PORT/dir, validating DNS-01 challenges against `dns_server`. Its own
    HTTPS certificate comes from a CA made here (`ca_file`), which clients of the directory must trust."""

    def __init__(self, root: Path, address: str, dns_server: str) -> None:
        self.root, self.address, self.dns_server = root, address, dns_server
        self.log = root / "pebble.log"
        self.ca_file = root / "acme-server-ca.crt"

    @property
    def directory(self) -> str:
        return f"https://{self.address}:{ACME_PORT}/dir"

    def __enter__(self) -> AcmeServer:
        self.root.mkdir(parents=True, exist_ok=True)
        server_certificate(self.root, "pebble", self.address, self.ca_file)
        config = self.root / "pebble.json"
        config.write_text(
            '{"pebble": {'
            f'"listenAddress": "{self.address}:{ACME_PORT}", '
            f'"managementListenAddress": "{self.address}:{ACME_MANAGEMENT_PORT}", '
            f'"certificate": "{self.root}/pebble.crt", "privateKey": "{self.root}/pebble.key", '
            '"httpPort": 5002, "tlsPort": 5001, "ocspResponderURL": "", "externalAccountBindingRequired": false}}'
        )
        # No random waits before a validation, and no nonces refused at random (Pebble's defaults test
        # clients' retries; cert-manager's are not what this run is about).
        env = {**os.environ, "PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0"}
        self._start([str(TOOLS / "pebble"), "-config", str(config), "-dnsserver", self.dns_server], env)
        self._wait_ready(self.root_certificate, "pebble")
        return self

    def root_certificate(self) -> str:
        """The root Pebble signs with (made at its start), from its management interface."""
        context = ssl.create_default_context(cafile=self.ca_file)
        url = f"https://{self.address}:{ACME_MANAGEMENT_PORT}/roots/0"
        with urllib.request.urlopen(url, context=context, timeout=10) as answer:
            return str(answer.read().decode())


class GitServer(_Process):
    """One Git repository, `name`.git, served read-only over HTTPS at https://address:GIT_PORT (Git's own
    http-backend, harness/e2e/git_https.py), with a working copy (`work`) whose commits reach it by `publish`.
    Its certificate comes from a CA made here (`ca_file`), which its clients must trust."""

    def __init__(self, root: Path, name: str, address: str) -> None:
        self.root, self.name, self.address = root, name, address
        self.log = root / "git-server.log"
        self.ca_file = root / "git-server-ca.crt"
        self.bare, self.work = root / "served" / f"{name}.git", root / "work"

    @property
    def url(self) -> str:
        return f"https://{self.address}/{self.name}.git"

    def __enter__(self) -> GitServer:
        self.root.mkdir(parents=True, exist_ok=True)
        server_certificate(self.root, "git-server", self.address, self.ca_file)
        self.git("init", "--quiet", "--bare", "--initial-branch=main", str(self.bare), cwd=self.root)
        self.git("init", "--quiet", "--initial-branch=main", str(self.work), cwd=self.root)
        self.git("remote", "add", "origin", str(self.bare))
        self._start([sys.executable, str(Path(__file__).with_name("git_https.py")), str(self.bare.parent),
                     self.address, str(GIT_PORT), str(self.root / "git-server.crt"),
                     str(self.root / "git-server.key")])  # fmt: skip
        # Ready when Git itself, trusting only that CA, lists the (still empty) repository.
        self._wait_ready(lambda: self.git("ls-remote", self.url, ssl_ca=self.ca_file), "git server")
        return self

    def publish(self, message: str) -> str:
        """Commit everything in the working copy and push it; the new commit's id."""
        self.git("add", "--all")
        self.git("commit", "--quiet", "--message", message)
        return self.push()

    def push(self) -> str:
        """Push the working copy's commits; the last one's id."""
        self.git("push", "--quiet", "origin", "main")
        return self.git("rev-parse", "HEAD").strip()

    def git(self, *args: str, cwd: Path | None = None, ssl_ca: Path | None = None) -> str:
        env = {**os.environ, "GIT_AUTHOR_NAME": "e2e", "GIT_AUTHOR_EMAIL": "e2e@example.com",
               "GIT_COMMITTER_NAME": "e2e", "GIT_COMMITTER_EMAIL": "e2e@example.com"}  # fmt: skip
        if ssl_ca:
            env["GIT_SSL_CAINFO"] = str(ssl_ca)
        run = subprocess.run(["git", *args], cwd=cwd or self.work, env=env,
                             capture_output=True, text=True, timeout=60, check=True)  # fmt: skip
        return run.stdout


def server_certificate(root: Path, name: str, address: str, ca_file: Path) -> None:
    """root/name.crt and root/name.key for `address` (an IP address), signed by a CA made here, whose
    certificate is written to `ca_file`; all valid for a day."""

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], capture_output=True, check=True, timeout=60)

    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes")
    ca_key, key, request = root / f"{name}-ca.key", root / f"{name}.key", root / f"{name}.csr"
    openssl("req", "-x509", *ec, "-keyout", str(ca_key), "-out", str(ca_file),
            "-subj", f"/CN=e2e {name} CA", "-days", "1")  # fmt: skip
    openssl("req", *ec, "-keyout", str(key), "-out", str(request), "-subj", f"/CN={name}")
    names = root / f"{name}-names.cnf"
    names.write_text(f"subjectAltName=IP:{address}\n")
    openssl("x509", "-req", "-in", str(request), "-CA", str(ca_file), "-CAkey", str(ca_key),
            "-CAcreateserial", "-out", str(root / f"{name}.crt"), "-days", "1", "-extfile", str(names))  # fmt: skip
