"""Make the published asv site work without internet access.

``asv publish`` writes an ``index.html`` that loads jQuery, flot and its
plugins, stupidtable, blueimp-md5 and Bootstrap from public CDNs, so the site
is blank on a machine that cannot reach them. This step, run after ``asv
publish``, puts those files beside the site (``HTML_DIR/vendor/``, with each
package's licence and a ``NOTICE.md``) and points the page at them:

    python -m benchmarks.offline_site results/asv-html

The files come from the npm registry through ``npm pack``, once: the
tarballs are kept in ``.asv/vendor/`` (or ``--cache DIR``), and every file
taken from them is checked against the SHA-256 recorded below, so a site
never carries bytes other than the ones reviewed. jQuery, Bootstrap,
blueimp-md5 and the orderBars plugin are the very files asv's page names (the
same hashes as its ``integrity`` attributes); flot 0.8.3 comes unminified
(the registry has no minified build), stupidtable as 1.1.3 (the registry has
no 1.0.1; the plugin's interface is the same). All are MIT-licensed.

The step also replaces the summary tile of each ``share`` benchmark (values
between 0 and 1, often exactly 0): asv draws a tile as the geometric mean over
parameter combinations, which is 0 as soon as one cell is 0. Those tiles show
the arithmetic mean over the cells instead, the mean share.

Nothing is fetched when the site is viewed; serve it with ``asv preview``
or any static server (browsers refuse the page's data requests from
``file://``). Standard library only (this module sits in asv's benchmark
directory and is imported during discovery; it defines no benchmark).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CACHE = ROOT / ".asv" / "vendor"
VENDOR = "vendor"


@dataclass(frozen=True)
class Package:
    """One npm package the site needs.

    Attributes:
        spec: ``name@version`` for ``npm pack``.
        licence: The file in the package that holds its licence.
        licence_id: The licence, as read in that file (SPDX identifier).
        homepage: Where it comes from, for the notice.
    """

    spec: str
    licence: str
    licence_id: str
    homepage: str

    @property
    def name(self) -> str:
        return self.spec.rsplit("@", 1)[0]

    @property
    def tarball(self) -> str:
        name, version = self.spec.rsplit("@", 1)
        return f"{name.lstrip('@').replace('/', '-')}-{version}.tgz"


@dataclass(frozen=True)
class Asset:
    """One file taken from a package into the site.

    Attributes:
        package: Its package's spec.
        member: Path inside the package.
        target: Path under ``HTML_DIR/vendor``.
        sha256: The reviewed content.
        url: The CDN address ``asv publish`` writes for it, if the page names it.
    """

    package: str
    member: str
    target: str
    sha256: str
    url: str | None = None


PACKAGES = [
    Package("jquery@3.3.1", "LICENSE.txt", "MIT", "https://jquery.com"),
    Package("flot@0.8.3", "LICENSE.txt", "MIT", "https://www.flotcharts.org"),
    # No licence file: package.json says MIT, and so does the plugin's header.
    Package("flot-orderbars@1.0.0", "package.json", "MIT", "https://github.com/emmerich/flot-orderBars"),
    Package("stupid-table-plugin@1.1.3", "LICENSE", "MIT", "https://github.com/joequery/Stupid-Table-Plugin"),
    Package("blueimp-md5@2.19.0", "LICENSE.txt", "MIT", "https://github.com/blueimp/JavaScript-MD5"),
    Package("bootstrap@3.1.1", "LICENSE", "MIT", "https://getbootstrap.com"),
]

_FONT = "glyphicons-halflings-regular"
ASSETS = [
    Asset("jquery@3.3.1", "dist/jquery.min.js", "jquery/jquery.min.js",
          "160a426ff2894252cd7cebbdd6d6b7da8fcd319c65b70468f10b6690c45d02ef",
          "https://code.jquery.com/jquery-3.3.1.min.js"),
    Asset("flot@0.8.3", "jquery.flot.js", "flot/jquery.flot.js",
          "b7b931f273c38b1277b9c6c1f4e05c4ec09885a487bddaf3279e2d7e49a38e12",
          "https://cdnjs.cloudflare.com/ajax/libs/flot/0.8.3/jquery.flot.min.js"),
    Asset("flot@0.8.3", "jquery.flot.time.js", "flot/jquery.flot.time.js",
          "a582c832adc7138a6b05aaf61f16ebac274701f1be4afea77e739a1c34b9c41a",
          "https://cdnjs.cloudflare.com/ajax/libs/flot/0.8.3/jquery.flot.time.min.js"),
    Asset("flot@0.8.3", "jquery.flot.selection.js", "flot/jquery.flot.selection.js",
          "e6c85f6c1ebe4b4da29d8ae238c7c5060283f05f7ef054f6b91817d02c092918",
          "https://cdnjs.cloudflare.com/ajax/libs/flot/0.8.3/jquery.flot.selection.min.js"),
    Asset("flot@0.8.3", "jquery.flot.categories.js", "flot/jquery.flot.categories.js",
          "6e81664b28ea795c734906f4aa15614640a75ac7fbd399a7fb9084040698351a",
          "https://cdnjs.cloudflare.com/ajax/libs/flot/0.8.3/jquery.flot.categories.min.js"),
    Asset("flot-orderbars@1.0.0", "js/jquery.flot.orderBars.js", "flot-orderbars/jquery.flot.orderBars.js",
          "39735b4f46f96ff4e082572401f47c55a2767b366fd1d1e821e44a8d830a12bf",
          "https://cdn.jsdelivr.net/npm/flot-orderbars@1.0.0/js/jquery.flot.orderBars.js"),
    Asset("stupid-table-plugin@1.1.3", "stupidtable.min.js", "stupidtable/stupidtable.min.js",
          "4642380f28ebe9ed7cac251793b281ef8620c4386205d92788f9b12f5cceb4e0",
          "https://cdnjs.cloudflare.com/ajax/libs/stupidtable/1.0.1/stupidtable.min.js"),
    Asset("blueimp-md5@2.19.0", "js/md5.min.js", "blueimp-md5/md5.min.js",
          "64d7ded388c562e4bde9e58ce205e5fa01b9734fcd434d496eb7b4fbfe9b927d",
          "https://cdnjs.cloudflare.com/ajax/libs/blueimp-md5/2.19.0/js/md5.min.js"),
    Asset("bootstrap@3.1.1", "dist/js/bootstrap.min.js", "bootstrap/js/bootstrap.min.js",
          "898d05a17f2cfc5120ddcdba47a885c378c0b466f30f0700e502757e24b403a1",
          "https://cdn.jsdelivr.net/npm/bootstrap@3.1.1/dist/js/bootstrap.min.js"),
    # The stylesheet finds its icon font at ../fonts/, as in the package.
    Asset("bootstrap@3.1.1", "dist/css/bootstrap.min.css", "bootstrap/css/bootstrap.min.css",
          "e9503448692b738dd260fbd7f7cabf2e11f09b600fa97e6eb3a56eba5b1a7e9b",
          "https://cdn.jsdelivr.net/npm/bootstrap@3.1.1/dist/css/bootstrap.min.css"),
    Asset("bootstrap@3.1.1", f"dist/fonts/{_FONT}.eot", f"bootstrap/fonts/{_FONT}.eot",
          "f495f34e4f177cf0115af995bbbfeb3fcabc88502876e76fc51a4ab439bc8431"),
    Asset("bootstrap@3.1.1", f"dist/fonts/{_FONT}.svg", f"bootstrap/fonts/{_FONT}.svg",
          "d168d50a88c730b4e6830dc0da2a2b51dae4658a77d9619943c27b8ecfc19d1a"),
    Asset("bootstrap@3.1.1", f"dist/fonts/{_FONT}.ttf", f"bootstrap/fonts/{_FONT}.ttf",
          "bd18efd3efd70fec8ad09611a20cdbf99440b2c1d40085c29be036f891d65358"),
    Asset("bootstrap@3.1.1", f"dist/fonts/{_FONT}.woff", f"bootstrap/fonts/{_FONT}.woff",
          "fc969dc1c6ff531abcf368089dcbaf5775133b0626ff56b52301a059fc0f9e1e"),
]

SHARE_UNIT = "share"
"""asv unit of the benchmarks whose summary tile is an arithmetic mean here."""


class SiteError(Exception):
    """The site cannot be made to work offline; the message says why."""


def fetch_packages(cache: Path, packages: list[Package] = PACKAGES) -> None:
    """Put each package's tarball in ``cache``, with ``npm pack``, unless it is there.

    Raises:
        SiteError: npm is missing or failed.
    """
    missing = [p for p in packages if not (cache / p.tarball).is_file()]
    if not missing:
        return
    npm = shutil.which("npm")
    if npm is None:
        raise SiteError(f"npm is needed once to fetch {', '.join(p.spec for p in missing)} "
                        f"(or put their npm tarballs in {cache})")
    cache.mkdir(parents=True, exist_ok=True)
    for package in missing:
        proc = subprocess.run([npm, "pack", "--silent", "--pack-destination", str(cache), package.spec],
                              capture_output=True, text=True, timeout=300)
        if proc.returncode != 0 or not (cache / package.tarball).is_file():
            tail = (proc.stderr.strip().splitlines() or ["no message"])[-1]
            raise SiteError(f"npm pack {package.spec} failed: {tail}")


def _member(archive: tarfile.TarFile, name: str) -> bytes:
    # npm tarballs hold one top directory, "package/".
    try:
        handle = archive.extractfile(f"package/{name}")
    except KeyError:
        handle = None
    if handle is None:
        raise SiteError(f"{name} is missing from the package")
    return handle.read()


def vendor(html_dir: Path, cache: Path, packages: list[Package] = PACKAGES,
           assets: list[Asset] = ASSETS) -> Path:
    """Copy every asset and licence into ``html_dir/vendor``, checking each file's hash.

    Returns:
        The vendor directory.

    Raises:
        SiteError: A tarball is missing or a file differs from the reviewed one.
    """
    out = html_dir / VENDOR
    by_spec = {p.spec: p for p in packages}
    notice = ["# Third-party files of this site", "",
              "Taken from the npm registry by `python -m benchmarks.offline_site` so that the site "
              "loads nothing from the network. Each package's licence is in `licences/`.", "",
              "| package | licence | files | from |", "|---|---|---|---|"]
    for package in packages:
        path = cache / package.tarball
        if not path.is_file():
            raise SiteError(f"{path} is missing; run without --no-fetch, or put the npm tarball there")
        with tarfile.open(path, "r:gz") as archive:
            files = [a for a in assets if a.package == package.spec]
            for asset in files:
                data = _member(archive, asset.member)
                digest = hashlib.sha256(data).hexdigest()
                if digest != asset.sha256:
                    raise SiteError(f"{package.spec} {asset.member} has SHA-256 {digest}, "
                                    f"not the reviewed {asset.sha256}; refusing to publish it")
                target = out / asset.target
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
            licence = _member(archive, package.licence)
            licence_path = out / "licences" / f"{package.name}-{Path(package.licence).name}"
            licence_path.parent.mkdir(parents=True, exist_ok=True)
            licence_path.write_bytes(licence)
            notice.append(f"| {package.spec} | {package.licence_id} (`licences/{licence_path.name}`) | "
                          f"{', '.join(f'`{a.target}`' for a in files)} | {package.homepage} |")
    missing = {a.package for a in assets} - set(by_spec)
    if missing:
        raise SiteError(f"assets name packages that are not listed: {', '.join(sorted(missing))}")
    (out / "NOTICE.md").write_text("\n".join(notice) + "\n", encoding="utf-8")
    return out


_TAG = re.compile(r"<(script|link)\b[^>]*>", re.IGNORECASE)
_ATTR_URL = re.compile(r"""\b(src|href)\s*=\s*["'](https?:)?//[^"']+["']""", re.IGNORECASE)
_DROP = re.compile(r"""\s+(integrity|crossorigin|referrerpolicy)(\s*=\s*("[^"]*"|'[^']*'|[^\s>]+))?""",
                   re.IGNORECASE)


def rewrite_page(text: str, assets: list[Asset] = ASSETS) -> tuple[str, list[str]]:
    """Point a page's scripts and stylesheets at the vendored copies.

    ``integrity``, ``crossorigin`` and ``referrerpolicy`` go with the CDN
    address: they describe a cross-origin request that no longer happens.

    Returns:
        The new text, and every external address still loaded by a
        ``<script>`` or ``<link>`` (links to pages, ``<a href>``, are not loads).
    """
    local = {a.url: f"{VENDOR}/{a.target}" for a in assets if a.url}

    def replace(match: re.Match[str]) -> str:
        tag = match.group(0)
        for url, path in local.items():
            if f'"{url}"' in tag or f"'{url}'" in tag:
                return _DROP.sub("", tag.replace(url, path))
        return tag

    new = _TAG.sub(replace, text)
    remaining = [m.group(0) for tag in _TAG.finditer(new) for m in [_ATTR_URL.search(tag.group(0))] if m]
    return new, remaining


def external_loads(html_dir: Path) -> list[str]:
    """Every external address a page, stylesheet or script of the site would load, as ``file: address``."""
    found = []
    for path in sorted(html_dir.rglob("*")):
        if path.suffix == ".html":
            _, remaining = rewrite_page(path.read_text(encoding="utf-8"), assets=[])
            found += [f"{path.relative_to(html_dir)}: {r}" for r in remaining]
        elif path.suffix == ".css":
            text = path.read_text(encoding="utf-8", errors="replace")
            found += [f"{path.relative_to(html_dir)}: {m}" for m in re.findall(r"url\(\s*['\"]?https?://[^)]*\)", text)]
    return found


def summarize_shares(html_dir: Path) -> list[str]:
    """Redraw the summary tile of every ``share`` benchmark as the mean over its cells.

    asv's tile is the geometric mean over parameter combinations (and
    environments), 0 whenever one cell is 0. For each revision, the new
    value is the arithmetic mean of every value the benchmark's graphs hold
    there.

    Returns:
        The benchmarks whose tile was redrawn.
    """
    index = json.loads((html_dir / "index.json").read_text(encoding="utf-8"))
    done = []
    for name, info in sorted(index.get("benchmarks", {}).items()):
        if info.get("unit") != SHARE_UNIT:
            continue
        values: dict[int, list[float]] = {}
        for graph in (html_dir / "graphs").rglob(f"{name}.json"):
            if graph.parent.name == "summary":
                continue
            for revision, value in json.loads(graph.read_text(encoding="utf-8")):
                cells = value if isinstance(value, list) else [value]
                values.setdefault(revision, []).extend(v for v in cells if isinstance(v, (int, float)))
        series = [[rev, sum(v) / len(v) if v else None] for rev, v in sorted(values.items())]
        (html_dir / "graphs" / "summary" / f"{name}.json").write_text(json.dumps(series), encoding="utf-8")
        done.append(name)
    return done


def make_offline(html_dir: Path, *, cache: Path = DEFAULT_CACHE, fetch: bool = True) -> list[str]:
    """Vendor the site's third-party files, rewrite its pages, and check that nothing external is left.

    Args:
        html_dir: ``asv publish``'s output (``html_dir`` of ``asv.conf.json``).
        cache: Where the npm tarballs are kept.
        fetch: Fetch missing tarballs with npm.

    Returns:
        One line per thing done, to print.

    Raises:
        SiteError: No published site, a failed fetch, a file that differs
            from the reviewed one, or an external load left (a newer asv
            naming a file this step does not know).
    """
    if not (html_dir / "index.html").is_file() or not (html_dir / "index.json").is_file():
        raise SiteError(f"{html_dir} holds no published asv site (run asv publish first)")
    if fetch:
        fetch_packages(cache)
    out = vendor(html_dir, cache)
    said = [f"vendored {len(ASSETS)} files of {len(PACKAGES)} packages into {out} (licences in {out / 'licences'})"]
    for page in sorted(html_dir.glob("*.html")):
        text = page.read_text(encoding="utf-8")
        new, _ = rewrite_page(text)
        if new != text:
            page.write_text(new, encoding="utf-8")
            said.append(f"{page.name}: scripts and stylesheets now load from {VENDOR}/")
    shares = summarize_shares(html_dir)
    if shares:
        said.append(f"summary tiles as the mean over cells: {', '.join(shares)}")
    left = external_loads(html_dir)
    if left:
        raise SiteError(f"the site still loads {len(left)} external files: {'; '.join(left[:5])}")
    said.append("nothing external is loaded; serve it with 'asv preview' or any static server")
    return said


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m benchmarks.offline_site [HTML_DIR] [--cache DIR] [--no-fetch]``."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.offline_site",
                                     description="Make the published asv site work without internet access.")
    parser.add_argument("html_dir", nargs="?", default="results/asv-html", type=Path,
                        help="asv publish's output (default results/asv-html)")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE,
                        help=f"where the npm tarballs are kept (default {DEFAULT_CACHE.relative_to(ROOT)})")
    parser.add_argument("--no-fetch", action="store_true", help="use only tarballs already in the cache")
    args = parser.parse_args(argv)
    try:
        for line in make_offline(args.html_dir, cache=args.cache, fetch=not args.no_fetch):
            print(f"offline_site: {line}")
    except (SiteError, OSError, tarfile.TarError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, SiteError) and "no published asv site" in str(exc) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
