"""`namjai line rich-menu`: the image (Thai font) and the calls to LINE (a loopback fake)."""

from __future__ import annotations

import io

import pytest
from PIL import Image
from typer.testing import CliRunner

from bot.line_cli import HEIGHT, WIDTH, FontMissing, create_rich_menu, draw_menu, find_font
from tests.fake_line import FakeLine

try:
    FONT = find_font()
except FontMissing:  # pragma: no cover - the machine lacks fonts-thai-tlwg
    FONT = None
needs_font = pytest.mark.skipif(FONT is None, reason="apt-get install fonts-thai-tlwg")


@needs_font
def test_menu_image_is_drawn_in_a_thai_font():
    png = draw_menu(FONT)
    assert len(png) < 1_000_000  # LINE's limit
    im = Image.open(io.BytesIO(png))
    assert im.format == "PNG" and im.size == (WIDTH, HEIGHT)
    # the Thai label is really drawn: white pixels in the lower half of each cell
    for x, y in ((625, 421), (1875, 421), (625, 1264), (1875, 1264)):
        strip = im.crop((x - 500, y, x + 500, y + 120)).convert("L")
        assert strip.getextrema()[1] > 240


@needs_font
def test_cli_writes_the_image(tmp_path):
    out = tmp_path / "menu.png"
    from bot.cli import app

    result = CliRunner().invoke(app, ["line", "rich-menu", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_missing_font_is_a_clear_error(tmp_path, monkeypatch):
    import bot.line_cli as cli

    monkeypatch.setattr(cli, "FONT_CANDIDATES", ())
    monkeypatch.delenv("NAMJAI_LINE_FONT", raising=False)
    with pytest.raises(FontMissing, match="fonts-thai-tlwg"):
        find_font(str(tmp_path / "nope.ttf"))


@needs_font
async def test_rich_menu_is_created_uploaded_and_made_default():
    fake = await FakeLine().start()
    try:
        rid = await create_rich_menu(fake.access_token, fake.url, draw_menu(FONT))
    finally:
        await fake.close()
    menu = fake.rich_menus[rid]
    actions = [a["action"] for a in menu["areas"]]
    assert [a.get("data") or a.get("uri") for a in actions] == ["cmd:new", "cmd:mine", "cmd:help", "tel:1300"]
    assert all(len(a["label"]) <= 20 for a in actions)
    assert menu["size"] == {"width": WIDTH, "height": HEIGHT} and menu["selected"] is True
    content_type, image = fake.rich_menu_images[rid]
    assert content_type == "image/png" and image[:4] == b"\x89PNG"
    assert fake.default_rich_menu == rid
    assert [c.path for c in fake.calls] == [
        "/v2/bot/richmenu/validate", "/v2/bot/richmenu", f"/v2/bot/richmenu/{rid}/content", f"/v2/bot/user/all/richmenu/{rid}",
    ]
