"""Small HTML building blocks shared by the reports (escaping, tables, number formats, the page frame) and the check
that a written report's referenced files exist and decode.

Reports are single self-describing files with no scripts and no external resources, so they open offline and
can be archived next to the data.
"""

import base64
import binascii
from html import escape
from html.parser import HTMLParser
import io
import math
from pathlib import Path
from urllib.parse import unquote, urlsplit
import xml.etree.ElementTree as ET

from PIL import Image, UnidentifiedImageError

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 70em;
       padding: 0 1em; color: #222; line-height: 1.4; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; }
h2 { font-size: 1.2em; margin-top: 1.8em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #f2f2f2; }
td.name, th.name { text-align: left; font-family: ui-monospace, monospace; }
td.text { text-align: left; }
td.fail { background: #fdd; color: #900; font-weight: bold; }
td.pass { color: #060; }
.banner-bad { background: #c00000; color: #fff; padding: 0.8em 1.2em; border-radius: 4px; font-size: 1.15em; }
.banner-bad strong { font-size: 1.3em; }
.banner-ok { background: #e6f4e6; color: #060; padding: 0.5em 1.2em; border-radius: 4px; }
.banner-warn { background: #fff1d6; color: #7a4b00; padding: 0.6em 1.2em; border-radius: 4px; margin-top: 0.5em; }
figure { margin: 1em 0; }
figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: 0.9em; color: #444; max-width: 60em; }
.meta td { text-align: left; }
.meta th { text-align: left; }
p.note { font-size: 0.9em; color: #444; }
"""


def esc(x):
    return escape(str(x), quote=True)


def fmt(x, digits=4):
    """A number for a table: ``digits`` significant figures, '—' for missing."""
    if x is None:
        return "—"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return str(x)
    try:
        x = float(x)
    except (TypeError, ValueError):
        return str(x)
    if math.isnan(x):
        return "nan"
    return f"{x:.{digits}g}"


def cell(content, cls=None, raw=False):
    """A table cell: ``content`` is escaped unless ``raw``; ``cls`` a CSS class (fail, pass, name, text)."""
    text = content if raw else esc(content)
    return f'<td class="{cls}">{text}</td>' if cls else f"<td>{text}</td>"


def table(headers, rows, css_class=None):
    """``rows``: lists of cells made by :func:`cell` (already HTML) or plain values (escaped here)."""
    head = "".join(f'<th class="name">{esc(h)}</th>' if i == 0 else f"<th>{esc(h)}</th>"
                   for i, h in enumerate(headers))
    body = []
    for row in rows:
        cells = "".join(c if isinstance(c, str) and c.startswith("<td") else cell(c) for c in row)
        body.append(f"<tr>{cells}</tr>")
    cls = f' class="{css_class}"' if css_class else ""
    return f"<table{cls}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def figure(src, caption, alt):
    """An image that links to itself (full size), with a caption (HTML allowed in ``caption``)."""
    return (f'<figure><a href="{esc(src)}"><img src="{esc(src)}" alt="{esc(alt)}"></a>'
            f"<figcaption>{caption}</figcaption></figure>")


def page(title, body):
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{esc(title)}</title>\n'
            f"<style>{CSS}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n")


# Attributes that make a page fetch or open another file: what a broken report would show as a blank box or a 404.
_REFERENCES = {"img": "src", "script": "src", "source": "src", "iframe": "src", "a": "href", "link": "href"}
_RASTER = {".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp"}
_PAGES = {".html", ".htm"}


class _References(HTMLParser):
    """Collects (tag, attribute, value) for every reference in :data:`_REFERENCES`, entities already decoded."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.found = []

    def handle_starttag(self, tag, attrs):
        name = _REFERENCES.get(tag)
        for key, value in attrs:
            if key == name and value is not None and value.strip():
                self.found.append((tag, key, value.strip()))

    handle_startendtag = handle_starttag


def _decode_problem(data, kind):
    """Why ``data`` (the bytes of a file or data: URI) is not a usable image of ``kind`` (a suffix), or None.

    Rasters are fully decoded (``load``), not only identified, so a truncated PNG counts as broken; SVG must be XML
    with an ``<svg>`` root."""
    if kind == ".svg":
        try:
            root = ET.fromstring(data)
        except ET.ParseError as exc:
            return f"is not valid SVG ({exc})"
        return None if root.tag.rsplit("}", 1)[-1] == "svg" else f"is XML but not SVG (root <{root.tag}>)"
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            if kind == ".png" and img.format != "PNG":
                return f"is a {img.format} image, not a PNG"
            if img.width == 0 or img.height == 0:
                return "is an empty image"
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        return f"does not decode as an image ({exc})"
    return None


def _data_uri_problem(uri):
    """Why an inlined ``data:image/...`` URI does not decode, or None; other data: URIs are not checked."""
    header, sep, payload = uri[5:].partition(",")
    media, *params = header.split(";")
    if not sep:
        return "is a data: URI without a comma"
    if not media.startswith("image/"):
        return None
    if "base64" in params:
        try:
            data = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError) as exc:
            return f"is not valid base64 ({exc})"
    else:
        data = unquote(payload).encode()
    kind = {"image/svg+xml": ".svg", "image/png": ".png"}.get(media, "." + media.split("/", 1)[1])
    return _decode_problem(data, kind)


def check_report_assets(report_path):
    """Every problem with the files a report references: one sentence each, ``[]`` when the report is whole.

    Reports are archived and opened offline, so a missing or undecodable figure shows up only when someone reads
    the report months later; the tests call this on each report they write. ``<img src>``, ``<a href>``,
    ``<link href>``, ``<script src>`` (and ``<source>``/``<iframe>``) are resolved against the report's folder;
    web addresses, ``mailto:`` and ``#anchors`` are skipped, inlined ``data:image`` URIs are decoded, absolute and
    ``file:`` paths are problems (they break once the folder moves), images (PNG, JPEG, GIF, WebP, SVG) must
    decode, and linked pages (an index linking ``step/report.html``) are checked the same way, recursively.
    """
    report = Path(report_path).resolve()
    problems = []
    _check_page(report, report.parent, problems, set())
    return problems


def _check_page(page_path, root, problems, seen):
    seen.add(page_path)
    shown = _shown(page_path, root)
    try:
        text = page_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        problems.append(f"{shown} does not exist")
        return
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(f"{shown} cannot be read as UTF-8 HTML ({exc})")
        return
    parser = _References()
    parser.feed(text)
    parser.close()
    for tag, attr, ref in parser.found:
        where = f'{shown}: <{tag} {attr}="{ref[:60] + "…" if len(ref) > 60 else ref}">'
        parts = urlsplit(ref)
        scheme = parts.scheme.lower()
        if ref.startswith(("#", "//")) or scheme not in ("", "data", "file") and len(scheme) > 1:
            continue  # an anchor, a web address, mailto: and the like: nothing on disk to check
        if scheme == "data":
            why = _data_uri_problem(ref)
            if why:
                problems.append(f"{where} {why}")
            continue
        if scheme == "file" or ref.startswith("/") or len(scheme) == 1:  # one letter: a Windows drive, C:\...
            problems.append(f"{where} is an absolute address; it breaks when the report's folder is moved")
            continue
        if not parts.path:  # "?query" or "" only: the page itself
            continue
        target = (page_path.parent / unquote(parts.path)).resolve()
        if not target.exists():
            problems.append(f"{where} points to {_shown(target, root)}, which does not exist")
            continue
        if target in seen:  # a figure is both shown and linked: decode it once
            continue
        seen.add(target)
        suffix = target.suffix.lower()
        if target.is_file() and (suffix in _RASTER or suffix == ".svg"):
            why = _decode_problem(target.read_bytes(), suffix)
            if why:
                problems.append(f"{where}: {_shown(target, root)} {why}")
        elif target.is_file() and suffix in _PAGES:
            _check_page(target, root, problems, seen)


def _shown(path, root):
    """``path`` relative to the first report's folder when it lies inside, so sentences stay short."""
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)
