"""Events to and from plain dicts, for the inbox (JSON) and the sandbox API."""

from __future__ import annotations

import dataclasses
from datetime import datetime

from flows.model import (
    Address,
    ChoiceMade,
    CommandReceived,
    InboundEvent,
    LocationReceived,
    PhotoReceived,
    TextReceived,
    UnsupportedReceived,
    VoiceReceived,
)

EVENT_TYPES = {
    "text": TextReceived,
    "photo": PhotoReceived,
    "voice": VoiceReceived,
    "location": LocationReceived,
    "choice": ChoiceMade,
    "command": CommandReceived,
    "unsupported": UnsupportedReceived,
}
_NAMES = {cls: name for name, cls in EVENT_TYPES.items()}


def event_to_dict(ev: InboundEvent) -> dict:
    data = {"type": _NAMES[type(ev)]}
    for f in dataclasses.fields(ev):
        value = getattr(ev, f.name)
        if isinstance(value, Address):
            value = dataclasses.asdict(value)
        elif isinstance(value, datetime):
            value = value.isoformat()
        data[f.name] = value
    return data


def event_from_dict(data: dict) -> InboundEvent:
    d = dict(data)
    cls = EVENT_TYPES[d.pop("type")]
    d["address"] = Address(**d["address"])
    d["at"] = datetime.fromisoformat(d["at"])
    known = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in d.items() if k in known})
