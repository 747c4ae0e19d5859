"""Bodies of the browser view's route: the live stream's tickets (``routes/web.py``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class TicketRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    project_id: str = Field(max_length=100, description="The project to follow (id or slug).")


class TicketResponse(BaseModel):
    """A stream ticket: pass it as ``?ticket=`` to ``GET /api/v1/notifications/stream``."""

    ticket: str
    project_id: str
    expires_in: int = Field(description="Seconds left to open a stream with it (60).")
    expires_at: str
