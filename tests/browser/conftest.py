"""Playwright in Debian's Chromium (playwright's own browser download is not reachable)."""

import os

import pytest

from tests.conftest import IN_CI
from tests.stack import CHROMIUM, CHROMIUM_ARGS


def pytest_collection_modifyitems(config, items) -> None:
    if os.path.exists(CHROMIUM):
        return
    if IN_CI:
        raise pytest.UsageError(f"CI must run the browser tests, but {CHROMIUM} is missing")
    skip = pytest.mark.skip(reason="Chromium not installed (apt-get install chromium)")
    for item in items:
        if "browser" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "args": CHROMIUM_ARGS,
    }


@pytest.fixture(scope="session")
def base_url():
    # pytest-playwright's own base_url fixture warns on pytest 9; tests use live_server.url.
    return None


@pytest.fixture
def new_page(browser):
    """Another member's browser: a page in a context of its own (with these options),
    closed after the test, whether it passed or not.

    A context left open keeps polling the live server on keep-alive connections, and each
    of those server threads holds a database connection: on PostgreSQL the suite's database
    then cannot be dropped at the end ("being accessed by other users")."""
    contexts = []

    def open_page(**context_options):
        context = browser.new_context(**context_options)
        contexts.append(context)
        return context.new_page()

    yield open_page
    for context in contexts:
        context.close()
