"""The published asv site works without internet access once benchmarks.offline_site has run."""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import json
import re
import shutil
import subprocess
import sys
import tarfile
import threading
from pathlib import Path

import pytest

from benchmarks import offline_site
from tests.helpers import FIXTURES, ROOT, require_program



def _asv_page() -> str:
    import asv

    return (Path(asv.__file__).parent / "www" / "index.html").read_text(encoding="utf-8")


def test_every_cdn_file_of_asvs_page_has_a_local_copy() -> None:
    page = _asv_page()
    _, before = offline_site.rewrite_page(page, assets=[])
    assert len(before) >= 10  # asv's page does load from CDNs
    new, left = offline_site.rewrite_page(page)
    assert left == [], left
    assert "integrity=" not in new and "crossorigin" not in new
    for asset in offline_site.ASSETS:
        if asset.url:
            assert f"vendor/{asset.target}" in new


def _tarball(directory: Path, package: offline_site.Package, files: dict[str, bytes]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    with tarfile.open(directory / package.tarball, "w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(f"package/{name}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))


def test_a_file_that_differs_from_the_reviewed_one_is_refused(tmp_path) -> None:
    package = offline_site.Package("jquery@3.3.1", "LICENSE.txt", "MIT", "https://jquery.com")
    asset = offline_site.ASSETS[0]
    assert asset.package == package.spec
    _tarball(tmp_path / "cache", package, {asset.member: b"alert(1)", "LICENSE.txt": b"MIT", "package.json": b"{}"})
    with pytest.raises(offline_site.SiteError, match="refusing"):
        offline_site.vendor(tmp_path / "site", tmp_path / "cache", packages=[package], assets=[asset])
    # The reviewed bytes pass, with the licence beside them.
    good = b"reviewed"
    checked = offline_site.Asset(asset.package, asset.member, asset.target, hashlib.sha256(good).hexdigest())
    _tarball(tmp_path / "cache", package, {asset.member: good, "LICENSE.txt": b"MIT", "package.json": b"{}"})
    out = offline_site.vendor(tmp_path / "site", tmp_path / "cache", packages=[package], assets=[checked])
    assert (out / asset.target).read_bytes() == good
    assert (out / "licences" / "jquery-LICENSE.txt").read_bytes() == b"MIT"
    assert "jquery@3.3.1 | MIT" in (out / "NOTICE.md").read_text()


def test_share_tiles_show_the_mean_over_cells_not_a_geometric_mean_of_zeros(tmp_path) -> None:
    name = "bench_keepalive.Keepalive.track_disconnect_share"
    (tmp_path / "index.json").write_text(json.dumps({"benchmarks": {
        name: {"unit": "share"}, "bench_x.X.track_ms": {"unit": "ms"}}}))
    env_a = tmp_path / "graphs" / "machine-vm" / "websockets-13.0"
    env_b = tmp_path / "graphs" / "machine-vm" / "websockets-17.4"
    for env, values in ((env_a, [[1, [0.0, 1.0]], [2, [0.0, 0.5]]]), (env_b, [[1, [None, 0.5]], [2, [0.0, 0.0]]])):
        env.mkdir(parents=True)
        (env / f"{name}.json").write_text(json.dumps(values))
    (tmp_path / "graphs" / "summary").mkdir()
    (tmp_path / "graphs" / "summary" / f"{name}.json").write_text("[[1, 0.0], [2, 0.0]]")
    assert offline_site.summarize_shares(tmp_path) == [name]
    tile = json.loads((tmp_path / "graphs" / "summary" / f"{name}.json").read_text())
    assert tile == [[1, pytest.approx(0.5)], [2, pytest.approx(0.125)]]


def test_no_published_site_is_one_error_line(tmp_path, capsys) -> None:
    assert offline_site.main([str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "asv publish" in err and err.count("\n") == 1


class _Quiet(http.server.SimpleHTTPRequestHandler):
    statuses: list[tuple[str, int]] = []

    def log_request(self, code="-", size="-") -> None:  # type: ignore[override]
        self.statuses.append((self.path, int(code)))


@pytest.mark.e2e
def test_the_published_site_renders_its_graphs_with_the_network_off(tmp_path) -> None:
    chromium = require_program("chromium", "chromium-browser", package="chromium")
    require_program("npm", package="npm")
    # asv publish over the committed asv results, as the README's step does;
    # asv draws only commits of the configured branch, so the results are
    # filed under two commits of a small repository made here.
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@localhost"]
    subprocess.run([*git, "init", "-q", "-b", "main"], check=True)
    hashes = []
    for n in range(2):
        (repo / "f").write_text(str(n))
        subprocess.run([*git, "add", "f"], check=True)
        subprocess.run([*git, "commit", "-q", "-m", f"c{n}"], check=True)
        hashes.append(subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True,
                                     check=True).stdout.strip())
    shutil.copytree(FIXTURES / "asv_results", tmp_path / "results")
    for path in sorted((tmp_path / "results").rglob("*-virtualenv-*.json")):
        data = json.loads(path.read_text())
        path.unlink()
        for commit in hashes:
            data["commit_hash"] = commit
            (path.parent / f"{commit[:8]}-{data['env_name']}.json").write_text(json.dumps(data))
    conf = json.loads(re.sub(r"^\s*//.*$", "", (ROOT / "asv.conf.json").read_text(), flags=re.M))
    conf.update(repo=str(repo), results_dir=str(tmp_path / "results"), html_dir=str(tmp_path / "html"),
                env_dir=str(tmp_path / "env"))
    (tmp_path / "asv.conf.json").write_text(json.dumps(conf))
    proc = subprocess.run([sys.executable, "-m", "asv", "publish", "--config", str(tmp_path / "asv.conf.json")],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = subprocess.run([sys.executable, "-m", "benchmarks.offline_site", str(tmp_path / "html")],
                          capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert "nothing external is loaded" in proc.stdout

    _Quiet.statuses = []
    handler = functools.partial(_Quiet, directory=str(tmp_path / "html"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/index.html"
        # Every host name resolves to nothing: a CDN request would fail.
        browser = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1280,900",
                   "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1", "--virtual-time-budget=15000"]
        dom = subprocess.run([*browser, "--dump-dom", url], capture_output=True, text=True, timeout=120).stdout
        shot = tmp_path / "grid.png"
        subprocess.run([*browser, f"--screenshot={shot}", url], capture_output=True, timeout=120)
    finally:
        server.shutdown()
        server.server_close()
    assert "continental origin" not in dom  # asv's page for scripts that failed to load
    assert dom.count('class="flot-base"') >= 5  # summary tiles drawn by flot
    assert not [s for s in _Quiet.statuses if s[1] >= 400], _Quiet.statuses
    assert any(path.startswith("/vendor/flot/") for path, _ in _Quiet.statuses)
    assert shot.stat().st_size > 20_000  # not a blank page
