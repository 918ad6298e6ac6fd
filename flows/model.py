"""The neutral model: what comes in from any channel, and what the product wants done.

Plain frozen data, no I/O. Handlers turn a platform update into one of the events below and
turn the rendered actions into that platform's messages.

User-facing text never appears here: a message is a catalogue key with parameters (`Msg`),
rendered in the reader's language by `bot.i18n` when it is put in the outbox.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Union


@dataclass(frozen=True)
class Address:
    """Who sent an event, or where a message goes: `telegram:123`, `line:U…`, `sandbox:alice`."""

    platform: str
    chat_id: str
    user_id: str | None = None
    is_group: bool = False

    @property
    def chat_key(self) -> str:
        return f"{self.platform}:{self.chat_id}"

    @property
    def user_key(self) -> str | None:
        return f"{self.platform}:{self.user_id}" if self.user_id else None


# ---------------------------------------------------------------- inbound events (facts)


@dataclass(frozen=True)
class Event:
    address: Address
    event_id: str
    at: datetime
    lang_hint: str | None = None  # the platform's language for this user, where given
    user_name: str | None = None  # display name where the platform gives one


@dataclass(frozen=True)
class TextReceived(Event):
    text: str = ""
    reply_to: str | None = None  # platform message id the text replies to (a comment on a card)


@dataclass(frozen=True)
class PhotoReceived(Event):
    """A photo: `media` names it on the platform until the engine has fetched and stored it
    (`key`), or `error` says why it could not be."""

    key: str | None = None
    error: str | None = None  # "not_image" | "too_large" | "download_failed"
    media: str | None = None  # the platform's reference (Telegram file_id, LINE message id)


@dataclass(frozen=True)
class VoiceReceived(Event):
    """A voice message, kept as the note's attachment; fetched and stored like a photo."""

    key: str | None = None
    error: str | None = None  # "not_audio" | "too_large" | "download_failed"
    media: str | None = None


@dataclass(frozen=True)
class LocationReceived(Event):
    lat: float = 0.0
    lon: float = 0.0
    title: str | None = None
    live: bool = False


@dataclass(frozen=True)
class ChoiceMade(Event):
    """A button press or postback; `data` is what our own button carried."""

    data: str = ""


@dataclass(frozen=True)
class CommandReceived(Event):
    name: str = ""  # start, new, cancel, help, mine, lang, bind
    arg: str = ""


@dataclass(frozen=True)
class UnsupportedReceived(Event):
    kind: str = "unknown"  # sticker, video, file, audio, ...


InboundEvent = Union[
    TextReceived, PhotoReceived, VoiceReceived, LocationReceived, ChoiceMade, CommandReceived, UnsupportedReceived
]


# ---------------------------------------------------------------- outbound actions (imperatives)


@dataclass(frozen=True)
class Msg:
    """A catalogue key and its parameters; rendered in the reader's language."""

    key: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Button:
    label: Msg
    data: str


@dataclass(frozen=True)
class Reply:
    """Send the user (in this conversation) a message, optionally with choices or a request."""

    lines: tuple[Msg, ...]
    buttons: tuple[tuple[Button, ...], ...] = ()
    ask: str | None = None  # "location" | "photo": show the platform's picker where it has one;
    #                         "located": the location is answered, take the picker away
    edit: bool = False  # replaces the conversation's last question in place, where the platform can
    question: bool = False  # a question (its buttons numbered): a later `edit` may replace it
    notice: bool = False  # a short answer to a button press (an alert on the button, where shown)


@dataclass(frozen=True)
class SubmitReport:
    """Turn the conversation's draft into a report (the engine numbers, routes and announces it)."""


@dataclass(frozen=True)
class StaffAction:
    """A staff member acted on a report; the engine applies `flows.status.apply_action`."""

    report_id: int
    action: str
    arg: str = ""
    comment: str | None = None


@dataclass(frozen=True)
class BindChat:
    """A group chat sent a one-time code; the engine checks it and binds the chat to the team."""

    code: str


@dataclass(frozen=True)
class ListReports:
    """Show the user their recent reports with their status."""


@dataclass(frozen=True)
class ForgetVolunteer:
    """The volunteer declined: forget the conversation, what they sent (the inbox's payloads, a
    draft's files) and, once the answer is delivered, the messages to them (PDPA)."""


@dataclass(frozen=True)
class DropMedia:
    """Delete these stored files (a cancelled, declined or expired draft's, a replaced photo's)
    unless a report or another draft still names them."""

    keys: tuple[str, ...] = ()


Action = Union[Reply, SubmitReport, StaffAction, BindChat, ListReports, ForgetVolunteer, DropMedia]


@dataclass(frozen=True)
class Card:
    """A report as staff see it in their group: rendered and kept up to date in place."""

    report_id: int
    lines: tuple[Msg, ...]
    buttons: tuple[tuple[Button, ...], ...] = ()
    photos: tuple[str, ...] = ()
    lat: float | None = None
    lon: float | None = None
    urgent: bool = False
    voice: str | None = None  # the stored key of a voice note attached to the report
