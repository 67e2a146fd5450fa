"""A Hugging Face hub stand-in on 127.0.0.1 (never the internet), for the tests of `fsmi weights fetch`: serves
a repository's files as the hub does, with knobs that make it break, lie, stall or send without end."""

from __future__ import annotations

import hashlib
import http.server
import re
import threading
import time
from pathlib import Path

from fsmi_bench.metrics.download import FETCH_TARGETS, FetchTarget, HubFiles

COMMIT = "0123456789abcdef0123456789abcdef01234567"


class HubLikeServer:
    """Serves ``/<repo>/resolve/<revision>/<file>`` as the Hugging Face hub does: small files with their git
    blob sha1 as ETag; large ("LFS") files answered by a redirect carrying ``X-Linked-Etag`` (the sha256)
    to ``/cdn/<repo>/<file>``, which honours Range requests; and ``/models/<file>`` as download.pytorch.org."""

    def __init__(self):
        self.repos: dict[str, dict[str, bytes]] = {}
        self.lfs: set[str] = set()
        self.torchvision: dict[str, bytes] = {}
        self.stated_sha256: dict[str, str] = {}  # a lie about a file's hash, by file name
        self.commit = COMMIT
        self.breaks: list[int] = []  # for each of the next CDN answers: send this many bytes, then hang up
        self.etag: dict[str, str] = {}  # an ETag sent in place of the git sha1, by file name (no X-Linked-Etag)
        self.extra_length = 0  # a Content-Length this much above the body the CDN sends
        self.endless = False  # the CDN sends bytes without end, and no Content-Length
        self.drip_s: float | None = None  # the CDN sends one byte every drip_s seconds
        self.requests: list[tuple[str, str, str | None]] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_HEAD(self):
                self._answer(body=False)

            def do_GET(self):
                self._answer(body=True)

            def _answer(self, body):
                server.requests.append((self.command, self.path, self.headers.get("Range")))
                match = re.fullmatch(r"/(.+)/resolve/([^/]+)/([^/]+)", self.path)
                if match:
                    repo, revision, filename = match.groups()
                    data = server.repos.get(repo, {}).get(filename)
                    if data is None or revision not in ("main", server.commit):
                        return self._send(404, b"", body)
                    headers = {"X-Repo-Commit": server.commit}
                    if filename in server.etag:
                        return self._send(200, data, body, {**headers, "ETag": server.etag[filename]})
                    if filename in server.lfs:
                        sha256 = server.stated_sha256.get(filename, hashlib.sha256(data).hexdigest())
                        headers.update({"X-Linked-Etag": f'"{sha256}"', "Location": f"/cdn/{repo}/{filename}"})
                        return self._send(302, b"", body, headers)
                    git_sha1 = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
                    return self._send(200, data, body, {**headers, "ETag": f'"{git_sha1}"'})
                if self.path.startswith("/cdn/"):
                    repo, _, name = self.path.removeprefix("/cdn/").rpartition("/")
                    return self._send_range(server.repos[repo][name], body)
                if self.path.startswith("/models/"):
                    data = server.torchvision.get(self.path.removeprefix("/models/"))
                    return self._send(404, b"", body) if data is None else self._send_range(data, body)
                return self._send(404, b"", body)

            def _send_range(self, data, body):
                requested = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
                start = int(requested.group(1)) if requested else 0
                status = 206 if requested else 200
                headers = {"Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}"} if requested else {}
                self._send(status, data[start:], body, headers)

            def _send(self, status, data, body, headers=None):
                cdn = status in (200, 206) and self.path.startswith(("/cdn/", "/models/"))
                self.send_response(status)
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                if not (cdn and server.endless):
                    self.send_header("Content-Length", str(len(data) + (server.extra_length if cdn else 0)))
                self.end_headers()
                if not (body and cdn):
                    return self.wfile.write(data) if body and data else None
                self.close_connection = True
                try:
                    if server.endless:
                        for _ in range(1 << 14):  # 1 GiB at most, should the client never stop reading
                            self.wfile.write(b"\0" * (1 << 16))
                    elif server.drip_s is not None:
                        for byte in data[:100]:
                            self.wfile.write(bytes([byte]))
                            self.wfile.flush()
                            time.sleep(server.drip_s)
                    else:
                        self.wfile.write(data[: server.breaks.pop(0)] if server.breaks else data)
                except OSError:
                    pass  # the client stopped reading

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()



def pin(monkeypatch, server: HubLikeServer, name: str, pinned: bool = True) -> None:
    """Point target ``name`` at what ``server`` holds: pinned to its commit and its files' sha256, or not
    pinned at all (the branch main, hashes as the hub states them), as for a repository fsmi has no pin for."""
    source = FETCH_TARGETS[name].source
    files = server.repos[source.repo_id]
    pins = tuple((filename, hashlib.sha256(files[filename]).hexdigest()) for filename in source.files)
    hub_files = HubFiles(source.repo_id, source.files, revision=server.commit, pinned=pins) if pinned else \
        HubFiles(source.repo_id, source.files)
    monkeypatch.setitem(FETCH_TARGETS, name, FetchTarget(name, hub_files))


def files_under(root: Path) -> list[str]:
    return sorted(str(path.relative_to(root)) for path in root.rglob("*") if path.is_file() or path.is_symlink())


