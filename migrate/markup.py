"""Markdown and HTML building blocks every report uses: escaped text, code spans and tables for
GitHub-flavoured Markdown; escaped names (odd characters made visible), tables and one
self-contained page (inline CSS, no scripts, nothing fetched) for HTML."""

import html
from itertools import repeat

from .names import VISIBLE_CHARS, is_odd_char, odd_char_label, reveal  # how every output shows odd characters

_MD_SPECIAL = set("\\`*_[]<>|~&#!")


def md_text(text):
    """Text safe in a GFM table cell or paragraph: markup characters escaped, on one line."""
    text = reveal(" ".join(str(text).splitlines()))
    return "".join("\\" + ch if ch in _MD_SPECIAL else ch for ch in text)


def md_code(text, in_table=True):
    """A code span that survives any content: backtick fences longer than any run inside, odd
    characters revealed, `|` escaped inside tables (GFM reads `\\|` as a pipe even in code)."""
    text = reveal(" ".join(str(text).splitlines()))
    longest, run = 0, 0
    for ch in text:
        run = run + 1 if ch == "`" else 0
        longest = max(longest, run)
    fence = "`" * (longest + 1)
    if in_table:
        text = text.replace("|", "\\|")
    pad = " " if text.startswith("`") or text.endswith("`") or not text.strip() else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def md_table(headers, rows):
    return "\n".join(md_table_lines(headers, rows))


def md_table_lines(headers, rows):
    """The table's lines, one row at a time as `rows` (any iterable) yields them."""
    yield "| " + " | ".join(headers) + " |"
    yield "|" + "|".join("---" for _ in headers) + "|"
    for row in rows:
        yield "| " + " | ".join(row) + " |"


def esc(text):
    return html.escape(str(text), quote=True)


def html_name(text):
    """A name for HTML: escaped, odd characters shown as marked symbols with a tooltip naming them."""
    out = []
    for ch in str(text):
        if is_odd_char(ch):
            symbol = VISIBLE_CHARS.get(ch) or f"U+{ord(ch):04X}"
            out.append(f'<span class="odd" title="{esc(odd_char_label(ch))}">{esc(symbol)}</span>')
        else:
            out.append(esc(ch))
    return f'<span class="name">{"".join(out)}</span>'


def html_table(headers, rows, row_classes=None, cls=None):
    """rows hold HTML already escaped by the caller; row_classes marks rows (e.g. 'lost')."""
    return "".join(html_table_chunks(headers, rows, row_classes, cls))


def html_table_chunks(headers, rows, row_classes=None, cls=None):
    """html_table piece by piece, a row at a time as `rows` and `row_classes` (iterables) yield them."""
    head = "".join(f"<th>{h}</th>" for h in headers)
    table_cls = f' class="{cls}"' if cls else ""
    yield f"<table{table_cls}>\n<thead><tr>{head}</tr></thead>\n<tbody>\n"
    for n, (row, c) in enumerate(zip(rows, repeat("") if row_classes is None else row_classes)):
        yield ("\n" if n else "") + f'<tr{f" class={chr(34)}{c}{chr(34)}" if c else ""}>' + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>"
    yield "\n</tbody>\n</table>"


CSS = """
:root { --ink:#1f2328; --muted:#59636e; --line:#d1d9e0; --bg:#f6f8fa; --lost:#ffebe9; --lost-ink:#a40e26;
  --gain:#dafbe1; --gain-ink:#116329; --warn:#fff8c5; --warn-ink:#7d4e00; }
* { box-sizing: border-box; }
body { font: 14px/1.5 -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color: var(--ink);
  margin: 0 auto; padding: 24px 32px 48px; max-width: 1200px; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 32px 0 8px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
h3 { font-size: 15px; margin: 16px 0 4px; }
p.sub { color: var(--muted); margin: 0 0 16px; }
table { border-collapse: collapse; width: 100%; margin: 8px 0; font-size: 13px; }
th, td { border: 1px solid var(--line); padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: var(--bg); font-weight: 600; }
table.facts { width: auto; min-width: 60%; margin-bottom: 12px; }
table.facts th { width: 14em; }
.matrix td:first-child { white-space: nowrap; }
table.findings td:nth-child(2) code { white-space: nowrap; }
table.findings td:nth-child(3) { min-width: 20em; }
.matrix td:not(:first-child):not(:last-child) { text-align: center; white-space: nowrap; }
.matrix th:not(:first-child):not(:last-child) { text-align: center; font-size: 12px; max-width: 9em; }
.name, code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12px;
  white-space: pre-wrap; word-break: break-word; }
.odd { background: var(--warn); color: var(--warn-ink); border: 1px solid #d4a72c; border-radius: 3px;
  padding: 0 2px; margin: 0 1px; font-size: 11px; }
tr.lost td { background: var(--lost); }
tr.gain td { background: var(--gain); }
tr.warn td { background: var(--warn); }
td.lost, span.lost { color: var(--lost-ink); font-weight: 700; }
td.gain, span.gain { color: var(--gain-ink); font-weight: 700; }
td.kept { color: var(--muted); }
.badge { display: inline-block; white-space: nowrap; padding: 0 6px; border-radius: 10px; font-size: 11px; font-weight: 700;
  text-transform: uppercase; letter-spacing: .02em; border: 1px solid transparent; }
.sev-critical { background: #a40e26; color: #fff; }
.sev-error { background: #ffebe9; color: #a40e26; border-color: #ff818266; }
.sev-warning { background: var(--warn); color: var(--warn-ink); border-color: #d4a72c66; }
.sev-info { background: #ddf4ff; color: #0550ae; border-color: #54aeff66; }
.act-conflict { background: #a40e26; color: #fff; }
.act-create { background: var(--gain); color: var(--gain-ink); }
.act-adopt, .act-update { background: var(--warn); color: var(--warn-ink); }
.act-none { background: var(--bg); color: var(--muted); }
.banner { border: 1px solid; border-radius: 6px; padding: 8px 12px; margin: 8px 0; }
.banner.bad { background: var(--lost); border-color: #ff8182; color: var(--lost-ink); }
.banner.warn { background: var(--warn); border-color: #d4a72c; color: var(--warn-ink); }
.banner.ok { background: var(--gain); border-color: #4ac26b; color: var(--gain-ink); }
pre.command { background: #1f2328; color: #fff; padding: 10px 14px; border-radius: 6px; font-size: 14px;
  white-space: pre-wrap; word-break: break-all; }
details { margin: 4px 0; }
details > summary { cursor: pointer; color: #0969da; }
ul.members { margin: 2px 0 10px; padding-left: 20px; columns: 3 16em; }
.muted { color: var(--muted); }
.nowrap { white-space: nowrap; }
.sides { display: flex; gap: 16px; flex-wrap: wrap; }
.side { flex: 1 1 380px; border: 1px solid var(--line); border-radius: 6px; padding: 4px 12px; }
.side.lost { background: var(--lost); } .side.gain { background: var(--gain); }
.side.moved { background: var(--warn); } .side.cannot { background: var(--bg); }
tr.moved td { background: var(--warn); } tr.cannot td { background: var(--bg); }
span.moved { color: var(--warn-ink); font-weight: 700; } span.cannot { color: var(--muted); font-weight: 700; }
ul.inwords { margin: 8px 0 12px; padding-left: 18px; font-size: 15px; }
ul.inwords li.lost strong { color: var(--lost-ink); } ul.inwords li.gain strong { color: var(--gain-ink); }
ul.inwords li.moved strong { color: var(--warn-ink); }
table.signoff td { height: 2.4em; min-width: 24em; }
.side ul, ul.decisions { margin: 4px 0 8px; padding-left: 18px; }
a.email { white-space: nowrap; color: inherit; }
table.facts code.planid { white-space: nowrap; word-break: keep-all; }
code.ident { overflow-wrap: anywhere; }
table.journal td:nth-child(3) { min-width: 22em; }
table.journal td:nth-child(4) { min-width: 10em; }
table.journal td:nth-child(8) { white-space: nowrap; }
td { overflow-wrap: break-word; }
footer { margin-top: 40px; color: var(--muted); font-size: 12px; border-top: 1px solid var(--line); padding-top: 8px; }
@media print {
  /* A4 portrait with every column on the page: no cell keeps a minimum width or refuses to wrap,
     so a wide table (the journal with its audit-log column, the access matrix) shrinks to fit,
     and long ids, paths and names wrap anywhere rather than run off the edge. */
  @page { size: A4 portrait; margin: 12mm; }
  body { padding: 0; max-width: none; font-size: 10px; }
  h2 { break-after: avoid; }
  tr, .banner, pre { break-inside: avoid; }
  details > summary { color: var(--ink); }
  details::details-content { content-visibility: visible; display: block; }
  table, table.facts { width: 100%; min-width: 0; font-size: 9px; }
  th, td { padding: 2px 4px; min-width: 0 !important; max-width: none; overflow-wrap: break-word; }
  th *, td *, .nowrap, .badge, a.email { white-space: normal !important; word-break: normal; }
  code, .name, .nowrap, a.email { overflow-wrap: anywhere; }  /* ids, paths, rays: no word to keep whole */
  .matrix th:not(:first-child):not(:last-child) { font-size: 8px; }
  .name, code { font-size: 9px; }
  pre.command { font-size: 10px; }
  ul.members { columns: 2 12em; }
  * { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
}
"""


def html_page(title, body):
    """One self-contained page: inline CSS, no scripts, no external references."""
    return "".join(html_page_chunks(title, [body]))


def html_page_chunks(title, parts):
    """html_page(title, "\n".join(parts)) piece by piece."""
    yield (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{esc(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
    )
    yield from joined(parts)
    yield "\n</body>\n</html>\n"


def joined(parts):
    """"\n".join(parts) piece by piece; a part may be an iterable of pieces made as they are
    written (a long table)."""
    for n, part in enumerate(parts):
        if n:
            yield "\n"
        if isinstance(part, str):
            yield part
        else:
            yield from part
