"""The terminal rendering of a results matrix (rich): pure, from a Matrix and a ClientStatus.

Pupils are rows, activities columns. A cell shows a status glyph and the score, an upload marker
with the file count, and is highlighted when it needs marking.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from rich.console import Console, Group, RenderableType
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from daemon.client.matrix import Cell, Matrix, Status
from daemon.client.subscription import ClientStatus, ConnectionState

GLYPHS: Mapping[Status, tuple[str, str]] = {
    "not_submitted": ("·", "dim"),
    "submitted": ("●", "yellow"),
    "ai_marked": ("◆", "cyan"),
    "teacher_marked": ("★", "green"),
}
NEEDS_MARKING_STYLE = "bold black on yellow"
# Not the highlight alone: piped output (and a colour-blind reader) loses colours.
NEEDS_MARKING_MARK = "!"
UPLOAD_MARK = "⇪"
CONNECTION_STYLES: Mapping[ConnectionState, str] = {
    "connecting": "yellow",
    "subscribed": "bold green",
    "reconnecting": "bold red",
    "polling": "magenta",
    "denied": "bold white on red",
    "closed": "dim",
}


def _score(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:g}"


def render_cell(cell: Cell | None) -> Text:
    if cell is None:
        return Text("?", style="dim")
    glyph, style = GLYPHS[cell.status]
    text = Text(glyph, style=style)
    score = _score(cell.score)
    if score:
        text.append(f" {score}", style=style)
    if cell.has_upload:
        text.append(f" {UPLOAD_MARK}{cell.upload_count}", style="blue")
    if cell.needs_marking:
        text.append(f" {NEEDS_MARKING_MARK}")
        text.stylize(NEEDS_MARKING_STYLE)
    return text


def pupil_label(pupil_id: str, names: Mapping[str, str] | None = None) -> str:
    if names and pupil_id in names:
        return names[pupil_id]
    return pupil_id[:8]


def status_line(matrix: Matrix, status: ClientStatus) -> RenderableType:
    line = Text()
    line.append(status.connection, style=CONNECTION_STYLES[status.connection])
    line.append(f"  last seq {matrix.last_seq if matrix.last_seq is not None else '-'}")
    line.append(f"  messages {status.messages_received}")
    c = matrix.counters
    line.append(f"  duplicates {c.duplicates}  gaps {c.gaps}  refreshes {c.refreshes}")
    needs = sum(1 for cell in matrix.cells.values() if cell.needs_marking)
    line.append(f"  needs marking {needs}", style="yellow" if needs else "")
    if status.last_error and status.connection != "subscribed":
        # Whole: rich wraps it at word boundaries; a reason cut short hides what to fix.
        line.append(f"  ({status.last_error})", style="red")
    if status.refetching:
        table = Table.grid(padding=(0, 1))
        table.add_row(Spinner("dots", style="cyan"), Text("refetching…", style="cyan"), line)
        return table
    return line


def render_matrix(
    matrix: Matrix,
    status: ClientStatus,
    *,
    names: Mapping[str, str] | None = None,
    title: str | None = None,
    max_pupils: int | None = None,
) -> RenderableType:
    """The status line, the matrix (its first `max_pupils` rows and a count of the others, when
    given) and the legend."""
    table = Table(
        title=title or f"{matrix.group_id} / {matrix.lesson_id}",
        title_justify="left",
        expand=False,
        show_lines=False,
    )
    table.add_column("pupil", style="bold", no_wrap=True, min_width=6)
    for activity in matrix.activities:
        table.add_column(
            f"{activity.title}\n[dim]{activity.kind}[/]", justify="center", no_wrap=True
        )
    shown = matrix.pupil_ids if max_pupils is None else matrix.pupil_ids[:max_pupils]
    for pupil_id in shown:
        row: list[RenderableType] = [pupil_label(pupil_id, names)]
        row.extend(render_cell(matrix.cell(pupil_id, a.activity_id)) for a in matrix.activities)
        table.add_row(*row)
    if not matrix.loaded:
        table.caption = "loading…"
    legend = Text.assemble(
        *(f"{glyph} {name.replace('_', ' ')}   " for name, (glyph, _) in GLYPHS.items()),
        (f"{UPLOAD_MARK}n files   ", "blue"),
        (f"{NEEDS_MARKING_MARK} needs marking", NEEDS_MARKING_STYLE),
    )
    hidden = len(matrix.pupil_ids) - len(shown)
    if not hidden:
        return Group(status_line(matrix, status), table, legend)
    more = Text(f"… {hidden} more pupils (a taller terminal shows them)", style="dim")
    return Group(status_line(matrix, status), table, more, legend)


def fit_to_height(
    console: Console, lines: int, build: Callable[[int | None], RenderableType]
) -> RenderableType:
    """`build(max_pupils)` with as many pupils as fit in `lines` lines of `console`.

    A live view taller than the terminal is cut at the bottom, legend and rows alike, mid-table;
    so a live view lists the pupils that fit and says how many more there are. Each pupil is one
    line (cells never wrap).
    """
    everyone = build(None)
    if _height(console, everyone) <= lines:
        return everyone
    return build(max(0, lines - _height(console, build(0))))


def _height(console: Console, renderable: RenderableType) -> int:
    return len(console.render_lines(renderable, console.options, pad=False))
