"""`namjai line …`: setting up the LINE Official Account.

    namjai line rich-menu            creates the rich menu, uploads its image, makes it the default
    namjai line rich-menu --out F    only draws the image into F (PNG), nothing is sent to LINE

The menu has four parts: new report, my reports, help (postbacks the flows already understand:
`cmd:new`, `cmd:mine`, `cmd:help`) and the 1300 hotline (a tel: link). The image is drawn with
Pillow in a Thai font: Debian's fonts-thai-tlwg (Loma, Garuda…) or any TTF given with --font.
"""

from __future__ import annotations

import asyncio
import io
import os
from pathlib import Path
from typing import Optional

import typer

line_app = typer.Typer(help="LINE Official Account set-up.", no_args_is_help=True, rich_markup_mode="markdown")

WIDTH, HEIGHT = 2500, 1686  # LINE's large rich menu: a 2 x 2 grid of 1250 x 843 areas
FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/tlwg/Loma-Bold.ttf",
    "/usr/share/fonts/truetype/tlwg/Loma.ttf",
    "/usr/share/fonts/truetype/tlwg/Garuda-Bold.ttf",
    "/usr/share/fonts/truetype/tlwg/Garuda.ttf",
    "/usr/share/fonts/opentype/tlwg/Loma-Bold.otf",
    "/usr/share/fonts/truetype/noto/NotoSansThai-Bold.ttf",
    "/usr/share/fonts/truetype/noto/NotoSansThai-Regular.ttf",
)
HOTLINE = "1300"
# (catalogue key, action, background colour); the order is the grid's: left to right, top to bottom
ITEMS = (
    ("line.menu.new", "cmd:new", "#1E7B4F"),
    ("line.menu.mine", "cmd:mine", "#2F5E9E"),
    ("line.menu.help", "cmd:help", "#5E6670"),
    ("line.menu.hotline", f"tel:{HOTLINE}", "#B3261E"),
)
ICONS = ("+", "bars", "?", "!")  # drawn with the Thai font (it has no pictographs) or with bars


class FontMissing(RuntimeError):
    pass


def find_font(explicit: str | None = None) -> str:
    """A TTF that has Thai glyphs: --font, NAMJAI_LINE_FONT, else the usual Debian/Ubuntu places."""
    for path in (explicit, os.environ.get("NAMJAI_LINE_FONT"), *FONT_CANDIDATES):
        if path and Path(path).is_file():
            return path
    raise FontMissing("no Thai font found: `apt-get install fonts-thai-tlwg` or pass --font PATH.ttf")


def cells() -> list[tuple[int, int, int, int]]:
    w, h = WIDTH // 2, HEIGHT // 2
    return [(x * w, y * h, w, h) for y in range(2) for x in range(2)]


def draw_menu(font_path: str) -> bytes:
    """The rich menu image (PNG, well under LINE's 1 MB): Thai label, English label under it."""
    from PIL import Image, ImageDraw, ImageFont, features

    from bot.i18n import text as render
    from flows.model import Msg

    layout = ImageFont.Layout.RAQM if features.check("raqm") else ImageFont.Layout.BASIC
    big = ImageFont.truetype(font_path, 150, layout_engine=layout)
    small = ImageFont.truetype(font_path, 80, layout_engine=layout)
    icon = ImageFont.truetype(font_path, 220, layout_engine=layout)
    image = Image.new("RGB", (WIDTH, HEIGHT), "white")
    d = ImageDraw.Draw(image)
    for (x, y, w, h), (key, _, colour), glyph in zip(cells(), ITEMS, ICONS):
        d.rectangle((x + 8, y + 8, x + w - 8, y + h - 8), fill=colour)
        cx = x + w // 2
        if glyph == "bars":
            top = int(y + h * 0.26) - 75
            for i in range(3):
                d.rounded_rectangle((cx - 110, top + i * 60, cx + 110, top + i * 60 + 30), radius=12, fill="white")
        else:
            d.text((cx, y + h * 0.26), glyph, font=icon, fill="white", anchor="mm")
        d.text((cx, y + h * 0.60), render(Msg(key), "th"), font=big, fill="white", anchor="mm")
        d.text((cx, y + h * 0.82), render(Msg(key), "en"), font=small, fill="#F2F2F2", anchor="mm")
    buf = io.BytesIO()
    image.save(buf, "PNG", optimize=True)
    return buf.getvalue()


def menu_request():
    import handlers.line_sdk  # noqa: F401
    from linebot.v3.messaging import PostbackAction, RichMenuArea, RichMenuBounds, RichMenuRequest, RichMenuSize, URIAction

    from bot.i18n import text as render
    from flows.model import Msg

    areas = []
    for (x, y, w, h), (key, action, _) in zip(cells(), ITEMS):
        label = render(Msg(key), "th")
        if action.startswith("tel:"):
            act = URIAction(label=label[:20], uri=action)
        else:
            act = PostbackAction(label=label[:20], data=action, displayText=label)
        areas.append(RichMenuArea(bounds=RichMenuBounds(x=x, y=y, width=w, height=h), action=act))
    return RichMenuRequest(
        size=RichMenuSize(width=WIDTH, height=HEIGHT), selected=True, name="namjai-main", chatBarText=render(Msg("line.chat_bar"), "th"), areas=areas
    )


async def create_rich_menu(access_token: str, api_host: str | None, image: bytes, make_default: bool = True) -> str:
    """Creates the menu on LINE, uploads its image, makes it every user's default; its id."""
    import handlers.line_sdk  # noqa: F401
    from linebot.v3.messaging import AsyncApiClient, AsyncMessagingApi, AsyncMessagingApiBlob, Configuration

    async with AsyncApiClient(Configuration(access_token=access_token, host=api_host or None)) as client:
        api, blob = AsyncMessagingApi(client), AsyncMessagingApiBlob(client)
        await api.validate_rich_menu_object(menu_request())
        created = await api.create_rich_menu(menu_request())
        rich_menu_id = created.rich_menu_id
        await blob.set_rich_menu_image(rich_menu_id, body=image, _headers={"Content-Type": "image/png"})
        if make_default:
            await api.set_default_rich_menu(rich_menu_id)
        return rich_menu_id


@line_app.command("rich-menu")
def rich_menu(
    font: Optional[str] = typer.Option(None, help="a TTF with Thai glyphs (default: fonts-thai-tlwg's Loma)"),
    out: Optional[Path] = typer.Option(None, help="only write the menu image (PNG) to this file"),
    default: bool = typer.Option(True, help="make it the default menu of every user"),
) -> None:
    """Creates Namjai's rich menu (new report, my reports, help, hotline 1300) on the LINE channel."""
    try:
        image = draw_menu(find_font(font))
    except FontMissing as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2)
    if out is not None:
        out.write_bytes(image)
        typer.echo(f"rich menu image written to {out} ({len(image) // 1024} KB)")
        return
    from bot.settings import Settings

    settings = Settings()
    if not settings.line_access_token:
        typer.echo("error: set NAMJAI_LINE_ACCESS_TOKEN (the channel access token)", err=True)
        raise typer.Exit(2)
    rich_menu_id = asyncio.run(create_rich_menu(settings.line_access_token.get_secret_value(), settings.line_api_host, image, default))
    typer.echo(f"rich menu {rich_menu_id} created" + (" and set as the default" if default else ""))
