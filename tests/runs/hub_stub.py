"""A local stand-in for the Hugging Face Hub API: just the endpoints huggingface_hub calls to
create a repository and a branch and to commit files (regular and LFS), on 127.0.0.1 only.

What huggingface_hub (2.x) calls, and what this answers:
  GET  /api/whoami-v2                          honer's reachability/token probe
  POST /api/repos/create                       create_repo (409 + url when it exists)
  POST /api/models/{repo}/branch/{branch}      create_branch
  POST /api/validate-yaml                      create_commit, before a README.md is committed
  POST /api/models/{repo}/preupload/{rev}      upload mode of each file: "lfs" for weights and
                                               training state (as the Hub's .gitattributes does)
  POST /{repo}.git/info/lfs/objects/batch      LFS batch: an upload URL on this server
  PUT  /_lfs/{oid}                             the LFS upload (sha256 checked)
  POST /api/models/{repo}/commit/{rev}         the ndjson commit (base64 files, LFS pointers)
Xet uploads are turned off by the tests (`HF_HUB_DISABLE_XET`), so LFS files take the basic LFS
protocol. Anything else is answered 404 and recorded in `unexpected`.

Requests are recorded (method, path, whether the expected token came with it); the token
itself is never stored. Every socket read times out (`REQUEST_TIMEOUT_S`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

import yaml

REQUEST_TIMEOUT_S = 10.0
LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".png")
_REPO_OP = re.compile(r"^/api/models/([^/]+/[^/]+)/(preupload|commit|branch)/(.+)$")
_LFS_BATCH = re.compile(r"^/([^/]+/[^/]+)\.git/info/lfs/objects/batch$")


@dataclass
class Repo:
    visibility: str | None
    branches: dict[str, dict[str, bytes]] = field(default_factory=lambda: {"main": {}})


@dataclass
class Commit:
    repo: str
    revision: str
    summary: str
    paths: list[str]
    lfs_paths: list[str]


@dataclass
class Request:
    method: str
    path: str
    authenticated: bool


class HubStub:
    """The stub server; `url` once started. `fail_commit(summary)` → True answers that commit
    with HTTP 500 (a push that fails)."""

    def __init__(self, token: str, user: str = "user", role: str = "write") -> None:
        self._token = token
        self.user = user
        self.role = role
        self.repos: dict[str, Repo] = {}
        self.lfs: dict[str, bytes] = {}
        self.commits: list[Commit] = []
        self.requests: list[Request] = []
        self.unexpected: list[str] = []
        self.validated_cards: list[str] = []
        self.fail_commit: Callable[[str], bool] | None = None
        self.lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> HubStub:
        stub = self

        class Handler(_Handler):
            hub = stub

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def files(self, repo: str, revision: str = "main") -> dict[str, bytes]:
        return self.repos[repo].branches[revision]

    def authorized(self, header: str | None) -> bool:
        return header == f"Bearer {self._token}"


class _Handler(BaseHTTPRequestHandler):
    hub: HubStub
    timeout = REQUEST_TIMEOUT_S  # every socket read of a request is bounded

    def log_message(self, format: str, *args: Any) -> None:  # no access log on stderr
        pass

    # -- plumbing --

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _send(self, status: int, payload: Any = None) -> None:
        data = json.dumps(payload if payload is not None else {}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _record(self, path: str) -> bool:
        ok = self.hub.authorized(self.headers.get("Authorization"))
        with self.hub.lock:
            self.hub.requests.append(Request(self.command, path, ok))
        return ok

    def _not_found(self, path: str) -> None:
        with self.hub.lock:
            self.hub.unexpected.append(f"{self.command} {path}")
        self._send(404, {"error": f"stub: no route for {self.command} {path}"})

    # -- routes --

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        ok = self._record(path)
        if path == "/api/whoami-v2":
            if not ok:
                return self._send(401, {"error": "Invalid credentials in Authorization header"})
            return self._send(
                200,
                {
                    "type": "user",
                    "name": self.hub.user,
                    "auth": {"type": "access_token", "accessToken": {"role": self.hub.role}},
                },
            )
        self._not_found(path)

    def do_PUT(self) -> None:
        path = urlsplit(self.path).path
        self._record(path)
        if path.startswith("/_lfs/"):  # a storage URL: no Hub token needed, as on S3
            oid = path.rsplit("/", 1)[1]
            data = self._body()
            if hashlib.sha256(data).hexdigest() != oid:
                return self._send(400, {"error": "sha256 mismatch"})
            with self.hub.lock:
                self.hub.lfs[oid] = data
            return self._send(200)
        self._not_found(path)

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        body = self._body()
        if not self._record(path):
            return self._send(401, {"error": "Invalid credentials in Authorization header"})
        if path == "/api/repos/create":
            return self._create_repo(json.loads(body))
        if path == "/api/validate-yaml":
            return self._validate_yaml(json.loads(body))
        if match := _LFS_BATCH.match(path):
            return self._lfs_batch(match.group(1), json.loads(body))
        if match := _REPO_OP.match(path):
            repo, op, revision = match.group(1), match.group(2), unquote(match.group(3))
            if repo not in self.hub.repos:
                return self._send(404, {"error": "Repository not found"})
            if op == "branch":
                return self._create_branch(repo, revision)
            if revision not in self.hub.repos[repo].branches:
                return self._send(404, {"error": f"Invalid rev id: {revision}"})
            if op == "preupload":
                return self._preupload(json.loads(body))
            return self._commit(repo, revision, body)
        self._not_found(path)

    def _create_repo(self, payload: dict) -> None:
        repo = f"{payload.get('organization') or self.hub.user}/{payload['name']}"
        url = f"{self.hub.url}/{repo}"
        with self.hub.lock:
            if repo in self.hub.repos:
                return self._send(409, {"error": "You already created this model repo", "url": url})
            self.hub.repos[repo] = Repo(visibility=payload.get("visibility"))
        self._send(200, {"url": url})

    def _create_branch(self, repo: str, branch: str) -> None:
        branches = self.hub.repos[repo].branches
        with self.hub.lock:
            if branch in branches:
                return self._send(409, {"error": "Reference already exists"})
            branches[branch] = dict(branches["main"])
        self._send(200)

    def _validate_yaml(self, payload: dict) -> None:
        """The Hub refuses a local path as `base_model` metadata; so does this."""
        content = payload["content"]
        with self.hub.lock:
            self.hub.validated_cards.append(content)
        meta = {}
        if content.startswith("---\n"):
            meta = yaml.safe_load(content.split("\n---", 2)[0][4:]) or {}
        base = meta.get("base_model")
        if base is not None and (str(base).startswith(("/", ".")) or str(base).count("/") > 1):
            message = f'"base_model" with value "{base}" is not valid. Use a model id.'
            return self._send(400, {"errors": [{"message": message}]})
        self._send(200, {"warnings": []})

    def _preupload(self, payload: dict) -> None:
        files = [
            {
                "path": f["path"],
                "uploadMode": "lfs"
                if f["size"] and f["path"].endswith(LFS_SUFFIXES)
                else "regular",
                "shouldIgnore": False,
                "oid": None,
            }
            for f in payload["files"]
        ]
        self._send(200, {"files": files})

    def _lfs_batch(self, repo: str, payload: dict) -> None:
        objects = []
        for obj in payload["objects"]:
            entry: dict[str, Any] = {"oid": obj["oid"], "size": obj["size"], "authenticated": True}
            if obj["oid"] not in self.hub.lfs:
                entry["actions"] = {"upload": {"href": f"{self.hub.url}/_lfs/{obj['oid']}"}}
            objects.append(entry)
        self._send(200, {"transfer": "basic", "objects": objects})

    def _commit(self, repo: str, revision: str, body: bytes) -> None:
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        header = next(x["value"] for x in lines if x["key"] == "header")
        if self.hub.fail_commit is not None and self.hub.fail_commit(header["summary"]):
            return self._send(500, {"error": "stub: commit refused (simulated failure)"})
        added: dict[str, bytes] = {}
        lfs_paths = []
        for item in lines:
            value = item["value"]
            if item["key"] == "file":
                added[value["path"]] = base64.b64decode(value["content"])
            elif item["key"] == "lfsFile":
                if value["oid"] not in self.hub.lfs:
                    return self._send(400, {"error": f"LFS object {value['oid']} not uploaded"})
                added[value["path"]] = self.hub.lfs[value["oid"]]
                lfs_paths.append(value["path"])
            elif item["key"] != "header":
                return self._send(400, {"error": f"stub: unsupported operation {item['key']}"})
        with self.hub.lock:
            self.hub.repos[repo].branches[revision].update(added)
            self.hub.commits.append(
                Commit(repo, revision, header["summary"], sorted(added), sorted(lfs_paths))
            )
            oid = hashlib.sha1(f"{len(self.hub.commits)}{header}".encode()).hexdigest()
        self._send(200, {"commitUrl": f"{self.hub.url}/{repo}/commit/{oid}", "commitOid": oid})
