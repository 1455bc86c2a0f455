"""Small HTML building blocks shared by the reports: escaping, tables, number formats, the page frame.

Reports are single self-describing files with no scripts and no external resources, so they open offline and
can be archived next to the data.
"""

from html import escape
import math

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
