"""The output formats of every report: one object per format writes its tables and text.

A report (summary, pivot, paired comparison, published figures, Pareto front) builds a
:class:`Grid` of plain text cells, with flags for the cells to emphasise, and hands it
to the :class:`Output` of the format asked for; that object alone knows its escaping,
emphasis, table layout, headings, notes and captions. Cells may hold the symbols
``±  ≥  ≤  −  †``: each format writes them its own way (LaTeX: ``$\\pm$`` ...).

Formats: ``terminal`` (aligned plain text), ``markdown`` (GitHub pipe tables),
``latex`` (booktabs), ``csv``, ``html`` (fragments for :mod:`benchpq.report.html`).
"""
from __future__ import annotations

import csv
import html
import io
import textwrap
from dataclasses import dataclass, field

from .load import ReportError


@dataclass
class Grid:
    """A table as text: ``header`` (n columns), ``rows`` (lists of n plain-text cells).

    ``n_keys``: the first columns are keys (left-aligned), the others values
    (right-aligned). ``bold[i][j]``: emphasise cell (i, j). ``bad[i][j]``: a cell that
    flags a problem (emphasised in text formats, coloured in HTML). ``groups``: an upper
    header of (label, span) over the value columns, or None. ``text_cols``: value
    columns holding prose (left-aligned).
    """

    header: list[str]
    rows: list[list[str]]
    n_keys: int = 0
    bold: list[list[bool]] | None = None
    bad: list[list[bool]] | None = None
    groups: list[tuple[str, int]] | None = None
    sub: list[str] | None = None
    links: list[list[str | None]] | None = None
    text_cols: set[int] = field(default_factory=set)

    def flag(self, which: str, i: int, j: int) -> bool:
        flags = getattr(self, which)
        return bool(flags is not None and flags[i][j])

    def left(self, j: int) -> bool:
        return j < self.n_keys or j in self.text_cols


def one_line(text) -> str:
    """``text`` with control characters (newlines, tabs, ...) as spaces: a name from a
    record can then neither break a table row nor leave a comment line."""
    return "".join(" " if ord(ch) < 32 or ord(ch) == 127 else ch for ch in str(text))


#: width of the prose lines (notes) of the text formats
NOTE_WIDTH = 120


def wrapped(text: str, width: int = NOTE_WIDTH, prefix: str = "") -> str:
    """Each line of ``text`` wrapped to ``width`` characters, ``prefix`` before every line."""
    return "\n".join(textwrap.fill(line, width, initial_indent=prefix,
                                    subsequent_indent=prefix, break_on_hyphens=False,
                                    break_long_words=False) if line.strip() else prefix.rstrip()
                     for line in text.splitlines())


class Output:
    """One output format. Subclasses set :attr:`name` and :attr:`missing` and override
    the methods whose text differs."""

    name = ""
    missing = "–"  # a cell without value
    symbols: dict[str, str] = {}

    def escape(self, text) -> str:
        return "".join(self.symbols.get(ch, ch) for ch in one_line(text))

    def bold(self, text: str) -> str:
        return text

    def cell(self, grid: Grid, i: int, j: int) -> str:
        text = self.escape(grid.rows[i][j])
        link = grid.links[i][j] if grid.links is not None else None
        if link and text:
            text = self.link(text, link)
        return self.bold(text) if text and (grid.flag("bold", i, j) or grid.flag("bad", i, j)) \
            else text

    def link(self, text: str, address: str) -> str:
        return text

    def table(self, grid: Grid, caption: str | None = None, label: str | None = None) -> str:
        raise NotImplementedError

    def heading(self, text: str) -> str:
        return text

    def note(self, text: str) -> str:
        return wrapped(text)

    def join(self, parts: list[str]) -> str:
        return "\n\n".join(p for p in parts if p)


def _aligned(lines: list[list[str]], grid: Grid, start: str, sep: str, end: str
             ) -> tuple[list[str], list[int]]:
    """Lines of cells padded to their column's width, and the widths."""
    widths = [max(3, *(len(line[j]) for line in lines)) for j in range(len(grid.header))]
    return [start + sep.join(t.ljust(w) if grid.left(j) else t.rjust(w)
                             for j, (t, w) in enumerate(zip(line, widths))) + end
            for line in lines], widths


class Terminal(Output):
    """Aligned plain text for a terminal: columns two spaces apart, a rule under the
    header, the emphasised cells marked ``*`` (or in bold when ``color``)."""

    name = "terminal"

    def __init__(self, color: bool = False):
        self.color = color

    def bold(self, text: str) -> str:
        return f"\033[1m{text}\033[0m" if self.color else f"{text}*"

    def table(self, grid, caption=None, label=None) -> str:
        lines = [[self.escape(h) for h in grid.header],
                 *([self.cell(grid, i, j) for j in range(len(grid.header))]
                   for i in range(len(grid.rows)))]
        text, widths = _aligned(lines, grid, "", "  ", "")
        rule = "  ".join("-" * w for w in widths)
        return "\n".join(([caption] if caption else []) + [text[0], rule, *text[1:]])

    def heading(self, text: str) -> str:
        return f"== {one_line(text)} =="


class Markdown(Output):
    """GitHub-flavoured Markdown: pipe tables, ``**bold**``, ``###`` headings."""

    name = "markdown"
    symbols = {"|": r"\|"}

    def bold(self, text: str) -> str:
        return f"**{text}**"

    def link(self, text: str, address: str) -> str:
        return f"[{text}]({address})"

    def table(self, grid, caption=None, label=None) -> str:
        lines = [[self.escape(h) for h in grid.header],
                 *([self.cell(grid, i, j) for j in range(len(grid.header))]
                   for i in range(len(grid.rows)))]
        text, widths = _aligned(lines, grid, "| ", " | ", " |")
        rule = "|" + "|".join(":" + "-" * (w + 1) if grid.left(j) else "-" * (w + 1) + ":"
                              for j, w in enumerate(widths)) + "|"
        body = [text[0], rule, *text[1:]]
        return "\n".join(([f"**{self.escape(caption)}**", ""] if caption else []) + body)

    def heading(self, text: str) -> str:
        return f"### {one_line(text)}"


class Latex(Output):
    """LaTeX booktabs ``tabular`` (in a ``table`` float when given a caption or label);
    headings and notes as comment lines."""

    name = "latex"
    missing = "--"
    symbols = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
               "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
               "^": r"\textasciicircum{}", "±": r"$\pm$", "≥": r"$\geq$", "≤": r"$\leq$",
               "−": "$-$", "<": "$<$", ">": "$>$", "†": r"$^\dagger$", "–": "--"}

    def bold(self, text: str) -> str:
        return f"\\textbf{{{text}}}"

    def table(self, grid, caption=None, label=None) -> str:
        spec = "".join("l" if grid.left(j) else "r" for j in range(len(grid.header)))
        lines = [f"\\begin{{tabular}}{{{spec}}}", "\\toprule"]
        if grid.groups:
            tops, rules, start = [], [], grid.n_keys + 1
            for text, span in grid.groups:
                tops.append(f"\\multicolumn{{{span}}}{{c}}{{{self.escape(text)}}}")
                rules.append(f"\\cmidrule(lr){{{start}-{start + span - 1}}}")
                start += span
            lines += [" & ".join([""] * grid.n_keys + tops) + r" \\", "".join(rules)]
        header = grid.sub if grid.groups and grid.sub else grid.header
        lines += [" & ".join(self.escape(h) for h in header) + r" \\", "\\midrule"]
        lines += [" & ".join(self.cell(grid, i, j) for j in range(len(grid.header))) + r" \\"
                  for i in range(len(grid.rows))]
        lines += ["\\bottomrule", "\\end{tabular}"]
        if caption is None and label is None:
            return "\n".join(lines)
        head = ["\\begin{table}[t]", "\\centering"]
        head += [f"\\caption{{{self.escape(caption)}}}"] if caption is not None else []
        head += [f"\\label{{{label}}}"] if label is not None else []
        return "\n".join(head + lines + ["\\end{table}"])

    def heading(self, text: str) -> str:
        return f"% {one_line(text)}"

    def note(self, text: str) -> str:
        return wrapped(text, prefix="% ")


class Csv(Output):
    """Comma-separated values: the header and the plain cells, no emphasis; or a frame of
    full-precision numbers (:meth:`frame`)."""

    name = "csv"
    missing = ""

    def frame(self, frame) -> str:
        """A pandas DataFrame as CSV text, without its index."""
        return frame.to_csv(index=False)

    def table(self, grid, caption=None, label=None) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(grid.header)
        writer.writerows(grid.rows)
        return out.getvalue().rstrip("\n")

    def heading(self, text: str) -> str:
        return ""

    def note(self, text: str) -> str:
        return ""


class Html(Output):
    """HTML fragments: a ``<table>`` in a scrolling ``div``, ``<strong>``, classes
    ``key``/``text`` for left-aligned columns, ``bad``/``good`` for flagged cells."""

    name = "html"

    def escape(self, text) -> str:
        return html.escape(one_line(text), quote=True)

    def bold(self, text: str) -> str:
        return f"<strong>{text}</strong>"

    def table(self, grid, caption=None, label=None) -> str:
        head = "".join(f'<th class="key">{self.escape(h)}</th>' if grid.left(j)
                       else f"<th>{self.escape(h)}</th>" for j, h in enumerate(grid.header))
        body = []
        for i in range(len(grid.rows)):
            cells = []
            for j in range(len(grid.header)):
                text = self.escape(grid.rows[i][j])
                link = grid.links[i][j] if grid.links is not None else None
                text = self.link(text, link) if link and text else text
                if grid.flag("bold", i, j):
                    text = self.bold(text)
                css = (["key"] if j < grid.n_keys else []) + (
                    ["text"] if j in grid.text_cols else [])
                if grid.bad is not None:
                    css += ["bad"] if grid.flag("bad", i, j) else []
                cls = f' class="{" ".join(css)}"' if css else ""
                cells.append(f"<td{cls}>{text}</td>")
            body.append("<tr>" + "".join(cells) + "</tr>")
        cap = f"<caption>{self.escape(caption)}</caption>" if caption else ""
        return (f'<div class="wide"><table>{cap}<thead><tr>{head}</tr></thead><tbody>'
                f'{"".join(body)}</tbody></table></div>')

    def link(self, text: str, address: str) -> str:
        return f'<a href="{self.escape(address)}">{text}</a>'

    def heading(self, text: str) -> str:
        return f"<h3>{self.escape(text)}</h3>"

    def note(self, text: str) -> str:
        return f'<p class="note">{self.escape(text)}</p>'


OUTPUTS = {o.name: o for o in (Terminal(), Markdown(), Latex(), Csv(), Html())}
#: the formats benchpq-report writes (HTML is a whole site: --html)
FORMATS = ("markdown", "latex", "csv", "terminal")


def output(fmt: str) -> Output:
    """The :class:`Output` of format ``fmt``; a :class:`ReportError` lists the formats."""
    try:
        return OUTPUTS[fmt]
    except KeyError:
        raise ReportError(f"unknown format {fmt!r}; choose from {', '.join(OUTPUTS)}") from None
