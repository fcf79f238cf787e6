"""End to end in real headless Chromium (Debian's), driven by Playwright: sign in, see the app, sign out."""

from __future__ import annotations

import pytest

from tests.fixtures.idp import PASSWORD
from tests.fixtures.tools import require_tool

# Chromium here has no network beyond 127.0.0.1: without these it keeps trying to reach Google's hosts.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
async def chromium():
    executable = require_tool("chromium", "the end-to-end browser test")
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
        yield browser
        await browser.close()


async def test_sign_in_through_the_hosted_ui_and_see_the_app(make_stack, chromium, tmp_path):
    stack = await make_stack()
    page = await chromium.new_page()
    await page.goto(stack.gateway + "/?from=chromium")
    assert page.url.startswith(stack.idp.url), "an anonymous visitor is sent to the Hosted UI"
    await page.fill("input[name=username]", "alice")
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button[type=submit], input[type=submit]")
    await page.wait_for_url(stack.gateway + "/?from=chromium", timeout=15000)
    assert await page.title() == "Legacy app"
    assert "GET /?from=chromium" in await page.text_content("body")
    await page.screenshot(path=str(tmp_path / "signed-in.png"))
    cookies = {c["name"]: c for c in await page.context.cookies(stack.gateway)}
    session = [c for name, c in cookies.items() if name.startswith("_gw_session_") and "_login_" not in name]
    assert session and all(c["httpOnly"] and c["sameSite"] == "Lax" for c in session)

    await page.goto(stack.gateway + "/oauth2/sign_out")
    await page.wait_for_selector("input[name=password]")
    assert page.url.startswith(stack.idp.url), "signed out: back on the sign-in page"
    assert not [c for c in await page.context.cookies(stack.gateway) if c["name"].startswith("_gw_session_0")]
