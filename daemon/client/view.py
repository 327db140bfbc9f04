"""The terminal rendering of a results matrix (rich): pure, from a Matrix and a ClientStatus.

Pupils are rows, activities columns. A cell shows a status glyph and the score, an upload marker
with the file count, and is highlighted when it needs marking.
"""

from __future__ import annotations

from collections.abc import Mapping

from rich.console import Group, RenderableType
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
) -> RenderableType:
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
    for pupil_id in matrix.pupil_ids:
        row: list[RenderableType] = [pupil_label(pupil_id, names)]
        row.extend(render_cell(matrix.cell(pupil_id, a.activity_id)) for a in matrix.activities)
        table.add_row(*row)
    if not matrix.loaded:
        table.caption = "loading…"
    legend = Text.assemble(
        *(f"{glyph} {name.replace('_', ' ')}   " for name, (glyph, _) in GLYPHS.items()),
        (f"{UPLOAD_MARK}n files   ", "blue"),
        ("needs marking", NEEDS_MARKING_STYLE),
    )
    return Group(table, legend, status_line(matrix, status))
